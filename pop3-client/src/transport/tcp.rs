//! TCP connect: the name looked up within a timeout, then every resolved
//! address in turn, each bounded by the timeout too.

use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
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

fn lookup_timed_out(timeout: Duration) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!(
            "looking up the server's name took longer than {timeout:?}; check the name and the network's DNS"
        ),
    )
}

/// Looks up `host:port` with the system resolver, waiting at most `timeout`.
/// std's lookup cannot be bounded, so it runs on a helper thread that is
/// left to finish on its own when it is too slow.
fn resolve(host: &str, port: u16, timeout: Duration) -> io::Result<Vec<SocketAddr>> {
    resolve_with(host, port, timeout, |host, port| {
        (host.as_str(), port)
            .to_socket_addrs()
            .map(Iterator::collect)
    })
}

fn resolve_with(
    host: &str,
    port: u16,
    timeout: Duration,
    lookup: impl FnOnce(String, u16) -> io::Result<Vec<SocketAddr>> + Send + 'static,
) -> io::Result<Vec<SocketAddr>> {
    // An address needs no lookup, and no thread.
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let (sender, receiver) = mpsc::channel();
    let host = host.to_owned();
    thread::Builder::new()
        .name("pop3-lookup".into())
        .spawn(move || {
            // The receiver is gone if the wait timed out; nothing to tell.
            let _ = sender.send(lookup(host, port));
        })?;
    match receiver.recv_timeout(timeout) {
        Ok(result) => result,
        Err(RecvTimeoutError::Timeout) => Err(lookup_timed_out(timeout)),
        Err(RecvTimeoutError::Disconnected) => Err(io::Error::other("the name lookup failed")),
    }
}

/// Looks up `host:port` within `timeout` (the lookup `connect_tcp` makes),
/// for a caller that reports the step on its own ("resolve: ok").
pub fn lookup(host: &str, port: u16, timeout: Duration) -> Result<Vec<SocketAddr>, Error> {
    match resolve(host, port, timeout) {
        Ok(addrs) if addrs.is_empty() => Err(connect_error(host, port, no_address())),
        Ok(addrs) => Ok(addrs),
        Err(e) => Err(connect_error(host, port, e)),
    }
}

/// Connects to `host:port`: the name is looked up within `timeout`, then
/// each resolved address (IPv6 and IPv4) is tried in turn with `timeout`
/// each.
pub fn connect_tcp(host: &str, port: u16, timeout: Duration) -> Result<TcpStream, Error> {
    let addrs = resolve(host, port, timeout).map_err(|e| connect_error(host, port, e))?;
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
    let addrs: Vec<SocketAddr> =
        crate::timer::within(timeout, tokio::net::lookup_host((host, port)))
            .await
            .unwrap_or_else(|| Err(lookup_timed_out(timeout)))
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn a_slow_lookup_is_cut_off_with_a_message_about_dns() {
        let slow = |_: String, _: u16| {
            thread::sleep(Duration::from_secs(5));
            Ok(Vec::new())
        };
        let err =
            resolve_with("mail.example.com", 995, Duration::from_millis(50), slow).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(
            err.to_string().contains("looking up the server's name"),
            "{err}"
        );
        let err = connect_error("mail.example.com", 995, err);
        assert_eq!(err.kind(), crate::error::ErrorKind::Connect);
        assert!(err.is_transient());
    }

    #[test]
    fn lookups_answer_and_addresses_skip_them() {
        let found = |host: String, port: u16| {
            assert_eq!(host, "mail.example.com");
            Ok(vec![SocketAddr::from(([192, 0, 2, 1], port))])
        };
        let addrs = resolve_with("mail.example.com", 995, Duration::from_secs(60), found).unwrap();
        assert_eq!(addrs, [SocketAddr::from(([192, 0, 2, 1], 995))]);
        let never =
            |_: String, _: u16| -> io::Result<Vec<SocketAddr>> { panic!("looked up an address") };
        let addrs = resolve_with("::1", 110, Duration::from_secs(60), never).unwrap();
        assert_eq!(addrs, [SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], 110))]);
        let failed =
            |_: String, _: u16| Err(io::Error::new(io::ErrorKind::NotFound, "no such host"));
        let err =
            resolve_with("nowhere.invalid", 110, Duration::from_secs(60), failed).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
