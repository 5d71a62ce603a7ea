//! What each client operation sends and how its answers are read: shared by
//! the blocking and async clients, so neither holds protocol decisions.

use std::io;

use pop3_proto::sasl::SaslClient;
use pop3_proto::{
    apop_digest, check_line_safe, Capabilities, Capability, ClientSession, Command, Greeting,
    ListEntry, MsgNum, SessionError, Stat, Uid,
};

use crate::batch::{Answer, Batch, Cmd, ServerRefusal};
use crate::config::{AuthMethod, ClientConfig, Credentials, Security};
use crate::error::{Error, MismatchSign};
use crate::transport::TlsReason;

/// One message's unique-id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UidlItem {
    /// Its number in this session.
    pub msg: MsgNum,
    /// Its unique-id, stable across sessions.
    pub uid: Uid,
}

/// Receives the messages of a fetch, chunk by chunk, in bounded memory.
pub trait MessageSink {
    /// Message `index` of the batch (number `msg`) begins.
    fn begin(&mut self, index: usize, msg: MsgNum) -> io::Result<()> {
        let _ = (index, msg);
        Ok(())
    }
    /// More of message `index`: exactly the bytes the server sent, unstuffed.
    fn write(&mut self, index: usize, chunk: &[u8]) -> io::Result<()>;
    /// Message `index` is complete with `octets` bytes.
    fn end(&mut self, index: usize, octets: u64) -> io::Result<()> {
        let _ = (index, octets);
        Ok(())
    }
}

/// A sink for commands without bodies.
pub(crate) struct NoBody;

impl MessageSink for NoBody {
    fn write(&mut self, _: usize, _: &[u8]) -> io::Result<()> {
        Ok(())
    }
}

/// Streams one message into a `Write`.
pub(crate) struct WriteSink<'a, W: io::Write + ?Sized>(pub(crate) &'a mut W);

impl<W: io::Write + ?Sized> MessageSink for WriteSink<'_, W> {
    fn write(&mut self, _: usize, chunk: &[u8]) -> io::Result<()> {
        self.0.write_all(chunk)
    }
}

/// Collects messages into memory (the `Vec<u8>` conveniences).
#[derive(Default)]
pub(crate) struct VecSink(pub(crate) Vec<Vec<u8>>);

impl MessageSink for VecSink {
    fn begin(&mut self, index: usize, _: MsgNum) -> io::Result<()> {
        if self.0.len() <= index {
            self.0.resize(index + 1, Vec::new());
        }
        Ok(())
    }
    fn write(&mut self, index: usize, chunk: &[u8]) -> io::Result<()> {
        if let Some(buf) = self.0.get_mut(index) {
            buf.extend_from_slice(chunk);
        }
        Ok(())
    }
}

/// Pairs each fetch outcome with its collected body.
pub(crate) fn zip_bodies(
    outcomes: Vec<Result<u64, ServerRefusal>>,
    sink: VecSink,
) -> Vec<Result<Vec<u8>, ServerRefusal>> {
    let mut bodies = sink.0;
    bodies.resize(outcomes.len(), Vec::new());
    outcomes
        .into_iter()
        .zip(bodies)
        .map(|(outcome, body)| outcome.map(|_| body))
        .collect()
}

pub(crate) fn one(command: Command<'static>) -> Batch {
    Batch::strict(vec![Cmd::Plain(command)])
}

/// The single answer of a strict one-command batch.
pub(crate) fn only(batch: Batch) -> Answer {
    batch.into_answers().pop().unwrap_or_default()
}

pub(crate) fn stat_of(answer: Answer) -> Result<Stat, Error> {
    answer
        .stat
        .ok_or_else(|| Error::Config("STAT answered without its counts".into()))
}

pub(crate) fn listing_of(answer: Answer) -> Vec<ListEntry> {
    answer.listing
}

/// The one entry of a `LIST n` answer.
pub(crate) fn listing_one(answer: Answer) -> Result<ListEntry, Error> {
    answer
        .listing
        .into_iter()
        .next()
        .ok_or_else(|| Error::Config("empty LIST answer".into()))
}

/// The one entry of a `UIDL n` answer.
pub(crate) fn uid_one(answer: Answer) -> Result<UidlItem, Error> {
    uids_of(answer)
        .into_iter()
        .next()
        .ok_or_else(|| Error::Config("empty UIDL answer".into()))
}

pub(crate) fn uids_of(answer: Answer) -> Vec<UidlItem> {
    answer
        .uids
        .into_iter()
        .map(|(msg, uid)| UidlItem { msg, uid })
        .collect()
}

/// A batch fetching `msgs` (RETR each), pipelined when the server allows.
pub(crate) fn retr_many(msgs: &[MsgNum]) -> Batch {
    Batch::lenient(msgs.iter().map(|&m| Cmd::Plain(Command::Retr(m))).collect())
}

/// A batch fetching the header and the first `lines` body lines of `msgs`
/// (TOP), pipelined when allowed.
pub(crate) fn top_many(msgs: &[MsgNum], lines: u32) -> Batch {
    Batch::lenient(
        msgs.iter()
            .map(|&msg| Cmd::Plain(Command::Top { msg, lines }))
            .collect(),
    )
}

/// A batch fetching the headers of `msgs` (TOP n 0), pipelined when allowed.
pub(crate) fn headers_many(msgs: &[MsgNum]) -> Batch {
    top_many(msgs, 0)
}

/// Headers collected by a [`headers_many`] batch, as summaries.
pub(crate) fn summaries_of(
    outcomes: Vec<Result<u64, ServerRefusal>>,
    sink: VecSink,
) -> Vec<Result<crate::summary::MessageSummary, ServerRefusal>> {
    zip_bodies(outcomes, sink)
        .into_iter()
        .map(|o| o.map(|header| crate::summary::MessageSummary::parse(&header)))
        .collect()
}

/// A batch deleting `msgs`.
pub(crate) fn dele_many(msgs: &[MsgNum]) -> Batch {
    Batch::lenient(msgs.iter().map(|&m| Cmd::Plain(Command::Dele(m))).collect())
}

/// Per-command outcome of a lenient batch: bytes received, or the refusal.
pub(crate) fn outcomes(batch: Batch) -> Vec<Result<u64, ServerRefusal>> {
    batch
        .into_answers()
        .into_iter()
        .map(|a| match a.error {
            Some(refusal) => Err(refusal),
            None => Ok(a.octets),
        })
        .collect()
}

/// Whether a CAPA refusal means "old server without CAPA" (RFC 1939 only):
/// that is not an error, the capabilities are just unknown.
pub(crate) fn capa_unsupported(error: &Error) -> bool {
    matches!(error, Error::Server { .. } | Error::Auth { .. })
}

/// Whether to send `UTF8` now: the settings ask for it, the server
/// advertises it, and it is not on yet.
pub(crate) fn wants_utf8(config: &ClientConfig, session: &ClientSession) -> bool {
    config.utf8
        && !session.utf8_enabled()
        && session
            .capabilities()
            .iter()
            .any(|c| matches!(c, Capability::Utf8 { .. }))
}

/// Whether an error is the server's `-ERR` to the command (not a broken
/// connection): for UTF8, the session goes on without UTF-8 mode.
pub(crate) fn is_refusal(error: &Error) -> bool {
    matches!(error, Error::Server { .. } | Error::Auth { .. })
}

/// Names a likely security/port mismatch when the greeting did not come
/// over a plaintext connection: silence (`silent`: not one byte arrived
/// before the timeout), a close before any byte, or a TLS record.
pub(crate) fn greeting_failed(
    error: Error,
    silent: bool,
    config: &ClientConfig,
    is_tls: bool,
) -> Error {
    if is_tls {
        return error;
    }
    let sign = match &error {
        Error::Timeout { after, .. } if silent => MismatchSign::Silence { after: *after },
        Error::Protocol(SessionError::NoGreeting) => MismatchSign::ClosedBeforeGreeting,
        Error::Protocol(SessionError::TlsInsteadOfGreeting) => MismatchSign::TlsRecord,
        _ => return error,
    };
    let tried = match config.security {
        Security::Tls => Security::Plain,
        other => other,
    };
    Error::SecurityMismatch {
        sign,
        tried,
        suggested: Security::Tls,
    }
}

/// A TLS handshake after STLS's `+OK` that met no TLS is the server's
/// fault, not a port mismatch.
pub(crate) fn stls_handshake_failed(error: Error, host: &str) -> Error {
    match error {
        Error::SecurityMismatch { sign, .. } => Error::Tls {
            host: host.to_owned(),
            failure: TlsReason::Other(format!(
                "the server accepted STLS, then {}",
                match sign {
                    MismatchSign::ClosedDuringHandshake =>
                        "closed the connection during the TLS handshake",
                    _ => "did not speak TLS",
                }
            ))
            .into(),
        },
        other => other,
    }
}

/// Refuses to go on without TLS when STLS is unavailable: never fall back.
pub(crate) fn require_stls(caps: &Capabilities, host: &str) -> Result<(), Error> {
    if caps.stls() {
        return Ok(());
    }
    Err(Error::Tls {
        host: host.to_owned(),
        failure: TlsReason::StlsMissing.into(),
    })
}

/// A refused STLS is a TLS failure: the caller asked for TLS and gets none.
pub(crate) fn stls_refused(error: Error, host: &str) -> Error {
    match error {
        Error::Server { server_text, .. } | Error::Auth { server_text, .. } => Error::Tls {
            host: host.to_owned(),
            failure: TlsReason::StlsRefused(server_text).into(),
        },
        other => other,
    }
}

/// Chooses how to log in, and the commands that do it.
///
/// Secure first: credentials go in plaintext only when the caller allowed
/// it; APOP and CRAM-MD5 only when asked for; `Auto` takes SASL PLAIN, then
/// USER/PASS.
pub(crate) fn login_commands(
    config: &ClientConfig,
    credentials: &Credentials,
    caps: &Capabilities,
    greeting: &Greeting,
    is_tls: bool,
) -> Result<Vec<Cmd>, Error> {
    let method = config.auth;
    if !is_tls && !config.allow_plaintext_auth && !method.hides_secret() {
        return Err(Error::Config(
            "refusing to send the password over a connection without TLS; use implicit TLS or STARTTLS, or explicitly allow plaintext authentication".into(),
        ));
    }
    let user = credentials.user.as_str();
    let secret = credentials.secret.expose();
    // One rule for every method, checked before anything is sent: SASL
    // would carry CR or LF safely in base64, but the same credentials also
    // go out as USER/PASS, and no real user name or password holds them.
    let secret_name = match method {
        AuthMethod::XOAuth2 | AuthMethod::OAuthBearer => "access token",
        _ => "password",
    };
    check_line_safe("user name", user.as_bytes()).map_err(Error::InvalidArgument)?;
    check_line_safe(secret_name, secret.as_bytes()).map_err(Error::InvalidArgument)?;
    let sasl_error = |e: pop3_proto::SaslError| Error::Config(e.to_string());
    let offered = |name: &str| caps.is_empty() || caps.sasl(name);
    let no_method = |what: &str| {
        let offered = caps.sasl_mechanisms().join(" ");
        Error::NoLoginMethod {
            reason: format!(
                "{what} is not offered by the server (it offers SASL: {}{})",
                if offered.is_empty() { "none" } else { &offered },
                if caps.user() { ", and USER/PASS" } else { "" }
            ),
        }
    };
    let user_pass = || {
        vec![
            Cmd::User(user.to_owned()),
            Cmd::Pass(credentials.secret.clone()),
        ]
    };
    let sasl = |client: SaslClient| vec![Cmd::Auth(client)];
    Ok(match method {
        AuthMethod::Auto => {
            if !caps.is_empty() && caps.sasl("PLAIN") {
                sasl(SaslClient::plain(user, secret).map_err(sasl_error)?)
            } else if caps.is_empty() || caps.user() {
                user_pass()
            } else {
                return Err(no_method("neither SASL PLAIN nor USER/PASS"));
            }
        }
        AuthMethod::User => user_pass(),
        AuthMethod::Apop => {
            let Some(stamp) = &greeting.apop_timestamp else {
                return Err(no_method("APOP (its greeting carries no timestamp)"));
            };
            vec![Cmd::Apop {
                user: user.to_owned(),
                digest: apop_digest(stamp, secret),
            }]
        }
        AuthMethod::Plain if offered("PLAIN") => {
            sasl(SaslClient::plain(user, secret).map_err(sasl_error)?)
        }
        AuthMethod::Login if offered("LOGIN") => sasl(SaslClient::login(user, secret)),
        AuthMethod::CramMd5 if offered("CRAM-MD5") => sasl(SaslClient::cram_md5(user, secret)),
        AuthMethod::XOAuth2 if offered("XOAUTH2") => {
            sasl(SaslClient::xoauth2(user, secret).map_err(sasl_error)?)
        }
        AuthMethod::OAuthBearer if offered("OAUTHBEARER") => sasl(
            SaslClient::oauthbearer(user, secret, Some((&config.host, config.port())))
                .map_err(sasl_error)?,
        ),
        AuthMethod::Plain => return Err(no_method("SASL PLAIN")),
        AuthMethod::Login => return Err(no_method("SASL LOGIN")),
        AuthMethod::CramMd5 => return Err(no_method("SASL CRAM-MD5")),
        AuthMethod::XOAuth2 => return Err(no_method("SASL XOAUTH2")),
        AuthMethod::OAuthBearer => return Err(no_method("SASL OAUTHBEARER")),
    })
}
