//! Sending mail: a blocking SMTP submission client (RFC 6409),
//! [`SmtpClient`], and an async one over any futures-io stream,
//! [`AsyncSmtpClient`], over the sans-IO core in [`smtp_auth`] and the
//! protocol-neutral [`transport`] (the same TCP connect, rustls set-up and
//! bounded handshakes as POP3). Both drive one shared core, so their
//! behaviour, errors and deadlines are the same.
//!
//! ```no_run
//! use pop3_client::smtp::{SmtpClient, SmtpConfig};
//! use pop3_client::{Credentials, Security};
//!
//! let mut config = SmtpConfig::new("smtp.example.com");
//! config.security = Security::StartTls; // port 587
//! let mut client = SmtpClient::connect(&config)?;
//! client.login(&Credentials::new("me@example.com", "app password"))?;
//! let message = "Subject: hi\r\n\r\nHello.\r\n".as_bytes();
//! let report = client.send("me@example.com", &["you@example.net"], message)?;
//! for (address, why) in report.delivery.refused() {
//!     eprintln!("{address} refused: {why}");
//! }
//! client.quit()?;
//! # Ok::<(), pop3_client::smtp::SmtpError>(())
//! ```
//!
//! The rules are POP3's: TLS is implicit (port 465) or STARTTLS (port 587)
//! and never falls back to plaintext; credentials go only over TLS unless
//! [`SmtpConfig::allow_plaintext_auth`] is set (CRAM-MD5, which hides the
//! secret, excepted); every reply must arrive within
//! [`Timeouts::response`](crate::endpoint::Timeouts) of being awaited, each read waits
//! at most [`Timeouts::idle`](crate::endpoint::Timeouts), and the reply to a message
//! gets extra time for its size at
//! [`Timeouts::min_body_rate`](crate::endpoint::Timeouts). A message is streamed from
//! any reader in 64 KiB pieces, so memory stays bounded.
//!
//! [`transport`]: crate::transport

mod async_client;
mod blocking;
mod builder;
mod client;
mod engine;

use std::fmt::Write as _;

use thiserror::Error;

use crate::config::AuthMethod;
use crate::endpoint::{Endpoint, Protocol, TlsRoots};
use crate::error::ErrorKind;

pub use async_client::AsyncSmtpClient;
pub use blocking::SmtpClient;
pub use builder::SmtpConfigBuilder;
pub use smtp_auth::{Capabilities, Delivery, Envelope, RecipientOutcome, Refusal, RefusalKind};

/// Everything needed to reach an SMTP submission server: start from
/// [`SmtpConfig::new`] and set fields, or use [`SmtpConfig::builder`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SmtpConfig {
    /// Where and how securely to connect (the POP3 settings' type, with
    /// SMTP's ports: 465 for implicit TLS, 587 otherwise). The config
    /// dereferences to it, so `config.host` and `config.timeouts` read and
    /// write as fields of the config.
    pub endpoint: Endpoint,
    /// How to log in: `Auto` takes SASL PLAIN, then LOGIN; `Plain`, `Login`,
    /// `CramMd5`, `XOAuth2` and `OAuthBearer` ask for one mechanism. `User`
    /// and `Apop` are POP3's and refused.
    pub auth: AuthMethod,
    /// Send credentials over a connection without TLS. Off by default:
    /// anyone on the path could read them. CRAM-MD5 needs no permission.
    pub allow_plaintext_auth: bool,
    /// The name sent with EHLO (default `localhost`).
    pub ehlo_name: String,
}

crate::endpoint::holds_endpoint!(SmtpConfig);

impl SmtpConfig {
    /// Settings for `host` with implicit TLS on port 465, certificates
    /// checked against Mozilla's roots, automatic login.
    pub fn new(host: impl Into<String>) -> Self {
        Self {
            endpoint: Endpoint::new(Protocol::Smtp, host),
            auth: AuthMethod::Auto,
            allow_plaintext_auth: false,
            ehlo_name: "localhost".into(),
        }
    }

    /// Settings for an account's outgoing server
    /// ([`Account::outgoing_settings`](crate::mailbox::account::Account::outgoing_settings)),
    /// with the credentials to log in with.
    pub fn from_settings(
        settings: &crate::mailbox::account::ServerSettings,
    ) -> (Self, crate::config::Credentials) {
        let mut config = Self::new(settings.host.clone());
        config.port = Some(settings.port);
        config.security = settings.security;
        config.allow_plaintext_auth = settings.allow_plaintext_auth;
        if settings.credential.is_oauth2() {
            config.auth = settings.credential.auth_method();
        }
        let credentials = settings.credential.for_user(settings.user.clone());
        (config, credentials)
    }

    /// An account's outgoing server with its trust settings, and the
    /// credentials ("same credentials": the incoming ones); `None` when the
    /// account has no outgoing server.
    pub fn for_account(
        account: &crate::mailbox::account::Account,
    ) -> Option<(Self, crate::config::Credentials)> {
        let settings = account.outgoing_settings()?;
        let (mut config, credentials) = Self::from_settings(&settings);
        if let Some(ca) = &account.trust.ca_file {
            config.roots = TlsRoots::CaFile(ca.clone());
        }
        Some((config, credentials))
    }
}

/// What happened to a message the server accepted: the server's account
/// of it (every recipient's outcome, the final reply) and the bytes read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendReport {
    /// Every recipient, accepted or refused with the server's reply, and
    /// the final reply (code and escaped text, often a queue id).
    pub delivery: Delivery,
    /// Bytes of the message read from the reader.
    pub bytes: u64,
}

/// What stops sending, worded for the person who typed the settings;
/// [`SmtpError::kind`] names it for scripts.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SmtpError {
    /// Connecting, TLS, timeouts, local I/O, settings: the same failures as
    /// the POP3 client's.
    #[error(transparent)]
    Client(#[from] crate::error::Error),
    /// The SMTP exchange failed: the server refused, or broke the protocol.
    #[error("{}", describe(.0))]
    Smtp(#[from] smtp_auth::Error),
}

impl SmtpError {
    /// The failure class, in the one vocabulary of both protocols
    /// ([`ErrorKind`]; it compares equal to its stable name, so
    /// `error.kind() == "limit"` reads as `send` prints it).
    pub fn kind(&self) -> ErrorKind {
        match self {
            // TLS was asked for and the server would not start it.
            Self::Smtp(smtp_auth::Error::Refused(r)) if r.step == smtp_auth::Step::StartTls => {
                ErrorKind::Tls
            }
            Self::Smtp(smtp_auth::Error::MechanismNotOffered { .. }) => ErrorKind::AuthMethod,
            Self::Smtp(smtp_auth::Error::UnexpectedEof { .. } | smtp_auth::Error::Disconnected) => {
                ErrorKind::ConnectionLost
            }
            // smtp-auth names the rest with the same words.
            Self::Smtp(e) => ErrorKind::from_name(e.kind()).unwrap_or(ErrorKind::Protocol),
            Self::Client(e) => e.kind(),
        }
    }

    /// Whether trying again later may work: 4xx replies, timeouts, network
    /// trouble.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Smtp(e) => e.is_transient(),
            Self::Client(e) => e.is_transient(),
        }
    }

    /// Whether the server refused the credentials (wrong password, or an
    /// app-specific password needed): retrying will not help until the
    /// user updates them.
    pub fn is_auth_failure(&self) -> bool {
        match self {
            Self::Smtp(e) => e.is_auth_failure(),
            Self::Client(e) => e.is_auth_failure(),
        }
    }

    /// What the user can do about this error, as data.
    pub fn remedy(&self) -> Option<crate::error::Remedy> {
        use crate::error::Remedy;
        let Self::Smtp(e) = self else {
            return match self {
                Self::Client(e) => e.remedy(),
                Self::Smtp(_) => None,
            };
        };
        let refusal = e.refusal()?;
        Some(match refusal.kind {
            RefusalKind::CredentialsRejected => Remedy::CheckPassword,
            RefusalKind::AppPasswordRequired => Remedy::CreateAppPassword,
            RefusalKind::OAuthRequired
                if refusal
                    .text
                    .to_ascii_lowercase()
                    .contains("smtpclientauthentication") =>
            {
                Remedy::AskAdminToEnableSmtpAuth
            }
            RefusalKind::OAuthRequired => Remedy::SignInWithOAuth2,
            RefusalKind::Limit => Remedy::WaitUntil { seconds: None },
            _ if refusal.is_transient() => Remedy::WaitUntil { seconds: None },
            _ => return None,
        })
    }

    /// The server's refusal, when it refused.
    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            Self::Smtp(e) => e.refusal(),
            Self::Client(_) => None,
        }
    }
}

impl From<std::io::Error> for SmtpError {
    fn from(e: std::io::Error) -> Self {
        Self::Client(e.into())
    }
}

/// The server's reply as quoted in messages: code, enhanced code, text
/// (already escaped by smtp-auth).
fn quoted(r: &Refusal) -> String {
    let mut s = r.code.to_string();
    if let Some(e) = r.enhanced {
        let _ = write!(s, " {e}");
    }
    if !r.text.is_empty() {
        let _ = write!(s, " {}", r.text);
    }
    s
}

/// A refusal in words that say what to do.
fn describe(error: &smtp_auth::Error) -> String {
    let Some(r) = error.refusal() else {
        return match error {
            smtp_auth::Error::StartTlsNotOffered => "the server does not offer STARTTLS, and TLS was required; nothing was sent (use implicit TLS on port 465 if the server supports it)".into(),
            smtp_auth::Error::StartTlsInjection { bytes } => format!("the server sent data after accepting STARTTLS, before TLS began (\"{bytes}\"): a possible attack; the connection was closed and nothing more was sent"),
            other => other.to_string(),
        };
    };
    let reply = quoted(r);
    if r.step == smtp_auth::Step::StartTls {
        return format!(
            "the server refused STARTTLS (\"{reply}\"), and TLS was required; nothing more was sent{}",
            transient_hint(r)
        );
    }
    match r.kind {
        RefusalKind::CredentialsRejected => format!(
            "the server rejected the password (\"{reply}\"); check the user name and password; if two-factor authentication is on, use an app-specific password"
        ),
        RefusalKind::AppPasswordRequired => format!(
            "the server requires an app-specific password, or a sign-in through the provider's web page (\"{reply}\"); create an app password in the account's security settings"
        ),
        RefusalKind::EncryptionRequired => format!(
            "the server requires an encrypted connection (\"{reply}\"); use implicit TLS or STARTTLS"
        ),
        RefusalKind::AuthRequired => format!(
            "the server requires logging in before sending (\"{reply}\"); give a user name and password"
        ),
        RefusalKind::TooBig { limit } => format!(
            "the message is too big for the server{} (\"{reply}\")",
            limit.map(|l| format!(", which takes at most {l} bytes")).unwrap_or_default()
        ),
        RefusalKind::OAuthRequired => format!(
            "the provider refuses passwords for sending (\"{reply}\"); sign in with OAuth2, or ask the administrator to enable SMTP AUTH for the mailbox"
        ),
        RefusalKind::Limit => format!(
            "the server refused {}: a sending limit (rate or quota) was reached (\"{reply}\"); try again later",
            r.step
        ),
        RefusalKind::Unavailable => format!(
            "the server is not accepting mail now (\"{reply}\"){}",
            transient_hint(r)
        ),
        // Recipient, Other, and kinds smtp-auth may add.
        _ => {
            format!("the server refused {} (\"{reply}\"){}", r.step, transient_hint(r))
        }
    }
}

fn transient_hint(r: &Refusal) -> &'static str {
    if r.is_transient() {
        "; this is temporary, try again later"
    } else {
        ""
    }
}
