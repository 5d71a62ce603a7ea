//! Mailbox accounts: what a user types into "add a POP3 mailbox", validated
//! field by field, with presets for the big providers.
//!
//! ```
//! use pop3_client::account::{Account, Credential, DeletePolicy};
//!
//! // Gmail's preset fills in pop.gmail.com:995 (TLS) and smtp.gmail.com:465.
//! let mut account = Account::for_email("work", "me@gmail.com", Credential::app_password("abcd efgh"))?;
//! account.delete_policy = DeletePolicy::KeepOnServer;
//! account.validate()?;
//! assert_eq!(account.incoming.host, "pop.gmail.com");
//! assert_eq!(account.incoming.port, 995);
//! let config = account.client_config(); // what the POP3 clients connect with
//! assert_eq!(config.port(), 995);
//! # Ok::<(), pop3_client::account::AccountError>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use crate::config::{AuthMethod, ClientConfig, Credentials, Secret, TokenSource};
use crate::endpoint::{Protocol, Security, TlsRoots};
use crate::mailbox::sync::FirstSync;
use crate::oauth::OAuthProvider;

/// A setting that cannot be used, named by its field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct AccountError {
    /// The field, as a form or a settings file names it (`incoming.port`).
    pub field: String,
    /// What is wrong with it, in words.
    pub problem: String,
    /// The provider refuses passwords: the account must sign in with
    /// OAuth2 (an error of kind oauth-required).
    oauth_required: bool,
}

impl AccountError {
    pub(crate) fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
            oauth_required: false,
        }
    }

    /// Whether the provider refuses passwords for this account (it needs
    /// OAuth2 sign-in).
    pub fn oauth_required(&self) -> bool {
        self.oauth_required
    }
}

impl From<AccountError> for crate::error::Error {
    fn from(e: AccountError) -> Self {
        if e.oauth_required {
            return crate::error::Error::OAuthRequired {
                server_text: String::new(),
            };
        }
        crate::error::Error::InvalidSetting {
            setting: e.field,
            problem: e.problem,
        }
    }
}

/// The secret an account logs in with.
#[derive(Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(tag = "kind", content = "secret", rename_all = "kebab-case")
)]
#[non_exhaustive]
pub enum Credential {
    /// The account's password.
    Password(Secret),
    /// An app-specific password (two-factor authentication is on).
    AppPassword(Secret),
    /// An OAuth2 access token (sent with SASL XOAUTH2).
    OAuth2Token(Secret),
    /// An OAuth2 sign-in: the refresh token and where it is refreshed; each
    /// login asks the token source attached to it
    /// ([`Account::attach_token_source`]) for an access token.
    #[cfg_attr(feature = "serde", serde(rename = "oauth2"))]
    OAuth2(OAuth2Grant),
}

/// What an OAuth2 sign-in leaves with an account: the provider, the
/// application's client id, the scopes and the refresh token. The
/// application's client secret is not kept here (it belongs to the
/// application, not the account). A rotated refresh token replaces this
/// one through the [`TokenStore`](crate::oauth::TokenStore) the
/// application gives its token source.
#[derive(Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct OAuth2Grant {
    /// Where tokens are refreshed.
    pub provider: OAuthProvider,
    /// The application's client id at the provider.
    pub client_id: String,
    /// The scopes asked for (the provider's POP3 and SMTP scopes by
    /// default).
    pub scopes: Vec<String>,
    /// OAUTHBEARER (RFC 7628) rather than XOAUTH2 at login.
    #[cfg_attr(feature = "serde", serde(default))]
    pub oauthbearer: bool,
    /// The refresh token.
    pub refresh_token: Secret,
    /// The token source logins ask, attached at run time.
    #[cfg_attr(feature = "serde", serde(skip))]
    tokens: Option<std::sync::Arc<dyn TokenSource>>,
}

impl OAuth2Grant {
    /// A sign-in at `provider` by the application `client_id`, with the
    /// provider's POP3 and SMTP scopes, logging in with XOAUTH2.
    pub fn new(
        provider: OAuthProvider,
        client_id: impl Into<String>,
        refresh_token: Secret,
    ) -> Self {
        Self {
            scopes: provider.scopes(),
            provider,
            client_id: client_id.into(),
            oauthbearer: false,
            refresh_token,
            tokens: None,
        }
    }

    /// The token endpoint for this grant, over HTTPS, with its scopes; add
    /// the application's client secret if it has one.
    #[cfg(feature = "oauth2-http")]
    pub fn endpoint(&self) -> Result<crate::oauth::HttpTokenEndpoint, crate::error::Error> {
        Ok(
            crate::oauth::HttpTokenEndpoint::for_provider(&self.provider, self.client_id.clone())?
                .with_scopes(self.scopes.iter().cloned()),
        )
    }

    /// Whether a token source is attached.
    pub fn has_token_source(&self) -> bool {
        self.tokens.is_some()
    }
}

impl PartialEq for OAuth2Grant {
    /// Equal settings; the attached token source is not compared.
    fn eq(&self, other: &Self) -> bool {
        self.provider == other.provider
            && self.client_id == other.client_id
            && self.scopes == other.scopes
            && self.oauthbearer == other.oauthbearer
            && self.refresh_token == other.refresh_token
    }
}

impl Eq for OAuth2Grant {}

impl fmt::Debug for OAuth2Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuth2Grant")
            .field("provider", &self.provider)
            .field("client_id", &self.client_id)
            .field("scopes", &self.scopes)
            .field("oauthbearer", &self.oauthbearer)
            .field("refresh_token", &"<redacted>")
            .field("token_source", &self.tokens.is_some())
            .finish()
    }
}

/// The token source of a grant that has none attached: each login fails
/// with a message saying what the application must do.
struct NoTokenSource;

impl TokenSource for NoTokenSource {
    fn access_token(&self, _now: u64) -> Result<Secret, crate::error::Error> {
        Err(crate::error::Error::invalid_setting(
            "the account's OAuth2 sign-in",
            "no token source is attached: build one from the grant (OAuth2Grant::endpoint and a RefreshingTokenSource with a TokenStore) and call Account::attach_token_source",
        ))
    }

    fn invalidate(&self, _token: &Secret) {}
}

impl Credential {
    /// A password.
    pub fn password(secret: impl Into<Secret>) -> Self {
        Self::Password(secret.into())
    }

    /// An app-specific password.
    pub fn app_password(secret: impl Into<Secret>) -> Self {
        Self::AppPassword(secret.into())
    }

    /// An OAuth2 access token.
    pub fn oauth2_token(token: impl Into<Secret>) -> Self {
        Self::OAuth2Token(token.into())
    }

    /// The secret itself (for an OAuth2 sign-in, its refresh token).
    pub fn secret(&self) -> &Secret {
        match self {
            Self::Password(s) | Self::AppPassword(s) | Self::OAuth2Token(s) => s,
            Self::OAuth2(grant) => &grant.refresh_token,
        }
    }

    /// The same kind of credential with a new secret (a password change).
    pub fn with_secret(&self, secret: impl Into<Secret>) -> Self {
        let secret = secret.into();
        match self {
            Self::Password(_) => Self::Password(secret),
            Self::AppPassword(_) => Self::AppPassword(secret),
            Self::OAuth2Token(_) => Self::OAuth2Token(secret),
            Self::OAuth2(grant) => Self::OAuth2(OAuth2Grant {
                refresh_token: secret,
                tokens: None,
                ..grant.clone()
            }),
        }
    }

    /// Whether this credential is OAuth2 (a token or a sign-in).
    pub fn is_oauth2(&self) -> bool {
        matches!(self, Self::OAuth2Token(_) | Self::OAuth2(_))
    }

    /// The credentials a login sends as `user`: the secret, or for an
    /// OAuth2 sign-in its token source.
    pub(crate) fn for_user(&self, user: String) -> Credentials {
        match self {
            Self::OAuth2(grant) => {
                let tokens = grant
                    .tokens
                    .clone()
                    .unwrap_or_else(|| std::sync::Arc::new(NoTokenSource));
                Credentials::oauth2(user, tokens)
            }
            other => Credentials::new(user, other.secret().clone()),
        }
    }

    /// The login method this credential calls for: a token needs XOAUTH2,
    /// a password the automatic choice.
    pub fn auth_method(&self) -> AuthMethod {
        match self {
            Self::OAuth2Token(_) => AuthMethod::XOAuth2,
            Self::OAuth2(grant) if grant.oauthbearer => AuthMethod::OAuthBearer,
            Self::OAuth2(_) => AuthMethod::XOAuth2,
            Self::Password(_) | Self::AppPassword(_) => AuthMethod::Auto,
        }
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Password(_) => "Password(<redacted>)",
            Self::AppPassword(_) => "AppPassword(<redacted>)",
            Self::OAuth2Token(_) => "OAuth2Token(<redacted>)",
            Self::OAuth2(_) => "OAuth2(<redacted>)",
        })
    }
}

/// One server an account talks to: where, how securely, as whom.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ServerSettings {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Connection security.
    #[cfg_attr(feature = "serde", serde(with = "security_name"))]
    pub security: Security,
    /// User name (for Gmail's recent mode, `recent:me@gmail.com`).
    pub user: String,
    /// Password, app-specific password or token.
    pub credential: Credential,
    /// Send credentials over a connection without TLS (never by default).
    #[cfg_attr(feature = "serde", serde(default))]
    pub allow_plaintext_auth: bool,
}

/// The outgoing (SMTP) server, "use the same credentials for the outgoing
/// server" included. The SMTP client that uses it is another part of the
/// workspace; here the settings are stored and validated.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(tag = "mode", rename_all = "kebab-case"))]
#[non_exhaustive]
pub enum Outgoing {
    /// No outgoing server.
    None,
    /// The incoming user and credential, on this SMTP server.
    SameCredentials {
        /// SMTP host.
        host: String,
        /// SMTP port.
        port: u16,
        /// SMTP connection security.
        #[cfg_attr(feature = "serde", serde(with = "security_name"))]
        security: Security,
    },
    /// Its own user and credential.
    Separate(ServerSettings),
}

/// What happens to messages on the server once they are fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
#[non_exhaustive]
pub enum DeletePolicy {
    /// Leave every message on the server (the default).
    #[default]
    KeepOnServer,
    /// Delete a message once it is stored and recorded.
    AfterRetrieval,
    /// Delete a message this many days after it was first fetched.
    AfterDays(u32),
    /// Delete a message once the application says it was deleted locally
    /// ([`crate::mailbox::sync::mark_deleted_locally`]); the deletion happens at the
    /// next sync.
    WhenDeletedLocally,
}

impl DeletePolicy {
    /// Parses `never`, `after-retrieval`, `after-days=N`,
    /// `when-deleted-locally` (the command-line names).
    pub fn from_name(name: &str) -> Result<Self, AccountError> {
        let field = "delete_policy";
        Ok(match name {
            "never" | "keep" | "keep-on-server" => Self::KeepOnServer,
            "after-retrieval" => Self::AfterRetrieval,
            "when-deleted-locally" => Self::WhenDeletedLocally,
            other => match other.strip_prefix("after-days=") {
                Some(n) => Self::AfterDays(n.parse().map_err(|_| {
                    AccountError::new(field, format!("\"{n}\" is not a number of days"))
                })?),
                None => {
                    return Err(AccountError::new(
                        field,
                        format!("unknown policy \"{other}\"; use never, after-retrieval, after-days=N or when-deleted-locally"),
                    ))
                }
            },
        })
    }

    /// The command-line name of the policy.
    pub fn name(self) -> String {
        match self {
            Self::KeepOnServer => "never".into(),
            Self::AfterRetrieval => "after-retrieval".into(),
            Self::AfterDays(n) => format!("after-days={n}"),
            Self::WhenDeletedLocally => "when-deleted-locally".into(),
        }
    }

    /// Whether the policy ever deletes mail from the server.
    pub fn deletes(self) -> bool {
        self != Self::KeepOnServer
    }
}

/// Which certificates the account trusts beyond the default roots.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Trust {
    /// A PEM file of authorities (or of the server's own certificate) to
    /// trust instead of Mozilla's roots.
    #[cfg_attr(feature = "serde", serde(default))]
    pub ca_file: Option<PathBuf>,
}

/// A POP3 mailbox as a user configures it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Account {
    /// The account's name, unique among the application's accounts.
    pub name: String,
    /// The e-mail address.
    pub email: String,
    /// The POP3 server.
    pub incoming: ServerSettings,
    /// The SMTP server.
    pub outgoing: Outgoing,
    /// What to do with fetched messages on the server.
    #[cfg_attr(feature = "serde", serde(default))]
    pub delete_policy: DeletePolicy,
    /// What the first sync does with the mail already on the server
    /// (everything by default).
    #[cfg_attr(feature = "serde", serde(default, with = "first_sync_name"))]
    pub first_sync: FirstSync,
    /// Certificates to trust.
    #[cfg_attr(feature = "serde", serde(default))]
    pub trust: Trust,
    /// The application's own data (a CRM keeps its sharing permission here).
    #[cfg_attr(feature = "serde", serde(default))]
    pub metadata: BTreeMap<String, String>,
}

/// A provider's servers, chosen from the e-mail address's domain, and
/// what the provider asks of an account before POP3 works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    /// The provider, in words.
    pub provider: &'static str,
    /// POP3 host, port and security.
    pub pop: (&'static str, u16, Security),
    /// SMTP host, port and security.
    pub smtp: (&'static str, u16, Security),
    /// What the user must do first, at the provider.
    pub requires: &'static [Prerequisite],
    /// The provider's POP3 hosts, one per region, when it has several (a
    /// wrong region answers as a wrong password).
    pub regions: &'static [&'static str],
}

/// Something a provider asks of an account before POP3 works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Prerequisite {
    /// An app-specific password (with two-step verification on) instead of
    /// the account's password.
    AppPassword,
    /// POP switched on in the account's settings on the provider's site.
    EnablePop,
    /// Passwords are refused: OAuth2 sign-in only.
    OAuth2Only,
    /// The account lives in one region (a data centre) whose hosts must be
    /// chosen.
    ChooseRegion,
}

impl Preset {
    /// The region list of a preset whose hosts, joined with commas, are
    /// `hosts` (a stored [`Remedy::ChooseRegion`](crate::error::Remedy::ChooseRegion) read back).
    pub fn regions_named(hosts: &str) -> Option<&'static [&'static str]> {
        REGION_LISTS
            .iter()
            .copied()
            .find(|regions| regions.join(",") == hosts)
    }
}

const GMAIL: Preset = Preset {
    provider: "Gmail",
    pop: ("pop.gmail.com", 995, Security::Tls),
    smtp: ("smtp.gmail.com", 465, Security::Tls),
    requires: &[Prerequisite::AppPassword, Prerequisite::EnablePop],
    regions: &[],
};
/// Zoho's POP3 hosts by data centre; organisation domains use `poppro.`.
const ZOHO_REGIONS: &[&str] = &[
    "pop.zoho.com",
    "pop.zoho.eu",
    "pop.zoho.in",
    "pop.zoho.com.au",
    "pop.zoho.jp",
    "pop.zohocloud.ca",
    "pop.zoho.sa",
    "poppro.zoho.com",
    "poppro.zoho.eu",
    "poppro.zoho.in",
    "poppro.zoho.com.au",
    "poppro.zoho.jp",
];
/// Every preset's region list (a provider with regions adds its own here).
const REGION_LISTS: &[&[&str]] = &[ZOHO_REGIONS];
const fn zoho(pop: &'static str, smtp: &'static str) -> Preset {
    Preset {
        provider: "Zoho Mail",
        pop: (pop, 995, Security::Tls),
        smtp: (smtp, 465, Security::Tls),
        requires: &[Prerequisite::EnablePop, Prerequisite::ChooseRegion],
        regions: ZOHO_REGIONS,
    }
}
const OUTLOOK: Preset = Preset {
    provider: "Outlook / Office 365",
    pop: ("outlook.office365.com", 995, Security::Tls),
    smtp: ("smtp.office365.com", 587, Security::StartTls),
    requires: &[Prerequisite::OAuth2Only, Prerequisite::EnablePop],
    regions: &[],
};
const YAHOO: Preset = Preset {
    provider: "Yahoo Mail",
    pop: ("pop.mail.yahoo.com", 995, Security::Tls),
    smtp: ("smtp.mail.yahoo.com", 465, Security::Tls),
    requires: &[Prerequisite::AppPassword],
    regions: &[],
};
const AOL: Preset = Preset {
    provider: "AOL Mail",
    pop: ("pop.aol.com", 995, Security::Tls),
    smtp: ("smtp.aol.com", 465, Security::Tls),
    requires: &[Prerequisite::AppPassword],
    regions: &[],
};
const FASTMAIL: Preset = Preset {
    provider: "Fastmail",
    pop: ("pop.fastmail.com", 995, Security::Tls),
    smtp: ("smtp.fastmail.com", 465, Security::Tls),
    requires: &[Prerequisite::AppPassword],
    regions: &[],
};

/// Whether `host` is Microsoft's (Exchange Online, Outlook.com), where
/// passwords are refused.
fn is_microsoft(host: &str) -> bool {
    let host = host.trim().to_ascii_lowercase();
    [
        "outlook.office365.com",
        "smtp.office365.com",
        "outlook.com",
        "smtp-mail.outlook.com",
    ]
    .iter()
    .any(|m| host == *m || host.ends_with(&format!(".{m}")))
}

impl Preset {
    /// Where this provider's accounts sign in with OAuth2 (XOAUTH2 for POP3
    /// and SMTP, one token for both): Google, Microsoft (`common`: the
    /// user's own tenant is learnt at sign-in), Yahoo (AOL too), Fastmail,
    /// Zoho at the data centre of the preset's host.
    pub fn oauth_provider(&self) -> Option<OAuthProvider> {
        match self.provider {
            "Gmail" => Some(OAuthProvider::Google),
            "Outlook / Office 365" => OAuthProvider::microsoft("common").ok(),
            "Yahoo Mail" | "AOL Mail" => Some(OAuthProvider::Yahoo),
            "Fastmail" => Some(OAuthProvider::Fastmail),
            "Zoho Mail" => {
                let host = self.pop.0;
                let region = match host.split_once(".zoho") {
                    Some((_, "cloud.ca")) => "ca",
                    Some((_, rest)) => rest.trim_start_matches('.'),
                    None => "com",
                };
                OAuthProvider::zoho(region).ok()
            }
            _ => None,
        }
    }

    /// The preset for `email`'s domain: `Ok(None)` when there is none (the
    /// user must give the servers), an error for a provider without POP3.
    pub fn for_email(email: &str) -> Result<Option<Self>, AccountError> {
        let domain = email
            .rsplit_once('@')
            .map(|(_, d)| d.trim().to_ascii_lowercase())
            .unwrap_or_default();
        Ok(Some(match domain.as_str() {
            "gmail.com" | "googlemail.com" => GMAIL,
            "zoho.com" | "zohomail.com" => zoho("pop.zoho.com", "smtp.zoho.com"),
            "zoho.eu" | "zohomail.eu" => zoho("pop.zoho.eu", "smtp.zoho.eu"),
            "zoho.in" | "zohomail.in" => zoho("pop.zoho.in", "smtp.zoho.in"),
            "zoho.com.au" | "zohomail.com.au" => zoho("pop.zoho.com.au", "smtp.zoho.com.au"),
            "zoho.jp" | "zohomail.jp" => zoho("pop.zoho.jp", "smtp.zoho.jp"),
            "outlook.com" | "hotmail.com" | "live.com" | "msn.com" | "office365.com" => OUTLOOK,
            d if d.starts_with("hotmail.") || d.starts_with("live.") || d.starts_with("outlook.") => {
                OUTLOOK
            }
            "yahoo.com" | "ymail.com" | "rocketmail.com" => YAHOO,
            d if d.starts_with("yahoo.") => YAHOO,
            "aol.com" => AOL,
            "fastmail.com" | "fastmail.fm" => FASTMAIL,
            "icloud.com" | "me.com" | "mac.com" => {
                return Err(AccountError::new(
                    "email",
                    "iCloud Mail offers no POP3 service (only IMAP); it cannot be added as a POP3 mailbox",
                ))
            }
            _ => return Ok(None),
        }))
    }
}

/// The usual ports, to catch a security setting that does not match.
const POP3_TLS_PORT: u16 = 995;
const POP3_PLAIN_PORT: u16 = 110;
const SMTP_TLS_PORT: u16 = 465;
const SMTP_PLAIN_PORTS: [u16; 2] = [25, 587];

impl Account {
    /// An account for `email` with the provider preset's servers (user name:
    /// the address; outgoing: same credentials). Without a preset the
    /// incoming host is left empty for the caller to fill in (validation
    /// names it); iCloud is refused.
    pub fn for_email(
        name: impl Into<String>,
        email: impl Into<String>,
        credential: Credential,
    ) -> Result<Self, AccountError> {
        let email = email.into();
        let preset = Preset::for_email(&email)?;
        let (pop, outgoing) = match preset {
            Some(p) => (
                p.pop,
                Outgoing::SameCredentials {
                    host: p.smtp.0.into(),
                    port: p.smtp.1,
                    security: p.smtp.2,
                },
            ),
            None => (("", POP3_TLS_PORT, Security::Tls), Outgoing::None),
        };
        Ok(Self {
            name: name.into(),
            incoming: ServerSettings {
                host: pop.0.into(),
                port: pop.1,
                security: pop.2,
                user: email.clone(),
                credential,
                allow_plaintext_auth: false,
            },
            email,
            outgoing,
            delete_policy: DeletePolicy::KeepOnServer,
            first_sync: FirstSync::All,
            trust: Trust::default(),
            metadata: BTreeMap::new(),
        })
    }

    /// Whether the user name asks for Gmail's recent mode.
    pub fn recent_mode(&self) -> bool {
        pop3_proto::is_recent_mode_user(&self.incoming.user)
    }

    /// Checks every field; the first problem found names its field.
    pub fn validate(&self) -> Result<(), AccountError> {
        check_text("name", &self.name)?;
        check_text("email", &self.email)?;
        if !self.email.contains('@') {
            return Err(AccountError::new("email", "an e-mail address needs an @"));
        }
        Preset::for_email(&self.email)?;
        check_server("incoming", &self.incoming, Protocol::Pop3)?;
        // Microsoft refuses passwords for POP3: say so before connecting.
        if is_microsoft(&self.incoming.host) && !self.incoming.credential.is_oauth2() {
            return Err(AccountError {
                oauth_required: true,
                ..AccountError::new(
                    "incoming.credential",
                    "Microsoft (Outlook.com, Hotmail, Office 365) refuses passwords for POP3: sign in with OAuth2",
                )
            });
        }
        match &self.outgoing {
            Outgoing::None => {}
            Outgoing::SameCredentials {
                host,
                port,
                security,
            } => {
                check_host_and_port("outgoing", host, *port, *security, Protocol::Smtp)?;
            }
            Outgoing::Separate(server) => check_server("outgoing", server, Protocol::Smtp)?,
        }
        if self.recent_mode() && self.delete_policy.deletes() {
            return Err(AccountError::new(
                "delete_policy",
                "Gmail's recent: mode serves the last 30 days to every client, so mail must stay on the server; choose \"never\"",
            ));
        }
        if self.delete_policy == DeletePolicy::AfterDays(0) {
            return Err(AccountError::new(
                "delete_policy",
                "after-days=0 would delete at once; use after-retrieval",
            ));
        }
        for (key, value) in &self.metadata {
            check_text("metadata", key)?;
            check_text(&format!("metadata.{key}"), value)?;
        }
        if let Some(ca) = &self.trust.ca_file {
            check_text("trust.ca_file", &ca.to_string_lossy())?;
        }
        Ok(())
    }

    /// The key the account's sync state is kept under: host, port and user.
    pub fn state_key(&self) -> String {
        format!(
            "{}:{}:{}",
            self.incoming.host.to_ascii_lowercase(),
            self.incoming.port,
            self.incoming.user
        )
    }

    /// The POP3 client settings for the incoming server.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new(self.incoming.host.clone());
        config.port = Some(self.incoming.port);
        config.security = self.incoming.security;
        config.auth = self.incoming.credential.auth_method();
        config.allow_plaintext_auth = self.incoming.allow_plaintext_auth;
        if let Some(ca) = &self.trust.ca_file {
            config.roots = TlsRoots::CaFile(ca.clone());
        }
        config
    }

    /// The incoming login.
    pub fn credentials(&self) -> Credentials {
        self.incoming
            .credential
            .for_user(self.incoming.user.clone())
    }

    /// Attaches `source`, the token source of the incoming sign-in, so that
    /// every login asks it for an access token: the incoming one, the
    /// outgoing one with "same credentials" (one token serves POP3 and
    /// SMTP), and a separate outgoing sign-in only if it is the same grant
    /// (provider, client and refresh token): another grant's logins never
    /// get this one's tokens. Says whether the incoming credential is an
    /// OAuth2 sign-in.
    pub fn attach_token_source(&mut self, source: std::sync::Arc<dyn TokenSource>) -> bool {
        let Credential::OAuth2(incoming) = &mut self.incoming.credential else {
            return false;
        };
        incoming.tokens = Some(std::sync::Arc::clone(&source));
        let incoming = incoming.clone();
        if let Outgoing::Separate(server) = &mut self.outgoing {
            if let Credential::OAuth2(grant) = &mut server.credential {
                if *grant == incoming {
                    grant.tokens = Some(source);
                }
            }
        }
        true
    }

    /// Puts `to`, a refresh token the provider rotated, wherever this
    /// account holds the refresh token `from`: the incoming sign-in, and a
    /// separate outgoing sign-in holding the same token (so that, with the
    /// same provider, client and scopes, it stays the same grant and
    /// shares one token source). Says whether the incoming sign-in held
    /// `from`; if not (signed in again since), nothing changes.
    pub fn replace_refresh_token(&mut self, from: &Secret, to: &Secret) -> bool {
        let Credential::OAuth2(incoming) = &mut self.incoming.credential else {
            return false;
        };
        if incoming.refresh_token != *from {
            return false;
        }
        incoming.refresh_token = to.clone();
        if let Outgoing::Separate(server) = &mut self.outgoing {
            if let Credential::OAuth2(grant) = &mut server.credential {
                if grant.refresh_token == *from {
                    grant.refresh_token = to.clone();
                }
            }
        }
        true
    }

    /// What the user can do about `error` from this account's servers, with
    /// what is known of the provider beside what the error says: a refused
    /// login at a provider with regions is likely the wrong region.
    pub fn remedy(&self, error: &crate::error::Error) -> Option<crate::error::Remedy> {
        use crate::error::{Error, Remedy};
        let preset = Preset::for_email(&self.email).ok().flatten();
        match (error, preset) {
            (Error::Auth { .. }, Some(p))
                if !p.regions.is_empty() && !error.needs_app_password() =>
            {
                Some(Remedy::ChooseRegion { hosts: p.regions })
            }
            (Error::Auth { .. }, Some(p))
                if p.requires.contains(&Prerequisite::AppPassword)
                    && matches!(self.incoming.credential, Credential::Password(_)) =>
            {
                Some(Remedy::CreateAppPassword)
            }
            _ => error.remedy(),
        }
    }

    /// The outgoing server's settings with "same credentials" resolved to
    /// the incoming user and credential; `None` without an outgoing server.
    /// Gmail's `recent:` prefix is POP3's alone, so it is taken off the
    /// user name; and the outgoing side never inherits the permission to
    /// send the password without TLS (it must be given on its own, with
    /// separate credentials).
    pub fn outgoing_settings(&self) -> Option<ServerSettings> {
        match &self.outgoing {
            Outgoing::None => None,
            Outgoing::SameCredentials {
                host,
                port,
                security,
            } => Some(ServerSettings {
                host: host.clone(),
                port: *port,
                security: *security,
                user: without_recent_prefix(&self.incoming.user).to_owned(),
                credential: self.incoming.credential.clone(),
                allow_plaintext_auth: false,
            }),
            Outgoing::Separate(server) => Some(server.clone()),
        }
    }
}

/// The user name without Gmail's `recent:` prefix (any case).
fn without_recent_prefix(user: &str) -> &str {
    match user.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case("recent:") => &user[7..],
        _ => user,
    }
}

fn check_text(field: &str, value: &str) -> Result<(), AccountError> {
    if value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
        return Err(AccountError::new(
            field,
            "must not contain line breaks (CR, LF) or NUL",
        ));
    }
    Ok(())
}

fn check_server(
    side: &str,
    server: &ServerSettings,
    protocol: Protocol,
) -> Result<(), AccountError> {
    check_host_and_port(side, &server.host, server.port, server.security, protocol)?;
    check_text(&format!("{side}.user"), &server.user)?;
    if server.user.trim().is_empty() {
        return Err(AccountError::new(
            format!("{side}.user"),
            "a user name is needed",
        ));
    }
    let secret = server.credential.secret().expose();
    check_text(&format!("{side}.credential"), secret)?;
    if secret.is_empty() {
        return Err(AccountError::new(
            format!("{side}.credential"),
            "a password (or token) is needed",
        ));
    }
    Ok(())
}

fn check_host_and_port(
    side: &str,
    host: &str,
    port: u16,
    security: Security,
    protocol: Protocol,
) -> Result<(), AccountError> {
    let host_field = format!("{side}.host");
    check_text(&host_field, host)?;
    if host.trim().is_empty() {
        return Err(AccountError::new(
            host_field,
            "a server name is needed (no preset is known for this e-mail domain)",
        ));
    }
    if host.contains(char::is_whitespace) {
        return Err(AccountError::new(host_field, "a host name has no spaces"));
    }
    let port_field = format!("{side}.port");
    if port == 0 {
        return Err(AccountError::new(port_field, "port 0 is not a port"));
    }
    let (tls_ports, plain_ports): (&[u16], &[u16]) = match protocol {
        Protocol::Pop3 => (&[POP3_TLS_PORT], &[POP3_PLAIN_PORT]),
        Protocol::Smtp => (&[SMTP_TLS_PORT], &SMTP_PLAIN_PORTS),
    };
    if security != Security::Tls && tls_ports.contains(&port) {
        return Err(AccountError::new(
            port_field,
            format!("port {port} speaks TLS from the first byte; choose security \"tls\" or the plaintext port"),
        ));
    }
    if security == Security::Tls && plain_ports.contains(&port) {
        return Err(AccountError::new(
            port_field,
            format!(
                "port {port} starts in plaintext; choose security \"starttls\" or the TLS port"
            ),
        ));
    }
    Ok(())
}

/// Security as its command-line name in settings files.
#[cfg(feature = "serde")]
mod first_sync_name {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::mailbox::sync::FirstSync;

    pub(super) fn serialize<S: Serializer>(f: &FirstSync, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(&f.name())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<FirstSync, D::Error> {
        let name = String::deserialize(de)?;
        FirstSync::from_name(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown first sync \"{name}\"; use all, from-now-on, since-days=N or last=N"
            ))
        })
    }
}

#[cfg(feature = "serde")]
mod security_name {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::endpoint::Security;

    pub(super) fn serialize<S: Serializer>(s: &Security, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(s.as_str())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Security, D::Error> {
        let name = String::deserialize(de)?;
        Security::from_name(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown security \"{name}\"; use tls, starttls or plain"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(email: &str) -> Account {
        let mut a = Account::for_email("a", email, Credential::password("pw")).unwrap();
        if a.incoming.host.is_empty() {
            a.incoming.host = "mail.example.org".into();
        }
        a
    }

    #[test]
    fn presets_fill_in_the_servers() {
        let a = account("Someone@GoogleMail.com");
        assert_eq!(
            (a.incoming.host.as_str(), a.incoming.port),
            ("pop.gmail.com", 995)
        );
        let o = account("x@hotmail.com").outgoing_settings().unwrap();
        assert_eq!(
            (o.host.as_str(), o.port, o.security),
            ("smtp.office365.com", 587, Security::StartTls)
        );
        assert_eq!(o.user, "x@hotmail.com");
        assert_eq!(
            account("x@zoho.com").incoming.host,
            "pop.zoho.com".to_string()
        );
        assert_eq!(
            account("x@yahoo.com").incoming.host,
            "pop.mail.yahoo.com".to_string()
        );
        let e = Account::for_email("a", "me@icloud.com", Credential::password("p")).unwrap_err();
        assert!(e.to_string().contains("no POP3 service"), "{e}");
        let custom = Account::for_email("a", "me@example.org", Credential::password("p")).unwrap();
        let e = custom.validate().unwrap_err();
        assert_eq!(e.field, "incoming.host");
    }

    #[test]
    fn validation_names_the_field() {
        let field = |f: &dyn Fn(&mut Account)| {
            let mut a = account("me@example.org");
            f(&mut a);
            a.validate().map_err(|e| e.field)
        };
        assert_eq!(field(&|_| {}), Ok(()));
        assert_eq!(field(&|a| a.incoming.port = 0), Err("incoming.port".into()));
        assert_eq!(
            field(&|a| a.incoming.security = Security::Plain),
            Err("incoming.port".into())
        );
        assert_eq!(
            field(&|a| a.incoming.port = 110),
            Err("incoming.port".into())
        );
        assert_eq!(
            field(&|a| a.incoming.user = "me\r\nDELE 1".into()),
            Err("incoming.user".into())
        );
        assert_eq!(
            field(&|a| a.incoming.credential = Credential::password("a\0b")),
            Err("incoming.credential".into())
        );
        assert_eq!(field(&|a| a.name = "x\ny".into()), Err("name".into()));
        assert_eq!(
            field(&|a| {
                a.metadata.insert("share".into(), "team\r".into());
            }),
            Err("metadata.share".into())
        );
        assert_eq!(
            field(&|a| a.outgoing = Outgoing::SameCredentials {
                host: "smtp.example.org".into(),
                port: 465,
                security: Security::StartTls
            }),
            Err("outgoing.port".into())
        );
        assert_eq!(
            field(&|a| {
                a.incoming.user = "recent:me@gmail.com".into();
                a.delete_policy = DeletePolicy::AfterRetrieval;
            }),
            Err("delete_policy".into())
        );
    }

    #[test]
    fn policies_parse_by_name() {
        for p in [
            DeletePolicy::KeepOnServer,
            DeletePolicy::AfterRetrieval,
            DeletePolicy::AfterDays(7),
            DeletePolicy::WhenDeletedLocally,
        ] {
            assert_eq!(DeletePolicy::from_name(&p.name()), Ok(p));
        }
        assert!(DeletePolicy::from_name("after-days=x").is_err());
        assert!(DeletePolicy::from_name("sometimes").is_err());
    }

    #[cfg(feature = "serde")]
    #[test]
    fn settings_round_trip_through_serde() {
        let mut a = account("x@hotmail.com");
        a.incoming.security = Security::StartTls;
        a.incoming.port = 110;
        a.metadata.insert("share".into(), "team".into());
        let json = serde_json::to_string(&crate::config::WithSecrets(&a)).unwrap();
        assert!(json.contains("\"security\":\"starttls\""), "{json}");
        assert_eq!(serde_json::from_str::<Account>(&json).unwrap(), a);
        // Without asking, no secret is written, and what is read back has
        // none (validation then asks for one).
        let shown = serde_json::to_string(&a).unwrap();
        assert!(!shown.contains("pw"), "{shown}");
        let read = serde_json::from_str::<Account>(&shown).unwrap();
        assert!(read.incoming.credential.secret().expose().is_empty());
        assert!(read.validate().is_err());
        // The opt-in ends with its serialization.
        assert!(!serde_json::to_string(&a).unwrap().contains("pw"));
        let bad = json.replace("\"starttls\"", "\"ssl\"");
        let e = serde_json::from_str::<Account>(&bad).unwrap_err();
        assert!(e.to_string().contains("use tls, starttls or plain"), "{e}");
    }

    #[cfg(feature = "serde")]
    #[test]
    fn an_oauth2_sign_in_is_kept_with_its_provider_and_refresh_token() {
        let provider = OAuthProvider::microsoft("contoso.com").unwrap();
        let grant = OAuth2Grant::new(provider, "client-id", Secret::new("refresh-secret"));
        let a = Account::for_email("ms", "me@outlook.com", Credential::OAuth2(grant)).unwrap();
        a.validate().unwrap();
        let json = serde_json::to_string(&crate::config::WithSecrets(&a)).unwrap();
        assert!(json.contains(r#""kind":"oauth2""#), "{json}");
        assert!(
            json.contains(r#""name":"microsoft","tenant":"contoso.com""#),
            "{json}"
        );
        assert!(json.contains("POP.AccessAsUser.All"), "{json}");
        assert_eq!(serde_json::from_str::<Account>(&json).unwrap(), a);
        assert!(!serde_json::to_string(&a)
            .unwrap()
            .contains("refresh-secret"));
        assert!(!format!("{a:?}").contains("refresh-secret"));
        assert_eq!(a.client_config().auth, AuthMethod::XOAuth2);
    }

    #[test]
    fn presets_name_their_oauth_provider() {
        let provider = |email: &str| Preset::for_email(email).unwrap().unwrap().oauth_provider();
        assert_eq!(provider("me@gmail.com"), Some(OAuthProvider::Google));
        assert_eq!(
            provider("me@hotmail.com"),
            Some(OAuthProvider::microsoft("common").unwrap())
        );
        assert_eq!(provider("me@aol.com"), Some(OAuthProvider::Yahoo));
        assert_eq!(provider("me@fastmail.com"), Some(OAuthProvider::Fastmail));
        assert_eq!(
            provider("me@zoho.eu"),
            Some(OAuthProvider::zoho("eu").unwrap())
        );
        assert_eq!(
            provider("me@zoho.com.au").unwrap().token_url(),
            "https://accounts.zoho.com.au/oauth/v2/token"
        );
    }

    #[test]
    fn logins_ask_the_attached_token_source_and_say_when_there_is_none() {
        struct Fixed;
        impl TokenSource for Fixed {
            fn access_token(&self, _now: u64) -> Result<Secret, crate::error::Error> {
                Ok(Secret::new("access"))
            }
            fn invalidate(&self, _token: &Secret) {}
        }
        let grant = OAuth2Grant::new(OAuthProvider::Google, "id", Secret::new("refresh"));
        let mut a = Account::for_email("g", "me@gmail.com", Credential::OAuth2(grant)).unwrap();
        let e = a.credentials().for_login().wait().unwrap_err();
        assert_eq!(e.kind(), "config");
        assert!(e.to_string().contains("attach_token_source"), "{e}");
        assert!(a.attach_token_source(std::sync::Arc::new(Fixed)));
        assert_eq!(
            a.credentials().for_login().wait().unwrap().secret.expose(),
            "access"
        );
        // "Same credentials": the outgoing login asks the same source.
        let outgoing = a.outgoing_settings().unwrap();
        assert_eq!(
            outgoing
                .credential
                .for_user(outgoing.user.clone())
                .for_login()
                .wait()
                .unwrap()
                .secret
                .expose(),
            "access"
        );
        // A separate outgoing sign-in with another grant never gets these
        // tokens: its logins say no source is attached.
        let other = OAuth2Grant::new(OAuthProvider::Yahoo, "id", Secret::new("other"));
        a.outgoing = Outgoing::Separate(ServerSettings {
            host: "smtp.example.com".into(),
            port: 465,
            security: Security::Tls,
            user: "someone@example.com".into(),
            credential: Credential::OAuth2(other),
            allow_plaintext_auth: false,
        });
        assert!(a.attach_token_source(std::sync::Arc::new(Fixed)));
        let outgoing = a.outgoing_settings().unwrap();
        let e = outgoing
            .credential
            .for_user(outgoing.user.clone())
            .for_login()
            .wait()
            .unwrap_err();
        assert_eq!(e.kind(), "config");
        // A new refresh token (signed in again) drops the old source.
        let renewed = a.incoming.credential.with_secret("refresh-2");
        assert!(matches!(&renewed, Credential::OAuth2(g) if !g.has_token_source()));
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let a = account("me@gmail.com");
        assert!(!format!("{a:?}").contains("pw"));
    }

    #[test]
    fn same_credentials_send_without_recent_and_without_plaintext() {
        let mut a = account("me@gmail.com");
        a.incoming.user = "Recent:me@gmail.com".into();
        a.incoming.allow_plaintext_auth = true;
        let out = a.outgoing_settings().unwrap();
        assert_eq!(out.user, "me@gmail.com");
        assert!(!out.allow_plaintext_auth, "never inherited");
        assert_eq!(out.credential, a.incoming.credential);
    }

    #[test]
    fn presets_say_what_the_provider_needs() {
        // Microsoft: a password is refused before connecting.
        let e = Account::for_email("a", "me@hotmail.co.uk", Credential::password("pw"))
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(e.oauth_required(), "{e}");
        assert_eq!(crate::error::Error::from(e).kind(), "oauth-required");
        let token =
            Account::for_email("a", "me@outlook.com", Credential::oauth2_token("t")).unwrap();
        token.validate().unwrap();
        // Zoho by region, and the region as the remedy for a refused login.
        let eu = Account::for_email("a", "me@zoho.eu", Credential::password("pw")).unwrap();
        assert_eq!(eu.incoming.host, "pop.zoho.eu");
        let refused = crate::error::Error::from_reply(
            pop3_proto::CommandKind::Pass,
            None,
            b"Invalid credentials",
            None,
        );
        match eu.remedy(&refused) {
            Some(crate::error::Remedy::ChooseRegion { hosts }) => {
                assert!(hosts.contains(&"pop.zoho.com.au") && hosts.contains(&"poppro.zoho.eu"));
            }
            other => panic!("{other:?}"),
        }
        // Gmail, Yahoo, AOL, Fastmail: an app password.
        for email in [
            "me@gmail.com",
            "me@yahoo.co.uk",
            "me@aol.com",
            "me@fastmail.com",
        ] {
            let a = Account::for_email("a", email, Credential::password("pw")).unwrap();
            let preset = Preset::for_email(email).unwrap().unwrap();
            assert!(
                preset.requires.contains(&Prerequisite::AppPassword),
                "{email}"
            );
            assert_eq!(
                a.remedy(&refused),
                Some(crate::error::Remedy::CreateAppPassword),
                "{email}"
            );
        }
        assert!(Preset::for_email("me@gmail.com")
            .unwrap()
            .unwrap()
            .requires
            .contains(&Prerequisite::EnablePop));
    }
}
