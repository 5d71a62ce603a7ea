//! What a sync remembers between runs: each UID seen, when it was first
//! fetched, its listed size, and where it stands. [`StateStore`] is the
//! trait an application implements over its own database; [`StateFile`] is
//! the shipped one, an fsynced append-only journal locked against a second
//! process.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use pop3_proto::Uid;

use crate::mailbox::store::{private, sync_dir};

/// Where a remembered message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UidStatus {
    /// Stored in the sink and recorded; still on the server as far as we know.
    Fetched,
    /// Deleted from the server (DELE committed by QUIT). If the UID is
    /// listed again, the server gave it to a new message.
    Deleted,
    /// Only its header is stored (it was above
    /// [`crate::mailbox::sync::SyncOptions::headers_only_above`]); the whole message
    /// is fetched once asked for ([`crate::mailbox::sync::request_full_fetch`]) or
    /// once the limit allows. Never deleted from the server in this state.
    HeadersOnly,
    /// On the server before the account's first sync, and left out by its
    /// choice ([`crate::mailbox::sync::FirstSync`]): never fetched, never
    /// deleted.
    Ignored,
}

/// One remembered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UidRecord {
    /// When it was first fetched (seconds since the Unix epoch).
    pub first_seen: u64,
    /// Its size as the server listed it when it was fetched: a UID listed
    /// with another size is not taken for the same message when deleting.
    pub octets: u64,
    /// Where it stands.
    pub status: UidStatus,
    /// When it was first missing from the server's listing, if it is.
    pub vanished_at: Option<u64>,
    /// The application deleted it locally: delete it on the server at the
    /// next sync (policy "when deleted locally").
    pub deleted_locally: bool,
    /// The application asked for the whole of a message stored headers
    /// only.
    pub full_requested: bool,
    /// The sink's name of the headers-only copy, until the whole message
    /// has replaced it.
    pub headers_delivery: Option<String>,
    /// What identifies the message stored (recorded when the policy
    /// deletes): a server that rewrites mail (GNU Mailutils on an mbox
    /// changes `Status:` at QUIT) lists another size, and the message is
    /// deleted only once its header shows it is the same.
    pub identity: Option<Identity>,
}

/// What tells a message from another with the same UID: its `Message-ID`
/// and `Date`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The `Message-ID` without its angle brackets.
    pub message_id: String,
    /// The `Date`, in seconds since the Unix epoch, when it parses.
    pub date: Option<i64>,
}

/// A message that could not be fetched: how often, and why the last time.
/// After [`crate::mailbox::sync::SyncOptions::max_attempts`] failures it is
/// quarantined: kept on the server, never deleted, skipped by later syncs
/// until the application asks for it again
/// ([`crate::mailbox::sync::reprocess`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureRecord {
    /// Failed attempts so far (one per sync at most).
    pub attempts: u32,
    /// Its size as listed.
    pub octets: u64,
    /// Why the last attempt failed, in words.
    pub reason: String,
    /// Skipped by later syncs until reprocessed.
    pub quarantined: bool,
}

/// A delivery started but not known to have finished: recorded before the
/// message is written, so a run killed at any instant can tell, at its next
/// start, whether the message reached the sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    /// The message's UID.
    pub uid: Uid,
    /// The sink's name for the delivery (for a Maildir, the file name).
    pub delivery: String,
    /// Whether only the header is being delivered (TOP n 0).
    pub headers_only: bool,
    /// The message's size as listed.
    pub octets: u64,
}

/// One durable change to the state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateChange {
    /// About to deliver `uid` as `delivery`.
    Intent(Intent),
    /// `uid` is durable in the sink (clears its intent).
    Delivered {
        /// The UID.
        uid: Uid,
        /// The time of the fetch.
        at: u64,
        /// Its size as listed.
        octets: u64,
    },
    /// The header alone of `uid` is durable in the sink as `delivery`
    /// (clears its intent).
    HeadersDelivered {
        /// The UID.
        uid: Uid,
        /// The time of the fetch.
        at: u64,
        /// Its size as listed.
        octets: u64,
        /// The sink's name of the headers-only copy.
        delivery: String,
    },
    /// The application wants the whole of `uid`, stored headers only.
    FullFetchRequested {
        /// The UID.
        uid: Uid,
    },
    /// The headers-only copy of `uid` is gone from the sink (the whole
    /// message replaced it).
    HeadersRemoved {
        /// The UID.
        uid: Uid,
    },
    /// The delivery of `uid` did not happen (clears its intent).
    Abandoned {
        /// The UID.
        uid: Uid,
    },
    /// `uid` is no longer in the server's listing.
    Vanished {
        /// The UID.
        uid: Uid,
        /// When that was first seen.
        at: u64,
    },
    /// `uid` is listed again.
    Reappeared {
        /// The UID.
        uid: Uid,
    },
    /// `uid` has been gone long enough to be forgotten.
    Forget {
        /// The UID.
        uid: Uid,
    },
    /// The application deleted `uid` locally.
    DeletedLocally {
        /// The UID.
        uid: Uid,
    },
    /// The server committed the deletion of `uid`.
    DeletedOnServer {
        /// The UID.
        uid: Uid,
    },
    /// The first sync of the account began (first-sync choices apply only
    /// before it).
    Started {
        /// When.
        at: u64,
    },
    /// `uid` was on the server before the first sync and is left out by
    /// its choice: remembered, never fetched, never deleted.
    Ignored {
        /// The UID.
        uid: Uid,
        /// When the first sync saw it.
        at: u64,
        /// Its size as listed.
        octets: u64,
    },
    /// Fetching `uid` failed for the `attempts`-th time (clears its
    /// intent); `quarantined` once it is skipped until reprocessed.
    Failed {
        /// The UID.
        uid: Uid,
        /// Its size as listed.
        octets: u64,
        /// Failed attempts so far, this one included.
        attempts: u32,
        /// Whether it is quarantined now.
        quarantined: bool,
        /// Why, in words.
        reason: String,
    },
    /// What identifies the message stored as `uid`.
    Identified {
        /// The UID.
        uid: Uid,
        /// Its Message-ID and Date.
        identity: Identity,
    },
    /// The server lists `uid` with another size, and its header showed it
    /// is the message stored (a server that rewrites mail).
    Resized {
        /// The UID.
        uid: Uid,
        /// Its size as listed now.
        octets: u64,
    },
    /// The application asked for `uid` again: its failures are forgotten
    /// and the next sync tries it.
    Reprocess {
        /// The UID.
        uid: Uid,
    },
}

/// The whole remembered state of one account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncState {
    /// Every remembered UID.
    pub records: HashMap<Uid, UidRecord>,
    /// Deliveries begun and not known to have finished.
    pub pending: Vec<Intent>,
    /// Messages that could not be fetched, and those quarantined.
    pub failures: HashMap<Uid, FailureRecord>,
    /// When the account's first sync began, if it has.
    pub started: Option<u64>,
}

impl SyncState {
    /// Applies one change (the same rule for every store). A state that
    /// holds any change has begun (a journal written before first syncs
    /// were marked counts too, even once all its records are forgotten).
    pub fn apply(&mut self, change: &StateChange) {
        if !matches!(change, StateChange::Started { .. }) {
            self.started.get_or_insert(0);
        }
        match change {
            StateChange::Intent(intent) => {
                self.pending.retain(|p| p.uid != intent.uid);
                self.pending.push(intent.clone());
            }
            StateChange::Delivered { uid, at, octets } => {
                self.pending.retain(|p| &p.uid != uid);
                self.failures.remove(uid);
                let fresh = UidRecord {
                    first_seen: *at,
                    octets: *octets,
                    status: UidStatus::Fetched,
                    vanished_at: None,
                    deleted_locally: false,
                    full_requested: false,
                    headers_delivery: None,
                    identity: None,
                };
                match self.records.get_mut(uid) {
                    None => {
                        self.records.insert(uid.clone(), fresh);
                    }
                    // The whole of a message first stored headers only: its
                    // headers copy is removed next.
                    Some(r) if r.status == UidStatus::HeadersOnly => {
                        r.status = UidStatus::Fetched;
                        r.octets = *octets;
                        r.full_requested = false;
                    }
                    // A UID the server reused after we deleted its message:
                    // a new message.
                    Some(r) if r.status == UidStatus::Deleted => *r = fresh,
                    Some(_) => {}
                }
            }
            StateChange::HeadersDelivered {
                uid,
                at,
                octets,
                delivery,
            } => {
                self.pending.retain(|p| &p.uid != uid);
                self.failures.remove(uid);
                let fresh = UidRecord {
                    first_seen: *at,
                    octets: *octets,
                    status: UidStatus::HeadersOnly,
                    vanished_at: None,
                    deleted_locally: false,
                    full_requested: false,
                    headers_delivery: Some(delivery.clone()),
                    identity: None,
                };
                match self.records.get_mut(uid) {
                    None => {
                        self.records.insert(uid.clone(), fresh);
                    }
                    Some(r) if r.status == UidStatus::Deleted => *r = fresh,
                    Some(_) => {}
                }
            }
            StateChange::FullFetchRequested { uid } => {
                if let Some(r) = self.records.get_mut(uid) {
                    r.full_requested = r.status == UidStatus::HeadersOnly;
                }
            }
            // Only once the whole message has replaced the copy.
            StateChange::HeadersRemoved { uid } => {
                if let Some(r) = self.records.get_mut(uid) {
                    if r.status != UidStatus::HeadersOnly {
                        r.headers_delivery = None;
                    }
                }
            }
            StateChange::Abandoned { uid } => self.pending.retain(|p| &p.uid != uid),
            StateChange::Vanished { uid, at } => {
                if let Some(r) = self.records.get_mut(uid) {
                    r.vanished_at.get_or_insert(*at);
                }
            }
            StateChange::Reappeared { uid } => {
                if let Some(r) = self.records.get_mut(uid) {
                    r.vanished_at = None;
                }
            }
            StateChange::Forget { uid } => {
                self.records.remove(uid);
                self.failures.remove(uid);
            }
            StateChange::DeletedLocally { uid } => {
                if let Some(r) = self.records.get_mut(uid) {
                    r.deleted_locally = true;
                }
            }
            StateChange::DeletedOnServer { uid } => {
                if let Some(r) = self.records.get_mut(uid) {
                    r.status = UidStatus::Deleted;
                    r.full_requested = false;
                }
            }
            StateChange::Failed {
                uid,
                octets,
                attempts,
                quarantined,
                reason,
            } => {
                self.pending.retain(|p| &p.uid != uid);
                self.failures.insert(
                    uid.clone(),
                    FailureRecord {
                        attempts: *attempts,
                        octets: *octets,
                        reason: reason.clone(),
                        quarantined: *quarantined,
                    },
                );
            }
            StateChange::Reprocess { uid } => {
                self.failures.remove(uid);
            }
            StateChange::Identified { uid, identity } => {
                if let Some(r) = self.records.get_mut(uid) {
                    r.identity = Some(identity.clone());
                }
            }
            StateChange::Resized { uid, octets } => {
                if let Some(r) = self.records.get_mut(uid) {
                    r.octets = *octets;
                }
            }
            StateChange::Started { at } => {
                self.started.get_or_insert(*at);
            }
            StateChange::Ignored { uid, at, octets } => {
                self.records.entry(uid.clone()).or_insert(UidRecord {
                    first_seen: *at,
                    octets: *octets,
                    status: UidStatus::Ignored,
                    vanished_at: None,
                    deleted_locally: false,
                    full_requested: false,
                    headers_delivery: None,
                    identity: None,
                });
            }
        }
    }

    /// Whether this is the account's first sync: it never began one, and
    /// remembers nothing (a state written before first syncs were marked,
    /// with records, is not new).
    pub fn is_new(&self) -> bool {
        self.started.is_none()
            && self.records.is_empty()
            && self.failures.is_empty()
            && self.pending.is_empty()
    }

    /// Whether `uid` has been fetched before (whatever became of it since).
    pub fn knows(&self, uid: &Uid) -> bool {
        self.records.contains_key(uid)
    }
}

/// Where a sync keeps its state. [`StateStore::apply`] must be durable when
/// it returns: the sync relies on it to order "stored, then recorded, then
/// deleted".
pub trait StateStore {
    /// Reads the whole state.
    fn load(&mut self) -> io::Result<SyncState>;
    /// Records `changes`, durably, in order.
    fn apply(&mut self, changes: &[StateChange]) -> io::Result<()>;
    /// Called before any DELE and before a QUIT that changes the server:
    /// fails if this sync may no longer change it (a
    /// [`Fenced`](crate::lease::Fenced) store whose lease was lost). A
    /// store that answers for itself says `Ok(())`; a wrapper must ask
    /// what it wraps, or the fence is lost.
    fn confirm_writer(&mut self) -> io::Result<()>;
}

/// A state held in memory (tests, or an application that persists it
/// itself through [`MemoryState::state`]).
#[derive(Debug, Clone, Default)]
pub struct MemoryState {
    state: SyncState,
}

impl MemoryState {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// The state as it stands.
    pub fn state(&self) -> &SyncState {
        &self.state
    }
}

impl StateStore for MemoryState {
    fn load(&mut self) -> io::Result<SyncState> {
        Ok(self.state.clone())
    }

    fn apply(&mut self, changes: &[StateChange]) -> io::Result<()> {
        for c in changes {
            self.state.apply(c);
        }
        Ok(())
    }

    fn confirm_writer(&mut self) -> io::Result<()> {
        Ok(())
    }
}

const MAGIC: &str = "pop3-sync-state 2";

/// The shipped state store: one file per account, an append-only journal of
/// [`StateChange`]s, each batch written and fsynced before `apply` returns,
/// compacted (temp file, fsync, rename, directory fsync) when it has grown.
/// An exclusive lock on a companion `.lock` file (never replaced, so a
/// compaction cannot let a second process in) keeps a second process from
/// syncing the same account at the same time; it is released when the
/// value is dropped (or the process dies).
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    key: String,
    file: File,
    /// Held for its lock.
    _lock: File,
    /// The journal's length: every byte of it a complete line.
    len: u64,
    state: SyncState,
    lines: usize,
}

/// `path` with `suffix` appended to its file name (`state` -> `state.lock`).
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name: OsString = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

impl StateFile {
    /// Opens (creating if needed) the state of account `key` (host, port and
    /// user: [`crate::mailbox::account::Account::state_key`]) at `path`, and locks it.
    /// A file kept for another account is refused.
    pub fn open(path: impl AsRef<Path>, key: &str) -> io::Result<Self> {
        let path = path.as_ref().to_path_buf();
        if key.contains(['\r', '\n']) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the account key must not contain line breaks",
            ));
        }
        let lock_file = private(
            File::options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false),
        )
        .open(beside(&path, ".lock"))?;
        lock(&lock_file, &path)?;
        let file = private(File::options().read(true).append(true).create(true)).open(&path)?;
        let mut this = Self {
            path,
            key: key.to_owned(),
            file,
            _lock: lock_file,
            len: 0,
            state: SyncState::default(),
            lines: 0,
        };
        this.read()?;
        if this.lines == 0 {
            this.write_lines(&[format!("{MAGIC} {}", this.key)])?;
            if let Some(dir) = this.path.parent() {
                sync_dir(dir)?;
            }
        } else if this.lines > 2 * this.state.records.len() + 1000 {
            this.compact()?;
        }
        Ok(this)
    }

    fn read(&mut self) -> io::Result<()> {
        let mut reader = BufReader::new(File::open(&self.path)?);
        let mut line = Vec::new();
        let mut number = 0usize;
        let mut complete = 0u64;
        loop {
            line.clear();
            let n = reader.read_until(b'\n', &mut line)?;
            if n == 0 {
                break;
            }
            // A line without its newline was cut by a crash (or a full disk)
            // mid-append: it was never acknowledged, so it is dropped below.
            let Some(text) = line.strip_suffix(b"\n") else {
                break;
            };
            complete += n as u64;
            let text = String::from_utf8_lossy(text);
            number += 1;
            if number == 1 {
                let expected = format!("{MAGIC} {}", self.key);
                if text != expected {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "{} is not the sync state of {} (it starts \"{}\")",
                            self.path.display(),
                            self.key,
                            pop3_proto::escape::snippet(text.as_bytes())
                        ),
                    ));
                }
                continue;
            }
            let change = parse_change(&text).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{} line {number} is damaged: \"{}\"",
                        self.path.display(),
                        pop3_proto::escape::snippet(text.as_bytes())
                    ),
                )
            })?;
            self.state.apply(&change);
        }
        self.lines = number;
        self.len = complete;
        // Cut a torn last line away before anything is appended after it.
        if self.file.metadata()?.len() > complete {
            self.file.set_len(complete)?;
            self.file.sync_data()?;
        }
        Ok(())
    }

    fn write_lines(&mut self, lines: &[String]) -> io::Result<()> {
        let mut out = Vec::new();
        for l in lines {
            out.extend_from_slice(l.as_bytes());
            out.push(b'\n');
        }
        let written = self
            .file
            .write_all(&out)
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            // Leave no partial line behind (a full disk): the journal ends
            // where the last acknowledged write ended.
            let _ = self.file.set_len(self.len);
            return Err(e);
        }
        self.len += out.len() as u64;
        self.lines += lines.len();
        Ok(())
    }

    /// Rewrites the journal as a snapshot of the current state.
    fn compact(&mut self) -> io::Result<()> {
        let tmp = beside(&self.path, ".compacting");
        let mut lines = vec![format!("{MAGIC} {}", self.key)];
        lines.extend(snapshot_lines(&self.state));
        let mut text = lines.join("\n");
        text.push('\n');
        {
            let mut f =
                private(File::options().write(true).create(true).truncate(true)).open(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
        }
        let file = File::options().read(true).append(true).open(&tmp)?;
        fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            sync_dir(dir)?;
        }
        self.file = file;
        self.len = text.len() as u64;
        self.lines = lines.len();
        Ok(())
    }

    /// The state as it stands.
    pub fn state(&self) -> &SyncState {
        &self.state
    }
}

/// The changes that rebuild `record` from nothing.
/// The lines that rebuild `state` from nothing (a journal compacted).
pub(crate) fn snapshot_lines(state: &SyncState) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(at) = state.started {
        lines.push(format_change(&StateChange::Started { at }));
    }
    for (uid, r) in &state.records {
        lines.extend(snapshot(uid, r).iter().map(format_change));
    }
    for p in &state.pending {
        lines.push(format_change(&StateChange::Intent(p.clone())));
    }
    for (uid, f) in &state.failures {
        lines.push(format_change(&StateChange::Failed {
            uid: uid.clone(),
            octets: f.octets,
            attempts: f.attempts,
            quarantined: f.quarantined,
            reason: f.reason.clone(),
        }));
    }
    lines
}

fn snapshot(uid: &Uid, r: &UidRecord) -> Vec<StateChange> {
    let uid = || uid.clone();
    let mut out = Vec::new();
    if r.status == UidStatus::Ignored {
        out.push(StateChange::Ignored {
            uid: uid(),
            at: r.first_seen,
            octets: r.octets,
        });
    }
    if let Some(delivery) = &r.headers_delivery {
        out.push(StateChange::HeadersDelivered {
            uid: uid(),
            at: r.first_seen,
            octets: r.octets,
            delivery: delivery.clone(),
        });
    }
    if !matches!(r.status, UidStatus::HeadersOnly | UidStatus::Ignored) {
        out.push(StateChange::Delivered {
            uid: uid(),
            at: r.first_seen,
            octets: r.octets,
        });
    }
    if r.full_requested {
        out.push(StateChange::FullFetchRequested { uid: uid() });
    }
    if r.status == UidStatus::Deleted {
        out.push(StateChange::DeletedOnServer { uid: uid() });
    }
    if let Some(at) = r.vanished_at {
        out.push(StateChange::Vanished { uid: uid(), at });
    }
    if r.deleted_locally {
        out.push(StateChange::DeletedLocally { uid: uid() });
    }
    if let Some(identity) = &r.identity {
        out.push(StateChange::Identified {
            uid: uid(),
            identity: identity.clone(),
        });
    }
    out
}

impl StateStore for StateFile {
    fn load(&mut self) -> io::Result<SyncState> {
        Ok(self.state.clone())
    }

    fn apply(&mut self, changes: &[StateChange]) -> io::Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        for change in changes {
            let name = match change {
                StateChange::Intent(i) => Some(&i.delivery),
                StateChange::HeadersDelivered { delivery, .. } => Some(delivery),
                _ => None,
            };
            if let Some(name) = name {
                if name.is_empty() || name.contains(char::is_whitespace) {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!(
                            "the sink's name \"{}\" cannot be recorded: it must be non-empty with no white space",
                            name.escape_debug()
                        ),
                    ));
                }
            }
        }
        let lines: Vec<String> = changes.iter().map(format_change).collect();
        self.write_lines(&lines)?;
        for c in changes {
            self.state.apply(c);
        }
        Ok(())
    }

    fn confirm_writer(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn lock(file: &File, path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use rustix::fs::{flock, FlockOperation};
        flock(file, FlockOperation::NonBlockingLockExclusive).map_err(|e| {
            if e == rustix::io::Errno::WOULDBLOCK {
                io::Error::new(
                    io::ErrorKind::WouldBlock,
                    format!(
                        "{} is in use: another sync of this account is running",
                        path.display()
                    ),
                )
            } else {
                io::Error::from(e)
            }
        })
    }
    #[cfg(not(unix))]
    {
        let _ = (file, path);
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

pub(crate) fn format_change(change: &StateChange) -> String {
    match change {
        StateChange::Intent(i) => format!(
            "{} {} {} {}",
            if i.headers_only { "J" } else { "I" },
            hex(i.uid.as_bytes()),
            i.delivery,
            i.octets
        ),
        StateChange::Delivered { uid, at, octets } => {
            format!("D {} {at} {octets}", hex(uid.as_bytes()))
        }
        StateChange::HeadersDelivered {
            uid,
            at,
            octets,
            delivery,
        } => format!("H {} {at} {octets} {delivery}", hex(uid.as_bytes())),
        StateChange::FullFetchRequested { uid } => format!("Q {}", hex(uid.as_bytes())),
        StateChange::HeadersRemoved { uid } => format!("Y {}", hex(uid.as_bytes())),
        StateChange::Abandoned { uid } => format!("A {}", hex(uid.as_bytes())),
        StateChange::Vanished { uid, at } => format!("V {} {at}", hex(uid.as_bytes())),
        StateChange::Reappeared { uid } => format!("R {}", hex(uid.as_bytes())),
        StateChange::Forget { uid } => format!("F {}", hex(uid.as_bytes())),
        StateChange::DeletedLocally { uid } => format!("L {}", hex(uid.as_bytes())),
        StateChange::DeletedOnServer { uid } => format!("X {}", hex(uid.as_bytes())),
        // The reason is free text: hex, as UIDs are, so a line stays one line.
        StateChange::Failed {
            uid,
            octets,
            attempts,
            quarantined,
            reason,
        } => format!(
            "T {} {octets} {attempts} {} {}",
            hex(uid.as_bytes()),
            u8::from(*quarantined),
            hex(reason.as_bytes()),
        ),
        StateChange::Reprocess { uid } => format!("P {}", hex(uid.as_bytes())),
        // The one change without a UID.
        StateChange::Started { at } => format!("S {at}"),
        StateChange::Ignored { uid, at, octets } => {
            format!("G {} {at} {octets}", hex(uid.as_bytes()))
        }
        // The Message-ID in hex (any bytes), the date or "-".
        StateChange::Identified { uid, identity } => format!(
            "M {} {} {}",
            hex(uid.as_bytes()),
            hex(identity.message_id.as_bytes()),
            identity
                .date
                .map_or_else(|| "-".to_owned(), |d| d.to_string())
        ),
        StateChange::Resized { uid, octets } => format!("Z {} {octets}", hex(uid.as_bytes())),
    }
}

pub(crate) fn parse_change(line: &str) -> Option<StateChange> {
    let mut parts = line.split(' ');
    let tag = parts.next()?;
    if tag == "S" {
        let at = parts.next()?.parse().ok()?;
        return parts
            .next()
            .is_none()
            .then_some(StateChange::Started { at });
    }
    let uid = Uid::new(&unhex(parts.next()?)?)?;
    let rest: Vec<&str> = parts.collect();
    let number = |i: usize| rest.get(i).and_then(|r| r.parse::<u64>().ok());
    let name = |i: usize| {
        rest.get(i)
            .filter(|r| !r.is_empty())
            .map(|r| (*r).to_owned())
    };
    Some(match (tag, rest.len()) {
        ("I" | "J", 2) => StateChange::Intent(Intent {
            uid,
            delivery: name(0)?,
            headers_only: tag == "J",
            octets: number(1)?,
        }),
        ("D", 2) => StateChange::Delivered {
            uid,
            at: number(0)?,
            octets: number(1)?,
        },
        ("H", 3) => StateChange::HeadersDelivered {
            uid,
            at: number(0)?,
            octets: number(1)?,
            delivery: name(2)?,
        },
        ("V", 1) => StateChange::Vanished {
            uid,
            at: number(0)?,
        },
        ("Q", 0) => StateChange::FullFetchRequested { uid },
        ("Y", 0) => StateChange::HeadersRemoved { uid },
        ("A", 0) => StateChange::Abandoned { uid },
        ("R", 0) => StateChange::Reappeared { uid },
        ("F", 0) => StateChange::Forget { uid },
        ("L", 0) => StateChange::DeletedLocally { uid },
        ("X", 0) => StateChange::DeletedOnServer { uid },
        ("T", 4) => StateChange::Failed {
            uid,
            octets: number(0)?,
            attempts: u32::try_from(number(1)?).ok()?,
            quarantined: match rest.get(2) {
                Some(&"0") => false,
                Some(&"1") => true,
                _ => return None,
            },
            // An empty reason is an empty field.
            reason: String::from_utf8(unhex(rest.get(3)?)?).ok()?,
        },
        ("P", 0) => StateChange::Reprocess { uid },
        ("M", 2) => StateChange::Identified {
            uid,
            identity: Identity {
                message_id: String::from_utf8(unhex(rest.first()?)?).ok()?,
                date: match rest.get(1)? {
                    &"-" => None,
                    d => Some(d.parse().ok()?),
                },
            },
        },
        ("Z", 1) => StateChange::Resized {
            uid,
            octets: number(0)?,
        },
        ("G", 2) => StateChange::Ignored {
            uid,
            at: number(0)?,
            octets: number(1)?,
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn uid(s: &str) -> Uid {
        Uid::new(s.as_bytes()).unwrap()
    }

    fn intent(u: &str, name: &str) -> StateChange {
        StateChange::Intent(Intent {
            uid: uid(u),
            delivery: name.into(),
            headers_only: false,
            octets: 10,
        })
    }

    #[test]
    fn the_journal_survives_reopening_and_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        {
            let mut f = StateFile::open(&path, "h:995:u").unwrap();
            f.apply(&[
                intent("a", "n1"),
                StateChange::Delivered {
                    uid: uid("a"),
                    at: 5,
                    octets: 10,
                },
                intent("b", "n2"),
            ])
            .unwrap();
            // A second opener is refused while this one holds the lock.
            let e = StateFile::open(&path, "h:995:u").unwrap_err();
            assert!(e.to_string().contains("another sync"), "{e}");
        }
        // A crash (or a full disk) mid-append leaves half a line: here one
        // that would read as a delivery of UID "c" if a later append
        // completed it.
        fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"D 63 9")
            .unwrap();
        {
            let mut f = StateFile::open(&path, "h:995:u").unwrap();
            let s = f.state();
            assert_eq!(s.records[&uid("a")].first_seen, 5);
            assert!(!s.knows(&uid("c")));
            assert_eq!(s.pending.len(), 1);
            assert_eq!(s.pending[0].delivery, "n2");
            // The torn line is gone before the next append.
            f.apply(&[StateChange::Abandoned { uid: uid("b") }])
                .unwrap();
        }
        let f = StateFile::open(&path, "h:995:u").unwrap();
        assert!(f.state().pending.is_empty());
        assert!(!f.state().knows(&uid("c")), "no record forged");
        drop(f);
        let e = StateFile::open(&path, "other:110:u").unwrap_err();
        assert!(e.to_string().contains("not the sync state"), "{e}");
        let mut f = StateFile::open(&path, "h:995:u").unwrap();
        assert_eq!(
            f.apply(&[intent("d", "two words")]).unwrap_err().kind(),
            io::ErrorKind::InvalidInput,
            "refused before anything is written"
        );
        drop(f);
        assert!(StateFile::open(&path, "h:995:u")
            .unwrap()
            .state()
            .pending
            .is_empty());
    }

    #[test]
    fn a_torn_first_line_is_started_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        fs::write(&path, b"pop3-sync-st").unwrap();
        let mut f = StateFile::open(&path, "k").unwrap();
        f.apply(&[intent("a", "n")]).unwrap();
        drop(f);
        assert_eq!(
            StateFile::open(&path, "k").unwrap().state().pending.len(),
            1
        );
    }

    #[test]
    fn the_lock_holds_across_a_compaction() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let mut f = StateFile::open(&path, "k").unwrap();
        f.compact().unwrap();
        let e = StateFile::open(&path, "k").unwrap_err();
        assert!(e.to_string().contains("another sync"), "{e}");
    }

    #[test]
    fn a_reused_uid_after_our_deletion_is_a_new_message() {
        let mut s = SyncState::default();
        let u = uid("r");
        s.apply(&StateChange::Delivered {
            uid: u.clone(),
            at: 1,
            octets: 10,
        });
        s.apply(&StateChange::DeletedOnServer { uid: u.clone() });
        s.apply(&StateChange::Delivered {
            uid: u.clone(),
            at: 9,
            octets: 20,
        });
        let r = &s.records[&u];
        assert_eq!(
            (r.status, r.first_seen, r.octets),
            (UidStatus::Fetched, 9, 20)
        );
    }

    fn change() -> impl Strategy<Value = StateChange> {
        let uid = proptest::collection::vec(any::<u8>(), 1..20)
            .prop_filter_map("a UID", |b| Uid::new(&b));
        (
            0u8..17,
            uid,
            any::<u64>(),
            any::<u64>(),
            "[A-Za-z0-9._:,]{1,30}",
            ".{0,40}",
        )
            .prop_map(|(tag, uid, at, octets, name, reason)| match tag {
                0 => StateChange::Intent(Intent {
                    uid,
                    delivery: name,
                    headers_only: at % 2 == 0,
                    octets,
                }),
                1 => StateChange::Delivered { uid, at, octets },
                2 => StateChange::Abandoned { uid },
                3 => StateChange::Vanished { uid, at },
                4 => StateChange::Reappeared { uid },
                5 => StateChange::Forget { uid },
                6 => StateChange::DeletedLocally { uid },
                7 => StateChange::DeletedOnServer { uid },
                8 => StateChange::HeadersDelivered {
                    uid,
                    at,
                    octets,
                    delivery: name,
                },
                9 => StateChange::FullFetchRequested { uid },
                10 => StateChange::Failed {
                    uid,
                    octets,
                    attempts: (at % 7) as u32,
                    quarantined: at % 2 == 0,
                    reason,
                },
                11 => StateChange::Reprocess { uid },
                12 => StateChange::Started { at },
                13 => StateChange::Ignored { uid, at, octets },
                14 => StateChange::Identified {
                    uid,
                    identity: Identity {
                        message_id: reason,
                        date: (at % 3 != 0).then_some(at as i64),
                    },
                },
                15 => StateChange::Resized { uid, octets },
                _ => StateChange::HeadersRemoved { uid },
            })
    }

    #[cfg(unix)]
    #[test]
    fn the_state_file_stays_private_through_compaction() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let mut f = StateFile::open(&path, "k").unwrap();
        f.apply(&[intent("a", "n1")]).unwrap();
        f.compact().unwrap();
        for file in [path.clone(), beside(&path, ".lock")] {
            let mode = fs::metadata(&file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", file.display());
        }
    }

    proptest! {
        // Each case fsyncs a file: a few dozen cases say enough.
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn journal_lines_round_trip(c in change()) {
            prop_assert_eq!(parse_change(&format_change(&c)), Some(c));
        }

        #[test]
        fn the_file_holds_what_memory_holds(changes in proptest::collection::vec(change(), 0..40)) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("s");
            let mut memory = MemoryState::new();
            {
                let mut file = StateFile::open(&path, "k").unwrap();
                for c in &changes {
                    file.apply(std::slice::from_ref(c)).unwrap();
                    memory.apply(std::slice::from_ref(c)).unwrap();
                }
                file.compact().unwrap();
            }
            let file = StateFile::open(&path, "k").unwrap();
            prop_assert_eq!(file.state(), memory.state());
        }
    }
}
