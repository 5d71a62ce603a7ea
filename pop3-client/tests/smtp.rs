//! The blocking SMTP client against the in-process SMTP server: STARTTLS and
//! implicit TLS, each SASL mechanism, what arrives (dots unstuffed, CRLF),
//! and every injected fault as its typed kind.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Read;
use std::time::{Duration, Instant};

use pop3_client::smtp::{Envelope, SmtpClient, SmtpConfig, SmtpError};
use pop3_client::testing::smtp::{SmtpFault, SmtpTestServer, SmtpTestServerConfig};
use pop3_client::{AuthMethod, Credentials, Security, Timeouts};

fn server(implicit_tls: bool, fault: SmtpFault) -> SmtpTestServer {
    SmtpTestServer::start(SmtpTestServerConfig {
        implicit_tls,
        fault,
        ..SmtpTestServerConfig::default()
    })
    .unwrap()
}

fn good() -> Credentials {
    Credentials::new("user", "password")
}

fn connect(config: &SmtpConfig) -> SmtpClient {
    let mut client = SmtpClient::connect(config).unwrap();
    client.login(&good()).unwrap();
    client
}

/// 8-bit text, dot-led lines, bare LF, CRLF, a lone dot, no final newline.
const MESSAGE: &[u8] = b"Subject: caf\xc3\xa9\nFrom: me@example.org\n\n.leading dot\n..two dots\nbare LF\r\nCRLF line\n.\n\xe2\x82\xac 8-bit\nlast";
const ARRIVES: &[u8] = b"Subject: caf\xc3\xa9\r\nFrom: me@example.org\r\n\r\n.leading dot\r\n..two dots\r\nbare LF\r\nCRLF line\r\n.\r\n\xe2\x82\xac 8-bit\r\nlast\r\n";

#[test]
fn sends_over_starttls_and_implicit_tls_with_each_mechanism() {
    for implicit_tls in [false, true] {
        for auth in [
            AuthMethod::Auto,
            AuthMethod::Plain,
            AuthMethod::Login,
            AuthMethod::CramMd5,
        ] {
            let server = server(implicit_tls, SmtpFault::None);
            let mut config = server.client_config();
            config.auth = auth;
            let mut client = connect(&config);
            assert!(client.is_tls());
            let report = client
                .send(
                    "me@example.org",
                    &["you@example.net", "other@example.net"],
                    MESSAGE,
                )
                .unwrap();
            assert!(report.delivery.all_accepted());
            assert_eq!(report.delivery.accepted().count(), 2);
            assert_eq!(
                (report.delivery.code, report.delivery.text.as_str()),
                (250, "Ok: queued as TEST1")
            );
            assert_eq!(report.bytes, MESSAGE.len() as u64);
            client.quit().unwrap();
            let messages = server.messages();
            assert_eq!(messages.len(), 1, "{implicit_tls} {auth:?}");
            assert_eq!(messages[0].from, "me@example.org");
            assert_eq!(messages[0].to, ["you@example.net", "other@example.net"]);
            assert_eq!(
                String::from_utf8_lossy(&messages[0].data),
                String::from_utf8_lossy(ARRIVES)
            );
            // Credentials went over TLS only.
            let lines = server.lines();
            let auth_line = lines.iter().find(|l| l.line.starts_with("AUTH")).unwrap();
            assert!(auth_line.tls, "{lines:?}");
            let mech = auth_line.line.split(' ').nth(1).unwrap().to_owned();
            let want = match auth {
                AuthMethod::Auto | AuthMethod::Plain => "PLAIN",
                AuthMethod::Login => "LOGIN",
                _ => "CRAM-MD5",
            };
            assert_eq!(mech, want);
        }
    }
}

/// A reader that hands out odd-sized pieces, to cross chunk boundaries.
struct Dribble<'a>(&'a [u8], usize);

impl Read for Dribble<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.1 += 1;
        let n = (self.1 * 7919 % 100_000).min(buf.len()).min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

#[test]
fn a_large_message_streams_with_several_messages_per_session() {
    let server = server(false, SmtpFault::None);
    let mut client = connect(&server.client_config());
    let mut message = Vec::new();
    for i in 0..20_000 {
        message.extend_from_slice(format!(".line {i} with a dot\r").as_bytes());
        message.push(b'\n');
    }
    let report = client
        .send("me@example.org", &["you@example.net"], Dribble(&message, 0))
        .unwrap();
    assert_eq!(report.bytes, message.len() as u64);
    client
        .send("me@example.org", &["you@example.net"], &b"second\n"[..])
        .unwrap();
    client.quit().unwrap();
    let messages = server.messages();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0].data, message);
    assert_eq!(messages[1].data, b"second\r\n");
}

#[test]
fn without_pipelining_it_still_works() {
    let server = SmtpTestServer::start(SmtpTestServerConfig {
        pipelining: false,
        ..SmtpTestServerConfig::default()
    })
    .unwrap();
    let mut client = connect(&server.client_config());
    let report = client
        .send(
            "me@example.org",
            &["a@example.net", "bad@example.net", "c@example.net"],
            &b"x\n"[..],
        )
        .unwrap();
    assert_eq!(
        report.delivery.accepted().collect::<Vec<_>>(),
        ["a@example.net", "c@example.net"]
    );
    client.quit().unwrap();
    assert_eq!(server.messages()[0].to, ["a@example.net", "c@example.net"]);
}

#[test]
fn wrong_password_is_auth_and_the_client_stays_usable() {
    let server = server(false, SmtpFault::None);
    for auth in [AuthMethod::Plain, AuthMethod::Login, AuthMethod::CramMd5] {
        let mut config = server.client_config();
        config.auth = auth;
        let mut client = SmtpClient::connect(&config).unwrap();
        let e = client
            .login(&Credentials::new("user", "wrong"))
            .unwrap_err();
        assert_eq!(e.kind(), "auth", "{e}");
        assert!(!e.is_transient());
        let text = e.to_string();
        assert!(text.contains("rejected the password"), "{text}");
        assert!(text.contains("app-specific password"), "{text}");
        assert!(text.contains("535 5.7.8"), "{text}");
        // A refusal leaves the session usable.
        client.login(&good()).unwrap();
        client
            .send("me@example.org", &["you@example.net"], &b"hi\n"[..])
            .unwrap();
        client.quit().unwrap();
    }
}

#[test]
fn app_password_required() {
    let server = server(true, SmtpFault::AppPasswordRequired);
    let mut client = SmtpClient::connect(&server.client_config()).unwrap();
    let e = client.login(&good()).unwrap_err();
    assert_eq!(e.kind(), "app-password", "{e}");
    assert!(e.to_string().contains("app-specific password"), "{e}");
    assert!(e.to_string().contains("InvalidSecondFactor"), "{e}");
}

fn nothing_after_starttls(server: &SmtpTestServer) {
    let lines: Vec<String> = server.lines().into_iter().map(|l| l.line).collect();
    let allowed = ["EHLO localhost", "STARTTLS"];
    assert!(
        lines.iter().all(|l| allowed.contains(&l.as_str())),
        "{lines:?}"
    );
}

#[test]
fn injection_after_starttls_is_tls_and_nothing_more_is_sent() {
    let server = server(false, SmtpFault::InjectAfterStartTls);
    let e = SmtpClient::connect(&server.client_config()).unwrap_err();
    assert_eq!(e.kind(), "tls", "{e}");
    assert!(e.to_string().contains("injected by an attacker"), "{e}");
    std::thread::sleep(Duration::from_millis(100));
    nothing_after_starttls(&server);
    assert!(server.lines().iter().any(|l| l.line == "STARTTLS"));
}

#[test]
fn starttls_not_offered_is_tls_and_nothing_more_is_sent() {
    let server = server(false, SmtpFault::NoStartTls);
    let e = SmtpClient::connect(&server.client_config()).unwrap_err();
    assert_eq!(e.kind(), "tls", "{e}");
    assert!(e.to_string().contains("does not offer STARTTLS"), "{e}");
    std::thread::sleep(Duration::from_millis(100));
    nothing_after_starttls(&server);
    assert!(!server.lines().iter().any(|l| l.line == "STARTTLS"));
}

#[test]
fn plaintext_needs_permission_except_cram_md5() {
    let server = server(false, SmtpFault::None);
    let mut config = server.client_config();
    config.security = Security::Plain;
    let mut client = SmtpClient::connect(&config).unwrap();
    assert!(!client.is_tls());
    let e = client.login(&good()).unwrap_err();
    assert_eq!(e.kind(), "config", "{e}");
    assert!(!server.lines().iter().any(|l| l.line.starts_with("AUTH")));
    config.auth = AuthMethod::CramMd5;
    SmtpClient::verify(&config, &good()).unwrap();
    config.auth = AuthMethod::Auto;
    config.allow_plaintext_auth = true;
    SmtpClient::verify(&config, &good()).unwrap();
}

#[test]
fn too_big_before_and_after_sending() {
    let server = server(false, SmtpFault::SizeLimit(100));
    let mut client = connect(&server.client_config());
    let big = vec![b'x'; 1000];
    // Declared: refused by the client before MAIL.
    let envelope = Envelope::new("me@example.org", ["you@example.net"]).with_size(1000);
    let e = client.send_envelope(&envelope, &big[..]).unwrap_err();
    assert_eq!(e.kind(), "too-big", "{e}");
    assert!(!server.lines().iter().any(|l| l.line.starts_with("MAIL")));
    // Streamed: refused by the server after the message.
    let e = client
        .send("me@example.org", &["you@example.net"], &big[..])
        .unwrap_err();
    assert_eq!(e.kind(), "too-big", "{e}");
    assert!(e.to_string().contains("at most 100 bytes"), "{e}");
    // Still usable.
    client
        .send("me@example.org", &["you@example.net"], &b"small\n"[..])
        .unwrap();
    client.quit().unwrap();
    assert_eq!(server.messages().len(), 1);
}

#[test]
fn shutdown_after_mail_is_a_transient_server_error() {
    let server = server(false, SmtpFault::ShutdownAfterMail);
    let mut client = connect(&server.client_config());
    let e = client
        .send("me@example.org", &["you@example.net"], &b"hi\n"[..])
        .unwrap_err();
    assert_eq!(e.kind(), "server", "{e}");
    assert!(e.is_transient(), "{e}");
    assert!(e.to_string().contains("421 4.7.0"), "{e}");
    // The session ended: the client says so.
    let e = client
        .send("me@example.org", &["you@example.net"], &b"hi\n"[..])
        .unwrap_err();
    assert_eq!(e.kind(), "unusable", "{e}");
}

#[test]
fn partial_and_total_recipient_refusal() {
    let server = server(true, SmtpFault::None);
    let mut client = connect(&server.client_config());
    let report = client
        .send(
            "me@example.org",
            &["ok@example.net", "bad@example.net"],
            &b"hi\n"[..],
        )
        .unwrap();
    assert!(!report.delivery.all_accepted());
    assert_eq!(
        report.delivery.accepted().collect::<Vec<_>>(),
        ["ok@example.net"]
    );
    let (who, why) = report.delivery.refused().next().unwrap();
    assert_eq!((who, why.code), ("bad@example.net", 550));
    assert!(why.text.contains("User unknown"), "{}", why.text);
    let e = client
        .send(
            "me@example.org",
            &["bad1@example.net", "bad2@example.net"],
            &b"hi\n"[..],
        )
        .unwrap_err();
    assert_eq!(e.kind(), "recipient", "{e}");
    client.quit().unwrap();
    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].to, ["ok@example.net"]);
}

#[test]
fn a_reply_line_that_never_ends_is_protocol() {
    let server = server(false, SmtpFault::EndlessReplyLine);
    let mut client = connect(&server.client_config());
    let e = client
        .send("me@example.org", &["you@example.net"], &b"hi\n"[..])
        .unwrap_err();
    assert_eq!(e.kind(), "protocol", "{e}");
}

#[test]
fn a_server_that_stops_answering_is_timeout() {
    let server = server(false, SmtpFault::StopAnsweringAtMail);
    let mut config = server.client_config();
    config.timeouts = Timeouts {
        response: Duration::from_millis(700),
        ..Timeouts::all(Duration::from_secs(5))
    };
    let mut client = connect(&config);
    let started = Instant::now();
    let e = client
        .send("me@example.org", &["you@example.net"], &b"hi\n"[..])
        .unwrap_err();
    assert_eq!(e.kind(), "timeout", "{e}");
    assert!(e.is_transient());
    assert!(started.elapsed() < Duration::from_secs(4));
    let e: SmtpError = client.quit().unwrap_err();
    assert_eq!(e.kind(), "unusable", "{e}");
}

#[test]
fn verify_logs_in_and_quits() {
    let server = server(true, SmtpFault::None);
    let config = server.client_config();
    SmtpClient::verify(&config, &good()).unwrap();
    let e = SmtpClient::verify(&config, &Credentials::new("user", "nope")).unwrap_err();
    assert_eq!(e.kind(), "auth", "{e}");
    assert!(server.messages().is_empty());
    let lines: Vec<String> = server.lines().into_iter().map(|l| l.line).collect();
    assert!(!lines.iter().any(|l| l.starts_with("MAIL")), "{lines:?}");
    assert_eq!(
        lines.iter().filter(|l| *l == "QUIT").count(),
        1,
        "{lines:?}"
    );
}

#[test]
fn connect_refused_is_connect() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut config = SmtpConfig::new("127.0.0.1");
    config.port = Some(port);
    config.timeouts = Timeouts::all(Duration::from_secs(2));
    let e = SmtpClient::connect(&config).unwrap_err();
    assert_eq!(e.kind(), "connect", "{e}");
    assert!(e.is_transient());
}

#[test]
fn default_ports() {
    use pop3_client::smtp::smtp_default_port;
    assert_eq!(smtp_default_port(Security::Tls), 465);
    assert_eq!(smtp_default_port(Security::StartTls), 587);
    assert_eq!(SmtpConfig::new("h").port(), 465);
}

#[test]
fn starttls_refused_is_tls_and_nothing_more_is_sent() {
    let server = server(false, SmtpFault::RefuseStartTls);
    let e = SmtpClient::connect(&server.client_config()).unwrap_err();
    assert_eq!(e.kind(), "tls", "{e}");
    assert!(e.to_string().contains("454 4.7.0"), "{e}");
    std::thread::sleep(Duration::from_millis(100));
    nothing_after_starttls(&server);
}

#[test]
fn a_server_that_cuts_a_message_short_is_heard() {
    let line = [b'y'; 999];
    let mut message = Vec::new();
    while message.len() < 8 << 20 {
        message.extend_from_slice(&line);
        message.push(b'\n');
    }
    for tls in [true, false] {
        let server = server(tls, SmtpFault::CutMidMessage(100_000));
        let mut config = server.client_config();
        if !tls {
            config.security = Security::Plain;
            config.allow_plaintext_auth = true;
        }
        let mut client = connect(&config);
        let e = client
            .send("me@example.org", &["you@example.net"], &message[..])
            .unwrap_err();
        assert_eq!(e.kind(), "too-big", "{e}");
        assert!(e.to_string().contains("552 5.3.4"), "{e}");
        assert!(server.messages().is_empty());
    }
}

#[test]
fn settings_from_an_account() {
    use pop3_client::account::{Account, Credential};
    let account =
        Account::for_email("a", "me@hotmail.com", Credential::app_password("secret")).unwrap();
    let (config, credentials) = SmtpConfig::from_settings(&account.outgoing_settings().unwrap());
    assert_eq!(
        (config.host.as_str(), config.port(), config.security),
        ("smtp.office365.com", 587, Security::StartTls)
    );
    assert_eq!(credentials.user, "me@hotmail.com");
    assert_eq!(credentials.secret.expose(), "secret");
}

#[test]
fn an_untrusted_certificate_is_tls_for_both_modes() {
    for implicit_tls in [true, false] {
        let server = server(implicit_tls, SmtpFault::None);
        let mut config = server.client_config();
        config.roots = pop3_client::TlsRoots::WebPki;
        let e = SmtpClient::connect(&config).unwrap_err();
        assert_eq!(e.kind(), "tls", "{e}");
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            !server.lines().iter().any(|l| l.tls),
            "{:?}",
            server.lines()
        );
    }
}
