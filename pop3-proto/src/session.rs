//! The client session: the state machine that turns commands into bytes and
//! the server's bytes into events. It owns no socket, reads no clock and
//! never blocks; a driver moves the bytes (see the crate docs for the loop).
//!
//! - States follow RFC 1939: AUTHORIZATION, TRANSACTION, UPDATE; a command
//!   illegal in the current state is refused before a byte is written.
//! - Capabilities are kept from CAPA and discarded after STLS and after login
//!   (RFC 2595; Gmail shows PIPELINING only after login), so they are re-read.
//! - Pipelining follows mpop's window: only when PIPELINING is advertised, up
//!   to [`SessionConfig::pipeline_max`] commands out, refilled once fewer than
//!   [`SessionConfig::pipeline_refill`] are unanswered. Commands that change
//!   the state (USER, PASS, APOP, AUTH, STLS, QUIT, UTF8) are barriers:
//!   nothing is sent after one until it is answered; with pipelining one may
//!   follow commands still unanswered (CAPA then AUTH in one flight), except
//!   STLS, which is only ever sent alone; and PASS may follow USER (USER and
//!   PASS in one flight, as mpop sends them).
//! - A caller that remembers an earlier session's PIPELINING may open the
//!   window before this session's CAPA says so
//!   ([`ClientSession::assume_pipelining`]); a CAPA answer without it (a
//!   listing that lacks it, or a refusal), or the end of the phase (STLS,
//!   login), closes it again.
//! - After STLS's `+OK`, any byte already received is response injection.
//! - UTF8 (RFC 6856) is legal before login and, for servers that take it
//!   there, after; [`ClientSession::utf8_enabled`] says whether a server
//!   accepted it.
//! - At the end of the input, the error says whether part of the awaited
//!   answer had arrived; a TLS record where the greeting belongs is named
//!   at once.

use std::collections::VecDeque;

use crate::encode::{encode_sasl_cancel, encode_sasl_response, Command, CommandKind};
use crate::error::{SaslError, SessionError};
use crate::escape::snippet;
use crate::frame::{next_line, BodyDecoder, Decoded, DEFAULT_MAX_LINE};
use crate::listing::{self, UidlEntries};
use crate::parse::{self, ReplyLine, StatusLine};
use crate::sasl::{decode_challenge, SaslClient};
use crate::types::{
    is_recent_mode_user, Capabilities, Capability, Greeting, ListEntry, RespCode, Stat, Status,
    UidlEntry, DEFAULT_MAX_UID_LEN,
};

/// Limits and pipelining parameters of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Longest protocol line (status, CAPA, LIST, UIDL entry), ending included.
    pub max_line: usize,
    /// Longest unique-id accepted in UIDL answers.
    pub max_uid: usize,
    /// Largest message body accepted by RETR/TOP, if any.
    pub max_body: Option<u64>,
    /// Most commands out at once when pipelining.
    pub pipeline_max: usize,
    /// When the window was full, sending resumes once fewer than this many
    /// commands are unanswered.
    pub pipeline_refill: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            max_line: DEFAULT_MAX_LINE,
            max_uid: DEFAULT_MAX_UID_LEN,
            max_body: None,
            pipeline_max: 100,
            pipeline_refill: 20,
        }
    }
}

/// Where the session stands (RFC 1939 section 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Waiting for the server's greeting.
    Greeting,
    /// AUTHORIZATION: before login.
    Authorization,
    /// TRANSACTION: logged in.
    Transaction,
    /// UPDATE: QUIT sent after login; the server is committing deletions.
    Update,
    /// The session ended (QUIT answered, greeting refused, or a protocol error).
    Closed,
}

impl State {
    fn phrase(self) -> &'static str {
        match self {
            Self::Greeting => "before the server's greeting",
            Self::Authorization => "before login",
            Self::Transaction => "after login",
            Self::Update => "after QUIT",
            Self::Closed => "after the session ended",
        }
    }
}

/// What the extra information on a `+OK` line means, for the commands that
/// carry some.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload<'a> {
    /// Nothing parsed from the text.
    None,
    /// STAT's count and size.
    Stat(Stat),
    /// `LIST n`'s entry.
    Listing(ListEntry),
    /// `UIDL n`'s entry.
    UniqueId(UidlEntry<'a>),
}

/// A status line answering a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply<'a> {
    /// The command answered.
    pub command: CommandKind,
    /// `+OK` or `-ERR`.
    pub status: Status,
    /// The extended response code, if any.
    pub code: Option<RespCode>,
    /// The text after status and code (server-controlled: escape it to show it).
    pub text: &'a [u8],
    /// What was parsed from the text (STAT, `LIST n`, `UIDL n`).
    pub payload: Payload<'a>,
}

impl Reply<'_> {
    /// Whether the status is `+OK`.
    pub fn is_ok(&self) -> bool {
        self.status == Status::Ok
    }

    /// Whether entries or a body follow, ended by [`Event::End`].
    pub fn multi_line_follows(&self) -> bool {
        self.is_ok() && self.command.is_multi_line()
    }
}

/// What the session found in the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<'a> {
    /// All input so far is used: write [`ClientSession::output`] if any, then
    /// read more and call [`ClientSession::advance`] again.
    NeedInput,
    /// The server's greeting (`+OK` or `-ERR`; after `-ERR` the session is
    /// closed).
    Greeting(Greeting),
    /// A command's status line.
    Reply(Reply<'a>),
    /// One line of a CAPA listing.
    Capability(Capability),
    /// Entries of a LIST listing: as many as arrived complete, at least one.
    ListEntries(&'a [ListEntry]),
    /// Entries of a UIDL listing: as many as arrived complete, at least one.
    UidlEntries(UidlEntries<'a>),
    /// One line of a LANG listing, as sent.
    Language(&'a [u8]),
    /// Unstuffed bytes of a RETR or TOP body, borrowing the input. A chunk
    /// taken from the input ends where the used bytes end: with `(used,
    /// Event::Body(chunk))` from [`ClientSession::advance`], it is
    /// `input[used - chunk.len()..used]`, so a driver can find it again in
    /// its buffer. The only chunks not taken from the input are `"."` and
    /// `".\r"`: a line-start dot the server forgot to stuff, kept as
    /// content.
    Body(&'a [u8]),
    /// The multi-line answer to this command is complete.
    End(CommandKind),
}

/// What [`ClientSession::advance`]'s inner step found: an event, or a batch
/// of listing entries left in the session's scratch buffers (which the event
/// then borrows).
enum Found<'a> {
    Event(Event<'a>),
    ListEntries,
    UidlEntries(&'a [u8]),
}

impl<'a> From<Event<'a>> for Found<'a> {
    fn from(event: Event<'a>) -> Self {
        Found::Event(event)
    }
}

#[derive(Debug, Clone)]
enum Reading {
    /// The next line is a status line.
    Status,
    /// Inside a RETR or TOP body (decoded by the session's `body`).
    Body,
    /// Inside a CAPA, LIST, UIDL or LANG listing.
    Entries(CommandKind),
}

/// The client side of a POP3 session, sans I/O.
///
/// Feed it the server's bytes with [`advance`](Self::advance); queue commands
/// with [`send`](Self::send) and write [`output`](Self::output) to the server.
#[derive(Debug, Clone)]
pub struct ClientSession {
    config: SessionConfig,
    state: State,
    reading: Reading,
    body: BodyDecoder,
    pending: VecDeque<CommandKind>,
    capabilities: Capabilities,
    capa_listing: Capabilities,
    greeting: Option<Greeting>,
    out: Vec<u8>,
    user_accepted: bool,
    recent_mode: bool,
    sasl: Option<SaslClient>,
    window_open: bool,
    /// The caller remembers PIPELINING from an earlier session.
    pipelining_assumed: bool,
    tls_upgrade_pending: bool,
    tls_done: bool,
    utf8: bool,
    /// Bytes of an unfinished status line were seen by the last `advance`.
    partial_line: bool,
    /// A SASL challenge of the pending AUTH arrived (its answer has begun).
    challenged: bool,
    listing: listing::Scratch,
}

impl Default for ClientSession {
    fn default() -> Self {
        Self::new(SessionConfig::default())
    }
}

/// Wraps a parse error with the command whose answer it was found in.
fn protocol(kind: CommandKind) -> impl FnOnce(crate::error::ParseError) -> SessionError {
    move |error| SessionError::Protocol {
        during: kind.name(),
        error,
    }
}

/// Whether `input` starts like a TLS record: handshake (0x16) or alert
/// (0x15), then major version 3. No POP3 greeting starts so; one byte alone
/// waits for the next.
fn looks_like_tls(input: &[u8]) -> bool {
    matches!(input, [0x15 | 0x16, 0x03, ..])
}

/// Commands after which nothing may be sent until they are answered: their
/// answer decides what is legal next.
fn is_barrier(kind: CommandKind) -> bool {
    matches!(
        kind,
        CommandKind::User
            | CommandKind::Pass
            | CommandKind::Apop
            | CommandKind::Auth
            | CommandKind::Stls
            | CommandKind::Quit
            | CommandKind::Utf8
    )
}

impl ClientSession {
    /// A session waiting for the greeting.
    pub fn new(config: SessionConfig) -> Self {
        Self {
            config,
            state: State::Greeting,
            reading: Reading::Status,
            body: BodyDecoder::new(),
            pending: VecDeque::new(),
            capabilities: Capabilities::new(),
            capa_listing: Capabilities::new(),
            greeting: None,
            out: Vec::new(),
            user_accepted: false,
            recent_mode: false,
            sasl: None,
            window_open: true,
            pipelining_assumed: false,
            tls_upgrade_pending: false,
            tls_done: false,
            utf8: false,
            partial_line: false,
            challenged: false,
            listing: listing::Scratch::default(),
        }
    }

    /// The session's limits.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The greeting, once received.
    pub fn greeting(&self) -> Option<&Greeting> {
        self.greeting.as_ref()
    }

    /// The capabilities from the last complete CAPA listing in the current
    /// phase (empty before CAPA, and again after STLS and after login).
    pub fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    /// Whether the user name asked for Gmail's `recent:` mode: mail must then
    /// stay on the server and UIDs must be tracked by the client.
    pub fn recent_mode(&self) -> bool {
        self.recent_mode
    }

    /// Whether the server accepted `UTF8` (RFC 6856): messages and texts
    /// may then hold raw UTF-8, which servers such as Courier otherwise
    /// replace with a notice.
    pub fn utf8_enabled(&self) -> bool {
        self.utf8
    }

    /// Commands sent and not yet fully answered.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Bytes to write to the server.
    pub fn output(&self) -> &[u8] {
        &self.out
    }

    /// Forgets the output once the driver has written all of it.
    pub fn clear_output(&mut self) {
        self.out.clear();
    }

    /// Opens the pipelining window before this phase's CAPA listing says the
    /// server pipelines, because an earlier session's did (the caller's
    /// memory of the server): CAPA and the login, or the first commands after
    /// login, then go in one flight. A CAPA listing without PIPELINING closes
    /// the window again, and so does the end of the phase (STLS, login).
    pub fn assume_pipelining(&mut self) {
        self.pipelining_assumed = true;
    }

    /// Whether commands may be pipelined now: the server said so in this
    /// phase, or the caller assumes it.
    fn pipelines(&self) -> bool {
        self.capabilities.pipelining() || self.pipelining_assumed
    }

    /// Whether PASS may go right behind an unanswered USER: the server
    /// pipelines, and USER is the last command out.
    fn pass_may_follow_user(&self) -> bool {
        self.pipelines() && self.pending.back() == Some(&CommandKind::User)
    }

    /// How many commands may be sent now without waiting: with pipelining, the
    /// room left in the window; without, one when nothing is pending.
    pub fn room(&self) -> usize {
        if !matches!(self.state, State::Authorization | State::Transaction)
            || self.tls_upgrade_pending
            // Nothing follows a barrier, so one unanswered is the last.
            || self.pending.back().is_some_and(|k| is_barrier(*k))
        {
            return 0;
        }
        if !self.pipelines() {
            return usize::from(self.pending.is_empty());
        }
        if self.window_open {
            self.config.pipeline_max.saturating_sub(self.pending.len())
        } else {
            0
        }
    }

    /// What [`Self::send`] would say of a command of `kind` now: `Ok` if it
    /// may go, [`SessionError::MustWait`] if it must wait for answers, or
    /// why it is illegal in this state.
    pub fn check_send(&self, kind: CommandKind) -> Result<(), SessionError> {
        self.check_can_send(kind)
    }

    fn check_can_send(&self, kind: CommandKind) -> Result<(), SessionError> {
        let command = kind.name();
        let illegal = || SessionError::IllegalCommand {
            command,
            state: self.state.phrase(),
        };
        let legal = match self.state {
            State::Greeting | State::Update | State::Closed => false,
            State::Authorization => match kind {
                // After USER's +OK; or, USER still unanswered, behind it in
                // one flight when the server pipelines (as mpop sends them),
                // else once it is answered.
                CommandKind::Pass => {
                    self.user_accepted || self.pending.back() == Some(&CommandKind::User)
                }
                CommandKind::Stls => !self.tls_done,
                CommandKind::User
                | CommandKind::Apop
                | CommandKind::Auth
                | CommandKind::Capa
                | CommandKind::Quit
                | CommandKind::Utf8
                | CommandKind::Lang { .. } => true,
                _ => false,
            },
            // After login every state-changing command but QUIT is over;
            // UTF8 is sent there to servers that advertise it only then.
            State::Transaction => {
                matches!(kind, CommandKind::Quit | CommandKind::Utf8) || !is_barrier(kind)
            }
        };
        if !legal {
            return Err(illegal());
        }
        if self.tls_upgrade_pending {
            return Err(SessionError::IllegalCommand {
                command,
                state: "until the TLS handshake after STLS is done",
            });
        }
        // State-changing commands go last in a flight (STLS alone); others
        // respect the window.
        let ok_now = if kind == CommandKind::Pass && self.pass_may_follow_user() {
            true
        } else if is_barrier(kind) {
            self.pending.is_empty()
                || (kind != CommandKind::Stls && self.pipelines() && self.room() > 0)
        } else {
            self.room() > 0
        };
        if !ok_now {
            return Err(SessionError::MustWait { command });
        }
        Ok(())
    }

    fn queued(&mut self, kind: CommandKind) {
        self.pending.push_back(kind);
        if self.pending.len() >= self.config.pipeline_max {
            self.window_open = false;
        }
        if kind == CommandKind::Quit && self.state == State::Transaction {
            self.state = State::Update;
        }
    }

    /// Queues a command: checks it is legal now, encodes it into the output.
    /// On error nothing is queued. Use [`authenticate`](Self::authenticate)
    /// for AUTH.
    pub fn send(&mut self, command: &Command<'_>) -> Result<(), SessionError> {
        let kind = command.kind();
        if kind == CommandKind::Auth {
            return Err(SessionError::IllegalCommand {
                command: "AUTH",
                state: "through send(); use authenticate()",
            });
        }
        self.check_can_send(kind)?;
        command.encode(&mut self.out)?;
        match command {
            Command::User(user) | Command::Apop { user, .. } => {
                self.recent_mode = is_recent_mode_user(user);
            }
            _ => {}
        }
        self.queued(kind);
        Ok(())
    }

    /// Starts a SASL exchange; the session answers the server's challenges
    /// itself and reports only the final [`Reply`] to AUTH.
    pub fn authenticate(&mut self, mut sasl: SaslClient) -> Result<(), SessionError> {
        self.check_can_send(CommandKind::Auth)?;
        let initial = sasl.initial_response();
        Command::Auth {
            mechanism: sasl.mechanism().name(),
            initial_response: initial.as_deref().map(Into::into),
        }
        .encode(&mut self.out)?;
        self.recent_mode = is_recent_mode_user(sasl.user());
        self.sasl = Some(sasl);
        self.queued(CommandKind::Auth);
        Ok(())
    }

    /// Tells the session the TLS handshake after STLS succeeded: commands may
    /// be sent again (start with CAPA; the old capabilities are gone).
    pub fn tls_established(&mut self) {
        if self.tls_upgrade_pending {
            self.tls_upgrade_pending = false;
            self.tls_done = true;
        }
    }

    /// Whether the session is waiting for the driver's TLS handshake.
    pub fn awaiting_tls(&self) -> bool {
        self.tls_upgrade_pending
    }

    /// Records the end of the server's data. Fine after QUIT was answered;
    /// otherwise a typed error saying what was cut off, and whether any of
    /// it had arrived ([`SessionError::UnexpectedEof`]) or none
    /// ([`SessionError::NoGreeting`], [`SessionError::NoAnswer`]). Call it
    /// after [`advance`](Self::advance) has seen every byte received.
    pub fn handle_eof(&mut self) -> Result<(), SessionError> {
        let state = std::mem::replace(&mut self.state, State::Closed);
        let begun =
            self.partial_line || self.challenged || !matches!(self.reading, Reading::Status);
        match (state, self.pending.front()) {
            (State::Closed, _) => Ok(()),
            (State::Greeting, _) if begun => Err(SessionError::UnexpectedEof {
                during: "the greeting",
            }),
            (State::Greeting, _) => Err(SessionError::NoGreeting),
            (_, Some(kind)) if begun => Err(SessionError::UnexpectedEof {
                during: kind.name(),
            }),
            (_, Some(kind)) => Err(SessionError::NoAnswer {
                during: kind.name(),
            }),
            (_, None) => Err(SessionError::Disconnected),
        }
    }

    fn fail<T>(&mut self, error: SessionError) -> Result<T, SessionError> {
        self.state = State::Closed;
        self.pending.clear();
        Err(error)
    }

    /// Reads the start of `input`: returns how many bytes were used and what
    /// was found. Call again with the rest (and keep unused bytes for later)
    /// until [`Event::NeedInput`]. The event may borrow the session (listing
    /// entries are parsed into its buffers), so drop it before the next call.
    ///
    /// A protocol violation closes the session and is returned as an error.
    pub fn advance<'a>(&'a mut self, input: &'a [u8]) -> Result<(usize, Event<'a>), SessionError> {
        match self.advance_inner(input) {
            Ok((used, Found::Event(event))) => Ok((used, event)),
            Ok((used, Found::ListEntries)) => Ok((used, Event::ListEntries(&self.listing.sizes))),
            Ok((used, Found::UidlEntries(uids))) => Ok((
                used,
                Event::UidlEntries(UidlEntries::new(uids, &self.listing.uids)),
            )),
            Err(e) => self.fail(e),
        }
    }

    fn advance_inner<'a>(&mut self, input: &'a [u8]) -> Result<(usize, Found<'a>), SessionError> {
        let mut used = 0;
        loop {
            let rest = &input[used..];
            match &mut self.reading {
                Reading::Body => {
                    let (n, found) = self.body.decode(rest)?;
                    let event = match found {
                        Decoded::Chunk(chunk) => Event::Body(chunk),
                        Decoded::NeedMore => Event::NeedInput,
                        Decoded::End => self.end_multi_line(),
                    };
                    return Ok((used + n, event.into()));
                }
                Reading::Entries(kind) => {
                    let kind = *kind;
                    let (max_uid, max_line) = (self.config.max_uid, self.config.max_line);
                    // Listings: the exact-form entries in one batch; a line
                    // in another form is read alone below.
                    let batch = match kind {
                        CommandKind::List { .. } => {
                            Some((self.listing.list(rest, max_line), Found::ListEntries))
                        }
                        CommandKind::Uidl { .. } => Some((
                            self.listing.uidl(rest, max_uid, max_line),
                            Found::UidlEntries(rest),
                        )),
                        _ => None,
                    };
                    if let Some((n, found)) = batch.filter(|(n, _)| *n > 0) {
                        return Ok((used + n, found));
                    }
                    let Some((line, n)) = next_line(rest, max_line)? else {
                        return Ok((used, Event::NeedInput.into()));
                    };
                    used += n;
                    if line == b"." {
                        return Ok((used, self.end_multi_line().into()));
                    }
                    let line = line.strip_prefix(b".").unwrap_or(line);
                    let found = match kind {
                        CommandKind::Capa => {
                            let cap = parse::capability(line);
                            self.capa_listing.push(cap.clone());
                            Event::Capability(cap).into()
                        }
                        CommandKind::List { .. } => {
                            let entry = parse::list_entry(line).map_err(protocol(kind))?;
                            self.listing.single_size(entry);
                            Found::ListEntries
                        }
                        CommandKind::Uidl { .. } => {
                            let entry = parse::uidl_entry(line, max_uid).map_err(protocol(kind))?;
                            self.listing.single_uid(entry);
                            Found::UidlEntries(entry.uid)
                        }
                        _ => Event::Language(line).into(),
                    };
                    return Ok((used, found));
                }
                Reading::Status => {
                    if self.state == State::Closed {
                        if rest.is_empty() {
                            return Ok((used, Event::NeedInput.into()));
                        }
                        return Err(SessionError::UnexpectedData {
                            context: "after the session ended",
                            bytes: snippet(rest),
                        });
                    }
                    if self.state == State::Greeting && looks_like_tls(rest) {
                        return Err(SessionError::TlsInsteadOfGreeting);
                    }
                    let Some((line, n)) = next_line(rest, self.config.max_line)? else {
                        self.partial_line = !rest.is_empty();
                        return Ok((used, self.idle_check(rest)?.into()));
                    };
                    self.partial_line = false;
                    if self.state == State::Greeting {
                        return Ok((used + n, self.greeting_line(line)?.into()));
                    }
                    let Some(&kind) = self.pending.front() else {
                        return Err(SessionError::UnexpectedData {
                            context: "with no command pending",
                            bytes: snippet(rest),
                        });
                    };
                    used += n;
                    let reply = parse::reply_line(line, kind == CommandKind::Auth);
                    match reply.map_err(protocol(kind))? {
                        ReplyLine::Continuation(text) => {
                            self.challenged = true;
                            self.answer_challenge(text)?;
                        }
                        ReplyLine::Status(status) => {
                            let event = self.status_line(kind, status)?;
                            if self.tls_upgrade_pending && used < input.len() {
                                return Err(SessionError::UnexpectedData {
                                    context: "after STLS was accepted, before the TLS handshake",
                                    bytes: snippet(&input[used..]),
                                });
                            }
                            return Ok((used, event.into()));
                        }
                    }
                }
            }
        }
    }

    /// With nothing complete to read: bytes with no command pending are an
    /// error as soon as they arrive.
    fn idle_check<'a>(&self, rest: &[u8]) -> Result<Event<'a>, SessionError> {
        if !rest.is_empty() && self.pending.is_empty() && self.state != State::Greeting {
            return Err(SessionError::UnexpectedData {
                context: "with no command pending",
                bytes: snippet(rest),
            });
        }
        Ok(Event::NeedInput)
    }

    fn greeting_line<'a>(&mut self, line: &[u8]) -> Result<Event<'a>, SessionError> {
        let status = parse::status_line(line).map_err(|error| SessionError::Protocol {
            during: "the greeting",
            error,
        })?;
        let greeting = Greeting {
            status: status.status,
            apop_timestamp: parse::apop_timestamp(status.text),
            code: status.code,
            text: status.text.to_vec(),
        };
        self.state = match greeting.status {
            Status::Ok => State::Authorization,
            Status::Err => State::Closed,
        };
        self.greeting = Some(greeting.clone());
        Ok(Event::Greeting(greeting))
    }

    fn answer_challenge(&mut self, text: &[u8]) -> Result<(), SessionError> {
        let Some(sasl) = self.sasl.as_mut() else {
            return Err(SessionError::Sasl(SaslError::UnexpectedChallenge {
                mechanism: "(none)",
            }));
        };
        let answer = decode_challenge(text).and_then(|c| sasl.respond(&c));
        match answer {
            Ok(response) => {
                encode_sasl_response(&response, &mut self.out);
                Ok(())
            }
            Err(e @ SaslError::TooManyRounds { .. }) => {
                // Cancel politely; the server's -ERR then ends the exchange.
                encode_sasl_cancel(&mut self.out);
                Err(e.into())
            }
            Err(e) => Err(e.into()),
        }
    }

    fn end_multi_line<'a>(&mut self) -> Event<'a> {
        self.reading = Reading::Status;
        let kind = self.pending.pop_front().unwrap_or(CommandKind::Noop);
        if kind == CommandKind::Capa {
            self.capabilities = std::mem::take(&mut self.capa_listing);
            // The server's own word replaces the caller's memory.
            self.pipelining_assumed = false;
        }
        self.answered();
        Event::End(kind)
    }

    fn answered(&mut self) {
        if self.pending.len() < self.config.pipeline_refill {
            self.window_open = true;
        }
    }

    fn status_line<'a>(
        &mut self,
        kind: CommandKind,
        line: StatusLine<'a>,
    ) -> Result<Event<'a>, SessionError> {
        let ok = line.status == Status::Ok;
        self.challenged = false;
        let mut payload = Payload::None;
        if ok {
            payload = match kind {
                CommandKind::Stat => Payload::Stat(parse::stat(line.text).map_err(protocol(kind))?),
                CommandKind::List { all: false } => {
                    Payload::Listing(parse::list_entry(line.text).map_err(protocol(kind))?)
                }
                CommandKind::Uidl { all: false } => Payload::UniqueId(
                    parse::uidl_entry(line.text, self.config.max_uid).map_err(protocol(kind))?,
                ),
                _ => Payload::None,
            };
        }
        match (kind, ok) {
            // A refused CAPA says nothing of PIPELINING: the memory goes.
            (CommandKind::Capa, false) => self.pipelining_assumed = false,
            (CommandKind::User, _) => self.user_accepted = ok,
            (CommandKind::Pass | CommandKind::Apop | CommandKind::Auth, true) => {
                self.state = State::Transaction;
                self.capabilities = Capabilities::new();
                self.pipelining_assumed = false;
                self.sasl = None;
            }
            (CommandKind::Pass | CommandKind::Apop | CommandKind::Auth, false) => {
                self.user_accepted = false;
                self.sasl = None;
            }
            (CommandKind::Stls, true) => {
                self.tls_upgrade_pending = true;
                self.capabilities = Capabilities::new();
                self.pipelining_assumed = false;
            }
            (CommandKind::Utf8, true) => self.utf8 = true,
            (CommandKind::Quit, true) => self.state = State::Closed,
            // A refused QUIT in TRANSACTION means the deletions failed; the
            // server closes anyway.
            (CommandKind::Quit, false) => self.state = State::Closed,
            _ => {}
        }
        if ok && kind.is_multi_line() {
            self.reading = match kind {
                CommandKind::Retr | CommandKind::Top => {
                    self.body.reset(self.config.max_body);
                    Reading::Body
                }
                _ => {
                    self.capa_listing = Capabilities::new();
                    Reading::Entries(kind)
                }
            };
        } else {
            self.pending.pop_front();
            self.answered();
        }
        Ok(Event::Reply(Reply {
            command: kind,
            status: line.status,
            code: line.code,
            text: line.text,
            payload,
        }))
    }
}
