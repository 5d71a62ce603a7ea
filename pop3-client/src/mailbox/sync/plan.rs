//! The plan of a sync, sans I/O: given what the state remembers and what the
//! server lists, which messages to fetch (oldest first, within the caps),
//! which to delete, what to record, and whether to open another session.
//! The blocking and async drivers only carry out what this decides.

use std::collections::HashSet;

use pop3_proto::{MsgNum, Uid};

use crate::mailbox::account::DeletePolicy;
use crate::mailbox::sync::state::{FailureRecord, StateChange, SyncState, UidRecord, UidStatus};

/// Seconds in a day.
const DAY: u64 = 24 * 60 * 60;

/// What the account's first sync does with the mail already on the server
/// (a new account with years of mail need not import all of it). Applies
/// to a state that is new ([`SyncState::is_new`]); left-out messages are
/// remembered, never fetched and never deleted, and everything that arrives
/// later is fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum FirstSync {
    /// Everything on the server (the default).
    #[default]
    All,
    /// Nothing already there: only mail that arrives from now on.
    FromNowOn,
    /// Messages dated within the last N days (the `Date:` of their header,
    /// read with TOP n 0; a message without a readable date is fetched).
    SinceDays(u32),
    /// The newest N messages (the last N listed).
    Last(usize),
}

impl FirstSync {
    /// The choice's name, as [`FirstSync::from_name`] reads it.
    pub fn name(self) -> String {
        match self {
            Self::All => "all".into(),
            Self::FromNowOn => "from-now-on".into(),
            Self::SinceDays(days) => format!("since-days={days}"),
            Self::Last(n) => format!("last={n}"),
        }
    }

    /// Parses `all`, `from-now-on`, `since-days=N` or `last=N` (`fetch
    /// --first-sync`).
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "all" => Self::All,
            "from-now-on" => Self::FromNowOn,
            _ => {
                if let Some(days) = name.strip_prefix("since-days=") {
                    Self::SinceDays(days.parse().ok()?)
                } else {
                    Self::Last(name.strip_prefix("last=")?.parse().ok()?)
                }
            }
        })
    }
}

/// How a sync behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncOptions {
    /// What to do with fetched messages on the server.
    pub policy: DeletePolicy,
    /// Fetch at most this many messages in one sync.
    pub max_messages: Option<usize>,
    /// Fetch at most this many bytes in one sync (a single message larger
    /// than this is still fetched when it comes first, so a sync always
    /// makes progress).
    pub max_bytes: Option<u64>,
    /// Most messages stored together and made durable with one flush
    /// (group commit). The order "stored, then recorded, then deleted"
    /// holds per group.
    pub group_size: usize,
    /// Most bytes in one group (as listed; a larger message makes a group
    /// of its own): what a run killed mid-group fetches again.
    pub group_bytes: u64,
    /// Messages larger than this (as listed) are fetched headers only
    /// (TOP n 0) and marked for a later full fetch: when the application
    /// asks ([`crate::mailbox::sync::request_full_fetch`]) or once a sync's limit
    /// allows. `None` (the default): every message whole. A message stored
    /// headers only is never deleted from the server.
    pub headers_only_above: Option<u64>,
    /// A server without UIDL is refused, unless this is set: then every
    /// listed message is fetched and then deleted, and a run killed between
    /// the two may deliver some messages again on its next run.
    pub allow_without_uidl: bool,
    /// UIDs missing from the listing are remembered this many days, so a
    /// message that comes back (Gmail's recent mode) is not fetched again.
    pub forget_after_days: u64,
    /// Most sessions one sync opens (a server that serves a few hundred
    /// messages per session, as Gmail does, needs several).
    pub max_sessions: usize,
    /// The time of the sync, in seconds since the Unix epoch; `None` for
    /// the system clock. Tests inject it.
    pub now: Option<u64>,
    /// A message whose fetch fails this many times, one attempt per sync
    /// (`-ERR` to RETR, a body over the size cap, the connection lost in
    /// the middle of it, the sink refusing it), is quarantined: reported,
    /// kept on the server, skipped until [`crate::mailbox::sync::reprocess`].
    /// The rest of the mailbox goes on in the same sync. Default 3.
    pub max_attempts: u32,
    /// The largest message fetched whole: one listed above it is decided
    /// before RETR (headers only when
    /// [`SyncOptions::headers_only_above`] is set, else quarantined as too
    /// big). `None`: the client's own cap decides (`sync_blocking` takes
    /// the smaller of the two).
    pub max_message: Option<u64>,
    /// What the account's first sync does with the mail already there.
    pub first_sync: FirstSync,
    /// The server lists mail in slices of the oldest messages not yet
    /// popped, and pops what was fetched (RETR) at QUIT, as Gmail's normal
    /// mode does: known messages listed again (a run stopped before its
    /// QUIT; a first sync's left-out mail) are then fetched into nothing,
    /// never deleted, so the next slice comes. `None`: decided by the
    /// server (the host `pop.gmail.com`, or Gmail's `Gpop` greeting; never
    /// in `recent:` mode).
    pub gmail_slices: Option<bool>,
    /// Ends the sync early and cleanly when given (a poller stopping).
    pub stop: Option<StopSignal>,
}

impl Default for SyncOptions {
    fn default() -> Self {
        Self {
            policy: DeletePolicy::KeepOnServer,
            max_messages: None,
            max_bytes: None,
            group_size: 256,
            group_bytes: 16 * 1024 * 1024,
            headers_only_above: None,
            allow_without_uidl: false,
            forget_after_days: 31,
            max_sessions: 50,
            now: None,
            max_attempts: 3,
            max_message: None,
            first_sync: FirstSync::All,
            gmail_slices: None,
            stop: None,
        }
    }
}

/// A message the server lists in this session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Its number in this session.
    pub msg: MsgNum,
    /// Its UID.
    pub uid: Uid,
    /// Its size as listed.
    pub octets: u64,
}

/// What became of one message of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Durable in the sink, with this many bytes.
    Stored(u64),
    /// Not fetched, for this reason (in words): one failed attempt.
    Failed(String),
    /// Not fetched because the server said the trouble is temporary
    /// (`[SYS/TEMP]`): tried again next time, not counted as an attempt.
    Deferred(String),
    /// Not tried: an earlier failure cut the group short.
    NotTried,
}

/// Adds `uid` to the report's quarantined messages (once per sync).
fn note_quarantined(report: &mut SyncReport, uid: &Uid, failure: &FailureRecord) {
    // Counted with the kept reasons at the end (SyncRun::finish).
    if report.quarantined.iter().any(|q| &q.uid == uid) {
        return;
    }
    report.quarantined.push(FailedMessage {
        uid: uid.clone(),
        octets: failure.octets,
        attempts: failure.attempts,
        reason: failure.reason.clone(),
    });
}

/// A message a sync could not fetch, or skipped because it is quarantined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedMessage {
    /// Its UID.
    pub uid: Uid,
    /// Its size as listed.
    pub octets: u64,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Why the last attempt failed, in words.
    pub reason: String,
}

/// What one session does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionPlan {
    /// Records to make before fetching (vanished, reappeared, forgotten).
    pub housekeeping: Vec<StateChange>,
    /// New messages to fetch, oldest first, in groups of
    /// [`SyncOptions::group_size`].
    pub fetch: Vec<Vec<Listed>>,
    /// New messages above the size limit: their headers only (TOP n 0),
    /// in groups.
    pub headers: Vec<Vec<Listed>>,
    /// Messages fetched in an earlier run that the policy deletes now.
    pub delete: Vec<Listed>,
    /// Headers-only copies that this session's whole messages replace:
    /// (UID, the sink's name of the copy), removed once the whole message
    /// is recorded.
    pub replaces_headers: Vec<(Uid, String)>,
    /// Whether the caps left messages for a later sync.
    pub capped: bool,
    /// A first sync that keeps mail by date needs the dates of these
    /// messages first (TOP n 0): then [`SyncRun::dated`] and plan again.
    pub needs_dates: Vec<Listed>,
    /// Messages due for deletion that the server lists with another size
    /// than when they were stored: their header (TOP n 0) must show they
    /// are the same message before they are deleted
    /// ([`SyncRun::verified`]).
    pub verify_before_delete: Vec<Listed>,
    /// Known messages listed again by a server that serves slices
    /// ([`SyncOptions::gmail_slices`]): fetched into nothing, so that QUIT
    /// pops them and the next slice comes.
    pub pop_again: Vec<Listed>,
}

/// What a sync did: the summary line of `fetch` and `account sync`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Messages stored.
    pub new: usize,
    /// Bytes stored.
    pub bytes: u64,
    /// Messages deleted on the server.
    pub deleted: usize,
    /// Messages that could not be fetched in this sync and will be tried
    /// again (`failed` lists them).
    pub skipped: usize,
    /// The messages counted in `skipped`, with why.
    pub failed: Vec<FailedMessage>,
    /// Listed messages skipped because they are quarantined (failed
    /// [`SyncOptions::max_attempts`] times, or too big), with why; those
    /// quarantined by this sync included. Kept on the server.
    pub quarantined: Vec<FailedMessage>,
    /// Messages stored headers only (above the size limit).
    pub headers_only: usize,
    /// Messages left for a later sync by the caps.
    pub left: usize,
    /// Messages on the server before the first sync, left out by its
    /// choice ([`SyncOptions::first_sync`]).
    pub left_out: usize,
    /// Sessions opened.
    pub sessions: usize,
    /// Known messages fetched again only to be popped (a server that
    /// serves slices, after a run that stopped before its QUIT).
    pub popped_again: usize,
    /// Interrupted deliveries of an earlier run found complete at start
    /// (recorded now, not fetched again).
    pub recovered: usize,
    /// The earliest time (Unix seconds) the server allows the next login,
    /// from its LOGIN-DELAY.
    pub next_sync_not_before: Option<u64>,
    /// Why the sync stopped before the server ran out of new mail, when it
    /// did.
    pub stopped_early: Option<StoppedEarly>,
    /// Every listed message the sync neither fetched nor deleted, counted
    /// by why.
    pub kept: std::collections::BTreeMap<KeptReason, usize>,
    /// What the server advertised in the last session: keep it and give it
    /// back in [`ClientConfig::server_profile`](crate::ClientConfig::server_profile)
    /// so the next poll spends fewer round trips.
    pub server_profile: Option<crate::pop3::ServerProfile>,
}

/// Why a listed message was neither fetched nor deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum KeptReason {
    /// Stored before; the policy keeps mail on the server.
    KeptByPolicy,
    /// Stored before; not yet due for deletion (after-days, or not yet
    /// deleted locally).
    NotDueYet,
    /// Stored headers only: never deleted in that state.
    HeadersOnly,
    /// Left out by the first sync's choice.
    LeftOut,
    /// Listed with another size than when stored, and nothing recorded to
    /// tell whether it is the same message: not deleted unseen.
    SizeChanged,
    /// Listed with another size, and its header shows another message
    /// (a UID the server reused): not deleted.
    NotTheSameMessage,
    /// Its UID is listed twice: neither is deleted.
    ListedTwice,
    /// Quarantined.
    Quarantined,
    /// Failed in this sync; tried again by the next.
    Failed,
    /// Left for a later sync by the caps.
    Capped,
}

impl KeptReason {
    /// The reason's short name (`fetch` prints them).
    pub fn name(self) -> &'static str {
        match self {
            Self::KeptByPolicy => "kept-by-policy",
            Self::NotDueYet => "not-due-yet",
            Self::HeadersOnly => "headers-only",
            Self::LeftOut => "left-out",
            Self::SizeChanged => "size-changed",
            Self::NotTheSameMessage => "not-the-same-message",
            Self::ListedTwice => "listed-twice",
            Self::Quarantined => "quarantined",
            Self::Failed => "failed",
            Self::Capped => "capped",
        }
    }
}

/// Why a sync stopped before the server ran out of new mail (what it stored
/// is kept; the next sync goes on).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoppedEarly {
    /// A further session could not be opened (a passing failure: the
    /// network, a mailbox still locked by the session that just ended).
    FollowUpFailed {
        /// The failure, in words.
        error: String,
    },
    /// The server listed messages of the same sizes again, under new
    /// unique-ids, after they were stored: its unique-ids may not be
    /// stable, so nothing more was fetched.
    UnstableUids,
    /// The application asked the sync to stop ([`StopSignal`]): it ended
    /// after the group in progress, with QUIT.
    Asked,
}

/// Asks syncs to end early and cleanly: each ends after the group it is
/// fetching, records what it stored, deletes what its policy says of that,
/// and ends its session with QUIT (a poller told to stop).
#[derive(Debug, Clone, Default)]
pub struct StopSignal(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl StopSignal {
    /// A signal not given yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks every sync holding this signal to stop.
    pub fn stop(&self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether it was given.
    pub fn is_stopped(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl PartialEq for StopSignal {
    /// The same signal (not merely one in the same state).
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for StopSignal {}

impl std::fmt::Display for StoppedEarly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::FollowUpFailed { error } => {
                write!(f, "a further session could not be opened: {error}")
            }
            Self::UnstableUids => f.write_str("the server listed messages of the same sizes again, under new unique-ids, after they were stored: its unique-ids may not be stable, so nothing more was fetched in this sync (the next sync goes on)"),
            Self::Asked => f.write_str("the application asked it to stop; what was fetched is stored, and the next sync goes on"),
        }
    }
}

/// A sync in progress: the budget left, what it did, and the rules between
/// sessions. One per sync, shared by the drivers.
#[derive(Debug)]
pub struct SyncRun {
    options: SyncOptions,
    now: u64,
    report: SyncReport,
    fetched_in_session: Vec<Listed>,
    keep_going: bool,
    /// The previous session's listed sizes, and whether it stored mail.
    previous: Option<(Vec<u64>, bool)>,
    /// UIDs that failed in this sync: not tried again before the next.
    failed_now: HashSet<Uid>,
    /// The last session was cut short by a message that broke it (the
    /// connection is out of step): the rest goes on in another session.
    broken: bool,
    /// For a first sync by date: the UIDs its dates leave out, once known.
    dated_out: Option<HashSet<Uid>>,
    /// Known messages popped again in this session.
    popped_in_session: usize,
    /// What the last session popped again: listed again as it was, the
    /// server did not pop it, and it is not tried once more.
    last_popped: Vec<Uid>,
    /// Why each listed message was neither fetched nor deleted (the last
    /// session's word on it).
    kept: std::collections::HashMap<Uid, KeptReason>,
}

impl SyncRun {
    /// Starts a sync at `now` (Unix seconds). A deleting policy with a
    /// `recent:` user is refused before anything is connected.
    pub fn new(options: SyncOptions, now: u64, user: &str) -> Result<Self, crate::error::Error> {
        let recent_mode = pop3_proto::is_recent_mode_user(user);
        if recent_mode && options.policy.deletes() {
            return Err(crate::error::Error::invalid_setting(
                "policy",
                format!(
                    "\"{}\" is refused: the user name {user} asks for Gmail's recent: mode, where mail must stay on the server (use never)",
                    options.policy.name()
                ),
            ));
        }
        if options.group_size == 0 || options.max_sessions == 0 {
            return Err(crate::error::Error::invalid_setting(
                "group_size and max_sessions",
                "must be at least 1",
            ));
        }
        Ok(Self {
            options,
            now,
            report: SyncReport::default(),
            fetched_in_session: Vec::new(),
            // recent: mode lists the same 30 days in every session.
            keep_going: !recent_mode,
            previous: None,
            failed_now: HashSet::new(),
            broken: false,
            dated_out: None,
            popped_in_session: 0,
            last_popped: Vec::new(),
            kept: std::collections::HashMap::new(),
        })
    }

    /// The options.
    pub fn options(&self) -> &SyncOptions {
        &self.options
    }

    /// The time of the sync.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// The report so far.
    pub fn report(&self) -> &SyncReport {
        &self.report
    }

    /// Finishes the sync.
    pub fn finish(mut self) -> SyncReport {
        for reason in self.kept.values() {
            *self.report.kept.entry(*reason).or_insert(0) += 1;
        }
        let left_out = self.report.kept.entry(KeptReason::LeftOut).or_insert(0);
        *left_out = (*left_out).max(self.report.left_out);
        for (reason, count) in [
            (KeptReason::Quarantined, self.report.quarantined.len()),
            (KeptReason::Failed, self.report.failed.len()),
            (KeptReason::Capped, self.report.left),
        ] {
            *self.report.kept.entry(reason).or_insert(0) += count;
        }
        self.report.kept.retain(|_, count| *count > 0);
        self.report
    }

    /// The header of a message listed with another size than when stored
    /// showed whether it is the same message: `same` decides; the change
    /// to record its new size when it is (then it is deleted).
    pub fn verified(&mut self, item: &Listed, same: bool) -> Option<StateChange> {
        if !same {
            self.kept
                .insert(item.uid.clone(), KeptReason::NotTheSameMessage);
            return None;
        }
        self.kept.remove(&item.uid);
        Some(StateChange::Resized {
            uid: item.uid.clone(),
            octets: item.octets,
        })
    }

    /// An interrupted delivery was found complete in the sink at start.
    pub fn recovered(&mut self) {
        self.report.recovered += 1;
    }

    /// A session has logged in; `login_delay` is its advertised LOGIN-DELAY.
    pub fn session_started(&mut self, login_delay: Option<u32>) {
        self.report.sessions += 1;
        self.broken = false;
        self.popped_in_session = 0;
        self.fetched_in_session.clear();
        if let Some(seconds) = login_delay {
            self.report.next_sync_not_before = Some(self.now.saturating_add(u64::from(seconds)));
        }
    }

    /// Plans a session from its listing (message-number order).
    pub fn plan(&mut self, state: &SyncState, listing: &[Listed]) -> SessionPlan {
        let mut plan = SessionPlan::default();
        let first = state.is_new();
        if state.started.is_none() {
            plan.housekeeping
                .push(StateChange::Started { at: self.now });
        }
        // A follow-up session that lists exactly what the last one did,
        // after that one stored mail, yet shows new UIDs, means the server
        // did not take the mail away and its UIDs change from session to
        // session: what looks new is not; stop rather than store it again.
        let sizes: Vec<u64> = listing.iter().map(|l| l.octets).collect();
        let unchanged = self
            .previous
            .as_ref()
            .is_some_and(|(before, stored)| *stored && *before == sizes);
        self.previous = Some((sizes, false));
        let listed: HashSet<&Uid> = listing.iter().map(|l| &l.uid).collect();
        // A UID listed twice names two messages: neither is deleted.
        let mut once = HashSet::new();
        let twice: HashSet<&Uid> = listing
            .iter()
            .filter(|l| !once.insert(&l.uid))
            .map(|l| &l.uid)
            .collect();
        for (uid, record) in &state.records {
            match (listed.contains(uid), record.vanished_at) {
                (false, None) => plan.housekeeping.push(StateChange::Vanished {
                    uid: uid.clone(),
                    at: self.now,
                }),
                (false, Some(at))
                    if at.saturating_add(
                        self.options.forget_after_days.max(1).saturating_mul(DAY),
                    ) <= self.now =>
                {
                    plan.housekeeping
                        .push(StateChange::Forget { uid: uid.clone() });
                }
                (true, Some(_)) => plan
                    .housekeeping
                    .push(StateChange::Reappeared { uid: uid.clone() }),
                _ => {}
            }
        }
        // A failing message no longer listed (deleted by other means) is
        // forgotten.
        for uid in state.failures.keys() {
            if !listed.contains(uid) && !state.records.contains_key(uid) {
                plan.housekeeping
                    .push(StateChange::Forget { uid: uid.clone() });
            }
        }
        let mut new = Vec::new();
        let mut headers = Vec::new();
        let mut seen = HashSet::new();
        let too_big = |item: &Listed| {
            self.options
                .headers_only_above
                .is_some_and(|limit| item.octets > limit)
        };
        let over_cap = |item: &Listed| {
            self.options
                .max_message
                .is_some_and(|cap| item.octets > cap)
        };
        let mut quarantine_now = Vec::new();
        for item in listing {
            // A UID listed twice is fetched once.
            if !seen.insert(&item.uid) {
                continue;
            }
            // Failed in this sync: tried again by the next one.
            if self.failed_now.contains(&item.uid) {
                continue;
            }
            if let Some(failure) = state.failures.get(&item.uid).filter(|f| f.quarantined) {
                note_quarantined(&mut self.report, &item.uid, failure);
                continue;
            }
            // Only what is stored whole is popped again: a headers-only
            // message must stay listed until it is fetched whole, and
            // popping may archive or delete it at Gmail.
            let stored_whole = state
                .records
                .get(&item.uid)
                .is_some_and(|r| r.status == UidStatus::Fetched);
            let fits = self
                .options
                .max_message
                .is_none_or(|cap| item.octets <= cap);
            if stored_whole && fits && self.options.gmail_slices == Some(true) && self.keep_going {
                plan.pop_again.push(item.clone());
            }
            match state.records.get(&item.uid) {
                // New, or a UID the server gave to a new message after we
                // deleted the one it named.
                None
                | Some(UidRecord {
                    status: UidStatus::Deleted,
                    ..
                }) if too_big(item) => headers.push(item.clone()),
                // Known from LIST to be over the cap: decided before RETR.
                None
                | Some(UidRecord {
                    status: UidStatus::Deleted,
                    ..
                }) if over_cap(item) => quarantine_now.push(item.clone()),
                None
                | Some(UidRecord {
                    status: UidStatus::Deleted,
                    ..
                }) => new.push(item.clone()),
                // Deleted only when it is surely the message we stored: the
                // same size as listed then, and its UID listed once.
                Some(r)
                    if r.status == UidStatus::Fetched
                        && r.octets == item.octets
                        && !twice.contains(&item.uid)
                        && self.due_for_deletion(r) =>
                {
                    plan.delete.push(item.clone());
                }
                // Another size than stored (a server that rewrites mail):
                // deleted once its header shows it is the same message.
                Some(r)
                    if r.status == UidStatus::Fetched
                        && r.identity.is_some()
                        && !twice.contains(&item.uid)
                        && self.due_for_deletion(r) =>
                {
                    plan.verify_before_delete.push(item.clone());
                }
                // Stored headers only: whole now if asked for or allowed.
                Some(r)
                    if r.status == UidStatus::HeadersOnly
                        && (r.full_requested || !too_big(item))
                        && !over_cap(item) =>
                {
                    if let Some(copy) = &r.headers_delivery {
                        plan.replaces_headers.push((item.uid.clone(), copy.clone()));
                    }
                    new.push(item.clone());
                }
                Some(_) => {}
            }
        }
        for item in quarantine_now {
            let cap = self.options.max_message.unwrap_or(u64::MAX);
            let reason = format!(
                "too big: listed at {} bytes, above the limit of {cap} bytes",
                item.octets
            );
            let failure = FailureRecord {
                attempts: state.failures.get(&item.uid).map_or(0, |f| f.attempts),
                octets: item.octets,
                reason: reason.clone(),
                quarantined: true,
            };
            note_quarantined(&mut self.report, &item.uid, &failure);
            plan.housekeeping.push(StateChange::Failed {
                uid: item.uid,
                octets: item.octets,
                attempts: failure.attempts,
                quarantined: true,
                reason,
            });
        }
        if first {
            self.first_sync_choice(&mut plan, &mut new, &mut headers);
            if !plan.needs_dates.is_empty() {
                return plan;
            }
        }
        self.note_kept(state, listing, &plan, &twice);
        let popping: Vec<Uid> = plan.pop_again.iter().map(|l| l.uid.clone()).collect();
        if !popping.is_empty() && popping == self.last_popped {
            plan.pop_again.clear();
        }
        self.last_popped = popping;
        plan.headers = headers
            .chunks(self.options.group_size)
            .map(<[Listed]>::to_vec)
            .collect();
        let mut chosen = Vec::new();
        for item in new {
            let count = self.report.new + chosen.len();
            let bytes = chosen.iter().fold(self.report.bytes, |sum, l: &Listed| {
                sum.saturating_add(l.octets)
            });
            let over_count = self.options.max_messages.is_some_and(|m| count >= m);
            let over_bytes = self
                .options
                .max_bytes
                .is_some_and(|m| count > 0 && bytes.saturating_add(item.octets) > m);
            if over_count || over_bytes {
                plan.capped = true;
                self.report.left += 1;
                continue;
            }
            chosen.push(item);
        }
        plan.fetch = self.groups(chosen);
        if plan.capped {
            self.keep_going = false;
        }
        if unchanged && !(plan.fetch.is_empty() && plan.headers.is_empty()) {
            plan.fetch.clear();
            plan.headers.clear();
            plan.replaces_headers.clear();
            self.keep_going = false;
            self.report.stopped_early = Some(StoppedEarly::UnstableUids);
        }
        plan
    }

    /// Why each known message listed is neither fetched nor deleted.
    fn note_kept(
        &mut self,
        state: &SyncState,
        listing: &[Listed],
        plan: &SessionPlan,
        twice: &HashSet<&Uid>,
    ) {
        let acted: HashSet<&Uid> = plan
            .delete
            .iter()
            .chain(&plan.verify_before_delete)
            .map(|l| &l.uid)
            .collect();
        for item in listing {
            let Some(r) = state.records.get(&item.uid) else {
                continue;
            };
            let reason = match r.status {
                _ if acted.contains(&item.uid) => {
                    self.kept.remove(&item.uid);
                    continue;
                }
                UidStatus::Deleted => continue,
                UidStatus::Ignored => KeptReason::LeftOut,
                UidStatus::HeadersOnly => KeptReason::HeadersOnly,
                UidStatus::Fetched if twice.contains(&item.uid) => KeptReason::ListedTwice,
                UidStatus::Fetched if self.options.policy == DeletePolicy::KeepOnServer => {
                    KeptReason::KeptByPolicy
                }
                UidStatus::Fetched if !self.due_for_deletion(r) => KeptReason::NotDueYet,
                UidStatus::Fetched => KeptReason::SizeChanged,
            };
            self.kept.insert(item.uid.clone(), reason);
        }
    }

    /// On a new account, leaves out what [`SyncOptions::first_sync`] says
    /// (recorded as ignored), or asks for the dates it needs to decide.
    fn first_sync_choice(
        &mut self,
        plan: &mut SessionPlan,
        new: &mut Vec<Listed>,
        headers: &mut Vec<Listed>,
    ) {
        let mut candidates: Vec<Listed> = new.drain(..).chain(headers.drain(..)).collect();
        candidates.sort_by_key(|l| l.msg);
        let keep_from = match self.options.first_sync {
            FirstSync::All => 0,
            FirstSync::FromNowOn => candidates.len(),
            FirstSync::Last(n) => candidates.len().saturating_sub(n),
            FirstSync::SinceDays(_) => {
                let Some(out) = &self.dated_out else {
                    plan.needs_dates = candidates;
                    return;
                };
                let (left, kept): (Vec<Listed>, Vec<Listed>) =
                    candidates.into_iter().partition(|l| out.contains(&l.uid));
                candidates = left.into_iter().chain(kept).collect();
                candidates.iter().filter(|l| out.contains(&l.uid)).count()
            }
        };
        for item in candidates.drain(..keep_from) {
            self.report.left_out += 1;
            plan.housekeeping.push(StateChange::Ignored {
                uid: item.uid,
                at: self.now,
                octets: item.octets,
            });
        }
        let too_big = |item: &Listed| {
            self.options
                .headers_only_above
                .is_some_and(|limit| item.octets > limit)
        };
        let (big, whole): (Vec<Listed>, Vec<Listed>) = candidates.into_iter().partition(too_big);
        *new = whole;
        *headers = big;
    }

    /// The dates of the messages a first sync by date asked for
    /// ([`SessionPlan::needs_dates`], in order; `None` where a header has
    /// no readable `Date:`): the ones older than the limit are left out
    /// when the session is planned again.
    pub fn dated(&mut self, needs_dates: &[Listed], dates: &[Option<i64>]) {
        let FirstSync::SinceDays(days) = self.options.first_sync else {
            return;
        };
        let since = i64::try_from(self.now.saturating_sub(u64::from(days).saturating_mul(DAY)))
            .unwrap_or(i64::MAX);
        let out = needs_dates
            .iter()
            .zip(dates)
            .filter(|(_, date)| date.is_some_and(|d| d < since))
            .map(|(l, _)| l.uid.clone())
            .collect();
        self.dated_out = Some(out);
    }

    /// Splits the messages to fetch into groups of at most `group_size`
    /// messages and `group_bytes` bytes (a larger message alone).
    fn groups(&self, chosen: Vec<Listed>) -> Vec<Vec<Listed>> {
        let mut groups: Vec<Vec<Listed>> = Vec::new();
        let mut bytes = 0u64;
        for item in chosen {
            let fits = groups.last().is_some_and(|g| {
                g.len() < self.options.group_size
                    && bytes.saturating_add(item.octets) <= self.options.group_bytes
            });
            if !fits {
                groups.push(Vec::new());
                bytes = 0;
            }
            bytes = bytes.saturating_add(item.octets);
            if let Some(group) = groups.last_mut() {
                group.push(item);
            }
        }
        groups
    }

    fn due_for_deletion(&self, record: &crate::mailbox::sync::state::UidRecord) -> bool {
        match self.options.policy {
            DeletePolicy::KeepOnServer => false,
            // Fetched in an earlier run that ended before its QUIT.
            DeletePolicy::AfterRetrieval => true,
            DeletePolicy::AfterDays(days) => {
                record
                    .first_seen
                    .saturating_add(u64::from(days).saturating_mul(DAY))
                    <= self.now
            }
            DeletePolicy::WhenDeletedLocally => record.deleted_locally,
        }
    }

    /// The changes recording a group: per message of `group`, whether it
    /// was stored (durable in the sink), failed, or was not tried (the
    /// rest of a group a failure cut short). `failures` is what the state
    /// remembers of earlier failures: a message that fails
    /// [`SyncOptions::max_attempts`] times is quarantined.
    pub fn stored(
        &mut self,
        group: &[Listed],
        outcomes: &[Outcome],
        failures: &std::collections::HashMap<Uid, FailureRecord>,
    ) -> Vec<StateChange> {
        let mut changes = Vec::with_capacity(group.len());
        for (item, outcome) in group.iter().zip(outcomes) {
            changes.push(match outcome {
                Outcome::Stored(octets) => {
                    self.report.new += 1;
                    self.report.bytes = self.report.bytes.saturating_add(*octets);
                    self.fetched_in_session.push(item.clone());
                    if let Some((_, stored)) = self.previous.as_mut() {
                        *stored = true;
                    }
                    StateChange::Delivered {
                        uid: item.uid.clone(),
                        at: self.now,
                        octets: item.octets,
                    }
                }
                Outcome::Failed(reason) => self.failed(item, reason, failures.get(&item.uid)),
                Outcome::Deferred(reason) => self.deferred(item, reason, failures.get(&item.uid)),
                Outcome::NotTried => StateChange::Abandoned {
                    uid: item.uid.clone(),
                },
            });
        }
        changes
    }

    /// The changes recording a group stored headers only, under the sink's
    /// `names` for them.
    pub fn stored_headers(
        &mut self,
        group: &[Listed],
        names: &[String],
        outcomes: &[Outcome],
        failures: &std::collections::HashMap<Uid, FailureRecord>,
    ) -> Vec<StateChange> {
        let mut changes = Vec::with_capacity(group.len());
        for ((item, name), outcome) in group.iter().zip(names).zip(outcomes) {
            changes.push(match outcome {
                Outcome::Stored(_) => {
                    self.report.headers_only += 1;
                    StateChange::HeadersDelivered {
                        uid: item.uid.clone(),
                        at: self.now,
                        octets: item.octets,
                        delivery: name.clone(),
                    }
                }
                Outcome::Failed(reason) => self.failed(item, reason, failures.get(&item.uid)),
                Outcome::Deferred(reason) => self.deferred(item, reason, failures.get(&item.uid)),
                Outcome::NotTried => StateChange::Abandoned {
                    uid: item.uid.clone(),
                },
            });
        }
        changes
    }

    /// One more failed attempt at `item`: reported, not tried again in
    /// this sync, quarantined once it has failed `max_attempts` times.
    fn failed(
        &mut self,
        item: &Listed,
        reason: &str,
        before: Option<&FailureRecord>,
    ) -> StateChange {
        let attempts = before.map_or(0, |f| f.attempts).saturating_add(1);
        let quarantined = attempts >= self.options.max_attempts.max(1);
        self.failed_now.insert(item.uid.clone());
        let failed = FailedMessage {
            uid: item.uid.clone(),
            octets: item.octets,
            attempts,
            reason: reason.to_owned(),
        };
        if quarantined {
            self.report.quarantined.push(failed);
        } else {
            self.report.skipped += 1;
            self.report.failed.push(failed);
        }
        StateChange::Failed {
            uid: item.uid.clone(),
            octets: item.octets,
            attempts,
            quarantined,
            reason: reason.to_owned(),
        }
    }

    /// The server said `item` cannot be sent now: reported, tried again by
    /// the next sync, no attempt counted.
    fn deferred(
        &mut self,
        item: &Listed,
        reason: &str,
        before: Option<&FailureRecord>,
    ) -> StateChange {
        self.failed_now.insert(item.uid.clone());
        self.report.skipped += 1;
        self.report.failed.push(FailedMessage {
            uid: item.uid.clone(),
            octets: item.octets,
            attempts: before.map_or(0, |f| f.attempts),
            reason: reason.to_owned(),
        });
        StateChange::Abandoned {
            uid: item.uid.clone(),
        }
    }

    /// The server showed itself to be Gmail (its greeting): unless the
    /// options said otherwise, it serves slices.
    pub fn serves_slices(&mut self) {
        self.options.gmail_slices.get_or_insert(true);
    }

    /// Known messages listed again were fetched into nothing: QUIT pops
    /// them (`count` of them came through).
    pub fn popped_again(&mut self, count: usize) {
        self.popped_in_session += count;
        self.report.popped_again += count;
    }

    /// A message broke the session (its body over the cap, the connection
    /// lost in the middle of it): the connection is out of step, so the
    /// session ends without DELE or QUIT, and the rest goes on in another.
    pub fn session_broken(&mut self) {
        self.broken = true;
        // The server took nothing away (no QUIT): an unchanged listing in
        // the next session is expected, not a sign of unstable UIDs.
        self.previous = None;
    }

    /// What to delete before QUIT: the plan's due messages, and under
    /// "after retrieval" everything stored in this session.
    pub fn deletions(&self, plan: &SessionPlan) -> Vec<Listed> {
        let mut out = plan.delete.clone();
        if self.options.policy == DeletePolicy::AfterRetrieval {
            out.extend(self.fetched_in_session.iter().cloned());
        }
        out
    }

    /// The messages stored whole in this session.
    pub fn stored_in_session(&self) -> &[Listed] {
        &self.fetched_in_session
    }

    /// QUIT committed the deletions of `deleted`: the changes to record.
    pub fn deleted(&mut self, deleted: &[Listed]) -> Vec<StateChange> {
        self.report.deleted += deleted.len();
        deleted
            .iter()
            .map(|l| StateChange::DeletedOnServer { uid: l.uid.clone() })
            .collect()
    }

    /// Whether to open another session: this one broke, or popped known
    /// messages again, or stored new ones from a server that serves mail in
    /// slices (Gmail's normal mode lists only what was not yet popped);
    /// never past the caps or the session cap. Other servers list the whole
    /// mailbox at once, so one session has seen it all.
    pub fn another_session(&self) -> bool {
        let slices = self.options.gmail_slices == Some(true);
        let more = self.broken
            || self.popped_in_session > 0
            || (slices && !self.fetched_in_session.is_empty());
        let stopping = self
            .options
            .stop
            .as_ref()
            .is_some_and(StopSignal::is_stopped);
        self.keep_going && !stopping && more && self.report.sessions < self.options.max_sessions
    }

    /// Whether the application asked the sync to stop: then no further
    /// group and no further session.
    pub fn stopping(&mut self) -> bool {
        let asked = self
            .options
            .stop
            .as_ref()
            .is_some_and(StopSignal::is_stopped);
        if asked && self.keep_going {
            self.keep_going = false;
            self.report.stopped_early = Some(StoppedEarly::Asked);
        }
        asked
    }

    /// What the server advertised in the session just ended.
    pub fn server_seen(&mut self, profile: crate::pop3::ServerProfile) {
        if profile.is_complete() {
            self.report.server_profile = Some(profile);
        }
    }

    /// Whether the server is taken to serve slices (and pop at QUIT what
    /// RETR fetched).
    pub fn serves_slices_now(&self) -> bool {
        self.options.gmail_slices == Some(true)
    }

    /// The server refused a follow-up login with LOGIN-DELAY: the sync ends
    /// with what it has, and reports when to come back.
    pub fn login_delayed(&mut self, seconds: Option<u32>) {
        let wait = u64::from(seconds.unwrap_or(300));
        self.report.next_sync_not_before = Some(self.now.saturating_add(wait));
    }

    /// The server has no UIDL ("fetch all, then delete"): messages are
    /// fetched whole, never headers only (nothing would remember them).
    pub fn without_uidl(&mut self) {
        self.options.headers_only_above = None;
        // Nothing is remembered, so every run would look like the first.
        self.options.first_sync = FirstSync::All;
    }

    /// A follow-up session could not be opened (after at least one
    /// completed): the sync ends with what it has, saying why.
    pub fn follow_up_failed(&mut self, error: String) {
        self.report.stopped_early = Some(StoppedEarly::FollowUpFailed { error });
    }

    /// Whether a session has completed in this sync.
    pub fn any_session(&self) -> bool {
        self.report.sessions > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(n: u32, uid: &str, octets: u64) -> Listed {
        Listed {
            msg: MsgNum::new(n).unwrap(),
            uid: Uid::new(uid.as_bytes()).unwrap(),
            octets,
        }
    }

    fn state_with(uids: &[(&str, u64)]) -> SyncState {
        let mut s = SyncState::default();
        s.apply(&StateChange::Started { at: 0 });
        for (u, at) in uids {
            s.apply(&StateChange::Delivered {
                uid: Uid::new(u.as_bytes()).unwrap(),
                at: *at,
                octets: 1,
            });
        }
        s
    }

    #[test]
    fn only_new_messages_are_fetched_in_groups() {
        let options = SyncOptions {
            group_size: 2,
            ..SyncOptions::default()
        };
        let mut run = SyncRun::new(options, 1000, "u").unwrap();
        let listing: Vec<_> = (1..=5).map(|i| listed(i, &format!("u{i}"), 10)).collect();
        let plan = run.plan(&state_with(&[("u2", 1)]), &listing);
        let uids: Vec<Vec<u32>> = plan
            .fetch
            .iter()
            .map(|g| g.iter().map(|l| l.msg.get()).collect())
            .collect();
        assert_eq!(uids, vec![vec![1, 3], vec![4, 5]]);
        assert!(plan.delete.is_empty());
    }

    #[test]
    fn groups_are_bounded_by_count_and_bytes() {
        let options = SyncOptions {
            group_size: 3,
            group_bytes: 100,
            ..SyncOptions::default()
        };
        let mut run = SyncRun::new(options, 0, "u").unwrap();
        let sizes = [10, 10, 10, 10, 60, 50, 500, 1];
        let listing: Vec<_> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| listed(i as u32 + 1, &format!("u{i}"), n))
            .collect();
        let plan = run.plan(&SyncState::default(), &listing);
        let shape: Vec<Vec<u64>> = plan
            .fetch
            .iter()
            .map(|g| g.iter().map(|l| l.octets).collect())
            .collect();
        assert_eq!(
            shape,
            vec![vec![10, 10, 10], vec![10, 60], vec![50], vec![500], vec![1]]
        );
    }

    #[test]
    fn only_the_message_we_stored_is_deleted() {
        let options = SyncOptions {
            policy: DeletePolicy::AfterRetrieval,
            ..SyncOptions::default()
        };
        // Stored with size 1 (state_with); listed now with another size: a
        // reused UID, not our message.
        let state = state_with(&[("r", 0), ("d", 0), ("ok", 0)]);
        let mut run = SyncRun::new(options.clone(), 0, "u").unwrap();
        let plan = run.plan(
            &state,
            &[
                listed(1, "r", 999),
                listed(2, "d", 1),
                listed(3, "d", 1),
                listed(4, "ok", 1),
            ],
        );
        let deleted: Vec<u32> = plan.delete.iter().map(|l| l.msg.get()).collect();
        assert_eq!(
            deleted,
            vec![4],
            "not the resized one, not one listed twice"
        );
        // A UID we deleted, listed again: the server gave it to new mail.
        let mut state = state_with(&[("gone", 0)]);
        state.apply(&StateChange::DeletedOnServer {
            uid: Uid::new(b"gone").unwrap(),
        });
        let mut run = SyncRun::new(options, 0, "u").unwrap();
        let plan = run.plan(&state, &[listed(1, "gone", 5)]);
        assert_eq!(plan.fetch.concat().len(), 1);
        assert!(plan.delete.is_empty());
    }

    #[test]
    fn a_listing_unchanged_after_storing_stops_the_sync() {
        let slices = SyncOptions {
            gmail_slices: Some(true),
            ..SyncOptions::default()
        };
        let mut run = SyncRun::new(slices, 0, "u").unwrap();
        run.session_started(None);
        let first: Vec<_> = (1..=3).map(|i| listed(i, &format!("a{i}"), 10)).collect();
        let plan = run.plan(&SyncState::default(), &first);
        let group = plan.fetch.concat();
        run.stored(&group, &vec![Outcome::Stored(10); 3], &Default::default());
        assert!(run.another_session());
        // UIDs that change every session: the same sizes, new names.
        run.session_started(None);
        let second: Vec<_> = (1..=3).map(|i| listed(i, &format!("b{i}"), 10)).collect();
        let plan = run.plan(&SyncState::default(), &second);
        assert!(plan.fetch.is_empty(), "nothing stored twice");
        assert!(!run.another_session());
        assert!(run.report().stopped_early.is_some());
        // Stable UIDs on a server that keeps mail: the same listing, all
        // known, is no alarm.
        let mut run = SyncRun::new(SyncOptions::default(), 0, "u").unwrap();
        run.session_started(None);
        let plan = run.plan(&SyncState::default(), &first);
        run.stored(
            &plan.fetch.concat(),
            &vec![Outcome::Stored(10); 3],
            &Default::default(),
        );
        run.session_started(None);
        let known = state_with(&[("a1", 0), ("a2", 0), ("a3", 0)]);
        let plan = run.plan(&known, &first);
        assert!(plan.fetch.is_empty());
        assert!(run.report().stopped_early.is_none());
    }

    #[test]
    fn caps_stop_the_plan() {
        let options = SyncOptions {
            max_messages: Some(2),
            ..SyncOptions::default()
        };
        let mut run = SyncRun::new(options, 0, "u").unwrap();
        let listing: Vec<_> = (1..=5).map(|i| listed(i, &format!("u{i}"), 10)).collect();
        let plan = run.plan(&SyncState::default(), &listing);
        assert_eq!(plan.fetch.concat().len(), 2);
        assert!(plan.capped);
        assert_eq!(run.report().left, 3);
        let options = SyncOptions {
            max_bytes: Some(25),
            ..SyncOptions::default()
        };
        let mut run = SyncRun::new(options, 0, "u").unwrap();
        let plan = run.plan(&SyncState::default(), &listing);
        assert_eq!(plan.fetch.concat().len(), 2);
        // One message above the whole budget still comes through alone.
        let options = SyncOptions {
            max_bytes: Some(5),
            ..SyncOptions::default()
        };
        let mut run = SyncRun::new(options, 0, "u").unwrap();
        assert_eq!(
            run.plan(&SyncState::default(), &listing)
                .fetch
                .concat()
                .len(),
            1
        );
    }

    #[test]
    fn policies_choose_what_to_delete() {
        let listing = vec![listed(1, "old", 1), listed(2, "young", 1)];
        let mut state = state_with(&[("old", 0), ("young", 9 * DAY)]);
        let due = |policy, state: &SyncState| {
            let options = SyncOptions {
                policy,
                ..SyncOptions::default()
            };
            let mut run = SyncRun::new(options, 10 * DAY, "u").unwrap();
            let plan = run.plan(state, &listing);
            run.deletions(&plan)
                .iter()
                .map(|l| l.msg.get())
                .collect::<Vec<_>>()
        };
        assert_eq!(due(DeletePolicy::KeepOnServer, &state), Vec::<u32>::new());
        assert_eq!(due(DeletePolicy::AfterRetrieval, &state), vec![1, 2]);
        assert_eq!(due(DeletePolicy::AfterDays(7), &state), vec![1]);
        assert_eq!(due(DeletePolicy::AfterDays(1), &state), vec![1, 2]);
        assert_eq!(
            due(DeletePolicy::WhenDeletedLocally, &state),
            Vec::<u32>::new()
        );
        state.apply(&StateChange::DeletedLocally {
            uid: Uid::new(b"young").unwrap(),
        });
        assert_eq!(due(DeletePolicy::WhenDeletedLocally, &state), vec![2]);
    }

    #[test]
    fn vanished_uids_are_remembered_then_forgotten() {
        let mut state = state_with(&[("gone", 0)]);
        let mut run = SyncRun::new(SyncOptions::default(), 100, "recent:me@gmail.com").unwrap();
        let plan = run.plan(&state, &[]);
        assert_eq!(
            plan.housekeeping,
            vec![StateChange::Vanished {
                uid: Uid::new(b"gone").unwrap(),
                at: 100
            }]
        );
        for c in &plan.housekeeping {
            state.apply(c);
        }
        // Back within 31 days: not fetched again.
        let mut run = SyncRun::new(SyncOptions::default(), 30 * DAY, "u").unwrap();
        let plan = run.plan(&state, &[listed(1, "gone", 5)]);
        assert!(plan.fetch.is_empty());
        assert!(matches!(
            plan.housekeeping[..],
            [StateChange::Reappeared { .. }]
        ));
        // Gone for longer: forgotten.
        let mut run = SyncRun::new(SyncOptions::default(), 32 * DAY, "u").unwrap();
        let plan = run.plan(&state, &[]);
        assert!(matches!(
            plan.housekeeping[..],
            [StateChange::Forget { .. }]
        ));
    }

    #[test]
    fn recent_mode_refuses_deleting_policies() {
        let options = SyncOptions {
            policy: DeletePolicy::AfterRetrieval,
            ..SyncOptions::default()
        };
        let e = SyncRun::new(options, 0, "recent:me@gmail.com").unwrap_err();
        assert_eq!(e.kind(), crate::error::ErrorKind::Config);
    }

    #[test]
    fn sessions_continue_while_the_server_serves_slices() {
        // Any other server lists the whole mailbox: one session saw it all.
        let mut run = SyncRun::new(SyncOptions::default(), 0, "u").unwrap();
        run.session_started(None);
        let listing: Vec<_> = (1..=3).map(|i| listed(i, &format!("u{i}"), 1)).collect();
        let plan = run.plan(&SyncState::default(), &listing);
        let group = plan.fetch.concat();
        run.stored(&group, &vec![Outcome::Stored(1); 3], &Default::default());
        assert!(!run.another_session(), "a whole listing: done");
        let slices = SyncOptions {
            gmail_slices: Some(true),
            ..SyncOptions::default()
        };
        let mut run = SyncRun::new(slices, 0, "u").unwrap();
        run.session_started(None);
        let plan = run.plan(&SyncState::default(), &listing);
        let group = plan.fetch.concat();
        run.stored(&group, &vec![Outcome::Stored(1); 3], &Default::default());
        assert!(run.another_session(), "a slice: the next may follow");
        run.session_started(None);
        let plan = run.plan(&state_with(&[("u1", 0)]), &listing[..1]);
        assert!(plan.fetch.is_empty());
        assert!(!run.another_session(), "nothing new: done");
    }

    #[test]
    fn failures_count_one_attempt_per_sync_and_quarantine_at_the_limit() {
        let options = SyncOptions {
            max_attempts: 2,
            ..SyncOptions::default()
        };
        let listing = vec![listed(1, "bad", 10), listed(2, "busy", 10)];
        let mut state = SyncState::default();
        for sync in 1..=3 {
            let mut run = SyncRun::new(options.clone(), 0, "u").unwrap();
            let plan = run.plan(&state, &listing);
            let group = plan.fetch.concat();
            let outcomes: Vec<Outcome> = group
                .iter()
                .map(|l| match l.uid.as_bytes() {
                    b"bad" => Outcome::Failed("refused".into()),
                    _ => Outcome::Deferred("[SYS/TEMP] later".into()),
                })
                .collect();
            for change in run.stored(&group, &outcomes, &state.failures) {
                state.apply(&change);
            }
            // Not tried again in the same sync.
            assert!(run.plan(&state, &listing).fetch.is_empty());
            let report = run.finish();
            let bad = Uid::new(b"bad").unwrap();
            match sync {
                1 => assert_eq!(report.failed.len(), 2, "{report:?}"),
                2 => {
                    assert_eq!(report.quarantined.len(), 1, "{report:?}");
                    assert!(state.failures[&bad].quarantined);
                }
                _ => {
                    // Quarantined: never planned; the deferred one never counts.
                    assert_eq!(group.len(), 1, "only the deferred one is tried");
                    assert_eq!(report.quarantined[0].uid, bad);
                    assert_eq!(report.failed[0].attempts, 0);
                }
            }
        }
        state.apply(&StateChange::Reprocess {
            uid: Uid::new(b"bad").unwrap(),
        });
        let mut run = SyncRun::new(options, 0, "u").unwrap();
        assert_eq!(
            run.plan(&state, &listing).fetch.concat().len(),
            2,
            "asked for again"
        );
    }

    #[test]
    fn gmail_pops_again_only_what_is_stored_whole() {
        let mut state = state_with(&[("whole", 0)]);
        state.apply(&StateChange::HeadersDelivered {
            uid: Uid::new(b"headers").unwrap(),
            at: 0,
            octets: 10,
            delivery: "h".into(),
        });
        state.apply(&StateChange::Ignored {
            uid: Uid::new(b"left-out").unwrap(),
            at: 0,
            octets: 10,
        });
        let options = SyncOptions {
            gmail_slices: Some(true),
            headers_only_above: Some(5),
            ..SyncOptions::default()
        };
        let mut run = SyncRun::new(options, 0, "me@gmail.com").unwrap();
        let listing = [
            listed(1, "whole", 1),
            listed(2, "headers", 10),
            listed(3, "left-out", 10),
        ];
        let plan = run.plan(&state, &listing);
        let popped: Vec<&[u8]> = plan.pop_again.iter().map(|l| l.uid.as_bytes()).collect();
        assert_eq!(popped, [b"whole".as_slice()]);
    }
}
