//! The token endpoint over HTTP (feature `oauth2-http`): the refresh-token
//! exchange of RFC 6749 section 6 built and read by the `oauth2` crate,
//! carried by this crate's TCP connect (bounded name lookup, Happy
//! Eyeballs) and rustls set-up (certificates verified). One request per
//! connection (`Connection: close`), redirects not followed, the answer
//! capped, the whole exchange bounded in time; `http://` only for loopback
//! addresses (tests, local proxies).

use std::time::{Duration, Instant};

use oauth2::basic::BasicClient;
use oauth2::{ClientId, ClientSecret, RefreshToken, RequestTokenError, Scope, TokenUrl};

use super::{TokenEndpoint, TokenError, TokenResponse};
use crate::config::Secret;
use crate::endpoint::{Security, TlsRoots};
use crate::error::Error;
use crate::transport::{connect_tcp, tls_client_config, Connection};

/// Largest answer read from a token endpoint: 1 MiB (a token answer is a
/// few kilobytes).
pub const MAX_TOKEN_ANSWER: usize = 1 << 20;

/// A provider's token endpoint, reached over HTTPS.
///
/// ```
/// use pop3_client::oauth::HttpTokenEndpoint;
/// use pop3_client::Secret;
///
/// let microsoft = HttpTokenEndpoint::new(
///     "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token",
///     "00000000-0000-0000-0000-000000000000",
/// )?
/// .scope("https://outlook.office.com/POP.AccessAsUser.All")
/// .scope("offline_access");
/// // Plain HTTP is refused but for loopback addresses.
/// assert!(HttpTokenEndpoint::new("http://login.example.com/token", "id").is_err());
/// # Ok::<(), pop3_client::Error>(())
/// ```
pub struct HttpTokenEndpoint {
    token_url: TokenUrl,
    host: String,
    port: u16,
    tls: bool,
    client_id: String,
    client_secret: Option<Secret>,
    scopes: Vec<String>,
    timeout: Duration,
    roots: TlsRoots,
    /// The provider, when known: its tokens are checked before use.
    provider: Option<super::OAuthProvider>,
}

impl std::fmt::Debug for HttpTokenEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpTokenEndpoint")
            .field("token_url", &self.token_url.as_str())
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

/// Why the HTTP exchange failed (the `oauth2` crate's request error).
#[derive(Debug, thiserror::Error)]
#[error("{detail}")]
pub struct HttpFailure {
    detail: String,
    retry_after: Option<Duration>,
}

impl HttpFailure {
    fn new(detail: impl Into<String>) -> Self {
        Self {
            detail: detail.into(),
            retry_after: None,
        }
    }
}

impl HttpTokenEndpoint {
    /// The endpoint at `token_url` for the application registered as
    /// `client_id`. The URL must be `https://`, or `http://` on a loopback
    /// address; a 30-second bound on each exchange, Mozilla's roots.
    pub fn new(token_url: &str, client_id: impl Into<String>) -> Result<Self, Error> {
        let bad = |why: &str| Error::invalid_setting("the OAuth2 token URL", why);
        let (tls, rest) = if let Some(rest) = token_url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = token_url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(bad("must start with https://"));
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        if authority.contains('@') {
            return Err(bad("must not carry a user name or password"));
        }
        let (host, port_text) = match authority.strip_prefix('[') {
            Some(inner) => {
                let (host, after) = inner
                    .split_once(']')
                    .ok_or_else(|| bad("has an unclosed [ in its host"))?;
                match after {
                    "" => (host, None),
                    _ => (
                        host,
                        Some(
                            after
                                .strip_prefix(':')
                                .ok_or_else(|| bad("has a malformed host"))?,
                        ),
                    ),
                }
            }
            None => match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            },
        };
        let port = match port_text {
            None if tls => 443,
            None => 80,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| bad("has a port that is not a number from 1 to 65535"))?,
        };
        if host.is_empty() {
            return Err(bad("has no host"));
        }
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !tls && !loopback {
            return Err(bad(
                "must use https:// (http:// is accepted for loopback addresses only)",
            ));
        }
        let url = TokenUrl::new(token_url.to_owned()).map_err(|e| bad(&e.to_string()))?;
        Ok(Self {
            token_url: url,
            host: host.to_owned(),
            port,
            tls,
            client_id: client_id.into(),
            client_secret: None,
            scopes: Vec::new(),
            timeout: Duration::from_secs(30),
            roots: TlsRoots::WebPki,
            provider: None,
        })
    }

    /// The token endpoint of `provider` with its POP3 and SMTP scopes; the
    /// access tokens it issues are checked before use (a Microsoft token
    /// for Microsoft Graph is refused, naming the scopes to ask for).
    pub fn for_provider(
        provider: &super::OAuthProvider,
        client_id: impl Into<String>,
    ) -> Result<Self, Error> {
        let mut endpoint = Self::new(&provider.token_url(), client_id)?;
        endpoint.scopes = provider.scopes();
        endpoint.provider = Some(provider.clone());
        Ok(endpoint)
    }

    /// The client secret, for applications registered as confidential.
    pub fn client_secret(mut self, secret: Secret) -> Self {
        self.client_secret = Some(secret);
        self
    }

    /// The scopes asked for at each refresh, replacing those so far (the
    /// provider's, with [`Self::for_provider`]).
    pub fn with_scopes<S: Into<String>>(mut self, scopes: impl IntoIterator<Item = S>) -> Self {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// A scope asked for at each refresh (Microsoft's refresh needs them).
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scopes.push(scope.into());
        self
    }

    /// The bound on one whole exchange: connect, send, answer.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Which certificates to trust (Mozilla's roots by default).
    pub fn roots(mut self, roots: TlsRoots) -> Self {
        self.roots = roots;
        self
    }

    /// One HTTP exchange: the request the `oauth2` crate built, its answer.
    pub(super) fn exchange(
        &self,
        request: oauth2::HttpRequest,
    ) -> Result<oauth2::HttpResponse, HttpFailure> {
        let deadline = Instant::now() + self.timeout;
        let left = || deadline.saturating_duration_since(Instant::now());
        let unreachable = |e: Error| HttpFailure::new(format!("could not reach it: {e}"));
        let tcp = connect_tcp(&self.host, self.port, left()).map_err(unreachable)?;
        let security = if self.tls {
            Security::Tls
        } else {
            Security::Plain
        };
        let tls = || tls_client_config(&self.roots, &[], None);
        let mut connection =
            Connection::secure(tcp, security, &self.host, tls, left()).map_err(unreachable)?;
        let path = request
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        // Host as the URL spells it: an IPv6 literal bracketed, a port
        // other than the scheme's kept (RFC 9110 section 7.2).
        let host = request
            .uri()
            .authority()
            .map(|a| a.as_str().to_owned())
            .unwrap_or_else(|| self.host.clone());
        let mut head = format!(
            "{} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
            request.method(),
            request.body().len()
        );
        for (name, value) in request.headers() {
            let value = value.to_str().map_err(|_| HttpFailure::new("bad header"))?;
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(request.body());
        let io_failure = |e: std::io::Error| {
            if e.kind() == std::io::ErrorKind::TimedOut {
                HttpFailure::new(format!(
                    "it did not answer within {} seconds",
                    self.timeout.as_secs()
                ))
            } else {
                HttpFailure::new(format!("the connection failed: {e}"))
            }
        };
        connection
            .write_within(&bytes, left())
            .map_err(io_failure)?;
        let mut answer = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            let limit = left();
            if limit.is_zero() {
                return Err(io_failure(std::io::ErrorKind::TimedOut.into()));
            }
            let n = connection
                .read_within(&mut buf, limit)
                .map_err(io_failure)?;
            if n == 0 {
                break;
            }
            if answer.len() + n > MAX_TOKEN_ANSWER {
                return Err(HttpFailure::new(format!(
                    "its answer is larger than {} KiB, not a token answer",
                    MAX_TOKEN_ANSWER / 1024
                )));
            }
            answer.extend_from_slice(&buf[..n]);
        }
        parse_answer(&answer)
    }
}

/// An HTTP/1.1 answer read to its end: status, headers, body (whole, or
/// chunked). A 429 or 5xx is a failure here, with its Retry-After.
fn parse_answer(answer: &[u8]) -> Result<oauth2::HttpResponse, HttpFailure> {
    let garbled = || HttpFailure::new("its answer is not HTTP");
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(garbled)?;
    let head = std::str::from_utf8(&answer[..split]).map_err(|_| garbled())?;
    let mut body = answer[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(garbled)?;
    let mut response = oauth2::http::Response::builder().status(status);
    let mut chunked = false;
    let mut retry_after = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(garbled());
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") && value.eq_ignore_ascii_case("chunked") {
            chunked = true;
            continue;
        }
        if name.eq_ignore_ascii_case("retry-after") {
            retry_after = value.parse().ok().map(Duration::from_secs);
        }
        response = response.header(name.trim(), value);
    }
    if status == 429 || status >= 500 {
        return Err(HttpFailure {
            detail: format!(
                "it answered HTTP {status}{}",
                if status == 429 {
                    " (too many requests)"
                } else {
                    ""
                }
            ),
            retry_after,
        });
    }
    if (300..400).contains(&status) {
        return Err(HttpFailure::new(format!(
            "it answered with a redirect (HTTP {status}), which is not followed: check the token URL"
        )));
    }
    if chunked {
        body = dechunk(&body).ok_or_else(garbled)?;
    }
    response.body(body).map_err(|_| garbled())
}

/// The body of a chunked answer, or `None` if it is cut or malformed.
fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..end]).ok()?;
        let size_text = size_text.split(';').next()?.trim();
        let size = usize::from_str_radix(size_text, 16).ok()?;
        data = &data[end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

/// Codes that mean "the user must sign in again" (or, in a device
/// sign-in, that the user said no or took too long).
const SIGN_IN_AGAIN: [&str; 6] = [
    "invalid_grant",
    "interaction_required",
    "consent_required",
    "login_required",
    "access_denied",
    "expired_token",
];

impl TokenEndpoint for HttpTokenEndpoint {
    fn refresh(&self, refresh_token: &Secret) -> Result<TokenResponse, TokenError> {
        let client = self.client();
        let refresh = RefreshToken::new(refresh_token.expose().to_owned());
        let http = |request| self.exchange(request);
        let answer = client
            .exchange_refresh_token(&refresh)
            .add_scopes(self.scopes.iter().cloned().map(Scope::new))
            .request(&http);
        self.token_answer(answer)
    }
}

/// The client credentials grant (RFC 6749 section 4.4) as a token
/// endpoint: for an application's own access to mailboxes (Microsoft 365
/// shared mailboxes with `https://outlook.office365.com/.default`,
/// `POP.AccessAsApp`, `SMTP.SendAsApp`), with no user and no refresh token
/// to expire. Given to [`RefreshingTokenSource`](super::RefreshingTokenSource)
/// with an empty refresh token, which it ignores.
///
/// ```
/// use pop3_client::oauth::{ClientCredentials, HttpTokenEndpoint, RefreshingTokenSource};
/// use pop3_client::Secret;
///
/// let endpoint = HttpTokenEndpoint::new(
///     "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token",
///     "00000000-0000-0000-0000-000000000000",
/// )?
/// .client_secret(Secret::new("from the vault"))
/// .scope("https://outlook.office365.com/.default");
/// let source = RefreshingTokenSource::new(
///     "shared@contoso.com",
///     Secret::new(""),
///     Box::new(ClientCredentials(endpoint)),
/// );
/// # Ok::<(), pop3_client::Error>(())
/// ```
#[derive(Debug)]
pub struct ClientCredentials(pub HttpTokenEndpoint);

impl TokenEndpoint for ClientCredentials {
    fn refresh(&self, _unused: &Secret) -> Result<TokenResponse, TokenError> {
        let endpoint = &self.0;
        let http = |request| endpoint.exchange(request);
        let answer = endpoint
            .client()
            .exchange_client_credentials()
            .add_scopes(endpoint.scopes.iter().cloned().map(Scope::new))
            .request(&http);
        endpoint.token_answer(answer)
    }
}

impl HttpTokenEndpoint {
    /// The client the `oauth2` crate builds requests with.
    pub(super) fn client(
        &self,
    ) -> BasicClient<
        oauth2::EndpointNotSet,
        oauth2::EndpointNotSet,
        oauth2::EndpointNotSet,
        oauth2::EndpointNotSet,
        oauth2::EndpointSet,
    > {
        let mut client = BasicClient::new(ClientId::new(self.client_id.clone()))
            .set_token_uri(self.token_url.clone());
        if let Some(secret) = &self.client_secret {
            client = client.set_client_secret(ClientSecret::new(secret.expose().to_owned()));
        }
        client
    }

    /// The scopes asked for.
    pub(super) fn scope_list(&self) -> &[String] {
        &self.scopes
    }

    /// A token endpoint's answer (to a refresh, or to a code) as this
    /// crate's outcome.
    pub(super) fn token_answer<T>(
        &self,
        answer: Result<
            oauth2::basic::BasicTokenResponse,
            RequestTokenError<HttpFailure, oauth2::StandardErrorResponse<T>>,
        >,
    ) -> Result<TokenResponse, TokenError>
    where
        T: oauth2::ErrorResponseType + std::fmt::Display + 'static,
    {
        use oauth2::TokenResponse as _;
        match answer {
            Ok(answer) => {
                let access_token = Secret::new(answer.access_token().secret().as_str());
                if let Some(provider) = &self.provider {
                    provider
                        .check_access_token(&access_token)
                        .map_err(|e| TokenError::Client {
                            detail: e.to_string(),
                        })?;
                }
                Ok(TokenResponse {
                    access_token,
                    expires_in: answer.expires_in().map(|d| d.as_secs()),
                    refresh_token: answer
                        .refresh_token()
                        .map(|r| Secret::new(r.secret().as_str())),
                })
            }
            Err(RequestTokenError::ServerResponse(refusal)) => {
                let description = refusal
                    .error_description()
                    .map(|d| d.escape_default().to_string())
                    .unwrap_or_default();
                let error = refusal.error().to_string();
                // Microsoft names the cause in the description: AADSTS50173.
                let aadsts = description
                    .split(|c: char| !c.is_ascii_alphanumeric())
                    .find(|w| w.starts_with("AADSTS"));
                let code = match aadsts {
                    Some(a) => format!("{error} ({a})"),
                    None => error.clone(),
                };
                if SIGN_IN_AGAIN.contains(&error.as_str()) {
                    Err(TokenError::Refused { code, description })
                } else if error == "temporarily_unavailable" {
                    Err(TokenError::Unavailable {
                        detail: format!("it is temporarily unavailable: {description}"),
                        retry_after: None,
                    })
                } else {
                    Err(TokenError::Client {
                        detail: format!(
                            "the token endpoint refused the client: {code}: {description}"
                        ),
                    })
                }
            }
            Err(RequestTokenError::Request(failure)) => Err(TokenError::Unavailable {
                detail: failure.detail,
                retry_after: failure.retry_after,
            }),
            Err(RequestTokenError::Parse(..)) => Err(TokenError::Unavailable {
                detail: "its answer is not the JSON the standard says (RFC 6749 section 5)".into(),
                retry_after: None,
            }),
            Err(RequestTokenError::Other(why)) => Err(TokenError::Unavailable {
                detail: format!("its answer is not a token answer: {}", why.escape_default()),
                retry_after: None,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn urls_must_be_https_but_for_loopback() {
        for ok in [
            "https://oauth2.googleapis.com/token",
            "https://login.example.com:8443/t",
            "http://127.0.0.1:8080/token",
            "http://localhost/token",
            "http://[::1]:9/token",
        ] {
            HttpTokenEndpoint::new(ok, "id").unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "http://login.example.com/token",
            "ftp://x/token",
            "https://:443/",
            "https://user:pw@host/token",
            "https://host:port/token",
        ] {
            let e = HttpTokenEndpoint::new(bad, "id").unwrap_err();
            assert_eq!(e.kind(), "config", "{bad}: {e}");
        }
        let e = HttpTokenEndpoint::new("https://host:8443/t", "id").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("host", 8443));
        let e = HttpTokenEndpoint::new("http://[::1]:9/t", "id").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("::1", 9));
    }

    #[test]
    fn answers_are_read_whole_or_chunked_and_failures_carry_retry_after() {
        let whole =
            parse_answer(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{}").unwrap();
        assert_eq!(
            (whole.status().as_u16(), whole.body().as_slice()),
            (200, &b"{}"[..])
        );
        let chunked = parse_answer(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{\"\r\n3;x\r\na\"}\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(chunked.body().as_slice(), b"{\"a\"}");
        let limited =
            parse_answer(b"HTTP/1.1 429 Too Many\r\nRetry-After: 30\r\n\r\n").unwrap_err();
        assert_eq!(limited.retry_after, Some(Duration::from_secs(30)));
        assert!(parse_answer(b"HTTP/1.1 302 Found\r\nLocation: x\r\n\r\n").is_err());
        assert!(parse_answer(b"<html>").is_err());
        assert!(dechunk(b"5\r\nab").is_none());
    }
}
