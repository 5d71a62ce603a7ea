//! OAuth2 access tokens for POP3 and SMTP (XOAUTH2, OAUTHBEARER), kept
//! fresh.
//!
//! A connection asks a [`TokenSource`] for an access token each time it
//! logs in. [`RefreshingTokenSource`] refreshes ahead of expiry (a
//! margin), once for everyone waiting (concurrent sessions of one account
//! share one refresh: Zoho allows 10 tokens per 10 minutes), and hands a
//! rotated refresh token to a [`TokenStore`] **before** the new access
//! token is used (Microsoft rotates it on every use: keeping the first one
//! stops the mailbox 90 days later). If the store fails, the refresh fails
//! with a storage error and the old tokens stay in use. A refresh token
//! the provider refuses is [`Error::Reconsent`] (ask the user to sign in
//! again; that account alone pauses); a failing token endpoint is
//! [`Error::TokenEndpoint`] (transient).
//!
//! [`Credentials::oauth2`](crate::Credentials::oauth2) puts a source in
//! the credentials: every POP3 and SMTP login (each session of a sync,
//! every send) then asks it for a token, and a token the server refuses is
//! invalidated and the login tried once more with a fresh one.
//!
//! The token endpoint itself is a [`TokenEndpoint`]: `HttpTokenEndpoint`
//! (feature `oauth2-http`) does the HTTP exchange of RFC 6749 section 6;
//! an application may bring its own.
//!
//! ```
//! use pop3_client::oauth::{RefreshingTokenSource, TokenEndpoint, TokenError, TokenResponse, TokenSource};
//! use pop3_client::Secret;
//!
//! struct Provider;
//! impl TokenEndpoint for Provider {
//!     fn refresh(&self, refresh_token: &Secret) -> Result<TokenResponse, TokenError> {
//!         Ok(TokenResponse {
//!             access_token: Secret::new("fresh"),
//!             expires_in: Some(3600),
//!             refresh_token: None,
//!         })
//!     }
//! }
//! let source = RefreshingTokenSource::new("me@outlook.com", Secret::new("refresh"), Box::new(Provider));
//! assert_eq!(source.access_token(1_000)?.expose(), "fresh");
//! # Ok::<(), pop3_client::Error>(())
//! ```

#[cfg(feature = "oauth2-http")]
mod http;
mod providers;
#[cfg(feature = "oauth2-http")]
mod sign_in;
mod store;

use std::sync::Mutex;
use std::time::Duration;

#[cfg(feature = "oauth2-http")]
pub use http::{ClientCredentials, HttpFailure, HttpTokenEndpoint, MAX_TOKEN_ANSWER};
pub use providers::{
    OAuthProvider, FASTMAIL_SCOPES, GOOGLE_SCOPES, MICROSOFT_SCOPES, YAHOO_SCOPES, ZOHO_SCOPES,
};
#[cfg(feature = "oauth2-http")]
pub use sign_in::{PendingSignIn, SignIn};
pub use store::{FileTokenStore, TokenStore};

use crate::config::Secret;
pub use crate::config::TokenSource;
use crate::error::Error;

/// What a token endpoint answered to a refresh (RFC 6749 section 5.1).
#[derive(Debug, Clone)]
pub struct TokenResponse {
    /// The new access token.
    pub access_token: Secret,
    /// Its lifetime in seconds, when the provider says.
    pub expires_in: Option<u64>,
    /// A new refresh token, when the provider rotates it (Microsoft does on
    /// every use): the old one stops working.
    pub refresh_token: Option<Secret>,
}

/// Why a refresh failed, as the token endpoint said it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenError {
    /// The provider refused the refresh token (RFC 6749's `invalid_grant`:
    /// revoked, expired, the password changed, consent missing): the user
    /// must sign in again. `code` is the provider's (`invalid_grant`,
    /// `AADSTS50173`...).
    Refused {
        /// The provider's error code.
        code: String,
        /// Its description, escaped.
        description: String,
    },
    /// The endpoint could not be used now: unreachable, a 5xx, a 429, an
    /// answer that is not the JSON the standard says.
    Unavailable {
        /// What happened.
        detail: String,
        /// How long the endpoint asked to wait (a 429's Retry-After).
        retry_after: Option<Duration>,
    },
    /// The client's own registration is wrong (`invalid_client`,
    /// `unauthorized_client`): a settings problem.
    Client {
        /// The provider's error code and description.
        detail: String,
    },
}

impl TokenError {
    /// As this crate's error for `account`: a refusal is
    /// [`Error::Reconsent`], an unusable endpoint [`Error::TokenEndpoint`],
    /// a wrong client a settings error.
    pub fn into_error(self, account: &str) -> Error {
        match self {
            Self::Refused { code, description } => Error::Reconsent {
                account: account.to_owned(),
                code,
                description,
            },
            Self::Unavailable {
                detail,
                retry_after,
            } => Error::TokenEndpoint {
                detail,
                retry_after,
            },
            Self::Client { detail } => {
                Error::invalid_setting("the OAuth2 client (id or secret)", detail)
            }
        }
    }
}

/// Refreshes access tokens: the HTTP exchange with a provider's token
/// endpoint.
pub trait TokenEndpoint: Send + Sync {
    /// Exchanges `refresh_token` for a new access token.
    fn refresh(&self, refresh_token: &Secret) -> Result<TokenResponse, TokenError>;
}

/// The tokens of one account, and when the access token expires.
struct Tokens {
    access: Option<Secret>,
    /// Unix seconds; `None`: unknown (treated as expired once used once
    /// and refused).
    expires_at: Option<u64>,
    /// The access token's life as the provider gave it (`expires_in`).
    lifetime: Option<u64>,
    refresh: Secret,
}

/// A [`TokenSource`] that refreshes through a [`TokenEndpoint`], ahead of
/// expiry, once for every caller waiting, persisting a rotated refresh
/// token before the new access token is used.
pub struct RefreshingTokenSource {
    account: String,
    endpoint: Box<dyn TokenEndpoint>,
    store: Option<Box<dyn TokenStore>>,
    margin: Duration,
    /// Held across a refresh: concurrent sessions wait for it and then use
    /// its token (single flight).
    tokens: Mutex<Tokens>,
}

impl std::fmt::Debug for RefreshingTokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshingTokenSource")
            .field("account", &self.account)
            .field("margin", &self.margin)
            .finish_non_exhaustive()
    }
}

impl RefreshingTokenSource {
    /// Tokens for `account` from `refresh_token`; the first access token is
    /// fetched when first asked for. The margin is 5 minutes (at most a
    /// quarter of an access token's life).
    pub fn new(
        account: impl Into<String>,
        refresh_token: Secret,
        endpoint: Box<dyn TokenEndpoint>,
    ) -> Self {
        Self {
            account: account.into(),
            endpoint,
            store: None,
            margin: Duration::from_secs(300),
            tokens: Mutex::new(Tokens {
                access: None,
                expires_at: None,
                lifetime: None,
                refresh: refresh_token,
            }),
        }
    }

    /// Where a rotated refresh token is kept (the application's database,
    /// or a [`FileTokenStore`]); it is made durable before the new access
    /// token is used.
    pub fn with_store(mut self, store: Box<dyn TokenStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// How long before its expiry an access token is refreshed; at most a
    /// quarter of the token's life, so a short-lived token still serves
    /// the sessions of one sync rather than being refreshed for each.
    pub fn with_margin(mut self, margin: Duration) -> Self {
        self.margin = margin;
        self
    }

    /// An access token already held, with its expiry (Unix seconds).
    pub fn with_access_token(self, access: Secret, expires_at: u64) -> Self {
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.access = Some(access);
            tokens.expires_at = Some(expires_at);
        }
        self
    }

    /// The access token held, if it is valid beyond the margin at `now`
    /// (or has no known expiry: then used until a server refuses it).
    fn fresh(&self, tokens: &Tokens, now: u64) -> Option<Secret> {
        let margin = match tokens.lifetime {
            Some(life) => self.margin.as_secs().min(life / 4),
            None => self.margin.as_secs(),
        };
        let access = tokens.access.as_ref()?;
        match tokens.expires_at {
            Some(at) if now.saturating_add(margin) >= at => None,
            _ => Some(access.clone()),
        }
    }

    fn refresh(&self, tokens: &mut Tokens, now: u64) -> Result<(), Error> {
        let answer = self
            .endpoint
            .refresh(&tokens.refresh)
            .map_err(|e| e.into_error(&self.account))?;
        // The rotated refresh token is durable before anything uses the
        // new access token; if it cannot be kept, nothing changes.
        if let (Some(new), Some(store)) = (&answer.refresh_token, &self.store) {
            store
                .save(&self.account, new)
                .map_err(|source| Error::Storage {
                    what: "the rotated OAuth2 refresh token could not be kept".into(),
                    source,
                })?;
        }
        if let Some(new) = answer.refresh_token {
            tokens.refresh = new;
        }
        tokens.access = Some(answer.access_token);
        tokens.expires_at = answer.expires_in.map(|s| now.saturating_add(s));
        tokens.lifetime = answer.expires_in;
        Ok(())
    }
}

impl TokenSource for RefreshingTokenSource {
    fn access_token(&self, now: u64) -> Result<Secret, Error> {
        let mut tokens = self
            .tokens
            .lock()
            .map_err(|_| Error::invalid_setting("the token source", "a refresh panicked"))?;
        if let Some(token) = self.fresh(&tokens, now) {
            return Ok(token);
        }
        self.refresh(&mut tokens, now)?;
        tokens
            .access
            .clone()
            .ok_or_else(|| Error::invalid_setting("the token source", "no access token"))
    }

    fn cached_token(&self, now: u64) -> Option<Secret> {
        // Not waiting for a refresh under way: that is the helper thread's.
        let tokens = self.tokens.try_lock().ok()?;
        self.fresh(&tokens, now)
    }

    fn invalidate(&self, token: &Secret) {
        if let Ok(mut tokens) = self.tokens.lock() {
            if tokens.access.as_ref() == Some(token) {
                tokens.access = None;
            }
        }
    }
}

/// `%XX` and `+` decoded (a query string's value).
#[cfg(any(feature = "oauth2-http", feature = "testing"))]
pub(crate) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// A provider that rotates the refresh token on every use and refuses
    /// a used one, as Microsoft does; it counts its refreshes.
    struct Rotating {
        calls: Arc<AtomicUsize>,
        current: Mutex<String>,
        lifetime: u64,
    }

    impl TokenEndpoint for Rotating {
        fn refresh(&self, refresh_token: &Secret) -> Result<TokenResponse, TokenError> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            let mut current = self.current.lock().unwrap();
            if refresh_token.expose() != *current {
                return Err(TokenError::Refused {
                    code: "invalid_grant".into(),
                    description: "AADSTS70000: the refresh token was already used".into(),
                });
            }
            *current = format!("refresh-{n}");
            Ok(TokenResponse {
                access_token: Secret::new(format!("access-{n}")),
                expires_in: Some(self.lifetime),
                refresh_token: Some(Secret::new(current.clone())),
            })
        }
    }

    fn rotating() -> (Box<Rotating>, Arc<AtomicUsize>) {
        rotating_for(3600)
    }

    /// As [`rotating`], its access tokens living `lifetime` seconds.
    fn rotating_for(lifetime: u64) -> (Box<Rotating>, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        (
            Box::new(Rotating {
                calls: Arc::clone(&calls),
                current: Mutex::new("refresh-0".into()),
                lifetime,
            }),
            calls,
        )
    }

    #[test]
    fn a_token_at_hand_is_given_without_waiting_and_an_expiring_one_is_not() {
        let (endpoint, calls) = rotating();
        let source = RefreshingTokenSource::new("a", Secret::new("refresh-0"), endpoint)
            .with_access_token(Secret::new("held"), 1_000 + 3_600);
        assert_eq!(source.cached_token(1_000).unwrap().expose(), "held");
        // Within the margin: a refresh is due, which is not "at hand".
        assert!(source.cached_token(1_000 + 3_500).is_none());
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_short_lived_token_serves_three_quarters_of_its_life() {
        // An 8-second token against the 5-minute margin: refreshed at
        // every connection if the margin were not capped.
        let (endpoint, calls) = rotating_for(8);
        let source = RefreshingTokenSource::new("a", Secret::new("refresh-0"), endpoint);
        assert_eq!(source.access_token(1_000).unwrap().expose(), "access-1");
        assert_eq!(source.access_token(1_005).unwrap().expose(), "access-1");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(source.access_token(1_006).unwrap().expose(), "access-2");
    }

    #[test]
    fn fifty_sessions_about_to_expire_share_one_refresh() {
        let (endpoint, calls) = rotating();
        let source = Arc::new(
            RefreshingTokenSource::new("a", Secret::new("refresh-0"), endpoint)
                .with_access_token(Secret::new("old"), 1_000 + 60),
        );
        let threads: Vec<_> = (0..50)
            .map(|_| {
                let source = Arc::clone(&source);
                std::thread::spawn(move || source.access_token(1_000).unwrap())
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap().expose(), "access-1");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1, "one refresh for all");
        // Valid beyond the margin: no refresh.
        source.access_token(1_000 + 3000).unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // Refused by a server although it seemed valid: refreshed once.
        source.invalidate(&Secret::new("access-1"));
        assert_eq!(source.access_token(1_000).unwrap().expose(), "access-2");
    }

    /// A store that fails: the refresh fails with a storage error, and the
    /// new access token is not used.
    struct Failing;
    impl TokenStore for Failing {
        fn save(&self, _: &str, _: &Secret) -> std::io::Result<()> {
            Err(std::io::Error::other("disk full"))
        }
    }

    #[test]
    fn a_rotated_token_that_cannot_be_kept_is_not_used() {
        let (endpoint, _) = rotating();
        let source = RefreshingTokenSource::new("a", Secret::new("refresh-0"), endpoint)
            .with_store(Box::new(Failing));
        let e = source.access_token(0).unwrap_err();
        assert_eq!(e.kind(), "storage", "{e}");
        assert!(!e.is_transient());
    }

    #[test]
    fn a_refused_refresh_token_is_reconsent_and_an_endpoint_failure_transient() {
        struct Refusing;
        impl TokenEndpoint for Refusing {
            fn refresh(&self, _: &Secret) -> Result<TokenResponse, TokenError> {
                Err(TokenError::Refused {
                    code: "invalid_grant".into(),
                    description:
                        "AADSTS50173: the provided grant has expired due to it being revoked".into(),
                })
            }
        }
        let e = RefreshingTokenSource::new("me", Secret::new("r"), Box::new(Refusing))
            .access_token(0)
            .unwrap_err();
        assert_eq!(e.kind(), "reconsent", "{e}");
        assert!(!e.is_transient());
        assert!(e.to_string().contains("AADSTS50173"), "{e}");
        assert!(!format!("{e:?}").contains("\"r\""), "no token in the error");
        struct Down;
        impl TokenEndpoint for Down {
            fn refresh(&self, _: &Secret) -> Result<TokenResponse, TokenError> {
                Err(TokenError::Unavailable {
                    detail: "429 Too Many Requests".into(),
                    retry_after: Some(Duration::from_secs(60)),
                })
            }
        }
        let e = RefreshingTokenSource::new("me", Secret::new("r"), Box::new(Down))
            .access_token(0)
            .unwrap_err();
        assert_eq!(e.kind(), "token-endpoint", "{e}");
        assert!(e.is_transient());
        assert_eq!(e.retry_after(), Some(Duration::from_secs(60)));
    }
}
