//! The blocking SMTP driver: it writes the session's output, reads replies
//! within their deadlines, does the TLS handshakes, and streams messages.
//! Every protocol decision is in [`smtp_auth::SmtpSession`], and what both
//! drivers decide around it in [`Core`].

use std::io::{self, Read, Write};
use std::time::Duration;

use smtp_auth::{Capabilities, Envelope, Event};

use super::core::{Core, MidMessage, CHUNK, READ_BUFFER};
use super::{SendReport, SmtpConfig, SmtpError};
use crate::config::{Credentials, Security};
use crate::error::Error;
use crate::transport::{
    connect_tcp, secure_blocking, tls_connect_blocking, Connection, ReadTimeout,
};

/// A blocking SMTP submission client over a [`Connection`].
///
/// After an error from a reply that was not read in full (a timeout, a cut
/// connection, a protocol violation) the client is out of step with the
/// server, and every later call fails with a `Client(Unusable)` error:
/// connect again. A refusal (wrong password, a refused message) leaves it
/// usable.
pub struct SmtpClient {
    stream: Connection,
    core: Core,
}

impl std::fmt::Debug for SmtpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.core.fmt(f)
    }
}

impl SmtpClient {
    /// Connects as `config` says (TCP, then implicit TLS or STARTTLS), reads
    /// the greeting and sends EHLO (again after STARTTLS). Fails, before any
    /// command past EHLO is sent, if STARTTLS is asked for and missing,
    /// refused, or followed by injected data.
    pub fn connect(config: &SmtpConfig) -> Result<Self, SmtpError> {
        let timeouts = config.timeouts;
        // Checks the EHLO name before connecting.
        let core = Core::new(config)?;
        let tcp = connect_tcp(&config.host, config.port(), timeouts.connect)?;
        // A server that stops reading cannot block a write for longer.
        tcp.set_write_timeout(Some(core.write_timeout()))?;
        let stream = secure_blocking(
            tcp,
            config.security,
            &config.host,
            || config.tls_config(),
            timeouts.tls_handshake,
        )?;
        let mut client = Self { stream, core };
        let event = client.next_event("the greeting")?;
        client.core.ready(event)?;
        if config.security == Security::StartTls {
            client.starttls()?;
        }
        Ok(client)
    }

    /// STARTTLS, the handshake, and EHLO again.
    fn starttls(&mut self) -> Result<(), SmtpError> {
        self.core.start_starttls()?;
        let event = self.next_event("the answer to STARTTLS")?;
        self.core.starttls_answered(event)?;
        let tcp = match std::mem::replace(&mut self.stream, Connection::Detached) {
            Connection::Plain(tcp) => tcp,
            other => {
                self.stream = other;
                return Err(Error::already_tls().into());
            }
        };
        let config = &self.core.config;
        let tls = config.tls_config()?;
        let stream = tls_connect_blocking(tcp, &config.host, tls, config.timeouts.tls_handshake)?;
        self.stream = Connection::Tls(Box::new(stream));
        self.core.tls_established()?;
        let event = self.next_event("the answer to EHLO")?;
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

    /// Logs in with the method the settings ask for: `Auto` takes SASL PLAIN,
    /// then LOGIN, among those the server offers. Credentials go only over
    /// TLS unless plaintext is allowed (CRAM-MD5 needs no permission). A
    /// refused login leaves the client usable.
    pub fn login(&mut self, credentials: &Credentials) -> Result<(), SmtpError> {
        self.core.start_login(credentials)?;
        let event = self.next_event("the answer to AUTH")?;
        self.core.login_answered(event)
    }

    /// Sends one message read from `message` (any reader, streamed in 64 KiB
    /// pieces: dot-stuffed, line endings made CRLF) from `from` to `to`.
    /// Some recipients may be refused and the message still sent to the
    /// others: see [`Delivery::refused`](smtp_auth::Delivery::refused). Fails when every recipient is
    /// refused (kind recipient) or the message is refused.
    pub fn send<S: AsRef<str>>(
        &mut self,
        from: &str,
        to: &[S],
        message: impl Read,
    ) -> Result<SendReport, SmtpError> {
        let envelope = Envelope::new(from, to.iter().map(|t| t.as_ref().to_owned()));
        self.send_envelope(&envelope, message)
    }

    /// Like [`send`](Self::send), with a whole [`Envelope`]: a known size is
    /// checked against the server's SIZE before anything is sent, and
    /// declared; `eight_bit` asks for 8BITMIME.
    pub fn send_envelope(
        &mut self,
        envelope: &Envelope,
        mut message: impl Read,
    ) -> Result<SendReport, SmtpError> {
        let extra = self.core.start_send(envelope)?;
        let event = self.next_event_within("the answer to MAIL FROM, RCPT TO and DATA", extra)?;
        self.core.envelope_answered(event)?;
        let mut chunk = vec![0u8; CHUNK];
        let mut bytes: u64 = 0;
        loop {
            let n = match message.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Core::message_read_failed(&e)),
            };
            bytes += n as u64;
            self.core.data(&chunk[..n])?;
            if let Err(e) = self.write_output("the server to accept the message") {
                return Err(self.refusal_mid_message().unwrap_or(e));
            }
        }
        let extra = self.core.finish_data(bytes)?;
        let event = self.next_event_within("the answer to the message", extra)?;
        self.core.message_answered(event, bytes)
    }

    /// Sends QUIT and waits for its answer (or the server closing).
    pub fn quit(mut self) -> Result<(), SmtpError> {
        self.core.start_quit()?;
        let event = self.next_event("the answer to QUIT")?;
        self.core.quit_answered(event)
    }

    /// Checks settings and credentials without sending mail: connects,
    /// secures the connection, logs in and quits.
    pub fn verify(config: &SmtpConfig, credentials: &Credentials) -> Result<(), SmtpError> {
        let mut client = Self::connect(config)?;
        client.login(credentials)?;
        client.quit()
    }

    fn write_output(&mut self, what: &str) -> Result<(), SmtpError> {
        if self.core.output().is_empty() {
            return Ok(());
        }
        let written = self
            .stream
            .write_all(self.core.output())
            .and_then(|()| self.stream.flush());
        match written {
            Ok(()) => {
                self.core.output_written();
                Ok(())
            }
            Err(e) => Err(self.core.write_failed(e, what)),
        }
    }

    /// The server stopped taking the message (a write failed): a server
    /// that refuses a message part-way often says why before closing, so a
    /// reply already sent is read (briefly) and reported instead of the
    /// write's error.
    fn refusal_mid_message(&mut self) -> Option<SmtpError> {
        let mut search = self.core.refusal_search();
        let mut buf = [0u8; 4096];
        loop {
            match search.next(&self.core) {
                MidMessage::Refused(e) => return Some(e),
                MidMessage::GiveUp => return None,
                MidMessage::Read(left) => {
                    if self.stream.set_read_timeout(Some(left)).is_err() {
                        return None;
                    }
                }
            }
            match read_without_writing(&mut self.stream, &mut buf) {
                Ok(0) | Err(_) => return None,
                Ok(n) => search.received(&buf[..n]),
            }
        }
    }

    fn next_event(&mut self, what: &str) -> Result<Event, SmtpError> {
        self.next_event_within(what, Duration::ZERO)
    }

    /// Writes the output and reads until the session has an event, within
    /// the response timeout plus `extra`. An error marks the client unusable
    /// unless the session stayed usable.
    fn next_event_within(&mut self, what: &str, extra: Duration) -> Result<Event, SmtpError> {
        self.core.begin_wait(extra);
        let result = self.pump(what);
        self.core.end_wait(result)
    }

    fn pump(&mut self, what: &str) -> Result<Event, SmtpError> {
        let mut buf = vec![0u8; READ_BUFFER];
        loop {
            let event = self.core.advance()?;
            // Everything queued goes out before waiting for replies (and
            // with an event: QUIT after a failure, RSET).
            self.write_output("the server to accept our commands")?;
            if let Some(event) = event {
                return Ok(event);
            }
            let timeout = self.core.read_timeout(what)?;
            self.stream.set_read_timeout(Some(timeout))?;
            match self.stream.read(&mut buf) {
                Ok(0) => return self.core.eof(),
                Ok(n) => self.core.received(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // A TLS peer that vanishes without close_notify.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return self.core.eof(),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(self.core.timeout(what));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Reads after a failed write. rustls's stream would first try again to
/// write what it still holds (and fail the same way), so TLS records are
/// read and decrypted directly.
fn read_without_writing(stream: &mut Connection, buf: &mut [u8]) -> io::Result<usize> {
    let Connection::Tls(tls) = stream else {
        return stream.read(buf);
    };
    loop {
        match tls.conn.reader().read(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            other => return other,
        }
        if tls.conn.read_tls(&mut tls.sock)? == 0 {
            return Ok(0);
        }
        tls.conn.process_new_packets().map_err(io::Error::other)?;
    }
}
