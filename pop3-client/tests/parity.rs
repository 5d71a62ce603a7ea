//! The blocking and async clients offer the same operations, and both end
//! a TLS session with close_notify.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{self, BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use pop3_client::testing::self_signed_tls;
use pop3_client::{ClientConfig, Credentials, Security, Timeouts, TlsRoots};
use rustls::{ServerConnection, StreamOwned};

/// A one-connection TLS POP3 server that answers CAPA and QUIT, then reports
/// how the client ended the TLS session: `Ok(())` for close_notify, the
/// read error otherwise.
fn tls_server() -> (ClientConfig, mpsc::Receiver<io::Result<()>>) {
    let (pem, tls) = self_signed_tls().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let conn = ServerConnection::new(tls).unwrap();
        let mut stream = BufReader::new(StreamOwned::new(conn, tcp));
        let outcome = (|| {
            stream.get_mut().write_all(b"+OK ready\r\n")?;
            stream.get_mut().flush()?;
            let mut line = String::new();
            loop {
                line.clear();
                if stream.read_line(&mut line)? == 0 {
                    return Err(io::Error::other("closed before QUIT"));
                }
                let answer: &[u8] = match line.trim_end() {
                    "CAPA" => b"+OK\r\nUSER\r\n.\r\n",
                    "QUIT" => b"+OK bye\r\n",
                    "USER me" | "PASS secret" | "STAT" => b"+OK 0 0\r\n",
                    _ => b"-ERR no\r\n",
                };
                stream.get_mut().write_all(answer)?;
                stream.get_mut().flush()?;
                if answer.starts_with(b"+OK bye") {
                    break;
                }
            }
            // rustls reads 0 bytes after close_notify, and fails with
            // UnexpectedEof when TCP ends without it.
            let mut rest = Vec::new();
            io::Read::read_to_end(&mut stream, &mut rest)?;
            Ok(())
        })();
        let _ = tx.send(outcome);
    });
    let mut config = ClientConfig::new("localhost");
    config.port = Some(port);
    config.security = Security::Tls;
    config.roots = TlsRoots::CaPem(pem.into_bytes());
    config.timeouts = Timeouts::all(Duration::from_secs(10));
    (config, rx)
}

fn assert_clean_close(rx: &mpsc::Receiver<io::Result<()>>) {
    let outcome = rx.recv_timeout(Duration::from_secs(20)).unwrap();
    assert!(outcome.is_ok(), "no close_notify: {outcome:?}");
}

#[test]
fn the_blocking_quit_sends_close_notify() {
    let (config, rx) = tls_server();
    let client = pop3_client::blocking::Client::open(&config).unwrap();
    assert!(client.is_tls());
    client.quit().unwrap();
    assert_clean_close(&rx);
}

#[tokio::test]
async fn the_async_quit_sends_close_notify() {
    let (config, rx) = tls_server();
    let client = pop3_client::tokio::Client::open(&config).await.unwrap();
    assert!(client.is_tls());
    client.quit().await.unwrap();
    assert_clean_close(&rx);
}

#[test]
fn a_caller_tls_stream_logs_in_and_gets_close_notify() {
    let (config, rx) = tls_server();
    let tcp = std::net::TcpStream::connect(("127.0.0.1", config.port())).unwrap();
    let tls = config.tls_config().unwrap();
    // The caller's own TLS: rustls's stream is a ReadTimeout as it is.
    let stream = pop3_client::transport::tls_connect_blocking(
        tcp,
        "localhost",
        tls,
        Duration::from_secs(10),
    )
    .unwrap();
    let mut client = pop3_client::blocking::Client::from_stream(stream, &config, true).unwrap();
    assert!(client.is_tls());
    client.login(&Credentials::new("me", "secret")).unwrap();
    assert_eq!(client.stat().unwrap().count, 0);
    client.quit().unwrap();
    assert_clean_close(&rx);
}

#[tokio::test]
async fn a_caller_tls_stream_is_secure_for_the_async_client_too() {
    use tokio_util::compat::TokioAsyncReadCompatExt;
    let (config, rx) = tls_server();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", config.port()))
        .await
        .unwrap();
    let tls = pop3_client::transport::tls_connect_async(
        tcp.compat(),
        "localhost",
        config.tls_config().unwrap(),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    // Said to be secure: credentials go without allow_plaintext_auth.
    let mut client = pop3_client::async_client::Client::from_stream(tls, &config, true)
        .await
        .unwrap();
    assert!(client.is_tls());
    client
        .login(&Credentials::new("me", "secret"))
        .await
        .unwrap();
    assert_eq!(client.stat().await.unwrap().count, 0);
    client.quit().await.unwrap();
    assert_clean_close(&rx);
}

#[tokio::test]
async fn a_stream_said_to_be_plaintext_keeps_the_password() {
    let (config, _rx) = tls_server();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", config.port()))
        .await
        .unwrap();
    let tls = pop3_client::transport::tls_connect_async(
        tokio_util::compat::TokioAsyncReadCompatExt::compat(tcp),
        "localhost",
        config.tls_config().unwrap(),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    let mut client = pop3_client::async_client::Client::from_stream(tls, &config, false)
        .await
        .unwrap();
    assert!(!client.is_tls());
    let err = client
        .login(&Credentials::new("me", "secret"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), pop3_client::ErrorKind::Config, "{err}");
}

#[test]
fn without_close_notify_the_server_sees_a_cut() {
    // The check's own control: the same session over a stream whose
    // `close` only flushes ends without close_notify, and the server
    // reads that as an error.
    let (config, rx) = tls_server();
    let tcp = std::net::TcpStream::connect(("127.0.0.1", config.port())).unwrap();
    let stream = pop3_client::transport::tls_connect_blocking(
        tcp,
        "localhost",
        config.tls_config().unwrap(),
        Duration::from_secs(10),
    )
    .unwrap();
    let client = pop3_client::blocking::Client::from_stream(
        pop3_client::transport::Unbounded(stream),
        &config,
        true,
    )
    .unwrap();
    client.quit().unwrap();
    let outcome = rx.recv_timeout(Duration::from_secs(20)).unwrap();
    let err = outcome.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
}
