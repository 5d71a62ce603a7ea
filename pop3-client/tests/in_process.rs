//! The blocking client against the in-process server over real TCP and TLS:
//! every login method, byte-exact fetches, pipelined batches, and each
//! injected fault mapped to the error an application acts on.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pop3_client::blocking::Client;
use pop3_client::pop3_proto::server::{ServerMessage, ServerOptions};
use pop3_client::pop3_proto::SessionError;
use pop3_client::testing::{Fault, TestServer, TestServerConfig};
use pop3_client::{
    AuthMethod, Credentials, Error, ErrorKind, MismatchSign, MsgNum, Security, TlsRoots,
};

fn corpus() -> Vec<ServerMessage> {
    let mut long_line = b"Subject: long\r\n\r\n".to_vec();
    long_line.extend(std::iter::repeat_n(b'L', 5000));
    long_line.extend_from_slice(b"\r\n");
    let bodies: Vec<Vec<u8>> = vec![
        b"Subject: one\r\n\r\nHello\r\n".to_vec(),
        b"Subject: dots\r\n\r\n.leading dot\r\n..two dots\r\n.\r\n \r\n".to_vec(),
        "Subject: 8bit\r\n\r\nGr\u{fc}\u{df}e, na\u{ef}ve caf\u{e9} \u{1F600}\r\n"
            .bytes()
            .chain(*b"\xff\xfe raw\r\n")
            .collect(),
        long_line,
        b"Subject: empty body\r\n\r\n".to_vec(),
    ];
    bodies
        .into_iter()
        .enumerate()
        .map(|(i, content)| ServerMessage {
            uid: format!("uid-{i}"),
            content,
        })
        .collect()
}

fn server(options: ServerOptions, implicit_tls: bool, fault: Fault) -> TestServer {
    TestServer::start(TestServerConfig {
        options,
        messages: corpus(),
        implicit_tls,
        fault,
        gmail: None,
    })
    .unwrap()
}

fn stls_options() -> ServerOptions {
    ServerOptions {
        stls: true,
        ..ServerOptions::default()
    }
}

fn creds() -> Credentials {
    Credentials::new("user", "password")
}

fn m(n: u32) -> MsgNum {
    MsgNum::new(n).unwrap()
}

#[test]
fn fetches_every_message_byte_for_byte_over_stls_and_implicit_tls() {
    for (implicit, options) in [(false, stls_options()), (true, ServerOptions::default())] {
        let server = server(options, implicit, Fault::None);
        let mut client = Client::connect(&server.client_config(), &creds()).unwrap();
        assert!(client.is_tls());
        let stat = client.stat().unwrap();
        assert_eq!(stat.count, 5);
        let uids = client.uidl().unwrap();
        assert_eq!(uids.len(), 5);
        for (item, expected) in uids.iter().zip(corpus()) {
            assert_eq!(item.uid.as_bytes(), expected.uid.as_bytes());
            assert_eq!(client.retr_vec(item.msg).unwrap(), expected.content);
        }
        let sizes = client.list().unwrap();
        assert_eq!(sizes[3].octets, corpus()[3].content.len() as u64);
        client.quit().unwrap();
    }
}

#[test]
fn pipelined_batch_with_progress_and_deletions() {
    let server = server(stls_options(), false, Fault::None);
    let mut client = Client::connect(&server.client_config(), &creds()).unwrap();
    assert!(
        client.capabilities().pipelining(),
        "CAPA re-read after login"
    );
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    client.on_progress(Some(Box::new(move |p| {
        log.lock().unwrap().push((p.index, p.bytes, p.done))
    })));
    let msgs: Vec<MsgNum> = (1..=5).map(m).chain([m(99)]).collect();
    let fetched = client.retr_many_vec(&msgs).unwrap();
    for (got, expected) in fetched.iter().zip(corpus()) {
        assert_eq!(got.as_ref().unwrap(), &expected.content);
    }
    assert!(
        fetched[5].is_err(),
        "message 99 does not exist, and the batch went on"
    );
    let progress = seen.lock().unwrap().clone();
    for (i, expected) in corpus().iter().enumerate() {
        assert!(
            progress.contains(&(i, expected.content.len() as u64, true)),
            "{i}: {progress:?}"
        );
    }
    let deleted = client.dele_many(&[m(1), m(2)]).unwrap();
    assert!(deleted.iter().all(Result::is_ok));
    client.quit().unwrap();
    let left: Vec<String> = server.messages().into_iter().map(|m| m.uid).collect();
    assert_eq!(left, ["uid-2", "uid-3", "uid-4"]);
}

#[test]
fn every_login_method() {
    let options = ServerOptions {
        stls: true,
        apop: true,
        sasl: ["PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2", "OAUTHBEARER"]
            .map(String::from)
            .to_vec(),
        ..ServerOptions::default()
    };
    let server = server(options, false, Fault::None);
    for method in [
        AuthMethod::Auto,
        AuthMethod::User,
        AuthMethod::Apop,
        AuthMethod::Plain,
        AuthMethod::Login,
        AuthMethod::CramMd5,
        AuthMethod::XOAuth2,
        AuthMethod::OAuthBearer,
    ] {
        let mut config = server.client_config();
        config.auth = method;
        let mut client =
            Client::connect(&config, &creds()).unwrap_or_else(|e| panic!("{method:?}: {e}"));
        assert_eq!(client.stat().unwrap().count, 5, "{method:?}");
        client.quit().unwrap();
        // And the wrong secret is an authentication error.
        let err = Client::connect(&config, &Credentials::new("user", "wrong"))
            .err()
            .unwrap();
        assert_eq!(err.kind(), ErrorKind::Auth, "{method:?}: {err}");
        assert!(err.to_string().contains("app-specific password"), "{err}");
    }
}

#[test]
fn no_credentials_without_tls_unless_allowed() {
    let server = server(ServerOptions::default(), false, Fault::None);
    let mut config = server.client_config();
    config.security = Security::Plain;
    let err = Client::connect(&config, &creds()).err().unwrap();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(err.to_string().contains("without TLS"), "{err}");
    config.allow_plaintext_auth = true;
    let mut client = Client::connect(&config, &creds()).unwrap();
    assert!(!client.is_tls());
    client.noop().unwrap();
}

#[test]
fn line_breaks_in_credentials_are_refused_as_settings_not_blamed_on_the_server() {
    let server = server(stls_options(), false, Fault::None);
    let config = server.client_config();
    // USER/PASS would send it as a line; PLAIN (which Auto picks here) would
    // carry it in base64: refused the same way, before anything is sent.
    for method in [AuthMethod::User, AuthMethod::Auto, AuthMethod::Plain] {
        let mut config = config.clone();
        config.auth = method;
        let injected = Credentials::new("user\r\nDELE 1", "password");
        let err = Client::connect(&config, &injected).err().unwrap();
        assert_eq!(err.kind(), ErrorKind::Config, "{err}");
        assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("user name contains a forbidden CR"), "{text}");
        assert!(!text.contains("server"), "{text}");
    }
    assert_eq!(
        server.messages().len(),
        corpus().len(),
        "nothing was deleted"
    );
}

#[test]
fn starttls_required_but_not_offered_fails_before_login() {
    let server = server(ServerOptions::default(), false, Fault::None);
    let err = Client::connect(&server.client_config(), &creds())
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorKind::Tls, "{err}");
    assert!(err.to_string().contains("does not offer STLS"), "{err}");
}

#[test]
fn untrusted_certificate_is_named() {
    let server = server(ServerOptions::default(), true, Fault::None);
    let mut config = server.client_config();
    config.roots = TlsRoots::WebPki;
    let err = Client::connect(&config, &creds()).err().unwrap();
    assert_eq!(err.kind(), ErrorKind::Tls, "{err}");
    assert!(
        err.to_string()
            .contains("not signed by a trusted authority"),
        "{err}"
    );
}

#[test]
fn disconnect_mid_retr_is_an_eof_error() {
    let server = server(
        stls_options(),
        false,
        Fault::DisconnectMidRetr { after: 20 },
    );
    let mut client = Client::connect(&server.client_config(), &creds()).unwrap();
    let err = client.retr_vec(m(2)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::ConnectionLost(SessionError::UnexpectedEof { during: "RETR" })
        ),
        "{err}"
    );
}

#[test]
fn slow_server_times_out() {
    let server = server(stls_options(), false, Fault::None);
    let mut config = server.client_config();
    config.timeouts.response = Duration::from_millis(300);
    let slow = TestServer::start(TestServerConfig {
        options: ServerOptions::default(),
        messages: corpus(),
        implicit_tls: true,
        fault: Fault::Delay(Duration::from_secs(2)),
        gmail: None,
    })
    .unwrap();
    let mut config = slow.client_config();
    config.timeouts.response = Duration::from_millis(300);
    let started = Instant::now();
    let err = Client::connect(&config, &creds()).err().unwrap();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
    drop(server);
}

#[test]
fn trickling_server_cannot_hold_the_client() {
    // One byte every 20 ms never leaves the connection idle for long, but the
    // whole answer must still arrive within the response deadline.
    let server = server(
        ServerOptions::default(),
        true,
        Fault::Trickle(Duration::from_millis(20)),
    );
    let mut config = server.client_config();
    config.timeouts.response = Duration::from_millis(400);
    config.timeouts.idle = Duration::from_secs(5);
    let err = Client::connect(&config, &creds()).err().unwrap();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
}

#[test]
fn garbage_status_is_a_protocol_error_showing_the_bytes() {
    let server = server(stls_options(), false, Fault::GarbageStatus);
    let mut client = Client::connect(&server.client_config(), &creds()).unwrap();
    let err = client.stat().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol);
    assert!(err.to_string().contains("HTTP/1.1 500"), "{err}");
}

#[test]
fn mailbox_in_use() {
    let options = ServerOptions {
        stls: true,
        refuse_login_with: Some((
            "IN-USE".into(),
            "Do you have another POP session running?".into(),
        )),
        ..ServerOptions::default()
    };
    let server = server(options, false, Fault::None);
    let err = Client::connect(&server.client_config(), &creds())
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorKind::InUse, "{err}");
    assert!(err.is_transient());
}

#[test]
fn stls_response_injection_is_refused() {
    let server = server(stls_options(), false, Fault::InjectAfterStls);
    let err = Client::connect(&server.client_config(), &creds())
        .err()
        .unwrap();
    assert!(
        matches!(err, Error::Protocol(SessionError::UnexpectedData { .. })),
        "{err}"
    );
}

#[test]
fn endless_body_is_bounded() {
    let server = server(stls_options(), false, Fault::EndlessBody);
    let mut config = server.client_config();
    config.session.max_body = Some(4 << 20);
    let mut client = Client::connect(&config, &creds()).unwrap();
    let err = client.retr(m(1), &mut std::io::sink()).unwrap_err();
    assert!(
        matches!(err, Error::Protocol(SessionError::BodyTooLarge { .. })),
        "{err}"
    );
}

#[test]
fn refused_stls_is_a_tls_error_before_any_credential() {
    let server = server(stls_options(), false, Fault::RefuseStls);
    let err = Client::connect(&server.client_config(), &creds())
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorKind::Tls, "{err}");
    assert!(err.to_string().contains("refused STLS"), "{err}");
}

/// Traces name every command and reply but never show a password.
#[test]
fn traces_redact_credentials() {
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    let server = server(stls_options(), false, Fault::None);
    let mut config = server.client_config();
    config.auth = AuthMethod::User;
    tracing::subscriber::with_default(subscriber, || {
        let mut client = Client::connect(&config, &Credentials::new("user", "password")).unwrap();
        client.stat().unwrap();
        client.quit().unwrap();
    });
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains("PASS <redacted>"), "{log}");
    assert!(log.contains("STAT"), "{log}");
    assert!(log.contains("pop3.command"), "{log}");
    assert!(!log.contains("password"), "the password leaked: {log}");
}

#[test]
fn login_delay_and_temporary_failures() {
    for (code, kind, transient) in [
        ("LOGIN-DELAY", ErrorKind::LoginDelay, true),
        ("SYS/TEMP", ErrorKind::Server, true),
        ("SYS/PERM", ErrorKind::Server, false),
    ] {
        let options = ServerOptions {
            stls: true,
            refuse_login_with: Some((code.into(), "not now".into())),
            ..ServerOptions::default()
        };
        let server = server(options, false, Fault::None);
        let err = Client::connect(&server.client_config(), &creds())
            .err()
            .unwrap();
        assert_eq!(
            (err.kind(), err.is_transient()),
            (kind, transient),
            "{code}: {err}"
        );
    }
}

/// A writer that fails like a full disk.
struct FullDisk;

impl std::io::Write for FullDisk {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        Err(std::io::Error::other("no space left on device"))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn after_an_interrupted_answer_the_connection_refuses_work_instead_of_misreading() {
    let server = server(stls_options(), false, Fault::None);
    let mut client = Client::connect(&server.client_config(), &creds()).unwrap();
    // The sink fails in the middle of message 1: the rest of its body is
    // still on the way, so the next answer read would be part of it.
    let err = client.retr(m(1), &mut FullDisk).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io, "{err}");
    for next in [client.noop().err(), client.retr_vec(m(2)).err()] {
        let err = next.expect("a command after the interrupted answer must fail, not misread");
        assert_eq!(err.kind(), ErrorKind::Unusable, "{err}");
        assert!(err.is_transient(), "{err}");
        assert!(err.to_string().contains("connect again"), "{err}");
    }

    // The same after the server hung up mid-answer.
    let cut = self::server(
        stls_options(),
        false,
        Fault::DisconnectMidRetr { after: 20 },
    );
    let mut client = Client::connect(&cut.client_config(), &creds()).unwrap();
    client.retr_vec(m(2)).unwrap_err();
    let err = client.noop().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unusable, "{err}");
}

#[test]
fn a_refused_command_leaves_the_connection_usable() {
    let server = server(stls_options(), false, Fault::None);
    let mut client = Client::connect(&server.client_config(), &creds()).unwrap();
    let err = client.retr_vec(m(99)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Server, "{err}");
    client.noop().unwrap();
    assert_eq!(client.retr_vec(m(1)).unwrap(), corpus()[0].content);
}

/// A message whose header holds raw UTF-8, on a server in Courier's UTF-8
/// mode: with UTF8 sent (the default) it arrives as stored; without, the
/// server's notice arrives instead (which is why the client sends it).
fn utf8_server() -> (TestServer, Vec<u8>) {
    let raw = "From: J\u{fc}rgen <j@example.com>\r\nSubject: Gr\u{fc}\u{df}e\r\n\r\nK\u{f6}ln\r\n"
        .as_bytes()
        .to_vec();
    let server = TestServer::start(TestServerConfig {
        options: ServerOptions {
            utf8: true,
            ..stls_options()
        },
        messages: vec![ServerMessage {
            uid: "u1".into(),
            content: raw.clone(),
        }],
        ..TestServerConfig::default()
    })
    .unwrap();
    (server, raw)
}

#[test]
fn utf8_is_sent_when_advertised_so_raw_utf8_headers_arrive_as_stored() {
    let (server, raw) = utf8_server();
    let mut client = Client::connect(&server.client_config(), &creds()).unwrap();
    assert!(client.utf8_enabled());
    assert_eq!(client.retr_vec(m(1)).unwrap(), raw);
    assert_eq!(client.list().unwrap()[0].octets, raw.len() as u64);
    client.quit().unwrap();

    let mut config = server.client_config();
    config.utf8 = false;
    let mut client = Client::connect(&config, &creds()).unwrap();
    assert!(!client.utf8_enabled());
    let replaced = client.retr_vec(m(1)).unwrap();
    assert_ne!(replaced, raw);
    assert!(String::from_utf8_lossy(&replaced).contains("Subject: Cannot display Unicode content"));
    client.quit().unwrap();
}

fn mismatch(err: &Error) -> (MismatchSign, Security, Security) {
    match err {
        Error::SecurityMismatch {
            sign,
            tried,
            suggested,
            ..
        } => (*sign, *tried, *suggested),
        other => panic!("not a mismatch: {other}"),
    }
}

#[test]
fn plaintext_against_an_implicit_tls_port_is_named() {
    let tls_port = server(ServerOptions::default(), true, Fault::None);
    for security in [Security::StartTls, Security::Plain] {
        let mut config = tls_port.client_config();
        config.security = security;
        config.allow_plaintext_auth = true;
        config.timeouts.response = Duration::from_millis(500);
        let started = Instant::now();
        let err = Client::connect(&config, &creds()).err().unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
        let (sign, tried, suggested) = mismatch(&err);
        assert!(matches!(sign, MismatchSign::Silence { .. }), "{err}");
        assert_eq!((tried, suggested), (security, Security::Tls));
        assert_eq!(err.kind(), ErrorKind::Timeout);
        let text = err.to_string();
        assert!(text.contains("not one byte"), "{text}");
        assert!(text.contains("implicit TLS"), "{text}");
    }
    // A server that closes at once, without a byte.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let closer = std::thread::spawn(move || drop(listener.accept()));
    let mut config = tls_port.client_config();
    config.port = Some(port);
    config.security = Security::StartTls;
    let err = Client::connect(&config, &creds()).err().unwrap();
    closer.join().unwrap();
    assert_eq!(
        mismatch(&err).0,
        MismatchSign::ClosedBeforeGreeting,
        "{err}"
    );
    assert!(!err.to_string().contains("in the middle"), "{err}");
}

#[test]
fn tls_against_a_plaintext_port_is_named() {
    let plain_port = server(stls_options(), false, Fault::None);
    let mut config = plain_port.client_config();
    config.security = Security::Tls;
    let err = Client::connect(&config, &creds()).err().unwrap();
    let (sign, tried, suggested) = mismatch(&err);
    assert_eq!(sign, MismatchSign::NotTls, "{err}");
    assert_eq!((tried, suggested), (Security::Tls, Security::StartTls));
    assert_eq!(err.kind(), ErrorKind::Tls);
    assert!(err.to_string().contains("plaintext POP3"), "{err}");
}
