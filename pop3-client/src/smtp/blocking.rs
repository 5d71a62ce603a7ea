//! The blocking SMTP driver: the operation list of `smtp/client.rs` over
//! std::io, without `.await`.

use std::io::Read;
use std::net::TcpStream;

use crate::transport::{Connection, ReadTimeout};

super::client::smtp_client! {
    /// A blocking SMTP submission client over a [`Connection`]: the TCP
    /// connection it made ([`SmtpClient::connect`]), or any stream whose
    /// reads can be bounded.
    client: SmtpClient,
    stream: Connection<S: [ReadTimeout]>,
    default_stream: [TcpStream],
    tcp: [TcpStream] by crate::transport::connect_tcp,
    reader: [Read],
    ;
}
