//! The part of a driver that is the same for the blocking and the async
//! client: the read buffer, the session, the batch being run, deadlines and
//! progress. A driver only writes [`Engine::output`], reads into
//! [`Engine::spare`] within [`Engine::read_timeout`], and passes body chunks
//! to its sink; everything else happens here, once.

use std::time::{Duration, Instant};

use pop3_proto::escape::Escaped;
use pop3_proto::{ClientSession, Event, MsgNum, Payload, SessionConfig, State, Status};
use tracing::{debug, trace, Span};

use super::batch::{Answer, Batch, Cmd};
use crate::endpoint::Timeouts;
use crate::error::Error;

/// Largest read buffer: big reads for bulk transfers. It must also exceed
/// the protocol line cap, since a whole line has to fit before it can be
/// parsed (the cap is `max(MAX_BUFFER, 2 * max_line)`).
const MAX_BUFFER: usize = 64 * 1024;

/// The read buffer of an idle session. It doubles while reads fill it (a
/// fetch in progress) and returns to this size once an exchange is
/// complete, so a thousand idle sessions do not hold a thousand 64 KiB
/// buffers.
const IDLE_BUFFER: usize = 4 * 1024;

/// Where a message fetch stands, for progress bars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchProgress {
    /// Position of the message in the batch, from 0.
    pub index: usize,
    /// Messages in the batch.
    pub count: usize,
    /// The message number.
    pub msg: MsgNum,
    /// Body bytes received so far for this message.
    pub bytes: u64,
    /// Whether the message is complete.
    pub done: bool,
}

/// A progress callback kept by a client for the whole session
/// (`on_progress`). A callback that borrows from the caller goes to one
/// call instead: `retr_many_with_progress`, or the sync functions.
pub type ProgressFn = Box<dyn FnMut(&FetchProgress) + Send>;

/// What a driver must do next.
pub(crate) enum Action<'a> {
    /// Read more input (after writing the output).
    Read,
    /// A message body begins (RETR/TOP answered `+OK`).
    BodyStart { index: usize, msg: MsgNum },
    /// Body bytes for the message at `index`.
    Body { index: usize, chunk: &'a [u8] },
    /// The message at `index` is complete.
    BodyEnd { index: usize, octets: u64 },
    /// The batch is complete: its answers are in the batch.
    Done,
}

pub(crate) struct Engine {
    pub(crate) session: ClientSession,
    buf: Vec<u8>,
    /// How far `buf` may grow.
    max_buf: usize,
    /// The last read filled all the space it was given: more is waiting.
    read_was_full: bool,
    start: usize,
    end: usize,
    timeouts: Timeouts,
    deadline: Option<Instant>,
    progress: Option<ProgressFn>,
    body_bytes: u64,
    max_listing: usize,
    /// Whether the stream is encrypted (decides whether credentials may
    /// be sent in plaintext).
    is_tls: bool,
    /// One span for the session, and one per batch of commands inside it.
    span: Span,
    batch_span: Span,
    /// A CAPA to put in front of the next batch (the server is remembered
    /// as pipelining: it goes in the same flight).
    capa_due: bool,
    /// What this session's CAPA answers said, before and after login.
    seen: crate::pop3::ServerProfile,
}

impl Engine {
    pub(crate) fn new(config: SessionConfig, timeouts: Timeouts, span: Span, is_tls: bool) -> Self {
        let max_buf = MAX_BUFFER.max(config.max_line.saturating_mul(2));
        Self {
            session: ClientSession::new(config),
            buf: vec![0; IDLE_BUFFER.min(max_buf)],
            max_buf,
            read_was_full: false,
            start: 0,
            end: 0,
            timeouts,
            deadline: None,
            progress: None,
            body_bytes: 0,
            max_listing: crate::config::DEFAULT_MAX_LISTING,
            is_tls,
            batch_span: span.clone(),
            span,
            capa_due: false,
            seen: crate::pop3::ServerProfile::default(),
        }
    }

    /// The next batch starts with CAPA, in the same flight: the session
    /// assumes pipelining (the caller remembers the server so) until that
    /// CAPA's answer says.
    pub(crate) fn defer_capa(&mut self) {
        self.session.assume_pipelining();
        self.capa_due = true;
    }

    /// Whether the next batch starts with a deferred CAPA.
    pub(crate) fn capa_due(&self) -> bool {
        self.capa_due
    }

    /// Drops a deferred CAPA (the caller reads CAPA itself now).
    pub(crate) fn cancel_capa(&mut self) {
        self.capa_due = false;
    }

    /// What this session's CAPA answers said.
    pub(crate) fn seen(&self) -> &crate::pop3::ServerProfile {
        &self.seen
    }

    /// Caps the entries of one LIST or UIDL answer.
    pub(crate) fn with_max_listing(mut self, max: usize) -> Self {
        self.max_listing = max;
        self
    }

    pub(crate) fn is_tls(&self) -> bool {
        self.is_tls
    }

    /// The stream was upgraded to TLS (after STLS).
    pub(crate) fn tls_established(&mut self) {
        self.is_tls = true;
        self.session.tls_established();
    }

    pub(crate) fn set_progress(&mut self, progress: Option<ProgressFn>) {
        self.progress = progress;
    }

    /// Bytes the driver must write before reading.
    pub(crate) fn output(&self) -> &[u8] {
        self.session.output()
    }

    pub(crate) fn output_written(&mut self) {
        self.session.clear_output();
    }

    /// Where to read into: free space after the buffered bytes. The buffer
    /// doubles (up to its cap) when it is full of an incomplete line or
    /// when the last read filled it.
    pub(crate) fn spare(&mut self) -> &mut [u8] {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let full = self.end == self.buf.len();
        if (full || self.read_was_full) && self.buf.len() < self.max_buf {
            let grown = (self.buf.len() * 2).min(self.max_buf);
            self.buf.resize(grown, 0);
        }
        self.read_was_full = false;
        &mut self.buf[self.end..]
    }

    /// Back to the idle size once nothing is buffered.
    fn shrink_when_idle(&mut self) {
        if self.start == self.end && self.buf.len() > IDLE_BUFFER {
            self.start = 0;
            self.end = 0;
            self.buf = vec![0; IDLE_BUFFER];
        }
    }

    /// Whether the greeting is still awaited and not one byte has arrived
    /// (nothing is used before the greeting's line is complete).
    pub(crate) fn nothing_received(&self) -> bool {
        self.session.state() == State::Greeting && self.start == self.end
    }

    /// Records `n` bytes read into [`Engine::spare`]; 0 is end of input.
    pub(crate) fn filled(&mut self, n: usize) -> Result<(), Error> {
        if n == 0 {
            // The batch still waits for answers, so this is an error either
            // way; the session says what was cut off.
            self.session.handle_eof()?;
            return Err(pop3_proto::SessionError::Disconnected.into());
        }
        trace!(parent: &self.batch_span, bytes = n, "read");
        self.read_was_full = self.end + n == self.buf.len();
        self.end += n;
        Ok(())
    }

    /// How long the next read may wait: the idle limit, or less if the
    /// current response's deadline is nearer. An error once it has passed.
    pub(crate) fn read_timeout(&self, what: &str, now: Instant) -> Result<Duration, Error> {
        let idle = self.timeouts.idle;
        let Some(deadline) = self.deadline else {
            return Ok(idle);
        };
        let left = deadline.saturating_duration_since(now);
        if left.is_zero() {
            return Err(self.timeout(what));
        }
        Ok(left.min(idle))
    }

    pub(crate) fn timeout(&self, what: &str) -> Error {
        Error::Timeout {
            what: what.to_owned(),
            after: match self.deadline {
                Some(_) => self.timeouts.response,
                None => self.timeouts.idle,
            },
        }
    }

    /// A limit too large for the clock (`Duration::MAX`) is no deadline.
    fn restart_deadline(&mut self, now: Instant) {
        self.deadline = now.checked_add(self.timeouts.response);
    }

    /// Starts running `batch` at `now`: queues what may be sent now.
    pub(crate) fn begin(&mut self, batch: &mut Batch, now: Instant) -> Result<(), Error> {
        self.check_in_step()?;
        // The deferred CAPA goes in front of a batch that can be sent; one
        // whose first command is illegal now is refused as it would be
        // without it, and CAPA waits for the next.
        let sendable = batch.first_kind().is_some_and(|kind| {
            matches!(
                self.session.check_send(kind),
                Ok(()) | Err(pop3_proto::SessionError::MustWait { .. })
            )
        });
        if self.capa_due && sendable {
            self.capa_due = false;
            batch.prefaced(Cmd::Plain(pop3_proto::Command::Capa));
        }
        self.batch_span = tracing::debug_span!(parent: &self.span, "pop3.command", name = batch.name(), count = batch.len());
        self.restart_deadline(now);
        self.pump(batch)
    }

    /// A new exchange needs the connection at a clean boundary: every
    /// command sent before answered in full. An operation whose error left
    /// answers unread (a failing sink, a timeout, a cut connection) leaves
    /// the connection out of step for good.
    pub(crate) fn check_in_step(&self) -> Result<(), Error> {
        if self.session.state() == State::Closed {
            return Err(Error::Unusable {
                reason:
                    "the POP3 session has ended (the server closed it, or an earlier error did)",
            });
        }
        if self.session.pending() > 0 {
            return Err(Error::Unusable {
                reason: "an earlier operation stopped part-way through the server's answer (its error was returned then), so the connection is out of step with the server",
            });
        }
        Ok(())
    }

    fn pump(&mut self, batch: &mut Batch) -> Result<(), Error> {
        let _span = self.batch_span.enter();
        while let Some(cmd) = batch.next_to_send(&self.session) {
            debug!(command = ?cmd, "send");
            match cmd {
                Cmd::Plain(command) => self.session.send(command)?,
                Cmd::User(user) => self.session.send(&pop3_proto::Command::User(user))?,
                Cmd::Pass(pass) => self
                    .session
                    .send(&pop3_proto::Command::Pass(pass.expose()))?,
                Cmd::Apop { user, digest } => self
                    .session
                    .send(&pop3_proto::Command::Apop { user, digest })?,
                Cmd::Auth(sasl) => self.session.authenticate(sasl.clone())?,
            }
            batch.sent();
        }
        Ok(())
    }

    /// Processes buffered input for `batch` until the driver must act;
    /// `now` starts the next answer's deadline when one is complete.
    /// `progress` (the call's own callback) is told of every body chunk,
    /// after the session's ([`Engine::set_progress`]).
    pub(crate) fn next_action(
        &mut self,
        batch: &mut Batch,
        now: Instant,
        progress: &mut dyn FnMut(&FetchProgress),
    ) -> Result<Action<'_>, Error> {
        loop {
            if batch.is_done() {
                self.deadline = None;
                self.shrink_when_idle();
                return Ok(Action::Done);
            }
            // The event borrows the session; the span is borrowed beside it.
            let span = &self.batch_span;
            let (used, event) = self.session.advance(&self.buf[self.start..self.end])?;
            self.start += used;
            match event {
                Event::NeedInput => return Ok(Action::Read),
                Event::Greeting(greeting) => {
                    debug!(parent: span, status = ?greeting.status, text = %Escaped(&greeting.text), "greeting");
                    batch.greeted(greeting)?;
                }
                Event::Reply(reply) => {
                    debug!(parent: span, command = reply.command.name(), status = ?reply.status,
                        code = ?reply.code.as_ref().map(|c| c.as_str()), text = %Escaped(reply.text), "reply");
                    let multi = reply.multi_line_follows();
                    let answer = Answer::from_reply(&reply);
                    let index = batch.answered_count();
                    let msg = batch.message_of(index);
                    if multi {
                        batch.collect(answer);
                        if let (Some(msg), true) = (msg, answer_is_body(reply.command)) {
                            self.body_bytes = 0;
                            return Ok(Action::BodyStart { index, msg });
                        }
                    } else {
                        batch.finish(answer, self.session.capabilities().login_delay())?;
                        self.restart_deadline(now);
                        self.pump(batch)?;
                    }
                }
                Event::Capability(_) | Event::Language(_) => {}
                Event::ListEntries(entries) => {
                    let listing = &mut batch.current().listing;
                    listing.extend_from_slice(entries);
                    check_listing(listing.len(), self.max_listing)?;
                }
                Event::UidlEntries(entries) => {
                    let uids = &mut batch.current().uids;
                    uids.extend(entries.iter().map(|e| (e.msg, e.to_uid())));
                    check_listing(uids.len(), self.max_listing)?;
                }
                Event::Body(chunk) => {
                    let index = batch.answered_count();
                    let len = chunk.len();
                    // A chunk from the input ends where the used bytes end
                    // (pop3-proto's `Event::Body` says so); the only others
                    // are the "." or ".\r" of a dot the server forgot to
                    // stuff. Knowing where it ends, it is borrowed again from
                    // the buffer outside this loop.
                    let end = self.start;
                    let from_buffer = end
                        .checked_sub(len)
                        .is_some_and(|start| len > 2 || self.buf[start..end] == *chunk);
                    self.body_bytes += len as u64;
                    batch.current().octets = self.body_bytes;
                    report(
                        &mut self.progress,
                        progress,
                        batch,
                        index,
                        self.body_bytes,
                        false,
                    );
                    // Bodies earn time at the minimum rate (see Timeouts).
                    if let Some(deadline) = self.deadline {
                        let rate = self.timeouts.min_body_rate.max(1) as f64;
                        self.deadline =
                            deadline.checked_add(Duration::from_secs_f64(len as f64 / rate));
                    }
                    debug_assert!(!from_buffer || self.buf[end - len..end] == *chunk);
                    let chunk: &[u8] = if from_buffer {
                        &self.buf[end - len..end]
                    } else if len == 1 {
                        b"."
                    } else {
                        b".\r"
                    };
                    return Ok(Action::Body { index, chunk });
                }
                Event::End(kind) => {
                    if kind == pop3_proto::CommandKind::Capa {
                        let caps = self.session.capabilities().clone();
                        match self.session.state() {
                            State::Authorization => self.seen.before_login = caps,
                            State::Transaction => self.seen.after_login = caps,
                            _ => {}
                        }
                    }
                    let index = batch.answered_count();
                    let is_body = answer_is_body(kind) && batch.message_of(index).is_some();
                    let octets = self.body_bytes;
                    if is_body {
                        report(&mut self.progress, progress, batch, index, octets, true);
                    }
                    batch.end_collect(self.session.capabilities().login_delay())?;
                    self.restart_deadline(now);
                    self.pump(batch)?;
                    if is_body {
                        return Ok(Action::BodyEnd { index, octets });
                    }
                }
            }
        }
    }
}

fn report(
    session: &mut Option<ProgressFn>,
    call: &mut dyn FnMut(&FetchProgress),
    batch: &Batch,
    index: usize,
    bytes: u64,
    done: bool,
) {
    let Some(msg) = batch.message_of(index) else {
        return;
    };
    let progress = FetchProgress {
        index,
        count: batch.len(),
        msg,
        bytes,
        done,
    };
    if let Some(session) = session.as_mut() {
        session(&progress);
    }
    call(&progress);
}

/// A listing past the cap ends the session: the server would otherwise
/// decide how much memory the client uses.
fn check_listing(entries: usize, max: usize) -> Result<(), Error> {
    if entries > max {
        return Err(Error::ListingTooLong { limit: max });
    }
    Ok(())
}

fn answer_is_body(kind: pop3_proto::CommandKind) -> bool {
    matches!(
        kind,
        pop3_proto::CommandKind::Retr | pop3_proto::CommandKind::Top
    )
}

impl Answer {
    fn from_reply(reply: &pop3_proto::Reply<'_>) -> Self {
        let mut answer = Answer {
            command: Some(reply.command),
            ok: reply.status == Status::Ok,
            code: reply.code.clone(),
            text: reply.text.to_vec(),
            ..Answer::default()
        };
        match reply.payload {
            Payload::None => {}
            Payload::Stat(stat) => answer.stat = Some(stat),
            Payload::Listing(entry) => answer.listing.push(entry),
            Payload::UniqueId(entry) => answer.uids.push((entry.msg, entry.to_uid())),
        }
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use pop3_proto::Command;

    /// Runs `batch` against canned server bytes, handing them over as fast
    /// as the engine takes them; returns the largest buffer seen.
    fn drive(engine: &mut Engine, batch: &mut Batch, mut input: &[u8]) -> usize {
        let mut largest = engine.buf.len();
        engine.begin(batch, Instant::now()).unwrap();
        loop {
            match engine
                .next_action(batch, Instant::now(), &mut |_| {})
                .unwrap()
            {
                Action::Done => return largest,
                Action::Read => {
                    engine.output_written();
                    let spare = engine.spare();
                    let n = spare.len().min(input.len());
                    spare[..n].copy_from_slice(&input[..n]);
                    input = &input[n..];
                    engine.filled(n).unwrap();
                    largest = largest.max(engine.buf.len());
                }
                _ => {}
            }
        }
    }

    #[test]
    fn the_read_buffer_grows_for_a_fetch_and_shrinks_after() {
        let span = tracing::Span::none();
        let mut engine = Engine::new(SessionConfig::default(), Timeouts::default(), span, false);
        assert_eq!(engine.buf.len(), IDLE_BUFFER);
        drive(&mut engine, &mut Batch::greeting(), b"+OK hi\r\n");
        let login = vec![Cmd::User("u".into()), Cmd::Pass(Secret::new("p"))];
        drive(&mut engine, &mut Batch::strict(login), b"+OK\r\n+OK\r\n");
        let msg = MsgNum::new(1).unwrap();
        let mut answer = b"+OK\r\n".to_vec();
        answer.extend(b"x".repeat(78).iter().chain(b"\r\n").cycle().take(300_000));
        answer.extend_from_slice(b".\r\n");
        let mut retr = Batch::strict(vec![Cmd::Plain(Command::Retr(msg))]);
        let largest = drive(&mut engine, &mut retr, &answer);
        assert_eq!(largest, MAX_BUFFER, "big reads while the body streams");
        assert_eq!(engine.buf.len(), IDLE_BUFFER, "and back when it is done");
    }
}
