//! TCP connect under one deadline: the name looked up (bounded, on a helper
//! thread), then the addresses raced as RFC 8305 ("Happy Eyeballs") has
//! it: IPv6 and IPv4 interleaved, a new attempt every 250 ms or as soon as
//! one fails, the first to connect wins. An IPv6 literal may be written in
//! brackets (`[::1]`).

use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use tracing::debug;

use crate::error::Error;

/// How long an attempt has before the next address is tried beside it
/// (RFC 8305's "Connection Attempt Delay").
const ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// A host as written, without the brackets of an IPv6 literal (`[::1]`).
pub(crate) fn unbracket(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// The addresses in the order they are tried: the families interleaved,
/// starting with the first one's (the resolver's preference, usually
/// IPv6).
fn interleave(addrs: Vec<SocketAddr>) -> Vec<SocketAddr> {
    let first_v6 = addrs.first().is_some_and(SocketAddr::is_ipv6);
    let (mut preferred, mut other): (Vec<_>, Vec<_>) =
        addrs.into_iter().partition(|a| a.is_ipv6() == first_v6);
    let mut out = Vec::with_capacity(preferred.len() + other.len());
    preferred.reverse();
    other.reverse();
    loop {
        match (preferred.pop(), other.pop()) {
            (None, None) => return out,
            (a, b) => out.extend(a.into_iter().chain(b)),
        }
    }
}

/// Races connections to `addrs` (RFC 8305): one attempt starts, the next
/// beside it after [`ATTEMPT_DELAY`] or as soon as one fails; the first to
/// connect wins (the others finish on their own threads and are closed),
/// all within `deadline`.
fn race<T, C>(addrs: Vec<SocketAddr>, deadline: Option<Instant>, connect: C) -> io::Result<T>
where
    T: Send + 'static,
    C: Fn(SocketAddr, Duration) -> io::Result<T> + Send + Sync + 'static,
{
    let left = || {
        deadline.map_or(Duration::MAX, |d| {
            d.saturating_duration_since(Instant::now())
        })
    };
    // One address needs no race, and no thread.
    if let [addr] = addrs[..] {
        debug!(%addr, "connecting");
        return connect(addr, left());
    }
    let connect = std::sync::Arc::new(connect);
    let (sender, receiver) = mpsc::channel();
    let mut waiting = addrs.into_iter();
    let mut pending = 0usize;
    let mut last = no_address();
    let mut any_failed = false;
    loop {
        if let Some(addr) = waiting.next() {
            let (connect, sender, limit) =
                (std::sync::Arc::clone(&connect), sender.clone(), left());
            debug!(%addr, "connecting");
            thread::Builder::new()
                .name("pop3-connect".into())
                .spawn(move || {
                    // The receiver is gone once another attempt won.
                    let _ = sender.send((addr, connect(addr, limit)));
                })?;
            pending += 1;
        }
        if pending == 0 {
            return Err(last);
        }
        let left = left();
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                if any_failed {
                    format!("connection timed out (an address refused: {last})")
                } else {
                    "connection timed out".to_owned()
                },
            ));
        }
        let wait = if waiting.len() > 0 {
            ATTEMPT_DELAY.min(left)
        } else {
            left
        };
        match receiver.recv_timeout(wait) {
            Ok((_, Ok(stream))) => return Ok(stream),
            Ok((addr, Err(e))) => {
                debug!(%addr, error = %e, "connect failed");
                pending -= 1;
                any_failed = true;
                last = e;
            }
            Err(_) => {}
        }
    }
}

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
    let host = unbracket(host);
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

/// Connects to `host:port` within `timeout` in all: the name is looked up,
/// then the addresses (IPv6 and IPv4) are raced as RFC 8305 has it.
pub fn connect_tcp(host: &str, port: u16, timeout: Duration) -> Result<TcpStream, Error> {
    // A limit too large for the clock (Duration::MAX) is no deadline.
    let deadline = Instant::now().checked_add(timeout);
    let addrs = resolve(host, port, timeout).map_err(|e| connect_error(host, port, e))?;
    let stream = race(interleave(addrs), deadline, |addr, limit| {
        TcpStream::connect_timeout(&addr, limit.max(Duration::from_millis(1)))
    })
    .map_err(|e| connect_error(host, port, e))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// The async counterpart of [`lookup`] for tokio.
#[cfg(feature = "tokio")]
pub async fn lookup_tokio(
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<Vec<SocketAddr>, Error> {
    let found = crate::timer::within(timeout, tokio::net::lookup_host((unbracket(host), port)))
        .await
        .unwrap_or_else(|| Err(lookup_timed_out(timeout)))
        .map_err(|e| connect_error(host, port, e))?;
    let addrs: Vec<SocketAddr> = found.collect();
    if addrs.is_empty() {
        return Err(connect_error(host, port, no_address()));
    }
    Ok(addrs)
}

/// The async counterpart of [`connect_tcp`] for tokio, adapted to futures-io
/// with tokio-util's compat layer.
#[cfg(feature = "tokio")]
pub async fn connect_tcp_tokio(
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<tokio_util::compat::Compat<tokio::net::TcpStream>, Error> {
    use futures_util::stream::{FuturesUnordered, StreamExt};
    use tokio_util::compat::TokioAsyncReadCompatExt;
    let deadline = Instant::now().checked_add(timeout);
    let left = || {
        deadline.map_or(Duration::MAX, |d| {
            d.saturating_duration_since(Instant::now())
        })
    };
    let addrs: Vec<SocketAddr> =
        crate::timer::within(timeout, tokio::net::lookup_host((unbracket(host), port)))
            .await
            .unwrap_or_else(|| Err(lookup_timed_out(timeout)))
            .map_err(|e| connect_error(host, port, e))?
            .collect();
    // The same race as connect_tcp's, as futures.
    let mut waiting = interleave(addrs).into_iter();
    let mut attempts = FuturesUnordered::new();
    let mut last = no_address();
    loop {
        if let Some(addr) = waiting.next() {
            debug!(%addr, "connecting");
            attempts.push(async move { (addr, tokio::net::TcpStream::connect(addr).await) });
        }
        if attempts.is_empty() {
            return Err(connect_error(host, port, last));
        }
        let left = left();
        if left.is_zero() {
            let timed_out = io::Error::new(io::ErrorKind::TimedOut, "connection timed out");
            return Err(connect_error(host, port, timed_out));
        }
        let wait = if waiting.len() > 0 {
            ATTEMPT_DELAY.min(left)
        } else {
            left
        };
        match crate::timer::within(wait, attempts.next()).await {
            Some(Some((_, Ok(stream)))) => {
                stream.set_nodelay(true)?;
                return Ok(stream.compat());
            }
            Some(Some((addr, Err(e)))) => {
                debug!(%addr, error = %e, "connect failed");
                last = e;
            }
            Some(None) | None => {}
        }
    }
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
    fn families_interleave_from_the_first() {
        let v6 = |n: u16| SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, n], 1));
        let v4 = |n: u8| SocketAddr::from(([192, 0, 2, n], 1));
        assert_eq!(
            interleave(vec![v6(1), v6(2), v6(3), v4(1)]),
            [v6(1), v4(1), v6(2), v6(3)]
        );
        assert_eq!(interleave(vec![v4(1), v4(2), v6(1)]), [v4(1), v6(1), v4(2)]);
    }

    /// The second address is tried beside a first that hangs: one that is
    /// released (and fails) only once the second attempt has started.
    /// Trying them in turn, the first would connect after its long wait and
    /// win.
    #[test]
    fn a_hanging_address_does_not_hold_the_next() {
        let (first, second) = (
            SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], 1)),
            SocketAddr::from(([192, 0, 2, 1], 1)),
        );
        let (tell, told) = mpsc::channel::<()>();
        let (tell, told) = (
            std::sync::Mutex::new(Some(tell)),
            std::sync::Mutex::new(told),
        );
        let deadline = Instant::now().checked_add(Duration::from_secs(20));
        let winner = race(vec![first, second], deadline, move |addr, _| {
            if addr == first {
                // Hangs until the second attempt has begun, then fails; had
                // nothing begun beside it, it would finally connect (and win).
                match told.lock().unwrap().recv_timeout(Duration::from_secs(20)) {
                    Ok(()) => Err(io::Error::new(io::ErrorKind::TimedOut, "no answer")),
                    Err(_) => Ok(addr),
                }
            } else {
                if let Some(tell) = tell.lock().unwrap().take() {
                    let _ = tell.send(());
                }
                Ok(addr)
            }
        })
        .unwrap();
        assert_eq!(winner, second);
        // All fail: the last error is reported.
        let err = race::<(), _>(vec![first, second], deadline, |_, _| {
            Err(io::Error::new(io::ErrorKind::ConnectionRefused, "refused"))
        })
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    }

    #[test]
    fn bracketed_ipv6_literals_are_addresses() {
        let never =
            |_: String, _: u16| -> io::Result<Vec<SocketAddr>> { panic!("looked up an address") };
        let addrs = resolve_with("[::1]", 995, Duration::from_secs(60), never).unwrap();
        assert_eq!(addrs, [SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], 995))]);
        assert_eq!(unbracket("[2001:db8::1]"), "2001:db8::1");
        assert_eq!(unbracket("mail.example.com"), "mail.example.com");
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
