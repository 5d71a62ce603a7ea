//! A batch: a list of commands run through the session, pipelined as far as
//! the session's window allows (one at a time when the server does not
//! pipeline), with their answers collected. Every client operation, from
//! login to fetching a thousand messages, is a batch, so the blocking and
//! async clients share all of it.

use std::fmt;

use pop3_proto::sasl::SaslClient;
use pop3_proto::{
    ClientSession, Command, CommandKind, Greeting, ListEntry, MsgNum, RespCode, RespCodeKind, Stat,
    Status, Uid,
};

use crate::config::Secret;
use crate::error::Error;

/// One command of a batch, with owned arguments.
#[derive(Clone)]
pub(crate) enum Cmd {
    Plain(Command<'static>),
    User(String),
    Pass(Secret),
    Apop { user: String, digest: String },
    Auth(SaslClient),
}

impl fmt::Debug for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Plain(c) => c.fmt(f),
            Self::User(u) => write!(f, "USER {u:?}"),
            Self::Pass(_) => f.write_str("PASS <redacted>"),
            Self::Apop { user, .. } => write!(f, "APOP {user:?} <redacted>"),
            Self::Auth(sasl) => write!(f, "AUTH {}", sasl.mechanism()),
        }
    }
}

impl Cmd {
    fn kind(&self) -> CommandKind {
        match self {
            Self::Plain(c) => c.kind(),
            Self::User(_) => CommandKind::User,
            Self::Pass(_) => CommandKind::Pass,
            Self::Apop { .. } => CommandKind::Apop,
            Self::Auth(_) => CommandKind::Auth,
        }
    }

    fn message(&self) -> Option<MsgNum> {
        match self {
            Self::Plain(Command::Retr(m) | Command::Top { msg: m, .. }) => Some(*m),
            _ => None,
        }
    }
}

/// A command's answer, owned.
#[derive(Debug, Clone, Default)]
pub(crate) struct Answer {
    pub(crate) command: Option<CommandKind>,
    pub(crate) ok: bool,
    pub(crate) code: Option<RespCode>,
    pub(crate) text: Vec<u8>,
    pub(crate) stat: Option<Stat>,
    pub(crate) listing: Vec<ListEntry>,
    pub(crate) uids: Vec<(MsgNum, Uid)>,
    /// Body bytes received (RETR, TOP).
    pub(crate) octets: u64,
    /// The error an application acts on, for a `-ERR` answer.
    pub(crate) error: Option<ServerRefusal>,
}

/// A `-ERR` to one command of a batch: the batch goes on, the caller decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerRefusal {
    /// The command refused.
    pub command: CommandKind,
    /// Its response code, if any.
    pub code: Option<RespCode>,
    /// The server's text, escaped.
    pub text: String,
}

impl ServerRefusal {
    /// The refusal as an [`Error`].
    pub fn to_error(&self, login_delay: Option<u32>) -> Error {
        Error::from_reply(
            self.command,
            self.code.clone(),
            self.text.as_bytes(),
            login_delay,
        )
    }

    /// Whether the server said the problem is temporary (`[SYS/TEMP]`).
    pub fn is_temporary(&self) -> bool {
        self.code
            .as_ref()
            .is_some_and(|c| c.kind() == RespCodeKind::SysTemp)
    }
}

impl fmt::Display for ServerRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} refused", self.command.name())?;
        if let Some(code) = &self.code {
            write!(f, " {code}")?;
        }
        write!(f, ": \"{}\"", self.text)
    }
}

pub(crate) struct Batch {
    commands: Vec<Cmd>,
    /// Leading commands the engine put in front (a deferred CAPA): sent
    /// and read like the others, their answers are not the caller's, and a
    /// refusal of them is no error.
    preface: usize,
    sent: usize,
    answers: Vec<Answer>,
    current: Option<Answer>,
    stop_on_error: bool,
    stopped: Option<Error>,
    want_greeting: bool,
    greeting: Option<Greeting>,
}

impl Batch {
    /// Commands whose first refusal ends the batch with an error (login,
    /// single commands).
    pub(crate) fn strict(commands: Vec<Cmd>) -> Self {
        Self::new(commands, true)
    }

    /// Commands whose refusals are recorded per command (fetching or
    /// deleting many messages: one missing message must not stop the rest).
    pub(crate) fn lenient(commands: Vec<Cmd>) -> Self {
        Self::new(commands, false)
    }

    fn new(commands: Vec<Cmd>, stop_on_error: bool) -> Self {
        Self {
            answers: Vec::with_capacity(commands.len()),
            commands,
            preface: 0,
            sent: 0,
            current: None,
            stop_on_error,
            stopped: None,
            want_greeting: false,
            greeting: None,
        }
    }

    /// A batch that waits for the greeting.
    pub(crate) fn greeting() -> Self {
        let mut batch = Self::strict(Vec::new());
        batch.want_greeting = true;
        batch
    }

    /// Puts `cmd` in front, its answer kept from the caller; only before
    /// anything is sent.
    pub(crate) fn prefaced(&mut self, cmd: Cmd) {
        if self.sent == 0 && !self.want_greeting {
            self.commands.insert(0, cmd);
            self.preface += 1;
        }
    }

    /// The caller's first command's name, naming the batch in traces.
    pub(crate) fn name(&self) -> &'static str {
        match self.commands.get(self.preface) {
            _ if self.want_greeting => "greeting",
            Some(Cmd::Plain(c)) => c.kind().name(),
            Some(Cmd::User(_)) => "USER",
            Some(Cmd::Pass(_)) => "PASS",
            Some(Cmd::Apop { .. }) => "APOP",
            Some(Cmd::Auth(_)) => "AUTH",
            None => "none",
        }
    }

    /// The caller's commands (not the preface).
    pub(crate) fn len(&self) -> usize {
        self.commands.len() - self.preface
    }

    /// The kind of the caller's first command, if any.
    pub(crate) fn first_kind(&self) -> Option<CommandKind> {
        self.commands.get(self.preface).map(Cmd::kind)
    }

    pub(crate) fn next_to_send(&self, session: &ClientSession) -> Option<&Cmd> {
        if self.stopped.is_some() {
            return None;
        }
        let cmd = self.commands.get(self.sent)?;
        // One that must wait waits; an illegal one is sent, to be refused
        // with its error.
        match session.check_send(cmd.kind()) {
            Err(pop3_proto::SessionError::MustWait { .. }) => None,
            _ => Some(cmd),
        }
    }

    pub(crate) fn sent(&mut self) {
        self.sent += 1;
    }

    /// Answers complete so far, counted in the caller's commands (an
    /// answer to the preface counts as none): the index of the answer
    /// being read, as sinks and progress know it.
    pub(crate) fn answered_count(&self) -> usize {
        self.answers.len().saturating_sub(self.preface)
    }

    /// The message of the caller's command at `index`, if it names one.
    pub(crate) fn message_of(&self, index: usize) -> Option<MsgNum> {
        self.commands
            .get(self.preface + index)
            .and_then(Cmd::message)
    }

    pub(crate) fn is_done(&self) -> bool {
        if self.want_greeting {
            return self.greeting.is_some();
        }
        let all_answered = self.answers.len() == self.sent && self.current.is_none();
        all_answered && (self.stopped.is_some() || self.sent == self.commands.len())
    }

    pub(crate) fn greeted(&mut self, greeting: Greeting) -> Result<(), Error> {
        if greeting.status == Status::Err {
            let kind = greeting.code.as_ref().map(RespCode::kind);
            let server_text = pop3_proto::escape::snippet(&greeting.text);
            return Err(match kind {
                Some(RespCodeKind::InUse) => Error::InUse { server_text },
                _ => Error::Server {
                    command: "accept the connection",
                    temporary: kind == Some(RespCodeKind::SysTemp),
                    code: greeting.code,
                    server_text,
                },
            });
        }
        self.greeting = Some(greeting);
        Ok(())
    }

    /// The greeting received (an empty `+OK` one if the batch ended
    /// without, which `is_done` prevents).
    pub(crate) fn take_greeting(&mut self) -> Greeting {
        self.greeting.take().unwrap_or_else(|| Greeting {
            status: Status::Ok,
            code: None,
            text: Vec::new(),
            apop_timestamp: None,
        })
    }

    /// Starts collecting a multi-line answer.
    pub(crate) fn collect(&mut self, answer: Answer) {
        self.current = Some(answer);
    }

    /// The multi-line answer being collected.
    pub(crate) fn current(&mut self) -> &mut Answer {
        self.current.get_or_insert_with(Answer::default)
    }

    pub(crate) fn end_collect(&mut self, login_delay: Option<u32>) -> Result<(), Error> {
        let answer = self.current.take().unwrap_or_default();
        self.finish(answer, login_delay)
    }

    /// Records a complete answer; in a strict batch a refusal ends it.
    pub(crate) fn finish(
        &mut self,
        mut answer: Answer,
        login_delay: Option<u32>,
    ) -> Result<(), Error> {
        // A server without CAPA refuses the engine's own: not the caller's
        // error.
        if !answer.ok && self.answers.len() < self.preface {
            self.answers.push(answer);
            return Ok(());
        }
        if !answer.ok {
            let refusal = ServerRefusal {
                command: answer.command.unwrap_or(CommandKind::Noop),
                code: answer.code.clone(),
                text: pop3_proto::escape::snippet(&answer.text),
            };
            if self.stop_on_error {
                let error = refusal.to_error(login_delay);
                self.answers.push(answer);
                if self.answers.len() == self.sent {
                    // The first refusal is the one that explains (USER's,
                    // not PASS's after it in the same flight).
                    return Err(self.stopped.take().unwrap_or(error));
                }
                if self.stopped.is_some() {
                    return Ok(());
                }
                self.stopped = Some(error);
                return Ok(());
            }
            answer.error = Some(refusal);
        }
        self.answers.push(answer);
        match self.stopped.take() {
            Some(error) if self.answers.len() == self.sent => Err(error),
            other => {
                self.stopped = other;
                Ok(())
            }
        }
    }

    pub(crate) fn into_answers(mut self) -> Vec<Answer> {
        let preface = self.preface.min(self.answers.len());
        self.answers.drain(..preface);
        self.answers
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn refused(command: CommandKind, text: &str) -> Answer {
        Answer {
            command: Some(command),
            ok: false,
            text: text.as_bytes().to_vec(),
            ..Answer::default()
        }
    }

    /// USER and PASS in one flight, both refused: the error is USER's,
    /// the one that explains; a refused preface (a server without CAPA)
    /// is no error and not the caller's answer.
    #[test]
    fn the_first_refusal_of_a_flight_is_the_error_and_a_preface_is_not() {
        let mut batch = Batch::strict(vec![Cmd::User("u".into()), Cmd::Pass(Secret::new("p"))]);
        batch.prefaced(Cmd::Plain(Command::Capa));
        assert_eq!(batch.len(), 2);
        for _ in 0..3 {
            batch.sent();
        }
        batch
            .finish(refused(CommandKind::Capa, "no CAPA here"), None)
            .unwrap();
        assert_eq!(batch.answered_count(), 0);
        batch
            .finish(
                refused(CommandKind::User, "[AUTH] plaintext disallowed"),
                None,
            )
            .unwrap();
        let e = batch
            .finish(refused(CommandKind::Pass, "no username given"), None)
            .unwrap_err();
        assert!(e.to_string().contains("plaintext disallowed"), "{e}");
        assert_eq!(batch.into_answers().len(), 2);
    }
}
