//! The "add a mailbox" form's checks, in the library: the incoming and the
//! outgoing login verified step by step, the steps returned as data
//! (what a form shows next to its fields), and a password changed only
//! once the new one has logged in. Blocking, and async on tokio (the same
//! steps, written once).
//!
//! ```no_run
//! use pop3_client::account::{Account, Credential};
//! use pop3_client::verify::verify_incoming;
//!
//! let account = Account::for_email("me", "me@gmail.com", Credential::app_password("abcd efgh"))?;
//! match verify_incoming(&account) {
//!     Ok(steps) => {
//!         for step in steps {
//!             println!("{}: ok ({})", step.stage.name(), step.detail);
//!         }
//!     }
//!     Err(failure) => println!("{}: {}", failure.failed.name(), failure.error),
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::endpoint::CertificateInfo;
use crate::error::Error;
use crate::mailbox::account::{Account, AccountError, Outgoing};
use crate::smtp::SmtpError;

/// A step of a verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Stage {
    /// The settings themselves (before anything is connected).
    Settings,
    /// The server's name looked up.
    Resolve,
    /// The TCP connection.
    Connect,
    /// TLS set up, the certificate verified.
    Tls,
    /// The POP3 greeting (STLS when asked).
    Greeting,
    /// The POP3 capabilities (CAPA).
    Capabilities,
    /// The POP3 login.
    Login,
    /// The mailbox's size (STAT).
    Mailbox,
    /// The SMTP greeting and EHLO (STARTTLS when asked).
    Ehlo,
    /// The SMTP login (AUTH).
    Auth,
}

impl Stage {
    /// The step's short name, as a form or `account verify` shows it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Settings => "settings",
            Self::Resolve => "resolve",
            Self::Connect => "connect",
            Self::Tls => "tls",
            Self::Greeting => "greeting",
            Self::Capabilities => "capabilities",
            Self::Login => "login",
            Self::Mailbox => "mailbox",
            Self::Ehlo => "ehlo",
            Self::Auth => "auth",
        }
    }
}

/// A step that passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Which.
    pub stage: Stage,
    /// What it found, in words (the addresses, the greeting, the mailbox's
    /// size...).
    pub detail: String,
    /// For the TLS step, the certificate the server presented.
    pub certificate: Option<CertificateInfo>,
}

/// A verification that failed: the steps that passed, the one that failed,
/// and why.
#[derive(Debug)]
pub struct VerifyFailure<E> {
    /// The steps that passed.
    pub passed: Vec<Step>,
    /// The step that failed.
    pub failed: Stage,
    /// Why.
    pub error: E,
}

impl<E: std::fmt::Display> std::fmt::Display for VerifyFailure<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.failed.name(), self.error)
    }
}

impl<E: std::error::Error + 'static> std::error::Error for VerifyFailure<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// Which side's password changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The POP3 server's.
    Incoming,
    /// The SMTP server's (only when it has credentials of its own).
    Outgoing,
}

/// Why a password was not changed (the account keeps the old one).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordChangeError {
    /// The change does not apply (the outgoing side uses the incoming
    /// credentials, or has no server).
    #[error(transparent)]
    Settings(#[from] AccountError),
    /// The new incoming password did not log in.
    #[error("{0}")]
    Incoming(VerifyFailure<Error>),
    /// The new outgoing password did not log in.
    #[error("{0}")]
    Outgoing(VerifyFailure<SmtpError>),
}

fn step(stage: Stage, detail: impl Into<String>) -> Step {
    Step {
        stage,
        detail: detail.into(),
        certificate: None,
    }
}

/// The account with `side`'s secret replaced, checked for shape.
fn with_new_secret(
    account: &Account,
    side: Side,
    secret: crate::config::Secret,
) -> Result<Account, AccountError> {
    let mut changed = account.clone();
    match side {
        Side::Incoming => {
            changed.incoming.credential = changed.incoming.credential.with_secret(secret);
        }
        Side::Outgoing => match &mut changed.outgoing {
            Outgoing::Separate(server) => {
                server.credential = server.credential.with_secret(secret);
            }
            Outgoing::SameCredentials { .. } => {
                return Err(AccountError::new(
                    "outgoing",
                    "uses the incoming credentials: change the incoming password",
                ))
            }
            _ => {
                return Err(AccountError::new(
                    "outgoing",
                    "has no password of its own to change",
                ))
            }
        },
    }
    changed.validate()?;
    Ok(changed)
}

/// The verifications and the password change, written once: `$Pop3` and
/// `$Smtp` are the clients over `$Tcp`, connected by `$connect_tcp`, names
/// looked up by `$lookup`; `.await` where given.
macro_rules! account_checks {
    (
        $(#[$fn_attr:meta])*
        names: [$verify_incoming:ident, $verify_outgoing:ident, $change_password:ident],
        pop3: $Pop3:ty,
        smtp: $Smtp:ty,
        connect_tcp: $connect_tcp:path,
        lookup: $lookup:path,
        $($async:ident)?; $(.$aw:ident)?
    ) => {
        /// Verifies the account's incoming (POP3) login step by step:
        /// settings, resolve, connect, TLS (with the certificate),
        /// greeting and capabilities, login, mailbox size. Nothing is
        /// fetched or deleted. The error of a failed step keeps its kind
        /// and remedy.
        $(#[$fn_attr])*
        pub $($async)? fn $verify_incoming(account: &Account) -> Result<Vec<Step>, VerifyFailure<Error>> {
            let mut passed = Vec::new();
            macro_rules! at {
                ($stage:expr, $result:expr) => {
                    match $result {
                        Ok(value) => value,
                        Err(error) => {
                            return Err(VerifyFailure { passed, failed: $stage, error: Error::from(error) })
                        }
                    }
                };
            }
            at!(Stage::Settings, account.validate());
            let config = account.client_config();
            let addrs = at!(Stage::Resolve, $lookup(&config.host, config.port(), config.timeouts.connect)$(.$aw)?);
            passed.push(step(Stage::Resolve, addrs.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")));
            let tcp = at!(Stage::Connect, $connect_tcp(&config.host, config.port(), config.timeouts.connect)$(.$aw)?);
            passed.push(step(Stage::Connect, format!("{}:{}", config.host, config.port())));
            let opened = <$Pop3>::open_over(tcp, &config)$(.$aw)?;
            let stage = match &opened {
                Err(e) if e.kind() == crate::error::ErrorKind::Tls => Stage::Tls,
                _ => Stage::Greeting,
            };
            let mut client = at!(stage, opened);
            if client.is_tls() {
                passed.push(Step {
                    certificate: client.peer_certificate(),
                    ..step(Stage::Tls, "certificate verified")
                });
            }
            let capabilities: Vec<String> = client
                .capabilities()
                .iter()
                .map(pop3_proto::server::capability_line)
                .collect();
            passed.push(step(Stage::Greeting, pop3_proto::escape::snippet(&client.greeting().text)));
            passed.push(step(Stage::Capabilities, capabilities.join(" ")));
            at!(Stage::Login, client.login(&account.credentials())$(.$aw)?);
            passed.push(step(Stage::Login, account.incoming.user.clone()));
            let stat = at!(Stage::Mailbox, client.stat()$(.$aw)?);
            at!(Stage::Mailbox, client.quit()$(.$aw)?);
            passed.push(step(Stage::Mailbox, format!("{} messages, {} bytes", stat.count, stat.octets)));
            Ok(passed)
        }

        /// Verifies the account's outgoing (SMTP) login step by step:
        /// settings, resolve, connect, TLS (with the certificate), EHLO
        /// (and STARTTLS), AUTH; no mail is sent. Call it when the account
        /// is added and whenever its outgoing password changes.
        $(#[$fn_attr])*
        pub $($async)? fn $verify_outgoing(account: &Account) -> Result<Vec<Step>, VerifyFailure<SmtpError>> {
            let mut passed = Vec::new();
            macro_rules! at {
                ($stage:expr, $result:expr) => {
                    match $result {
                        Ok(value) => value,
                        Err(error) => {
                            return Err(VerifyFailure { passed, failed: $stage, error: SmtpError::from(error) })
                        }
                    }
                };
            }
            // The outgoing side alone: the incoming settings are checked by
            // the incoming verification.
            let Some((config, credentials)) = crate::smtp::SmtpConfig::for_account(account) else {
                let none = Error::invalid_setting("outgoing", format!("is none: the account {} has no outgoing server", account.name));
                return Err(VerifyFailure { passed, failed: Stage::Settings, error: none.into() });
            };
            at!(Stage::Settings, config.validate());
            let addrs = at!(Stage::Resolve, $lookup(&config.host, config.port(), config.timeouts.connect)$(.$aw)?);
            passed.push(step(Stage::Resolve, addrs.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")));
            let tcp = at!(Stage::Connect, $connect_tcp(&config.host, config.port(), config.timeouts.connect)$(.$aw)?);
            passed.push(step(Stage::Connect, format!("{}:{}", config.host, config.port())));
            let connected = <$Smtp>::connect_over(tcp, &config)$(.$aw)?;
            let stage = match &connected {
                Err(e) if e.kind() == crate::error::ErrorKind::Tls => Stage::Tls,
                _ => Stage::Ehlo,
            };
            let mut client = at!(stage, connected);
            if client.is_tls() {
                passed.push(Step {
                    certificate: client.peer_certificate(),
                    ..step(Stage::Tls, "certificate verified")
                });
            }
            let offered = client.capabilities().map(|c| c.auth.join(" ")).unwrap_or_default();
            passed.push(step(Stage::Ehlo, format!("AUTH offered: {offered}")));
            at!(Stage::Auth, client.login(&credentials)$(.$aw)?);
            at!(Stage::Auth, client.quit()$(.$aw)?);
            passed.push(step(Stage::Auth, credentials.user));
            Ok(passed)
        }

        /// Changes `side`'s password to `new`: the account with the new one
        /// is verified on that side and returned; on any failure the caller
        /// keeps the old account (nothing is retrieved with a password that
        /// does not work, and nothing is lost).
        $(#[$fn_attr])*
        pub $($async)? fn $change_password(
            account: &Account,
            side: Side,
            new: impl Into<crate::config::Secret>,
        ) -> Result<Account, PasswordChangeError> {
            let changed = with_new_secret(account, side, new.into())?;
            match side {
                Side::Incoming => {
                    $verify_incoming(&changed)$(.$aw)?.map_err(PasswordChangeError::Incoming)?;
                    // "Same credentials": the outgoing side logs in with it too.
                    if matches!(changed.outgoing, Outgoing::SameCredentials { .. }) {
                        $verify_outgoing(&changed)$(.$aw)?.map_err(PasswordChangeError::Outgoing)?;
                    }
                }
                Side::Outgoing => {
                    $verify_outgoing(&changed)$(.$aw)?.map_err(PasswordChangeError::Outgoing)?;
                }
            }
            Ok(changed)
        }
    };
}

account_checks! {
    names: [verify_incoming, verify_outgoing, change_password],
    pop3: crate::pop3::blocking::Client,
    smtp: crate::smtp::SmtpClient,
    connect_tcp: crate::transport::connect_tcp,
    lookup: crate::transport::lookup,
    ;
}

#[cfg(feature = "tokio")]
account_checks! {
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    names: [verify_incoming_async, verify_outgoing_async, change_password_async],
    pop3: crate::pop3::tokio::Client,
    smtp: crate::smtp::AsyncSmtpClient<tokio_util::compat::Compat<::tokio::net::TcpStream>>,
    connect_tcp: crate::transport::connect_tcp_tokio,
    lookup: crate::transport::lookup_tokio,
    async; .await
}
