//! Every SMTP scenario, written once and run against both drivers (the
//! blocking `SmtpClient` and the `AsyncSmtpClient`, on tokio or on a bare
//! executor) with the in-process SMTP server: STARTTLS and implicit TLS,
//! each SASL mechanism, what arrives (dots unstuffed, CRLF), large messages
//! streamed, and every injected fault as its typed kind.
//!
//! A scenario is a function generic over an [`SmtpDriver`]; `both!` makes
//! `NAME::blocking` and `NAME::async_driver` tests of it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use common::{both, Exec, Polled, Tokens};
use futures_io::{AsyncRead, AsyncWrite};
use pop3_client::smtp::{
    AsyncSmtpClient, Capabilities, Envelope, SendReport, SmtpClient, SmtpConfig, SmtpError,
};
use pop3_client::testing::smtp::{SmtpFault, SmtpTestServer, SmtpTestServerConfig};
use pop3_client::{AuthMethod, Credentials, Security, Timeouts};
use tokio_util::compat::Compat;

// ---------------------------------------------------------------------------
// The drivers
// ---------------------------------------------------------------------------

/// How a scenario gets a session: one implementation per driver.
trait SmtpDriver {
    /// A session over TCP the client connected.
    type Tcp: SmtpSession;
    /// A session over TCP the caller connected.
    type Over: SmtpSession;
    /// `connect`.
    fn connect(config: &SmtpConfig) -> Result<Self::Tcp, SmtpError>;
    /// `verify`.
    fn verify(config: &SmtpConfig, credentials: &Credentials) -> Result<(), SmtpError>;
    /// `connect_over` a TCP stream the caller connected: as it is for the
    /// blocking client; for the async one non-blocking, polled by a bare
    /// executor with no runtime.
    fn connect_over(tcp: TcpStream, config: &SmtpConfig) -> Result<Self::Over, SmtpError>;
}

/// A session's operations, with the clients' own signatures (a message the
/// test passes is both `Read` and `AsyncRead`).
trait SmtpSession: Sized {
    fn capabilities(&self) -> Option<&Capabilities>;
    fn is_tls(&self) -> bool;
    fn login(&mut self, credentials: &Credentials) -> Result<(), SmtpError>;
    fn send<T: AsRef<str>>(
        &mut self,
        from: &str,
        to: &[T],
        message: impl Read + AsyncRead + Unpin,
    ) -> Result<SendReport, SmtpError>;
    fn send_envelope(
        &mut self,
        envelope: &Envelope,
        message: impl Read + AsyncRead + Unpin,
    ) -> Result<SendReport, SmtpError>;
    fn quit(self) -> Result<(), SmtpError>;
}

/// The blocking driver.
struct Blocking;

impl SmtpDriver for Blocking {
    type Tcp = SmtpClient;
    type Over = SmtpClient;
    fn connect(config: &SmtpConfig) -> Result<Self::Tcp, SmtpError> {
        SmtpClient::connect(config)
    }
    fn verify(config: &SmtpConfig, credentials: &Credentials) -> Result<(), SmtpError> {
        SmtpClient::verify(config, credentials)
    }
    fn connect_over(tcp: TcpStream, config: &SmtpConfig) -> Result<Self::Over, SmtpError> {
        SmtpClient::connect_over(tcp, config)
    }
}

impl SmtpSession for SmtpClient {
    fn capabilities(&self) -> Option<&Capabilities> {
        SmtpClient::capabilities(self)
    }
    fn is_tls(&self) -> bool {
        SmtpClient::is_tls(self)
    }
    fn login(&mut self, credentials: &Credentials) -> Result<(), SmtpError> {
        SmtpClient::login(self, credentials)
    }
    fn send<T: AsRef<str>>(
        &mut self,
        from: &str,
        to: &[T],
        message: impl Read + AsyncRead + Unpin,
    ) -> Result<SendReport, SmtpError> {
        SmtpClient::send(self, from, to, message)
    }
    fn send_envelope(
        &mut self,
        envelope: &Envelope,
        message: impl Read + AsyncRead + Unpin,
    ) -> Result<SendReport, SmtpError> {
        SmtpClient::send_envelope(self, envelope, message)
    }
    fn quit(self) -> Result<(), SmtpError> {
        SmtpClient::quit(self)
    }
}

/// The async driver: every call driven to completion by `exec`.
struct Async;

struct AsyncSession<S: AsyncRead + AsyncWrite + Unpin> {
    client: AsyncSmtpClient<S>,
    exec: Exec,
}

/// tokio's TcpStream as a futures-io stream: what `AsyncSmtpClient::connect`
/// connects over.
type TokioTcp = Compat<tokio::net::TcpStream>;

impl SmtpDriver for Async {
    type Tcp = AsyncSession<TokioTcp>;
    type Over = AsyncSession<Polled>;
    fn connect(config: &SmtpConfig) -> Result<Self::Tcp, SmtpError> {
        let client = Exec::Tokio.run(AsyncSmtpClient::connect(config))?;
        Ok(AsyncSession {
            client,
            exec: Exec::Tokio,
        })
    }
    fn verify(config: &SmtpConfig, credentials: &Credentials) -> Result<(), SmtpError> {
        Exec::Tokio.run(AsyncSmtpClient::verify(config, credentials))
    }
    fn connect_over(tcp: TcpStream, config: &SmtpConfig) -> Result<Self::Over, SmtpError> {
        let client = Exec::Bare.run(AsyncSmtpClient::connect_over(Polled::new(tcp), config))?;
        Ok(AsyncSession {
            client,
            exec: Exec::Bare,
        })
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> SmtpSession for AsyncSession<S> {
    fn capabilities(&self) -> Option<&Capabilities> {
        self.client.capabilities()
    }
    fn is_tls(&self) -> bool {
        self.client.is_tls()
    }
    fn login(&mut self, credentials: &Credentials) -> Result<(), SmtpError> {
        self.exec.run(self.client.login(credentials))
    }
    fn send<T: AsRef<str>>(
        &mut self,
        from: &str,
        to: &[T],
        message: impl Read + AsyncRead + Unpin,
    ) -> Result<SendReport, SmtpError> {
        self.exec.run(self.client.send(from, to, message))
    }
    fn send_envelope(
        &mut self,
        envelope: &Envelope,
        message: impl Read + AsyncRead + Unpin,
    ) -> Result<SendReport, SmtpError> {
        self.exec.run(self.client.send_envelope(envelope, message))
    }
    fn quit(self) -> Result<(), SmtpError> {
        self.exec.run(self.client.quit())
    }
}

/// The error of an attempt that must fail.
fn failed<T>(result: Result<T, SmtpError>) -> SmtpError {
    match result {
        Ok(_) => panic!("succeeded, and should have failed"),
        Err(e) => e,
    }
}

// ---------------------------------------------------------------------------
// Servers and messages
// ---------------------------------------------------------------------------

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

fn connect<D: SmtpDriver>(config: &SmtpConfig) -> D::Tcp {
    let mut client = D::connect(config).unwrap();
    client.login(&good()).unwrap();
    client
}

/// 8-bit text, dot-led lines, bare LF, CRLF, a lone dot, no final newline.
const MESSAGE: &[u8] = b"Subject: caf\xc3\xa9\nFrom: me@example.org\n\n.leading dot\n..two dots\nbare LF\r\nCRLF line\n.\n\xe2\x82\xac 8-bit\nlast";
const ARRIVES: &[u8] = b"Subject: caf\xc3\xa9\r\nFrom: me@example.org\r\n\r\n.leading dot\r\n..two dots\r\nbare LF\r\nCRLF line\r\n.\r\n\xe2\x82\xac 8-bit\r\nlast\r\n";

/// A reader that hands out odd-sized pieces, to cross chunk boundaries;
/// read as an AsyncRead it is also pending every fifth call, to yield
/// mid-message.
struct Dribble<'a> {
    data: &'a [u8],
    calls: usize,
}

impl<'a> Dribble<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self { data, calls: 0 }
    }
}

impl Read for Dribble<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.calls += 1;
        let n = (self.calls * 7919 % 100_000)
            .min(buf.len())
            .min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

impl AsyncRead for Dribble<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if (this.calls + 1) % 5 == 0 {
            this.calls += 1;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        Poll::Ready(Read::read(this, buf))
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

// ---------------------------------------------------------------------------
// The scenarios
// ---------------------------------------------------------------------------

both!(Blocking, Async;
    sends_over_starttls_and_implicit_tls_with_each_mechanism,
    a_large_message_streams_with_several_messages_per_session,
    without_pipelining_it_still_works,
    wrong_password_is_auth_and_the_client_stays_usable,
    app_password_required,
    injection_after_starttls_is_tls_and_nothing_more_is_sent,
    starttls_not_offered_is_tls_and_nothing_more_is_sent,
    starttls_refused_is_tls_and_nothing_more_is_sent,
    plaintext_needs_permission_except_cram_md5,
    too_big_before_and_after_sending,
    shutdown_after_mail_is_a_transient_server_error,
    partial_and_total_recipient_refusal,
    a_reply_line_that_never_ends_is_protocol,
    a_server_that_stops_answering_is_timeout_then_unusable,
    verify_logs_in_and_quits,
    connect_refused_is_connect,
    a_server_that_cuts_a_message_short_is_heard,
    an_untrusted_certificate_is_tls_for_both_modes,
    connect_over_a_callers_stream_without_any_runtime,
    oauth2_tokens_come_at_each_login_and_a_refused_one_is_refreshed_once,
);

fn sends_over_starttls_and_implicit_tls_with_each_mechanism<D: SmtpDriver>() {
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
            let mut client = connect::<D>(&config);
            assert!(client.is_tls());
            assert!(client.capabilities().unwrap().pipelining);
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
            let want = match auth {
                AuthMethod::Auto | AuthMethod::Plain => "PLAIN",
                AuthMethod::Login => "LOGIN",
                _ => "CRAM-MD5",
            };
            assert_eq!(auth_line.line.split(' ').nth(1), Some(want));
        }
    }
}

fn a_large_message_streams_with_several_messages_per_session<D: SmtpDriver>() {
    let server = server(false, SmtpFault::None);
    let mut client = connect::<D>(&server.client_config());
    let mut message = Vec::new();
    for i in 0..40_000 {
        message.extend_from_slice(format!(".line {i} with a dot\r").as_bytes());
        message.push(b'\n');
    }
    let report = client
        .send(
            "me@example.org",
            &["you@example.net"],
            Dribble::new(&message),
        )
        .unwrap();
    assert_eq!(report.bytes, message.len() as u64);
    client
        .send("me@example.org", &["you@example.net"], &b"second\n"[..])
        .unwrap();
    // A declared size within the server's limit goes through.
    let envelope = Envelope::new("me@example.org", ["you@example.net"]).with_size(6);
    client.send_envelope(&envelope, &b"third\n"[..]).unwrap();
    client.quit().unwrap();
    let messages = server.messages();
    assert_eq!(messages.len(), 3);
    assert_eq!(messages[0].data, message);
    assert_eq!(messages[1].data, b"second\r\n");
    assert_eq!(messages[2].data, b"third\r\n");
}

fn without_pipelining_it_still_works<D: SmtpDriver>() {
    let server = SmtpTestServer::start(SmtpTestServerConfig {
        pipelining: false,
        ..SmtpTestServerConfig::default()
    })
    .unwrap();
    let mut client = connect::<D>(&server.client_config());
    assert!(!client.capabilities().unwrap().pipelining);
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

fn wrong_password_is_auth_and_the_client_stays_usable<D: SmtpDriver>() {
    for implicit_tls in [false, true] {
        let server = server(implicit_tls, SmtpFault::None);
        for auth in [AuthMethod::Plain, AuthMethod::Login, AuthMethod::CramMd5] {
            let mut config = server.client_config();
            config.auth = auth;
            let mut client = D::connect(&config).unwrap();
            let e = failed(client.login(&Credentials::new("user", "wrong")));
            assert!(e.kind() == "auth", "{e}");
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
        let e = failed(D::verify(
            &server.client_config(),
            &Credentials::new("user", "nope"),
        ));
        assert!(e.kind() == "auth", "{e}");
        D::verify(&server.client_config(), &good()).unwrap();
        // One message per mechanism; verify sent none.
        assert_eq!(server.messages().len(), 3);
    }
}

fn app_password_required<D: SmtpDriver>() {
    let server = server(true, SmtpFault::AppPasswordRequired);
    let mut client = D::connect(&server.client_config()).unwrap();
    let e = failed(client.login(&good()));
    assert!(e.kind() == "app-password", "{e}");
    assert!(e.to_string().contains("app-specific password"), "{e}");
    assert!(e.to_string().contains("InvalidSecondFactor"), "{e}");
}

fn injection_after_starttls_is_tls_and_nothing_more_is_sent<D: SmtpDriver>() {
    let server = server(false, SmtpFault::InjectAfterStartTls);
    let e = failed(D::connect(&server.client_config()));
    assert!(e.kind() == "tls", "{e}");
    assert!(e.to_string().contains("injected by an attacker"), "{e}");
    std::thread::sleep(Duration::from_millis(100));
    nothing_after_starttls(&server);
    assert!(server.lines().iter().any(|l| l.line == "STARTTLS"));
}

fn starttls_not_offered_is_tls_and_nothing_more_is_sent<D: SmtpDriver>() {
    let server = server(false, SmtpFault::NoStartTls);
    let e = failed(D::connect(&server.client_config()));
    assert!(e.kind() == "tls", "{e}");
    assert!(e.to_string().contains("does not offer STARTTLS"), "{e}");
    std::thread::sleep(Duration::from_millis(100));
    nothing_after_starttls(&server);
    assert!(!server.lines().iter().any(|l| l.line == "STARTTLS"));
}

fn starttls_refused_is_tls_and_nothing_more_is_sent<D: SmtpDriver>() {
    let server = server(false, SmtpFault::RefuseStartTls);
    let e = failed(D::connect(&server.client_config()));
    assert!(e.kind() == "tls", "{e}");
    assert!(e.to_string().contains("454 4.7.0"), "{e}");
    std::thread::sleep(Duration::from_millis(100));
    nothing_after_starttls(&server);
}

fn plaintext_needs_permission_except_cram_md5<D: SmtpDriver>() {
    let server = server(false, SmtpFault::None);
    let mut config = server.client_config();
    config.security = Security::Plain;
    let mut client = D::connect(&config).unwrap();
    assert!(!client.is_tls());
    let e = failed(client.login(&good()));
    assert!(e.kind() == "config", "{e}");
    assert!(!server.lines().iter().any(|l| l.line.starts_with("AUTH")));
    config.auth = AuthMethod::CramMd5;
    D::verify(&config, &good()).unwrap();
    config.auth = AuthMethod::Auto;
    config.allow_plaintext_auth = true;
    D::verify(&config, &good()).unwrap();
}

fn too_big_before_and_after_sending<D: SmtpDriver>() {
    let server = server(false, SmtpFault::SizeLimit(100));
    let mut client = connect::<D>(&server.client_config());
    let big = vec![b'x'; 1000];
    // Declared: refused by the client before MAIL.
    let envelope = Envelope::new("me@example.org", ["you@example.net"]).with_size(1000);
    let e = failed(client.send_envelope(&envelope, &big[..]));
    assert!(e.kind() == "too-big", "{e}");
    assert!(!server.lines().iter().any(|l| l.line.starts_with("MAIL")));
    // Streamed: refused by the server after the message.
    let e = failed(client.send("me@example.org", &["you@example.net"], &big[..]));
    assert!(e.kind() == "too-big", "{e}");
    assert!(e.to_string().contains("at most 100 bytes"), "{e}");
    // Still usable.
    client
        .send("me@example.org", &["you@example.net"], &b"small\n"[..])
        .unwrap();
    client.quit().unwrap();
    assert_eq!(server.messages().len(), 1);
}

fn shutdown_after_mail_is_a_transient_server_error<D: SmtpDriver>() {
    let server = server(false, SmtpFault::ShutdownAfterMail);
    let mut client = connect::<D>(&server.client_config());
    let e = failed(client.send("me@example.org", &["you@example.net"], &b"hi\n"[..]));
    // Gmail's throttling: a limit, transient, and a wait is the remedy.
    assert!(e.kind() == "limit", "{e}");
    assert!(e.is_transient(), "{e}");
    assert!(e.to_string().contains("421 4.7.0"), "{e}");
    assert!(
        matches!(e.remedy(), Some(pop3_client::Remedy::WaitUntil { .. })),
        "{e}"
    );
    // The session ended: the client says so.
    let e = failed(client.send("me@example.org", &["you@example.net"], &b"hi\n"[..]));
    assert!(e.kind() == "unusable", "{e}");
}

fn partial_and_total_recipient_refusal<D: SmtpDriver>() {
    let server = server(true, SmtpFault::None);
    let mut client = connect::<D>(&server.client_config());
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
    let e = failed(client.send(
        "me@example.org",
        &["bad1@example.net", "bad2@example.net"],
        &b"hi\n"[..],
    ));
    assert!(e.kind() == "recipient", "{e}");
    client.quit().unwrap();
    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].to, ["ok@example.net"]);
}

fn a_reply_line_that_never_ends_is_protocol<D: SmtpDriver>() {
    let server = server(false, SmtpFault::EndlessReplyLine);
    let mut client = connect::<D>(&server.client_config());
    let e = failed(client.send("me@example.org", &["you@example.net"], &b"hi\n"[..]));
    assert!(e.kind() == "protocol", "{e}");
}

fn a_server_that_stops_answering_is_timeout_then_unusable<D: SmtpDriver>() {
    let server = server(false, SmtpFault::StopAnsweringAtMail);
    let mut config = server.client_config();
    config.timeouts = Timeouts {
        response: Duration::from_millis(700),
        ..Timeouts::all(Duration::from_secs(5))
    };
    let mut client = connect::<D>(&config);
    let e = failed(client.send("me@example.org", &["you@example.net"], &b"hi\n"[..]));
    assert!(e.kind() == "timeout", "{e}");
    assert!(e.is_transient());
    let e = failed(client.quit());
    assert!(e.kind() == "unusable", "{e}");
}

fn verify_logs_in_and_quits<D: SmtpDriver>() {
    let server = server(true, SmtpFault::None);
    let config = server.client_config();
    D::verify(&config, &good()).unwrap();
    let e = failed(D::verify(&config, &Credentials::new("user", "nope")));
    assert!(e.kind() == "auth", "{e}");
    assert!(server.messages().is_empty());
    let lines: Vec<String> = server.lines().into_iter().map(|l| l.line).collect();
    assert!(!lines.iter().any(|l| l.starts_with("MAIL")), "{lines:?}");
    assert_eq!(
        lines.iter().filter(|l| *l == "QUIT").count(),
        1,
        "{lines:?}"
    );
}

fn connect_refused_is_connect<D: SmtpDriver>() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut config = SmtpConfig::new("127.0.0.1");
    config.port = Some(port);
    config.timeouts = Timeouts::all(Duration::from_secs(2));
    let e = failed(D::connect(&config));
    assert!(e.kind() == "connect", "{e}");
    assert!(e.is_transient());
}

fn a_server_that_cuts_a_message_short_is_heard<D: SmtpDriver>() {
    let line = [b'y'; 999];
    let mut message = Vec::new();
    while message.len() < 8 << 20 {
        message.extend_from_slice(&line);
        message.push(b'\n');
    }
    // Implicit TLS, STARTTLS, and no TLS at all.
    for (tls, security) in [(true, None), (false, None), (false, Some(Security::Plain))] {
        let server = server(tls, SmtpFault::CutMidMessage(100_000));
        let mut config = server.client_config();
        if let Some(security) = security {
            config.security = security;
            config.allow_plaintext_auth = true;
        }
        let mut client = connect::<D>(&config);
        let e = failed(client.send("me@example.org", &["you@example.net"], &message[..]));
        assert!(e.kind() == "too-big", "{tls} {security:?}: {e}");
        assert!(e.to_string().contains("552 5.3.4"), "{e}");
        assert!(server.messages().is_empty());
    }
}

fn an_untrusted_certificate_is_tls_for_both_modes<D: SmtpDriver>() {
    for implicit_tls in [true, false] {
        let server = server(implicit_tls, SmtpFault::None);
        let mut config = server.client_config();
        config.roots = pop3_client::TlsRoots::WebPki;
        let e = failed(D::connect(&config));
        assert!(e.kind() == "tls", "{e}");
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            !server.lines().iter().any(|l| l.tls),
            "{:?}",
            server.lines()
        );
    }
}

/// Over a TCP stream the caller connected; for the async client, polled by
/// a bare executor: it needs no runtime (its timer is runtime-independent).
fn connect_over_a_callers_stream_without_any_runtime<D: SmtpDriver>() {
    let server = server(true, SmtpFault::None);
    let tcp = TcpStream::connect(server.addr()).unwrap();
    let mut client = D::connect_over(tcp, &server.client_config()).unwrap();
    assert!(client.is_tls());
    client.login(&good()).unwrap();
    client
        .send("me@example.org", &["you@example.net"], MESSAGE)
        .unwrap();
    client.quit().unwrap();
    assert_eq!(server.messages()[0].data, ARRIVES);
}

// ---------------------------------------------------------------------------
// Settings: no driver involved
// ---------------------------------------------------------------------------

#[test]
fn default_ports() {
    use pop3_client::Protocol;
    assert_eq!(Protocol::Smtp.default_port(Security::Tls), 465);
    assert_eq!(Protocol::Smtp.default_port(Security::StartTls), 587);
    assert_eq!(SmtpConfig::new("h").port(), 465);
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

fn oauth2_tokens_come_at_each_login_and_a_refused_one_is_refreshed_once<D: SmtpDriver>() {
    let server = SmtpTestServer::start(SmtpTestServerConfig {
        mechanisms: ["XOAUTH2", "OAUTHBEARER"].map(String::from).to_vec(),
        ..SmtpTestServerConfig::default()
    })
    .unwrap();
    for method in [AuthMethod::XOAuth2, AuthMethod::OAuthBearer] {
        let mut config = server.client_config();
        config.auth = method;
        // The server takes the password as the token; the first one the
        // source hands out was revoked behind its back.
        let tokens = Tokens::new(vec!["revoked", "password"]);
        let credentials = Credentials::oauth2("user", tokens.clone());
        let mut client = D::connect(&config).unwrap();
        client
            .login(&credentials)
            .unwrap_or_else(|e| panic!("{method:?}: {e}"));
        client
            .send("me@example.org", &["you@example.net"], &b"hi\n"[..])
            .unwrap();
        client.quit().unwrap();
        assert_eq!(tokens.invalidated.load(Ordering::SeqCst), 1, "{method:?}");
        // Fresh tokens refused too: one retry, then the refusal.
        let tokens = Tokens::new(vec!["revoked", "also revoked", "password"]);
        let mut client = D::connect(&config).unwrap();
        let e = failed(client.login(&Credentials::oauth2("user", tokens.clone())));
        assert!(e.kind() == "auth", "{method:?}: {e}");
        assert_eq!(tokens.invalidated.load(Ordering::SeqCst), 1, "{method:?}");
        assert!(!format!("{e} {e:?}").contains("revoked"), "{e:?}");
    }
    assert_eq!(server.messages().len(), 2);
}
