//! A TCP proxy on 127.0.0.1 that delays what the server sends and counts
//! the client's waits: how many round trips a session costs, seen from
//! outside (the client's own code is not asked).
//!
//! A wait is a flight of the client's bytes that the server answered before
//! the client sent again or closed; the TCP connect is one more. The delay
//! (on the server's side only) orders what the proxy sees: a QUIT the
//! client does not wait for is followed by its close before the answer
//! comes back, as long as the proxy's own threads are not held up longer
//! than the delay (tests use 50 ms).

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

/// What the proxy saw on one connection, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Client,
    Server,
    ClientClosed,
}

/// One connection's record, shared with its two pipe threads.
type Record = Arc<Mutex<Vec<Seen>>>;

/// The proxy; it stops accepting when dropped (connections in flight end
/// with their peers).
pub struct DelayingProxy {
    addr: SocketAddr,
    connections: Arc<Mutex<Vec<Record>>>,
    stop: Arc<AtomicBool>,
}

impl Drop for DelayingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which then sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

impl DelayingProxy {
    /// Forwards 127.0.0.1:PORT (see [`Self::addr`]) to `target`, holding
    /// each chunk the server sends for `delay` before passing it on.
    pub fn start(target: SocketAddr, delay: Duration) -> io::Result<Self> {
        Self::start_on(0, target, delay)
    }

    /// As [`Self::start`], listening on 127.0.0.1:`port` (0: any free port).
    pub fn start_on(port: u16, target: SocketAddr, delay: Duration) -> io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", port))?;
        let addr = listener.local_addr()?;
        let connections: Arc<Mutex<Vec<Record>>> = Arc::default();
        let all = Arc::clone(&connections);
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        thread::Builder::new()
            .name("delaying-proxy".into())
            .spawn(move || {
                for client in listener.incoming() {
                    if stopped.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = client else { continue };
                    let Ok(server) = TcpStream::connect(target) else {
                        continue;
                    };
                    let seen = Arc::new(Mutex::new(Vec::new()));
                    all.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(Arc::clone(&seen));
                    let _ = pipe(client, server, seen, delay);
                }
            })?;
        Ok(Self {
            addr,
            connections,
            stop,
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The waits of each connection whose client has closed, one figure
    /// per connection, forgetting them; connections still open stay.
    pub fn take_finished_waits(&self) -> Vec<usize> {
        let mut connections = self
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut finished = Vec::new();
        connections.retain(|seen| {
            let seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
            if seen.contains(&Seen::ClientClosed) {
                finished.push(waits(&seen));
                false
            } else {
                true
            }
        });
        finished
    }

    /// The client's waits on every connection so far, connect included,
    /// and forgets them (for the next measure).
    pub fn take_waits(&self) -> usize {
        let connections = std::mem::take(
            &mut *self
                .connections
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        connections
            .iter()
            .map(|seen| waits(&seen.lock().unwrap_or_else(PoisonError::into_inner)))
            .sum()
    }
}

/// The waits in one connection's record: 1 for the connect, and one per
/// client flight the server answered before the client's next flight or
/// its close.
fn waits(seen: &[Seen]) -> usize {
    let mut count = 1;
    let mut flight_open = false;
    for event in seen {
        match event {
            Seen::Client => flight_open = true,
            Seen::Server if flight_open => {
                count += 1;
                flight_open = false;
            }
            Seen::Server => {}
            Seen::ClientClosed => break,
        }
    }
    count
}

fn pipe(client: TcpStream, server: TcpStream, seen: Record, delay: Duration) -> io::Result<()> {
    let record = |seen: &Mutex<Vec<Seen>>, event| {
        let mut seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
        // A run of chunks in one direction is one event.
        if seen.last() != Some(&event) {
            seen.push(event);
        }
    };
    let (mut client_in, mut server_out) = (client.try_clone()?, server.try_clone()?);
    let upstream_seen = Arc::clone(&seen);
    thread::Builder::new()
        .name("delaying-proxy-up".into())
        .spawn(move || {
            let mut buf = [0u8; 16 * 1024];
            loop {
                match client_in.read(&mut buf) {
                    Ok(0) | Err(_) => {
                        record(&upstream_seen, Seen::ClientClosed);
                        let _ = server_out.shutdown(Shutdown::Write);
                        return;
                    }
                    Ok(n) => {
                        record(&upstream_seen, Seen::Client);
                        if server_out.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                }
            }
        })?;
    let (mut server_in, mut client_out) = (server, client);
    thread::Builder::new()
        .name("delaying-proxy-down".into())
        .spawn(move || {
            let mut buf = [0u8; 16 * 1024];
            loop {
                match server_in.read(&mut buf) {
                    Ok(0) | Err(_) => {
                        let _ = client_out.shutdown(Shutdown::Write);
                        return;
                    }
                    Ok(n) => {
                        thread::sleep(delay);
                        record(&seen, Seen::Server);
                        if client_out.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                }
            }
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_count_answered_flights_and_the_connect() {
        use Seen::{Client as C, ClientClosed as E, Server as S};
        assert_eq!(waits(&[S, C, S, C, S]), 3);
        // The last flight closed before its answer: not a wait.
        assert_eq!(waits(&[S, C, S, C, E, S]), 2);
        assert_eq!(waits(&[]), 1);
    }
}
