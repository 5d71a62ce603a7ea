//! The SMTP engine: what the blocking and async drivers share, so that they cannot
//! disagree: the session and its read buffer, the deadline of the reply
//! being awaited (and the time the envelope and the message earn), the
//! login choice and the plaintext check, what each operation's events
//! mean, when the connection is out of step, and how a refusal sent in
//! the middle of a message is read. A driver only moves bytes: it writes
//! [`Engine::output`], reads within [`Engine::read_timeout`] and does the TLS
//! handshakes.

use std::io;
use std::time::{Duration, Instant};

use pop3_proto::sasl::SaslClient;
use smtp_auth::{Envelope, Event, ReplyParser, SmtpSession};
use tracing::{debug, info_span, Span};

use super::{SendReport, SmtpConfig, SmtpError};
use crate::config::{AuthMethod, Credentials};
use crate::endpoint::Security;
use crate::error::Error;

/// Size of the pieces a message is read and sent in.
pub(super) const CHUNK: usize = 64 * 1024;

/// Size of the buffer replies are read into.
pub(super) const READ_BUFFER: usize = 16 * 1024;

/// How long a refusal sent in the middle of a message is waited for after
/// a write failed (at most `Timeouts::response`).
const MID_MESSAGE_GRACE: Duration = Duration::from_secs(2);

/// The session, the unused input and the deadlines of one SMTP connection.
pub(super) struct Engine {
    pub(super) session: SmtpSession,
    pub(super) config: SmtpConfig,
    /// Bytes read and not yet used by the session.
    input: Vec<u8>,
    /// The current reply's deadline (`None`: no reply awaited, or no limit).
    deadline: Option<Instant>,
    /// How long the current deadline was set for.
    allowed: Duration,
    /// Out of step with the server: every later call fails.
    broken: bool,
    pub(super) span: Span,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpClient")
            .field("host", &self.config.host)
            .field("session", &self.session)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

/// Where the search for a refusal after a failed write stands.
pub(super) enum MidMessage {
    /// The server's refusal, to report instead of the write's error.
    Refused(SmtpError),
    /// Read more, within this long.
    Read(Duration),
    /// Nothing usable: report the write's error.
    GiveUp,
}

/// Looks for the reply a server sent before it stopped taking a message.
pub(super) struct RefusalSearch {
    parser: ReplyParser,
    input: Vec<u8>,
    until: Instant,
}

impl RefusalSearch {
    /// What to do with the bytes read so far.
    pub(super) fn next(&mut self, engine: &Engine, now: Instant) -> MidMessage {
        match self.parser.parse(&self.input) {
            Ok((_, Some(reply))) if reply.code() >= 400 => {
                let limit = engine.session.capabilities().and_then(|c| c.size_limit);
                let refusal = smtp_auth::Refusal::classify(smtp_auth::Step::Message, &reply, limit);
                return MidMessage::Refused(smtp_auth::Error::Refused(refusal).into());
            }
            Ok((used, None)) => {
                self.input.drain(..used);
            }
            _ => return MidMessage::GiveUp,
        }
        let left = self.until.saturating_duration_since(now);
        if left.is_zero() {
            MidMessage::GiveUp
        } else {
            MidMessage::Read(left)
        }
    }

    /// Bytes read from the server.
    pub(super) fn received(&mut self, bytes: &[u8]) {
        self.input.extend_from_slice(bytes);
    }
}

impl Engine {
    /// The session these settings ask for (its EHLO name checked before
    /// anything is connected).
    pub(super) fn new(config: &SmtpConfig) -> Result<Self, SmtpError> {
        let session_config = smtp_auth::Config {
            client_name: config.ehlo_name.clone(),
        };
        let session = match config.security {
            Security::Tls => SmtpSession::new_tls(session_config)?,
            Security::StartTls | Security::Plain => SmtpSession::new(session_config)?,
        };
        Ok(Self {
            session,
            config: config.clone(),
            input: Vec::new(),
            deadline: None,
            allowed: config.timeouts.response,
            broken: false,
            span: info_span!("smtp", host = %config.host, port = config.port()),
        })
    }

    /// Refuses a new exchange when an earlier one stopped part-way.
    pub(super) fn check_usable(&self) -> Result<(), SmtpError> {
        if self.broken {
            return Err(Error::Unusable {
                reason: "an earlier operation stopped part-way through an exchange with the SMTP server (its error was returned then)",
            }
            .into());
        }
        Ok(())
    }

    // ---- waiting for a reply ----

    /// A reply is awaited: it must arrive within `Timeouts::response` plus
    /// `extra`. A limit too large for the clock is no deadline.
    pub(super) fn begin_wait(&mut self, extra: Duration, now: Instant) {
        self.allowed = self.config.timeouts.response.saturating_add(extra);
        self.deadline = now.checked_add(self.allowed);
    }

    /// The wait is over; an error leaves the connection out of step.
    pub(super) fn end_wait(
        &mut self,
        result: Result<Event, SmtpError>,
    ) -> Result<Event, SmtpError> {
        self.deadline = None;
        if result.is_err() {
            self.broken = true;
        }
        result
    }

    /// Hands the buffered input to the session: `Some(event)`, or `None`
    /// when more input is needed. Write [`Engine::output`] either way.
    pub(super) fn advance(&mut self) -> Result<Option<Event>, SmtpError> {
        let _entered = self.span.enter();
        let (used, event) = self.session.advance(&self.input)?;
        self.input.drain(..used);
        match event {
            Event::NeedInput => Ok(None),
            other => {
                debug!(event = ?other, "event");
                Ok(Some(other))
            }
        }
    }

    /// What to write before waiting.
    pub(super) fn output(&self) -> &[u8] {
        self.session.output()
    }

    /// The output was written.
    pub(super) fn output_written(&mut self) {
        self.session.clear_output();
    }

    /// Bytes read from the server.
    pub(super) fn received(&mut self, bytes: &[u8]) {
        self.input.extend_from_slice(bytes);
    }

    /// The server closed the connection.
    pub(super) fn eof(&mut self) -> Result<Event, SmtpError> {
        self.session.handle_eof()?;
        Ok(Event::Closed)
    }

    /// How long the next read may wait: the time left before the deadline,
    /// at most `Timeouts::idle`; an error once the deadline has passed.
    pub(super) fn read_timeout(&self, what: &str, now: Instant) -> Result<Duration, SmtpError> {
        let idle = self.config.timeouts.idle;
        let Some(deadline) = self.deadline else {
            return Ok(idle);
        };
        let left = deadline.saturating_duration_since(now);
        if left.is_zero() {
            return Err(self.timeout(what, now));
        }
        Ok(left.min(idle))
    }

    /// How long a write may wait for the server to take the bytes.
    pub(super) fn write_timeout(&self) -> Duration {
        self.config.timeouts.response
    }

    /// The time ran out while waiting for `what`.
    pub(super) fn timeout(&self, what: &str, now: Instant) -> SmtpError {
        // Before the deadline, it was the idle limit that passed.
        let idle = self.deadline.is_some_and(|d| now < d);
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

    /// A write failed: a timeout is named as such.
    pub(super) fn write_failed(&self, e: io::Error, what: &str) -> SmtpError {
        if e.kind() == io::ErrorKind::TimedOut {
            return self.write_timed_out(what);
        }
        e.into()
    }

    /// A write did not finish within [`Engine::write_timeout`].
    fn write_timed_out(&self, what: &str) -> SmtpError {
        Error::Timeout {
            what: what.to_owned(),
            after: self.config.timeouts.response,
        }
        .into()
    }

    /// An event the session should not have produced here: the client
    /// cannot go on.
    pub(super) fn unexpected(&mut self, event: Event) -> SmtpError {
        self.broken = true;
        match event {
            Event::Failed(e) => e.into(),
            Event::Closed => smtp_auth::Error::Disconnected.into(),
            other => smtp_auth::Error::UnexpectedData {
                bytes: format!("{other:?}"),
            }
            .into(),
        }
    }

    /// The greeting or an EHLO was answered.
    pub(super) fn ready(&mut self, event: Event) -> Result<(), SmtpError> {
        match event {
            Event::Ready => Ok(()),
            other => Err(self.unexpected(other)),
        }
    }

    // ---- STARTTLS ----

    /// Sends STARTTLS (fails when it is not offered: no fallback).
    pub(super) fn start_starttls(&mut self) -> Result<(), SmtpError> {
        self.session.starttls()?;
        Ok(())
    }

    /// STARTTLS was answered: the handshake may begin. The session refused
    /// any byte that came with or after the 220; a byte arriving later is
    /// read by the handshake as TLS and fails it. Until
    /// [`Engine::tls_established`] the connection is out of step.
    pub(super) fn starttls_answered(&mut self, event: Event) -> Result<(), SmtpError> {
        match event {
            Event::StartTls => {}
            other => return Err(self.unexpected(other)),
        }
        self.broken = true;
        if !self.input.is_empty() {
            let input = std::mem::take(&mut self.input);
            self.session.advance(&input)?;
            return Err(smtp_auth::Error::StartTlsInjection {
                bytes: pop3_proto::escape::snippet(&input),
            }
            .into());
        }
        Ok(())
    }

    /// The handshake after STARTTLS succeeded: EHLO again (await it).
    pub(super) fn tls_established(&mut self) -> Result<(), SmtpError> {
        self.session.tls_established()?;
        self.broken = false;
        Ok(())
    }

    // ---- login ----

    /// Checks that credentials may go over this connection, chooses the
    /// SASL mechanism and sends AUTH (await the answer).
    pub(super) fn start_login(&mut self, credentials: &Credentials) -> Result<(), SmtpError> {
        self.check_usable()?;
        let method = self.config.auth;
        if !self.session.is_tls() && !self.config.allow_plaintext_auth && !method.hides_secret() {
            return Err(Error::PlaintextRefused.into());
        }
        let sasl = self.choose_sasl(credentials)?;
        debug!(parent: &self.span, mechanism = sasl.mechanism().name(), "AUTH");
        self.session.authenticate(sasl)?;
        Ok(())
    }

    /// AUTH was answered.
    pub(super) fn login_answered(&mut self, event: Event) -> Result<(), SmtpError> {
        match event {
            Event::Authenticated => Ok(()),
            Event::Failed(e) => Err(e.into()),
            other => Err(self.unexpected(other)),
        }
    }

    /// The login method: `Auto` takes PLAIN, then LOGIN, among those
    /// offered; otherwise the one asked for.
    fn choose_sasl(&self, credentials: &Credentials) -> Result<SaslClient, SmtpError> {
        let user = credentials.user.as_str();
        let secret = credentials.secret.expose();
        let sasl_error = Error::Sasl;
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
                return Err(Error::invalid_setting(
                    "auth",
                    "is a POP3 login method (USER/PASS or APOP); SMTP logs in with SASL (auto, plain, login, cram-md5, xoauth2, oauthbearer)",
                )
                .into())
            }
        })
    }

    // ---- a message ----

    /// Sends MAIL, the RCPTs and DATA; returns the extra time their replies
    /// earn (each its own allowance, even when pipelined).
    pub(super) fn start_send(&mut self, envelope: &Envelope) -> Result<Duration, SmtpError> {
        self.check_usable()?;
        self.session.send_mail(envelope)?;
        let replies = u32::try_from(envelope.to.len()).unwrap_or(u32::MAX);
        Ok(self.config.timeouts.response.saturating_mul(replies))
    }

    /// MAIL, RCPT and DATA were answered: the message may go. Until its
    /// reply is read, the connection is out of step.
    pub(super) fn envelope_answered(&mut self, event: Event) -> Result<(), SmtpError> {
        match event {
            Event::SendData => {
                self.broken = true;
                Ok(())
            }
            Event::Failed(e) => Err(e.into()),
            other => Err(self.unexpected(other)),
        }
    }

    /// A piece of the message (write [`Engine::output`] next).
    pub(super) fn data(&mut self, chunk: &[u8]) -> Result<(), SmtpError> {
        self.session.write_data(chunk)?;
        Ok(())
    }

    /// A read of the message failed.
    pub(super) fn message_read_failed(e: &io::Error) -> SmtpError {
        Error::Io(io::Error::new(
            e.kind(),
            format!("reading the message to send: {e}"),
        ))
        .into()
    }

    /// The message ended after `bytes` bytes: the final dot goes out, and
    /// the reply earns time for the message's size at
    /// `Timeouts::min_body_rate`.
    pub(super) fn finish_data(&mut self, bytes: u64) -> Result<Duration, SmtpError> {
        self.session.finish_data()?;
        self.broken = false;
        let rate = self.config.timeouts.min_body_rate.max(1) as f64;
        Ok(Duration::try_from_secs_f64(bytes as f64 / rate).unwrap_or(Duration::MAX))
    }

    /// The message was answered.
    pub(super) fn message_answered(
        &mut self,
        event: Event,
        bytes: u64,
    ) -> Result<SendReport, SmtpError> {
        match event {
            Event::Sent(delivery) => Ok(SendReport { delivery, bytes }),
            Event::Failed(e) => Err(e.into()),
            other => Err(self.unexpected(other)),
        }
    }

    /// A write of the message failed: look for the server's reason in what
    /// it sent (briefly) before reporting the write's error.
    pub(super) fn refusal_search(&mut self, now: Instant) -> RefusalSearch {
        let grace = MID_MESSAGE_GRACE.min(self.config.timeouts.response);
        RefusalSearch {
            parser: ReplyParser::new(),
            input: std::mem::take(&mut self.input),
            // At most two seconds: no overflow.
            until: now + grace,
        }
    }

    // ---- QUIT ----

    /// Sends QUIT (await the close).
    pub(super) fn start_quit(&mut self) -> Result<(), SmtpError> {
        self.check_usable()?;
        self.session.quit()?;
        Ok(())
    }

    /// QUIT was answered.
    pub(super) fn quit_answered(&mut self, event: Event) -> Result<(), SmtpError> {
        match event {
            Event::Closed => Ok(()),
            other => Err(self.unexpected(other)),
        }
    }
}
