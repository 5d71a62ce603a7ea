//! Where fetched messages go.
//!
//! [`MaildirSink`] writes each message as one file under `new/` by way of
//! `tmp/`, durable before it becomes visible, so a crash never leaves a
//! partial message where a mail reader looks, and a delivered name never
//! replaces an existing file. It serves two traits:
//! - [`MessageSink`]: each message durable on its own (one fetch, no state);
//! - [`DeliverySink`]: the sync's sink, with names reserved before delivery
//!   (so an interrupted run can be reconciled) and group commit (a group of
//!   messages made durable with one filesystem flush and one directory
//!   flush).

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use pop3_proto::{MsgNum, Uid};

use crate::pop3::MessageSink;

/// A message about to be delivered, as a [`DeliverySink`] is told when it
/// begins.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Delivery<'a> {
    /// The name reserved for it ([`DeliverySink::reserve`]).
    pub name: &'a str,
    /// Its UID on the server.
    pub uid: &'a Uid,
    /// Its size as the server listed it (LIST), before any byte arrives;
    /// what arrives may differ a little (servers count line ends their
    /// own way).
    pub listed_octets: u64,
    /// Only its header is delivered (TOP n 0); the whole message may
    /// replace it later ([`DeliverySink::remove`]).
    pub headers_only: bool,
}

impl<'a> Delivery<'a> {
    /// A delivery of `uid` as `name`, whole, listed at `listed_octets`.
    pub fn new(name: &'a str, uid: &'a Uid, listed_octets: u64) -> Self {
        Self {
            name,
            uid,
            listed_octets,
            headers_only: false,
        }
    }
}

/// The sink of a sync. Names are reserved before delivery and recorded as
/// an intent, so a run killed at any instant can ask the sink, at its next
/// start, whether a delivery finished ([`DeliverySink::reconcile`]).
pub trait DeliverySink {
    /// A name for delivering `uid`, unique in this sink, with no white space.
    fn reserve(&mut self, uid: &Uid) -> io::Result<String>;
    /// The message reserved as [`Delivery::name`] begins: its UID, listed
    /// size and whether it is its header only come with it (a database
    /// sink writes its row from them).
    fn begin(&mut self, delivery: &Delivery<'_>) -> io::Result<()>;
    /// More of the current message, exactly as the server sent it.
    fn write(&mut self, chunk: &[u8]) -> io::Result<()>;
    /// The current message is complete; it waits for [`DeliverySink::commit`].
    fn end(&mut self) -> io::Result<()>;
    /// Makes every completed message durable and visible, all together.
    fn commit(&mut self) -> io::Result<()>;
    /// Drops every message not yet committed (after an error).
    fn rollback(&mut self);
    /// Whether the delivery `name` of an earlier run is in the sink. Leftovers
    /// of a delivery that did not finish are removed.
    fn reconcile(&mut self, name: &str) -> io::Result<bool>;
    /// Removes the delivered message `name` (a headers-only copy that the
    /// whole message has replaced); one already gone is no error. The
    /// default keeps it: a sink that cannot remove leaves both copies.
    fn remove(&mut self, name: &str) -> io::Result<()> {
        let _ = name;
        Ok(())
    }
}

/// Delivers messages into a Maildir (`tmp/`, `new/`, `cur/`).
#[derive(Debug)]
pub struct MaildirSink {
    dir: PathBuf,
    current: Option<(BufWriter<File>, String)>,
    /// Written to `tmp/`, waiting for the group's commit.
    staged: Vec<(File, String)>,
    delivered: Vec<PathBuf>,
    host: String,
    /// The base names in `cur/` (before `:2,flags`), read once when the
    /// first interrupted delivery is reconciled.
    cur_names: Option<std::collections::HashSet<String>>,
}

/// Names are unique across every sink of the process (two accounts
/// delivering into one Maildir from two threads in the same microsecond),
/// and across processes by the pid and a random part.
static NAME_COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Random bits drawn once per process from the standard library's hasher
/// keys (no extra crate).
fn process_random() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static RANDOM: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *RANDOM.get_or_init(|| {
        std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
    })
}

/// Temporary files older than this are leftovers of a delivery that
/// crashed (the Maildir convention).
const STALE_TMP: std::time::Duration = std::time::Duration::from_secs(36 * 60 * 60);

impl MaildirSink {
    /// Opens (creating if needed) the Maildir at `dir`.
    pub fn create(dir: impl AsRef<Path>) -> io::Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let existed = dir.join("new").is_dir();
        for sub in ["tmp", "new", "cur"] {
            create_private_dirs(&dir.join(sub))?;
        }
        if !existed {
            // Make the new folders themselves durable.
            sync_dir(&dir)?;
            if let Some(parent) = dir.parent() {
                sync_dir(parent)?;
            }
        }
        remove_stale_tmp(&dir.join("tmp"));
        Ok(Self {
            dir,
            current: None,
            staged: Vec::new(),
            delivered: Vec::new(),
            host: maildir_host(&gethostname::gethostname().to_string_lossy()),
            cur_names: None,
        })
    }

    /// The files delivered so far, in `new/`.
    pub fn delivered(&self) -> &[PathBuf] {
        &self.delivered
    }

    /// Removes the partial message being written, and every message not yet
    /// committed (after an error).
    pub fn discard_partial(&mut self) {
        if let Some((_, name)) = self.current.take() {
            let _ = fs::remove_file(self.dir.join("tmp").join(name));
        }
        for (_, name) in self.staged.drain(..) {
            let _ = fs::remove_file(self.dir.join("tmp").join(name));
        }
    }

    fn unique_name(&mut self) -> String {
        let counter = NAME_COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        format!(
            "{}.M{}P{}Q{}R{:016x}.{}",
            now.as_secs(),
            now.subsec_micros(),
            std::process::id(),
            counter,
            process_random(),
            self.host
        )
    }

    /// Whether a mail reader has moved `name` into `cur/` (as `name` or
    /// `name:2,flags`; `!` is accepted as the separator too).
    fn in_cur(&mut self, name: &str) -> io::Result<bool> {
        if self.cur_names.is_none() {
            let mut names = std::collections::HashSet::new();
            for entry in fs::read_dir(self.dir.join("cur"))? {
                let file = entry?.file_name().to_string_lossy().into_owned();
                let base = file.split([':', '!']).next().unwrap_or_default().to_owned();
                names.insert(base);
            }
            self.cur_names = Some(names);
        }
        Ok(self.cur_names.as_ref().is_some_and(|n| n.contains(name)))
    }

    fn open_tmp(&mut self, name: String) -> io::Result<()> {
        // A message left unfinished is dropped; staged ones wait for commit.
        if let Some((_, name)) = self.current.take() {
            let _ = fs::remove_file(self.dir.join("tmp").join(name));
        }
        let tmp = self.dir.join("tmp").join(&name);
        let file = private(File::options().write(true).create_new(true)).open(tmp)?;
        self.current = Some((BufWriter::with_capacity(64 * 1024, file), name));
        Ok(())
    }

    fn write_current(&mut self, chunk: &[u8]) -> io::Result<()> {
        match self.current.as_mut() {
            Some((file, _)) => file.write_all(chunk),
            None => Err(io::Error::other("message data before its start")),
        }
    }

    /// Flushes the current message to its tmp file and stages it.
    fn stage_current(&mut self) -> io::Result<()> {
        let Some((file, name)) = self.current.take() else {
            return Ok(());
        };
        match file.into_inner() {
            Ok(file) => {
                self.staged.push((file, name));
                Ok(())
            }
            Err(e) => {
                let _ = fs::remove_file(self.dir.join("tmp").join(&name));
                Err(e.into_error())
            }
        }
    }

    /// Makes the staged files durable, moves them into `new/` (never over an
    /// existing file), then makes `new/` durable.
    fn commit_staged(&mut self) -> io::Result<()> {
        if self.staged.is_empty() {
            return Ok(());
        }
        let result = self.commit_staged_inner();
        if result.is_err() {
            self.discard_partial();
        }
        result
    }

    fn commit_staged_inner(&mut self) -> io::Result<()> {
        flush_files(&self.staged)?;
        let new = self.dir.join("new");
        let mut staged = std::mem::take(&mut self.staged).into_iter();
        while let Some((file, name)) = staged.next() {
            let tmp = self.dir.join("tmp").join(&name);
            let target = new.join(&name);
            // A hard link fails if the name exists: nothing is replaced.
            if let Err(e) = fs::hard_link(&tmp, &target) {
                // What is not delivered goes back, for discard_partial.
                self.staged.push((file, name));
                self.staged.extend(staged);
                return Err(e);
            }
            fs::remove_file(&tmp)?;
            self.delivered.push(target);
        }
        sync_dir(&new)
    }
}

/// Files that hold mail or a sync's state are created readable and
/// writable by their owner only (0600): other users of the machine must not
/// read the mail.
pub(crate) fn private(options: &mut fs::OpenOptions) -> &mut fs::OpenOptions {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600)
    }
    #[cfg(not(unix))]
    options
}

/// Creates `dir` and its missing parents for the owner only (0700).
pub(crate) fn create_private_dirs(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Makes a directory's entries (a rename, a new file) durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// One flush for many files: `syncfs` on Linux (the whole filesystem, once),
/// each file's own fsync elsewhere.
fn flush_files(files: &[(File, String)]) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        if let Some((first, _)) = files.first() {
            if files.len() > 1 {
                return rustix::fs::syncfs(first).map_err(io::Error::from);
            }
            return first.sync_all();
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        for (f, _) in files {
            f.sync_all()?;
        }
        Ok(())
    }
}

/// The host part of a Maildir name: `/` and `:` would break the name, so
/// they are written as `\057` and `\072` (the Maildir convention).
fn maildir_host(host: &str) -> String {
    let host = host.trim();
    if host.is_empty() {
        return "localhost".to_owned();
    }
    host.chars()
        .map(|c| match c {
            '/' => "\\057".to_owned(),
            ':' => "\\072".to_owned(),
            c if c.is_whitespace() || c.is_control() => "_".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

impl MessageSink for MaildirSink {
    fn begin(&mut self, _: usize, _: MsgNum) -> io::Result<()> {
        let name = self.unique_name();
        self.open_tmp(name)
    }

    fn write(&mut self, _: usize, chunk: &[u8]) -> io::Result<()> {
        self.write_current(chunk)
    }

    fn end(&mut self, _: usize, _: u64) -> io::Result<()> {
        self.stage_current()?;
        self.commit_staged()
    }
}

impl DeliverySink for MaildirSink {
    fn reserve(&mut self, _: &Uid) -> io::Result<String> {
        Ok(self.unique_name())
    }

    fn begin(&mut self, delivery: &Delivery<'_>) -> io::Result<()> {
        let name = delivery.name;
        if !is_file_name(name) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("\"{name}\" is not a Maildir file name"),
            ));
        }
        self.open_tmp(name.to_owned())
    }

    fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.write_current(chunk)
    }

    fn end(&mut self) -> io::Result<()> {
        self.stage_current()
    }

    fn commit(&mut self) -> io::Result<()> {
        self.commit_staged()
    }

    fn rollback(&mut self) {
        self.discard_partial();
    }

    fn reconcile(&mut self, name: &str) -> io::Result<bool> {
        if !is_file_name(name) {
            return Ok(false);
        }
        let tmp = self.dir.join("tmp").join(name);
        // An error reading the folders is an error, not "not delivered"
        // (which would deliver the message again).
        let found = self.dir.join("new").join(name).try_exists()? || self.in_cur(name)?;
        match fs::remove_file(&tmp) {
            Ok(()) => sync_dir(&self.dir.join("tmp"))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(found)
    }

    fn remove(&mut self, name: &str) -> io::Result<()> {
        if !is_file_name(name) {
            return Ok(());
        }
        let mut removed = false;
        match fs::remove_file(self.dir.join("new").join(name)) {
            Ok(()) => removed = true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        // A reader may have moved it to cur/, with flags.
        for entry in fs::read_dir(self.dir.join("cur"))? {
            let entry = entry?;
            let file = entry.file_name().to_string_lossy().into_owned();
            if file.split([':', '!']).next() == Some(name) {
                fs::remove_file(entry.path())?;
                removed = true;
            }
        }
        if removed {
            sync_dir(&self.dir.join("new"))?;
            sync_dir(&self.dir.join("cur"))?;
        }
        Ok(())
    }
}

/// A name this sink can deliver under: one file name, not hidden.
fn is_file_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('/') && !name.starts_with('.') && name != ".."
}

/// Removes temporary files older than [`STALE_TMP`]: what deliveries that
/// crashed left behind (best effort).
fn remove_stale_tmp(tmp: &Path) {
    let Ok(entries) = fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_TMP);
        if stale {
            let _ = fs::remove_file(entry.path());
        }
    }
}

impl Drop for MaildirSink {
    fn drop(&mut self) {
        self.discard_partial();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(dir: &Path, sub: &str) -> usize {
        fs::read_dir(dir.join(sub)).unwrap().count()
    }

    #[test]
    fn delivers_through_tmp_into_new() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = MaildirSink::create(dir.path()).unwrap();
        let one = MsgNum::new(1).unwrap();
        MessageSink::begin(&mut sink, 0, one).unwrap();
        MessageSink::write(&mut sink, 0, b"Subject: a\r\n\r\nbody\r\n").unwrap();
        assert_eq!(count(dir.path(), "new"), 0);
        MessageSink::end(&mut sink, 0, 21).unwrap();
        let delivered = sink.delivered().to_vec();
        assert_eq!(delivered.len(), 1);
        assert_eq!(
            fs::read(&delivered[0]).unwrap(),
            b"Subject: a\r\n\r\nbody\r\n"
        );
        MessageSink::begin(&mut sink, 1, one).unwrap();
        MessageSink::write(&mut sink, 1, b"partial").unwrap();
        drop(sink);
        assert_eq!(count(dir.path(), "tmp"), 0, "partial removed");
    }

    #[test]
    fn a_group_becomes_visible_at_commit_and_reconciles() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = MaildirSink::create(dir.path()).unwrap();
        let uid = Uid::new(b"u").unwrap();
        let mut names = Vec::new();
        for i in 0..3 {
            let name = sink.reserve(&uid).unwrap();
            DeliverySink::begin(&mut sink, &Delivery::new(&name, &uid, 10)).unwrap();
            DeliverySink::write(&mut sink, format!("message {i}\r\n").as_bytes()).unwrap();
            DeliverySink::end(&mut sink).unwrap();
            names.push(name);
        }
        assert_eq!(count(dir.path(), "new"), 0);
        sink.commit().unwrap();
        assert_eq!(count(dir.path(), "new"), 3);
        assert_eq!(count(dir.path(), "tmp"), 0);
        assert!(sink.reconcile(&names[0]).unwrap());
        // A reader moved one to cur/ with flags.
        fs::rename(
            dir.path().join("new").join(&names[1]),
            dir.path().join("cur").join(format!("{}:2,S", names[1])),
        )
        .unwrap();
        assert!(sink.reconcile(&names[1]).unwrap());
        // A delivery cut before commit: its tmp file is a leftover.
        let name = sink.reserve(&uid).unwrap();
        DeliverySink::begin(&mut sink, &Delivery::new(&name, &uid, 10)).unwrap();
        DeliverySink::write(&mut sink, b"half").unwrap();
        DeliverySink::end(&mut sink).unwrap();
        std::mem::forget(sink); // as if killed: nothing cleaned up
        let mut sink = MaildirSink::create(dir.path()).unwrap();
        assert!(!sink.reconcile(&name).unwrap());
        assert_eq!(count(dir.path(), "tmp"), 0);
    }

    #[test]
    fn a_delivered_name_never_replaces_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = MaildirSink::create(dir.path()).unwrap();
        fs::write(dir.path().join("new").join("taken"), b"keep me").unwrap();
        let uid = Uid::new(b"u").unwrap();
        DeliverySink::begin(&mut sink, &Delivery::new("taken", &uid, 5)).unwrap();
        DeliverySink::write(&mut sink, b"other").unwrap();
        DeliverySink::end(&mut sink).unwrap();
        let e = sink.commit().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(
            fs::read(dir.path().join("new").join("taken")).unwrap(),
            b"keep me"
        );
        assert_eq!(
            count(dir.path(), "tmp"),
            0,
            "the failed delivery is removed"
        );
    }

    #[test]
    fn host_names_are_sanitised() {
        assert_eq!(maildir_host("a/b:c"), "a\\057b\\072c");
        assert_eq!(maildir_host("  "), "localhost");
    }
}
