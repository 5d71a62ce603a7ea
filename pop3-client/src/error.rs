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
    /// POP is switched off for the account in the provider's settings
    /// (Gmail: `[SYS/PERM] Your account is not enabled for POP access`).
    PopDisabled,
    /// The provider refuses passwords: sign in with OAuth2 (Microsoft), or
    /// the administrator must enable password logins (SMTP AUTH).
    OAuthRequired,
    /// The provider refused the OAuth2 refresh token (revoked, expired,
    /// the password changed): the user must sign in again.
    Reconsent,
    /// The OAuth2 token endpoint could not be used (unreachable, 5xx, 429,
    /// not JSON): transient.
    TokenEndpoint,
}

impl ErrorKind {
    const ALL: [Self; 22] = [
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
        Self::PopDisabled,
        Self::OAuthRequired,
        Self::Reconsent,
        Self::TokenEndpoint,
    ];

    /// The kind named `name` ([`ErrorKind::as_str`]).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// The kind's stable name: connect, tls, auth, auth-method, in-use,
    /// login-delay, server, protocol, timeout, connection-lost, io, config,
    /// unusable, app-password, too-big, limit, recipient, storage,
    /// pop-disabled, oauth-required, reconsent, token-endpoint.
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
            Self::PopDisabled => "pop-disabled",
            Self::OAuthRequired => "oauth-required",
            Self::Reconsent => "reconsent",
            Self::TokenEndpoint => "token-endpoint",
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

/// What the person at the screen can do about an error, as data an
/// application turns into its own words or a button
/// ([`Error::remedy`], `SmtpError::remedy`,
/// [`Account::remedy`](crate::account::Account::remedy)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Remedy {
    /// Check the user name and password (the server refused them).
    CheckPassword,
    /// Create an app-specific password (two-step verification is on) and
    /// use it instead of the account's password.
    CreateAppPassword,
    /// Enable POP in the provider's settings (it is switched off).
    EnablePop,
    /// Sign in with OAuth2: the provider refuses passwords.
    SignInWithOAuth2,
    /// Sign in again: the provider no longer accepts the sign-in kept for
    /// the account (revoked, expired, the password changed).
    SignInAgain,
    /// Ask the administrator to enable SMTP AUTH for the mailbox (or sign
    /// in with OAuth2).
    AskAdminToEnableSmtpAuth,
    /// Choose the provider's region: the account lives on one of these
    /// hosts, and the wrong one answers as if the password were wrong.
    ChooseRegion {
        /// The provider's hosts, one per region.
        hosts: &'static [&'static str],
    },
    /// Trust the server's certificate (pin this fingerprint, or give its
    /// authority as the CA file) once it is known to be the right one.
    TrustCertificate {
        /// Its SHA-256 fingerprint, as `--pin-sha256` takes it.
        fingerprint: String,
    },
    /// Wait before trying again: this many seconds when the server said.
    WaitUntil {
        /// Seconds to wait, when known.
        seconds: Option<u64>,
    },
    /// Use this security instead: the port speaks another.
    UseSecurity {
        /// The security the port seems to expect.
        security: Security,
    },
}

impl Remedy {
    /// A stable one-line text form, for a store to keep beside an error's
    /// kind (a mailbox's health in a database): `check-password`,
    /// `create-app-password`, `enable-pop`, `sign-in-with-oauth2`,
    /// `sign-in-again`, `ask-admin-to-enable-smtp-auth`, `choose-region
    /// HOST,HOST...`, `trust-certificate FINGERPRINT`, `wait-until [SECS]`,
    /// `use-security tls|starttls|plain`. [`Remedy::from_text`] reads it.
    pub fn to_text(&self) -> String {
        match self {
            Self::CheckPassword => "check-password".into(),
            Self::CreateAppPassword => "create-app-password".into(),
            Self::EnablePop => "enable-pop".into(),
            Self::SignInWithOAuth2 => "sign-in-with-oauth2".into(),
            Self::SignInAgain => "sign-in-again".into(),
            Self::AskAdminToEnableSmtpAuth => "ask-admin-to-enable-smtp-auth".into(),
            Self::ChooseRegion { hosts } => format!("choose-region {}", hosts.join(",")),
            Self::TrustCertificate { fingerprint } => format!("trust-certificate {fingerprint}"),
            Self::WaitUntil { seconds: None } => "wait-until".into(),
            Self::WaitUntil {
                seconds: Some(seconds),
            } => format!("wait-until {seconds}"),
            Self::UseSecurity { security } => format!("use-security {}", security.as_str()),
        }
    }

    /// Reads [`Remedy::to_text`]'s form; `None` for anything else (a form
    /// a later version wrote, a region list no preset has).
    pub fn from_text(text: &str) -> Option<Self> {
        let (name, argument) = match text.split_once(' ') {
            Some((name, argument)) => (name, Some(argument)),
            None => (text, None),
        };
        Some(match (name, argument) {
            ("check-password", None) => Self::CheckPassword,
            ("create-app-password", None) => Self::CreateAppPassword,
            ("enable-pop", None) => Self::EnablePop,
            ("sign-in-with-oauth2", None) => Self::SignInWithOAuth2,
            ("sign-in-again", None) => Self::SignInAgain,
            ("ask-admin-to-enable-smtp-auth", None) => Self::AskAdminToEnableSmtpAuth,
            ("choose-region", Some(hosts)) => Self::ChooseRegion {
                hosts: crate::account::Preset::regions_named(hosts)?,
            },
            ("trust-certificate", Some(fingerprint))
                if !fingerprint.is_empty() && !fingerprint.contains(char::is_whitespace) =>
            {
                Self::TrustCertificate {
                    fingerprint: fingerprint.to_owned(),
                }
            }
            ("wait-until", None) => Self::WaitUntil { seconds: None },
            // Digits only, no leading zero: one text per number.
            ("wait-until", Some(seconds))
                if seconds.bytes().all(|b| b.is_ascii_digit())
                    && (seconds == "0" || !seconds.starts_with('0')) =>
            {
                Self::WaitUntil {
                    seconds: Some(seconds.parse().ok()?),
                }
            }
            ("use-security", Some(name)) => Self::UseSecurity {
                security: Security::from_name(name)?,
            },
            _ => return None,
        })
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
    /// The provider refused the OAuth2 refresh token: the user must sign
    /// in again (this account alone pauses).
    #[error("the provider no longer accepts this account's sign-in ({code}: {description}); sign in again")]
    Reconsent {
        /// The account.
        account: String,
        /// The provider's error code (`invalid_grant`, `AADSTS50173`...).
        code: String,
        /// Its description, escaped.
        description: String,
    },
    /// The OAuth2 token endpoint could not be used now.
    #[error("the provider's token service failed ({detail}); trying again later")]
    TokenEndpoint {
        /// What happened.
        detail: String,
        /// How long it asked to wait, if it said.
        retry_after: Option<Duration>,
    },
    /// POP is switched off for the account in the provider's settings.
    #[error("the provider has POP access switched off for this account (\"{server_text}\"); enable POP in the account's settings on the provider's web site (Gmail: Settings > Forwarding and POP/IMAP > Enable POP)")]
    PopDisabled {
        /// The server's words, escaped.
        server_text: String,
    },
    /// The provider refuses passwords for this account: it must sign in
    /// with OAuth2 (or the administrator must enable password logins).
    #[error("the provider refuses passwords for this account{}; sign in with OAuth2 instead (Microsoft refuses passwords for POP, and by default for SMTP), or ask the administrator to enable SMTP AUTH for the mailbox", if .server_text.is_empty() { String::new() } else { format!(" (\"{}\")", .server_text) })]
    OAuthRequired {
        /// The server's words, escaped (empty when refused before
        /// connecting, from the provider's known rules).
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
            Self::PopDisabled { .. } => ErrorKind::PopDisabled,
            Self::Reconsent { .. } => ErrorKind::Reconsent,
            Self::TokenEndpoint { .. } => ErrorKind::TokenEndpoint,
            Self::OAuthRequired { .. } => ErrorKind::OAuthRequired,
            Self::Unusable { .. } => ErrorKind::Unusable,
            Self::SecurityMismatch { sign, .. } => match sign {
                MismatchSign::Silence { .. } => ErrorKind::Timeout,
                MismatchSign::ClosedBeforeGreeting => ErrorKind::Connect,
                _ => ErrorKind::Tls,
            },
        }
    }

    /// What the user can do about this error, as data; `None` when there
    /// is nothing better than trying again or reading the message.
    pub fn remedy(&self) -> Option<Remedy> {
        Some(match self {
            Self::Auth { .. } if self.needs_app_password() => Remedy::CreateAppPassword,
            Self::Auth { .. } => Remedy::CheckPassword,
            Self::PopDisabled { .. } => Remedy::EnablePop,
            Self::OAuthRequired { .. } => Remedy::SignInWithOAuth2,
            Self::Reconsent { .. } => Remedy::SignInAgain,
            Self::TokenEndpoint { retry_after, .. } => Remedy::WaitUntil {
                seconds: retry_after.map(|d| d.as_secs()),
            },
            Self::LoginDelay { seconds, .. } => Remedy::WaitUntil {
                seconds: seconds.map(u64::from),
            },
            Self::InUse { .. } => Remedy::WaitUntil { seconds: None },
            Self::Server {
                temporary: true, ..
            } => Remedy::WaitUntil { seconds: None },
            Self::Tls {
                failure:
                    TlsFailure {
                        certificate: Some(certificate),
                        ..
                    },
                ..
            } => Remedy::TrustCertificate {
                fingerprint: certificate.fingerprint(),
            },
            Self::SecurityMismatch { suggested, .. } => Remedy::UseSecurity {
                security: *suggested,
            },
            _ => return None,
        })
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
            | Self::TokenEndpoint { .. }
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
            Self::TokenEndpoint { retry_after, .. } => *retry_after,
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
        matches!(
            self,
            Self::Auth { .. } | Self::OAuthRequired { .. } | Self::Reconsent { .. }
        )
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
        // The answers that need a remedy rather than "wrong password".
        let lower = server_text.to_ascii_lowercase();
        if lower.contains("not enabled for pop") {
            return Self::PopDisabled { server_text };
        }
        if is_login
            && lower.contains("basic auth")
            && (lower.contains("disabled") || lower.contains("not supported"))
        {
            return Self::OAuthRequired { server_text };
        }
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

    /// The providers' real answers, and what each tells the user to do.
    #[test]
    fn provider_answers_map_to_kinds_and_remedies() {
        let gmail_pop_off = Error::from_reply(
            CommandKind::Pass,
            Some(RespCode::new("SYS/PERM")),
            b"Your account is not enabled for POP access. Please visit your Gmail settings page and enable your account for POP access.",
            None,
        );
        assert_eq!(gmail_pop_off.kind(), ErrorKind::PopDisabled);
        assert_eq!(gmail_pop_off.kind(), "pop-disabled");
        assert!(!gmail_pop_off.is_transient());
        assert_eq!(gmail_pop_off.remedy(), Some(Remedy::EnablePop));
        let basic_off = Error::from_reply(
            CommandKind::Auth,
            None,
            b"Authentication failure: basic authentication is disabled",
            None,
        );
        assert_eq!(basic_off.kind(), "oauth-required");
        assert_eq!(basic_off.remedy(), Some(Remedy::SignInWithOAuth2));
        let wrong = Error::from_reply(CommandKind::Pass, None, b"Login failed.", None);
        assert_eq!(wrong.remedy(), Some(Remedy::CheckPassword));
        let app = Error::from_reply(
            CommandKind::Pass,
            Some(RespCode::new("AUTH")),
            b"Application-specific password required",
            None,
        );
        assert_eq!(app.remedy(), Some(Remedy::CreateAppPassword));
        let delay = Error::from_reply(
            CommandKind::Pass,
            Some(RespCode::new("LOGIN-DELAY")),
            b"wait",
            Some(300),
        );
        assert_eq!(
            delay.remedy(),
            Some(Remedy::WaitUntil { seconds: Some(300) })
        );
        let mismatch = Error::SecurityMismatch {
            sign: MismatchSign::TlsRecord,
            tried: Security::StartTls,
            suggested: Security::Tls,
            protocol: Protocol::Pop3,
        };
        assert_eq!(
            mismatch.remedy(),
            Some(Remedy::UseSecurity {
                security: Security::Tls
            })
        );
    }

    fn any_remedy() -> impl proptest::strategy::Strategy<Value = Remedy> {
        use proptest::prelude::*;
        prop_oneof![
            Just(Remedy::CheckPassword),
            Just(Remedy::CreateAppPassword),
            Just(Remedy::EnablePop),
            Just(Remedy::SignInWithOAuth2),
            Just(Remedy::SignInAgain),
            Just(Remedy::AskAdminToEnableSmtpAuth),
            Just(Remedy::ChooseRegion {
                hosts: crate::account::Preset::for_email("a@zoho.eu")
                    .unwrap()
                    .unwrap()
                    .regions
            }),
            "[0-9A-F:]{1,95}".prop_map(|fingerprint| Remedy::TrustCertificate { fingerprint }),
            proptest::option::of(any::<u64>()).prop_map(|seconds| Remedy::WaitUntil { seconds }),
            prop_oneof![
                Just(Security::Tls),
                Just(Security::StartTls),
                Just(Security::Plain)
            ]
            .prop_map(|security| Remedy::UseSecurity { security }),
        ]
    }

    proptest::proptest! {
        /// Every remedy reads back from its text form as itself.
        #[test]
        fn a_remedy_reads_back_from_its_text(remedy in any_remedy()) {
            proptest::prop_assert_eq!(Remedy::from_text(&remedy.to_text()), Some(remedy));
        }

        /// Any text reads as a remedy or as nothing, never a panic; what
        /// reads writes back the same.
        #[test]
        fn any_text_reads_as_a_remedy_or_nothing(text in "\\PC{0,40}") {
            if let Some(remedy) = Remedy::from_text(&text) {
                proptest::prop_assert_eq!(remedy.to_text(), text);
            }
        }
    }

    #[test]
    fn region_lists_read_back_only_when_a_preset_has_them() {
        let zoho = crate::account::Preset::for_email("a@zoho.eu")
            .unwrap()
            .unwrap();
        let text = Remedy::ChooseRegion {
            hosts: zoho.regions,
        }
        .to_text();
        assert!(text.starts_with("choose-region pop.zoho.com,"), "{text}");
        assert_eq!(
            Remedy::from_text(&text),
            Some(Remedy::ChooseRegion {
                hosts: zoho.regions
            })
        );
        assert_eq!(Remedy::from_text("choose-region pop.example.com"), None);
        assert_eq!(Remedy::from_text("wait-until soon"), None);
        assert_eq!(Remedy::from_text("check-password now"), None);
    }
}
