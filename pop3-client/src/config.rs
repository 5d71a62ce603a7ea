//! POP3 settings: an [`Endpoint`] (where, how securely, how long to
//! wait), how to log in, and the protocol's limits; the credentials.

use std::fmt;

use pop3_proto::SessionConfig;

use crate::endpoint::{CertPin, CustomTls, Endpoint, Protocol, Security, Timeouts, TlsRoots};
use crate::error::Error;

/// How to log in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthMethod {
    /// The most secure method the server offers among SASL PLAIN and
    /// USER/PASS (both only over TLS unless plaintext is explicitly allowed).
    Auto,
    /// USER and PASS.
    User,
    /// APOP (weak MD5; only when asked for).
    Apop,
    /// SASL PLAIN.
    Plain,
    /// SASL LOGIN.
    Login,
    /// SASL CRAM-MD5 (weak; only when asked for).
    CramMd5,
    /// SASL XOAUTH2 with a bearer token as the secret.
    XOAuth2,
    /// SASL OAUTHBEARER with a bearer token as the secret.
    OAuthBearer,
}

impl AuthMethod {
    /// Parses the names `fetch` accepts: auto, user, apop, plain, login,
    /// cram-md5, xoauth2, oauthbearer.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name.to_ascii_lowercase().as_str() {
            "auto" => Self::Auto,
            "user" => Self::User,
            "apop" => Self::Apop,
            "plain" => Self::Plain,
            "login" => Self::Login,
            "cram-md5" => Self::CramMd5,
            "xoauth2" => Self::XOAuth2,
            "oauthbearer" => Self::OAuthBearer,
            _ => return None,
        })
    }

    /// Whether the method keeps the secret off the wire (APOP, CRAM-MD5),
    /// so plaintext connections may use it.
    pub fn hides_secret(self) -> bool {
        matches!(self, Self::Apop | Self::CramMd5)
    }
}

/// A password or OAuth token. `Debug` never shows it, and its memory is
/// wiped when it is dropped (each clone's too). With the `serde` feature it
/// serializes as `null` unless the caller opts in for one serialization with
/// [`WithSecrets`] (a settings file that must hold passwords: keep it
/// private); it deserializes from a string, or from `null` as empty (which
/// validation refuses where a secret is needed).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Drop for Secret {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

#[cfg(feature = "serde")]
thread_local! {
    /// How many [`WithSecrets`] serializations are running on this thread.
    static EXPOSE_SECRETS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Serializes the value it holds with its secrets written out: the one way
/// a [`Secret`] reaches serde's output, so that a settings file holds
/// passwords only where the application asked for it.
///
/// ```
/// use pop3_client::account::{Account, Credential};
/// use pop3_client::WithSecrets;
///
/// let account = Account::for_email("me", "me@gmail.com", Credential::app_password("abcd"))?;
/// let shown = serde_json::to_string(&account)?;
/// assert!(!shown.contains("abcd"));
/// let saved = serde_json::to_string(&WithSecrets(&account))?;
/// assert!(saved.contains("abcd"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
#[derive(Debug)]
pub struct WithSecrets<'a, T: ?Sized>(pub &'a T);

#[cfg(feature = "serde")]
impl<T: serde::Serialize + ?Sized> serde::Serialize for WithSecrets<'_, T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        /// Counts back down however the serialization ends.
        struct Exposed;
        impl Drop for Exposed {
            fn drop(&mut self) {
                EXPOSE_SECRETS.with(|n| n.set(n.get().saturating_sub(1)));
            }
        }
        EXPOSE_SECRETS.with(|n| n.set(n.get() + 1));
        let _exposed = Exposed;
        self.0.serialize(serializer)
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if EXPOSE_SECRETS.with(std::cell::Cell::get) > 0 {
            serializer.serialize_str(&self.0)
        } else {
            serializer.serialize_none()
        }
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text: Option<String> = serde::Deserialize::deserialize(deserializer)?;
        Ok(Self(text.unwrap_or_default()))
    }
}

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self(s)
    }
}

/// Gives each connection an OAuth2 access token valid now (the shipped one
/// is [`crate::oauth::RefreshingTokenSource`]; [`Credentials::oauth2`]
/// puts one in the credentials).
pub trait TokenSource: Send + Sync {
    /// An access token valid at `now` (Unix seconds) and for a margin
    /// after it.
    fn access_token(&self, now: u64) -> Result<Secret, Error>;
    /// The server refused `token` although it seemed valid: the next call
    /// refreshes (the login then retries once).
    fn invalidate(&self, token: &Secret);
    /// A token valid at `now` that is at hand without waiting (no refresh,
    /// no lock held elsewhere), if there is one. The async clients use it
    /// to skip the helper thread they otherwise ask for the token on, so
    /// that a refresh never blocks the runtime's threads.
    fn cached_token(&self, _now: u64) -> Option<Secret> {
        None
    }
}

/// Who to log in as.
#[derive(Clone)]
pub struct Credentials {
    /// The user name (for Gmail's recent mode, `recent:user@gmail.com`).
    pub user: String,
    /// The password, app-specific password, or OAuth access token.
    pub secret: Secret,
    /// Where access tokens come from when they are fetched at each login
    /// (XOAUTH2, OAUTHBEARER): `secret` is then ignored, every POP3 and
    /// SMTP login asks the source, and a token the server refuses is
    /// invalidated and the login tried once more with a fresh one.
    pub tokens: Option<std::sync::Arc<dyn TokenSource>>,
}

impl Credentials {
    /// User name and password (or token).
    pub fn new(user: impl Into<String>, secret: impl Into<Secret>) -> Self {
        Self {
            user: user.into(),
            secret: secret.into(),
            tokens: None,
        }
    }

    /// A user whose access tokens come from `tokens` at each login (with
    /// [`AuthMethod::XOAuth2`] or [`AuthMethod::OAuthBearer`]).
    pub fn oauth2(user: impl Into<String>, tokens: std::sync::Arc<dyn TokenSource>) -> Self {
        Self {
            user: user.into(),
            secret: Secret::new(""),
            tokens: Some(tokens),
        }
    }

    /// The credentials one login sends: these, or with a token source the
    /// token it gives now, got with [`login_secret!`] (the drivers' one
    /// retry rule: [`Self::retry`]).
    pub(crate) fn for_login(&self) -> LoginSecret {
        LoginSecret {
            credentials: self.clone(),
            invalidate: None,
        }
    }

    /// After the server refused `sent`: with a token source, the token is
    /// invalidated and the credentials to try once more are to be got
    /// (a login retries only if they differ from `sent`); otherwise `None`.
    pub(crate) fn retry(&self, sent: &Self) -> Option<LoginSecret> {
        self.tokens.as_ref()?;
        Some(LoginSecret {
            credentials: self.clone(),
            invalidate: Some(sent.secret.clone()),
        })
    }

    /// The token source asked now, on this thread.
    fn resolve(&self) -> Result<Self, Error> {
        let secret = match &self.tokens {
            Some(tokens) => tokens.access_token(unix_now())?,
            None => self.secret.clone(),
        };
        Ok(Self {
            user: self.user.clone(),
            secret,
            tokens: None,
        })
    }
}

/// The secret of one login, still to be got from the token source: at
/// once in the blocking clients ([`LoginSecret::wait`]); awaited in the
/// async ones, on a helper thread unless the source has a token at hand,
/// since a refresh is an HTTP exchange of up to its timeout.
pub(crate) struct LoginSecret {
    credentials: Credentials,
    /// A token the server refused, to tell the source of first (its lock
    /// may be held by a refresh: not on a runtime thread either).
    invalidate: Option<Secret>,
}

impl LoginSecret {
    /// The credentials, the token source asked on this thread.
    pub(crate) fn wait(self) -> Result<Credentials, Error> {
        if let (Some(tokens), Some(refused)) = (&self.credentials.tokens, &self.invalidate) {
            tokens.invalidate(refused);
        }
        self.credentials.resolve()
    }
}

impl std::future::IntoFuture for LoginSecret {
    type Output = Result<Credentials, Error>;
    type IntoFuture = crate::timer::OffThread<Result<Credentials, Error>>;

    fn into_future(self) -> Self::IntoFuture {
        let Some(tokens) = &self.credentials.tokens else {
            return crate::timer::OffThread::ready(self.wait());
        };
        if self.invalidate.is_none() {
            if let Some(secret) = tokens.cached_token(unix_now()) {
                return crate::timer::OffThread::ready(Ok(Credentials {
                    user: self.credentials.user.clone(),
                    secret,
                    tokens: None,
                }));
            }
        }
        crate::timer::OffThread::spawn(move || self.wait())
    }
}

/// The credentials of one login in either driver: `login_secret!(call)`
/// waits in the blocking clients, `login_secret!(call, await)` awaits in
/// the async ones (the operation lists pass their `$aw`).
macro_rules! login_secret {
    ($call:expr) => {
        $call.wait()
    };
    ($call:expr, $aw:ident) => {
        $call.$aw
    };
}
pub(crate) use login_secret;

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("secret", &self.secret)
            .field("tokens", &self.tokens.as_ref().map(|_| "a token source"))
            .finish()
    }
}

impl PartialEq for Credentials {
    fn eq(&self, other: &Self) -> bool {
        let same_source = match (&self.tokens, &other.tokens) {
            (None, None) => true,
            (Some(a), Some(b)) => std::sync::Arc::ptr_eq(a, b),
            _ => false,
        };
        self.user == other.user && self.secret == other.secret && same_source
    }
}

impl Eq for Credentials {}

/// The time a token source is asked about: Unix seconds now.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Largest message accepted by default: 1 GiB, far above what mail servers
/// accept, yet a bound on a server that never ends a body.
pub const DEFAULT_MAX_MESSAGE: u64 = 1 << 30;

/// Everything needed to reach and log in to a POP3 server: start from
/// [`ClientConfig::new`] and set fields, or use [`ClientConfig::builder`].
/// (Not built with a struct literal outside this crate, so that a setting
/// can be added without breaking callers.)
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Where and how securely to connect: host, port, security, trust,
    /// pins, timeouts. The config dereferences to it, so `config.host`
    /// and `config.timeouts` read and write as fields of the config.
    pub endpoint: Endpoint,
    /// How to log in.
    pub auth: AuthMethod,
    /// Send credentials over a connection without TLS. Off by default:
    /// anyone on the path could read them. APOP and CRAM-MD5, which send
    /// only a digest, are used over plaintext without it when asked for
    /// ([`AuthMethod::hides_secret`]); their digests are weak (MD5) and
    /// can be attacked offline.
    pub allow_plaintext_auth: bool,
    /// Send `UTF8` (RFC 6856) when the server advertises it: before login,
    /// or right after if the server advertises it only then. On by default:
    /// servers such as Courier otherwise replace a message whose header
    /// holds raw UTF-8 with a generated notice. A server that refuses it is
    /// not an error.
    pub utf8: bool,
    /// Protocol limits (line cap, body cap: [`DEFAULT_MAX_MESSAGE`],
    /// pipelining window).
    pub session: SessionConfig,
    /// Most entries accepted in one LIST or UIDL answer
    /// ([`DEFAULT_MAX_LISTING`]): a server that streams entries forever gets
    /// a protocol error, not the client's memory.
    pub max_listing_entries: usize,
    /// What the server advertised in an earlier session
    /// ([`crate::pop3::ServerProfile`], from `Client::server_profile`), or
    /// `None`: with it, a session to a server remembered as pipelining
    /// (implicit TLS or plaintext; not STLS, whose CAPA must be read first)
    /// sends CAPA and the login in one flight, and the CAPA after login with
    /// the first commands (two round trips fewer). A login the memory no
    /// longer fits is chosen again from this session's CAPA.
    pub server_profile: Option<crate::pop3::ServerProfile>,
}

crate::endpoint::holds_endpoint!(ClientConfig);

/// Most entries in one listing by default: 1,000,000 (far above any real
/// mailbox; about 100 MB of UIDs at most).
pub const DEFAULT_MAX_LISTING: usize = 1_000_000;

impl ClientConfig {
    /// Settings for `host` with implicit TLS on port 995, certificates checked
    /// against Mozilla's roots, automatic login.
    pub fn new(host: impl Into<String>) -> Self {
        Self {
            endpoint: Endpoint::new(Protocol::Pop3, host),
            auth: AuthMethod::Auto,
            allow_plaintext_auth: false,
            utf8: true,
            session: SessionConfig {
                max_body: Some(DEFAULT_MAX_MESSAGE),
                ..SessionConfig::default()
            },
            max_listing_entries: DEFAULT_MAX_LISTING,
            server_profile: None,
        }
    }

    /// Refuses settings that cannot work, naming the setting: an empty
    /// host, port 0, a zero timeout (`Duration::MAX` is the way to say "no
    /// limit"), a pipelining window of 0 or a refill outside 1..=window, a
    /// line cap outside 512 bytes..16 MiB, a UID cap of 0 or above the line
    /// cap, [`TlsRoots::PinsOnly`] without a pin, pins beside a custom TLS
    /// set-up. The clients call it before connecting.
    pub fn validate(&self) -> Result<(), Error> {
        let refuse = |setting: &str, why: &str| Err(Error::invalid_setting(setting, why));
        self.endpoint.validate()?;
        let s = &self.session;
        if s.pipeline_max == 0 {
            return refuse(
                "session.pipeline_max",
                "is 0, so no command could ever be sent (1 turns pipelining off)",
            );
        }
        if s.pipeline_refill == 0 || s.pipeline_refill > s.pipeline_max {
            return refuse(
                "session.pipeline_refill",
                "must be between 1 and session.pipeline_max",
            );
        }
        if !(MIN_LINE..=MAX_LINE).contains(&s.max_line) {
            return refuse(
                "session.max_line",
                "must be between 512 bytes (RFC 1939's longest reply) and 16 MiB",
            );
        }
        // A longer UID could not be recorded in a sync's state (512 is
        // pop3-proto's own bound for a UID; RFC 1939 allows 70).
        if s.max_uid == 0 || s.max_uid > s.max_line || s.max_uid > pop3_proto::DEFAULT_MAX_UID_LEN {
            return refuse(
                "session.max_uid",
                "must be between 1 and 512, and no more than session.max_line",
            );
        }
        Ok(())
    }

    /// A builder for settings for `host`, starting from
    /// [`ClientConfig::new`]'s defaults; [`ClientConfigBuilder::build`]
    /// validates.
    ///
    /// ```
    /// use std::time::Duration;
    /// use pop3_client::{AuthMethod, ClientConfig, Security};
    ///
    /// let config = ClientConfig::builder("pop.example.com")
    ///     .security(Security::StartTls) // port 110
    ///     .auth(AuthMethod::Plain)
    ///     .timeout(Duration::from_secs(20))
    ///     .build()?;
    /// assert_eq!(config.port(), 110);
    ///
    /// let err = ClientConfig::builder("pop.example.com").port(0).build().unwrap_err();
    /// assert!(err.to_string().contains("port"));
    /// # Ok::<(), pop3_client::Error>(())
    /// ```
    pub fn builder(host: impl Into<String>) -> ClientConfigBuilder {
        ClientConfigBuilder(Self::new(host))
    }
}

/// Builds a [`ClientConfig`] step by step ([`ClientConfig::builder`]);
/// [`ClientConfigBuilder::build`] refuses settings that cannot work, as
/// [`ClientConfig::validate`] does.
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until build() is called"]
pub struct ClientConfigBuilder(ClientConfig);

/// The setters both configuration builders share: [`ClientConfig`] and
/// `smtp::SmtpConfig` name their connection settings alike, so one text
/// serves both (each builder is a tuple struct around its config).
macro_rules! connection_setters {
    () => {
        /// The port (default: the usual one for the security chosen).
        pub fn port(mut self, port: u16) -> Self {
            self.0.port = Some(port);
            self
        }

        /// How the connection is secured (default: [`Security::Tls`]).
        pub fn security(mut self, security: Security) -> Self {
            self.0.security = security;
            self
        }

        /// Which authorities to trust (default: [`TlsRoots::WebPki`]).
        pub fn roots(mut self, roots: TlsRoots) -> Self {
            self.0.roots = roots;
            self
        }

        /// Trusts the authorities (or the self-signed certificate) in a
        /// PEM file: [`TlsRoots::CaFile`].
        pub fn ca_file(self, path: impl Into<std::path::PathBuf>) -> Self {
            self.roots(TlsRoots::CaFile(path.into()))
        }

        /// Adds a certificate pin (SHA-256 of the certificate or its key).
        pub fn pin(mut self, pin: CertPin) -> Self {
            self.0.pins.push(pin);
            self
        }

        /// TLS set up by the caller, replacing roots and pins.
        pub fn custom_tls(mut self, custom: CustomTls) -> Self {
            self.0.custom_tls = Some(custom);
            self
        }

        /// How to log in (default: [`AuthMethod::Auto`]).
        pub fn auth(mut self, auth: AuthMethod) -> Self {
            self.0.auth = auth;
            self
        }

        /// Allows credentials over a connection without TLS (off by
        /// default: anyone on the path could read them).
        pub fn allow_plaintext_auth(mut self, allow: bool) -> Self {
            self.0.allow_plaintext_auth = allow;
            self
        }

        /// Every limit on waiting.
        pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
            self.0.timeouts = timeouts;
            self
        }

        /// The connect, handshake, response and idle limits all set to
        /// `limit` ([`Timeouts::all`]).
        pub fn timeout(self, limit: std::time::Duration) -> Self {
            self.timeouts(Timeouts::all(limit))
        }
    };
}
pub(crate) use connection_setters;

impl ClientConfigBuilder {
    connection_setters!();

    /// Sends `UTF8` when advertised ([`ClientConfig::utf8`]; on by default).
    pub fn utf8(mut self, utf8: bool) -> Self {
        self.0.utf8 = utf8;
        self
    }

    /// Protocol limits: line cap, body cap, pipelining window.
    pub fn session(mut self, session: SessionConfig) -> Self {
        self.0.session = session;
        self
    }

    /// The largest message accepted (`None`: no cap; default
    /// [`DEFAULT_MAX_MESSAGE`]).
    pub fn max_message(mut self, max: Option<u64>) -> Self {
        self.0.session.max_body = max;
        self
    }

    /// Most entries accepted in one LIST or UIDL answer (default
    /// [`DEFAULT_MAX_LISTING`]).
    pub fn max_listing_entries(mut self, max: usize) -> Self {
        self.0.max_listing_entries = max;
        self
    }

    /// The settings, validated ([`ClientConfig::validate`]): an error
    /// names the setting that cannot work.
    pub fn build(self) -> Result<ClientConfig, Error> {
        self.0.validate()?;
        Ok(self.0)
    }
}

/// The smallest line cap [`ClientConfig::validate`] accepts: RFC 1939's
/// longest reply line.
const MIN_LINE: usize = 512;
/// The largest line cap accepted: a line is buffered whole (twice, for
/// the read buffer), so this bounds memory.
const MAX_LINE: usize = 16 << 20;
