//! A fake OAuth2 provider on 127.0.0.1 (plain HTTP, as
//! [`crate::oauth::HttpTokenEndpoint`] accepts for loopback): a token
//! endpoint whose refresh tokens rotate on every use and are refused once
//! used, access tokens with a short life, revocation, and faults on demand
//! (500, 429, HTML, a huge answer, no answer); an authorization endpoint
//! that redirects at once (PKCE S256 checked at the token endpoint); a
//! device endpoint whose sign-in a GET of its verification URL approves;
//! an introspection endpoint (RFC 7662) for a real server to check the
//! access tokens with.
//!
//! Signed access tokens ([`FakeProvider::signed`]) carry their user and
//! expiry under an HMAC-SHA256 of a key: any provider holding the same key
//! introspects them, so a long-running one started beside a real server
//! (`scripts/oauth.sh`, for Dovecot's `passdb oauth2`) accepts the tokens a
//! test's own provider issues, while each test keeps its own grant.
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::Listener;

/// How the token endpoint misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProviderFault {
    /// It answers as the standard says.
    None,
    /// `500 Internal Server Error`.
    ServerError,
    /// `429 Too Many Requests` with `Retry-After: 120`.
    TooManyRequests,
    /// `200` with an HTML page (a captive portal, a login page).
    Html,
    /// `200` with a 10 MB body.
    Huge,
    /// Reads the request and never answers.
    Silent,
}

/// The provider's state, shared with its connection threads.
struct State {
    /// The one refresh token that works now (`None`: the grant is revoked).
    refresh: Option<String>,
    issued: u32,
    fault: ProviderFault,
    refreshes: u32,
    access_token: String,
    expires_in: u64,
    /// Codes handed out by /authorize, with their PKCE challenge.
    codes: Vec<(String, String)>,
    /// The device sign-in under way: its code, and whether the user has
    /// approved it at /verify.
    device: Option<(String, bool)>,
    /// Signs access tokens (and introspects them) when set.
    signer: Option<Signer>,
}

/// The key signed access tokens are made with, and the user they name.
struct Signer {
    key: Vec<u8>,
    user: String,
}

impl State {
    /// The access token a grant gets now: the fixed one, or a token signed
    /// for the user that expires in `expires_in` seconds.
    fn access_token(&self) -> String {
        match &self.signer {
            Some(signer) => sign(&signer.key, &signer.user, unix_now() + self.expires_in),
            None => self.access_token.clone(),
        }
    }
}

/// A token endpoint at `http://127.0.0.1:PORT/token`; it stops when
/// dropped.
pub struct FakeProvider {
    listener: Listener,
    state: Arc<Mutex<State>>,
}

impl FakeProvider {
    /// Issues `access_token` (e.g. the test server's password, which it
    /// accepts as a token) valid `expires_in` seconds; the first refresh
    /// token is `refresh-0`.
    pub fn start(access_token: &str, expires_in: u64) -> io::Result<Self> {
        Self::launch(0, access_token, expires_in, None)
    }

    /// Issues access tokens for `user` signed with `key`, each valid
    /// `expires_in` seconds, which its introspection endpoint (and that of
    /// any provider with the same key) declares active until then.
    pub fn signed(key: &[u8], user: &str, expires_in: u64) -> io::Result<Self> {
        Self::signed_on(0, key, user, expires_in)
    }

    /// As [`FakeProvider::signed`], listening on 127.0.0.1:`port` (0: any
    /// free port): the long-running provider a server's configuration names.
    pub fn signed_on(port: u16, key: &[u8], user: &str, expires_in: u64) -> io::Result<Self> {
        let signer = Signer {
            key: key.to_vec(),
            user: user.to_owned(),
        };
        Self::launch(port, "", expires_in, Some(signer))
    }

    fn launch(
        port: u16,
        access_token: &str,
        expires_in: u64,
        signer: Option<Signer>,
    ) -> io::Result<Self> {
        let state = Arc::new(Mutex::new(State {
            refresh: Some("refresh-0".into()),
            issued: 0,
            fault: ProviderFault::None,
            refreshes: 0,
            access_token: access_token.into(),
            expires_in,
            codes: Vec::new(),
            device: None,
            signer,
        }));
        let shared = Arc::clone(&state);
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let listener = Listener::start_on(
            port,
            "oauth-test",
            String::new(),
            false,
            stop,
            move |s, _| {
                let _ = serve(s, &shared, &stopped);
            },
        )?;
        Ok(Self { listener, state })
    }

    /// The authorization endpoint's URL: a GET there with the standard
    /// query (PKCE S256 required) redirects at once, as if the user had
    /// signed in and consented, with a code and the state.
    pub fn auth_url(&self) -> String {
        format!("http://{}/authorize", self.addr())
    }

    /// The device authorization endpoint's URL: it answers with the user
    /// code `WDJB-MJHT` and a verification URL on this provider, where a
    /// GET approves the sign-in.
    pub fn device_url(&self) -> String {
        format!("http://{}/device", self.addr())
    }

    /// The token endpoint's URL.
    pub fn token_url(&self) -> String {
        format!("http://{}/token", self.addr())
    }

    /// The introspection endpoint's URL (RFC 7662): a POST of
    /// `token=...` answers `{"active":true,"username":...,"exp":...}` for
    /// a signed token that has not expired, `{"active":false}` otherwise.
    pub fn introspection_url(&self) -> String {
        format!("http://{}/introspect", self.addr())
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.listener.addr
    }

    /// The refresh token that works now.
    pub fn current_refresh_token(&self) -> Option<String> {
        self.lock().refresh.clone()
    }

    /// Revokes the grant: every refresh token is refused from now on.
    pub fn revoke(&self) {
        self.lock().refresh = None;
    }

    /// Makes the endpoint misbehave (or behave again).
    pub fn set_fault(&self, fault: ProviderFault) {
        self.lock().fault = fault;
    }

    /// Refresh requests answered with a token so far.
    pub fn refreshes(&self) -> u32 {
        self.lock().refreshes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A browser, as far as a sign-in needs one: GETs `url` (plain HTTP) and
/// follows redirects (at most 5), as a user who clicks "allow" does;
/// returns the last answer whole (status line, headers, body).
pub fn browse(url: &str) -> io::Result<String> {
    let mut url = url.to_owned();
    for _ in 0..5 {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| io::Error::other(format!("not a plain http:// URL: {url}")))?;
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let path = if path.is_empty() { "/" } else { path };
        let mut stream = TcpStream::connect(authority)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
        )?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        let redirect = answer.starts_with("HTTP/1.1 30");
        let location = answer
            .lines()
            .take_while(|l| !l.is_empty())
            .find_map(|l| l.strip_prefix("Location: "))
            .map(|l| l.trim().to_owned());
        match (redirect, location) {
            (true, Some(next)) => url = next,
            _ => return Ok(answer),
        }
    }
    Err(io::Error::other("more than 5 redirects"))
}

/// One request on one connection.
fn serve(mut stream: TcpStream, state: &Mutex<State>, stop: &AtomicBool) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    let body_start = loop {
        let n = stream.read(&mut buf)?;
        if n == 0 || request.len() > 64 * 1024 {
            return Ok(());
        }
        request.extend_from_slice(&buf[..n]);
        if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
    };
    let head = String::from_utf8_lossy(&request[..body_start]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
        .min(64 * 1024);
    while request.len() < body_start + length {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        request.extend_from_slice(&buf[..n]);
    }
    let raw_head = String::from_utf8_lossy(&request[..body_start]).into_owned();
    let target = raw_head.split(' ').nth(1).unwrap_or("").to_owned();
    if let Some(query) = target.strip_prefix("/authorize?") {
        return authorize(&mut stream, state, query);
    }
    if target.starts_with("/verify") {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, approved)) = &mut s.device {
            *approved = true;
        }
        return stream.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\napproved",
        );
    }
    if target == "/device" {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        s.device = Some(("device-code".into(), false));
        let addr = stream.local_addr()?;
        let body = format!(
            r#"{{"device_code":"device-code","user_code":"WDJB-MJHT","verification_uri":"http://{addr}/verify","expires_in":600,"interval":1}}"#
        );
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes())?;
        return stream.write_all(body.as_bytes());
    }
    let form = String::from_utf8_lossy(&request[body_start..]).into_owned();
    let field = |name: &str| {
        form.split('&')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .map(crate::oauth::percent_decode)
    };
    if target == "/introspect" {
        let answer = {
            let s = state.lock().unwrap_or_else(|p| p.into_inner());
            let key = s.signer.as_ref().map(|signer| signer.key.as_slice());
            match (key, field("token")) {
                (Some(key), Some(token)) => introspect(key, &token),
                _ => r#"{"active":false}"#.to_owned(),
            }
        };
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            answer.len()
        );
        stream.write_all(head.as_bytes())?;
        return stream.write_all(answer.as_bytes());
    }
    let fault = state.lock().map(|s| s.fault).unwrap_or(ProviderFault::None);
    let (status, content_type, body, extra) = match fault {
        ProviderFault::Silent => {
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(50));
            }
            return Ok(());
        }
        ProviderFault::ServerError => (500, "text/plain", b"oops".to_vec(), ""),
        ProviderFault::TooManyRequests => (
            429,
            "text/plain",
            b"slow down".to_vec(),
            "Retry-After: 120\r\n",
        ),
        ProviderFault::Html => (
            200,
            "text/html",
            b"<html><body>Sign in</body></html>".to_vec(),
            "",
        ),
        ProviderFault::Huge => (200, "application/json", vec![b' '; 10 << 20], ""),
        ProviderFault::None => {
            let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
            let presented = field("refresh_token");
            let grant = field("grant_type");
            let device_grant = "urn:ietf:params:oauth:grant-type:device_code";
            if grant.as_deref() == Some("client_credentials") {
                // The application's own token: no refresh token.
                s.refreshes += 1;
                let body = format!(
                    r#"{{"access_token":"{}","token_type":"Bearer","expires_in":{}}}"#,
                    s.access_token(),
                    s.expires_in
                );
                (200, "application/json", body.into_bytes(), "")
            } else if grant.as_deref() == Some(device_grant) {
                let approved = match &s.device {
                    Some((code, approved)) if Some(code) == field("device_code").as_ref() => {
                        *approved
                    }
                    _ => false,
                };
                if !approved {
                    (
                        400,
                        "application/json",
                        br#"{"error":"authorization_pending"}"#.to_vec(),
                        "",
                    )
                } else {
                    s.device = None;
                    (200, "application/json", issue(&mut s), "")
                }
            } else if grant.as_deref() == Some("authorization_code") {
                let code = field("code").unwrap_or_default();
                let verifier = field("code_verifier").unwrap_or_default();
                let expected = s
                    .codes
                    .iter()
                    .find(|(c, _)| *c == code)
                    .map(|(_, ch)| ch.clone());
                s.codes.retain(|(c, _)| *c != code);
                if expected.is_none() || expected != Some(s256(&verifier)) {
                    let body = br#"{"error":"invalid_grant","error_description":"unknown code or PKCE verifier"}"#;
                    (400, "application/json", body.to_vec(), "")
                } else {
                    (200, "application/json", issue(&mut s), "")
                }
            } else if grant.as_deref() != Some("refresh_token") {
                (
                    400,
                    "application/json",
                    br#"{"error":"unsupported_grant_type"}"#.to_vec(),
                    "",
                )
            } else if s.refresh.is_none() || presented != s.refresh {
                let body = br#"{"error":"invalid_grant","error_description":"AADSTS50173: The provided grant has expired due to it being revoked."}"#;
                (400, "application/json", body.to_vec(), "")
            } else {
                s.refreshes += 1;
                (200, "application/json", issue(&mut s), "")
            }
        }
    };
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(&body)?;
    stream.flush()
}

/// PKCE's S256: base64url(SHA-256(verifier)), unpadded.
fn s256(verifier: &str) -> String {
    use base64::Engine as _;
    let digest =
        crate::transport::trust::sha256(&crate::transport::crypto_provider(), verifier.as_bytes())
            .unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
}

/// GET /authorize: the user "signs in" at once; a redirect to the client's
/// redirect URI with a code and the state.
fn authorize(stream: &mut TcpStream, state: &Mutex<State>, query: &str) -> io::Result<()> {
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .map(crate::oauth::percent_decode)
    };
    let (Some(redirect), Some(challenge)) = (param("redirect_uri"), param("code_challenge")) else {
        return stream.write_all(
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
    };
    if param("code_challenge_method").as_deref() != Some("S256") {
        return stream.write_all(
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
    }
    let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
    let code = format!("code-{}", s.codes.len() + s.issued as usize);
    s.codes.push((code.clone(), challenge));
    let state_param = param("state").unwrap_or_default();
    let location = format!("{redirect}?code={code}&state={state_param}");
    stream.write_all(
        format!("HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

/// A token answer: the access token, and a new refresh token that replaces
/// the old one (rotation).
fn issue(s: &mut State) -> Vec<u8> {
    s.issued += 1;
    let rotated = format!("refresh-{}", s.issued);
    s.refresh = Some(rotated.clone());
    format!(
        r#"{{"access_token":"{}","token_type":"Bearer","expires_in":{},"refresh_token":"{rotated}"}}"#,
        s.access_token(),
        s.expires_in
    )
    .into_bytes()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A signed access token: `v1.USER.EXPIRY.MAC`, the user in base64url and
/// the MAC an HMAC-SHA256 of `USER.EXPIRY` under the key, in base64url.
fn sign(key: &[u8], user: &str, expiry: u64) -> String {
    use base64::Engine as _;
    let user = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(user);
    let signed = format!("{user}.{expiry}");
    let mac = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hmac_sha256(key, &signed));
    format!("v1.{signed}.{mac}")
}

/// What the introspection endpoint says of `token`.
fn introspect(key: &[u8], token: &str) -> String {
    use base64::Engine as _;
    let inactive = r#"{"active":false}"#.to_owned();
    let mut parts = token.split('.');
    let (Some("v1"), Some(user), Some(expiry), Some(_), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return inactive;
    };
    let Ok(exp) = expiry.parse::<u64>() else {
        return inactive;
    };
    let Some(name) = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(user)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
    else {
        return inactive;
    };
    // Recomputing the whole token compares the MAC too.
    if sign(key, &name, exp) != token || exp <= unix_now() {
        return inactive;
    }
    // Names of letters, digits and `@._-` only, so none needs escaping.
    let plain = |c: char| c.is_ascii_alphanumeric() || "@._-".contains(c);
    if !name.chars().all(plain) {
        return inactive;
    }
    format!(r#"{{"active":true,"username":"{name}","exp":{exp}}}"#)
}

/// HMAC-SHA256 (RFC 2104) over the crypto provider's SHA-256.
fn hmac_sha256(key: &[u8], message: &str) -> [u8; 32] {
    let provider = crate::transport::crypto_provider();
    let hash = |data: &[u8]| crate::transport::trust::sha256(&provider, data).unwrap_or_default();
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&hash(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
    inner.extend_from_slice(message.as_bytes());
    let mut outer: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
    outer.extend_from_slice(&hash(&inner));
    hash(&outer)
}
