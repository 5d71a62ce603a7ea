//! The client session: the state machine of a submission session (RFC 6409)
//! that turns calls into bytes and the server's bytes into events. It owns
//! no socket, reads no clock and never blocks; a driver moves the bytes.
//!
//! Greeting (220) -> EHLO -> [STARTTLS -> TLS -> EHLO again] -> [AUTH] ->
//! MAIL FROM / RCPT TO... / DATA -> message -> ... -> QUIT.

use std::collections::VecDeque;

use base64::Engine;
use pop3_proto::escape::snippet;
use pop3_proto::sasl::{decode_challenge, SaslClient};

use crate::caps::Capabilities;
use crate::data::DataEncoder;
use crate::error::{ArgumentError, Error, Refusal, Step};
use crate::reply::{Reply, ReplyParser};

/// Longest AUTH line that carries the initial response (RFC 4954 section 4:
/// 512 bytes, CRLF included); a longer one is sent after the 334 instead.
pub const MAX_AUTH_LINE: usize = 512;

/// Most commands written ahead of their replies when the server offers
/// PIPELINING (MAIL, RCPTs, DATA).
pub const PIPELINE_WINDOW: usize = 100;

/// Longest address accepted (RFC 5321 section 4.5.3.1.3: a path is at most
/// 256 octets).
pub const MAX_ADDRESS: usize = 256;

/// Settings of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The name sent with EHLO: the client's fully-qualified domain name or
    /// an address literal such as `[192.0.2.1]` (default `localhost`).
    pub client_name: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            client_name: "localhost".into(),
        }
    }
}

/// One message's envelope: sender, recipients and what MAIL FROM declares.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Envelope {
    /// The sender (`MAIL FROM:<from>`); empty for the null reverse-path.
    pub from: String,
    /// The recipients (`RCPT TO:<to>` each), at least one.
    pub to: Vec<String>,
    /// The message's size in bytes, if known: checked against the server's
    /// SIZE before anything is sent, and declared with `SIZE=` when offered.
    pub size: Option<u64>,
    /// The message holds 8-bit bytes: `BODY=8BITMIME` (the server must offer
    /// 8BITMIME).
    pub eight_bit: bool,
    /// The message or an address needs SMTPUTF8 (set by itself when an
    /// address is not ASCII; the server must offer SMTPUTF8).
    pub smtputf8: bool,
}

impl Envelope {
    /// An envelope from `from` to `to`.
    pub fn new<S: Into<String>>(from: impl Into<String>, to: impl IntoIterator<Item = S>) -> Self {
        Self {
            from: from.into(),
            to: to.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// Sets the size.
    pub fn with_size(mut self, size: u64) -> Self {
        self.size = Some(size);
        self
    }

    /// Marks the message as 8-bit.
    pub fn with_eight_bit(mut self, yes: bool) -> Self {
        self.eight_bit = yes;
        self
    }
}

/// What happened to one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientOutcome {
    /// The address as given.
    pub address: String,
    /// `None` if the server accepted it, else its refusal.
    pub refusal: Option<Refusal>,
}

/// A message the server accepted (the reply to its final dot was 2xx).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Every recipient, in the order given, with its outcome.
    pub recipients: Vec<RecipientOutcome>,
    /// The server's final reply code (250).
    pub code: u16,
    /// The server's final text, escaped (often a queue id).
    pub text: String,
}

impl Delivery {
    /// The recipients the server accepted.
    pub fn accepted(&self) -> impl Iterator<Item = &str> {
        self.recipients
            .iter()
            .filter(|r| r.refusal.is_none())
            .map(|r| r.address.as_str())
    }

    /// The recipients the server refused, with why.
    pub fn refused(&self) -> impl Iterator<Item = (&str, &Refusal)> {
        self.recipients
            .iter()
            .filter_map(|r| r.refusal.as_ref().map(|f| (r.address.as_str(), f)))
    }

    /// Whether every recipient was accepted.
    pub fn all_accepted(&self) -> bool {
        self.recipients.iter().all(|r| r.refusal.is_none())
    }
}

/// Where the session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Waiting for the greeting.
    Greeting,
    /// EHLO sent.
    Ehlo,
    /// Idle between operations: STARTTLS, AUTH, a message or QUIT may start.
    Ready,
    /// STARTTLS sent.
    StartTls,
    /// STARTTLS accepted: the driver does the TLS handshake, then calls
    /// [`SmtpSession::tls_established`].
    TlsHandshake,
    /// AUTH in progress.
    Auth,
    /// MAIL, RCPT, DATA sent; waiting for replies.
    Envelope,
    /// DATA accepted: the driver streams the message.
    Data,
    /// The message's final dot sent; waiting for the reply.
    DataEnd,
    /// QUIT sent.
    Quit,
    /// Ended (QUIT answered, or an error).
    Closed,
}

impl State {
    fn phrase(self) -> &'static str {
        match self {
            Self::Greeting => "before the greeting",
            Self::Ehlo => "while EHLO is unanswered",
            Self::Ready => "now",
            Self::StartTls => "while STARTTLS is unanswered",
            Self::TlsHandshake => "until the TLS handshake is done",
            Self::Auth => "during AUTH",
            Self::Envelope => "while the envelope is unanswered",
            Self::Data => "while the message is being sent",
            Self::DataEnd => "while the message is unanswered",
            Self::Quit => "after QUIT",
            Self::Closed => "after the session ended",
        }
    }
}

/// What the session found in the input, or tells the driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Every complete reply was used: write the output, read more, call
    /// [`SmtpSession::advance`] again with the unused bytes and the new.
    NeedInput,
    /// EHLO was answered ([`SmtpSession::capabilities`]): start STARTTLS,
    /// AUTH, a message or QUIT.
    Ready,
    /// STARTTLS was accepted: do the TLS handshake on the connection now,
    /// then call [`SmtpSession::tls_established`] (which sends EHLO again).
    StartTls,
    /// AUTH succeeded (235).
    Authenticated,
    /// DATA was accepted (354): stream the message with
    /// [`SmtpSession::write_data`] (writing the output as it grows), then
    /// call [`SmtpSession::finish_data`].
    SendData,
    /// The message was accepted, with each recipient's outcome.
    Sent(Delivery),
    /// An operation failed (AUTH, or a message) and the session is usable
    /// again ([`State::Ready`]): another message, or QUIT.
    Failed(Error),
    /// QUIT was answered; the session is over.
    Closed,
}

/// A command written and not yet answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    Greeting,
    Ehlo,
    StartTls,
    Auth,
    Mail,
    Rcpt(usize),
    Data,
    Dot,
    Rset,
    Quit,
}

impl Cmd {
    fn step(self) -> Step {
        match self {
            Self::Greeting => Step::Greeting,
            Self::Ehlo => Step::Ehlo,
            Self::StartTls => Step::StartTls,
            Self::Auth => Step::Auth,
            Self::Mail => Step::Mail,
            Self::Rcpt(_) => Step::Rcpt,
            Self::Data => Step::Data,
            Self::Dot => Step::Message,
            Self::Rset => Step::Rset,
            Self::Quit => Step::Quit,
        }
    }
}

/// A message's envelope in progress.
#[derive(Debug, Clone)]
struct Transaction {
    from: String,
    to: Vec<String>,
    mail_params: String,
    mail_ok: bool,
    outcomes: Vec<Option<Option<Refusal>>>,
    /// Commands not yet written (the window is full, or no pipelining).
    queued: VecDeque<Cmd>,
    /// The failure to report once every pending reply is in.
    failure: Option<Error>,
}

impl Transaction {
    fn any_accepted(&self) -> bool {
        self.outcomes.iter().any(|o| matches!(o, Some(None)))
    }

    fn all_refused(&self) -> Error {
        let refused = self
            .to
            .iter()
            .zip(&self.outcomes)
            .filter_map(|(a, o)| match o {
                Some(Some(r)) => Some((a.clone(), r.clone())),
                _ => None,
            })
            .collect();
        Error::RecipientsRefused(refused)
    }
}

/// The client side of an SMTP submission session, sans I/O.
///
/// Feed it the server's bytes with [`advance`](Self::advance), write
/// [`output`](Self::output) to the server, and act on the [`Event`]s. See the
/// crate documentation for the driver loop.
///
/// An `Err` from `advance` ends the session (the server broke the protocol,
/// refused the greeting, EHLO or STARTTLS, closed with 421, or injected data
/// after STARTTLS). An `Err` from the other calls leaves the session as it
/// was, with nothing written.
///
/// `Debug` shows neither the output (it may hold credentials) nor SASL data.
#[derive(Clone)]
pub struct SmtpSession {
    config: Config,
    state: State,
    parser: ReplyParser,
    out: Vec<u8>,
    in_flight: VecDeque<Cmd>,
    greeting: Option<Reply>,
    caps: Option<Capabilities>,
    tls: bool,
    authenticated: bool,
    sasl: Option<SaslClient>,
    sasl_initial: Option<Vec<u8>>,
    sasl_failure: Option<Error>,
    txn: Option<Transaction>,
    data: DataEncoder,
}

impl std::fmt::Debug for SmtpSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSession")
            .field("state", &self.state)
            .field("in_flight", &self.in_flight)
            .field("capabilities", &self.caps)
            .field("tls", &self.tls)
            .field("authenticated", &self.authenticated)
            .field("sasl", &self.sasl)
            .field("output_len", &self.out.len())
            .finish_non_exhaustive()
    }
}

impl SmtpSession {
    /// A session waiting for the greeting. Fails if the EHLO name cannot be
    /// sent.
    pub fn new(config: Config) -> Result<Self, Error> {
        check_name(&config.client_name)?;
        Ok(Self {
            config,
            state: State::Greeting,
            parser: ReplyParser::new(),
            out: Vec::new(),
            in_flight: VecDeque::from([Cmd::Greeting]),
            greeting: None,
            caps: None,
            tls: false,
            authenticated: false,
            sasl: None,
            sasl_initial: None,
            sasl_failure: None,
            txn: None,
            data: DataEncoder::new(),
        })
    }

    /// A session started over TLS from the first byte (port 465): it counts
    /// as encrypted and STARTTLS is not needed.
    pub fn new_tls(config: Config) -> Result<Self, Error> {
        let mut session = Self::new(config)?;
        session.tls = true;
        Ok(session)
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Whether the session has ended (after an error from `advance`, or QUIT).
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// The greeting, once received.
    pub fn greeting(&self) -> Option<&Reply> {
        self.greeting.as_ref()
    }

    /// The capabilities from the last EHLO (none before it, and none again
    /// after STARTTLS until the new EHLO is answered).
    pub fn capabilities(&self) -> Option<&Capabilities> {
        self.caps.as_ref()
    }

    /// Whether the connection is encrypted (TLS from the start, or after
    /// STARTTLS).
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// Whether AUTH succeeded.
    pub fn is_authenticated(&self) -> bool {
        self.authenticated
    }

    /// Bytes to write to the server.
    pub fn output(&self) -> &[u8] {
        &self.out
    }

    /// Forgets the output once the driver has written all of it.
    pub fn clear_output(&mut self) {
        self.out.clear();
    }

    fn illegal(&self, call: &'static str) -> Error {
        if self.state == State::Closed {
            return Error::Closed;
        }
        Error::IllegalCall {
            call,
            state: self.state.phrase(),
        }
    }

    fn ready(&self, call: &'static str) -> Result<&Capabilities, Error> {
        match (&self.caps, self.state) {
            (Some(caps), State::Ready) => Ok(caps),
            _ => Err(self.illegal(call)),
        }
    }

    fn write(&mut self, cmd: Cmd, line: &[u8]) {
        self.out.extend_from_slice(line);
        self.out.extend_from_slice(b"\r\n");
        self.in_flight.push_back(cmd);
    }

    fn send_ehlo(&mut self) {
        let line = format!("EHLO {}", self.config.client_name);
        self.write(Cmd::Ehlo, line.as_bytes());
        self.state = State::Ehlo;
    }

    /// Sends STARTTLS (RFC 3207). Fails with [`Error::StartTlsNotOffered`]
    /// when the server does not offer it: there is no plaintext fallback.
    pub fn starttls(&mut self) -> Result<(), Error> {
        let caps = self.ready("STARTTLS")?;
        if self.tls {
            return Err(Error::IllegalCall {
                call: "STARTTLS",
                state: "over TLS",
            });
        }
        if !caps.starttls {
            return Err(Error::StartTlsNotOffered);
        }
        self.write(Cmd::StartTls, b"STARTTLS");
        self.state = State::StartTls;
        Ok(())
    }

    /// Tells the session the TLS handshake after STARTTLS succeeded: the old
    /// capabilities are discarded and EHLO is sent again.
    pub fn tls_established(&mut self) -> Result<(), Error> {
        if self.state != State::TlsHandshake {
            return Err(self.illegal("tls_established"));
        }
        self.tls = true;
        self.caps = None;
        self.send_ehlo();
        Ok(())
    }

    /// Starts AUTH with a SASL client from pop3-proto. The initial response
    /// goes on the AUTH line (SASL-IR) when the line fits in
    /// [`MAX_AUTH_LINE`], else after the server's first 334. The session
    /// answers the challenges itself and reports [`Event::Authenticated`] or
    /// [`Event::Failed`]. Whether credentials may go over a connection
    /// without TLS is the driver's policy ([`is_tls`](Self::is_tls)).
    pub fn authenticate(&mut self, mut sasl: SaslClient) -> Result<(), Error> {
        let caps = self.ready("AUTH")?;
        if self.authenticated {
            return Err(Error::IllegalCall {
                call: "AUTH",
                state: "after a successful AUTH",
            });
        }
        let mechanism = sasl.mechanism();
        if !caps.offers_auth(mechanism) {
            return Err(Error::MechanismNotOffered {
                mechanism: mechanism.name(),
                offered: caps.auth.join(" "),
            });
        }
        let mut line = format!("AUTH {}", mechanism.name()).into_bytes();
        let initial = sasl.initial_response();
        self.sasl_initial = None;
        if let Some(ir) = initial {
            let encoded = encode_sasl(&ir);
            if line.len() + 1 + encoded.len() + 2 <= MAX_AUTH_LINE {
                line.push(b' ');
                line.extend_from_slice(&encoded);
            } else {
                self.sasl_initial = Some(ir);
            }
        }
        self.sasl = Some(sasl);
        self.sasl_failure = None;
        self.write(Cmd::Auth, &line);
        self.state = State::Auth;
        Ok(())
    }

    /// Starts a message: checks the envelope (addresses, SIZE, extensions)
    /// and writes MAIL FROM, the RCPT TOs and DATA, pipelined when the
    /// server offers PIPELINING, else one at a time as the replies come.
    /// Fails with [`Error::TooBig`] when the envelope's size exceeds the
    /// server's SIZE, before anything is sent.
    pub fn send_mail(&mut self, envelope: &Envelope) -> Result<(), Error> {
        let caps = self.ready("MAIL FROM")?;
        check_address("sender address", &envelope.from, true)?;
        if envelope.to.is_empty() {
            return Err(ArgumentError::Invalid {
                argument: "recipient list",
                reason: "there are no recipients",
            }
            .into());
        }
        for to in &envelope.to {
            check_address("recipient address", to, false)?;
        }
        let mut params = String::new();
        if let (Some(size), Some(limit)) = (envelope.size, caps.size_limit) {
            if size > limit {
                return Err(Error::TooBig { size, limit });
            }
        }
        if let (Some(size), true) = (envelope.size, caps.size_offered) {
            params.push_str(&format!(" SIZE={size}"));
        }
        if envelope.eight_bit {
            if !caps.eight_bit_mime {
                return Err(Error::ExtensionNotOffered {
                    extension: "8BITMIME",
                });
            }
            params.push_str(" BODY=8BITMIME");
        }
        let non_ascii = !envelope.from.is_ascii() || envelope.to.iter().any(|a| !a.is_ascii());
        if envelope.smtputf8 || non_ascii {
            if !caps.smtputf8 {
                return Err(Error::ExtensionNotOffered {
                    extension: "SMTPUTF8",
                });
            }
            params.push_str(" SMTPUTF8");
        }
        let mut queued = VecDeque::from([Cmd::Mail]);
        queued.extend((0..envelope.to.len()).map(Cmd::Rcpt));
        queued.push_back(Cmd::Data);
        self.txn = Some(Transaction {
            from: envelope.from.clone(),
            to: envelope.to.clone(),
            mail_params: params,
            mail_ok: false,
            outcomes: vec![None; envelope.to.len()],
            queued,
            failure: None,
        });
        self.state = State::Envelope;
        self.pump();
        Ok(())
    }

    fn window(&self) -> usize {
        match &self.caps {
            Some(caps) if caps.pipelining => PIPELINE_WINDOW,
            _ => 1,
        }
    }

    /// Writes queued envelope commands while the window has room.
    fn pump(&mut self) {
        let window = self.window();
        while self.in_flight.len() < window {
            let Some(txn) = self.txn.as_mut() else { return };
            let Some(cmd) = txn.queued.pop_front() else {
                return;
            };
            let line = match cmd {
                Cmd::Mail => format!("MAIL FROM:<{}>{}", txn.from, txn.mail_params),
                Cmd::Rcpt(i) => match txn.to.get(i) {
                    Some(to) => format!("RCPT TO:<{to}>"),
                    None => continue,
                },
                // One at a time: DATA only if a recipient was accepted.
                Cmd::Data if window == 1 && !txn.any_accepted() => {
                    txn.failure = Some(txn.all_refused());
                    txn.queued.clear();
                    self.write(Cmd::Rset, b"RSET");
                    return;
                }
                Cmd::Data => "DATA".to_owned(),
                _ => continue,
            };
            self.write(cmd, line.as_bytes());
        }
    }

    /// Appends a piece of the message, encoded for DATA (dot-stuffing, line
    /// endings made CRLF), to the output; write the output before the next
    /// piece to keep memory bounded (at most twice the piece).
    pub fn write_data(&mut self, chunk: &[u8]) -> Result<(), Error> {
        if self.state != State::Data {
            return Err(self.illegal("write_data"));
        }
        self.data.push(chunk, &mut self.out);
        Ok(())
    }

    /// Ends the message (final line ending if needed, `.` CRLF); the
    /// server's reply comes as [`Event::Sent`] or [`Event::Failed`].
    pub fn finish_data(&mut self) -> Result<(), Error> {
        if self.state != State::Data {
            return Err(self.illegal("finish_data"));
        }
        self.data.finish(&mut self.out);
        self.in_flight.push_back(Cmd::Dot);
        self.state = State::DataEnd;
        Ok(())
    }

    /// Sends QUIT; [`Event::Closed`] follows.
    pub fn quit(&mut self) -> Result<(), Error> {
        if self.state != State::Ready {
            return Err(self.illegal("QUIT"));
        }
        self.write(Cmd::Quit, b"QUIT");
        self.state = State::Quit;
        Ok(())
    }

    /// Records the end of the server's data: fine after QUIT (answered or
    /// not), else a typed error saying what was cut off.
    pub fn handle_eof(&mut self) -> Result<(), Error> {
        let state = std::mem::replace(&mut self.state, State::Closed);
        self.txn = None;
        match (state, self.in_flight.pop_front()) {
            (State::Closed | State::Quit, _) => Ok(()),
            (_, Some(cmd)) => Err(Error::UnexpectedEof { during: cmd.step() }),
            (State::Data, None) => Err(Error::UnexpectedEof {
                during: Step::Message,
            }),
            (_, None) => Err(Error::Disconnected),
        }
    }

    fn fail<T>(&mut self, error: Error) -> Result<T, Error> {
        self.state = State::Closed;
        self.in_flight.clear();
        self.txn = None;
        self.sasl = None;
        Err(error)
    }

    /// Reads replies from the start of `input`: returns how many bytes were
    /// used and what was found. Call again with the rest (keeping unused
    /// bytes for later) until [`Event::NeedInput`], writing
    /// [`output`](Self::output) whenever it is not empty.
    ///
    /// An error ends the session.
    pub fn advance(&mut self, input: &[u8]) -> Result<(usize, Event), Error> {
        match self.state {
            State::Closed => return Err(Error::Closed),
            State::TlsHandshake if !input.is_empty() => {
                return self.fail(Error::StartTlsInjection {
                    bytes: snippet(input),
                })
            }
            _ => {}
        }
        let mut used = 0;
        loop {
            let rest = input.get(used..).unwrap_or_default();
            let during = self
                .in_flight
                .front()
                .map_or(Step::Unsolicited, |c| c.step());
            let reply = match self.parser.parse(rest) {
                Ok((n, Some(reply))) => {
                    used += n;
                    reply
                }
                Ok((n, None)) => return Ok((used + n, Event::NeedInput)),
                Err(error) => return self.fail(Error::Reply { during, error }),
            };
            let after = input.get(used..).unwrap_or_default();
            match self.on_reply(reply, after) {
                Ok(Some(event)) => return Ok((used, event)),
                Ok(None) => {}
                Err(e) => return self.fail(e),
            }
        }
    }

    fn size_limit(&self) -> Option<u64> {
        self.caps.as_ref().and_then(|c| c.size_limit)
    }

    /// Handles one complete reply; `after` is what follows it in the input.
    fn on_reply(&mut self, reply: Reply, after: &[u8]) -> Result<Option<Event>, Error> {
        let Some(cmd) = self.in_flight.pop_front() else {
            if reply.code() == 421 {
                return Err(Refusal::classify(Step::Unsolicited, &reply, self.size_limit()).into());
            }
            let mut wire = Vec::new();
            reply.encode(&mut wire);
            return Err(Error::UnexpectedData {
                bytes: snippet(&wire),
            });
        };
        let step = cmd.step();
        let limit = self.size_limit();
        let refusal = || Refusal::classify(step, &reply, limit);
        let unexpected = || Error::UnexpectedReply {
            during: step,
            reply: reply.to_string(),
        };
        let code = reply.code();
        // 421: the server is closing the connection, whatever was asked.
        if code == 421 && cmd != Cmd::Quit {
            return Err(refusal().into());
        }
        let positive = reply.is_positive();
        let negative = code >= 400;
        match cmd {
            Cmd::Greeting => {
                if code == 220 {
                    self.greeting = Some(reply);
                    self.send_ehlo();
                    Ok(None)
                } else if negative {
                    Err(refusal().into())
                } else {
                    Err(unexpected())
                }
            }
            Cmd::Ehlo if positive => {
                self.caps = Some(Capabilities::from_ehlo(&reply));
                self.state = State::Ready;
                Ok(Some(Event::Ready))
            }
            Cmd::StartTls if code == 220 => {
                if !after.is_empty() {
                    return Err(Error::StartTlsInjection {
                        bytes: snippet(after),
                    });
                }
                self.state = State::TlsHandshake;
                Ok(Some(Event::StartTls))
            }
            Cmd::Ehlo | Cmd::StartTls if negative => Err(refusal().into()),
            Cmd::Auth => self.on_auth_reply(&reply, refusal, unexpected),
            Cmd::Mail | Cmd::Rcpt(_) | Cmd::Data | Cmd::Dot | Cmd::Rset => {
                let expected = match cmd {
                    Cmd::Data => code == 354 || negative,
                    _ => positive || negative,
                };
                if !expected {
                    return Err(unexpected());
                }
                let outcome = if negative { Some(refusal()) } else { None };
                Ok(self.on_envelope_reply(cmd, code, outcome, &reply))
            }
            Cmd::Quit => {
                self.state = State::Closed;
                Ok(Some(Event::Closed))
            }
            Cmd::Ehlo | Cmd::StartTls => Err(unexpected()),
        }
    }

    fn on_auth_reply(
        &mut self,
        reply: &Reply,
        refusal: impl FnOnce() -> Refusal,
        unexpected: impl FnOnce() -> Error,
    ) -> Result<Option<Event>, Error> {
        match reply.code() {
            334 => {
                if self.sasl_failure.is_some() {
                    // Cancelled with `*`: only a final reply may follow.
                    return Err(unexpected());
                }
                self.in_flight.push_front(Cmd::Auth);
                let answer = match self.sasl_initial.take() {
                    Some(initial) => Ok(initial),
                    None => {
                        let text = reply.lines().first().map_or(&[][..], |l| l);
                        match (decode_challenge(text), self.sasl.as_mut()) {
                            (Ok(challenge), Some(sasl)) => {
                                sasl.respond(&challenge).map_err(Error::from)
                            }
                            (Err(e), _) => Err(e.into()),
                            (_, None) => Err(unexpected()),
                        }
                    }
                };
                match answer {
                    // An empty answer is an empty line here; `=` is only
                    // for an empty initial response on the AUTH line.
                    Ok(bytes) => {
                        let line = base64::engine::general_purpose::STANDARD.encode(bytes);
                        self.out.extend_from_slice(line.as_bytes());
                    }
                    Err(e) => {
                        self.sasl_failure = Some(e);
                        self.out.push(b'*');
                    }
                }
                self.out.extend_from_slice(b"\r\n");
                Ok(None)
            }
            235 => {
                self.sasl = None;
                if let Some(e) = self.sasl_failure.take() {
                    // The server accepted an exchange we cancelled.
                    return Err(e);
                }
                self.authenticated = true;
                self.state = State::Ready;
                Ok(Some(Event::Authenticated))
            }
            code if code >= 400 => {
                self.sasl = None;
                self.state = State::Ready;
                let error = match self.sasl_failure.take() {
                    Some(e) => e,
                    None => refusal().into(),
                };
                Ok(Some(Event::Failed(error)))
            }
            _ => Err(unexpected()),
        }
    }

    fn on_envelope_reply(
        &mut self,
        cmd: Cmd,
        code: u16,
        outcome: Option<Refusal>,
        reply: &Reply,
    ) -> Option<Event> {
        let window = self.window();
        let Some(txn) = self.txn.as_mut() else {
            // A reply for a transaction already given up on: nothing to do.
            return None;
        };
        let mut done: Option<Event> = None;
        match cmd {
            Cmd::Mail => match outcome {
                None => txn.mail_ok = true,
                Some(r) => {
                    txn.failure = Some(r.into());
                    if window == 1 {
                        txn.queued.clear();
                        done = txn.failure.take().map(Event::Failed);
                    }
                }
            },
            Cmd::Rcpt(i) => {
                if let Some(slot) = txn.outcomes.get_mut(i) {
                    *slot = Some(outcome);
                }
            }
            Cmd::Data if code == 354 => {
                if txn.mail_ok && txn.any_accepted() && txn.failure.is_none() {
                    self.state = State::Data;
                    return Some(Event::SendData);
                }
                // A server that says 354 to a transaction without a valid
                // sender or recipient: end the empty message at once.
                if txn.failure.is_none() {
                    txn.failure = Some(txn.all_refused());
                }
                self.out.extend_from_slice(b".\r\n");
                self.in_flight.push_back(Cmd::Dot);
                return None;
            }
            Cmd::Data => {
                let refusal = outcome.map(Error::from);
                match txn.failure.take() {
                    // MAIL was refused: the server has no transaction.
                    Some(mail) => done = Some(Event::Failed(mail)),
                    None => {
                        txn.failure = match txn.any_accepted() {
                            true => refusal,
                            false => Some(txn.all_refused()),
                        };
                        self.out.extend_from_slice(b"RSET\r\n");
                        self.in_flight.push_back(Cmd::Rset);
                        return None;
                    }
                }
            }
            Cmd::Dot => {
                done = Some(match (txn.failure.take(), outcome) {
                    (Some(e), _) => Event::Failed(e),
                    (None, Some(r)) => Event::Failed(r.into()),
                    (None, None) => Event::Sent(Delivery {
                        recipients: txn
                            .to
                            .iter()
                            .zip(&txn.outcomes)
                            .map(|(a, o)| RecipientOutcome {
                                address: a.clone(),
                                refusal: o.clone().flatten(),
                            })
                            .collect(),
                        code,
                        text: reply.text_escaped(),
                    }),
                });
            }
            Cmd::Rset => {
                let failure = txn.failure.take().unwrap_or_else(|| txn.all_refused());
                done = Some(Event::Failed(failure));
            }
            _ => {}
        }
        if done.is_some() {
            self.txn = None;
            self.in_flight.clear();
            self.state = State::Ready;
            return done;
        }
        self.pump();
        None
    }
}

/// The base64 text of a SASL message (`=` for an empty one, RFC 4954).
fn encode_sasl(bytes: &[u8]) -> Vec<u8> {
    if bytes.is_empty() {
        return b"=".to_vec();
    }
    base64::engine::general_purpose::STANDARD
        .encode(bytes)
        .into_bytes()
}

fn forbidden(argument: &'static str, value: &str) -> Result<(), ArgumentError> {
    pop3_proto::check_line_safe(argument, value.as_bytes()).map_err(|e| match e {
        pop3_proto::EncodeError::ForbiddenByte { byte, .. } => {
            ArgumentError::ForbiddenByte { argument, byte }
        }
        _ => ArgumentError::Invalid {
            argument,
            reason: "it cannot be sent",
        },
    })
}

/// An address for `<...>`: no CR, LF, NUL (typed as such), no `<`, `>`,
/// spaces or other control characters, at most [`MAX_ADDRESS`] bytes.
fn check_address(argument: &'static str, address: &str, empty_ok: bool) -> Result<(), Error> {
    forbidden(argument, address)?;
    let invalid = |reason| Err(ArgumentError::Invalid { argument, reason }.into());
    if address.is_empty() && !empty_ok {
        return invalid("it is empty");
    }
    if address.len() > MAX_ADDRESS {
        return invalid("it is longer than 256 bytes");
    }
    if address.contains(['<', '>']) {
        return invalid("it contains '<' or '>' (give the bare address)");
    }
    if address.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return invalid("it contains spaces or control characters");
    }
    Ok(())
}

/// The EHLO name: a domain or address literal, one token.
fn check_name(name: &str) -> Result<(), Error> {
    let argument = "EHLO name";
    forbidden(argument, name)?;
    let invalid = |reason| Err(ArgumentError::Invalid { argument, reason }.into());
    if name.is_empty() {
        return invalid("it is empty");
    }
    if name.len() > 255 {
        return invalid("it is longer than 255 bytes");
    }
    if !name.bytes().all(|b| b.is_ascii_graphic()) {
        return invalid("it contains spaces, control or non-ASCII characters");
    }
    Ok(())
}
