//! TCP connect: every resolved address in turn, each bounded by a timeout.

use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use tracing::debug;

use crate::error::Error;

fn connect_error(host: &str, port: u16, source: io::Error) -> Error {
    Error::Connect {
        server: format!("{host}:{port}"),
        source,
    }
}

fn no_address() -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, "the host name has no address")
}

/// Connects to `host:port`, trying each resolved address (IPv6 and IPv4) in
/// turn with `timeout` each. (Name resolution itself uses the system
/// resolver, which std cannot bound.)
pub fn connect_tcp(host: &str, port: u16, timeout: Duration) -> Result<TcpStream, Error> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| connect_error(host, port, e))?
        .collect();
    let mut last = no_address();
    for addr in addrs {
        debug!(%addr, "connecting");
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => {
                stream.set_nodelay(true)?;
                return Ok(stream);
            }
            Err(e) => {
                debug!(%addr, error = %e, "connect failed");
                last = e;
            }
        }
    }
    Err(connect_error(host, port, last))
}

/// The async counterpart of [`connect_tcp`] for tokio, adapted to futures-io
/// with tokio-util's compat layer.
#[cfg(feature = "tokio")]
pub async fn connect_tcp_tokio(
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<tokio_util::compat::Compat<tokio::net::TcpStream>, Error> {
    use tokio_util::compat::TokioAsyncReadCompatExt;
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| connect_error(host, port, e))?
        .collect();
    let mut last = no_address();
    for addr in addrs {
        debug!(%addr, "connecting");
        let attempt = crate::timer::within(timeout, tokio::net::TcpStream::connect(addr)).await;
        match attempt {
            Some(Ok(stream)) => {
                stream.set_nodelay(true)?;
                return Ok(stream.compat());
            }
            Some(Err(e)) => last = e,
            None => last = io::Error::new(io::ErrorKind::TimedOut, "connection timed out"),
        }
    }
    Err(connect_error(host, port, last))
}
