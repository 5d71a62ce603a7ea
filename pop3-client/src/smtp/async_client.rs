//! The async SMTP driver (futures-io, any runtime): the blocking driver's
//! loop, awaited. Every decision it shares with the blocking client is in
//! [`Core`]; timeouts use a runtime-independent timer
//! ([`crate::timer::within`]).

use std::io;
use std::time::Duration;

use futures_io::{AsyncRead, AsyncWrite};
use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use smtp_auth::{Capabilities, Envelope, Event};

use super::core::{Core, MidMessage, CHUNK, READ_BUFFER};
use super::{SendReport, SmtpConfig, SmtpError};
use crate::async_client::{secure_async, AsyncStream};
use crate::config::{Credentials, Security};
use crate::error::Error;
use crate::timer::within;
use crate::transport::tls_connect_async;

/// An async SMTP submission client over any futures-io stream: the same
/// behaviour, errors and deadlines as [`SmtpClient`](super::SmtpClient).
///
/// ```no_run
/// # #[cfg(feature = "tokio")]
/// # async fn example() -> Result<(), pop3_client::smtp::SmtpError> {
/// use pop3_client::smtp::{AsyncSmtpClient, SmtpConfig};
/// use pop3_client::{Credentials, Security};
///
/// let mut config = SmtpConfig::new("smtp.example.com");
/// config.security = Security::StartTls; // port 587
/// let mut client = AsyncSmtpClient::connect_tokio(&config).await?;
/// client.login(&Credentials::new("me@example.com", "app password")).await?;
/// let message = futures_util::io::Cursor::new(b"Subject: hi\r\n\r\nHello.\r\n");
/// let report = client.send("me@example.com", &["you@example.net"], message).await?;
/// println!("{} {}", report.delivery.code, report.delivery.text);
/// client.quit().await?;
/// # Ok(())
/// # }
/// ```
///
/// After an error from a reply that was not read in full (a timeout, a cut
/// connection, a protocol violation) the client is out of step with the
/// server, and every later call fails with a `Client(Unusable)` error:
/// connect again. A refusal (wrong password, a refused message) leaves it
/// usable.
pub struct AsyncSmtpClient<S> {
    stream: AsyncStream<S>,
    core: Core,
}

impl<S> std::fmt::Debug for AsyncSmtpClient<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.core.fmt(f)
    }
}

#[cfg(feature = "tokio")]
impl AsyncSmtpClient<tokio_util::compat::Compat<tokio::net::TcpStream>> {
    /// Connects with tokio's TCP (the name lookup and each address bounded
    /// by `Timeouts::connect`), then as [`connect_over`](Self::connect_over).
    pub async fn connect_tokio(config: &SmtpConfig) -> Result<Self, SmtpError> {
        // Checks the EHLO name before connecting.
        Core::new(config)?;
        let tcp = crate::transport::connect_tcp_tokio(
            &config.host,
            config.port(),
            config.timeouts.connect,
        )
        .await?;
        Self::connect_over(tcp, config).await
    }

    /// Checks settings and credentials without sending mail, over tokio:
    /// connects, secures the connection, logs in and quits.
    pub async fn verify_tokio(
        config: &SmtpConfig,
        credentials: &Credentials,
    ) -> Result<(), SmtpError> {
        let mut client = Self::connect_tokio(config).await?;
        client.login(credentials).await?;
        client.quit().await
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncSmtpClient<S> {
    /// Over a connected stream: implicit TLS or STARTTLS as
    /// `config.security` says (never a fallback), the greeting and EHLO
    /// (again after STARTTLS). Fails, before any command past EHLO is sent,
    /// if STARTTLS is asked for and missing, refused, or followed by
    /// injected data.
    pub async fn connect_over(stream: S, config: &SmtpConfig) -> Result<Self, SmtpError> {
        let core = Core::new(config)?;
        let stream = secure_async(
            stream,
            config.security,
            &config.host,
            || config.tls_config(),
            config.timeouts.tls_handshake,
        )
        .await?;
        let mut client = Self { stream, core };
        let event = client.next_event("the greeting").await?;
        client.core.ready(event)?;
        if config.security == Security::StartTls {
            client.starttls().await?;
        }
        Ok(client)
    }

    /// Checks settings and credentials over a connected stream without
    /// sending mail: secures the connection, logs in and quits.
    pub async fn verify_over(
        stream: S,
        config: &SmtpConfig,
        credentials: &Credentials,
    ) -> Result<(), SmtpError> {
        let mut client = Self::connect_over(stream, config).await?;
        client.login(credentials).await?;
        client.quit().await
    }

    /// STARTTLS, the handshake, and EHLO again.
    async fn starttls(&mut self) -> Result<(), SmtpError> {
        self.core.start_starttls()?;
        let event = self.next_event("the answer to STARTTLS").await?;
        self.core.starttls_answered(event)?;
        let plain = match std::mem::replace(&mut self.stream, AsyncStream::Detached) {
            AsyncStream::Plain(s) => s,
            other => {
                self.stream = other;
                return Err(Error::already_tls().into());
            }
        };
        let config = &self.core.config;
        let tls = config.tls_config()?;
        let tls =
            tls_connect_async(plain, &config.host, tls, config.timeouts.tls_handshake).await?;
        self.stream = AsyncStream::Tls(Box::new(tls));
        self.core.tls_established()?;
        let event = self.next_event("the answer to EHLO").await?;
        self.core.ready(event)
    }

    /// What EHLO offered (after STARTTLS, the second EHLO's answer).
    pub fn capabilities(&self) -> Option<&Capabilities> {
        self.core.session.capabilities()
    }

    /// Whether the connection is encrypted.
    pub fn is_tls(&self) -> bool {
        self.core.session.is_tls()
    }

    /// Logs in as [`SmtpClient::login`](super::SmtpClient::login) does.
    pub async fn login(&mut self, credentials: &Credentials) -> Result<(), SmtpError> {
        self.core.start_login(credentials)?;
        let event = self.next_event("the answer to AUTH").await?;
        self.core.login_answered(event)
    }

    /// Sends one message read from `message` (any futures-io reader,
    /// streamed in 64 KiB pieces: dot-stuffed, line endings made CRLF), as
    /// [`SmtpClient::send`](super::SmtpClient::send) does.
    pub async fn send<T: AsRef<str>>(
        &mut self,
        from: &str,
        to: &[T],
        message: impl AsyncRead + Unpin,
    ) -> Result<SendReport, SmtpError> {
        let envelope = Envelope::new(from, to.iter().map(|t| t.as_ref().to_owned()));
        self.send_envelope(&envelope, message).await
    }

    /// Like [`send`](Self::send), with a whole [`Envelope`] (a known size
    /// checked against the server's SIZE before anything is sent).
    pub async fn send_envelope(
        &mut self,
        envelope: &Envelope,
        mut message: impl AsyncRead + Unpin,
    ) -> Result<SendReport, SmtpError> {
        let extra = self.core.start_send(envelope)?;
        let event = self
            .next_event_within("the answer to MAIL FROM, RCPT TO and DATA", extra)
            .await?;
        self.core.envelope_answered(event)?;
        let mut chunk = vec![0u8; CHUNK];
        let mut bytes: u64 = 0;
        loop {
            let n = match message.read(&mut chunk).await {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Core::message_read_failed(&e)),
            };
            bytes += n as u64;
            self.core.data(&chunk[..n])?;
            if let Err(e) = self.write_output("the server to accept the message").await {
                return Err(self.refusal_mid_message().await.unwrap_or(e));
            }
        }
        let extra = self.core.finish_data(bytes)?;
        let event = self
            .next_event_within("the answer to the message", extra)
            .await?;
        self.core.message_answered(event, bytes)
    }

    /// Sends QUIT and waits for its answer (or the server closing).
    pub async fn quit(mut self) -> Result<(), SmtpError> {
        self.core.start_quit()?;
        let event = self.next_event("the answer to QUIT").await?;
        self.core.quit_answered(event)?;
        let _ = self.stream.close().await;
        Ok(())
    }

    async fn write_output(&mut self, what: &str) -> Result<(), SmtpError> {
        if self.core.output().is_empty() {
            return Ok(());
        }
        let write = async {
            self.stream.write_all(self.core.output()).await?;
            self.stream.flush().await
        };
        match within(self.core.write_timeout(), write).await {
            Some(Ok(())) => {
                self.core.output_written();
                Ok(())
            }
            Some(Err(e)) => Err(self.core.write_failed(e, what)),
            None => Err(self.core.write_timed_out(what)),
        }
    }

    /// The server stopped taking the message (a write failed): a reply
    /// already sent is read (briefly) and reported instead of the write's
    /// error.
    async fn refusal_mid_message(&mut self) -> Option<SmtpError> {
        let mut search = self.core.refusal_search();
        let mut buf = [0u8; 4096];
        loop {
            let left = match search.next(&self.core) {
                MidMessage::Refused(e) => return Some(e),
                MidMessage::GiveUp => return None,
                MidMessage::Read(left) => left,
            };
            match within(left, self.stream.read(&mut buf)).await {
                Some(Ok(n)) if n > 0 => search.received(&buf[..n]),
                _ => return None,
            }
        }
    }

    async fn next_event(&mut self, what: &str) -> Result<Event, SmtpError> {
        self.next_event_within(what, Duration::ZERO).await
    }

    /// Writes the output and reads until the session has an event, within
    /// the response timeout plus `extra`.
    async fn next_event_within(&mut self, what: &str, extra: Duration) -> Result<Event, SmtpError> {
        self.core.begin_wait(extra);
        let result = self.pump(what).await;
        self.core.end_wait(result)
    }

    async fn pump(&mut self, what: &str) -> Result<Event, SmtpError> {
        let mut buf = vec![0u8; READ_BUFFER];
        loop {
            let event = self.core.advance()?;
            // Everything queued goes out before waiting for replies.
            self.write_output("the server to accept our commands")
                .await?;
            if let Some(event) = event {
                return Ok(event);
            }
            let limit = self.core.read_timeout(what)?;
            match within(limit, self.stream.read(&mut buf)).await {
                Some(Ok(0)) => return self.core.eof(),
                Some(Ok(n)) => self.core.received(&buf[..n]),
                Some(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                // A TLS peer that vanishes without close_notify.
                Some(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => return self.core.eof(),
                Some(Err(e)) => return Err(e.into()),
                None => return Err(self.core.timeout(what)),
            }
        }
    }
}
