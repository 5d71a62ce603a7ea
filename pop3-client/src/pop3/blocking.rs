//! The blocking client: the operation list of `pop3/client.rs` over
//! std::io. Every operation is the async client's, without `.await`.
//!
//! ```no_run
//! use pop3_client::{blocking::Client, ClientConfig, Credentials};
//! let config = ClientConfig::new("pop.example.com");
//! let mut client = Client::connect(&config, &Credentials::new("me@example.com", "app password"))?;
//! let stat = client.stat()?;
//! println!("{} messages, {} bytes", stat.count, stat.octets);
//! for item in client.uidl()? {
//!     let message: Vec<u8> = client.retr_vec(item.msg)?;
//!     // store `message` durably, then remember `item.uid`
//! }
//! client.quit()?;
//! # Ok::<(), pop3_client::Error>(())
//! ```
//!
//! A fetch with a progress callback that borrows from the caller:
//!
//! ```no_run
//! # fn f(client: &mut pop3_client::blocking::Client,
//! #      msgs: &[pop3_client::MsgNum]) -> Result<(), Box<dyn std::error::Error>> {
//! let mut maildir = pop3_client::store::MaildirSink::create("Maildir")?;
//! let mut bytes = 0;
//! client.retr_many_with_progress(msgs, &mut maildir, &mut |p| {
//!     if p.done {
//!         bytes += p.bytes;
//!     }
//! })?;
//! println!("{bytes} bytes stored");
//! # Ok(()) }
//! ```

use std::net::TcpStream;

pub use super::sink::MessageSink;
use crate::transport::{Connection, ReadTimeout};

super::client::pop3_client! {
    /// A POP3 client over a blocking stream: a TCP connection it made
    /// ([`Client::connect`]), or any stream whose reads can be bounded
    /// ([`ReadTimeout`]), plaintext or TLS.
    stream: Connection<S: [ReadTimeout]>,
    default_stream: [TcpStream],
    tcp: [TcpStream] by crate::transport::connect_tcp,
    sink: MessageSink,
    writer: [std::io::Write] into WriteSink,
    ;
}
