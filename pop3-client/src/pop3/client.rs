//! The POP3 client's operations, written once. [`pop3_client!`] expands
//! to the client type, every operation and the driver loop; the blocking
//! driver expands it without `async`/`.await`, the async driver with them,
//! so the two cannot drift: what differs is only the stream, the sink
//! trait and the writer trait each passes in.
//!
//! Everything protocol-specific is below this: the engine (session,
//! buffer, deadlines), the batches and the answer readers (`commands`),
//! the login choice (`login`).

/// Expands to `Client<S>` with every POP3 operation, over the stream type
/// `$Stream<S>` (with [`Connection`](crate::transport::Connection) or
/// [`AsyncStream`](crate::transport::AsyncStream) methods), with `.await`
/// where `$aw` is given.
macro_rules! pop3_client {
    (
        $(#[$client_doc:meta])*
        stream: $Stream:ident<S: [$($bound:tt)+]>,
        default_stream: [$($default:ty)?],
        tcp: $(#[$tcp_cfg:meta])* [$Tcp:ty] by $connect_tcp:path,
        sink: $Sink:ident,
        writer: [$($Writer:tt)+] into $WriteSink:ident,
        $($async:ident)?; $(.$aw:ident)?
    ) => {
        $(#[$client_doc])*
        pub struct Client<S: $($bound)+ $(= $default)?> {
            stream: $Stream<S>,
            engine: crate::pop3::engine::Engine,
            greeting: pop3_proto::Greeting,
            config: crate::config::ClientConfig,
        }

        $(#[$tcp_cfg])*
        impl Client<$Tcp> {
            /// Connects as `config` says (TCP, the name lookup and each
            /// address bounded by [`Timeouts::connect`](crate::endpoint::Timeouts);
            /// implicit TLS or STLS), reads the capabilities and logs in.
            /// Fails before sending any credential if the connection is
            /// not as secure as asked.
            pub $($async)? fn connect(
                config: &crate::config::ClientConfig,
                credentials: &crate::config::Credentials,
            ) -> Result<Self, crate::error::Error> {
                let mut client = Self::open(config)$(.$aw)??;
                client.login(credentials)$(.$aw)??;
                Ok(client)
            }

            /// Connects and secures the connection, without logging in.
            pub $($async)? fn open(
                config: &crate::config::ClientConfig,
            ) -> Result<Self, crate::error::Error> {
                config.validate()?;
                let tcp = $connect_tcp(&config.host, config.port(), config.timeouts.connect)$(.$aw)??;
                Self::start(tcp, config, false, true)$(.$aw)?
            }
        }

        impl<S: $($bound)+> Client<S> {
            /// Over a connected stream the caller made (through a proxy, a
            /// socket of its own): TLS as `config.security` says (implicit,
            /// or STLS), capabilities, login.
            pub $($async)? fn connect_over(
                stream: S,
                config: &crate::config::ClientConfig,
                credentials: &crate::config::Credentials,
            ) -> Result<Self, crate::error::Error> {
                let mut client = Self::open_over(stream, config)$(.$aw)??;
                client.login(credentials)$(.$aw)??;
                Ok(client)
            }

            /// Like [`Client::connect_over`] without the login.
            pub $($async)? fn open_over(
                stream: S,
                config: &crate::config::ClientConfig,
            ) -> Result<Self, crate::error::Error> {
                config.validate()?;
                Self::start(stream, config, false, true)$(.$aw)?
            }

            /// Starts a session over an already connected stream: reads the
            /// greeting and the capabilities. `is_tls` says whether the
            /// stream is already secure (the caller's own TLS): it decides
            /// whether credentials may be sent, and STLS is refused on it.
            /// Nothing is set up by this client: `config.security` is not
            /// acted on.
            pub $($async)? fn from_stream(
                stream: S,
                config: &crate::config::ClientConfig,
                is_tls: bool,
            ) -> Result<Self, crate::error::Error> {
                config.validate()?;
                Self::start(stream, config, is_tls, false)$(.$aw)?
            }

            /// Secures `stream` as `config.security` says (when `secure`),
            /// reads the greeting and the capabilities, and upgrades with
            /// STLS when asked. The settings are validated by the caller,
            /// once.
            $($async)? fn start(
                stream: S,
                config: &crate::config::ClientConfig,
                caller_tls: bool,
                secure: bool,
            ) -> Result<Self, crate::error::Error> {
                use crate::pop3::{batch::Batch, engine::Engine, login, sink::NoBody};
                use crate::endpoint::Security;
                let mut stream = if secure {
                    $Stream::secure(
                        stream,
                        config.security,
                        &config.host,
                        || config.tls_config(),
                        config.timeouts.tls_handshake,
                    )$(.$aw)??
                } else {
                    $Stream::Plain(stream)
                };
                let span = tracing::info_span!("pop3", host = %config.host, port = config.port());
                let mut engine = Engine::new(config.session.clone(), config.timeouts, span, caller_tls || stream.is_tls())
                    .with_max_listing(config.max_listing_entries);
                let mut batch = Batch::greeting();
                drive(&mut stream, &mut engine, &mut batch, &mut NoBody, &mut |_| {}, "the greeting")
                    $(.$aw)?
                    .map_err(|e| login::greeting_failed(e, engine.nothing_received(), engine.is_tls(), config))?;
                let greeting = batch.take_greeting();
                let mut client = Self { stream, engine, greeting, config: config.clone() };
                let stls = secure && config.security == Security::StartTls;
                // A server remembered as pipelining gets CAPA in the same
                // flight as the login (STLS needs CAPA's answer first).
                if !stls && login::remembered_before_login(config).is_some() {
                    client.engine.defer_capa();
                } else {
                    client.refresh_capabilities()$(.$aw)??;
                }
                if stls {
                    login::require_stls(client.capabilities(), &config.host)?;
                    client.starttls()$(.$aw)??;
                }
                Ok(client)
            }

            /// Sends STLS and upgrades the connection to TLS, then reads
            /// the capabilities again.
            pub $($async)? fn starttls(&mut self) -> Result<(), crate::error::Error> {
                use crate::pop3::{commands, login, sink::NoBody};
                if self.is_tls() {
                    return Err(crate::error::Error::AlreadyTls);
                }
                self.run(&mut commands::one(pop3_proto::Command::Stls), &mut NoBody)
                    $(.$aw)?
                    .map_err(|e| login::stls_refused(e, &self.config.host))?;
                let tls = self.config.tls_config()?;
                self.stream
                    .upgrade(&self.config.host, tls, self.config.timeouts.tls_handshake)
                    $(.$aw)?
                    .map_err(|e| e.after_upgrade(&self.config.host, crate::endpoint::Protocol::Pop3))?;
                self.engine.tls_established();
                self.refresh_capabilities()$(.$aw)?
            }

            /// Runs `batch` with no progress callback of the call's own.
            $($async)? fn run<K: $Sink + ?Sized>(
                &mut self,
                batch: &mut crate::pop3::batch::Batch,
                sink: &mut K,
            ) -> Result<(), crate::error::Error> {
                drive(&mut self.stream, &mut self.engine, batch, sink, &mut |_| {}, "the server's answer")$(.$aw)?
            }

            $($async)? fn single(
                &mut self,
                command: pop3_proto::Command<'static>,
            ) -> Result<crate::pop3::batch::Answer, crate::error::Error> {
                use crate::pop3::{commands, sink::NoBody};
                let mut batch = commands::one(command);
                self.run(&mut batch, &mut NoBody)$(.$aw)??;
                Ok(commands::only(batch))
            }

            /// Reads CAPA again (an old server without CAPA leaves them
            /// empty).
            pub $($async)? fn refresh_capabilities(&mut self) -> Result<(), crate::error::Error> {
                match self.single(pop3_proto::Command::Capa)$(.$aw)? {
                    Err(e) if crate::pop3::login::capa_unsupported(&e) => Ok(()),
                    other => other.map(drop),
                }
            }

            /// Logs in with the method chosen by the settings and the
            /// server's capabilities, then reads the capabilities again.
            /// `UTF8` is sent before (or, if only advertised then, after)
            /// when [`ClientConfig::utf8`](crate::config::ClientConfig::utf8) asks
            /// for it.
            ///
            /// With a token source in the credentials
            /// ([`Credentials::oauth2`](crate::config::Credentials::oauth2)),
            /// the access token is asked for now; if the server refuses
            /// it, the source is told and the login is tried once more
            /// with a fresh token.
            pub $($async)? fn login(
                &mut self,
                credentials: &crate::config::Credentials,
            ) -> Result<(), crate::error::Error> {
                let sent = crate::config::login_secret!(credentials.for_login() $(, $aw)?)?;
                match self.login_once(&sent)$(.$aw)? {
                    Err(refused) if refused.is_auth_failure() => {
                        let Some(next) = credentials.retry(&sent) else {
                            return Err(refused);
                        };
                        let fresh = crate::config::login_secret!(next $(, $aw)?)?;
                        if fresh.secret == sent.secret {
                            return Err(refused);
                        }
                        self.login_once(&fresh)$(.$aw)?
                    }
                    other => other,
                }
            }

            /// One login with the secret in `credentials`.
            $($async)? fn login_once(
                &mut self,
                credentials: &crate::config::Credentials,
            ) -> Result<(), crate::error::Error> {
                use crate::pop3::{batch::Batch, login, sink::NoBody};
                // CAPA still to come (in this flight): the login is chosen
                // from what the server advertised last time.
                let mut remembered = match self.engine.capa_due() {
                    true => login::remembered_before_login(&self.config).cloned(),
                    false => None,
                };
                let mut refused: Option<(String, crate::error::Error)> = None;
                loop {
                    let chosen = login::login_commands(
                        &self.config,
                        credentials,
                        remembered.as_ref().unwrap_or(self.engine.session.capabilities()),
                        &self.greeting,
                        self.is_tls(),
                    );
                    let commands = match chosen {
                        Ok(commands) => commands,
                        // The memory no longer fits (another method asked
                        // for): this session's CAPA decides.
                        Err(_) if remembered.is_some() => {
                            remembered = None;
                            self.engine.cancel_capa();
                            self.refresh_capabilities()$(.$aw)??;
                            continue;
                        }
                        Err(e) => return Err(e),
                    };
                    let method = format!("{:?}", commands.first());
                    if let Some((tried, error)) = refused.take() {
                        if tried == method {
                            return Err(error);
                        }
                    }
                    self.enable_utf8()$(.$aw)??;
                    match self.run(&mut Batch::strict(commands), &mut NoBody)$(.$aw)? {
                        Ok(()) => break,
                        // Chosen from memory and refused: if this session's
                        // CAPA (read in the same flight) chooses another
                        // method, it is tried once.
                        Err(e) if remembered.is_some() && e.is_auth_failure() => {
                            remembered = None;
                            refused = Some((method, e));
                        }
                        Err(e) => return Err(e),
                    }
                }
                // Remembered as pipelining after login too: CAPA goes with
                // the next commands.
                if login::remembered_after_login(&self.config).is_some() {
                    self.engine.defer_capa();
                } else {
                    self.refresh_capabilities()$(.$aw)??;
                }
                self.enable_utf8()$(.$aw)?
            }

            /// Sends `UTF8` if the settings ask for it, the server
            /// advertises it and it is not on yet. A refusal leaves it off
            /// and is not an error.
            $($async)? fn enable_utf8(&mut self) -> Result<(), crate::error::Error> {
                use crate::pop3::login;
                if !login::wants_utf8(&self.config, &self.engine.session) {
                    return Ok(());
                }
                match self.single(pop3_proto::Command::Utf8)$(.$aw)? {
                    Err(e) if login::is_refusal(&e) => Ok(()),
                    other => other.map(drop),
                }
            }

            /// Whether the server accepted `UTF8` (RFC 6856): messages are
            /// then sent as stored even when their header holds raw UTF-8.
            pub fn utf8_enabled(&self) -> bool {
                self.engine.session.utf8_enabled()
            }

            /// The server's greeting.
            pub fn greeting(&self) -> &pop3_proto::Greeting {
                &self.greeting
            }

            /// The capabilities the server advertises now (with a
            /// [`ServerProfile`](crate::pop3::ServerProfile) in the settings,
            /// read with the next command after the greeting and after
            /// login: empty until then).
            pub fn capabilities(&self) -> &pop3_proto::Capabilities {
                self.engine.session.capabilities()
            }

            /// What this session's CAPA answers said, before and after
            /// login: keep it, and give it back in
            /// [`ClientConfig::server_profile`](crate::ClientConfig::server_profile)
            /// so the next session to this server spends fewer round trips.
            pub fn server_profile(&self) -> crate::pop3::ServerProfile {
                self.engine.seen().clone()
            }

            /// Whether the connection is encrypted (by this client, or by
            /// the caller who said so).
            pub fn is_tls(&self) -> bool {
                self.engine.is_tls()
            }

            /// The certificate the server presented, when this client set up
            /// the TLS (for a step report: subject, issuer, validity,
            /// fingerprint).
            pub fn peer_certificate(&self) -> Option<crate::endpoint::CertificateInfo> {
                self.stream.peer_certificate()
            }

            /// Whether the login asked for Gmail's `recent:` mode (keep
            /// mail on the server; track UIDs).
            pub fn recent_mode(&self) -> bool {
                self.engine.session.recent_mode()
            }

            /// Calls `progress` for every chunk of every message fetched.
            pub fn on_progress(&mut self, progress: Option<crate::pop3::engine::ProgressFn>) {
                self.engine.set_progress(progress);
            }

            /// STAT: message count and total size.
            pub $($async)? fn stat(&mut self) -> Result<pop3_proto::Stat, crate::error::Error> {
                crate::pop3::commands::stat_of(self.single(pop3_proto::Command::Stat)$(.$aw)??)
            }

            /// LIST: every message's number and size.
            pub $($async)? fn list(&mut self) -> Result<Vec<pop3_proto::ListEntry>, crate::error::Error> {
                Ok(crate::pop3::commands::listing_of(self.single(pop3_proto::Command::List(None))$(.$aw)??))
            }

            /// `LIST n`: one message's size.
            pub $($async)? fn list_one(
                &mut self,
                msg: pop3_proto::MsgNum,
            ) -> Result<pop3_proto::ListEntry, crate::error::Error> {
                crate::pop3::commands::listing_one(self.single(pop3_proto::Command::List(Some(msg)))$(.$aw)??)
            }

            /// UIDL: every message's unique-id.
            pub $($async)? fn uidl(&mut self) -> Result<Vec<crate::pop3::UidlItem>, crate::error::Error> {
                Ok(crate::pop3::commands::uids_of(self.single(pop3_proto::Command::Uidl(None))$(.$aw)??))
            }

            /// LIST and UIDL, the mailbox as a sync sees it: in one flight
            /// when the server pipelines (or is remembered so); otherwise
            /// one after the other, UIDL left out when LIST is empty. A
            /// refused UIDL (a server without it) is its own result.
            #[allow(clippy::type_complexity)]
            pub $($async)? fn listing(
                &mut self,
            ) -> Result<
                (Vec<pop3_proto::ListEntry>, Result<Vec<crate::pop3::UidlItem>, crate::error::Error>),
                crate::error::Error,
            > {
                use crate::pop3::{batch::{Batch, Cmd}, commands, sink::NoBody};
                let pipelines = self.engine.capa_due() || self.capabilities().pipelining();
                if !pipelines {
                    let sizes = self.list()$(.$aw)??;
                    let uids = match sizes.is_empty() {
                        true => Ok(Vec::new()),
                        false => self.uidl()$(.$aw)?,
                    };
                    return Ok((sizes, uids));
                }
                let mut batch = Batch::lenient(vec![
                    Cmd::Plain(pop3_proto::Command::List(None)),
                    Cmd::Plain(pop3_proto::Command::Uidl(None)),
                ]);
                self.run(&mut batch, &mut NoBody)$(.$aw)??;
                let login_delay = self.capabilities().login_delay();
                let mut answers = batch.into_answers().into_iter();
                let (list, uidl) = (answers.next().unwrap_or_default(), answers.next().unwrap_or_default());
                if let Some(refusal) = &list.error {
                    return Err(refusal.to_error(login_delay));
                }
                let sizes = commands::listing_of(list);
                // An empty mailbox needs no names: a server without UIDL
                // is no error then.
                let uids = match &uidl.error {
                    Some(_) if sizes.is_empty() => Ok(Vec::new()),
                    Some(refusal) => Err(refusal.to_error(login_delay)),
                    None => Ok(commands::uids_of(uidl)),
                };
                Ok((sizes, uids))
            }

            /// `UIDL n`: one message's unique-id.
            pub $($async)? fn uidl_one(
                &mut self,
                msg: pop3_proto::MsgNum,
            ) -> Result<crate::pop3::UidlItem, crate::error::Error> {
                crate::pop3::commands::uid_one(self.single(pop3_proto::Command::Uidl(Some(msg)))$(.$aw)??)
            }

            /// TOP: the header and the first `lines` body lines, into
            /// `out`. Returns the bytes received.
            pub $($async)? fn top<W: $($Writer)+ + ?Sized>(
                &mut self,
                msg: pop3_proto::MsgNum,
                lines: u32,
                out: &mut W,
            ) -> Result<u64, crate::error::Error> {
                use crate::pop3::commands;
                let mut batch = commands::one(pop3_proto::Command::Top { msg, lines });
                self.run(&mut batch, &mut crate::pop3::sink::$WriteSink(out))$(.$aw)??;
                Ok(commands::only(batch).octets)
            }

            /// RETR: streams message `msg` into `out`, in bounded memory.
            /// Returns its size.
            pub $($async)? fn retr<W: $($Writer)+ + ?Sized>(
                &mut self,
                msg: pop3_proto::MsgNum,
                out: &mut W,
            ) -> Result<u64, crate::error::Error> {
                use crate::pop3::commands;
                let mut batch = commands::one(pop3_proto::Command::Retr(msg));
                self.run(&mut batch, &mut crate::pop3::sink::$WriteSink(out))$(.$aw)??;
                Ok(commands::only(batch).octets)
            }

            /// RETR into memory.
            pub $($async)? fn retr_vec(&mut self, msg: pop3_proto::MsgNum) -> Result<Vec<u8>, crate::error::Error> {
                let mut sink = crate::pop3::sink::VecSink::default();
                let mut batch = crate::pop3::commands::one(pop3_proto::Command::Retr(msg));
                self.run(&mut batch, &mut sink)$(.$aw)??;
                Ok(sink.0.pop().unwrap_or_default())
            }

            /// Fetches many messages into `sink`, pipelined when the server
            /// advertises PIPELINING. A message the server refuses is
            /// reported in its slot; the others are still fetched.
            pub $($async)? fn retr_many<K: $Sink + ?Sized>(
                &mut self,
                msgs: &[pop3_proto::MsgNum],
                sink: &mut K,
            ) -> Result<Vec<Result<u64, crate::pop3::ServerRefusal>>, crate::error::Error> {
                self.retr_many_with_progress(msgs, sink, &mut |_| {})$(.$aw)?
            }

            /// Like [`Client::retr_many`], telling `progress` of every
            /// chunk of every message (beside the session's
            /// [`Client::on_progress`]). The callback may borrow from the
            /// caller (a progress bar, a counter); it is `Send` so that an
            /// async fetch can run on another thread (`tokio::spawn`).
            pub $($async)? fn retr_many_with_progress<K: $Sink + ?Sized>(
                &mut self,
                msgs: &[pop3_proto::MsgNum],
                sink: &mut K,
                progress: &mut (dyn FnMut(&crate::pop3::engine::FetchProgress) + Send),
            ) -> Result<Vec<Result<u64, crate::pop3::ServerRefusal>>, crate::error::Error> {
                use crate::pop3::commands;
                let mut batch = commands::retr_many(msgs);
                drive(&mut self.stream, &mut self.engine, &mut batch, sink, progress, "the server's answer")$(.$aw)??;
                Ok(commands::outcomes(batch))
            }

            /// Fetches many messages into memory.
            pub $($async)? fn retr_many_vec(
                &mut self,
                msgs: &[pop3_proto::MsgNum],
            ) -> Result<Vec<Result<Vec<u8>, crate::pop3::ServerRefusal>>, crate::error::Error> {
                let mut sink = crate::pop3::sink::VecSink::default();
                let outcomes = self.retr_many(msgs, &mut sink)$(.$aw)??;
                Ok(crate::pop3::sink::zip_bodies(outcomes, sink))
            }

            /// TOP for many messages (the header and the first `lines` body
            /// lines of each) into `sink`, pipelined when possible; a
            /// refusal is reported in its slot.
            pub $($async)? fn top_many<K: $Sink + ?Sized>(
                &mut self,
                msgs: &[pop3_proto::MsgNum],
                lines: u32,
                sink: &mut K,
            ) -> Result<Vec<Result<u64, crate::pop3::ServerRefusal>>, crate::error::Error> {
                use crate::pop3::commands;
                let mut batch = commands::top_many(msgs, lines);
                self.run(&mut batch, sink)$(.$aw)??;
                Ok(commands::outcomes(batch))
            }

            /// The headers of many messages (TOP n 0, pipelined when
            /// possible) as summaries: From, To, Cc, Reply-To, Date,
            /// Subject, Message-ID.
            pub $($async)? fn summaries(
                &mut self,
                msgs: &[pop3_proto::MsgNum],
            ) -> Result<Vec<Result<crate::pop3::summary::MessageSummary, crate::pop3::ServerRefusal>>, crate::error::Error> {
                let mut sink = crate::pop3::sink::VecSink::default();
                let outcomes = self.top_many(msgs, 0, &mut sink)$(.$aw)??;
                Ok(crate::pop3::commands::summaries_of(outcomes, sink))
            }

            /// DELE: marks `msg` for deletion (done at [`Client::quit`]).
            pub $($async)? fn dele(&mut self, msg: pop3_proto::MsgNum) -> Result<(), crate::error::Error> {
                self.single(pop3_proto::Command::Dele(msg))$(.$aw)?.map(drop)
            }

            /// Marks many messages for deletion, pipelined when possible.
            pub $($async)? fn dele_many(
                &mut self,
                msgs: &[pop3_proto::MsgNum],
            ) -> Result<Vec<Result<(), crate::pop3::ServerRefusal>>, crate::error::Error> {
                use crate::pop3::{commands, sink::NoBody};
                let mut batch = commands::dele_many(msgs);
                self.run(&mut batch, &mut NoBody)$(.$aw)??;
                Ok(commands::outcomes(batch).into_iter().map(|o| o.map(drop)).collect())
            }

            /// RSET: unmarks every deletion.
            pub $($async)? fn rset(&mut self) -> Result<(), crate::error::Error> {
                self.single(pop3_proto::Command::Rset)$(.$aw)?.map(drop)
            }

            /// NOOP: keeps the connection alive.
            pub $($async)? fn noop(&mut self) -> Result<(), crate::error::Error> {
                self.single(pop3_proto::Command::Noop)$(.$aw)?.map(drop)
            }

            /// QUIT: commits deletions and ends the session; then closes
            /// the stream, which over TLS sends close_notify, so the server
            /// sees a clean end.
            pub $($async)? fn quit(mut self) -> Result<(), crate::error::Error> {
                self.single(pop3_proto::Command::Quit)$(.$aw)??;
                // The session is over and committed; a server that already
                // closed its side cannot make that an error.
                let _ = self.stream.close_within(self.config.timeouts.idle)$(.$aw)?;
                Ok(())
            }

            /// QUIT without waiting for its answer, then the stream closed:
            /// one round trip fewer, for a session that changed nothing on
            /// the server (no DELE; nothing a server pops at QUIT, as
            /// Gmail does what RETR fetched), where the answer could say
            /// nothing that matters.
            pub $($async)? fn quit_without_waiting(mut self) -> Result<(), crate::error::Error> {
                // Not after an operation that left answers unread (a DELE
                // whose outcome nobody saw must not be committed).
                self.engine.check_in_step()?;
                self.engine.session.send(&pop3_proto::Command::Quit)?;
                let limit = self.config.timeouts.response;
                match self.stream.write_within(self.engine.output(), limit)$(.$aw)? {
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                        return Err(crate::error::Error::Timeout {
                            what: "the server to accept QUIT".into(),
                            after: limit,
                        });
                    }
                    other => other?,
                }
                self.engine.output_written();
                let _ = self.stream.close_within(self.config.timeouts.idle)$(.$aw)?;
                Ok(())
            }

            /// The stream, for callers that manage it themselves: with the
            /// TLS this client set up, if any.
            pub fn into_inner(self) -> $Stream<S> {
                self.stream
            }
        }

        /// The driver loop: write, read within the deadline, pass bodies to
        /// the sink. Every decision is the engine's; this only moves bytes.
        $($async)? fn drive<S: $($bound)+, K: $Sink + ?Sized>(
            stream: &mut $Stream<S>,
            engine: &mut crate::pop3::engine::Engine,
            batch: &mut crate::pop3::batch::Batch,
            sink: &mut K,
            progress: &mut (dyn FnMut(&crate::pop3::engine::FetchProgress) + Send),
            what: &str,
        ) -> Result<(), crate::error::Error> {
            use std::time::Instant;
            use crate::pop3::engine::Action;
            engine.begin(batch, Instant::now())?;
            loop {
                match engine.next_action(batch, Instant::now(), progress)? {
                    Action::Done => return Ok(()),
                    Action::BodyStart { index, msg } => sink.begin(index, msg)$(.$aw)??,
                    Action::Body { index, chunk } => sink.write(index, chunk)$(.$aw)??,
                    Action::BodyEnd { index, octets } => sink.end(index, octets)$(.$aw)??,
                    Action::Read => {
                        // Everything queued goes out before waiting for
                        // answers. Only the bytes are held across a wait,
                        // not the engine.
                        if !engine.output().is_empty() {
                            let limit = engine.read_timeout(what, Instant::now())?;
                            let output = engine.output();
                            match stream.write_within(output, limit)$(.$aw)? {
                                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                                    return Err(engine.timeout("the server to accept our commands"));
                                }
                                other => other?,
                            }
                            engine.output_written();
                        }
                        let limit = engine.read_timeout(what, Instant::now())?;
                        match stream.read_within(engine.spare(), limit)$(.$aw)? {
                            Ok(n) => engine.filled(n)?,
                            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                                return Err(engine.timeout(what));
                            }
                            Err(e) => return Err(e.into()),
                        }
                    }
                }
            }
        }
    };
}

pub(crate) use pop3_client;
