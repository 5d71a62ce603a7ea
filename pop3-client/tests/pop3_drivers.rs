//! Every POP3 scenario, written once and run against both drivers (the
//! blocking client and the async one, on tokio or on a bare executor):
//! the in-process server over real TCP and TLS, every login method,
//! byte-exact fetches, pipelined batches, each injected fault mapped to the
//! error an application acts on, STLS, timeouts, the caller's own TLS, and
//! close_notify at the end of a TLS session.
//!
//! A scenario is a function generic over a [`Pop3Driver`]; `both!` makes
//! `NAME::blocking` and `NAME::async_driver` tests of it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{self, BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context, Poll};
use std::thread;
use std::time::Duration;

use common::{both, Exec, Polled, Tokens};
use futures_io::{AsyncRead, AsyncWrite};
use pop3_client::async_client::AsyncMessageSink;
use pop3_client::pop3_proto::server::{ServerMessage, ServerOptions};
use pop3_client::pop3_proto::SessionError;
use pop3_client::testing::{self_signed_tls, Fault, TestServer, TestServerConfig};
use pop3_client::transport::{AsyncTlsStream, BlockingTlsStream, ReadTimeout, Unbounded};
use pop3_client::{
    AuthMethod, Capabilities, ClientConfig, Credentials, Error, ErrorKind, FetchProgress,
    ListEntry, MessageSink, MismatchSign, MsgNum, ProgressFn, Security, ServerRefusal, Stat,
    Timeouts, TlsRoots, UidlItem,
};
use rustls::{ServerConnection, StreamOwned};
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

/// tokio's TcpStream as a futures-io stream: what `pop3_client::tokio`
/// connects over.
type TokioTcp = Compat<tokio::net::TcpStream>;

// ---------------------------------------------------------------------------
// The drivers
// ---------------------------------------------------------------------------

/// How a scenario gets a session: one implementation per driver.
trait Pop3Driver {
    /// A session over TCP the client connected.
    type Tcp: Pop3Session;
    /// A session over TCP the caller connected.
    type Over: Pop3Session;
    /// A session over TLS the caller set up.
    type CallerTls: Pop3Session;
    /// A session over TLS the caller set up, whose close only flushes.
    type NoCloseNotify: Pop3Session;
    /// `Client::connect`.
    fn connect(config: &ClientConfig, credentials: &Credentials) -> Result<Self::Tcp, Error>;
    /// `Client::open`.
    fn open(config: &ClientConfig) -> Result<Self::Tcp, Error>;
    /// `Client::connect_over` a TCP stream the caller connected: as it is
    /// for the blocking client; for the async one non-blocking, polled by a
    /// bare executor with no runtime.
    fn connect_over(
        tcp: TcpStream,
        config: &ClientConfig,
        credentials: &Credentials,
    ) -> Result<Self::Over, Error>;
    /// `Client::from_stream` over TLS the caller set up (to 127.0.0.1 on
    /// `config`'s port, for `localhost`), said to be secure or not.
    fn from_caller_tls(config: &ClientConfig, is_tls: bool) -> Result<Self::CallerTls, Error>;
    /// Like [`Pop3Driver::from_caller_tls`], said to be secure, over a
    /// stream whose close only flushes: no close_notify.
    fn from_caller_tls_without_close_notify(
        config: &ClientConfig,
    ) -> Result<Self::NoCloseNotify, Error>;
}

/// A session's operations, with the clients' own signatures (a writer or a
/// sink the test passes is both blocking and async).
trait Pop3Session: Sized {
    fn login(&mut self, credentials: &Credentials) -> Result<(), Error>;
    fn is_tls(&self) -> bool;
    fn utf8_enabled(&self) -> bool;
    fn capabilities(&self) -> &Capabilities;
    fn on_progress(&mut self, progress: Option<ProgressFn>);
    fn stat(&mut self) -> Result<Stat, Error>;
    fn list(&mut self) -> Result<Vec<ListEntry>, Error>;
    fn uidl(&mut self) -> Result<Vec<UidlItem>, Error>;
    fn retr<W: Write + AsyncWrite + Unpin + ?Sized>(
        &mut self,
        msg: MsgNum,
        out: &mut W,
    ) -> Result<u64, Error>;
    fn retr_vec(&mut self, msg: MsgNum) -> Result<Vec<u8>, Error>;
    fn retr_many<K: MessageSink + AsyncMessageSink + ?Sized>(
        &mut self,
        msgs: &[MsgNum],
        sink: &mut K,
    ) -> Result<Vec<Result<u64, ServerRefusal>>, Error>;
    fn retr_many_with_progress<K: MessageSink + AsyncMessageSink + ?Sized>(
        &mut self,
        msgs: &[MsgNum],
        sink: &mut K,
        progress: &mut (dyn FnMut(&FetchProgress) + Send),
    ) -> Result<Vec<Result<u64, ServerRefusal>>, Error>;
    fn retr_many_vec(
        &mut self,
        msgs: &[MsgNum],
    ) -> Result<Vec<Result<Vec<u8>, ServerRefusal>>, Error>;
    fn dele(&mut self, msg: MsgNum) -> Result<(), Error>;
    fn dele_many(&mut self, msgs: &[MsgNum]) -> Result<Vec<Result<(), ServerRefusal>>, Error>;
    fn noop(&mut self) -> Result<(), Error>;
    fn quit(self) -> Result<(), Error>;
}

/// The blocking driver.
struct Blocking;

struct BlockingSession<S: ReadTimeout>(pop3_client::blocking::Client<S>);

fn caller_tls_blocking(config: &ClientConfig) -> Result<BlockingTlsStream<TcpStream>, Error> {
    let tcp = TcpStream::connect(("127.0.0.1", config.port()))?;
    pop3_client::transport::tls_connect_blocking(
        tcp,
        "localhost",
        config.tls_config()?,
        Duration::from_secs(10),
    )
}

impl Pop3Driver for Blocking {
    type Tcp = BlockingSession<TcpStream>;
    type Over = BlockingSession<TcpStream>;
    type CallerTls = BlockingSession<BlockingTlsStream<TcpStream>>;
    type NoCloseNotify = BlockingSession<Unbounded<BlockingTlsStream<TcpStream>>>;
    fn connect(config: &ClientConfig, credentials: &Credentials) -> Result<Self::Tcp, Error> {
        pop3_client::blocking::Client::connect(config, credentials).map(BlockingSession)
    }
    fn open(config: &ClientConfig) -> Result<Self::Tcp, Error> {
        pop3_client::blocking::Client::open(config).map(BlockingSession)
    }
    fn connect_over(
        tcp: TcpStream,
        config: &ClientConfig,
        credentials: &Credentials,
    ) -> Result<Self::Over, Error> {
        pop3_client::blocking::Client::connect_over(tcp, config, credentials).map(BlockingSession)
    }
    fn from_caller_tls(config: &ClientConfig, is_tls: bool) -> Result<Self::CallerTls, Error> {
        // The caller's own TLS: rustls's stream is a ReadTimeout as it is.
        let stream = caller_tls_blocking(config)?;
        pop3_client::blocking::Client::from_stream(stream, config, is_tls).map(BlockingSession)
    }
    fn from_caller_tls_without_close_notify(
        config: &ClientConfig,
    ) -> Result<Self::NoCloseNotify, Error> {
        let stream = Unbounded(caller_tls_blocking(config)?);
        pop3_client::blocking::Client::from_stream(stream, config, true).map(BlockingSession)
    }
}

impl<S: ReadTimeout> Pop3Session for BlockingSession<S> {
    fn login(&mut self, credentials: &Credentials) -> Result<(), Error> {
        self.0.login(credentials)
    }
    fn is_tls(&self) -> bool {
        self.0.is_tls()
    }
    fn utf8_enabled(&self) -> bool {
        self.0.utf8_enabled()
    }
    fn capabilities(&self) -> &Capabilities {
        self.0.capabilities()
    }
    fn on_progress(&mut self, progress: Option<ProgressFn>) {
        self.0.on_progress(progress);
    }
    fn stat(&mut self) -> Result<Stat, Error> {
        self.0.stat()
    }
    fn list(&mut self) -> Result<Vec<ListEntry>, Error> {
        self.0.list()
    }
    fn uidl(&mut self) -> Result<Vec<UidlItem>, Error> {
        self.0.uidl()
    }
    fn retr<W: Write + AsyncWrite + Unpin + ?Sized>(
        &mut self,
        msg: MsgNum,
        out: &mut W,
    ) -> Result<u64, Error> {
        self.0.retr(msg, out)
    }
    fn retr_vec(&mut self, msg: MsgNum) -> Result<Vec<u8>, Error> {
        self.0.retr_vec(msg)
    }
    fn retr_many<K: MessageSink + AsyncMessageSink + ?Sized>(
        &mut self,
        msgs: &[MsgNum],
        sink: &mut K,
    ) -> Result<Vec<Result<u64, ServerRefusal>>, Error> {
        self.0.retr_many(msgs, sink)
    }
    fn retr_many_with_progress<K: MessageSink + AsyncMessageSink + ?Sized>(
        &mut self,
        msgs: &[MsgNum],
        sink: &mut K,
        progress: &mut (dyn FnMut(&FetchProgress) + Send),
    ) -> Result<Vec<Result<u64, ServerRefusal>>, Error> {
        self.0.retr_many_with_progress(msgs, sink, progress)
    }
    fn retr_many_vec(
        &mut self,
        msgs: &[MsgNum],
    ) -> Result<Vec<Result<Vec<u8>, ServerRefusal>>, Error> {
        self.0.retr_many_vec(msgs)
    }
    fn dele(&mut self, msg: MsgNum) -> Result<(), Error> {
        self.0.dele(msg)
    }
    fn dele_many(&mut self, msgs: &[MsgNum]) -> Result<Vec<Result<(), ServerRefusal>>, Error> {
        self.0.dele_many(msgs)
    }
    fn noop(&mut self) -> Result<(), Error> {
        self.0.noop()
    }
    fn quit(self) -> Result<(), Error> {
        self.0.quit()
    }
}

/// The async driver: every call driven to completion by `exec`.
struct Async;

struct AsyncSession<S: AsyncRead + AsyncWrite + Unpin> {
    client: pop3_client::async_client::Client<S>,
    exec: Exec,
}

async fn caller_tls_async(config: &ClientConfig) -> Result<AsyncTlsStream<TokioTcp>, Error> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", config.port())).await?;
    pop3_client::transport::tls_connect_async(
        tcp.compat(),
        "localhost",
        config.tls_config()?,
        Duration::from_secs(10),
    )
    .await
}

/// A stream whose close only flushes: no close_notify.
struct NoCloseNotify<S>(S);

impl<S: AsyncRead + Unpin> AsyncRead for NoCloseNotify<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for NoCloseNotify<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }
}

impl Pop3Driver for Async {
    type Tcp = AsyncSession<TokioTcp>;
    type Over = AsyncSession<Polled>;
    type CallerTls = AsyncSession<AsyncTlsStream<TokioTcp>>;
    type NoCloseNotify = AsyncSession<NoCloseNotify<AsyncTlsStream<TokioTcp>>>;
    fn connect(config: &ClientConfig, credentials: &Credentials) -> Result<Self::Tcp, Error> {
        let client = Exec::Tokio.run(pop3_client::tokio::Client::connect(config, credentials))?;
        Ok(AsyncSession {
            client,
            exec: Exec::Tokio,
        })
    }
    fn open(config: &ClientConfig) -> Result<Self::Tcp, Error> {
        let client = Exec::Tokio.run(pop3_client::tokio::Client::open(config))?;
        Ok(AsyncSession {
            client,
            exec: Exec::Tokio,
        })
    }
    fn connect_over(
        tcp: TcpStream,
        config: &ClientConfig,
        credentials: &Credentials,
    ) -> Result<Self::Over, Error> {
        let client = Exec::Bare.run(pop3_client::async_client::Client::connect_over(
            Polled::new(tcp),
            config,
            credentials,
        ))?;
        Ok(AsyncSession {
            client,
            exec: Exec::Bare,
        })
    }
    fn from_caller_tls(config: &ClientConfig, is_tls: bool) -> Result<Self::CallerTls, Error> {
        let client = Exec::Tokio.run(async {
            let stream = caller_tls_async(config).await?;
            pop3_client::async_client::Client::from_stream(stream, config, is_tls).await
        })?;
        Ok(AsyncSession {
            client,
            exec: Exec::Tokio,
        })
    }
    fn from_caller_tls_without_close_notify(
        config: &ClientConfig,
    ) -> Result<Self::NoCloseNotify, Error> {
        let client = Exec::Tokio.run(async {
            let stream = NoCloseNotify(caller_tls_async(config).await?);
            pop3_client::async_client::Client::from_stream(stream, config, true).await
        })?;
        Ok(AsyncSession {
            client,
            exec: Exec::Tokio,
        })
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Pop3Session for AsyncSession<S> {
    fn login(&mut self, credentials: &Credentials) -> Result<(), Error> {
        self.exec.run(self.client.login(credentials))
    }
    fn is_tls(&self) -> bool {
        self.client.is_tls()
    }
    fn utf8_enabled(&self) -> bool {
        self.client.utf8_enabled()
    }
    fn capabilities(&self) -> &Capabilities {
        self.client.capabilities()
    }
    fn on_progress(&mut self, progress: Option<ProgressFn>) {
        self.client.on_progress(progress);
    }
    fn stat(&mut self) -> Result<Stat, Error> {
        self.exec.run(self.client.stat())
    }
    fn list(&mut self) -> Result<Vec<ListEntry>, Error> {
        self.exec.run(self.client.list())
    }
    fn uidl(&mut self) -> Result<Vec<UidlItem>, Error> {
        self.exec.run(self.client.uidl())
    }
    fn retr<W: Write + AsyncWrite + Unpin + ?Sized>(
        &mut self,
        msg: MsgNum,
        out: &mut W,
    ) -> Result<u64, Error> {
        self.exec.run(self.client.retr(msg, out))
    }
    fn retr_vec(&mut self, msg: MsgNum) -> Result<Vec<u8>, Error> {
        self.exec.run(self.client.retr_vec(msg))
    }
    fn retr_many<K: MessageSink + AsyncMessageSink + ?Sized>(
        &mut self,
        msgs: &[MsgNum],
        sink: &mut K,
    ) -> Result<Vec<Result<u64, ServerRefusal>>, Error> {
        self.exec.run(self.client.retr_many(msgs, sink))
    }
    fn retr_many_with_progress<K: MessageSink + AsyncMessageSink + ?Sized>(
        &mut self,
        msgs: &[MsgNum],
        sink: &mut K,
        progress: &mut (dyn FnMut(&FetchProgress) + Send),
    ) -> Result<Vec<Result<u64, ServerRefusal>>, Error> {
        self.exec
            .run(self.client.retr_many_with_progress(msgs, sink, progress))
    }
    fn retr_many_vec(
        &mut self,
        msgs: &[MsgNum],
    ) -> Result<Vec<Result<Vec<u8>, ServerRefusal>>, Error> {
        self.exec.run(self.client.retr_many_vec(msgs))
    }
    fn dele(&mut self, msg: MsgNum) -> Result<(), Error> {
        self.exec.run(self.client.dele(msg))
    }
    fn dele_many(&mut self, msgs: &[MsgNum]) -> Result<Vec<Result<(), ServerRefusal>>, Error> {
        self.exec.run(self.client.dele_many(msgs))
    }
    fn noop(&mut self) -> Result<(), Error> {
        self.exec.run(self.client.noop())
    }
    fn quit(self) -> Result<(), Error> {
        self.exec.run(self.client.quit())
    }
}

/// The error of an attempt that must fail (the session type has no Debug).
fn failed<T>(result: Result<T, Error>) -> Error {
    match result {
        Ok(_) => panic!("succeeded, and should have failed"),
        Err(e) => e,
    }
}

// ---------------------------------------------------------------------------
// Servers, messages, writers and sinks
// ---------------------------------------------------------------------------

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

/// A larger maildrop: twenty messages of growing size with dot-led lines.
fn twenty() -> Vec<ServerMessage> {
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

fn server(options: ServerOptions, implicit_tls: bool, fault: Fault) -> TestServer {
    TestServer::start(TestServerConfig {
        options,
        messages: corpus(),
        implicit_tls,
        fault,
        gmail: None,
        ..TestServerConfig::default()
    })
    .unwrap()
}

/// The twenty-message maildrop, over implicit TLS or STLS.
fn twenty_server(implicit_tls: bool, fault: Fault) -> TestServer {
    TestServer::start(TestServerConfig {
        options: ServerOptions {
            stls: !implicit_tls,
            ..ServerOptions::default()
        },
        messages: twenty(),
        implicit_tls,
        fault,
        gmail: None,
        ..TestServerConfig::default()
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

/// A writer that fails like a full disk, blocking and async.
struct FullDisk;

fn full_disk() -> io::Error {
    io::Error::other("no space left on device")
}

impl Write for FullDisk {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(full_disk())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsyncWrite for FullDisk {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, _: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Err(full_disk()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A writer that throws everything away, blocking and async.
struct Null;

impl Write for Null {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsyncWrite for Null {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A sink that fails like a full disk on the first message's second chunk,
/// blocking and async.
struct FullDiskSink {
    chunks: usize,
}

impl FullDiskSink {
    fn chunk(&mut self) -> io::Result<()> {
        self.chunks += 1;
        if self.chunks > 1 {
            return Err(full_disk());
        }
        Ok(())
    }
}

impl MessageSink for FullDiskSink {
    fn write(&mut self, _: usize, _: &[u8]) -> io::Result<()> {
        self.chunk()
    }
}

impl AsyncMessageSink for FullDiskSink {
    async fn write(&mut self, _: usize, _: &[u8]) -> io::Result<()> {
        self.chunk()
    }
}

/// A sink keeping each message's body, blocking and async.
#[derive(Default)]
struct Bodies(Vec<Vec<u8>>);

impl MessageSink for Bodies {
    fn begin(&mut self, _: usize, _: MsgNum) -> io::Result<()> {
        self.0.push(Vec::new());
        Ok(())
    }
    fn write(&mut self, _: usize, chunk: &[u8]) -> io::Result<()> {
        match self.0.last_mut() {
            Some(body) => body.extend_from_slice(chunk),
            None => return Err(io::Error::other("no message begun")),
        }
        Ok(())
    }
}

impl AsyncMessageSink for Bodies {
    async fn begin(&mut self, index: usize, msg: MsgNum) -> io::Result<()> {
        MessageSink::begin(self, index, msg)
    }
    async fn write(&mut self, index: usize, chunk: &[u8]) -> io::Result<()> {
        MessageSink::write(self, index, chunk)
    }
}

fn mismatch(err: &Error) -> (MismatchSign, Security, Security) {
    match err {
        Error::SecurityMismatch {
            sign,
            tried,
            suggested,
            protocol,
        } => {
            assert_eq!(*protocol, pop3_client::Protocol::Pop3);
            (*sign, *tried, *suggested)
        }
        other => panic!("not a mismatch: {other}"),
    }
}

/// A one-connection TLS POP3 server that answers CAPA and QUIT, then reports
/// how the client ended the TLS session: `Ok(())` for close_notify, the
/// read error otherwise.
fn close_notify_server() -> (ClientConfig, mpsc::Receiver<io::Result<()>>) {
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

fn close_outcome(rx: &mpsc::Receiver<io::Result<()>>) -> io::Result<()> {
    rx.recv_timeout(Duration::from_secs(20)).unwrap()
}

fn assert_clean_close(rx: &mpsc::Receiver<io::Result<()>>) {
    let outcome = close_outcome(rx);
    assert!(outcome.is_ok(), "no close_notify: {outcome:?}");
}

// ---------------------------------------------------------------------------
// The scenarios
// ---------------------------------------------------------------------------

both!(Blocking, Async;
    fetches_every_message_byte_for_byte_over_stls_and_implicit_tls,
    pipelined_batch_with_progress_and_deletions,
    a_larger_maildrop_pipelined_streamed_and_deleted,
    every_login_method,
    oauth2_tokens_come_at_each_login_and_a_refused_one_is_refreshed_once,
    no_credentials_without_tls_unless_allowed,
    line_breaks_in_credentials_are_refused_as_settings_not_blamed_on_the_server,
    starttls_required_but_not_offered_fails_before_login,
    untrusted_certificate_is_named,
    disconnect_mid_retr_is_an_eof_error,
    slow_server_times_out,
    timeouts_cuts_and_refusals_over_implicit_tls,
    trickling_server_cannot_hold_the_client,
    garbage_status_is_a_protocol_error_showing_the_bytes,
    mailbox_in_use,
    stls_response_injection_is_refused,
    endless_body_is_bounded,
    refused_stls_is_a_tls_error_before_any_credential,
    traces_redact_credentials,
    login_delay_and_temporary_failures,
    after_an_interrupted_answer_the_connection_refuses_work_instead_of_misreading,
    a_failing_sink_leaves_the_connection_refusing_work,
    a_refused_command_leaves_the_connection_usable,
    utf8_is_sent_when_advertised_so_raw_utf8_headers_arrive_as_stored,
    utf8_over_implicit_tls_and_a_mismatch_named,
    plaintext_against_an_implicit_tls_port_is_named,
    tls_against_a_plaintext_port_is_named,
    connect_over_a_callers_stream_without_any_runtime,
    quit_sends_close_notify,
    a_caller_tls_stream_logs_in_and_gets_close_notify,
    a_stream_said_to_be_plaintext_keeps_the_password,
    without_close_notify_the_server_sees_a_cut,
);

fn fetches_every_message_byte_for_byte_over_stls_and_implicit_tls<D: Pop3Driver>() {
    for (implicit, options) in [(false, stls_options()), (true, ServerOptions::default())] {
        let server = server(options, implicit, Fault::None);
        let mut client = D::connect(&server.client_config(), &creds()).unwrap();
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

fn pipelined_batch_with_progress_and_deletions<D: Pop3Driver>() {
    let server = server(stls_options(), false, Fault::None);
    let mut client = D::connect(&server.client_config(), &creds()).unwrap();
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

fn a_larger_maildrop_pipelined_streamed_and_deleted<D: Pop3Driver>() {
    let server = twenty_server(false, Fault::None);
    let mut client = D::connect(&server.client_config(), &creds()).unwrap();
    assert!(client.is_tls());
    let uids = client.uidl().unwrap();
    let msgs: Vec<MsgNum> = uids.iter().map(|u| u.msg).collect();
    let bodies = client.retr_many_vec(&msgs).unwrap();
    assert_eq!(bodies.len(), 20);
    for (body, expected) in bodies.into_iter().zip(twenty()) {
        assert_eq!(body.unwrap(), expected.content);
    }
    // Into a sink of the caller's, with a callback borrowing a counter.
    let mut sink = Bodies::default();
    let mut chunks = 0u64;
    let outcomes = client
        .retr_many_with_progress(&msgs, &mut sink, &mut |_| chunks += 1)
        .unwrap();
    assert!(outcomes.iter().all(Result::is_ok));
    assert!(chunks >= msgs.len() as u64, "{chunks}");
    let expected: Vec<Vec<u8>> = twenty().into_iter().map(|m| m.content).collect();
    assert_eq!(sink.0, expected);
    // Streamed into a writer.
    let mut streamed = Vec::new();
    let n = client.retr(m(3), &mut streamed).unwrap();
    assert_eq!(n as usize, twenty()[2].content.len());
    assert_eq!(streamed, twenty()[2].content);
    client.dele(m(1)).unwrap();
    client.quit().unwrap();
    assert_eq!(server.messages().len(), 19);
}

fn every_login_method<D: Pop3Driver>() {
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
            D::connect(&config, &creds()).unwrap_or_else(|e| panic!("{method:?}: {e}"));
        assert_eq!(client.stat().unwrap().count, 5, "{method:?}");
        client.quit().unwrap();
        // And the wrong secret is an authentication error.
        let err = failed(D::connect(&config, &Credentials::new("user", "wrong")));
        assert_eq!(err.kind(), ErrorKind::Auth, "{method:?}: {err}");
        assert!(err.to_string().contains("app-specific password"), "{err}");
    }
}

fn oauth2_tokens_come_at_each_login_and_a_refused_one_is_refreshed_once<D: Pop3Driver>() {
    let options = ServerOptions {
        stls: true,
        sasl: ["XOAUTH2", "OAUTHBEARER"].map(String::from).to_vec(),
        ..ServerOptions::default()
    };
    let server = server(options, false, Fault::None);
    for method in [AuthMethod::XOAuth2, AuthMethod::OAuthBearer] {
        let mut config = server.client_config();
        config.auth = method;
        // The server accepts the password as the token; the first token
        // the source hands out has been revoked behind its back.
        let tokens = Tokens::new(vec!["revoked", "password"]);
        let credentials = Credentials::oauth2("user", tokens.clone());
        let mut client =
            D::connect(&config, &credentials).unwrap_or_else(|e| panic!("{method:?}: {e}"));
        assert_eq!(client.stat().unwrap().count, 5, "{method:?}");
        client.quit().unwrap();
        assert_eq!(tokens.invalidated.load(Ordering::SeqCst), 1, "{method:?}");
        // The next session uses the refreshed token as it is.
        let client = D::connect(&config, &credentials).unwrap();
        client.quit().unwrap();
        assert_eq!(tokens.invalidated.load(Ordering::SeqCst), 1, "{method:?}");
        // A source whose fresh tokens are refused too: one retry, then the
        // server's refusal, not a loop.
        let tokens = Tokens::new(vec!["revoked", "also revoked", "password"]);
        let err = failed(D::connect(
            &config,
            &Credentials::oauth2("user", tokens.clone()),
        ));
        assert_eq!(err.kind(), ErrorKind::Auth, "{method:?}: {err}");
        assert_eq!(tokens.invalidated.load(Ordering::SeqCst), 1, "{method:?}");
        assert!(!format!("{err} {err:?}").contains("revoked"), "{err:?}");
    }
}

fn no_credentials_without_tls_unless_allowed<D: Pop3Driver>() {
    let server = server(ServerOptions::default(), false, Fault::None);
    let mut config = server.client_config();
    config.security = Security::Plain;
    let err = failed(D::connect(&config, &creds()));
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(err.to_string().contains("without TLS"), "{err}");
    config.allow_plaintext_auth = true;
    let mut client = D::connect(&config, &creds()).unwrap();
    assert!(!client.is_tls());
    client.noop().unwrap();
}

fn line_breaks_in_credentials_are_refused_as_settings_not_blamed_on_the_server<D: Pop3Driver>() {
    let server = server(stls_options(), false, Fault::None);
    let config = server.client_config();
    // USER/PASS would send it as a line; PLAIN (which Auto picks here) would
    // carry it in base64: refused the same way, before anything is sent.
    for method in [AuthMethod::User, AuthMethod::Auto, AuthMethod::Plain] {
        let mut config = config.clone();
        config.auth = method;
        let injected = Credentials::new("user\r\nDELE 1", "password");
        let err = failed(D::connect(&config, &injected));
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

fn starttls_required_but_not_offered_fails_before_login<D: Pop3Driver>() {
    let server = server(ServerOptions::default(), false, Fault::None);
    let err = failed(D::connect(&server.client_config(), &creds()));
    assert_eq!(err.kind(), ErrorKind::Tls, "{err}");
    assert!(err.to_string().contains("does not offer STLS"), "{err}");
}

fn untrusted_certificate_is_named<D: Pop3Driver>() {
    let server = server(ServerOptions::default(), true, Fault::None);
    let mut config = server.client_config();
    config.roots = TlsRoots::WebPki;
    let err = failed(D::connect(&config, &creds()));
    assert_eq!(err.kind(), ErrorKind::Tls, "{err}");
    assert!(
        err.to_string()
            .contains("not signed by a trusted authority"),
        "{err}"
    );
}

fn disconnect_mid_retr_is_an_eof_error<D: Pop3Driver>() {
    let server = server(
        stls_options(),
        false,
        Fault::DisconnectMidRetr { after: 20 },
    );
    let mut client = D::connect(&server.client_config(), &creds()).unwrap();
    let err = failed(client.retr_vec(m(2)));
    assert!(
        matches!(
            err,
            Error::ConnectionLost(SessionError::UnexpectedEof { during: "RETR" })
        ),
        "{err}"
    );
}

fn slow_server_times_out<D: Pop3Driver>() {
    let slow = TestServer::start(TestServerConfig {
        options: ServerOptions::default(),
        messages: corpus(),
        implicit_tls: true,
        fault: Fault::Delay(Duration::from_secs(2)),
        gmail: None,
        ..TestServerConfig::default()
    })
    .unwrap();
    let mut config = slow.client_config();
    config.timeouts.response = Duration::from_millis(300);
    let err = failed(D::connect(&config, &creds()));
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
}

fn timeouts_cuts_and_refusals_over_implicit_tls<D: Pop3Driver>() {
    let slow = twenty_server(true, Fault::Delay(Duration::from_secs(3)));
    let mut config = slow.client_config();
    config.timeouts.response = Duration::from_millis(300);
    let err = failed(D::connect(&config, &creds()));
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");

    let cut = twenty_server(true, Fault::DisconnectMidRetr { after: 30 });
    let mut client = D::connect(&cut.client_config(), &creds()).unwrap();
    let err = failed(client.retr_vec(m(5)));
    assert!(
        matches!(
            err,
            Error::ConnectionLost(SessionError::UnexpectedEof { .. })
        ),
        "{err}"
    );

    let server = twenty_server(true, Fault::None);
    let mut config = server.client_config();
    config.auth = AuthMethod::Login;
    let err = failed(D::connect(&config, &Credentials::new("user", "nope")));
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");
}

fn trickling_server_cannot_hold_the_client<D: Pop3Driver>() {
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
    let err = failed(D::connect(&config, &creds()));
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
}

fn garbage_status_is_a_protocol_error_showing_the_bytes<D: Pop3Driver>() {
    let server = server(stls_options(), false, Fault::GarbageStatus);
    let mut client = D::connect(&server.client_config(), &creds()).unwrap();
    let err = failed(client.stat());
    assert_eq!(err.kind(), ErrorKind::Protocol);
    assert!(err.to_string().contains("HTTP/1.1 500"), "{err}");
}

fn mailbox_in_use<D: Pop3Driver>() {
    let options = ServerOptions {
        stls: true,
        refuse_login_with: Some((
            "IN-USE".into(),
            "Do you have another POP session running?".into(),
        )),
        ..ServerOptions::default()
    };
    let server = server(options, false, Fault::None);
    let err = failed(D::connect(&server.client_config(), &creds()));
    assert_eq!(err.kind(), ErrorKind::InUse, "{err}");
    assert!(err.is_transient());
}

fn stls_response_injection_is_refused<D: Pop3Driver>() {
    let server = server(stls_options(), false, Fault::InjectAfterStls);
    let err = failed(D::connect(&server.client_config(), &creds()));
    assert!(
        matches!(err, Error::Protocol(SessionError::UnexpectedData { .. })),
        "{err}"
    );
}

fn endless_body_is_bounded<D: Pop3Driver>() {
    let server = server(stls_options(), false, Fault::EndlessBody);
    let mut config = server.client_config();
    config.session.max_body = Some(4 << 20);
    let mut client = D::connect(&config, &creds()).unwrap();
    let err = failed(client.retr(m(1), &mut Null));
    assert!(
        matches!(err, Error::Protocol(SessionError::BodyTooLarge { .. })),
        "{err}"
    );
}

fn refused_stls_is_a_tls_error_before_any_credential<D: Pop3Driver>() {
    let server = server(stls_options(), false, Fault::RefuseStls);
    let err = failed(D::connect(&server.client_config(), &creds()));
    assert_eq!(err.kind(), ErrorKind::Tls, "{err}");
    assert!(err.to_string().contains("refused STLS"), "{err}");
}

/// Traces name every command and reply but never show a password.
fn traces_redact_credentials<D: Pop3Driver>() {
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);
    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
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
    // The async driver's futures are polled on this thread (block_on), so
    // the thread's subscriber sees their events too.
    tracing::subscriber::with_default(subscriber, || {
        let mut client = D::connect(&config, &Credentials::new("user", "password")).unwrap();
        client.stat().unwrap();
        client.quit().unwrap();
    });
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains("PASS <redacted>"), "{log}");
    assert!(log.contains("STAT"), "{log}");
    assert!(log.contains("pop3.command"), "{log}");
    assert!(!log.contains("password"), "the password leaked: {log}");
}

fn login_delay_and_temporary_failures<D: Pop3Driver>() {
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
        let err = failed(D::connect(&server.client_config(), &creds()));
        assert_eq!(
            (err.kind(), err.is_transient()),
            (kind, transient),
            "{code}: {err}"
        );
    }
}

fn after_an_interrupted_answer_the_connection_refuses_work_instead_of_misreading<D: Pop3Driver>() {
    let server = server(stls_options(), false, Fault::None);
    let mut client = D::connect(&server.client_config(), &creds()).unwrap();
    // The writer fails in the middle of message 1: the rest of its body is
    // still on the way, so the next answer read would be part of it.
    let err = failed(client.retr(m(1), &mut FullDisk));
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
    let mut client = D::connect(&cut.client_config(), &creds()).unwrap();
    failed(client.retr_vec(m(2)));
    let err = failed(client.noop());
    assert_eq!(err.kind(), ErrorKind::Unusable, "{err}");
}

fn a_failing_sink_leaves_the_connection_refusing_work<D: Pop3Driver>() {
    let server = twenty_server(true, Fault::None);
    let mut client = D::connect(&server.client_config(), &creds()).unwrap();
    let msgs: Vec<MsgNum> = (1..=20).map(m).collect();
    let err = failed(client.retr_many(&msgs, &mut FullDiskSink { chunks: 0 }));
    assert_eq!(err.kind(), ErrorKind::Io, "{err}");
    let err = failed(client.retr_vec(msgs[1]));
    assert_eq!(err.kind(), ErrorKind::Unusable, "{err}");
}

fn a_refused_command_leaves_the_connection_usable<D: Pop3Driver>() {
    let server = server(stls_options(), false, Fault::None);
    let mut client = D::connect(&server.client_config(), &creds()).unwrap();
    let err = failed(client.retr_vec(m(99)));
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

fn utf8_is_sent_when_advertised_so_raw_utf8_headers_arrive_as_stored<D: Pop3Driver>() {
    let (server, raw) = utf8_server();
    let mut client = D::connect(&server.client_config(), &creds()).unwrap();
    assert!(client.utf8_enabled());
    assert_eq!(client.retr_vec(m(1)).unwrap(), raw);
    assert_eq!(client.list().unwrap()[0].octets, raw.len() as u64);
    client.quit().unwrap();

    let mut config = server.client_config();
    config.utf8 = false;
    let mut client = D::connect(&config, &creds()).unwrap();
    assert!(!client.utf8_enabled());
    let replaced = client.retr_vec(m(1)).unwrap();
    assert_ne!(replaced, raw);
    assert!(String::from_utf8_lossy(&replaced).contains("Subject: Cannot display Unicode content"));
    client.quit().unwrap();
}

fn utf8_over_implicit_tls_and_a_mismatch_named<D: Pop3Driver>() {
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
        ..TestServerConfig::default()
    })
    .unwrap();
    let mut client = D::connect(&server.client_config(), &creds()).unwrap();
    assert!(client.utf8_enabled());
    assert_eq!(client.retr_vec(m(1)).unwrap(), raw);
    client.quit().unwrap();

    // The same implicit-TLS port with STARTTLS: silence, named.
    let mut config = server.client_config();
    config.security = Security::StartTls;
    config.timeouts.response = Duration::from_millis(300);
    let err = failed(D::connect(&config, &creds()));
    assert_eq!(err.suggested_security(), Some(Security::Tls), "{err}");
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(err.to_string().contains("not one byte"), "{err}");
}

fn plaintext_against_an_implicit_tls_port_is_named<D: Pop3Driver>() {
    let tls_port = server(ServerOptions::default(), true, Fault::None);
    for security in [Security::StartTls, Security::Plain] {
        let mut config = tls_port.client_config();
        config.security = security;
        config.allow_plaintext_auth = true;
        config.timeouts.response = Duration::from_millis(500);
        let err = failed(D::connect(&config, &creds()));
        let (sign, tried, suggested) = mismatch(&err);
        assert!(matches!(sign, MismatchSign::Silence { .. }), "{err}");
        assert_eq!((tried, suggested), (security, Security::Tls));
        assert_eq!(err.kind(), ErrorKind::Timeout);
        let text = err.to_string();
        assert!(text.contains("not one byte"), "{text}");
        assert!(text.contains("implicit TLS"), "{text}");
    }
    // A server that closes at once, without a byte.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let closer = thread::spawn(move || drop(listener.accept()));
    let mut config = tls_port.client_config();
    config.port = Some(port);
    config.security = Security::StartTls;
    let err = failed(D::connect(&config, &creds()));
    closer.join().unwrap();
    assert_eq!(
        mismatch(&err).0,
        MismatchSign::ClosedBeforeGreeting,
        "{err}"
    );
    assert!(!err.to_string().contains("in the middle"), "{err}");
}

fn tls_against_a_plaintext_port_is_named<D: Pop3Driver>() {
    let plain_port = server(stls_options(), false, Fault::None);
    let mut config = plain_port.client_config();
    config.security = Security::Tls;
    let err = failed(D::connect(&config, &creds()));
    let (sign, tried, suggested) = mismatch(&err);
    assert_eq!(sign, MismatchSign::NotTls, "{err}");
    assert_eq!((tried, suggested), (Security::Tls, Security::StartTls));
    assert_eq!(err.kind(), ErrorKind::Tls);
    assert!(err.to_string().contains("plaintext POP3"), "{err}");
}

/// Over a TCP stream the caller connected; for the async client, polled by
/// a bare executor: it needs no runtime (its timer is runtime-independent).
fn connect_over_a_callers_stream_without_any_runtime<D: Pop3Driver>() {
    let server = twenty_server(true, Fault::None);
    let tcp = TcpStream::connect(server.addr()).unwrap();
    let mut client = D::connect_over(tcp, &server.client_config(), &creds()).unwrap();
    assert!(client.is_tls());
    let stat = client.stat().unwrap();
    assert_eq!(stat.count, 20);
    let body = client.retr_vec(m(20)).unwrap();
    assert_eq!(body, twenty()[19].content);
    client.quit().unwrap();
}

fn quit_sends_close_notify<D: Pop3Driver>() {
    let (config, rx) = close_notify_server();
    let client = D::open(&config).unwrap();
    assert!(client.is_tls());
    client.quit().unwrap();
    assert_clean_close(&rx);
}

/// The caller's own TLS, said to be secure: credentials go without
/// allow_plaintext_auth, and quit still ends TLS with close_notify.
fn a_caller_tls_stream_logs_in_and_gets_close_notify<D: Pop3Driver>() {
    let (config, rx) = close_notify_server();
    let mut client = D::from_caller_tls(&config, true).unwrap();
    assert!(client.is_tls());
    client.login(&Credentials::new("me", "secret")).unwrap();
    assert_eq!(client.stat().unwrap().count, 0);
    client.quit().unwrap();
    assert_clean_close(&rx);
}

fn a_stream_said_to_be_plaintext_keeps_the_password<D: Pop3Driver>() {
    let (config, _rx) = close_notify_server();
    let mut client = D::from_caller_tls(&config, false).unwrap();
    assert!(!client.is_tls());
    let err = failed(client.login(&Credentials::new("me", "secret")));
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
}

/// The close_notify checks' own control: the same session over a stream
/// whose `close` only flushes ends without close_notify, and the server
/// reads that as an error.
fn without_close_notify_the_server_sees_a_cut<D: Pop3Driver>() {
    let (config, rx) = close_notify_server();
    let client = D::from_caller_tls_without_close_notify(&config).unwrap();
    client.quit().unwrap();
    let err = close_outcome(&rx).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
}
