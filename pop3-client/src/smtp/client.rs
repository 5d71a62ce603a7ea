//! The blocking SMTP driver: it writes the session's output, reads replies
//! within their deadlines, does the TLS handshakes, and streams messages.
//! Every protocol decision is in [`smtp_auth::SmtpSession`].

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use pop3_proto::sasl::SaslClient;
use smtp_auth::{Capabilities, Envelope, Event, SmtpSession};
use tracing::{debug, info_span, Span};

use super::{SendReport, SmtpConfig, SmtpError};
use crate::config::{AuthMethod, Credentials, Security};
use crate::error::Error;
use crate::transport::{connect_tcp, tls_connect_blocking, Connection, ReadTimeout};

/// Size of the pieces a message is read and sent in.
const CHUNK: usize = 64 * 1024;

/// A blocking SMTP submission client over a [`Connection`].
///
/// After an error from a reply that was not read in full (a timeout, a cut
/// connection, a protocol violation) the client is out of step with the
/// server, and every later call fails with a `Client(Unusable)` error:
/// connect again. A refusal (wrong password, a refused message) leaves it
/// usable.
pub struct SmtpClient {
    stream: Connection,
    session: SmtpSession,
    config: SmtpConfig,
    /// Bytes read and not yet used by the session.
    input: Vec<u8>,
    /// The current reply's deadline.
    deadline: Option<Instant>,
    /// How long the current deadline was set for (for the message).
    allowed: Duration,
    broken: bool,
    span: Span,
}

impl std::fmt::Debug for SmtpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpClient")
            .field("host", &self.config.host)
            .field("session", &self.session)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

impl SmtpClient {
    /// Connects as `config` says (TCP, then implicit TLS or STARTTLS), reads
    /// the greeting and sends EHLO (again after STARTTLS). Fails, before any
    /// command past EHLO is sent, if STARTTLS is asked for and missing,
    /// refused, or followed by injected data.
    pub fn connect(config: &SmtpConfig) -> Result<Self, SmtpError> {
        let timeouts = config.timeouts;
        let session_config = smtp_auth::Config {
            client_name: config.ehlo_name.clone(),
        };
        // Check the EHLO name before connecting.
        let session = match config.security {
            Security::Tls => SmtpSession::new_tls(session_config)?,
            Security::StartTls | Security::Plain => SmtpSession::new(session_config)?,
        };
        let tcp = connect_tcp(&config.host, config.port(), timeouts.connect)?;
        // A server that stops reading cannot block a write for longer.
        tcp.set_write_timeout(Some(timeouts.response))?;
        let stream = match config.security {
            Security::Tls => {
                let tls = config.tls_config()?;
                let stream = tls_connect_blocking(tcp, &config.host, tls, timeouts.tls_handshake)?;
                Connection::Tls(Box::new(stream))
            }
            Security::StartTls | Security::Plain => Connection::Plain(tcp),
        };
        let span = info_span!("smtp", host = %config.host, port = config.port());
        let mut client = Self {
            stream,
            session,
            config: config.clone(),
            input: Vec::new(),
            deadline: None,
            allowed: timeouts.response,
            broken: false,
            span,
        };
        client.expect_ready("the greeting")?;
        if config.security == Security::StartTls {
            client.starttls()?;
        }
        Ok(client)
    }

    /// STARTTLS, the handshake, and EHLO again.
    fn starttls(&mut self) -> Result<(), SmtpError> {
        self.session.starttls()?;
        match self.next_event("the answer to STARTTLS")? {
            Event::StartTls => {}
            other => return Err(self.unexpected(other)),
        }
        // The session refused any byte that came with or after the 220; a
        // byte arriving later is read by the handshake as TLS and fails it.
        if !self.input.is_empty() {
            self.broken = true;
            let input = std::mem::take(&mut self.input);
            self.session.advance(&input)?;
            return Err(Error::Config("data after STARTTLS's answer".into()).into());
        }
        let tcp = match std::mem::replace(&mut self.stream, Connection::Detached) {
            Connection::Plain(tcp) => tcp,
            other => {
                self.stream = other;
                return Err(
                    Error::Config("STARTTLS on a connection that is already TLS".into()).into(),
                );
            }
        };
        self.broken = true;
        let tls = self.config.tls_config()?;
        let stream = tls_connect_blocking(
            tcp,
            &self.config.host,
            tls,
            self.config.timeouts.tls_handshake,
        )?;
        self.stream = Connection::Tls(Box::new(stream));
        self.broken = false;
        self.session.tls_established()?;
        self.expect_ready("the answer to EHLO")
    }

    fn expect_ready(&mut self, what: &str) -> Result<(), SmtpError> {
        match self.next_event(what)? {
            Event::Ready => Ok(()),
            other => Err(self.unexpected(other)),
        }
    }

    /// An event the session should not have produced here: the client
    /// cannot go on.
    fn unexpected(&mut self, event: Event) -> SmtpError {
        self.broken = true;
        match event {
            Event::Failed(e) => e.into(),
            Event::Closed => smtp_auth::Error::Disconnected.into(),
            other => Error::Config(format!("unexpected SMTP event {other:?}")).into(),
        }
    }

    /// What EHLO offered (after STARTTLS, the second EHLO's answer).
    pub fn capabilities(&self) -> Option<&Capabilities> {
        self.session.capabilities()
    }

    /// Whether the connection is encrypted.
    pub fn is_tls(&self) -> bool {
        self.session.is_tls()
    }

    /// Logs in with the method the settings ask for: `Auto` takes SASL PLAIN,
    /// then LOGIN, among those the server offers. Credentials go only over
    /// TLS unless plaintext is allowed (CRAM-MD5 needs no permission). A
    /// refused login leaves the client usable.
    pub fn login(&mut self, credentials: &Credentials) -> Result<(), SmtpError> {
        self.check_usable()?;
        let method = self.config.auth;
        if !self.session.is_tls() && !self.config.allow_plaintext_auth && !method.hides_secret() {
            return Err(Error::Config(
                "refusing to send the password over a connection without TLS; use implicit TLS or STARTTLS, or explicitly allow plaintext authentication".into(),
            )
            .into());
        }
        let sasl = self.choose_sasl(credentials)?;
        debug!(parent: &self.span, mechanism = sasl.mechanism().name(), "AUTH");
        self.session.authenticate(sasl)?;
        match self.next_event("the answer to AUTH")? {
            Event::Authenticated => Ok(()),
            Event::Failed(e) => Err(e.into()),
            other => Err(self.unexpected(other)),
        }
    }

    fn choose_sasl(&self, credentials: &Credentials) -> Result<SaslClient, SmtpError> {
        let user = credentials.user.as_str();
        let secret = credentials.secret.expose();
        let sasl_error = |e: pop3_proto::SaslError| Error::Config(e.to_string());
        let offered: Vec<String> = self
            .session
            .capabilities()
            .map(|c| c.auth.clone())
            .unwrap_or_default();
        let offers = |name: &str| offered.iter().any(|m| m == name);
        Ok(match self.config.auth {
            AuthMethod::Auto if offers("PLAIN") => {
                SaslClient::plain(user, secret).map_err(sasl_error)?
            }
            AuthMethod::Auto if offers("LOGIN") => SaslClient::login(user, secret),
            AuthMethod::Auto => {
                return Err(Error::NoLoginMethod {
                    reason: format!(
                        "the server offers neither AUTH PLAIN nor AUTH LOGIN (it offers: {})",
                        if offered.is_empty() {
                            "no AUTH at all".to_owned()
                        } else {
                            offered.join(" ")
                        }
                    ),
                }
                .into())
            }
            AuthMethod::Plain => SaslClient::plain(user, secret).map_err(sasl_error)?,
            AuthMethod::Login => SaslClient::login(user, secret),
            AuthMethod::CramMd5 => SaslClient::cram_md5(user, secret),
            AuthMethod::XOAuth2 => SaslClient::xoauth2(user, secret).map_err(sasl_error)?,
            AuthMethod::OAuthBearer => SaslClient::oauthbearer(
                user,
                secret,
                Some((&self.config.host, self.config.port())),
            )
            .map_err(sasl_error)?,
            AuthMethod::User | AuthMethod::Apop => {
                return Err(Error::Config(
                    "USER/PASS and APOP are POP3 login methods; SMTP logs in with SASL (auto, plain, login, cram-md5, xoauth2, oauthbearer)".into(),
                )
                .into())
            }
        })
    }

    /// Sends one message read from `message` (any reader, streamed in 64 KiB
    /// pieces: dot-stuffed, line endings made CRLF) from `from` to `to`.
    /// Some recipients may be refused and the message still sent to the
    /// others: see [`SendReport::refused`]. Fails when every recipient is
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
        self.check_usable()?;
        self.session.send_mail(envelope)?;
        // MAIL, each RCPT and DATA: each reply gets its own allowance, even
        // when they are awaited together (pipelined).
        let replies = u32::try_from(envelope.to.len()).unwrap_or(u32::MAX);
        let extra = self.config.timeouts.response.saturating_mul(replies);
        match self.next_event_within("the answer to MAIL FROM, RCPT TO and DATA", extra)? {
            Event::SendData => {}
            Event::Failed(e) => return Err(e.into()),
            other => return Err(self.unexpected(other)),
        }
        // From here until the final reply, an error leaves the server in
        // the middle of the message.
        self.broken = true;
        let mut chunk = vec![0u8; CHUNK];
        let mut bytes: u64 = 0;
        loop {
            let n = match message.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(Error::Io(io::Error::new(
                        e.kind(),
                        format!("reading the message to send: {e}"),
                    ))
                    .into())
                }
            };
            bytes += n as u64;
            self.session.write_data(&chunk[..n])?;
            if let Err(e) = self.write_output("the server to accept the message") {
                return Err(self.refusal_mid_message().unwrap_or(e));
            }
        }
        self.session.finish_data()?;
        // The reply to a large message may take longer: it earns time at
        // the minimum rate.
        let rate = self.config.timeouts.min_body_rate.max(1) as f64;
        let extra = Duration::from_secs_f64(bytes as f64 / rate);
        self.broken = false;
        match self.next_event_within("the answer to the message", extra)? {
            Event::Sent(delivery) => Ok(SendReport {
                recipients: delivery.recipients,
                code: delivery.code,
                text: delivery.text,
                bytes,
            }),
            Event::Failed(e) => Err(e.into()),
            other => Err(self.unexpected(other)),
        }
    }

    /// Sends QUIT and waits for its answer (or the server closing).
    pub fn quit(mut self) -> Result<(), SmtpError> {
        self.check_usable()?;
        self.session.quit()?;
        match self.next_event("the answer to QUIT")? {
            Event::Closed => Ok(()),
            other => Err(self.unexpected(other)),
        }
    }

    /// Checks settings and credentials without sending mail: connects,
    /// secures the connection, logs in and quits.
    pub fn verify(config: &SmtpConfig, credentials: &Credentials) -> Result<(), SmtpError> {
        let mut client = Self::connect(config)?;
        client.login(credentials)?;
        client.quit()
    }

    fn check_usable(&self) -> Result<(), SmtpError> {
        if self.broken {
            return Err(Error::Unusable {
                reason: "an earlier operation stopped part-way through an exchange with the SMTP server (its error was returned then)",
            }
            .into());
        }
        Ok(())
    }

    fn write_output(&mut self, what: &str) -> Result<(), SmtpError> {
        if self.session.output().is_empty() {
            return Ok(());
        }
        let written = self
            .stream
            .write_all(self.session.output())
            .and_then(|()| self.stream.flush());
        match written {
            Ok(()) => {
                self.session.clear_output();
                Ok(())
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Err(Error::Timeout {
                    what: what.to_owned(),
                    after: self.config.timeouts.response,
                }
                .into())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The server stopped taking the message (a write failed): a server
    /// that refuses a message part-way often says why before closing, so a
    /// reply already sent is read (briefly) and reported instead of the
    /// write's error.
    fn refusal_mid_message(&mut self) -> Option<SmtpError> {
        let mut parser = smtp_auth::ReplyParser::new();
        let mut input = std::mem::take(&mut self.input);
        let mut buf = [0u8; 4096];
        let until = Instant::now() + Duration::from_secs(2).min(self.config.timeouts.response);
        loop {
            match parser.parse(&input) {
                Ok((_, Some(reply))) if reply.code() >= 400 => {
                    let limit = self.session.capabilities().and_then(|c| c.size_limit);
                    let refusal =
                        smtp_auth::Refusal::classify(smtp_auth::Step::Message, &reply, limit);
                    return Some(smtp_auth::Error::Refused(refusal).into());
                }
                Ok((used, None)) => {
                    input.drain(..used);
                }
                _ => return None,
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() || self.stream.set_read_timeout(Some(left)).is_err() {
                return None;
            }
            match read_without_writing(&mut self.stream, &mut buf) {
                Ok(0) | Err(_) => return None,
                Ok(n) => input.extend_from_slice(&buf[..n]),
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
        self.allowed = self.config.timeouts.response + extra;
        self.deadline = Some(Instant::now() + self.allowed);
        let result = self.pump(what);
        self.deadline = None;
        if result.is_err() {
            self.broken = true;
        }
        result
    }

    fn pump(&mut self, what: &str) -> Result<Event, SmtpError> {
        let span = self.span.clone();
        let _entered = span.enter();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let (used, event) = self.session.advance(&self.input)?;
            self.input.drain(..used);
            match event {
                Event::NeedInput => {}
                Event::Ready => {
                    debug!("ready");
                    return Ok(Event::Ready);
                }
                other => {
                    debug!(event = ?other, "event");
                    // Output queued by the session (QUIT after a failure, RSET)
                    // goes out now.
                    self.write_output("the server to accept our commands")?;
                    return Ok(other);
                }
            }
            // Everything queued goes out before waiting for replies.
            self.write_output("the server to accept our commands")?;
            let timeout = self.read_timeout(what)?;
            self.stream.set_read_timeout(Some(timeout))?;
            match self.stream.read(&mut buf) {
                Ok(0) => return self.eof(),
                Ok(n) => self.input.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // A TLS peer that vanishes without close_notify.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return self.eof(),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(self.timeout(what));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn eof(&mut self) -> Result<Event, SmtpError> {
        self.session.handle_eof()?;
        Ok(Event::Closed)
    }

    fn read_timeout(&self, what: &str) -> Result<Duration, SmtpError> {
        let idle = self.config.timeouts.idle;
        let Some(deadline) = self.deadline else {
            return Ok(idle);
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(self.timeout(what));
        }
        Ok(left.min(idle))
    }

    fn timeout(&self, what: &str) -> SmtpError {
        // Before the deadline, it was the idle limit that passed.
        let idle = self.deadline.is_some_and(|d| Instant::now() < d);
        Error::Timeout {
            what: what.to_owned(),
            after: if idle {
                self.config.timeouts.idle
            } else {
                self.allowed
            },
        }
        .into()
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
