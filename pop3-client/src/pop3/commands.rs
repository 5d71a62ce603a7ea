//! What each operation sends and how its answers are read: the batches
//! of commands, and the answers turned into the values the clients return.

use pop3_proto::{Command, ListEntry, MsgNum, Stat, Uid};

use super::batch::{Answer, Batch, Cmd, ServerRefusal};
use super::sink::{zip_bodies, VecSink};
use crate::error::Error;
use crate::pop3::summary::MessageSummary;

/// One message's unique-id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UidlItem {
    /// Its number in this session.
    pub msg: MsgNum,
    /// Its unique-id, stable across sessions.
    pub uid: Uid,
}

pub(crate) fn one(command: Command<'static>) -> Batch {
    Batch::strict(vec![Cmd::Plain(command)])
}

/// The single answer of a strict one-command batch.
pub(crate) fn only(batch: Batch) -> Answer {
    batch.into_answers().pop().unwrap_or_default()
}

pub(crate) fn stat_of(answer: Answer) -> Result<Stat, Error> {
    answer.stat.ok_or(Error::MalformedAnswer {
        command: "STAT",
        problem: "came without its counts",
    })
}

pub(crate) fn listing_of(answer: Answer) -> Vec<ListEntry> {
    answer.listing
}

/// The one entry of a `LIST n` answer.
pub(crate) fn listing_one(answer: Answer) -> Result<ListEntry, Error> {
    answer
        .listing
        .into_iter()
        .next()
        .ok_or(Error::MalformedAnswer {
            command: "LIST n",
            problem: "held no entry",
        })
}

/// The one entry of a `UIDL n` answer.
pub(crate) fn uid_one(answer: Answer) -> Result<UidlItem, Error> {
    uids_of(answer)
        .into_iter()
        .next()
        .ok_or(Error::MalformedAnswer {
            command: "UIDL n",
            problem: "held no entry",
        })
}

pub(crate) fn uids_of(answer: Answer) -> Vec<UidlItem> {
    answer
        .uids
        .into_iter()
        .map(|(msg, uid)| UidlItem { msg, uid })
        .collect()
}

/// A batch fetching `msgs` (RETR each), pipelined when the server allows.
pub(crate) fn retr_many(msgs: &[MsgNum]) -> Batch {
    Batch::lenient(msgs.iter().map(|&m| Cmd::Plain(Command::Retr(m))).collect())
}

/// A batch fetching the header and the first `lines` body lines of `msgs`
/// (TOP), pipelined when allowed.
pub(crate) fn top_many(msgs: &[MsgNum], lines: u32) -> Batch {
    Batch::lenient(
        msgs.iter()
            .map(|&msg| Cmd::Plain(Command::Top { msg, lines }))
            .collect(),
    )
}

/// Headers collected by a `TOP n 0` batch, as summaries.
pub(crate) fn summaries_of(
    outcomes: Vec<Result<u64, ServerRefusal>>,
    sink: VecSink,
) -> Vec<Result<MessageSummary, ServerRefusal>> {
    zip_bodies(outcomes, sink)
        .into_iter()
        .map(|o| o.map(|header| MessageSummary::parse(&header)))
        .collect()
}

/// A batch deleting `msgs`.
pub(crate) fn dele_many(msgs: &[MsgNum]) -> Batch {
    Batch::lenient(msgs.iter().map(|&m| Cmd::Plain(Command::Dele(m))).collect())
}

/// Per-command outcome of a lenient batch: bytes received, or the refusal.
pub(crate) fn outcomes(batch: Batch) -> Vec<Result<u64, ServerRefusal>> {
    batch
        .into_answers()
        .into_iter()
        .map(|a| match a.error {
            Some(refusal) => Err(refusal),
            None => Ok(a.octets),
        })
        .collect()
}
