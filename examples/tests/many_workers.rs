//! Many workers over one database, as real processes against a real
//! server: `poller --db` processes over PostgreSQL (`scripts/postgres.sh
//! start`) polling Dovecot's many mailboxes (`scripts/dovecot.sh start`):
//!
//! - two processes on the same mailboxes store every message once;
//! - a worker SIGKILLed in the middle of a sync (at varied moments): another
//!   takes the mailbox over once the lease expires, exactly once;
//! - a worker SIGSTOPped past its lease while another takes over, then
//!   SIGCONTed: its writes are refused (the lease is lost), it deletes
//!   nothing, nothing is stored twice;
//! - four processes over 100 mailboxes, mail arriving during the run, one
//!   process SIGKILLed at random moments and restarted, then `poller
//!   --once`: each message stored exactly once, byte for byte (by
//!   `account messages`), every mailbox with a deleting policy empty.
//!
//! Skipped, saying so, when either server is missing, unless
//! `POP3_REQUIRE_DOVECOT` / `POP3_REQUIRE_POSTGRES` (CI) make that a
//! failure.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use pop3_client::testing::proxy::DelayingProxy;
use pop3_client::testing::InteropServer;
use sha2::Digest;

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

struct Setup {
    dovecot: InteropServer,
    /// The database's URL without its password, which the processes get
    /// from `PGPASSWORD` (so `ps` never shows it).
    db: String,
    db_password: String,
    runtime: tokio::runtime::Runtime,
    store: pop3_client::sql::SqlStore,
}

fn setup() -> Option<Setup> {
    let dovecot = InteropServer::find(
        "POP3_DOVECOT_DIR",
        "/tmp/pop3-dovecot",
        "POP3_REQUIRE_DOVECOT",
        "many-workers tests; run scripts/dovecot.sh start",
    )?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let db = runtime.block_on(pop3_client::testing::postgres_database())?;
    let store = runtime
        .block_on(pop3_client::sql::SqlStore::connect(&db))
        .unwrap();
    let (db, db_password) = without_password(&db);
    Some(Setup {
        dovecot,
        db,
        db_password,
        runtime,
        store,
    })
}

/// `postgres://USER:PASSWORD@HOST...` as `postgres://USER@HOST...` and
/// the password.
fn without_password(url: &str) -> (String, String) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (user_info, host) = rest.split_once('@').unwrap();
    let (user, password) = user_info.split_once(':').unwrap();
    (format!("{scheme}://{user}@{host}"), password.to_owned())
}

fn binary(name: &str) -> PathBuf {
    pop3_examples::example_binary(name).unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

impl Setup {
    fn user(&self, i: usize) -> String {
        format!("{}{i:03}", self.dovecot.get("many_prefix"))
    }

    fn maildir(&self, i: usize) -> PathBuf {
        Path::new(self.dovecot.get("many_home"))
            .join(self.user(i))
            .join("Maildir")
    }

    /// Empties mailbox `i` on the server.
    fn empty(&self, i: usize) {
        for sub in ["new", "cur", "tmp"] {
            for entry in std::fs::read_dir(self.maildir(i).join(sub)).unwrap() {
                std::fs::remove_file(entry.unwrap().path()).unwrap();
            }
        }
    }

    /// Drops a new message of about `size` bytes into mailbox `i` (written
    /// in tmp/, renamed into new/, owned as Dovecot's other files): its
    /// SHA-256.
    fn drop_mail(&self, i: usize, n: usize, size: usize) -> String {
        let maildir = self.maildir(i);
        let owner = std::fs::metadata(&maildir).unwrap();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let mut data = format!(
            "From: sender@example.com\r\nTo: {}@localhost\r\nSubject: message {n} for {i}\r\nMessage-ID: <{nanos}.{n}.{i}@many.test>\r\n\r\n",
            self.user(i)
        )
        .into_bytes();
        let line = b"The quick brown fox jumps over the lazy dog. \xc3\xa9\xe6\x97\xa5\r\n.a dot-led line\r\n";
        while data.len() < size {
            data.extend_from_slice(line);
        }
        data.extend_from_slice(format!("end {nanos}\r\n").as_bytes());
        let name = format!("{}.M{n}P{}Q{nanos}.many", nanos / 1_000_000_000, i);
        let tmp = maildir.join("tmp").join(&name);
        std::fs::write(&tmp, &data).unwrap();
        std::os::unix::fs::chown(&tmp, Some(owner.uid()), Some(owner.gid())).unwrap();
        std::fs::rename(&tmp, maildir.join("new").join(&name)).unwrap();
        hex(&sha2::Sha256::digest(&data))
    }

    /// Files Dovecot holds for mailbox `i`.
    fn on_server(&self, i: usize) -> usize {
        ["new", "cur"]
            .iter()
            .map(|sub| {
                std::fs::read_dir(self.maildir(i).join(sub))
                    .unwrap()
                    .count()
            })
            .sum()
    }

    fn account(&self) -> Command {
        let mut command = Command::new(binary("account"));
        command
            .args(["--db", &self.db])
            .env("PGPASSWORD", &self.db_password)
            .env("POP3_DB_KEY", KEY)
            .env("PW", self.dovecot.get("password"));
        command
    }

    /// Adds mailbox `i` as `name` (its own owner, so active), through
    /// `port` (Dovecot's implicit TLS, or a proxy in front of it).
    fn add(&self, name: &str, i: usize, port: u16, delete: &str) {
        let out = self
            .account()
            .args(["add", name, "--email"])
            .arg(format!("{}@localhost", self.user(i)))
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--security", "tls", "--user", &self.user(i)])
            .args([
                "--password-env",
                "PW",
                "--ca-file",
                self.dovecot.get("ca_file"),
            ])
            .args(["--outgoing", "none", "--delete", delete, "--owner", name])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
    }

    /// `account messages NAME`: (UID, SHA-256) per line.
    fn messages(&self, name: &str) -> Vec<(String, String)> {
        let out = self.account().args(["messages", name]).output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|line| {
                let fields: Vec<&str> = line.split(' ').collect();
                assert_eq!(fields.len(), 3, "{line}");
                (fields[0].to_owned(), fields[2].to_owned())
            })
            .collect()
    }

    /// Exactly once, byte for byte: the stored digests are `expected`, no
    /// UID twice.
    fn assert_exactly_once(&self, name: &str, expected: &BTreeSet<String>) {
        let stored = self.messages(name);
        let uids: BTreeSet<&String> = stored.iter().map(|(uid, _)| uid).collect();
        let digests: Vec<&String> = stored.iter().map(|(_, d)| d).collect();
        let unique: BTreeSet<&String> = digests.iter().copied().collect();
        assert_eq!(uids.len(), stored.len(), "{name}: a UID stored twice");
        assert_eq!(unique.len(), stored.len(), "{name}: a message stored twice");
        let want: BTreeSet<&String> = expected.iter().collect();
        assert_eq!(unique, want, "{name}: stored is not what arrived");
    }

    fn poller(&self, worker: &str, extra: &[&str]) -> Command {
        let mut command = Command::new(binary("poller"));
        command
            .args(["--db", &self.db, "--worker-id", worker])
            .args(extra)
            .env("PGPASSWORD", &self.db_password)
            .env("POP3_DB_KEY", KEY);
        command
    }

    /// How many messages of `name` are stored now, and how many are
    /// written waiting for their group's commit (through the library).
    fn progress(&self, name: &str) -> (u64, u64) {
        self.runtime
            .block_on(self.store.message_counts(name))
            .unwrap()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn spawn(mut command: Command) -> Child {
    command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits until `name` has `stored` messages committed and `written`
/// written in all, or panics after 60 s.
fn wait_progress(setup: &Setup, name: &str, stored: u64, written: u64) {
    let start = Instant::now();
    loop {
        let (visible, staged) = setup.progress(name);
        if visible >= stored && visible + staged >= written {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{name}: not {stored} stored and {written} written after 60 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn two_poller_processes_on_the_same_mailboxes_store_each_message_once() {
    let Some(setup) = setup() else { return };
    let port: u16 = setup.dovecot.get("tls_port").parse().unwrap();
    let mut expected = BTreeMap::new();
    for (i, delete) in [(0, "after-retrieval"), (1, "never"), (2, "after-retrieval")] {
        setup.empty(i);
        let name = format!("two-{i}");
        setup.add(&name, i, port, delete);
        let digests: BTreeSet<String> = (0..20).map(|n| setup.drop_mail(i, n, 3_000)).collect();
        expected.insert(i, (name, digests));
    }
    let one = spawn(setup.poller("w1", &["--once", "--lease-secs", "5"]));
    let two = spawn(setup.poller("w2", &["--once", "--lease-secs", "5"]));
    for child in [one, two] {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout
                .lines()
                .last()
                .unwrap()
                .starts_with("polled 3 mailboxes:"),
            "{stdout}"
        );
    }
    for (i, (name, digests)) in &expected {
        setup.assert_exactly_once(name, digests);
        let left = if *i == 1 { 20 } else { 0 };
        assert_eq!(setup.on_server(*i), left, "{name}");
    }
}

#[test]
fn a_worker_killed_mid_sync_is_taken_over_after_its_lease_exactly_once() {
    let Some(setup) = setup() else { return };
    let target = format!("127.0.0.1:{}", setup.dovecot.get("tls_port"));
    // A slow line, so the kill lands in the middle of the sync.
    let proxy = DelayingProxy::start(target.parse().unwrap(), Duration::from_millis(15)).unwrap();
    // 400 messages: a first group of 256, then a second. Killed in the
    // middle of the first group (nothing committed), and in the middle of
    // the second (the first committed, and maybe deleted).
    for (i, stored, written) in [(10, 0, 100), (11, 256, 300)] {
        setup.empty(i);
        let name = format!("killed-{i}");
        setup.add(&name, i, proxy.addr().port(), "after-retrieval");
        let digests: BTreeSet<String> = (0..400).map(|n| setup.drop_mail(i, n, 8_000)).collect();
        let worker = spawn(setup.poller(
            &format!("doomed-{i}"),
            &["--interval", "1", "--lease-secs", "3", "--concurrency", "1"],
        ));
        wait_progress(&setup, &name, stored, written);
        signal(&worker, "-KILL");
        let killed = worker.wait_with_output().unwrap();
        let (visible, _) = setup.progress(&name);
        assert!(visible < 400, "killed too late: {}", text(&killed));
        // Another worker: waits for the dead one's lease, then finishes.
        let out = setup
            .poller(&format!("heir-{i}"), &["--once", "--lease-secs", "3"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        setup.assert_exactly_once(&name, &digests);
        assert_eq!(setup.on_server(i), 0, "after retrieval: all deleted");
        // Not polled again by later rounds of this test.
        let out = setup.account().args(["remove", &name]).output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
    }
}

#[test]
fn a_worker_stopped_past_its_lease_writes_nothing_when_it_wakes() {
    let Some(setup) = setup() else { return };
    let target = format!("127.0.0.1:{}", setup.dovecot.get("tls_port"));
    let proxy = DelayingProxy::start(target.parse().unwrap(), Duration::from_millis(15)).unwrap();
    let i = 20;
    setup.empty(i);
    let name = "stopped";
    setup.add(name, i, proxy.addr().port(), "after-retrieval");
    // Dovecot's log of this mailbox's sessions: how each ended.
    let user = setup.user(i);
    let log = setup.dovecot.dir.join("dovecot.log");
    let sessions = |what: &str| {
        std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .filter(|l| l.contains(&format!("pop3({user})")) && l.contains(what))
            .count()
    };
    let before = (sessions("Disconnected"), sessions("Logged out"));
    let digests: BTreeSet<String> = (0..300).map(|n| setup.drop_mail(i, n, 8_000)).collect();
    let sleeper = spawn(setup.poller("sleeper", &["--once", "--lease-secs", "2"]));
    wait_progress(&setup, name, 0, 50);
    signal(&sleeper, "-STOP");
    // Past its lease: another worker takes the mailbox over and finishes.
    std::thread::sleep(Duration::from_secs(3));
    let out = setup
        .poller("heir", &["--once", "--lease-secs", "2"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    setup.assert_exactly_once(name, &digests);
    assert_eq!(setup.on_server(i), 0);
    // Mail that arrives now is the sleeper's to fetch if it still could.
    let late = setup.drop_mail(i, 999, 2_000);
    signal(&sleeper, "-CONT");
    let woke = sleeper.wait_with_output().unwrap();
    assert_eq!(woke.status.code(), Some(1), "{}", text(&woke));
    let stderr = String::from_utf8_lossy(&woke.stderr);
    assert!(
        stderr.contains("error: storage: stopped:") && stderr.contains("lease"),
        "{}",
        text(&woke)
    );
    // Nothing stored twice, nothing written after it woke.
    setup.assert_exactly_once(name, &digests);
    assert_eq!(setup.on_server(i), 1, "the late message stays");
    // Its session was dropped without QUIT, so no DELE of it took effect:
    // Dovecot logged out only the heir's session.
    let start = Instant::now();
    while sessions("Disconnected") < before.0 + 2 && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        sessions("Disconnected"),
        before.0 + 2,
        "the sleeper's and the heir's"
    );
    assert_eq!(
        sessions("Logged out"),
        before.1 + 1,
        "only the heir's session ended with QUIT"
    );
    let out = setup.poller("heir", &["--once"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let mut all = digests.clone();
    all.insert(late);
    setup.assert_exactly_once(name, &all);
}

#[test]
fn four_workers_over_a_hundred_mailboxes_killed_at_random_store_each_message_once() {
    let Some(setup) = setup() else { return };
    let port: u16 = setup.dovecot.get("tls_port").parse().unwrap();
    let mailboxes: Vec<usize> = (40..140).collect();
    let mut expected: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    let delete = |i: usize| {
        if i % 2 == 0 {
            "after-retrieval"
        } else {
            "never"
        }
    };
    for &i in &mailboxes {
        setup.empty(i);
        setup.add(&format!("many-{i}"), i, port, delete(i));
        let digests = (0..3).map(|n| setup.drop_mail(i, n, 2_000)).collect();
        expected.insert(i, digests);
    }
    let worker = |n: usize, generation: usize| {
        spawn(setup.poller(
            &format!("worker-{n}-{generation}"),
            &["--interval", "1", "--lease-secs", "3", "--concurrency", "8"],
        ))
    };
    let mut workers: Vec<Child> = (0..4).map(|n| worker(n, 0)).collect();
    // A small xorshift: varied moments, reproducible per run.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15
        ^ u64::from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos(),
        );
    let mut random = move |below: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % below
    };
    let started = Instant::now();
    let mut n = 3;
    let mut kills = 0;
    let mut generation = 1;
    while started.elapsed() < Duration::from_secs(15) {
        // Mail arrives.
        for _ in 0..4 {
            let i = mailboxes[usize::try_from(random(100)).unwrap()];
            let digest = setup.drop_mail(i, n, 1_000 + usize::try_from(random(8_000)).unwrap());
            expected.get_mut(&i).unwrap().insert(digest);
            n += 1;
        }
        // Now and then a worker dies at a random moment, and is restarted.
        if random(4) == 0 {
            let which = usize::try_from(random(4)).unwrap();
            signal(&workers[which], "-KILL");
            let _ = workers[which].wait();
            workers[which] = worker(which, generation);
            generation += 1;
            kills += 1;
        }
        std::thread::sleep(Duration::from_millis(100 + random(300)));
    }
    assert!(kills > 0, "no worker was killed");
    // The survivors stop as asked (SIGTERM: the group in flight finished).
    for child in &workers {
        signal(child, "-TERM");
    }
    for child in workers {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
    }
    let out = setup
        .poller(
            "final",
            &["--once", "--lease-secs", "3", "--concurrency", "16"],
        )
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.lines().last().unwrap().ends_with(", 0 failed"),
        "{stdout}"
    );
    for (&i, digests) in &expected {
        let name = format!("many-{i}");
        setup.assert_exactly_once(&name, digests);
        if delete(i) == "after-retrieval" {
            assert_eq!(setup.on_server(i), 0, "{name}: deleting policy, not empty");
        } else {
            assert_eq!(setup.on_server(i), digests.len(), "{name}");
        }
    }
    // Everyone healthy.
    let out = setup.account().arg("health").output().unwrap();
    let health = String::from_utf8_lossy(&out.stdout);
    let unhealthy: Vec<&str> = health
        .lines()
        .filter(|l| l.starts_with("many-") && l.split(' ').nth(1) != Some("ok"))
        .collect();
    assert!(unhealthy.is_empty(), "{unhealthy:?}");
}
