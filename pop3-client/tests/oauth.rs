//! OAuth2 end to end over HTTP: `HttpTokenEndpoint` against the fake
//! provider (rotating refresh tokens, 1-second access tokens, revocation,
//! faults), feeding the POP3 syncs and SMTP sends of the in-process servers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use pop3_client::oauth::{
    FileTokenStore, HttpTokenEndpoint, RefreshingTokenSource, TokenSource, TokenStore,
};
use pop3_client::pop3_proto::server::{ServerMessage, ServerOptions};
use pop3_client::smtp::SmtpClient;
use pop3_client::store::MaildirSink;
use pop3_client::sync::state::MemoryState;
use pop3_client::sync::{sync_blocking, SyncOptions};
use pop3_client::testing::oauth::{FakeProvider, ProviderFault};
use pop3_client::testing::smtp::{SmtpTestServer, SmtpTestServerConfig};
use pop3_client::testing::{TestServer, TestServerConfig};
use pop3_client::{AuthMethod, Credentials, ErrorKind, Secret};

fn pop3_server() -> TestServer {
    TestServer::start(TestServerConfig {
        options: ServerOptions {
            stls: true,
            sasl: vec!["XOAUTH2".into(), "OAUTHBEARER".into()],
            ..ServerOptions::default()
        },
        ..TestServerConfig::default()
    })
    .unwrap()
}

fn message(uid: &str) -> ServerMessage {
    ServerMessage {
        uid: uid.into(),
        content: format!("Subject: {uid}\r\n\r\nbody\r\n").into_bytes(),
    }
}

/// A token source as a new process would build it: the refresh token read
/// from `file`, rotated ones written back to it.
fn source(provider: &FakeProvider, file: &std::path::Path) -> Arc<RefreshingTokenSource> {
    let endpoint = HttpTokenEndpoint::new(&provider.token_url(), "client-id")
        .unwrap()
        .scope("https://outlook.office.com/POP.AccessAsUser.All")
        .scope("offline_access")
        .timeout(Duration::from_secs(2));
    Arc::new(
        RefreshingTokenSource::new(
            "user",
            FileTokenStore::new(file).load().unwrap(),
            Box::new(endpoint),
        )
        .with_store(Box::new(FileTokenStore::new(file))),
    )
}

#[test]
fn syncs_and_sends_refresh_over_http_and_keep_every_rotated_token_then_reconsent() {
    let provider = FakeProvider::start("password", 1).unwrap();
    let server = pop3_server();
    let smtp = SmtpTestServer::start(SmtpTestServerConfig {
        mechanisms: vec!["XOAUTH2".into()],
        ..SmtpTestServerConfig::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("refresh-token");
    FileTokenStore::new(&file)
        .save("user", &Secret::new("refresh-0"))
        .unwrap();
    let mut config = server.client_config();
    config.auth = AuthMethod::XOAuth2;
    let mut maildir = MaildirSink::create(dir.path().join("Maildir")).unwrap();
    let mut state = MemoryState::new();
    // Three runs, each a new process: each works only if the previous
    // one kept the refresh token the provider rotated.
    for round in 0..3 {
        server.deliver(message(&format!("uid-{round}")));
        let credentials = Credentials::oauth2("user", source(&provider, &file));
        let report = sync_blocking(
            &config,
            &credentials,
            &mut state,
            &mut maildir,
            SyncOptions::default(),
            None,
        )
        .unwrap_or_else(|f| panic!("round {round}: {}", f.error));
        assert_eq!(report.new, 1, "round {round}");
        // The same source sends mail.
        let mut smtp_config = smtp.client_config();
        smtp_config.auth = AuthMethod::XOAuth2;
        let mut client = SmtpClient::connect(&smtp_config).unwrap();
        client.login(&credentials).unwrap();
        client
            .send("me@example.org", &["you@example.net"], &b"hi\n"[..])
            .unwrap();
        client.quit().unwrap();
    }
    assert_eq!(smtp.messages().len(), 3);
    let current = provider.current_refresh_token().unwrap();
    assert_eq!(FileTokenStore::new(&file).load().unwrap().expose(), current);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // The grant revoked (the user changed the password): reconsent,
    // nothing fetched.
    provider.revoke();
    server.deliver(message("uid-late"));
    let failure = sync_blocking(
        &config,
        &Credentials::oauth2("user", source(&provider, &file)),
        &mut state,
        &mut maildir,
        SyncOptions::default(),
        None,
    )
    .unwrap_err();
    let e = failure.error;
    assert_eq!(e.kind(), ErrorKind::Reconsent, "{e}");
    assert_eq!(failure.report.new, 0);
    let text = format!("{e} {e:?}");
    assert!(text.contains("AADSTS50173"), "{text}");
    assert!(!text.contains(&current), "{text}");
    // The refresh token on disk is left as it was.
    assert_eq!(FileTokenStore::new(&file).load().unwrap().expose(), current);
}

#[test]
fn fifty_sessions_with_tokens_about_to_expire_refresh_once_over_http() {
    let provider = FakeProvider::start("password", 3600).unwrap();
    let server = pop3_server();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("refresh-token");
    FileTokenStore::new(&file)
        .save("user", &Secret::new("refresh-0"))
        .unwrap();
    let tokens = source(&provider, &file);
    let mut config = server.client_config();
    config.auth = AuthMethod::OAuthBearer;
    let credentials = Credentials::oauth2("user", tokens);
    std::thread::scope(|scope| {
        for _ in 0..50 {
            scope.spawn(|| {
                let client = pop3_client::blocking::Client::connect(&config, &credentials)
                    .unwrap_or_else(|e| panic!("{e}"));
                client.quit().unwrap();
            });
        }
    });
    assert_eq!(provider.refreshes(), 1);
}

#[test]
fn a_failing_token_endpoint_is_a_typed_transient_error_and_the_token_is_kept() {
    let provider = FakeProvider::start("password", 3600).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("refresh-token");
    FileTokenStore::new(&file)
        .save("user", &Secret::new("refresh-0"))
        .unwrap();
    for (fault, says) in [
        (ProviderFault::ServerError, "HTTP 500"),
        (ProviderFault::TooManyRequests, "HTTP 429"),
        (ProviderFault::Html, "not a token answer"),
        (ProviderFault::Huge, "larger than"),
        (ProviderFault::Silent, "did not answer within 2 seconds"),
    ] {
        provider.set_fault(fault);
        let started = Instant::now();
        let e = source(&provider, &file).access_token(1_000).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(10), "{fault:?}");
        assert_eq!(e.kind(), ErrorKind::TokenEndpoint, "{fault:?}: {e}");
        assert!(e.is_transient(), "{fault:?}");
        let text = format!("{e} {e:?}");
        assert!(text.contains(says), "{fault:?}: {text}");
        assert!(!text.contains("refresh-0"), "{text}");
        if fault == ProviderFault::TooManyRequests {
            assert_eq!(e.retry_after(), Some(Duration::from_secs(120)), "{e:?}");
        }
        assert_eq!(
            FileTokenStore::new(&file).load().unwrap().expose(),
            "refresh-0"
        );
    }
    // Unreachable: nothing listens.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let endpoint = HttpTokenEndpoint::new(&format!("http://127.0.0.1:{closed}/token"), "id")
        .unwrap()
        .timeout(Duration::from_secs(2));
    let e = RefreshingTokenSource::new("user", Secret::new("refresh-0"), Box::new(endpoint))
        .access_token(1_000)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TokenEndpoint, "{e}");
    // Back to normal: the same token refreshes.
    provider.set_fault(ProviderFault::None);
    source(&provider, &file).access_token(1_000).unwrap();
    assert_eq!(provider.refreshes(), 1);
}

/// A browser, as far as a sign-in needs one: GET `url`, and return the
/// whole answer.
fn get(url: &str) -> String {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap();
    let (authority, path) = rest.split_at(rest.find('/').unwrap());
    let mut stream = std::net::TcpStream::connect(authority).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

fn location(answer: &str) -> String {
    answer
        .lines()
        .find_map(|l| l.strip_prefix("Location: "))
        .unwrap()
        .trim()
        .to_owned()
}

#[test]
fn loopback_sign_in_with_pkce_gets_a_refresh_token_and_refuses_a_forged_state() {
    use pop3_client::oauth::SignIn;
    let provider = FakeProvider::start("password", 3600).unwrap();
    let endpoint = HttpTokenEndpoint::new(&provider.token_url(), "client-id")
        .unwrap()
        .scope("mail");
    let sign_in = SignIn::new(endpoint, &provider.auth_url()).unwrap();
    let browser = std::sync::Mutex::new(None);
    let tokens = sign_in
        .loopback(
            |url| {
                assert!(url.contains("code_challenge_method=S256"), "{url}");
                assert!(url.contains("scope=mail"), "{url}");
                let url = url.to_owned();
                *browser.lock().unwrap() = Some(std::thread::spawn(move || {
                    let redirect = location(&get(&url));
                    get(&redirect)
                }));
            },
            Duration::from_secs(10),
        )
        .unwrap();
    let page = browser.lock().unwrap().take().unwrap().join().unwrap();
    assert!(page.contains("Signed in"), "{page}");
    assert_eq!(
        tokens.refresh_token.unwrap().expose(),
        provider.current_refresh_token().unwrap()
    );
    assert_eq!(tokens.access_token.expose(), "password");
    // A redirect whose state is not the request's is refused, and its
    // code is never exchanged.
    let pending = sign_in.start("http://127.0.0.1:9/").unwrap();
    let redirect = location(&get(&pending.url));
    let code = redirect
        .split("code=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let e = sign_in
        .finish(pending, &format!("code={code}&state=forged"))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(e.to_string().contains("state does not match"), "{e}");
    // The provider's refusal (the user said no) is named.
    let pending = sign_in.start("http://127.0.0.1:9/").unwrap();
    let e = sign_in
        .finish(
            pending,
            "error=access_denied&error_description=The+user+declined",
        )
        .unwrap_err();
    assert!(
        e.to_string().contains("access_denied: The user declined"),
        "{e}"
    );
}

#[test]
fn device_sign_in_polls_until_the_user_approves() {
    use pop3_client::oauth::SignIn;
    let provider = FakeProvider::start("password", 3600).unwrap();
    let endpoint = HttpTokenEndpoint::new(&provider.token_url(), "client-id")
        .unwrap()
        .scope("mail");
    let approval = std::sync::Mutex::new(None);
    let tokens = SignIn::device(
        &endpoint,
        &provider.device_url(),
        |url, code| {
            assert_eq!(code, "WDJB-MJHT");
            let url = url.to_owned();
            // The user types the code a moment later.
            *approval.lock().unwrap() = Some(std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(1500));
                get(&url)
            }));
        },
        Duration::from_secs(20),
    )
    .unwrap();
    let page = approval.lock().unwrap().take().unwrap().join().unwrap();
    assert!(page.ends_with("approved"), "{page}");
    assert_eq!(
        tokens.refresh_token.unwrap().expose(),
        provider.current_refresh_token().unwrap()
    );
}

/// A Microsoft 365 shared mailbox: the application's own token (client
/// credentials), fetched again when it expires, no refresh token involved.
#[test]
fn client_credentials_log_in_without_a_user_token() {
    use pop3_client::oauth::ClientCredentials;
    let provider = FakeProvider::start("password", 2).unwrap();
    let server = pop3_server();
    let endpoint = HttpTokenEndpoint::new(&provider.token_url(), "client-id")
        .unwrap()
        .client_secret(Secret::new("app secret"))
        .scope("https://outlook.office365.com/.default");
    let source = RefreshingTokenSource::new(
        "shared@contoso.com",
        Secret::new(""),
        Box::new(ClientCredentials(endpoint)),
    );
    let credentials = Credentials::oauth2("user", Arc::new(source));
    let mut config = server.client_config();
    config.auth = AuthMethod::XOAuth2;
    for round in 0..3 {
        if round == 2 {
            // Past the 2-second token's expiry.
            std::thread::sleep(Duration::from_millis(2100));
        }
        let client = pop3_client::blocking::Client::connect(&config, &credentials).unwrap();
        client.quit().unwrap();
    }
    // Two logins within the token's life share it (Zoho allows 10 tokens
    // per 10 minutes); the third, after it expired, got a new one.
    assert_eq!(provider.refreshes(), 2);
    assert_eq!(
        provider.current_refresh_token().as_deref(),
        Some("refresh-0")
    );
}

/// The async client asks for a token that needs a refresh on a helper
/// thread, so that the HTTP exchange never holds a runtime thread; a
/// token at hand is taken without one.
#[test]
fn the_async_client_refreshes_off_the_runtime_thread() {
    use std::sync::Mutex;
    use std::thread::ThreadId;

    struct Recording {
        threads: Mutex<Vec<ThreadId>>,
        at_hand: bool,
    }
    impl TokenSource for Recording {
        fn access_token(&self, _now: u64) -> Result<Secret, pop3_client::Error> {
            self.threads
                .lock()
                .unwrap()
                .push(std::thread::current().id());
            Ok(Secret::new("password"))
        }
        fn invalidate(&self, _token: &Secret) {}
        fn cached_token(&self, _now: u64) -> Option<Secret> {
            self.at_hand.then(|| Secret::new("password"))
        }
    }
    let server = pop3_server();
    let mut config = server.client_config();
    config.auth = AuthMethod::XOAuth2;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for at_hand in [false, true] {
        let source = Arc::new(Recording {
            threads: Mutex::new(Vec::new()),
            at_hand,
        });
        let credentials = Credentials::oauth2("user", Arc::clone(&source) as Arc<dyn TokenSource>);
        runtime.block_on(async {
            let client = pop3_client::tokio::Client::connect(&config, &credentials)
                .await
                .unwrap();
            client.quit().await.unwrap();
        });
        let threads = source.threads.lock().unwrap().clone();
        if at_hand {
            assert!(threads.is_empty(), "a token at hand needs no refresh");
        } else {
            assert_eq!(threads.len(), 1);
            assert_ne!(threads[0], std::thread::current().id());
        }
    }
}
