//! The "sign in" button: the authorization code flow with PKCE (S256) and
//! a state check (RFC 6749 section 4.1, RFC 7636), for a web application's
//! redirect or a program's loopback redirect on 127.0.0.1 (RFC 8252); and
//! the device flow (RFC 8628) for a program without a browser.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use oauth2::{
    AuthUrl, AuthorizationCode, CsrfToken, DeviceAuthorizationUrl, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, StandardDeviceAuthorizationResponse,
};

use super::{percent_decode, HttpTokenEndpoint, TokenResponse};
use crate::error::Error;

/// A sign-in begun: the URL to send the user to, and what checks the
/// answer (keep it until the redirect comes back).
pub struct PendingSignIn {
    /// Where the user signs in and consents.
    pub url: String,
    state: String,
    verifier: PkceCodeVerifier,
    redirect_uri: String,
}

impl std::fmt::Debug for PendingSignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingSignIn")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// The authorization code flow of one application at one provider.
///
/// ```
/// use pop3_client::oauth::{HttpTokenEndpoint, OAuthProvider, SignIn};
///
/// let google = OAuthProvider::Google;
/// let endpoint = HttpTokenEndpoint::for_provider(&google, "my-client-id")?;
/// let sign_in = SignIn::new(endpoint, &google.auth_url())?;
/// let pending = sign_in.start("https://crm.example.com/oauth/callback")?;
/// assert!(pending.url.starts_with("https://accounts.google.com/"));
/// assert!(pending.url.contains("code_challenge_method=S256"));
/// // Send the user to pending.url and keep `pending` until the redirect
/// // comes back; then `sign_in.finish(pending, query)` gives the tokens.
/// # Ok::<(), pop3_client::Error>(())
/// ```
#[derive(Debug)]
pub struct SignIn {
    endpoint: HttpTokenEndpoint,
    auth_url: AuthUrl,
}

fn sign_in_failed(why: impl Into<String>) -> Error {
    Error::invalid_setting("the OAuth2 sign-in", why)
}

impl SignIn {
    /// Sign-in at `auth_url`, exchanging the code at `endpoint` (which
    /// carries the client id, secret and scopes).
    pub fn new(endpoint: HttpTokenEndpoint, auth_url: &str) -> Result<Self, Error> {
        let auth_url = AuthUrl::new(auth_url.to_owned())
            .map_err(|e| Error::invalid_setting("the OAuth2 authorization URL", e.to_string()))?;
        Ok(Self { endpoint, auth_url })
    }

    /// Begins a sign-in whose answer comes to `redirect_uri`: a fresh
    /// state and PKCE verifier, and the URL to open.
    pub fn start(&self, redirect_uri: &str) -> Result<PendingSignIn, Error> {
        let redirect = RedirectUrl::new(redirect_uri.to_owned())
            .map_err(|e| Error::invalid_setting("the OAuth2 redirect URI", e.to_string()))?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let client = self
            .endpoint
            .client()
            .set_auth_uri(self.auth_url.clone())
            .set_redirect_uri(redirect);
        let (url, state) = client
            .authorize_url(CsrfToken::new_random)
            .add_scopes(self.endpoint.scope_list().iter().cloned().map(Scope::new))
            // Google and Zoho give a refresh token only when asked so.
            .add_extra_param("access_type", "offline")
            .set_pkce_challenge(challenge)
            .url();
        Ok(PendingSignIn {
            url: url.to_string(),
            state: state.secret().clone(),
            verifier,
            redirect_uri: redirect_uri.to_owned(),
        })
    }

    /// Completes `pending` with the query string the redirect brought
    /// (`code=...&state=...`): the state must match, and the code is
    /// exchanged (with the PKCE verifier) for tokens.
    pub fn finish(&self, pending: PendingSignIn, query: &str) -> Result<TokenResponse, Error> {
        let param = |name: &str| {
            query
                .trim_start_matches('?')
                .split('&')
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                .map(percent_decode)
        };
        if let Some(error) = param("error") {
            let description = param("error_description").unwrap_or_default();
            return Err(sign_in_failed(format!(
                "the provider answered {}: {}",
                error.escape_default(),
                description.escape_default()
            )));
        }
        if param("state").as_deref() != Some(pending.state.as_str()) {
            return Err(sign_in_failed(
                "the answer's state does not match the request (a forged or stale redirect)",
            ));
        }
        let code = param("code").ok_or_else(|| sign_in_failed("the answer carries no code"))?;
        let redirect = RedirectUrl::new(pending.redirect_uri.clone())
            .map_err(|e| Error::invalid_setting("the OAuth2 redirect URI", e.to_string()))?;
        let client = self.endpoint.client().set_redirect_uri(redirect);
        let http = |request| self.endpoint.exchange(request);
        let answer = client
            .exchange_code(AuthorizationCode::new(code))
            .set_pkce_verifier(pending.verifier)
            .request(&http);
        self.endpoint
            .token_answer(answer)
            .map_err(|e| e.into_error(""))
    }

    /// The device flow (RFC 8628), for a program without a browser: the
    /// provider's device endpoint gives a code, `show` is given the URL
    /// to visit and the code to type there, and the token endpoint is then
    /// polled at the interval the provider asks, for at most `wait`.
    pub fn device(
        endpoint: &HttpTokenEndpoint,
        device_url: &str,
        show: impl FnOnce(&str, &str),
        wait: Duration,
    ) -> Result<TokenResponse, Error> {
        let device_url = DeviceAuthorizationUrl::new(device_url.to_owned())
            .map_err(|e| Error::invalid_setting("the OAuth2 device URL", e.to_string()))?;
        let client = endpoint.client().set_device_authorization_url(device_url);
        let http = |request| endpoint.exchange(request);
        let details: StandardDeviceAuthorizationResponse = client
            .exchange_device_code()
            .add_scopes(endpoint.scope_list().iter().cloned().map(Scope::new))
            .request(&http)
            .map_err(|e| match e {
                oauth2::RequestTokenError::Request(failure) => Error::TokenEndpoint {
                    detail: failure.to_string(),
                    retry_after: None,
                },
                other => sign_in_failed(format!(
                    "the device endpoint refused: {}",
                    other.to_string().escape_default()
                )),
            })?;
        show(
            details.verification_uri().as_str(),
            details.user_code().secret(),
        );
        let answer = client.exchange_device_access_token(&details).request(
            &http,
            std::thread::sleep,
            Some(wait),
        );
        endpoint.token_answer(answer).map_err(|e| e.into_error(""))
    }

    /// The whole flow for a program on the user's machine: a redirect to
    /// `http://127.0.0.1:PORT/` (a port chosen now), `show` given the URL
    /// to open (print it, or open a browser), then the one redirect
    /// awaited for at most `wait`, answered with a page saying the window
    /// may be closed.
    pub fn loopback(
        &self,
        show: impl FnOnce(&str),
        wait: Duration,
    ) -> Result<TokenResponse, Error> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let redirect_uri = format!("http://127.0.0.1:{}/", listener.local_addr()?.port());
        let pending = self.start(&redirect_uri)?;
        show(&pending.url);
        listener.set_nonblocking(true)?;
        let deadline = Instant::now() + wait;
        loop {
            let (mut stream, _) = match listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        return Err(sign_in_failed(format!(
                            "no answer came back from the browser within {} seconds",
                            wait.as_secs()
                        )));
                    }
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            stream.set_nonblocking(false)?;
            stream.set_read_timeout(Some(Duration::from_secs(10)))?;
            let mut request = Vec::new();
            let mut buf = [0u8; 2048];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let line = String::from_utf8_lossy(&request);
            let target = line
                .lines()
                .next()
                .and_then(|l| l.split(' ').nth(1))
                .unwrap_or("");
            let Some((_, query)) = target.split_once('?') else {
                // A browser asking for /favicon.ico: not the redirect.
                let _ = stream.write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                continue;
            };
            let query = query.to_owned();
            let outcome = self.finish(pending, &query);
            let page: &[u8] = if outcome.is_ok() {
                b"Signed in. You can close this window."
            } else {
                b"Sign-in failed: see the program's message."
            };
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                page.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(page);
            return outcome;
        }
    }
}
