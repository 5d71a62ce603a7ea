//! "Sign in with Google / Microsoft" on the "Add POP3 account" form: the
//! authorization code flow (PKCE) through the application's own redirect
//! URI, `/oauth/callback`. The account keeps the refresh token (sealed),
//! never a password; the poller refreshes the access token at each login
//! and writes a rotated refresh token back.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use pop3_client::oauth::{HttpTokenEndpoint, OAuthProvider, PendingSignIn, SignIn};
use pop3_client::Secret;

/// A provider the application signs in with.
#[derive(Debug, Clone)]
pub(crate) struct Provider {
    /// `google`, `microsoft` or `custom`: the button's value.
    pub(crate) key: String,
    /// The button's words.
    pub(crate) label: String,
    /// Where it signs in.
    pub(crate) provider: OAuthProvider,
    /// The application's client id there.
    pub(crate) client_id: String,
    /// The environment variable holding the client secret, if it has one.
    pub(crate) secret_env: Option<String>,
}

impl Provider {
    /// From `--oauth NAME=CLIENT_ID` (google or microsoft); the client
    /// secret, if any, in `POP3_WEB_<NAME>_CLIENT_SECRET`.
    pub(crate) fn from_arg(arg: &str) -> Result<Self, String> {
        let (name, client_id) = arg
            .split_once('=')
            .ok_or_else(|| format!("--oauth {arg}: use NAME=CLIENT_ID"))?;
        let (provider, label) = match name {
            "google" => (OAuthProvider::Google, "Google"),
            "microsoft" => (
                OAuthProvider::microsoft("common").map_err(|e| e.to_string())?,
                "Microsoft",
            ),
            other => {
                return Err(format!(
                    "--oauth {other}: google or microsoft (or --oauth-custom)"
                ))
            }
        };
        Ok(Self::new(name, label, provider, client_id))
    }

    /// From `--oauth-custom AUTH_URL,TOKEN_URL,CLIENT_ID` (a company's own
    /// provider).
    pub(crate) fn custom(arg: &str) -> Result<Self, String> {
        let parts: Vec<&str> = arg.split(',').collect();
        let [auth_url, token_url, client_id] = parts.as_slice() else {
            return Err(format!(
                "--oauth-custom {arg}: use AUTH_URL,TOKEN_URL,CLIENT_ID"
            ));
        };
        let provider = OAuthProvider::Custom {
            auth_url: (*auth_url).to_owned(),
            token_url: (*token_url).to_owned(),
            device_url: None,
        };
        Ok(Self::new("custom", "SSO", provider, client_id))
    }

    fn new(key: &str, label: &str, provider: OAuthProvider, client_id: &str) -> Self {
        let var = format!("POP3_WEB_{}_CLIENT_SECRET", key.to_ascii_uppercase());
        Self {
            key: key.to_owned(),
            label: label.to_owned(),
            provider,
            client_id: client_id.to_owned(),
            secret_env: std::env::var_os(&var).map(|_| var),
        }
    }

    /// Its token endpoint, with the client secret if any.
    pub(crate) fn endpoint(&self) -> Result<HttpTokenEndpoint, String> {
        let mut endpoint = HttpTokenEndpoint::for_provider(&self.provider, self.client_id.clone())
            .map_err(|e| e.to_string())?;
        if let Some(var) = &self.secret_env {
            if let Ok(secret) = std::env::var(var) {
                endpoint = endpoint.client_secret(Secret::new(secret));
            }
        }
        Ok(endpoint)
    }
}

/// A sign-in begun: who began it, with what form, waiting for the
/// provider's redirect.
pub(crate) struct Pending {
    pub(crate) login: String,
    pub(crate) form: HashMap<String, String>,
    pub(crate) provider: Provider,
    pub(crate) sign_in: SignIn,
    pub(crate) pending: PendingSignIn,
    started: Instant,
}

/// The sign-ins under way, by their `state`; forgotten after 10 minutes.
#[derive(Default)]
pub(crate) struct SignIns(Mutex<HashMap<String, Pending>>);

const WAIT: Duration = Duration::from_secs(600);

impl SignIns {
    /// Begins a sign-in: the URL to send the browser to.
    pub(crate) fn begin(
        &self,
        login: &str,
        form: HashMap<String, String>,
        provider: Provider,
        redirect_uri: &str,
    ) -> Result<String, String> {
        let sign_in = SignIn::new(provider.endpoint()?, &provider.provider.auth_url())
            .map_err(|e| e.to_string())?;
        let pending = sign_in.start(redirect_uri).map_err(|e| e.to_string())?;
        let url = pending.url.clone();
        let state = query_param(&url, "state").ok_or("the sign-in URL has no state")?;
        let mut all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        all.retain(|_, p| p.started.elapsed() < WAIT);
        all.insert(
            state,
            Pending {
                login: login.to_owned(),
                form,
                provider,
                sign_in,
                pending,
                started: Instant::now(),
            },
        );
        Ok(url)
    }

    /// The sign-in a redirect's query finishes, if it is one under way.
    pub(crate) fn take(&self, query: &str) -> Option<Pending> {
        let state = query_param(query, "state")?;
        let mut all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        all.remove(&state).filter(|p| p.started.elapsed() < WAIT)
    }
}

/// A query parameter's value, percent-decoded.
fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?').map_or(url, |(_, q)| q);
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
        .map(|v| {
            let bytes = v.as_bytes();
            let mut out = Vec::with_capacity(bytes.len());
            let mut i = 0;
            while i < bytes.len() {
                match bytes[i] {
                    b'%' => match v
                        .get(i + 1..i + 3)
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                    {
                        Some(b) => {
                            out.push(b);
                            i += 3;
                            continue;
                        }
                        None => out.push(b'%'),
                    },
                    b'+' => out.push(b' '),
                    b => out.push(b),
                }
                i += 1;
            }
            String::from_utf8_lossy(&out).into_owned()
        })
}
