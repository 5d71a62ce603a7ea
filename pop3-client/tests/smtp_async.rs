//! The async SMTP client against the in-process SMTP server, on tokio and
//! on a bare executor: STARTTLS and implicit TLS with each mechanism, a
//! wrong password, STARTTLS injection, partial refusal, a large message
//! streamed from an AsyncRead, timeouts and a cut message.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_io::AsyncRead;
use futures_util::io::Cursor;
use pop3_client::smtp::{AsyncSmtpClient, Envelope, SmtpConfig};
use pop3_client::testing::smtp::{SmtpFault, SmtpTestServer, SmtpTestServerConfig};
use pop3_client::{AuthMethod, Credentials, Security, Timeouts};

type TokioClient = AsyncSmtpClient<tokio_util::compat::Compat<tokio::net::TcpStream>>;

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

async fn connect(config: &SmtpConfig) -> TokioClient {
    let mut client = AsyncSmtpClient::connect(config).await.unwrap();
    client.login(&good()).await.unwrap();
    client
}

/// 8-bit text, dot-led lines, bare LF, CRLF, a lone dot, no final newline.
const MESSAGE: &[u8] = b"Subject: caf\xc3\xa9\nFrom: me@example.org\n\n.leading dot\n..two dots\nbare LF\r\nCRLF line\n.\n\xe2\x82\xac 8-bit\nlast";
const ARRIVES: &[u8] = b"Subject: caf\xc3\xa9\r\nFrom: me@example.org\r\n\r\n.leading dot\r\n..two dots\r\nbare LF\r\nCRLF line\r\n.\r\n\xe2\x82\xac 8-bit\r\nlast\r\n";

#[tokio::test]
async fn sends_over_starttls_and_implicit_tls_with_each_mechanism() {
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
            let mut client = connect(&config).await;
            assert!(client.is_tls());
            assert!(client.capabilities().unwrap().pipelining);
            let report = client
                .send(
                    "me@example.org",
                    &["you@example.net", "other@example.net"],
                    Cursor::new(MESSAGE),
                )
                .await
                .unwrap();
            assert!(report.delivery.all_accepted());
            assert_eq!(
                (report.delivery.code, report.delivery.text.as_str()),
                (250, "Ok: queued as TEST1")
            );
            assert_eq!(report.bytes, MESSAGE.len() as u64);
            client.quit().await.unwrap();
            let messages = server.messages();
            assert_eq!(messages.len(), 1, "{implicit_tls} {auth:?}");
            assert_eq!(messages[0].to, ["you@example.net", "other@example.net"]);
            assert_eq!(
                String::from_utf8_lossy(&messages[0].data),
                String::from_utf8_lossy(ARRIVES)
            );
            let lines = server.lines();
            let auth_line = lines.iter().find(|l| l.line.starts_with("AUTH")).unwrap();
            assert!(auth_line.tls, "{lines:?}");
            let want = match auth {
                AuthMethod::Auto | AuthMethod::Plain => "PLAIN",
                AuthMethod::Login => "LOGIN",
                _ => "CRAM-MD5",
            };
            assert_eq!(auth_line.line.split(' ').nth(1), Some(want));
        }
    }
}

/// An AsyncRead that hands out odd-sized pieces and is sometimes pending,
/// to cross chunk boundaries and yield mid-message.
struct Dribble {
    data: Vec<u8>,
    at: usize,
    calls: usize,
}

impl AsyncRead for Dribble {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        this.calls += 1;
        if this.calls % 5 == 0 {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let n = (this.calls * 7919 % 100_000)
            .min(buf.len())
            .min(this.data.len() - this.at);
        buf[..n].copy_from_slice(&this.data[this.at..this.at + n]);
        this.at += n;
        Poll::Ready(Ok(n))
    }
}

#[tokio::test]
async fn a_large_message_streams_with_several_messages_per_session() {
    let server = server(false, SmtpFault::None);
    let mut client = connect(&server.client_config()).await;
    let mut message = Vec::new();
    for i in 0..40_000 {
        message.extend_from_slice(format!(".line {i} with a dot\r\n").as_bytes());
    }
    let reader = Dribble {
        data: message.clone(),
        at: 0,
        calls: 0,
    };
    let report = client
        .send("me@example.org", &["you@example.net"], reader)
        .await
        .unwrap();
    assert_eq!(report.bytes, message.len() as u64);
    let envelope = Envelope::new("me@example.org", ["you@example.net"]).with_size(7);
    client
        .send_envelope(&envelope, Cursor::new(b"second\n"))
        .await
        .unwrap();
    client.quit().await.unwrap();
    let messages = server.messages();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0].data, message);
    assert_eq!(messages[1].data, b"second\r\n");
}

#[tokio::test]
async fn wrong_password_is_auth_and_the_client_stays_usable() {
    for implicit_tls in [false, true] {
        let server = server(implicit_tls, SmtpFault::None);
        for auth in [AuthMethod::Plain, AuthMethod::Login, AuthMethod::CramMd5] {
            let mut config = server.client_config();
            config.auth = auth;
            let mut client = AsyncSmtpClient::connect(&config).await.unwrap();
            let e = client
                .login(&Credentials::new("user", "wrong"))
                .await
                .unwrap_err();
            assert_eq!(e.kind(), "auth", "{e}");
            assert!(!e.is_transient());
            assert!(e.to_string().contains("535 5.7.8"), "{e}");
            client.login(&good()).await.unwrap();
            client.quit().await.unwrap();
        }
        let e = AsyncSmtpClient::verify(&server.client_config(), &Credentials::new("user", "nope"))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), "auth", "{e}");
        AsyncSmtpClient::verify(&server.client_config(), &good())
            .await
            .unwrap();
        assert!(server.messages().is_empty());
    }
}

/// Only EHLO and STARTTLS were sent, and nothing over TLS.
fn nothing_after_starttls(server: &SmtpTestServer) {
    let lines = server.lines();
    assert!(
        lines
            .iter()
            .all(|l| !l.tls && (l.line == "EHLO localhost" || l.line == "STARTTLS")),
        "{lines:?}"
    );
}

#[tokio::test]
async fn starttls_injection_is_tls_and_nothing_more_is_sent() {
    let server = server(false, SmtpFault::InjectAfterStartTls);
    let e = AsyncSmtpClient::connect(&server.client_config())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), "tls", "{e}");
    assert!(e.to_string().contains("injected by an attacker"), "{e}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    nothing_after_starttls(&server);
    assert!(server.lines().iter().any(|l| l.line == "STARTTLS"));
}

#[tokio::test]
async fn starttls_missing_or_refused_is_tls_and_nothing_more_is_sent() {
    for (fault, words) in [
        (SmtpFault::NoStartTls, "does not offer STARTTLS"),
        (SmtpFault::RefuseStartTls, "454 4.7.0"),
    ] {
        let server = server(false, fault);
        let e = AsyncSmtpClient::connect(&server.client_config())
            .await
            .unwrap_err();
        assert_eq!(e.kind(), "tls", "{e}");
        assert!(e.to_string().contains(words), "{e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        nothing_after_starttls(&server);
    }
}

#[tokio::test]
async fn partial_and_total_recipient_refusal() {
    let server = server(true, SmtpFault::None);
    let mut client = connect(&server.client_config()).await;
    let report = client
        .send(
            "me@example.org",
            &["ok@example.net", "bad@example.net"],
            Cursor::new(b"hi\n"),
        )
        .await
        .unwrap();
    assert!(!report.delivery.all_accepted());
    assert_eq!(
        report.delivery.accepted().collect::<Vec<_>>(),
        ["ok@example.net"]
    );
    let (who, why) = report.delivery.refused().next().unwrap();
    assert_eq!((who, why.code), ("bad@example.net", 550));
    let e = client
        .send(
            "me@example.org",
            &["bad1@example.net", "bad2@example.net"],
            Cursor::new(b"hi\n"),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), "recipient", "{e}");
    client.quit().await.unwrap();
    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].to, ["ok@example.net"]);
}

#[tokio::test]
async fn plaintext_needs_permission_except_cram_md5() {
    let server = server(false, SmtpFault::None);
    let mut config = server.client_config();
    config.security = Security::Plain;
    let mut client = AsyncSmtpClient::connect(&config).await.unwrap();
    assert!(!client.is_tls());
    let e = client.login(&good()).await.unwrap_err();
    assert_eq!(e.kind(), "config", "{e}");
    assert!(!server.lines().iter().any(|l| l.line.starts_with("AUTH")));
    config.auth = AuthMethod::CramMd5;
    AsyncSmtpClient::verify(&config, &good()).await.unwrap();
}

#[tokio::test]
async fn a_server_that_stops_answering_is_timeout_then_unusable() {
    let server = server(false, SmtpFault::StopAnsweringAtMail);
    let mut config = server.client_config();
    config.timeouts = Timeouts {
        response: Duration::from_millis(700),
        ..Timeouts::all(Duration::from_secs(5))
    };
    let mut client = connect(&config).await;
    let started = Instant::now();
    let e = client
        .send("me@example.org", &["you@example.net"], Cursor::new(b"hi\n"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), "timeout", "{e}");
    assert!(e.is_transient());
    // One reply's allowance for MAIL plus one per recipient: 1.4 s.
    assert!(started.elapsed() >= Duration::from_millis(1400));
    assert!(started.elapsed() < Duration::from_secs(4));
    let e = client.quit().await.unwrap_err();
    assert_eq!(e.kind(), "unusable", "{e}");
}

#[tokio::test]
async fn too_big_and_a_cut_message_are_heard() {
    let limited = server(false, SmtpFault::SizeLimit(100));
    let mut client = connect(&limited.client_config()).await;
    let e = client
        .send(
            "me@example.org",
            &["you@example.net"],
            Cursor::new(vec![b'x'; 1000]),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), "too-big", "{e}");
    assert!(e.to_string().contains("at most 100 bytes"), "{e}");
    client
        .send("me@example.org", &["you@example.net"], Cursor::new(b"ok\n"))
        .await
        .unwrap();
    client.quit().await.unwrap();

    let mut message = Vec::new();
    while message.len() < 8 << 20 {
        message.extend_from_slice(&[b'y'; 999]);
        message.push(b'\n');
    }
    for tls in [true, false] {
        let server = server(tls, SmtpFault::CutMidMessage(100_000));
        let mut client = connect(&server.client_config()).await;
        let e = client
            .send(
                "me@example.org",
                &["you@example.net"],
                Cursor::new(&message),
            )
            .await
            .unwrap_err();
        assert_eq!(e.kind(), "too-big", "{e}");
        assert!(e.to_string().contains("552 5.3.4"), "{e}");
    }
}

#[test]
fn runs_without_any_runtime() {
    // A bare executor: the client's timer is runtime-independent.
    let server = server(true, SmtpFault::None);
    let tcp = std::net::TcpStream::connect(server.addr()).unwrap();
    tcp.set_nonblocking(true).unwrap();
    futures_executor::block_on(async {
        let mut client = AsyncSmtpClient::connect_over(Polled(tcp), &server.client_config())
            .await
            .unwrap();
        client.login(&good()).await.unwrap();
        client
            .send("me@example.org", &["you@example.net"], Cursor::new(MESSAGE))
            .await
            .unwrap();
        client.quit().await.unwrap();
    });
    assert_eq!(server.messages()[0].data, ARRIVES);
}

/// A non-blocking std TcpStream polled by busy-waking.
struct Polled(std::net::TcpStream);

fn ready<T>(cx: &mut Context<'_>, result: std::io::Result<T>) -> Poll<std::io::Result<T>> {
    match result {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
        other => Poll::Ready(other),
    }
}

impl AsyncRead for Polled {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        use std::io::Read;
        let result = self.get_mut().0.read(buf);
        ready(cx, result)
    }
}

impl futures_io::AsyncWrite for Polled {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        use std::io::Write;
        let result = self.get_mut().0.write(buf);
        ready(cx, result)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        use std::io::Write;
        let result = self.get_mut().0.flush();
        ready(cx, result)
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
