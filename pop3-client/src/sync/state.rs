//! What a sync remembers between runs: each UID seen, when it was first
//! fetched, and where it stands. [`StateStore`] is the trait an application
//! implements over its own database; [`StateFile`] is the shipped one, an
//! fsynced append-only journal locked against a second process.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use pop3_proto::Uid;

use crate::store::sync_dir;

/// Where a remembered message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UidStatus {
    /// Stored in the sink and recorded; still on the server as far as we know.
    Fetched,
    /// Deleted from the server (DELE committed by QUIT).
    Deleted,
    /// Only its header is stored (it was above
    /// [`crate::sync::SyncOptions::headers_only_above`]); the whole message
    /// is fetched once asked for ([`crate::sync::request_full_fetch`]) or
    /// once the limit allows. Never deleted from the server in this state.
    HeadersOnly,
}

/// One remembered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UidRecord {
    /// When it was first fetched (seconds since the Unix epoch).
    pub first_seen: u64,
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
    },
    /// The header alone of `uid` is durable in the sink (clears its intent).
    HeadersDelivered {
        /// The UID.
        uid: Uid,
        /// The time of the fetch.
        at: u64,
    },
    /// The application wants the whole of `uid`, stored headers only.
    FullFetchRequested {
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
}

/// The whole remembered state of one account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncState {
    /// Every remembered UID.
    pub records: HashMap<Uid, UidRecord>,
    /// Deliveries begun and not known to have finished.
    pub pending: Vec<Intent>,
}

impl SyncState {
    /// Applies one change (the same rule for every store).
    pub fn apply(&mut self, change: &StateChange) {
        match change {
            StateChange::Intent(intent) => {
                self.pending.retain(|p| p.uid != intent.uid);
                self.pending.push(intent.clone());
            }
            StateChange::Delivered { uid, at } => {
                self.pending.retain(|p| &p.uid != uid);
                let record = self.records.entry(uid.clone()).or_insert(UidRecord {
                    first_seen: *at,
                    status: UidStatus::Fetched,
                    vanished_at: None,
                    deleted_locally: false,
                    full_requested: false,
                });
                // The whole of a message first stored headers only.
                if record.status == UidStatus::HeadersOnly {
                    record.status = UidStatus::Fetched;
                    record.full_requested = false;
                }
            }
            StateChange::HeadersDelivered { uid, at } => {
                self.pending.retain(|p| &p.uid != uid);
                self.records.entry(uid.clone()).or_insert(UidRecord {
                    first_seen: *at,
                    status: UidStatus::HeadersOnly,
                    vanished_at: None,
                    deleted_locally: false,
                    full_requested: false,
                });
            }
            StateChange::FullFetchRequested { uid } => {
                if let Some(r) = self.records.get_mut(uid) {
                    r.full_requested = r.status == UidStatus::HeadersOnly;
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
            }
            StateChange::DeletedLocally { uid } => {
                if let Some(r) = self.records.get_mut(uid) {
                    r.deleted_locally = true;
                }
            }
            StateChange::DeletedOnServer { uid } => {
                if let Some(r) = self.records.get_mut(uid) {
                    r.status = UidStatus::Deleted;
                }
            }
        }
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
}

const MAGIC: &str = "pop3-sync-state 1";

/// The shipped state store: one file per account, an append-only journal of
/// [`StateChange`]s, each batch written and fsynced before `apply` returns,
/// compacted (temp file, fsync, rename, directory fsync) when it has grown.
/// An exclusive lock on the file keeps a second process from syncing the
/// same account at the same time; it is released when the value is dropped
/// (or the process dies).
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    key: String,
    file: File,
    state: SyncState,
    lines: usize,
}

impl StateFile {
    /// Opens (creating if needed) the state of account `key` (host, port and
    /// user: [`crate::account::Account::state_key`]) at `path`, and locks it.
    /// A file kept for another account is refused.
    pub fn open(path: impl AsRef<Path>, key: &str) -> io::Result<Self> {
        let path = path.as_ref().to_path_buf();
        if key.contains(['\r', '\n']) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the account key must not contain line breaks",
            ));
        }
        let file = File::options()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)?;
        lock(&file, &path)?;
        let mut this = Self {
            path,
            key: key.to_owned(),
            file,
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
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            // A line without its newline was cut by a crash mid-append: it
            // was never acknowledged, so it is ignored.
            let Some(text) = line.strip_suffix(b"\n") else {
                break;
            };
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
        Ok(())
    }

    fn write_lines(&mut self, lines: &[String]) -> io::Result<()> {
        let mut out = Vec::new();
        for l in lines {
            out.extend_from_slice(l.as_bytes());
            out.push(b'\n');
        }
        self.file.write_all(&out)?;
        self.file.sync_data()?;
        self.lines += lines.len();
        Ok(())
    }

    /// Rewrites the journal as a snapshot of the current state.
    fn compact(&mut self) -> io::Result<()> {
        let tmp = self.path.with_extension("compacting");
        let mut lines = vec![format!("{MAGIC} {}", self.key)];
        for (uid, r) in &self.state.records {
            lines.push(format_change(&if r.status == UidStatus::HeadersOnly {
                StateChange::HeadersDelivered {
                    uid: uid.clone(),
                    at: r.first_seen,
                }
            } else {
                StateChange::Delivered {
                    uid: uid.clone(),
                    at: r.first_seen,
                }
            }));
            if r.full_requested {
                lines.push(format_change(&StateChange::FullFetchRequested {
                    uid: uid.clone(),
                }));
            }
            if r.status == UidStatus::Deleted {
                lines.push(format_change(&StateChange::DeletedOnServer {
                    uid: uid.clone(),
                }));
            }
            if let Some(at) = r.vanished_at {
                lines.push(format_change(&StateChange::Vanished {
                    uid: uid.clone(),
                    at,
                }));
            }
            if r.deleted_locally {
                lines.push(format_change(&StateChange::DeletedLocally {
                    uid: uid.clone(),
                }));
            }
        }
        for p in &self.state.pending {
            lines.push(format_change(&StateChange::Intent(p.clone())));
        }
        let mut text = lines.join("\n");
        text.push('\n');
        {
            let mut f = File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
        }
        // The lock is on the open file: take it on the new one before the
        // rename makes it the state, so no second process slips in.
        let file = File::options().read(true).append(true).open(&tmp)?;
        lock(&file, &tmp)?;
        fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            sync_dir(dir)?;
        }
        self.file = file;
        self.lines = lines.len();
        Ok(())
    }

    /// The state as it stands.
    pub fn state(&self) -> &SyncState {
        &self.state
    }
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
            if let StateChange::Intent(i) = change {
                if i.delivery.is_empty() || i.delivery.contains(char::is_whitespace) {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!(
                            "the sink's name \"{}\" cannot be recorded: it must be non-empty with no white space",
                            i.delivery.escape_debug()
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

fn format_change(change: &StateChange) -> String {
    match change {
        StateChange::Intent(i) => format!(
            "{} {} {}",
            if i.headers_only { "J" } else { "I" },
            hex(i.uid.as_bytes()),
            i.delivery
        ),
        StateChange::HeadersDelivered { uid, at } => format!("H {} {at}", hex(uid.as_bytes())),
        StateChange::FullFetchRequested { uid } => format!("Q {}", hex(uid.as_bytes())),
        StateChange::Delivered { uid, at } => format!("D {} {at}", hex(uid.as_bytes())),
        StateChange::Abandoned { uid } => format!("A {}", hex(uid.as_bytes())),
        StateChange::Vanished { uid, at } => format!("V {} {at}", hex(uid.as_bytes())),
        StateChange::Reappeared { uid } => format!("R {}", hex(uid.as_bytes())),
        StateChange::Forget { uid } => format!("F {}", hex(uid.as_bytes())),
        StateChange::DeletedLocally { uid } => format!("L {}", hex(uid.as_bytes())),
        StateChange::DeletedOnServer { uid } => format!("X {}", hex(uid.as_bytes())),
    }
}

fn parse_change(line: &str) -> Option<StateChange> {
    let mut parts = line.split(' ');
    let tag = parts.next()?;
    let uid = Uid::new(&unhex(parts.next()?)?)?;
    let rest = parts.next();
    if parts.next().is_some() {
        return None;
    }
    let number = || rest.and_then(|r| r.parse::<u64>().ok());
    Some(match tag {
        "I" | "J" => StateChange::Intent(Intent {
            uid,
            delivery: rest.filter(|r| !r.is_empty())?.to_owned(),
            headers_only: tag == "J",
        }),
        "H" => StateChange::HeadersDelivered { uid, at: number()? },
        "Q" if rest.is_none() => StateChange::FullFetchRequested { uid },
        "D" => StateChange::Delivered { uid, at: number()? },
        "V" => StateChange::Vanished { uid, at: number()? },
        "A" if rest.is_none() => StateChange::Abandoned { uid },
        "R" if rest.is_none() => StateChange::Reappeared { uid },
        "F" if rest.is_none() => StateChange::Forget { uid },
        "L" if rest.is_none() => StateChange::DeletedLocally { uid },
        "X" if rest.is_none() => StateChange::DeletedOnServer { uid },
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

    #[test]
    fn the_journal_survives_reopening_and_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        {
            let mut f = StateFile::open(&path, "h:995:u").unwrap();
            f.apply(&[
                StateChange::Intent(Intent {
                    uid: uid("a"),
                    delivery: "n1".into(),
                    headers_only: false,
                }),
                StateChange::Delivered {
                    uid: uid("a"),
                    at: 5,
                },
                StateChange::Intent(Intent {
                    uid: uid("b"),
                    delivery: "n2".into(),
                    headers_only: false,
                }),
            ])
            .unwrap();
            // A second opener is refused while this one holds the lock.
            let e = StateFile::open(&path, "h:995:u").unwrap_err();
            assert!(e.to_string().contains("another sync"), "{e}");
        }
        // A crash mid-append leaves half a line.
        fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"D 63 9")
            .unwrap();
        let f = StateFile::open(&path, "h:995:u").unwrap();
        let s = f.state();
        assert_eq!(s.records[&uid("a")].first_seen, 5);
        assert!(!s.knows(&uid("c")));
        assert_eq!(s.pending.len(), 1);
        assert_eq!(s.pending[0].delivery, "n2");
        drop(f);
        let e = StateFile::open(&path, "other:110:u").unwrap_err();
        assert!(e.to_string().contains("not the sync state"), "{e}");
        let mut f = StateFile::open(&path, "h:995:u").unwrap();
        let bad = StateChange::Intent(Intent {
            uid: uid("d"),
            delivery: "two words".into(),
            headers_only: false,
        });
        assert_eq!(
            f.apply(&[bad]).unwrap_err().kind(),
            io::ErrorKind::InvalidInput,
            "refused before anything is written"
        );
        drop(f);
        assert_eq!(
            StateFile::open(&path, "h:995:u")
                .unwrap()
                .state()
                .pending
                .len(),
            1
        );
    }

    fn change() -> impl Strategy<Value = StateChange> {
        let uid = proptest::collection::vec(any::<u8>(), 1..20)
            .prop_filter_map("a UID", |b| Uid::new(&b));
        (0u8..10, uid, any::<u64>(), "[A-Za-z0-9._:,]{1,30}").prop_map(|(tag, uid, at, name)| {
            match tag {
                0 => StateChange::Intent(Intent {
                    uid,
                    delivery: name,
                    headers_only: at % 2 == 0,
                }),
                8 => StateChange::HeadersDelivered { uid, at },
                9 => StateChange::FullFetchRequested { uid },
                1 => StateChange::Delivered { uid, at },
                2 => StateChange::Abandoned { uid },
                3 => StateChange::Vanished { uid, at },
                4 => StateChange::Reappeared { uid },
                5 => StateChange::Forget { uid },
                6 => StateChange::DeletedLocally { uid },
                _ => StateChange::DeletedOnServer { uid },
            }
        })
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
