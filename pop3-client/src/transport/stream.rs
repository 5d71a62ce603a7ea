//! The two kinds of connection a client drives, with the same operations
//! under the same names: [`Connection`] over std::io, [`AsyncStream`] over
//! futures-io. Each is plaintext or TLS over the caller's stream, can be
//! upgraded in place (STLS, STARTTLS), and reads and writes within a time
//! limit, so the drivers built from one operation list differ only by
//! `.await`.
//!
//! Both report a wait that ran out as [`io::ErrorKind::TimedOut`], and a
//! TLS peer that vanished without close_notify as end of input (0 bytes):
//! the protocol session then says what was cut off.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_io::{AsyncRead, AsyncWrite};
use futures_util::io::{AsyncReadExt, AsyncWriteExt};

use super::tls::{tls_connect_async, tls_connect_blocking, AsyncTlsStream, BlockingTlsStream};
use super::trust::describe_certificate;
use super::ReadTimeout;
use crate::endpoint::CertificateInfo;
use crate::endpoint::Security;
use crate::error::Error;
use crate::timer::within;

fn detached() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "connection closed after a failed TLS upgrade",
    )
}

fn timed_out() -> io::Error {
    io::ErrorKind::TimedOut.into()
}

/// A blocking connection: plaintext, or TLS over the same stream (by
/// default a [`TcpStream`] made by [`connect_tcp`](super::connect_tcp)).
#[derive(Debug)]
pub enum Connection<S: Read + Write = TcpStream> {
    /// No TLS.
    Plain(S),
    /// TLS over the stream.
    Tls(Box<BlockingTlsStream<S>>),
    /// Taken apart for a TLS upgrade that failed; every use is an error.
    Detached,
}

impl<S: ReadTimeout> Connection<S> {
    /// `stream` secured as `security` says: TLS from the first byte for
    /// [`Security::Tls`] (its configuration made by `tls` only then),
    /// plaintext otherwise (STLS/STARTTLS comes after the greeting).
    pub(crate) fn secure(
        stream: S,
        security: Security,
        host: &str,
        tls: impl FnOnce() -> Result<Arc<rustls::ClientConfig>, Error>,
        handshake: Duration,
    ) -> Result<Self, Error> {
        Ok(match security {
            Security::Tls => Self::Tls(Box::new(tls_connect_blocking(
                stream,
                host,
                tls()?,
                handshake,
            )?)),
            Security::StartTls | Security::Plain => Self::Plain(stream),
        })
    }

    /// Whether the connection is encrypted.
    pub fn is_tls(&self) -> bool {
        matches!(self, Self::Tls(_))
    }

    /// Upgrades a plaintext connection to TLS (after STLS or STARTTLS was
    /// accepted). On failure the connection is left detached.
    pub(crate) fn upgrade(
        &mut self,
        host: &str,
        tls: Arc<rustls::ClientConfig>,
        handshake: Duration,
    ) -> Result<(), Error> {
        let plain = match std::mem::replace(self, Self::Detached) {
            Self::Plain(s) => s,
            other => {
                *self = other;
                return Err(Error::AlreadyTls);
            }
        };
        *self = Self::Tls(Box::new(tls_connect_blocking(plain, host, tls, handshake)?));
        Ok(())
    }

    /// The certificate the server presented, over TLS this connection set
    /// up.
    pub fn peer_certificate(&self) -> Option<CertificateInfo> {
        let Self::Tls(tls) = self else {
            return None;
        };
        Some(describe_certificate(tls.conn.peer_certificates()?.first()?))
    }

    /// Writes all of `bytes` and flushes, within `limit`.
    pub(crate) fn write_within(&mut self, bytes: &[u8], limit: Duration) -> io::Result<()> {
        self.set_write_timeout(Some(limit))?;
        match self.write_all(bytes).and_then(|()| self.flush()) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(timed_out()),
            other => other,
        }
    }

    /// Reads what arrives within `limit`; 0 is end of input.
    pub(crate) fn read_within(&mut self, buf: &mut [u8], limit: Duration) -> io::Result<usize> {
        self.set_read_timeout(Some(limit))?;
        loop {
            match self.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(timed_out()),
                other => return other,
            }
        }
    }

    /// Reads after a write failed. rustls's stream would first try again
    /// to write what it still holds (and fail the same way), so TLS
    /// records are read and decrypted directly.
    pub(crate) fn read_after_failed_write(
        &mut self,
        buf: &mut [u8],
        limit: Duration,
    ) -> io::Result<usize> {
        let Self::Tls(tls) = self else {
            return self.read_within(buf, limit);
        };
        tls.sock.set_read_timeout(Some(limit))?;
        // The same outcomes as read_within: a wait that ran out is
        // TimedOut, a peer gone without close_notify is end of input.
        loop {
            match tls.conn.reader().read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                other => return other,
            }
            match tls.conn.read_tls(&mut tls.sock) {
                Ok(0) => return Ok(0),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(timed_out()),
                Err(e) => return Err(e),
            }
            tls.conn.process_new_packets().map_err(io::Error::other)?;
        }
    }

    /// Ends the connection cleanly (over TLS, close_notify) within `limit`.
    pub(crate) fn close_within(&mut self, limit: Duration) -> io::Result<()> {
        self.set_write_timeout(Some(limit))?;
        ReadTimeout::close(self)
    }
}

impl<S: Read + Write> Read for Connection<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Plain(s) => s.read(buf),
            Self::Tls(s) => s.read(buf),
            Self::Detached => Err(detached()),
        }
    }
}

impl<S: Read + Write> Write for Connection<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Plain(s) => s.write(buf),
            Self::Tls(s) => s.write(buf),
            Self::Detached => Err(detached()),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Plain(s) => s.flush(),
            Self::Tls(s) => s.flush(),
            Self::Detached => Err(detached()),
        }
    }
}

impl<S: ReadTimeout> ReadTimeout for Connection<S> {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Self::Plain(s) => s.set_read_timeout(timeout),
            Self::Tls(s) => s.sock.set_read_timeout(timeout),
            Self::Detached => Err(detached()),
        }
    }

    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Self::Plain(s) => s.set_write_timeout(timeout),
            Self::Tls(s) => s.sock.set_write_timeout(timeout),
            Self::Detached => Err(detached()),
        }
    }

    fn close(&mut self) -> io::Result<()> {
        match self {
            // The caller's own stream closes as it does (its own TLS sends
            // close_notify).
            Self::Plain(s) => s.close(),
            Self::Tls(s) => s.close(),
            Self::Detached => Ok(()),
        }
    }
}

/// An async connection: plaintext, or TLS over the same stream.
#[derive(Debug)]
pub enum AsyncStream<S> {
    /// No TLS.
    Plain(S),
    /// TLS.
    Tls(Box<AsyncTlsStream<S>>),
    /// Taken apart for a TLS upgrade that failed.
    Detached,
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncStream<S> {
    /// `stream` secured as `security` says (see [`Connection::secure`]).
    pub(crate) async fn secure(
        stream: S,
        security: Security,
        host: &str,
        tls: impl FnOnce() -> Result<Arc<rustls::ClientConfig>, Error>,
        handshake: Duration,
    ) -> Result<Self, Error> {
        Ok(match security {
            Security::Tls => Self::Tls(Box::new(
                tls_connect_async(stream, host, tls()?, handshake).await?,
            )),
            Security::StartTls | Security::Plain => Self::Plain(stream),
        })
    }

    /// Whether the connection is encrypted.
    pub fn is_tls(&self) -> bool {
        matches!(self, Self::Tls(_))
    }

    /// Upgrades a plaintext connection to TLS (after STLS or STARTTLS was
    /// accepted). On failure the connection is left detached.
    pub(crate) async fn upgrade(
        &mut self,
        host: &str,
        tls: Arc<rustls::ClientConfig>,
        handshake: Duration,
    ) -> Result<(), Error> {
        let plain = match std::mem::replace(self, Self::Detached) {
            Self::Plain(s) => s,
            other => {
                *self = other;
                return Err(Error::AlreadyTls);
            }
        };
        *self = Self::Tls(Box::new(
            tls_connect_async(plain, host, tls, handshake).await?,
        ));
        Ok(())
    }

    /// The certificate the server presented, over TLS this connection set
    /// up.
    pub fn peer_certificate(&self) -> Option<CertificateInfo> {
        let Self::Tls(tls) = self else {
            return None;
        };
        Some(describe_certificate(
            tls.get_ref().1.peer_certificates()?.first()?,
        ))
    }

    /// Writes all of `bytes` and flushes, within `limit`.
    pub(crate) async fn write_within(&mut self, bytes: &[u8], limit: Duration) -> io::Result<()> {
        let write = async {
            self.write_all(bytes).await?;
            self.flush().await
        };
        within(limit, write)
            .await
            .unwrap_or_else(|| Err(timed_out()))
    }

    /// Reads what arrives within `limit`; 0 is end of input.
    pub(crate) async fn read_within(
        &mut self,
        buf: &mut [u8],
        limit: Duration,
    ) -> io::Result<usize> {
        let read = async {
            loop {
                match self.read(buf).await {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                    other => return other,
                }
            }
        };
        within(limit, read)
            .await
            .unwrap_or_else(|| Err(timed_out()))
    }

    /// Reads after a write failed (the TLS layer reads what it holds).
    pub(crate) async fn read_after_failed_write(
        &mut self,
        buf: &mut [u8],
        limit: Duration,
    ) -> io::Result<usize> {
        self.read_within(buf, limit).await
    }

    /// Ends the connection cleanly (over TLS, close_notify) within `limit`.
    pub(crate) async fn close_within(&mut self, limit: Duration) -> io::Result<()> {
        within(limit, self.close())
            .await
            .unwrap_or_else(|| Err(timed_out()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for AsyncStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Self::Detached => Poll::Ready(Err(detached())),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for AsyncStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Self::Detached => Poll::Ready(Err(detached())),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Self::Detached => Poll::Ready(Err(detached())),
        }
    }
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_close(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_close(cx),
            Self::Detached => Poll::Ready(Ok(())),
        }
    }
}
