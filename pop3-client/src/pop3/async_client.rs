//! The async client: the operation list of `pop3/client.rs` over
//! futures-io, on any executor (its timeouts use a runtime-independent
//! timer). Every operation is the blocking client's, awaited. With the
//! `tokio` feature, [`crate::pop3::tokio::Client`] connects with tokio's TCP.
//!
//! ```no_run
//! # #[cfg(feature = "tokio")]
//! # async fn example() -> Result<(), pop3_client::Error> {
//! use pop3_client::{tokio::Client, ClientConfig, Credentials};
//! let config = ClientConfig::new("pop.example.com");
//! let mut client = Client::connect(&config, &Credentials::new("me", "app password")).await?;
//! for item in client.uidl().await? {
//!     let message = client.retr_vec(item.msg).await?;
//!     println!("{}: {} bytes", item.uid, message.len());
//! }
//! client.quit().await
//! # }
//! ```

use futures_io::{AsyncRead, AsyncWrite};

pub use super::sink::AsyncMessageSink;
pub use crate::transport::AsyncStream;

super::client::pop3_client! {
    /// A POP3 client over a futures-io stream, plaintext or TLS.
    stream: AsyncStream<S: [AsyncRead + AsyncWrite + Unpin]>,
    default_stream: [],
    tcp: #[cfg(feature = "tokio")] [tokio_util::compat::Compat<::tokio::net::TcpStream>]
        by crate::transport::connect_tcp_tokio,
    sink: AsyncMessageSink,
    writer: [futures_io::AsyncWrite + Unpin] into AsyncWriteSink,
    async; .await
}
