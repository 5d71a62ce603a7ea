//! The blocking client: a thin std::io driver of the shared engine.
//!
//! ```no_run
//! use pop3_client::{blocking::Client, ClientConfig, Credentials};
//! let config = ClientConfig::new("pop.example.com");
//! let mut client = Client::connect(&config, &Credentials::new("me@example.com", "app password"))?;
//! let stat = client.stat()?;
//! println!("{} messages, {} bytes", stat.count, stat.octets);
//! for item in client.uidl()? {
//!     let message: Vec<u8> = client.retr_vec(item.msg)?;
//!     // store `message` durably, then remember `item.uid`
//! }
//! client.quit()?;
//! # Ok::<(), pop3_client::Error>(())
//! ```

use std::io::{self, Write};
use std::net::TcpStream;

use pop3_proto::{Capabilities, Command, Greeting, ListEntry, MsgNum, Stat};
use tracing::info_span;

use crate::batch::{Batch, ServerRefusal};
use crate::config::{ClientConfig, Credentials, Security};
use crate::engine::{Engine, FetchProgress, ProgressFn, Step};
use crate::error::Error;
use crate::ops::{self, MessageSink, NoBody, UidlItem, VecSink, WriteSink};
use crate::summary::MessageSummary;
use crate::transport::{
    connect_tcp, secure_blocking, tls_connect_blocking, Connection, ReadTimeout,
};

/// A POP3 client over a blocking stream.
pub struct Client<S: ReadTimeout> {
    stream: S,
    engine: Engine,
    greeting: Greeting,
    config: ClientConfig,
    is_tls: bool,
}

impl Client<Connection> {
    /// Connects as `config` says (TCP, TLS or STLS), reads the capabilities
    /// and logs in. Fails before sending any credential if the connection is
    /// not as secure as asked.
    pub fn connect(config: &ClientConfig, credentials: &Credentials) -> Result<Self, Error> {
        let mut client = Self::open(config)?;
        client.login(credentials)?;
        Ok(client)
    }

    /// Connects and secures the connection, without logging in.
    pub fn open(config: &ClientConfig) -> Result<Self, Error> {
        config.validate()?;
        let tcp = connect_tcp(&config.host, config.port(), config.timeouts.connect)?;
        Self::open_over(tcp, config)
    }

    /// Over a TCP connection the caller made (through a proxy, a socket
    /// of its own): TLS as `config.security` says (implicit, or STLS),
    /// capabilities, login.
    pub fn connect_over(
        tcp: TcpStream,
        config: &ClientConfig,
        credentials: &Credentials,
    ) -> Result<Self, Error> {
        let mut client = Self::open_over(tcp, config)?;
        client.login(credentials)?;
        Ok(client)
    }

    /// Like [`Client::connect_over`] without the login.
    pub fn open_over(tcp: TcpStream, config: &ClientConfig) -> Result<Self, Error> {
        config.validate()?;
        let timeouts = config.timeouts;
        // A server that stops reading cannot block a write for longer.
        tcp.set_write_timeout(Some(timeouts.response))?;
        let stream = secure_blocking(
            tcp,
            config.security,
            &config.host,
            || config.tls_config(),
            timeouts.tls_handshake,
        )?;
        let is_tls = stream.is_tls();
        let mut client = Self::from_stream(stream, config, is_tls)?;
        if config.security == Security::StartTls {
            ops::require_stls(client.capabilities(), &config.host)?;
            client.starttls()?;
        }
        Ok(client)
    }

    /// Sends STLS and upgrades the connection to TLS, then reads the
    /// capabilities again.
    pub fn starttls(&mut self) -> Result<(), Error> {
        if self.is_tls {
            return Err(Error::already_tls());
        }
        let mut batch = ops::one(Command::Stls);
        self.run(&mut batch, &mut NoBody)
            .map_err(|e| ops::stls_refused(e, &self.config.host))?;
        let tcp = match std::mem::replace(&mut self.stream, Connection::Detached) {
            Connection::Plain(tcp) => tcp,
            other => {
                self.stream = other;
                return Err(Error::already_tls());
            }
        };
        let tls = self.config.tls_config()?;
        let timeout = self.config.timeouts.tls_handshake;
        let stream = tls_connect_blocking(tcp, &self.config.host, tls, timeout)
            .map_err(|e| ops::stls_handshake_failed(e, &self.config.host))?;
        self.stream = Connection::Tls(Box::new(stream));
        self.is_tls = true;
        self.engine.session.tls_established();
        self.refresh_capabilities()
    }
}

impl<S: ReadTimeout> Client<S> {
    /// Starts a session over an already connected stream: reads the greeting
    /// and the capabilities. `is_tls` says whether the stream is already
    /// secure (the caller's own TLS): it decides whether credentials may be
    /// sent, and STLS is refused on it. Nothing is set up by this client:
    /// `config.security` is not acted on.
    pub fn from_stream(stream: S, config: &ClientConfig, is_tls: bool) -> Result<Self, Error> {
        config.validate()?;
        let span = info_span!("pop3", host = %config.host, port = config.port());
        let mut engine = Engine::new(config.session.clone(), config.timeouts, span)
            .with_max_listing(config.max_listing_entries);
        let mut stream = stream;
        let mut batch = Batch::greeting();
        run(
            &mut stream,
            &mut engine,
            &mut batch,
            &mut NoBody,
            &mut |_| {},
            "the greeting",
        )
        .map_err(|e| ops::greeting_failed(e, engine.nothing_received(), config, is_tls))?;
        let greeting = batch.take_greeting();
        let mut client = Self {
            stream,
            engine,
            greeting,
            config: config.clone(),
            is_tls,
        };
        client.refresh_capabilities()?;
        Ok(client)
    }

    fn run(&mut self, batch: &mut Batch, sink: &mut dyn MessageSink) -> Result<(), Error> {
        run(
            &mut self.stream,
            &mut self.engine,
            batch,
            sink,
            &mut |_| {},
            "the server's answer",
        )
    }

    /// Reads CAPA again (an old server without CAPA leaves them empty).
    pub fn refresh_capabilities(&mut self) -> Result<(), Error> {
        match self.run(&mut ops::one(Command::Capa), &mut NoBody) {
            Err(e) if ops::capa_unsupported(&e) => Ok(()),
            other => other,
        }
    }

    /// Logs in with the method chosen by the settings and the server's
    /// capabilities, then reads the capabilities again. `UTF8` is sent
    /// before (or, if only advertised then, after) when
    /// [`ClientConfig::utf8`] asks for it.
    pub fn login(&mut self, credentials: &Credentials) -> Result<(), Error> {
        let commands = ops::login_commands(
            &self.config,
            credentials,
            self.engine.session.capabilities(),
            &self.greeting,
            self.is_tls,
        )?;
        self.enable_utf8()?;
        self.run(&mut Batch::strict(commands), &mut NoBody)?;
        self.refresh_capabilities()?;
        self.enable_utf8()
    }

    /// Sends `UTF8` if the settings ask for it, the server advertises it
    /// and it is not on yet. A refusal leaves it off and is not an error.
    fn enable_utf8(&mut self) -> Result<(), Error> {
        if !ops::wants_utf8(&self.config, &self.engine.session) {
            return Ok(());
        }
        match self.run(&mut ops::one(Command::Utf8), &mut NoBody) {
            Err(e) if ops::is_refusal(&e) => Ok(()),
            other => other,
        }
    }

    /// Whether the server accepted `UTF8` (RFC 6856): messages are then
    /// sent as stored even when their header holds raw UTF-8.
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

    /// Whether the login asked for Gmail's `recent:` mode (keep mail on the
    /// server; track UIDs).
    pub fn recent_mode(&self) -> bool {
        self.engine.session.recent_mode()
    }

    /// Calls `progress` for every chunk of every message fetched.
    pub fn on_progress(&mut self, progress: Option<ProgressFn>) {
        self.engine.set_progress(progress);
    }

    fn single(&mut self, command: Command<'static>) -> Result<crate::batch::Answer, Error> {
        let mut batch = ops::one(command);
        self.run(&mut batch, &mut NoBody)?;
        Ok(ops::only(batch))
    }

    /// STAT: message count and total size.
    pub fn stat(&mut self) -> Result<Stat, Error> {
        ops::stat_of(self.single(Command::Stat)?)
    }

    /// LIST: every message's number and size.
    pub fn list(&mut self) -> Result<Vec<ListEntry>, Error> {
        Ok(ops::listing_of(self.single(Command::List(None))?))
    }

    /// `LIST n`: one message's size.
    pub fn list_one(&mut self, msg: MsgNum) -> Result<ListEntry, Error> {
        ops::listing_one(self.single(Command::List(Some(msg)))?)
    }

    /// UIDL: every message's unique-id.
    pub fn uidl(&mut self) -> Result<Vec<UidlItem>, Error> {
        Ok(ops::uids_of(self.single(Command::Uidl(None))?))
    }

    /// `UIDL n`: one message's unique-id.
    pub fn uidl_one(&mut self, msg: MsgNum) -> Result<UidlItem, Error> {
        ops::uid_one(self.single(Command::Uidl(Some(msg)))?)
    }

    /// TOP: the header and the first `lines` body lines, into `out`.
    pub fn top(&mut self, msg: MsgNum, lines: u32, out: &mut dyn Write) -> Result<u64, Error> {
        let mut batch = ops::one(Command::Top { msg, lines });
        self.run(&mut batch, &mut WriteSink(out))?;
        Ok(ops::only(batch).octets)
    }

    /// RETR: streams message `msg` into `out`, in bounded memory. Returns
    /// its size.
    pub fn retr(&mut self, msg: MsgNum, out: &mut dyn Write) -> Result<u64, Error> {
        let mut batch = ops::one(Command::Retr(msg));
        self.run(&mut batch, &mut WriteSink(out))?;
        Ok(ops::only(batch).octets)
    }

    /// RETR into memory.
    pub fn retr_vec(&mut self, msg: MsgNum) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        self.retr(msg, &mut out)?;
        Ok(out)
    }

    /// Fetches many messages into `sink`, pipelined when the server
    /// advertises PIPELINING. A message the server refuses is reported in
    /// its slot; the others are still fetched.
    pub fn retr_many(
        &mut self,
        msgs: &[MsgNum],
        sink: &mut dyn MessageSink,
    ) -> Result<Vec<Result<u64, ServerRefusal>>, Error> {
        let mut batch = ops::retr_many(msgs);
        self.run(&mut batch, sink)?;
        Ok(ops::outcomes(batch))
    }

    /// TOP for many messages (the header and the first `lines` body lines
    /// of each) into `sink`, pipelined when possible; a refusal is reported
    /// in its slot.
    pub fn top_many(
        &mut self,
        msgs: &[MsgNum],
        lines: u32,
        sink: &mut dyn MessageSink,
    ) -> Result<Vec<Result<u64, ServerRefusal>>, Error> {
        let mut batch = ops::top_many(msgs, lines);
        self.run(&mut batch, sink)?;
        Ok(ops::outcomes(batch))
    }

    /// Like [`Client::retr_many`], telling `progress` of every chunk of
    /// every message (beside the session's [`Client::on_progress`]). The
    /// callback may borrow from the caller: a progress bar, a counter.
    ///
    /// ```no_run
    /// # fn f(client: &mut pop3_client::blocking::Client<pop3_client::transport::Connection>,
    /// #      msgs: &[pop3_client::MsgNum]) -> Result<(), Box<dyn std::error::Error>> {
    /// let mut maildir = pop3_client::store::MaildirSink::create("Maildir")?;
    /// let mut bytes = 0;
    /// client.retr_many_with_progress(msgs, &mut maildir, &mut |p| {
    ///     if p.done {
    ///         bytes += p.bytes;
    ///     }
    /// })?;
    /// println!("{bytes} bytes stored");
    /// # Ok(()) }
    /// ```
    pub fn retr_many_with_progress(
        &mut self,
        msgs: &[MsgNum],
        sink: &mut dyn MessageSink,
        progress: &mut dyn FnMut(&FetchProgress),
    ) -> Result<Vec<Result<u64, ServerRefusal>>, Error> {
        let mut batch = ops::retr_many(msgs);
        run(
            &mut self.stream,
            &mut self.engine,
            &mut batch,
            sink,
            progress,
            "the server's answer",
        )?;
        Ok(ops::outcomes(batch))
    }

    /// Fetches many messages into memory.
    pub fn retr_many_vec(
        &mut self,
        msgs: &[MsgNum],
    ) -> Result<Vec<Result<Vec<u8>, ServerRefusal>>, Error> {
        let mut sink = VecSink::default();
        let outcomes = self.retr_many(msgs, &mut sink)?;
        Ok(ops::zip_bodies(outcomes, sink))
    }

    /// The headers of many messages (TOP n 0, pipelined when possible) as
    /// summaries: From, To, Cc, Reply-To, Date, Subject, Message-ID.
    pub fn summaries(
        &mut self,
        msgs: &[MsgNum],
    ) -> Result<Vec<Result<MessageSummary, ServerRefusal>>, Error> {
        let mut sink = VecSink::default();
        let mut batch = ops::headers_many(msgs);
        self.run(&mut batch, &mut sink)?;
        Ok(ops::summaries_of(ops::outcomes(batch), sink))
    }

    /// DELE: marks `msg` for deletion (done at [`Client::quit`]).
    pub fn dele(&mut self, msg: MsgNum) -> Result<(), Error> {
        self.single(Command::Dele(msg)).map(drop)
    }

    /// Marks many messages for deletion, pipelined when possible.
    pub fn dele_many(&mut self, msgs: &[MsgNum]) -> Result<Vec<Result<(), ServerRefusal>>, Error> {
        let mut batch = ops::dele_many(msgs);
        self.run(&mut batch, &mut NoBody)?;
        Ok(ops::outcomes(batch)
            .into_iter()
            .map(|o| o.map(drop))
            .collect())
    }

    /// RSET: unmarks every deletion.
    pub fn rset(&mut self) -> Result<(), Error> {
        self.single(Command::Rset).map(drop)
    }

    /// NOOP: keeps the connection alive.
    pub fn noop(&mut self) -> Result<(), Error> {
        self.single(Command::Noop).map(drop)
    }

    /// QUIT: commits deletions and ends the session; over TLS, then sends
    /// close_notify ([`ReadTimeout::close`]), so the server sees a clean end.
    pub fn quit(mut self) -> Result<(), Error> {
        self.single(Command::Quit)?;
        // The session is over and committed; a server that already closed
        // its side cannot make that an error.
        let _ = self.stream.close();
        Ok(())
    }

    /// The stream, for callers that manage it themselves.
    pub fn into_inner(self) -> S {
        self.stream
    }
}

/// The driver loop: write, read within the deadline, pass bodies to the sink.
fn run<S: ReadTimeout>(
    stream: &mut S,
    engine: &mut Engine,
    batch: &mut Batch,
    sink: &mut dyn MessageSink,
    progress: &mut dyn FnMut(&FetchProgress),
    what: &str,
) -> Result<(), Error> {
    engine.begin(batch)?;
    loop {
        match engine.step(batch, progress)? {
            Step::Done => return Ok(()),
            Step::BodyStart { index, msg } => sink.begin(index, msg)?,
            Step::Body { index, chunk } => sink.write(index, chunk)?,
            Step::BodyEnd { index, octets } => sink.end(index, octets)?,
            Step::Read => {
                // Everything queued goes out before waiting for answers.
                if !engine.output().is_empty() {
                    let written = stream
                        .write_all(engine.output())
                        .and_then(|()| stream.flush());
                    match written {
                        Err(e)
                            if matches!(
                                e.kind(),
                                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                            ) =>
                        {
                            return Err(engine.timeout("the server to accept our commands"));
                        }
                        other => other?,
                    }
                    engine.output_written();
                }
                let timeout = engine.read_timeout(what)?;
                stream.set_read_timeout(Some(timeout))?;
                match stream.read(engine.spare()) {
                    Ok(n) => engine.filled(n)?,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    // A TLS peer that vanishes without close_notify: the
                    // session says what the cut-off means.
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => engine.filled(0)?,
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                    {
                        return Err(engine.timeout(what));
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
}
