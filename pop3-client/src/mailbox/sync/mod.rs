//! Incremental sync: fetch only what is new, exactly once, under a delete
//! policy.
//!
//! Messages are known by their UIDL unique-id (message numbers are never
//! identity). Each run follows one order, and the order is the guarantee:
//!
//! 1. at start, deliveries an earlier run began but did not record are
//!    reconciled against the sink (found: recorded; not found: dropped);
//! 2. per group of messages: the intent (UID and the sink's name for it) is
//!    recorded, the messages are fetched and written, the group is made
//!    durable in the sink at once (group commit), then the UIDs are recorded
//!    (in the same journal write as the next group's intents: one flush for
//!    both, since both come after this commit and before the next delivery);
//! 3. only then DELE (as the policy says), then QUIT, then the deletions are
//!    recorded.
//!
//! A process killed at any instant therefore loses nothing and, at its next
//! run, delivers nothing twice. [`plan`] decides what each session does,
//! without I/O; [`sync_blocking`] carries it out.
//!
//! ```no_run
//! use pop3_client::account::{Account, Credential};
//! use pop3_client::store::MaildirSink;
//! use pop3_client::sync::{state::StateFile, sync_blocking, SyncOptions};
//!
//! let account = Account::for_email("me", "me@gmail.com", Credential::app_password("xxxx"))?;
//! let mut state = StateFile::open("me.state", &account.state_key())?;
//! let mut maildir = MaildirSink::create("Maildir")?;
//! let options = SyncOptions { policy: account.delete_policy, ..SyncOptions::default() };
//! let report = sync_blocking(&account.client_config(), &account.credentials(), &mut state, &mut maildir, options, None)?;
//! println!("{} new, {} deleted", report.new, report.deleted);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod plan;
pub mod state;

use std::collections::HashMap;
use std::io;
use std::time::{SystemTime, UNIX_EPOCH};

use pop3_proto::{MsgNum, Uid};

use crate::config::{ClientConfig, Credentials};
use crate::error::Error;
use crate::mailbox::async_storage::{AsyncDeliverySink, AsyncStateStore};
use crate::mailbox::store::{Delivery, DeliverySink};
use crate::pop3::async_client::{AsyncMessageSink, Client as AsyncClient};
use crate::pop3::blocking::Client;
use crate::pop3::FetchProgress;
use crate::pop3::MessageSink;

pub use plan::{
    FailedMessage, FirstSync, KeptReason, Listed, Outcome, SessionPlan, StopSignal, StoppedEarly,
    SyncOptions, SyncReport, SyncRun,
};

/// A sync that failed: the error, and the report of what it did before
/// (stored, deleted, failed, quarantined): everything the report counts is
/// done and durable, so an application can show "200 stored, then the
/// connection was lost" rather than the error alone.
#[derive(Debug)]
pub struct SyncFailure {
    /// Why the sync stopped.
    pub error: Error,
    /// What it did before (boxed: an error stays small to pass around).
    pub report: Box<SyncReport>,
}

impl SyncFailure {
    /// The error's kind.
    pub fn kind(&self) -> crate::error::ErrorKind {
        self.error.kind()
    }

    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        self.error.is_transient()
    }
}

impl std::fmt::Display for SyncFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for SyncFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// The error alone, for callers that do not need the report.
impl From<SyncFailure> for Error {
    fn from(failure: SyncFailure) -> Self {
        failure.error
    }
}
use state::{StateChange, StateStore};

/// Asks for the whole of a message stored headers only (it was above
/// [`SyncOptions::headers_only_above`]): the next sync fetches it whole.
pub fn request_full_fetch(store: &mut dyn StateStore, uid: &Uid) -> io::Result<()> {
    StateStore::apply(
        store,
        &[StateChange::FullFetchRequested { uid: uid.clone() }],
    )
}

/// Asks for a message that failed or was quarantined again: its failures
/// are forgotten and the next sync tries it (for example after the size
/// cap was raised, or once the server can send it).
pub fn reprocess(store: &mut dyn StateStore, uid: &Uid) -> io::Result<()> {
    StateStore::apply(store, &[StateChange::Reprocess { uid: uid.clone() }])
}

/// Marks `uid` as deleted by the application, for the policy
/// [`crate::mailbox::account::DeletePolicy::WhenDeletedLocally`]: the next sync
/// deletes it on the server.
pub fn mark_deleted_locally(store: &mut dyn StateStore, uid: &Uid) -> io::Result<()> {
    StateStore::apply(store, &[StateChange::DeletedLocally { uid: uid.clone() }])
}

/// The state failed: the sync stops, nothing is deleted.
fn state_error(source: io::Error) -> Error {
    Error::Storage {
        what: "the sync state could not be read or written".into(),
        source,
    }
}

fn sink_error(source: io::Error) -> Error {
    Error::Storage {
        what: "a message could not be stored".into(),
        source,
    }
}

/// An error of the message store, carried through the client (which sees
/// only an I/O error) so that the sync can tell it from the network's.
#[derive(Debug)]
struct StoreFailed(io::Error);

impl std::fmt::Display for StoreFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for StoreFailed {}

fn store_failed(e: io::Error) -> io::Error {
    io::Error::new(e.kind(), StoreFailed(e))
}

/// The store's own error out of an error the client returned (a storage
/// error, with its source), or the error as it was.
fn storage_or(error: Error) -> Error {
    if from_store(&error).is_none() {
        return error;
    }
    match error {
        Error::Io(e) => match e.into_inner().map(|inner| inner.downcast::<StoreFailed>()) {
            Some(Ok(store)) => sink_error(store.0),
            _ => Error::Io(io::Error::other("the message store failed")),
        },
        other => other,
    }
}

/// The store's own error inside an error the client returned, if it is one.
fn from_store(error: &Error) -> Option<&io::Error> {
    match error {
        Error::Io(e) => e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<StoreFailed>())
            .map(|s| &s.0),
        _ => None,
    }
}

/// The clock of a sync: the injected time, or the system's.
fn now_of(options: &SyncOptions) -> u64 {
    options.now.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    })
}

/// Step 1 of every sync: deliveries begun by an earlier run are recorded if
/// the sink has them and dropped if it does not.
async fn reconcile<St: AsyncStateStore + ?Sized, Sk: AsyncDeliverySink + ?Sized>(
    run: &mut SyncRun,
    store: &mut St,
    sink: &mut Sk,
) -> Result<state::SyncState, Error> {
    let loaded = store.load().await.map_err(state_error)?;
    let mut changes = Vec::new();
    for intent in &loaded.pending {
        if sink.reconcile(&intent.delivery).await.map_err(sink_error)? {
            run.recovered();
            let (uid, at, octets) = (intent.uid.clone(), run.now(), intent.octets);
            changes.push(if intent.headers_only {
                StateChange::HeadersDelivered {
                    uid,
                    at,
                    octets,
                    delivery: intent.delivery.clone(),
                }
            } else {
                StateChange::Delivered { uid, at, octets }
            });
        } else {
            changes.push(StateChange::Abandoned {
                uid: intent.uid.clone(),
            });
        }
    }
    store.apply(&changes).await.map_err(state_error)?;
    // The state is read once; what is written after is applied to it here.
    let mut known = loaded;
    for change in &changes {
        known.apply(change);
    }
    // Headers-only copies whose whole message was stored by a run that
    // stopped before removing them.
    let replaced: Vec<(Uid, String)> = known
        .records
        .iter()
        .filter(|(_, r)| r.status != state::UidStatus::HeadersOnly)
        .filter_map(|(uid, r)| Some((uid.clone(), r.headers_delivery.clone()?)))
        .collect();
    for change in remove_copies(store, sink, &replaced).await? {
        known.apply(&change);
    }
    Ok(known)
}

/// Removes headers-only copies that whole messages have replaced (each is
/// recorded as whole already), then records their removal; returns what it
/// recorded.
async fn remove_copies<St: AsyncStateStore + ?Sized, Sk: AsyncDeliverySink + ?Sized>(
    store: &mut St,
    sink: &mut Sk,
    copies: &[(Uid, String)],
) -> Result<Vec<StateChange>, Error> {
    let mut removed = Vec::new();
    for (uid, name) in copies {
        sink.remove(name).await.map_err(sink_error)?;
        removed.push(StateChange::HeadersRemoved { uid: uid.clone() });
    }
    store.apply(&removed).await.map_err(state_error)?;
    Ok(removed)
}

/// Joins UIDL and LIST into the listing the plan reads (message order).
/// They must agree: a message number listed twice, or missing from either,
/// would fetch a message twice or never; the session is refused instead.
fn join_listing(
    uids: Vec<crate::pop3::UidlItem>,
    sizes: &[pop3_proto::ListEntry],
) -> Result<Vec<Listed>, Error> {
    let disagree = |detail: String| Error::ListingsDisagree { detail };
    let mut by_msg: HashMap<MsgNum, u64> = HashMap::with_capacity(sizes.len());
    for e in sizes {
        if by_msg.insert(e.msg, e.octets).is_some() {
            return Err(disagree(format!("LIST names message {} twice", e.msg)));
        }
    }
    if uids.len() != by_msg.len() {
        return Err(disagree(format!(
            "LIST names {} messages and UIDL {}",
            by_msg.len(),
            uids.len()
        )));
    }
    let mut listing = Vec::with_capacity(uids.len());
    for item in uids {
        let octets = by_msg.remove(&item.msg).ok_or_else(|| {
            disagree(format!(
                "UIDL names message {} that LIST does not (or twice)",
                item.msg
            ))
        })?;
        listing.push(Listed {
            octets,
            msg: item.msg,
            uid: item.uid,
        });
    }
    listing.sort_by_key(|l| l.msg);
    Ok(listing)
}

/// Without UIDL (only when allowed): every listed message, named by its
/// number in this session; nothing is remembered between runs.
fn listing_without_uids(sizes: &[pop3_proto::ListEntry]) -> Vec<Listed> {
    sizes
        .iter()
        .filter_map(|e| {
            Some(Listed {
                msg: e.msg,
                uid: Uid::new(format!("msg-{}", e.msg).as_bytes())?,
                octets: e.octets,
            })
        })
        .collect()
}

fn no_uidl_error(host: &str) -> Error {
    Error::Unsupported {
        host: host.to_owned(),
        detail: "UIDL, so messages cannot be told apart between runs and a sync could fetch them twice; allow \"fetch all, then delete\" to fetch everything and delete it from the server".into(),
    }
}

/// Passes a group's messages to the sink under their reserved names, and
/// notes which are complete and which one is in flight, so that a failure
/// in the middle of the group can be pinned on its message.
struct GroupSink<'a, Sk: ?Sized> {
    sink: &'a mut Sk,
    names: &'a [String],
    listed: &'a [Listed],
    headers_only: bool,
    progress: &'a mut GroupProgress,
}

/// Where a group's fetch stands.
#[derive(Debug, Default)]
struct GroupProgress {
    /// The messages complete in the sink (index, bytes, what identifies
    /// it), waiting for commit.
    ended: Vec<(usize, u64, Option<state::Identity>)>,
    /// The message begun and not yet complete.
    current: Option<usize>,
    /// Keep each message's header to record what identifies it (when the
    /// policy deletes: see [`state::UidRecord::identity`]).
    identify: bool,
    /// The current message's header so far (at most [`HEADER_CAP`]).
    header: Vec<u8>,
}

/// The most of a header kept to identify a message.
const HEADER_CAP: usize = 64 * 1024;

impl GroupProgress {
    fn keep_header(&mut self, chunk: &[u8]) {
        let complete =
            |h: &[u8]| h.windows(2).any(|w| w == b"\n\n") || h.windows(4).any(|w| w == b"\r\n\r\n");
        if !self.identify || self.header.len() >= HEADER_CAP || complete(&self.header) {
            return;
        }
        let room = HEADER_CAP - self.header.len();
        self.header
            .extend_from_slice(&chunk[..chunk.len().min(room)]);
    }

    fn identity(&mut self) -> Option<state::Identity> {
        if !self.identify {
            return None;
        }
        let summary =
            crate::pop3::summary::MessageSummary::parse(&std::mem::take(&mut self.header));
        Some(state::Identity {
            message_id: summary.message_id?,
            date: summary.date,
        })
    }
}

impl<Sk: AsyncDeliverySink + ?Sized> GroupSink<'_, Sk> {
    async fn begin_named(&mut self, index: usize) -> io::Result<()> {
        let (Some(name), Some(listed)) = (self.names.get(index), self.listed.get(index)) else {
            return Err(io::Error::other("a message outside the group"));
        };
        self.progress.current = Some(index);
        self.progress.header.clear();
        let delivery = Delivery {
            name,
            uid: &listed.uid,
            listed_octets: listed.octets,
            headers_only: self.headers_only,
        };
        self.sink.begin(&delivery).await.map_err(store_failed)
    }

    async fn write_chunk(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.progress.keep_header(chunk);
        self.sink.write(chunk).await.map_err(store_failed)
    }

    async fn end_current(&mut self, index: usize, octets: u64) -> io::Result<()> {
        self.sink.end().await.map_err(store_failed)?;
        self.progress.current = None;
        let identity = self.progress.identity();
        self.progress.ended.push((index, octets, identity));
        Ok(())
    }
}

/// The blocking client's sink: the steps' futures run to their end here (a
/// blocking sink's at once).
impl<Sk: AsyncDeliverySink + ?Sized> MessageSink for GroupSink<'_, Sk> {
    fn begin(&mut self, index: usize, _: MsgNum) -> io::Result<()> {
        crate::timer::block_on(self.begin_named(index))
    }
    fn write(&mut self, _: usize, chunk: &[u8]) -> io::Result<()> {
        crate::timer::block_on(self.write_chunk(chunk))
    }
    fn end(&mut self, index: usize, octets: u64) -> io::Result<()> {
        crate::timer::block_on(self.end_current(index, octets))
    }
}

impl<Sk: AsyncDeliverySink + ?Sized> AsyncMessageSink for GroupSink<'_, Sk> {
    async fn begin(&mut self, index: usize, _: MsgNum) -> io::Result<()> {
        self.begin_named(index).await
    }
    async fn write(&mut self, _: usize, chunk: &[u8]) -> io::Result<()> {
        self.write_chunk(chunk).await
    }
    async fn end(&mut self, index: usize, octets: u64) -> io::Result<()> {
        self.end_current(index, octets).await
    }
}

/// Takes a fetched message and keeps nothing (known messages fetched again
/// only so that the server pops them).
struct Discard;

impl MessageSink for Discard {
    fn write(&mut self, _: usize, _: &[u8]) -> io::Result<()> {
        Ok(())
    }
}

impl AsyncMessageSink for Discard {
    async fn write(&mut self, _: usize, _: &[u8]) -> io::Result<()> {
        Ok(())
    }
}

/// Whether `host` serves mail in slices and pops what was fetched, as
/// Gmail's normal mode does (not its `recent:` mode, which the plan knows
/// from the user name).
fn serves_slices(host: &str) -> bool {
    host.trim_end_matches('.')
        .eq_ignore_ascii_case("pop.gmail.com")
}

/// Whether a greeting is Gmail's (`+OK Gpop ready for requests from ...`).
fn gmail_greeting(greeting: &pop3_proto::Greeting) -> bool {
    greeting.text.starts_with(b"Gpop ")
}

/// What an error in the middle of a group says about the message in
/// flight, when it is that message's fault (it is then counted against
/// it, and the rest of the mailbox goes on); `None` when the sync must
/// stop (a timeout before anything arrived, the state or a full disk).
fn fault_of_message(error: &Error) -> Option<Outcome> {
    match error {
        Error::Protocol(pop3_proto::SessionError::BodyTooLarge { limit }) => Some(Outcome::Failed(
            format!("too big: its body did not end within the limit of {limit} bytes"),
        )),
        Error::ConnectionLost(_) => Some(Outcome::Failed(format!(
            "the connection was lost in the middle of it ({error})"
        ))),
        // A stall may be the network's, not the message's: the rest goes
        // on, and the message is tried again without counting it.
        Error::Timeout { .. } => Some(Outcome::Deferred(format!(
            "the server stopped sending it ({error})"
        ))),
        // A store that refuses this message's content (not a failing disk).
        _ => from_store(error)
            .filter(|e| {
                matches!(
                    e.kind(),
                    io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput
                )
            })
            .map(|e| Outcome::Failed(format!("the message store refused it: {e}"))),
    }
}

/// How a group ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GroupEnd {
    /// The session goes on.
    Done,
    /// A message broke the session: what was complete is kept, the
    /// message's failure recorded, and the rest goes on in another session.
    SessionBroken,
}

/// Everything a sync does between two I/O calls, shared by the blocking
/// and async drivers: they only connect, list, fetch, delete and quit as
/// this tells them. Generic over the store and the sink (rather than
/// `dyn`) so that the async sync's future is `Send` when they are.
struct SyncEngine<'a, St: ?Sized, Sk: ?Sized> {
    run: SyncRun,
    store: &'a mut St,
    sink: &'a mut Sk,
    known: state::SyncState,
    with_uids: bool,
    /// The names reserved for the group being fetched.
    names: Vec<String>,
    /// The records of the group last made durable, written together with
    /// the next group's intents (one journal flush for both: both follow
    /// that group's commit and precede the next group's delivery), or alone
    /// after the last group, before any DELE.
    unwritten: Vec<StateChange>,
    /// Written to the store since `known` was brought up to date: applied
    /// to it where a session ends, instead of reading the whole state again
    /// (a mailbox kept on the server for years holds 10^5 UIDs).
    written: Vec<StateChange>,
    /// The current session's listing.
    listing: Vec<Listed>,
}

/// One group about to be fetched: its message numbers and reserved names.
struct Group {
    msgs: Vec<MsgNum>,
    names: Vec<String>,
    /// The messages as listed: each delivery's UID and size.
    listed: Vec<Listed>,
    headers_only: bool,
    progress: GroupProgress,
}

impl<'a, St: AsyncStateStore + ?Sized, Sk: AsyncDeliverySink + ?Sized> SyncEngine<'a, St, Sk> {
    /// Refuses what cannot work, then reconciles an earlier run's
    /// interrupted deliveries.
    async fn start(
        options: SyncOptions,
        user: &str,
        store: &'a mut St,
        sink: &'a mut Sk,
    ) -> Result<Self, Error> {
        let now = now_of(&options);
        let mut run = SyncRun::new(options, now, user)?;
        let known = reconcile(&mut run, store, sink).await?;
        Ok(Self {
            run,
            store,
            sink,
            known,
            with_uids: true,
            names: Vec::new(),
            unwritten: Vec::new(),
            written: Vec::new(),
            listing: Vec::new(),
        })
    }

    /// A follow-up session that cannot be opened ends the sync well when
    /// the failure is passing (a login too soon, a mailbox still locked by
    /// the session that just ended, the network): everything stored so far
    /// is recorded, and the report says why it stopped.
    fn login_refused(&mut self, e: Error) -> Result<(), Error> {
        if !self.run.any_session() {
            return Err(e);
        }
        match e {
            Error::LoginDelay { seconds, .. } => {
                self.run.login_delayed(seconds);
                Ok(())
            }
            e if e.is_transient() => {
                self.run.follow_up_failed(e.to_string());
                Ok(())
            }
            e => Err(e),
        }
    }

    /// Gmail serves its mail in slices of about 250 and pops what was
    /// fetched: a first sync that leaves mail out would see the rest of it
    /// as new in later slices, so only "all" is taken there; Gmail's own
    /// setting does the rest.
    fn check_first_sync(&self) -> Result<(), Error> {
        let options = self.run.options();
        if options.gmail_slices == Some(true)
            && options.first_sync != FirstSync::All
            && self.known.is_new()
        {
            return Err(Error::invalid_setting(
                "first_sync",
                "cannot leave mail out at Gmail, which serves POP mail in slices; choose \"all\" here and, in Gmail's settings (Forwarding and POP/IMAP), \"Enable POP for mail that arrives from now on\"",
            ));
        }
        Ok(())
    }

    /// A session logged in and listed its messages: plans it.
    async fn listed(
        &mut self,
        login_delay: Option<u32>,
        sizes: &[pop3_proto::ListEntry],
        uids: Result<Vec<crate::pop3::UidlItem>, Error>,
        host: &str,
    ) -> Result<SessionPlan, Error> {
        let first = !self.run.any_session();
        self.check_first_sync()?;
        self.run.session_started(login_delay);
        let listing = match uids {
            Ok(uids) if self.with_uids => join_listing(uids, sizes)?,
            // The mode is chosen once, in the first session.
            Ok(_) => listing_without_uids(sizes),
            Err(e) if !self.with_uids => {
                let _ = e;
                listing_without_uids(sizes)
            }
            // Only a lasting refusal in the first session means "no UIDL";
            // a temporary one, or one later, is an error like any other.
            Err(Error::Server {
                temporary: false, ..
            }) if first => {
                if !self.run.options().allow_without_uidl {
                    return Err(no_uidl_error(host));
                }
                if self.run.options().policy
                    != crate::mailbox::account::DeletePolicy::AfterRetrieval
                {
                    return Err(Error::Unsupported {
                        host: host.to_owned(),
                        detail: "UIDL: \"fetch all, then delete\" needs the delete policy after-retrieval (without UIDL nothing can be kept on the server without fetching it again)".into(),
                    });
                }
                self.with_uids = false;
                self.run.without_uidl();
                listing_without_uids(sizes)
            }
            Err(e) => return Err(e),
        };
        self.listing = listing;
        self.plan_session().await
    }

    /// Plans the session from its listing and records the housekeeping.
    async fn plan_session(&mut self) -> Result<SessionPlan, Error> {
        let empty = state::SyncState::default();
        let known = if self.with_uids { &self.known } else { &empty };
        let plan = self.run.plan(known, &self.listing);
        self.record(&plan.housekeeping).await?;
        Ok(plan)
    }

    /// The headers of the messages listed with another size than stored:
    /// those that show the same message are deleted (their new size
    /// recorded), the others kept.
    async fn verified(
        &mut self,
        plan: &mut SessionPlan,
        headers: Vec<Result<crate::pop3::summary::MessageSummary, crate::pop3::ServerRefusal>>,
    ) -> Result<(), Error> {
        let mut changes = Vec::new();
        for (item, header) in plan.verify_before_delete.iter().zip(headers) {
            let recorded = self
                .known
                .records
                .get(&item.uid)
                .and_then(|r| r.identity.as_ref());
            let same = match (recorded, header.ok()) {
                (Some(id), Some(seen)) => {
                    seen.message_id.as_deref() == Some(id.message_id.as_str())
                        && (id.date.is_none() || seen.date == id.date)
                }
                _ => false,
            };
            if let Some(change) = self.run.verified(item, same) {
                changes.push(change);
                plan.delete.push(item.clone());
            }
        }
        self.record(&changes).await
    }

    /// A first sync by date read the headers it asked for: plans again.
    async fn dated(
        &mut self,
        needs_dates: &[Listed],
        headers: Vec<Result<crate::pop3::summary::MessageSummary, crate::pop3::ServerRefusal>>,
    ) -> Result<SessionPlan, Error> {
        let dates: Vec<Option<i64>> = headers
            .into_iter()
            .map(|h| h.ok().and_then(|s| s.date))
            .collect();
        self.run.dated(needs_dates, &dates);
        self.plan_session().await
    }

    async fn record(&mut self, changes: &[StateChange]) -> Result<(), Error> {
        if self.with_uids {
            self.store.apply(changes).await.map_err(state_error)?;
            self.written.extend_from_slice(changes);
        }
        Ok(())
    }

    /// `known` as the store now holds it: what was read at the start with
    /// every change written since.
    fn catch_up(&mut self) {
        for change in self.written.drain(..) {
            self.known.apply(&change);
        }
    }

    /// Writes the records still held back (before any DELE, and when a
    /// sync stops).
    async fn flush_records(&mut self) -> Result<(), Error> {
        let records = std::mem::take(&mut self.unwritten);
        self.record(&records).await
    }

    /// Before a group is fetched (whole, or `headers_only`): names
    /// reserved, intents recorded (with the previous group's records, in
    /// one write).
    async fn begin_group(&mut self, group: &[Listed], headers_only: bool) -> Result<Group, Error> {
        // Nothing is staged between groups, unless an async sync was
        // dropped mid-group: its leftovers go (their intents reconcile).
        self.sink.rollback().await;
        let mut names = Vec::with_capacity(group.len());
        for listed in group {
            match self.sink.reserve(&listed.uid).await {
                Ok(name) => names.push(name),
                Err(e) => {
                    self.flush_records().await?;
                    return Err(sink_error(e));
                }
            }
        }
        let mut changes = std::mem::take(&mut self.unwritten);
        changes.extend(group.iter().zip(&names).map(|(l, name)| {
            StateChange::Intent(state::Intent {
                uid: l.uid.clone(),
                delivery: name.clone(),
                headers_only,
                octets: l.octets,
            })
        }));
        self.record(&changes).await?;
        self.names.clone_from(&names);
        Ok(Group {
            msgs: group.iter().map(|l| l.msg).collect(),
            names,
            listed: group.to_vec(),
            headers_only,
            progress: GroupProgress {
                identify: self.with_uids && self.run.options().policy.deletes(),
                ..GroupProgress::default()
            },
        })
    }

    fn group_sink<'s>(&'s mut self, group: &'s mut Group) -> (&'s [MsgNum], GroupSink<'s, Sk>) {
        let sink = GroupSink {
            sink: &mut *self.sink,
            names: &group.names,
            listed: &group.listed,
            headers_only: group.headers_only,
            progress: &mut group.progress,
        };
        (&group.msgs, sink)
    }

    /// After a group was fetched: durable in the sink at once, then
    /// recorded. A message the server refused is a failed attempt at it;
    /// an error in the middle of a message that is that message's fault
    /// ([`fault_of_message`]) keeps what was complete, counts the failure,
    /// and ends the session, so the rest goes on in another.
    async fn end_group(
        &mut self,
        group: &[Listed],
        fetched: &Group,
        outcomes: Result<Vec<Result<u64, crate::pop3::ServerRefusal>>, Error>,
        headers_only: bool,
    ) -> Result<GroupEnd, Error> {
        let (outcomes, end) = match outcomes {
            Ok(o) => (
                o.iter()
                    .map(|o| match o {
                        Ok(octets) => Outcome::Stored(*octets),
                        Err(refusal) if refusal.is_temporary() => {
                            Outcome::Deferred(format!("the server cannot send it now: {refusal}"))
                        }
                        Err(refusal) => {
                            Outcome::Failed(format!("the server refused to send it: {refusal}"))
                        }
                    })
                    .collect::<Vec<_>>(),
                GroupEnd::Done,
            ),
            Err(e) => {
                let progress = &fetched.progress;
                let Some((culprit, fault)) = progress.current.zip(fault_of_message(&e)) else {
                    self.sink.rollback().await;
                    // The store's own failure is a storage error, not the
                    // network's.
                    return Err(storage_or(e));
                };
                let outcomes = (0..group.len())
                    .map(|i| match progress.ended.iter().find(|(at, ..)| *at == i) {
                        Some((_, octets, _)) => Outcome::Stored(*octets),
                        None if i == culprit => fault.clone(),
                        None => Outcome::NotTried,
                    })
                    .collect();
                (outcomes, GroupEnd::SessionBroken)
            }
        };
        // Only the complete messages are staged; the one cut short is
        // dropped after the commit.
        let committed = self.sink.commit().await;
        if end == GroupEnd::SessionBroken || committed.is_err() {
            self.sink.rollback().await;
        }
        committed.map_err(sink_error)?;
        // Recorded with the next group's intents, or before any DELE.
        let failures = &self.known.failures;
        self.unwritten = if headers_only {
            self.run
                .stored_headers(group, &self.names, &outcomes, failures)
        } else {
            self.run.stored(group, &outcomes, failures)
        };
        // What identifies each message stored, after its record.
        for (index, _, identity) in &fetched.progress.ended {
            if let (Some(identity), Some(item), false) = (identity, group.get(*index), headers_only)
            {
                self.unwritten.push(StateChange::Identified {
                    uid: item.uid.clone(),
                    identity: identity.clone(),
                });
            }
        }
        Ok(end)
    }

    /// The sync is over: its report, or its error with the report of what
    /// it did before (what it stored is recorded first, when the state
    /// still takes it).
    async fn finish(mut self, outcome: Result<(), Error>) -> Result<SyncReport, SyncFailure> {
        match outcome {
            Ok(()) => Ok(self.run.finish()),
            Err(error) => {
                let _ = self.flush_records().await;
                Err(SyncFailure {
                    error,
                    report: Box::new(self.run.finish()),
                })
            }
        }
    }

    /// A message broke the session: what it stored is recorded, and the
    /// next session (opened without DELE or QUIT on this one) plans anew.
    async fn session_broken(&mut self) -> Result<bool, Error> {
        self.flush_records().await?;
        self.run.session_broken();
        self.catch_up();
        Ok(self.run.another_session())
    }

    /// What to DELE before QUIT, once everything stored is recorded (and
    /// the headers-only copies that this session's whole messages replace
    /// are removed).
    async fn deletions(&mut self, plan: &SessionPlan) -> Result<Vec<Listed>, Error> {
        self.flush_records().await?;
        if self.with_uids {
            let stored = self.run.stored_in_session();
            let replaced: Vec<(Uid, String)> = plan
                .replaces_headers
                .iter()
                .filter(|(uid, _)| stored.iter().any(|l| &l.uid == uid))
                .cloned()
                .collect();
            let removed = remove_copies(&mut *self.store, &mut *self.sink, &replaced).await?;
            self.written.extend(removed);
        }
        // Without UIDL the policy is after-retrieval: what was stored goes.
        let deletions = self.run.deletions(plan);
        // Nothing deleted by a sync that may no longer write (its lease
        // lost): the session is then dropped without QUIT.
        if !deletions.is_empty() {
            self.store.confirm_writer().await.map_err(state_error)?;
        }
        Ok(deletions)
    }

    /// Right before a QUIT that changes the server: whether this sync may
    /// still change it (its lease held).
    async fn confirm_writer(&mut self) -> Result<(), Error> {
        self.store.confirm_writer().await.map_err(state_error)
    }

    /// QUIT committed `deleted`: records it; says whether to open another
    /// session.
    async fn quit_done(&mut self, deleted: &[Listed]) -> Result<bool, Error> {
        let changes = self.run.deleted(deleted);
        self.record(&changes).await?;
        self.catch_up();
        Ok(self.run.another_session())
    }
}

/// The messages whose DELE the server accepted.
fn accepted(
    deletions: &[Listed],
    outcomes: Vec<Result<(), crate::pop3::ServerRefusal>>,
) -> Vec<Listed> {
    deletions
        .iter()
        .zip(outcomes)
        .filter(|(_, o)| o.is_ok())
        .map(|(l, _)| l.clone())
        .collect()
}

/// The sessions of one sync, written once for both drivers: connect (as
/// often as the plan asks), list, fetch the groups into the sink, delete,
/// quit. `$connect` opens and logs in one session; `.await` is given for
/// the async driver.
macro_rules! sync_sessions {
    ($steps:ident, $connect:expr, $host:expr, $progress:ident; $(.$aw:ident)?) => {
        loop {
            let mut client = match $connect$(.$aw)? {
                Ok(client) => client,
                Err(e) => {
                    $steps.login_refused(e)?;
                    break;
                }
            };
            if gmail_greeting(client.greeting()) {
                $steps.run.serves_slices();
            }
            let (sizes, uids) = client.listing()$(.$aw)??;
            let login_delay = client.capabilities().login_delay();
            let mut plan = $steps.listed(login_delay, &sizes, uids, $host).await?;
            if !plan.needs_dates.is_empty() {
                let msgs: Vec<MsgNum> = plan.needs_dates.iter().map(|l| l.msg).collect();
                let headers = client.summaries(&msgs)$(.$aw)??;
                plan = $steps.dated(&plan.needs_dates, headers).await?;
            }
            let mut broken = false;
            for group in &plan.headers {
                if $steps.run.stopping() {
                    break;
                }
                let mut batch = $steps.begin_group(group, true).await?;
                let (msgs, mut sink) = $steps.group_sink(&mut batch);
                let outcomes = client.top_many(msgs, 0, &mut sink)$(.$aw)?;
                if $steps.end_group(group, &batch, outcomes, true).await? == GroupEnd::SessionBroken {
                    broken = true;
                    break;
                }
            }
            for group in plan.fetch.iter().filter(|_| !broken) {
                if $steps.run.stopping() {
                    break;
                }
                let mut batch = $steps.begin_group(group, false).await?;
                let (msgs, mut sink) = $steps.group_sink(&mut batch);
                let outcomes = match $progress.as_deref_mut() {
                    Some(progress) => {
                        client
                            .retr_many_with_progress(msgs, &mut sink, progress)
                            $(.$aw)?
                    }
                    None => client.retr_many(msgs, &mut sink)$(.$aw)?,
                };
                if $steps.end_group(group, &batch, outcomes, false).await? == GroupEnd::SessionBroken {
                    broken = true;
                    break;
                }
            }
            if broken {
                // The connection is out of step: dropped without QUIT, so
                // the server deletes nothing of this session.
                drop(client);
                if !$steps.session_broken().await? {
                    break;
                }
                continue;
            }
            if !plan.verify_before_delete.is_empty() {
                let msgs: Vec<MsgNum> = plan.verify_before_delete.iter().map(|l| l.msg).collect();
                let headers = client.summaries(&msgs)$(.$aw)??;
                $steps.verified(&mut plan, headers).await?;
            }
            if !plan.pop_again.is_empty() {
                let msgs: Vec<MsgNum> = plan.pop_again.iter().map(|l| l.msg).collect();
                let outcomes = client.retr_many(&msgs, &mut Discard)$(.$aw)??;
                $steps.run.popped_again(outcomes.iter().filter(|o| o.is_ok()).count());
            }
            let deletions = $steps.deletions(&plan).await?;
            let mut deleted = Vec::new();
            if !deletions.is_empty() {
                let msgs: Vec<MsgNum> = deletions.iter().map(|l| l.msg).collect();
                deleted = accepted(&deletions, client.dele_many(&msgs)$(.$aw)??);
            }
            $steps.run.server_seen(client.server_profile());
            // A session that changed nothing on the server (no DELE, no
            // RETR for a server that pops at QUIT) need not wait for QUIT's
            // answer: one round trip less on the most common poll.
            let changed = !deletions.is_empty()
                || !plan.pop_again.is_empty()
                || (!(plan.fetch.is_empty() && plan.headers.is_empty()) && $steps.run.serves_slices_now());
            if changed {
                // Still this sync's to change: else dropped without QUIT.
                $steps.confirm_writer().await?;
                client.quit()$(.$aw)??;
            } else {
                client.quit_without_waiting()$(.$aw)??;
            }
            if !$steps.quit_done(&deleted).await? {
                break;
            }
        }
    };
}

/// Syncs a mailbox with the blocking client: connects (as often as the
/// server needs, see [`SyncRun::another_session`]), fetches what `store`
/// does not know into `sink`, applies the delete policy, and reports. A
/// failure comes with the report of what was done before it
/// ([`SyncFailure`]).
/// `progress` is called for every chunk of every message; it may borrow
/// from the caller.
pub fn sync_blocking(
    config: &ClientConfig,
    credentials: &Credentials,
    store: &mut dyn StateStore,
    sink: &mut dyn DeliverySink,
    options: SyncOptions,
    mut progress: Option<&mut (dyn FnMut(&FetchProgress) + Send)>,
) -> Result<SyncReport, SyncFailure> {
    // A message listed above the client's own cap is decided before RETR.
    let mut options = options;
    if let Some(cap) = config.session.max_body {
        options.max_message = Some(options.max_message.map_or(cap, |m| m.min(cap)));
    }
    if serves_slices(&config.host) {
        options.gmail_slices.get_or_insert(true);
    }
    // The steps are written once, as async; a blocking store's futures
    // are ready at once, and the blocking client never waits on them.
    crate::timer::block_on(async {
        let mut engine = SyncEngine::start(options, &credentials.user, store, sink)
            .await
            .map_err(nothing_done)?;
        let outcome = async {
            sync_sessions!(engine, Client::connect(config, credentials), &config.host, progress;);
            Ok(())
        }
        .await;
        engine.finish(outcome).await
    })
}

/// A sync that failed before it began.
fn nothing_done(error: Error) -> SyncFailure {
    SyncFailure {
        error,
        report: Box::default(),
    }
}

/// Syncs a mailbox with the async client, exactly as [`sync_blocking`]
/// does (the same plan and the same steps; only the I/O is awaited).
/// `connect` opens and logs in one session each time it is called, so any
/// runtime and any transport serve (with the `tokio` feature:
/// `|| pop3_client::tokio::Client::connect(&config, &credentials)`). Set
/// [`SyncOptions::max_message`] to the client's cap
/// (`config.session.max_body`) so that a message listed above it is decided
/// before RETR, as `sync_blocking` does by itself. The state store and the
/// sink are awaited ([`AsyncStateStore`], [`AsyncDeliverySink`]): a
/// database store's calls give the runtime back while they wait; a
/// blocking store (every [`StateStore`] and [`DeliverySink`] is one) is
/// called at once, so a Maildir write or an fsync holds the task that
/// long. The future is `Send` when the store, the sink, the stream and
/// `connect`'s future are (`MemoryState`, `StateFile`, `MaildirSink` and
/// `pop3_client::tokio::Client` all are), so a sync can run in
/// `tokio::spawn`.
pub async fn sync_async<S, F, Fut, St, Sk>(
    mut connect: F,
    host: &str,
    user: &str,
    store: &mut St,
    sink: &mut Sk,
    options: SyncOptions,
    mut progress: Option<&mut (dyn FnMut(&FetchProgress) + Send)>,
) -> Result<SyncReport, SyncFailure>
where
    St: AsyncStateStore + ?Sized,
    Sk: AsyncDeliverySink + ?Sized,
    S: futures_io::AsyncRead + futures_io::AsyncWrite + Unpin,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<AsyncClient<S>, Error>>,
{
    let mut options = options;
    if serves_slices(host) {
        options.gmail_slices.get_or_insert(true);
    }
    let mut engine = SyncEngine::start(options, user, store, sink)
        .await
        .map_err(nothing_done)?;
    let outcome = async {
        sync_sessions!(engine, connect(), host, progress; .await);
        Ok(())
    }
    .await;
    engine.finish(outcome).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uidl(msg: u32, uid: &str) -> crate::pop3::UidlItem {
        crate::pop3::UidlItem {
            msg: MsgNum::new(msg).unwrap(),
            uid: Uid::new(uid.as_bytes()).unwrap(),
        }
    }

    fn list(msg: u32, octets: u64) -> pop3_proto::ListEntry {
        pop3_proto::ListEntry {
            msg: MsgNum::new(msg).unwrap(),
            octets,
        }
    }

    #[test]
    fn listings_that_disagree_are_refused() {
        let ok = join_listing(vec![uidl(2, "b"), uidl(1, "a")], &[list(1, 5), list(2, 6)]).unwrap();
        assert_eq!(ok.iter().map(|l| l.octets).collect::<Vec<_>>(), [5, 6]);
        for (uids, sizes) in [
            (
                vec![uidl(1, "a"), uidl(1, "b")],
                vec![list(1, 5), list(2, 6)],
            ),
            (vec![uidl(1, "a")], vec![list(1, 5), list(2, 6)]),
            (
                vec![uidl(1, "a"), uidl(3, "c")],
                vec![list(1, 5), list(2, 6)],
            ),
            (vec![uidl(1, "a")], vec![list(1, 5), list(1, 6)]),
        ] {
            let e = join_listing(uids, &sizes).unwrap_err();
            assert_eq!(e.kind(), crate::error::ErrorKind::Protocol, "{e}");
        }
    }
}
