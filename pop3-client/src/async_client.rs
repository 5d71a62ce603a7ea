//! The async client: a thin futures-io driver of the shared engine. It runs
//! on any executor; its timeouts use a runtime-independent timer. With the
//! `tokio` feature, `Client::connect_tokio` connects with tokio's TCP.
//!
//! ```no_run
//! # #[cfg(feature = "tokio")]
//! # async fn example() -> Result<(), pop3_client::Error> {
//! use pop3_client::{async_client::Client, ClientConfig, Credentials};
//! let config = ClientConfig::new("pop.example.com");
//! let mut client = Client::connect_tokio(&config, &Credentials::new("me", "app password")).await?;
//! for item in client.uidl().await? {
//!     let message = client.retr_vec(item.msg).await?;
//!     println!("{}: {} bytes", item.uid, message.len());
//! }
//! client.quit().await
//! # }
//! ```

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};
use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use pop3_proto::{Capabilities, Command, Greeting, ListEntry, MsgNum, Stat};
use tracing::info_span;

use crate::batch::{Answer, Batch, ServerRefusal};
use crate::config::{ClientConfig, Credentials, Security};
use crate::engine::{Engine, FetchProgress, ProgressFn, Step};
use crate::error::Error;
use crate::ops::{self, NoBody, UidlItem, VecSink};
use crate::summary::MessageSummary;
use crate::timer::within;
use crate::transport::{tls_connect_async, AsyncTlsStream};

/// Receives fetched messages chunk by chunk, asynchronously.
pub trait AsyncMessageSink {
    /// Message `index` of the batch (number `msg`) begins.
    fn begin(&mut self, index: usize, msg: MsgNum) -> impl Future<Output = io::Result<()>> {
        let _ = (index, msg);
        async { Ok(()) }
    }
    /// More of message `index`, exactly as the server sent it, unstuffed.
    fn write(&mut self, index: usize, chunk: &[u8]) -> impl Future<Output = io::Result<()>>;
    /// Message `index` is complete with `octets` bytes.
    fn end(&mut self, index: usize, octets: u64) -> impl Future<Output = io::Result<()>> {
        let _ = (index, octets);
        async { Ok(()) }
    }
}

impl AsyncMessageSink for NoBody {
    async fn write(&mut self, _: usize, _: &[u8]) -> io::Result<()> {
        Ok(())
    }
}

impl AsyncMessageSink for VecSink {
    async fn begin(&mut self, index: usize, msg: MsgNum) -> io::Result<()> {
        ops::MessageSink::begin(self, index, msg)
    }
    async fn write(&mut self, index: usize, chunk: &[u8]) -> io::Result<()> {
        ops::MessageSink::write(self, index, chunk)
    }
}

/// Streams one message into an `AsyncWrite`.
struct AsyncWriteSink<'a, W: AsyncWrite + Unpin + ?Sized>(&'a mut W);

impl<W: AsyncWrite + Unpin + ?Sized> AsyncMessageSink for AsyncWriteSink<'_, W> {
    async fn write(&mut self, _: usize, chunk: &[u8]) -> io::Result<()> {
        self.0.write_all(chunk).await
    }
}

/// A connected stream secured as `security` says: TLS from the first byte
/// for [`Security::Tls`] (its configuration made by `tls` only then),
/// plaintext otherwise (STLS/STARTTLS comes after the greeting). Both
/// protocols' async clients open connections with it.
pub(crate) async fn secure_async<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    security: Security,
    host: &str,
    tls: impl FnOnce() -> Result<std::sync::Arc<rustls::ClientConfig>, Error>,
    handshake: std::time::Duration,
) -> Result<AsyncStream<S>, Error> {
    Ok(match security {
        Security::Tls => AsyncStream::Tls(Box::new(
            tls_connect_async(stream, host, tls()?, handshake).await?,
        )),
        Security::StartTls | Security::Plain => AsyncStream::Plain(stream),
    })
}

/// An async connection: plaintext, or TLS over the same stream.
#[derive(Debug)]
pub enum AsyncStream<S> {
    /// No TLS.
    Plain(S),
    /// TLS.
    Tls(Box<AsyncTlsStream<S>>),
    /// Taken apart for a TLS upgrade that failed.
    Detached,
}

fn detached() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "connection closed after a failed TLS upgrade",
    )
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for AsyncStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Self::Detached => Poll::Ready(Err(detached())),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for AsyncStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Self::Detached => Poll::Ready(Err(detached())),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Self::Detached => Poll::Ready(Err(detached())),
        }
    }
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_close(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_close(cx),
            Self::Detached => Poll::Ready(Ok(())),
        }
    }
}

/// A POP3 client over a futures-io stream.
pub struct Client<S> {
    stream: AsyncStream<S>,
    engine: Engine,
    greeting: Greeting,
    config: ClientConfig,
    /// TLS set up by this client, or a stream the caller said is secure.
    is_tls: bool,
}

#[cfg(feature = "tokio")]
impl Client<tokio_util::compat::Compat<tokio::net::TcpStream>> {
    /// Connects with tokio's TCP, secures the connection as `config` says,
    /// and logs in: the old name of [`crate::tokio::Client::connect`].
    pub async fn connect_tokio(
        config: &ClientConfig,
        credentials: &Credentials,
    ) -> Result<Self, Error> {
        Self::connect(config, credentials).await
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    /// Over a connected stream: TLS as `config.security` says (implicit, or
    /// STLS), capabilities, login.
    pub async fn connect_over(
        stream: S,
        config: &ClientConfig,
        credentials: &Credentials,
    ) -> Result<Self, Error> {
        let mut client = Self::open_over(stream, config).await?;
        client.login(credentials).await?;
        Ok(client)
    }

    /// Like [`Client::connect_over`] without the login.
    pub async fn open_over(stream: S, config: &ClientConfig) -> Result<Self, Error> {
        config.validate()?;
        let stream = secure_async(
            stream,
            config.security,
            &config.host,
            || config.tls_config(),
            config.timeouts.tls_handshake,
        )
        .await?;
        let mut client = Self::start(stream, config, false).await?;
        if config.security == Security::StartTls {
            ops::require_stls(client.capabilities(), &config.host)?;
            client.starttls().await?;
        }
        Ok(client)
    }

    /// Starts a session over an already connected stream: reads the
    /// greeting and the capabilities. `is_tls` says whether the stream is
    /// already secure (the caller's own TLS): it decides whether
    /// credentials may be sent, and STLS is refused on it. Nothing is set
    /// up by this client: `config.security` is not acted on.
    pub async fn from_stream(
        stream: S,
        config: &ClientConfig,
        is_tls: bool,
    ) -> Result<Self, Error> {
        Self::start(AsyncStream::Plain(stream), config, is_tls).await
    }

    async fn start(
        mut stream: AsyncStream<S>,
        config: &ClientConfig,
        is_tls: bool,
    ) -> Result<Self, Error> {
        config.validate()?;
        let span = info_span!("pop3", host = %config.host, port = config.port());
        let mut engine = Engine::new(config.session.clone(), config.timeouts, span)
            .with_max_listing(config.max_listing_entries);
        let mut batch = Batch::greeting();
        let is_tls = is_tls || matches!(stream, AsyncStream::Tls(_));
        run(
            &mut stream,
            &mut engine,
            &mut batch,
            &mut NoBody,
            &mut |_| {},
            "the greeting",
        )
        .await
        .map_err(|e| ops::greeting_failed(e, engine.nothing_received(), config, is_tls))?;
        let greeting = batch.take_greeting();
        let mut client = Self {
            stream,
            engine,
            greeting,
            config: config.clone(),
            is_tls,
        };
        client.refresh_capabilities().await?;
        Ok(client)
    }

    async fn run<K: AsyncMessageSink>(
        &mut self,
        batch: &mut Batch,
        sink: &mut K,
    ) -> Result<(), Error> {
        run(
            &mut self.stream,
            &mut self.engine,
            batch,
            sink,
            &mut |_| {},
            "the server's answer",
        )
        .await
    }

    /// Sends STLS, upgrades to TLS, reads the capabilities again.
    pub async fn starttls(&mut self) -> Result<(), Error> {
        if self.is_tls() {
            return Err(Error::already_tls());
        }
        self.run(&mut ops::one(Command::Stls), &mut NoBody)
            .await
            .map_err(|e| ops::stls_refused(e, &self.config.host))?;
        let plain = match std::mem::replace(&mut self.stream, AsyncStream::Detached) {
            AsyncStream::Plain(s) => s,
            other => {
                self.stream = other;
                return Err(Error::already_tls());
            }
        };
        let tls = self.config.tls_config()?;
        let tls = tls_connect_async(
            plain,
            &self.config.host,
            tls,
            self.config.timeouts.tls_handshake,
        )
        .await
        .map_err(|e| ops::stls_handshake_failed(e, &self.config.host))?;
        self.stream = AsyncStream::Tls(Box::new(tls));
        self.is_tls = true;
        self.engine.session.tls_established();
        self.refresh_capabilities().await
    }

    /// Reads CAPA again (an old server without CAPA leaves them empty).
    pub async fn refresh_capabilities(&mut self) -> Result<(), Error> {
        match self.run(&mut ops::one(Command::Capa), &mut NoBody).await {
            Err(e) if ops::capa_unsupported(&e) => Ok(()),
            other => other,
        }
    }

    /// Logs in (see [`crate::blocking::Client::login`]), with `UTF8`
    /// before or after as [`ClientConfig::utf8`] asks.
    pub async fn login(&mut self, credentials: &Credentials) -> Result<(), Error> {
        let commands = ops::login_commands(
            &self.config,
            credentials,
            self.engine.session.capabilities(),
            &self.greeting,
            self.is_tls(),
        )?;
        self.enable_utf8().await?;
        self.run(&mut Batch::strict(commands), &mut NoBody).await?;
        self.refresh_capabilities().await?;
        self.enable_utf8().await
    }

    /// Sends `UTF8` when asked for, advertised and not on yet; a refusal
    /// is not an error.
    async fn enable_utf8(&mut self) -> Result<(), Error> {
        if !ops::wants_utf8(&self.config, &self.engine.session) {
            return Ok(());
        }
        match self.run(&mut ops::one(Command::Utf8), &mut NoBody).await {
            Err(e) if ops::is_refusal(&e) => Ok(()),
            other => other,
        }
    }

    /// Whether the server accepted `UTF8` (RFC 6856).
    pub fn utf8_enabled(&self) -> bool {
        self.engine.session.utf8_enabled()
    }

    /// The server's greeting.
    pub fn greeting(&self) -> &Greeting {
        &self.greeting
    }

    /// The capabilities the server advertises now.
    pub fn capabilities(&self) -> &Capabilities {
        self.engine.session.capabilities()
    }

    /// Whether the connection is encrypted.
    pub fn is_tls(&self) -> bool {
        self.is_tls
    }

    /// Whether the login asked for Gmail's `recent:` mode.
    pub fn recent_mode(&self) -> bool {
        self.engine.session.recent_mode()
    }

    /// Calls `progress` for every chunk of every message fetched.
    pub fn on_progress(&mut self, progress: Option<ProgressFn>) {
        self.engine.set_progress(progress);
    }

    async fn single(&mut self, command: Command<'static>) -> Result<Answer, Error> {
        let mut batch = ops::one(command);
        self.run(&mut batch, &mut NoBody).await?;
        Ok(ops::only(batch))
    }

    /// STAT.
    pub async fn stat(&mut self) -> Result<Stat, Error> {
        ops::stat_of(self.single(Command::Stat).await?)
    }

    /// LIST.
    pub async fn list(&mut self) -> Result<Vec<ListEntry>, Error> {
        Ok(ops::listing_of(self.single(Command::List(None)).await?))
    }

    /// `LIST n`: one message's size.
    pub async fn list_one(&mut self, msg: MsgNum) -> Result<ListEntry, Error> {
        ops::listing_one(self.single(Command::List(Some(msg))).await?)
    }

    /// UIDL.
    pub async fn uidl(&mut self) -> Result<Vec<UidlItem>, Error> {
        Ok(ops::uids_of(self.single(Command::Uidl(None)).await?))
    }

    /// `UIDL n`: one message's unique-id.
    pub async fn uidl_one(&mut self, msg: MsgNum) -> Result<UidlItem, Error> {
        ops::uid_one(self.single(Command::Uidl(Some(msg))).await?)
    }

    /// TOP into `out`.
    pub async fn top<W: AsyncWrite + Unpin + ?Sized>(
        &mut self,
        msg: MsgNum,
        lines: u32,
        out: &mut W,
    ) -> Result<u64, Error> {
        let mut batch = ops::one(Command::Top { msg, lines });
        self.run(&mut batch, &mut AsyncWriteSink(out)).await?;
        Ok(ops::only(batch).octets)
    }

    /// RETR, streamed into `out` in bounded memory.
    pub async fn retr<W: AsyncWrite + Unpin + ?Sized>(
        &mut self,
        msg: MsgNum,
        out: &mut W,
    ) -> Result<u64, Error> {
        let mut batch = ops::one(Command::Retr(msg));
        self.run(&mut batch, &mut AsyncWriteSink(out)).await?;
        Ok(ops::only(batch).octets)
    }

    /// RETR into memory.
    pub async fn retr_vec(&mut self, msg: MsgNum) -> Result<Vec<u8>, Error> {
        let mut sink = VecSink::default();
        let mut batch = ops::one(Command::Retr(msg));
        self.run(&mut batch, &mut sink).await?;
        Ok(sink.0.pop().unwrap_or_default())
    }

    /// Fetches many messages into `sink`, pipelined when the server allows.
    pub async fn retr_many<K: AsyncMessageSink>(
        &mut self,
        msgs: &[MsgNum],
        sink: &mut K,
    ) -> Result<Vec<Result<u64, ServerRefusal>>, Error> {
        let mut batch = ops::retr_many(msgs);
        self.run(&mut batch, sink).await?;
        Ok(ops::outcomes(batch))
    }

    /// TOP for many messages (the header and the first `lines` body lines
    /// of each) into `sink`, pipelined when possible; a refusal is reported
    /// in its slot.
    pub async fn top_many<K: AsyncMessageSink>(
        &mut self,
        msgs: &[MsgNum],
        lines: u32,
        sink: &mut K,
    ) -> Result<Vec<Result<u64, ServerRefusal>>, Error> {
        let mut batch = ops::top_many(msgs, lines);
        self.run(&mut batch, sink).await?;
        Ok(ops::outcomes(batch))
    }

    /// Like [`Client::retr_many`], telling `progress` of every chunk of
    /// every message (beside the session's [`Client::on_progress`]). The
    /// callback may borrow from the caller; it is `Send` so that the
    /// fetch can run on another thread (`tokio::spawn`).
    pub async fn retr_many_with_progress<K: AsyncMessageSink>(
        &mut self,
        msgs: &[MsgNum],
        sink: &mut K,
        progress: &mut (dyn FnMut(&FetchProgress) + Send),
    ) -> Result<Vec<Result<u64, ServerRefusal>>, Error> {
        let mut batch = ops::retr_many(msgs);
        run(
            &mut self.stream,
            &mut self.engine,
            &mut batch,
            sink,
            progress,
            "the server's answer",
        )
        .await?;
        Ok(ops::outcomes(batch))
    }

    /// Fetches many messages into memory.
    pub async fn retr_many_vec(
        &mut self,
        msgs: &[MsgNum],
    ) -> Result<Vec<Result<Vec<u8>, ServerRefusal>>, Error> {
        let mut sink = VecSink::default();
        let outcomes = self.retr_many(msgs, &mut sink).await?;
        Ok(ops::zip_bodies(outcomes, sink))
    }

    /// The headers of many messages (TOP n 0, pipelined when possible) as
    /// summaries: From, To, Cc, Reply-To, Date, Subject, Message-ID.
    pub async fn summaries(
        &mut self,
        msgs: &[MsgNum],
    ) -> Result<Vec<Result<MessageSummary, ServerRefusal>>, Error> {
        let mut sink = VecSink::default();
        let mut batch = ops::headers_many(msgs);
        self.run(&mut batch, &mut sink).await?;
        Ok(ops::summaries_of(ops::outcomes(batch), sink))
    }

    /// DELE.
    pub async fn dele(&mut self, msg: MsgNum) -> Result<(), Error> {
        self.single(Command::Dele(msg)).await.map(drop)
    }

    /// Marks many messages for deletion, pipelined when possible.
    pub async fn dele_many(
        &mut self,
        msgs: &[MsgNum],
    ) -> Result<Vec<Result<(), ServerRefusal>>, Error> {
        let mut batch = ops::dele_many(msgs);
        self.run(&mut batch, &mut NoBody).await?;
        Ok(ops::outcomes(batch)
            .into_iter()
            .map(|o| o.map(drop))
            .collect())
    }

    /// RSET.
    pub async fn rset(&mut self) -> Result<(), Error> {
        self.single(Command::Rset).await.map(drop)
    }

    /// NOOP.
    pub async fn noop(&mut self) -> Result<(), Error> {
        self.single(Command::Noop).await.map(drop)
    }

    /// QUIT: commits deletions and ends the session; then closes the
    /// stream, which over TLS sends close_notify, so the server sees a
    /// clean end.
    pub async fn quit(mut self) -> Result<(), Error> {
        self.single(Command::Quit).await?;
        // The session is over and committed; a server that already closed
        // its side cannot make that an error.
        let _ = within(self.config.timeouts.idle, self.stream.close()).await;
        Ok(())
    }

    /// The stream, for callers that manage it themselves: with the TLS
    /// this client set up, if any.
    pub fn into_inner(self) -> AsyncStream<S> {
        self.stream
    }
}

/// The driver loop: write, read within the deadline, pass bodies on.
async fn run<S, K>(
    stream: &mut AsyncStream<S>,
    engine: &mut Engine,
    batch: &mut Batch,
    sink: &mut K,
    progress: &mut (dyn FnMut(&FetchProgress) + Send),
    what: &str,
) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
    K: AsyncMessageSink,
{
    engine.begin(batch)?;
    loop {
        match engine.step(batch, progress)? {
            Step::Done => return Ok(()),
            Step::BodyStart { index, msg } => sink.begin(index, msg).await?,
            Step::Body { index, chunk } => sink.write(index, chunk).await?,
            Step::BodyEnd { index, octets } => sink.end(index, octets).await?,
            Step::Read => {
                // Everything queued goes out before waiting for answers.
                if !engine.output().is_empty() {
                    let limit = engine.read_timeout(what)?;
                    // Only the bytes are held across the await, not the
                    // engine (its progress callback is Send, not Sync).
                    let output = engine.output();
                    let write = async {
                        stream.write_all(output).await?;
                        stream.flush().await
                    };
                    match within(limit, write).await {
                        Some(written) => written?,
                        None => return Err(engine.timeout(what)),
                    }
                    engine.output_written();
                }
                let limit = engine.read_timeout(what)?;
                match within(limit, stream.read(engine.spare())).await {
                    Some(Ok(n)) => engine.filled(n)?,
                    Some(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                    Some(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => engine.filled(0)?,
                    Some(Err(e)) => return Err(e.into()),
                    None => return Err(engine.timeout(what)),
                }
            }
        }
    }
}
