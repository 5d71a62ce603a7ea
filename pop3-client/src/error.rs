//! Errors an application can act on: each variant is a different thing to
//! tell the user or to do next, and [`Error::kind`] names it for scripts.

use std::io;
use std::time::Duration;

use pop3_proto::escape::snippet;
use pop3_proto::{CommandKind, EncodeError, RespCode, RespCodeKind, SaslError, SessionError};
use thiserror::Error;

use crate::endpoint::protocol::Protocol;
use crate::endpoint::security::Security;
use crate::endpoint::setting_error::SettingError;
use crate::endpoint::tls_failure::{TlsFailure, TlsReason};

/// The failure classes of both protocols, as short stable names (`fetch`
/// and `send` print them): one vocabulary for POP3 and SMTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Could not reach the server.
    Connect,
    /// TLS could not be set up (certificate, handshake, STLS missing).
    Tls,
    /// The server refused the credentials.
    Auth,
    /// No login method both offered by the server and allowed by the
    /// settings (not a wrong password: the settings or the server must change).
    AuthMethod,
    /// The mailbox is locked by another session.
    InUse,
    /// Logging in again too soon.
    LoginDelay,
    /// The server failed a command.
    Server,
    /// The server broke the protocol.
    Protocol,
    /// The server did not answer in time.
    Timeout,
    /// The connection was cut in the middle of an answer (transient).
    ConnectionLost,
    /// Local or network I/O failed.
    Io,
    /// The settings are invalid or unsafe.
    Config,
    /// The connection cannot be used any more (an earlier operation failed
    /// part-way, or the session ended): connect again.
    Unusable,
    /// The server asks for an app-specific password (or a sign-in through
    /// the provider's web page) instead of the account's password (SMTP).
    AppPassword,
    /// The message is bigger than the server takes (SMTP).
    TooBig,
    /// A sending limit (rate or quota) was reached (SMTP).
    Limit,
    /// Recipients were refused (SMTP).
    Recipient,
    /// The local store (the sync state, the message store) failed: a full
    /// disk, a permission, a file in use.
    Storage,
}

impl ErrorKind {
    const ALL: [Self; 18] = [
        Self::Connect,
        Self::Tls,
        Self::Auth,
        Self::AuthMethod,
        Self::InUse,
        Self::LoginDelay,
        Self::Server,
        Self::Protocol,
        Self::Timeout,
        Self::ConnectionLost,
        Self::Io,
        Self::Config,
        Self::Unusable,
        Self::AppPassword,
        Self::TooBig,
        Self::Limit,
        Self::Recipient,
        Self::Storage,
    ];

    /// The kind named `name` ([`ErrorKind::as_str`]).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// The kind's stable name: connect, tls, auth, auth-method, in-use,
    /// login-delay, server, protocol, timeout, connection-lost, io, config,
    /// unusable, app-password, too-big, limit, recipient, storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Tls => "tls",
            Self::Auth => "auth",
            Self::AuthMethod => "auth-method",
            Self::InUse => "in-use",
            Self::LoginDelay => "login-delay",
            Self::Server => "server",
            Self::Protocol => "protocol",
            Self::Timeout => "timeout",
            Self::ConnectionLost => "connection-lost",
            Self::Io => "io",
            Self::Config => "config",
            Self::Unusable => "unusable",
            Self::AppPassword => "app-password",
            Self::TooBig => "too-big",
            Self::Limit => "limit",
            Self::Recipient => "recipient",
            Self::Storage => "storage",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A kind equals its stable name (`error.kind() == "auth"`).
impl PartialEq<&str> for ErrorKind {
    fn eq(&self, name: &&str) -> bool {
        self.as_str() == *name
    }
}

/// What suggested that the chosen security does not match what the port
/// speaks (see [`Error::SecurityMismatch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MismatchSign {
    /// Over plaintext, not one byte of the greeting arrived in time: the
    /// server may be waiting for a TLS handshake. (A slow but healthy server
    /// looks the same, so this is a guess.)
    Silence {
        /// The limit that passed.
        after: Duration,
    },
    /// Over plaintext, the server closed the connection before any byte of
    /// a greeting (a TLS server giving up on its handshake, or a server
    /// refusing the connection).
    ClosedBeforeGreeting,
    /// Over plaintext, a TLS record arrived where the greeting belongs.
    TlsRecord,
    /// The server answered the TLS handshake with bytes that are not TLS
    /// (typically a plaintext POP3 greeting).
    NotTls,
    /// The server closed the connection during the TLS handshake.
    ClosedDuringHandshake,
}

impl MismatchSign {
    fn observed(self, protocol: Protocol) -> String {
        match self {
            Self::Silence { after } => format!(
                "timed out after {after:?} waiting for the greeting, and not one byte of it arrived"
            ),
            Self::ClosedBeforeGreeting => {
                "the server closed the connection without sending a greeting (not one byte arrived)"
                    .into()
            }
            Self::TlsRecord => {
                format!(
                    "the server sent a TLS record where the {} greeting was expected",
                    protocol.name()
                )
            }
            Self::NotTls => "the server did not answer the TLS handshake in TLS".into(),
            Self::ClosedDuringHandshake => {
                "the server closed the connection during the TLS handshake".into()
            }
        }
    }
}

fn mismatch_text(
    sign: MismatchSign,
    tried: Security,
    suggested: Security,
    protocol: Protocol,
) -> String {
    let name = protocol.name();
    let tls_port = protocol.default_port(Security::Tls);
    let plain_port = protocol.default_port(Security::StartTls);
    let likely = match (suggested, sign) {
        (Security::Tls, MismatchSign::TlsRecord) => format!(
            "this port speaks TLS from the first byte (implicit TLS, usually port {tls_port}), not plaintext {name}"
        ),
        (Security::Tls, _) => format!(
            "the port may speak TLS from the first byte (implicit TLS, usually port {tls_port}) and be waiting for a TLS handshake, which {} does not start",
            security_words(tried)
        ),
        _ => format!(
            "the port may speak plaintext {name} (usually port {plain_port}, upgraded by STARTTLS) rather than implicit TLS"
        ),
    };
    format!(
        "{}: {likely}; try {} instead, or check the port",
        sign.observed(protocol),
        security_words(suggested)
    )
}

fn security_words(security: Security) -> &'static str {
    match security {
        Security::Tls => "implicit TLS",
        Security::StartTls => "STARTTLS",
        Security::Plain => "a plaintext connection",
    }
}

/// What went wrong, worded for the person who typed the settings.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// No address of the server accepted a connection.
    #[error("could not connect to {server}: {source}")]
    Connect {
        /// `host:port`.
        server: String,
        /// The last address's error.
        source: io::Error,
    },
    /// TLS failed: why, and the certificate the server presented when that
    /// is what was refused (its fingerprint lets a user pin it).
    #[error("secure connection to {host} failed: {failure}")]
    Tls {
        /// The host name checked.
        host: String,
        /// What was wrong.
        failure: TlsFailure,
    },
    /// The server rejected the credentials.
    #[error("the server rejected the login{}: \"{server_text}\". Check the user name and password; if two-factor authentication is on, use an app-specific password", code_suffix(.code))]
    Auth {
        /// The RFC 3206 code, when the server gave one (`[AUTH]`).
        code: Option<RespCode>,
        /// The server's words, escaped.
        server_text: String,
    },
    /// No login method both offered by the server and allowed by the settings.
    #[error("no usable login method: {reason}")]
    NoLoginMethod {
        /// Why (what was offered, what was allowed).
        reason: String,
    },
    /// The mailbox is in use by another session (`[IN-USE]`).
    #[error("the mailbox is in use by another session (\"{server_text}\"); close other mail programs reading it, or try again in a few minutes")]
    InUse {
        /// The server's words, escaped.
        server_text: String,
    },
    /// The server wants more time between logins (`[LOGIN-DELAY]`).
    #[error("the server asks to wait longer between logins (\"{server_text}\"){}", delay_hint(.seconds))]
    LoginDelay {
        /// The advertised LOGIN-DELAY, when known.
        seconds: Option<u32>,
        /// The server's words, escaped.
        server_text: String,
    },
    /// The server failed a command.
    #[error("the server could not {command}{}: \"{server_text}\"{}", code_suffix(.code), if *.temporary { "; this is temporary, try again later" } else { "" })]
    Server {
        /// The command, in words.
        command: &'static str,
        /// Whether the server said it is temporary (`[SYS/TEMP]`).
        temporary: bool,
        /// The response code, if any.
        code: Option<RespCode>,
        /// The server's words, escaped.
        server_text: String,
    },
    /// The server's LIST and UIDL answers disagree (a message listed twice,
    /// or in one and not the other): a sync would fetch a message twice or
    /// never, so it stops.
    #[error("the server's message listings disagree ({detail}); nothing was fetched in this session: try again later, and report it to the server's administrator if it persists")]
    ListingsDisagree {
        /// What disagrees.
        detail: String,
    },
    /// A LIST or UIDL answer held more entries than the configured cap.
    #[error("the server listed more than {limit} messages in one answer; it may be broken (raise ClientConfig::max_listing_entries if the mailbox really is that large)")]
    ListingTooLong {
        /// The cap ([`crate::config::ClientConfig::max_listing_entries`]).
        limit: usize,
    },
    /// The server broke the protocol (the offending bytes are shown escaped).
    #[error("the server broke the POP3 protocol: {0}")]
    Protocol(SessionError),
    /// The connection ended in the middle of an answer: a network cut or a
    /// server that went away. Nothing half-received is kept; try again.
    #[error("{0}; the connection was lost, try again")]
    ConnectionLost(SessionError),
    /// An argument the caller gave cannot be sent (CR, LF or NUL in a user
    /// name or password, an empty one, message number 0): refused before a
    /// byte was written.
    #[error("{0}")]
    InvalidArgument(EncodeError),
    /// The chosen security does not seem to match what the port speaks:
    /// TLS asked of a plaintext port, or plaintext (STARTTLS or none) of an
    /// implicit-TLS port. [`Error::suggested_security`] gives the mode to try.
    #[error("{}", mismatch_text(*.sign, *.tried, *.suggested, *.protocol))]
    SecurityMismatch {
        /// What was seen.
        sign: MismatchSign,
        /// The security that was tried.
        tried: Security,
        /// The security the port seems to expect.
        suggested: Security,
        /// The protocol spoken (its usual ports are named).
        protocol: Protocol,
    },
    /// The server did not answer in time.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// The limit that passed.
        after: Duration,
    },
    /// I/O failed.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// The local store failed (the sync state, the message store): the
    /// source says how. Transient only when the store said so (a file in
    /// use by another sync, an interrupted or timed-out write); a full disk
    /// or a permission needs someone to act.
    #[error("{what}: {source}")]
    Storage {
        /// What could not be done, in words.
        what: String,
        /// The store's error.
        source: io::Error,
    },
    /// A setting cannot work or would be unsafe: which one, and why.
    #[error("{setting}: {problem}")]
    InvalidSetting {
        /// The setting, by its name in the settings (`port`,
        /// `timeouts.idle`, `roots`) or on the command line.
        setting: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The password would go over a connection without TLS, and the
    /// settings do not allow it.
    #[error("refusing to send the password over a connection without TLS; use implicit TLS or STARTTLS, or explicitly allow plaintext authentication")]
    PlaintextRefused,
    /// The server lacks what the settings need (UIDL for a sync that
    /// keeps mail): the settings must change to work with it.
    #[error("{host} does not support {detail}")]
    Unsupported {
        /// The server.
        host: String,
        /// What it lacks, and what to change.
        detail: String,
    },
    /// A TLS upgrade (STLS, STARTTLS) was asked for on a connection that
    /// is already TLS: the caller's mistake.
    #[error("a TLS upgrade (STLS or STARTTLS) was asked for on a connection that is already TLS")]
    AlreadyTls,
    /// The credentials cannot be put in the chosen SASL mechanism (a user
    /// name or token it cannot carry).
    #[error("the credentials cannot be sent with this login method: {0}")]
    Sasl(SaslError),
    /// The server answered `+OK` without what the answer must carry (a
    /// STAT without its counts, an empty `LIST n`): the server's fault.
    #[error("the server's answer to {command} {problem}")]
    MalformedAnswer {
        /// The command.
        command: &'static str,
        /// What was missing.
        problem: &'static str,
    },
    /// The connection cannot be used any more. Answers are read in order,
    /// so once one was abandoned part-way (its error was returned then), the
    /// next bytes would be misread as the answer to the next command; this
    /// refuses instead. Connecting again is the cure.
    #[error("this connection can no longer be used: {reason}; connect again")]
    Unusable {
        /// Why, in words.
        reason: &'static str,
    },
}

fn code_suffix(code: &Option<RespCode>) -> String {
    code.as_ref().map(|c| format!(" {c}")).unwrap_or_default()
}

fn delay_hint(seconds: &Option<u32>) -> String {
    match seconds {
        Some(s) => format!("; wait at least {s} seconds before the next login"),
        None => "; try again later".to_owned(),
    }
}

impl Error {
    /// The failure class.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Connect { .. } => ErrorKind::Connect,
            Self::Tls { .. } => ErrorKind::Tls,
            Self::Auth { .. } => ErrorKind::Auth,
            Self::NoLoginMethod { .. } => ErrorKind::AuthMethod,
            Self::ConnectionLost(_) => ErrorKind::ConnectionLost,
            Self::InUse { .. } => ErrorKind::InUse,
            Self::LoginDelay { .. } => ErrorKind::LoginDelay,
            Self::Server { .. } => ErrorKind::Server,
            Self::InvalidArgument(_)
            | Self::InvalidSetting { .. }
            | Self::PlaintextRefused
            | Self::AlreadyTls
            | Self::Unsupported { .. }
            | Self::Sasl(_) => ErrorKind::Config,
            Self::Protocol(_)
            | Self::ListingTooLong { .. }
            | Self::ListingsDisagree { .. }
            | Self::MalformedAnswer { .. } => ErrorKind::Protocol,
            Self::Timeout { .. } => ErrorKind::Timeout,
            Self::Io(_) => ErrorKind::Io,
            Self::Storage { .. } => ErrorKind::Storage,
            Self::Unusable { .. } => ErrorKind::Unusable,
            Self::SecurityMismatch { sign, .. } => match sign {
                MismatchSign::Silence { .. } => ErrorKind::Timeout,
                MismatchSign::ClosedBeforeGreeting => ErrorKind::Connect,
                _ => ErrorKind::Tls,
            },
        }
    }

    /// For [`Error::SecurityMismatch`], the security the port seems to
    /// expect (`fetch` names it as `--security ...`).
    pub fn suggested_security(&self) -> Option<Security> {
        match self {
            Self::SecurityMismatch { suggested, .. } => Some(*suggested),
            _ => None,
        }
    }

    /// Whether trying again later may succeed (temporary server trouble,
    /// lock, login delay, timeouts, network).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Server { temporary, .. } => *temporary,
            Self::Storage { source, .. } => matches!(
                source.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
            ),
            Self::InUse { .. }
            | Self::LoginDelay { .. }
            | Self::Timeout { .. }
            | Self::Connect { .. }
            | Self::Unusable { .. }
            | Self::ConnectionLost(_)
            | Self::Io(_) => true,
            // Silence and a closed connection may be a slow or busy server.
            Self::SecurityMismatch { sign, .. } => matches!(
                sign,
                MismatchSign::Silence { .. } | MismatchSign::ClosedBeforeGreeting
            ),
            _ => false,
        }
    }

    /// How long to wait before trying again, when the server said
    /// (`[LOGIN-DELAY]` with the advertised delay); `None` when it did not.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::LoginDelay {
                seconds: Some(s), ..
            } => Some(Duration::from_secs(u64::from(*s))),
            _ => None,
        }
    }

    /// Whether the server said the login needs an app-specific password (or
    /// a login through the provider's web page first), as Gmail, Yahoo and
    /// Outlook do when two-factor authentication is on.
    pub fn needs_app_password(&self) -> bool {
        let Self::Auth { server_text, .. } = self else {
            return false;
        };
        let text = server_text.to_ascii_lowercase();
        [
            "application-specific password",
            "app password",
            "app-specific password",
            "application specific password",
            "web login",
            "webloginrequired",
            "sign in via your web browser",
        ]
        .iter()
        .any(|hint| text.contains(hint))
    }

    /// Whether the server refused the credentials (kind `auth`): a wrong
    /// or changed password, or an app-specific password needed. Retrying
    /// with the same credentials will not help; an application stops
    /// retrieving for this account until the user updates them. (No
    /// usable login method, [`ErrorKind::AuthMethod`], is a settings
    /// problem, not this.)
    pub fn is_auth_failure(&self) -> bool {
        matches!(self, Self::Auth { .. })
    }

    /// A setting that cannot work, named, and why.
    pub fn invalid_setting(setting: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::InvalidSetting {
            setting: setting.into(),
            problem: problem.into(),
        }
    }

    /// The same error, worded for `protocol` (its usual ports in a
    /// security mismatch).
    pub(crate) fn for_protocol(self, protocol: Protocol) -> Self {
        match self {
            Self::SecurityMismatch {
                sign,
                tried,
                suggested,
                ..
            } => Self::SecurityMismatch {
                sign,
                tried,
                suggested,
                protocol,
            },
            other => other,
        }
    }

    /// A TLS handshake after the server accepted STLS or STARTTLS that
    /// met no TLS is the server's fault, not a port mismatch: no other
    /// security is suggested.
    pub(crate) fn after_upgrade(self, host: &str, protocol: Protocol) -> Self {
        match self {
            Self::SecurityMismatch { sign, .. } => Self::Tls {
                host: host.to_owned(),
                failure: TlsReason::Other(format!(
                    "the server accepted {}, then {}",
                    protocol.starttls_command(),
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

    /// Maps a `-ERR` answer to the error the application acts on.
    pub(crate) fn from_reply(
        command: CommandKind,
        code: Option<RespCode>,
        text: &[u8],
        login_delay: Option<u32>,
    ) -> Self {
        let server_text = snippet(text);
        let is_login = matches!(
            command,
            CommandKind::User | CommandKind::Pass | CommandKind::Apop | CommandKind::Auth
        );
        match code.as_ref().map(RespCode::kind) {
            Some(RespCodeKind::InUse) => Self::InUse { server_text },
            Some(RespCodeKind::LoginDelay) => Self::LoginDelay {
                seconds: login_delay,
                server_text,
            },
            Some(RespCodeKind::Auth) => Self::Auth { code, server_text },
            Some(RespCodeKind::SysTemp) => Self::server(command, true, code, server_text),
            Some(RespCodeKind::SysPerm) => Self::server(command, false, code, server_text),
            _ if is_login => Self::Auth { code, server_text },
            _ => Self::server(command, false, code, server_text),
        }
    }

    fn server(
        command: CommandKind,
        temporary: bool,
        code: Option<RespCode>,
        server_text: String,
    ) -> Self {
        Self::Server {
            command: command_in_words(command),
            temporary,
            code,
            server_text,
        }
    }
}

impl From<SettingError> for Error {
    fn from(e: SettingError) -> Self {
        Self::InvalidSetting {
            setting: e.setting,
            problem: e.problem,
        }
    }
}

impl From<SessionError> for Error {
    fn from(e: SessionError) -> Self {
        match e {
            // The caller's argument, not the server's fault.
            SessionError::Encode(e) => Self::InvalidArgument(e),
            // A cut, after the greeting: the network or the server went
            // away; trying again is the cure.
            e @ (SessionError::UnexpectedEof { .. }
            | SessionError::NoAnswer { .. }
            | SessionError::Disconnected) => Self::ConnectionLost(e),
            e => Self::Protocol(e),
        }
    }
}

/// What a command does, for messages ("the server could not delete a message").
pub(crate) fn command_in_words(command: CommandKind) -> &'static str {
    match command {
        CommandKind::User | CommandKind::Pass | CommandKind::Apop | CommandKind::Auth => "log in",
        CommandKind::Stls => "start TLS (STLS)",
        CommandKind::Capa => "list its capabilities (CAPA)",
        CommandKind::Stat => "report the mailbox size (STAT)",
        CommandKind::List { .. } => "list messages (LIST)",
        CommandKind::Uidl { .. } => "list message IDs (UIDL)",
        CommandKind::Retr => "send a message (RETR)",
        CommandKind::Top => "send a message header (TOP)",
        CommandKind::Dele => "delete a message (DELE)",
        CommandKind::Rset => "undo deletions (RSET)",
        CommandKind::Noop => "answer NOOP",
        CommandKind::Quit => "commit deletions and log out (QUIT)",
        CommandKind::Utf8 => "enter UTF-8 mode",
        CommandKind::Lang { .. } => "change language (LANG)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_errors_suggest_app_passwords() {
        let e = Error::from_reply(
            CommandKind::Pass,
            Some(RespCode::new("AUTH")),
            b"Authentication failed.",
            None,
        );
        assert_eq!(e.kind(), ErrorKind::Auth);
        assert!(e.is_auth_failure() && !e.is_transient());
        let text = e.to_string();
        assert!(text.contains("app-specific password"), "{text}");
        assert!(text.contains("[AUTH]"), "{text}");
    }

    #[test]
    fn app_password_hints_and_retry_times_are_data() {
        let gmail = Error::from_reply(
            CommandKind::Pass,
            Some(RespCode::new("AUTH")),
            b"Application-specific password required: https://support.google.com/accounts/answer/185833",
            None,
        );
        assert!(gmail.needs_app_password());
        let plain = Error::from_reply(CommandKind::Pass, None, b"Login failed.", None);
        assert!(!plain.needs_app_password());
        let delay = Error::from_reply(
            CommandKind::Pass,
            Some(RespCode::new("LOGIN-DELAY")),
            b"wait",
            Some(300),
        );
        assert_eq!(delay.retry_after(), Some(Duration::from_secs(300)));
        assert_eq!(plain.retry_after(), None);
    }

    #[test]
    fn codes_map_to_kinds() {
        let kind = |code: &str| {
            Error::from_reply(CommandKind::Pass, Some(RespCode::new(code)), b"x", None).kind()
        };
        assert_eq!(kind("IN-USE"), ErrorKind::InUse);
        assert_eq!(kind("LOGIN-DELAY"), ErrorKind::LoginDelay);
        assert_eq!(kind("SYS/TEMP"), ErrorKind::Server);
        let e = Error::from_reply(
            CommandKind::Retr,
            Some(RespCode::new("SYS/TEMP")),
            b"x",
            None,
        );
        assert!(e.is_transient() && !e.is_auth_failure());
        assert!(e.to_string().contains("try again later"));
        let e = Error::from_reply(CommandKind::Dele, None, b"\x1b[31mevil", None);
        assert!(e.to_string().contains("\\x1b[31mevil"), "{e}");
    }
}
