//! The async client: on tokio (via the compat layer), and on a bare
//! executor with no runtime at all, against the in-process server.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_io::{AsyncRead, AsyncWrite};
use pop3_client::async_client::Client;
use pop3_client::pop3_proto::server::{ServerMessage, ServerOptions};
use pop3_client::pop3_proto::SessionError;
use pop3_client::testing::{Fault, TestServer, TestServerConfig};
use pop3_client::{AuthMethod, Credentials, Error, ErrorKind, MsgNum, Security};

fn messages() -> Vec<ServerMessage> {
    (0..20)
        .map(|i| ServerMessage {
            uid: format!("async-{i}"),
            content: format!(
                "Subject: {i}\r\n\r\n.dot line {i}\r\n{}\r\n",
                "x".repeat(i * 100)
            )
            .into_bytes(),
        })
        .collect()
}

fn start(implicit_tls: bool, fault: Fault) -> TestServer {
    TestServer::start(TestServerConfig {
        options: ServerOptions {
            stls: !implicit_tls,
            ..ServerOptions::default()
        },
        messages: messages(),
        implicit_tls,
        fault,
        gmail: None,
    })
    .unwrap()
}

fn creds() -> Credentials {
    Credentials::new("user", "password")
}

#[tokio::test]
async fn tokio_fetch_over_stls_pipelined() {
    let server = start(false, Fault::None);
    let mut client = Client::connect(&server.client_config(), &creds())
        .await
        .unwrap();
    assert!(client.is_tls());
    let uids = client.uidl().await.unwrap();
    let msgs: Vec<MsgNum> = uids.iter().map(|u| u.msg).collect();
    let bodies = client.retr_many_vec(&msgs).await.unwrap();
    for (body, expected) in bodies.into_iter().zip(messages()) {
        assert_eq!(body.unwrap(), expected.content);
    }
    let mut streamed = Vec::new();
    let n = client
        .retr(
            MsgNum::new(3).unwrap(),
            &mut futures_util::io::Cursor::new(&mut streamed),
        )
        .await
        .unwrap();
    assert_eq!(n as usize, messages()[2].content.len());
    assert_eq!(streamed, messages()[2].content);
    client.dele(MsgNum::new(1).unwrap()).await.unwrap();
    client.quit().await.unwrap();
    assert_eq!(server.messages().len(), 19);
}

#[tokio::test]
async fn tokio_timeouts_and_faults() {
    let slow = start(true, Fault::Delay(Duration::from_secs(3)));
    let mut config = slow.client_config();
    config.timeouts.response = Duration::from_millis(300);
    let err = Client::connect(&config, &creds()).await.err().unwrap();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");

    let cut = start(true, Fault::DisconnectMidRetr { after: 30 });
    let mut client = Client::connect(&cut.client_config(), &creds())
        .await
        .unwrap();
    let err = client.retr_vec(MsgNum::new(5).unwrap()).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::ConnectionLost(SessionError::UnexpectedEof { .. })
        ),
        "{err}"
    );

    let server = start(true, Fault::None);
    let mut config = server.client_config();
    config.auth = AuthMethod::Login;
    let err = Client::connect(&config, &Credentials::new("user", "nope"))
        .await
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");
}

/// A non-blocking std TcpStream polled by busy-waking: crude, but enough to
/// show the client needs no runtime (its timer is runtime-independent).
struct Polled(TcpStream);

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
        let result = self.get_mut().0.read(buf);
        ready(cx, result)
    }
}

impl AsyncWrite for Polled {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let result = self.get_mut().0.write(buf);
        ready(cx, result)
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let result = self.get_mut().0.flush();
        ready(_cx, result)
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[test]
fn runs_without_any_runtime() {
    let server = start(true, Fault::None);
    let tcp = TcpStream::connect(server.addr()).unwrap();
    tcp.set_nonblocking(true).unwrap();
    futures_executor::block_on(async {
        let mut client = Client::connect_over(Polled(tcp), &server.client_config(), &creds())
            .await
            .unwrap();
        let stat = client.stat().await.unwrap();
        assert_eq!(stat.count, 20);
        let body = client.retr_vec(MsgNum::new(20).unwrap()).await.unwrap();
        assert_eq!(body, messages()[19].content);
        client.quit().await.unwrap();
    });
}

/// A sink that fails like a full disk on the first message's second chunk.
struct FullDisk {
    chunks: usize,
}

impl pop3_client::async_client::AsyncMessageSink for FullDisk {
    async fn write(&mut self, _: usize, _: &[u8]) -> std::io::Result<()> {
        self.chunks += 1;
        if self.chunks > 1 {
            return Err(std::io::Error::other("no space left on device"));
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_failing_sink_leaves_the_async_connection_refusing_work() {
    let server = start(true, Fault::None);
    let mut client = Client::connect(&server.client_config(), &creds())
        .await
        .unwrap();
    let msgs: Vec<MsgNum> = (1..=20).map(|n| MsgNum::new(n).unwrap()).collect();
    let err = client
        .retr_many(&msgs, &mut FullDisk { chunks: 0 })
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io, "{err}");
    let err = client.retr_vec(msgs[1]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unusable, "{err}");
}

#[tokio::test]
async fn tokio_sends_utf8_and_names_a_security_mismatch() {
    let raw = "Subject: Gr\u{fc}\u{df}e\r\n\r\nK\u{f6}ln\r\n"
        .as_bytes()
        .to_vec();
    let server = TestServer::start(TestServerConfig {
        options: ServerOptions {
            utf8: true,
            ..ServerOptions::default()
        },
        messages: vec![ServerMessage {
            uid: "u1".into(),
            content: raw.clone(),
        }],
        implicit_tls: true,
        fault: Fault::None,
        gmail: None,
    })
    .unwrap();
    let mut client = Client::connect(&server.client_config(), &creds())
        .await
        .unwrap();
    assert!(client.utf8_enabled());
    assert_eq!(client.retr_vec(MsgNum::new(1).unwrap()).await.unwrap(), raw);
    client.quit().await.unwrap();

    // The same implicit-TLS port with STARTTLS: silence, named.
    let mut config = server.client_config();
    config.security = Security::StartTls;
    config.timeouts.response = Duration::from_millis(300);
    let err = Client::connect(&config, &creds()).await.err().unwrap();
    assert_eq!(err.suggested_security(), Some(Security::Tls), "{err}");
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(err.to_string().contains("not one byte"), "{err}");
}
