//! Getting a secure byte stream to a server: TCP connect with timeouts and
//! rustls TLS (implicit, or an upgrade after STLS/STARTTLS). Protocol-neutral:
//! the POP3 clients and the SMTP side use the same code.

mod stream;
mod tcp;
mod tls;
pub(crate) mod trust;
mod x509;

pub use stream::{AsyncStream, Connection};
pub use tcp::{connect_tcp, lookup};
#[cfg(feature = "tokio")]
pub use tcp::{connect_tcp_tokio, lookup_tokio};
pub use tls::{
    crypto_provider, describe_tls_error, server_name, tls_client_config, tls_connect_async,
    tls_connect_blocking, AsyncTlsStream, BlockingTlsStream,
};
pub use trust::{certificate_fingerprint, TrustVerifier};

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A blocking stream whose reads can be bounded in time. The blocking client
/// sets the timeout before every read so that each wait stays within its
/// deadline.
pub trait ReadTimeout: Read + Write {
    /// Bounds the next reads (`None`: wait forever).
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()>;

    /// Bounds the next writes, so that a server that stops reading cannot
    /// hold the client. The default does nothing (the caller's stream
    /// then relies on the caller).
    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let _ = timeout;
        Ok(())
    }

    /// Ends the stream cleanly once the session is over (after QUIT): a
    /// TLS stream sends its close_notify alert, so the server can tell a
    /// finished session from a cut one. The default flushes.
    fn close(&mut self) -> io::Result<()> {
        self.flush()
    }
}

/// A caller's own rustls stream over any bounded stream (the socket's read
/// timeout applies); [`ReadTimeout::close`] sends close_notify.
impl<S: ReadTimeout> ReadTimeout for rustls::StreamOwned<rustls::ClientConnection, S> {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.sock.set_read_timeout(timeout)
    }

    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.sock.set_write_timeout(timeout)
    }

    fn close(&mut self) -> io::Result<()> {
        self.conn.send_close_notify();
        while self.conn.wants_write() {
            self.conn.write_tls(&mut self.sock)?;
        }
        self.sock.flush()
    }
}

impl ReadTimeout for TcpStream {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, timeout)
    }

    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_write_timeout(self, timeout)
    }
}

/// Any `Read + Write` without a way to bound reads (an in-memory pipe, a
/// stream the caller manages): the client then relies on the caller.
#[derive(Debug)]
pub struct Unbounded<S>(pub S);

impl<S: Read> Read for Unbounded<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl<S: Write> Write for Unbounded<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl<S: Read + Write> ReadTimeout for Unbounded<S> {
    fn set_read_timeout(&mut self, _: Option<Duration>) -> io::Result<()> {
        Ok(())
    }
}
