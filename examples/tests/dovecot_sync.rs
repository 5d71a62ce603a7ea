//! `fetch --state` and `account` against a real Dovecot on 127.0.0.1, started
//! by `scripts/dovecot.sh start` (CI does this). Without its env file these
//! tests say they were skipped and pass; with POP3_REQUIRE_DOVECOT=1 (set by
//! CI) they fail.
//!
//! They share one mailbox (the `pop3sync` user, refilled with
//! `scripts/dovecot.sh fill`), so everything runs in order inside one test
//! function: (a) two syncs, the second storing nothing; (b) a sync that
//! deletes after retrieval empties the mailbox; (c) 20 runs killed with
//! SIGKILL at varied moments, then one full run: every message once,
//! byte-identical, the mailbox empty; (d) the `account` workflow.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use pop3_client::blocking::Client;
use pop3_client::testing::InteropServer;
use pop3_client::{ClientConfig, Credentials, Security, TlsRoots};

/// Contents of a set of messages, each with how often it occurs.
type Bag = BTreeMap<Vec<u8>, usize>;

struct Dovecot {
    server: InteropServer,
}

impl Dovecot {
    fn find() -> Option<Self> {
        let server = InteropServer::find(
            "POP3_DOVECOT_DIR",
            "/tmp/pop3-dovecot",
            "POP3_REQUIRE_DOVECOT",
            "Dovecot sync tests; run scripts/dovecot.sh start",
        )?;
        assert!(
            !server.get("sync_user").is_empty(),
            "{} has no sync_user: restart Dovecot with this checkout's scripts/dovecot.sh",
            server.dir.display()
        );
        Some(Self { server })
    }

    fn get(&self, key: &str) -> &str {
        self.server.get(key)
    }

    /// Replaces the sync user's mail by `count` new messages.
    fn fill(&self, count: usize) {
        let script = match self.get("fill_script") {
            "" => Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/dovecot.sh"),
            path => PathBuf::from(path),
        };
        let out = Command::new("bash")
            .arg(&script)
            .args(["fill", self.get("sync_user"), &count.to_string()])
            .env("POP3_DOVECOT_DIR", &self.server.dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{} fill failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(self.on_server().values().sum::<usize>(), count);
    }

    /// What Dovecot holds for the sync user: the files of its Maildir, which
    /// it serves byte for byte (CRLF with a final CRLF).
    fn on_server(&self) -> Bag {
        let maildir = PathBuf::from(self.get("sync_maildir"));
        bag(&[maildir.join("new"), maildir.join("cur")])
    }

    fn stat(&self) -> u32 {
        let mut config = ClientConfig::new(self.get("host"));
        config.security = Security::Tls;
        config.port = Some(self.get("tls_port").parse().unwrap());
        config.roots = TlsRoots::CaFile(self.get("ca_file").into());
        let credentials = Credentials::new(self.get("sync_user"), self.get("password"));
        let mut client = Client::connect(&config, &credentials).unwrap();
        let count = client.stat().unwrap().count;
        client.quit().unwrap();
        count
    }

    /// `fetch --state DIR/state --maildir DIR/Maildir` over implicit TLS.
    fn fetch(&self, dir: &Path, delete: &str) -> Command {
        let mut command = Command::new(binary("fetch"));
        command
            .args(["--host", self.get("host"), "--port", self.get("tls_port")])
            .args(["--security", "tls", "--user", self.get("sync_user")])
            .args(["--password-env", "DOVECOT_SYNC_PASSWORD", "--ca-file"])
            .arg(self.get("ca_file"))
            .args(["--timeout", "30", "--delete", delete, "--state"])
            .arg(dir.join("state"))
            .arg("--maildir")
            .arg(dir.join("Maildir"))
            .env("DOVECOT_SYNC_PASSWORD", self.get("password"));
        command
    }

    fn account(&self, dir: &Path, args: &[&str], password: &str) -> Output {
        Command::new(binary("account"))
            .arg("--config")
            .arg(dir)
            .args(args)
            .env("DOVECOT_SYNC_PASSWORD", password)
            .output()
            .unwrap()
    }
}

/// An example program next to this test's binary. `cargo test --test X`
/// does not build examples; `cargo test --workspace` does.
fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let path = dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --examples` (or `cargo test --workspace`, which builds them)",
        path.display()
    );
    path
}

fn bag(dirs: &[PathBuf]) -> Bag {
    let mut bag = Bag::new();
    for dir in dirs {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                *bag.entry(std::fs::read(path).unwrap()).or_insert(0) += 1;
            }
        }
    }
    bag
}

fn delivered(dir: &Path) -> Bag {
    bag(&[dir.join("Maildir").join("new")])
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn last_line(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .last()
        .unwrap_or("")
        .to_owned()
}

fn run(command: &mut Command) -> Output {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[test]
fn fetch_state_delete_killed_runs_and_account_against_dovecot() {
    let Some(dovecot) = Dovecot::find() else {
        return;
    };
    let count = 300;

    // (a) Two syncs: the first stores every message byte-identical, the
    // second nothing.
    dovecot.fill(count);
    let expected = dovecot.on_server();
    assert!(expected.values().all(|&n| n == 1), "the fill is distinct");
    assert!(expected.keys().any(|m| m.len() > 40_000));
    assert!(expected.keys().any(|m| m.windows(3).any(|w| w == b"\n..")));
    assert!(expected.keys().any(|m| m.iter().any(|&b| b >= 0x80)));
    let a = tempfile::tempdir().unwrap();
    // How long a whole run takes on this machine: the kills in (c) land at
    // moments spread over it, so they fall mid-run on a fast machine too.
    let started = Instant::now();
    let first = run(&mut dovecot.fetch(a.path(), "never"));
    let whole_run = started.elapsed();
    assert!(
        stdout(&first).starts_with(&format!("fetched {count} new messages")),
        "{}",
        stdout(&first)
    );
    assert_eq!(delivered(a.path()), expected, "(a) byte-identical, once");
    let second = run(&mut dovecot.fetch(a.path(), "never"));
    assert!(
        stdout(&second).starts_with("fetched 0 new messages"),
        "{}",
        stdout(&second)
    );
    assert_eq!(
        delivered(a.path()),
        expected,
        "(a) the second run stores nothing"
    );

    // (b) After retrieval, delete: the mailbox ends empty.
    let third = run(&mut dovecot.fetch(a.path(), "after-retrieval"));
    assert!(
        stdout(&third).contains(&format!("deleted {count}")),
        "{}",
        stdout(&third)
    );
    assert_eq!(dovecot.stat(), 0, "(b) STAT 0 after");
    assert_eq!(delivered(a.path()), expected, "(b) nothing fetched twice");

    // (c) Refill, then 20 runs killed at a fixed pseudo-random sequence of
    // moments spread over the time a whole run took in (a), then one run
    // that finishes.
    dovecot.fill(count);
    let expected = dovecot.on_server();
    let c = tempfile::tempdir().unwrap();
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut killed_mid_run = 0;
    for i in 0..20 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        // Run i is killed about i/19 of the way through a whole run, give or
        // take 2%: the kills sweep a run from its start to its end.
        let jitter = (seed % 1000) as f64 / 1000.0 * 0.04 - 0.02;
        let wait = whole_run.mul_f64((0.03 + 0.97 * f64::from(i) / 19.0 + jitter).max(0.01));
        let mut child = dovecot
            .fetch(c.path(), "after-retrieval")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(wait);
        if child.try_wait().unwrap().is_none() {
            killed_mid_run += 1;
        }
        let _ = child.kill(); // SIGKILL
        child.wait().unwrap();
    }
    let before = delivered(c.path()).values().sum::<usize>();
    eprintln!(
        "(c) {killed_mid_run} of 20 runs killed mid-run; before the final run: {before} delivered, {} on the server",
        dovecot.stat()
    );
    run(&mut dovecot.fetch(c.path(), "after-retrieval"));
    let got = delivered(c.path());
    for message in expected.keys() {
        assert_eq!(
            got.get(message),
            Some(&1),
            "(c) exactly once: {}",
            String::from_utf8_lossy(&message[..message.len().min(200)])
        );
    }
    assert_eq!(got, expected, "(c) nothing else delivered");
    assert_eq!(dovecot.stat(), 0, "(c) the mailbox is empty");
    assert!(killed_mid_run >= 1, "(c) some kills should land mid-run");

    // (d) The account workflow.
    let small = 20;
    dovecot.fill(small);
    let expected = dovecot.on_server();
    let d = tempfile::tempdir().unwrap();
    let settings = d.path().join("settings");
    let add = |password: &str| {
        dovecot.account(
            &settings,
            &[
                "add",
                "dove",
                "--email",
                "pop3sync@localhost",
                "--host",
                dovecot.get("host"),
                "--port",
                dovecot.get("tls_port"),
                "--security",
                "tls",
                "--user",
                dovecot.get("sync_user"),
                "--password-env",
                "DOVECOT_SYNC_PASSWORD",
                "--ca-file",
                dovecot.get("ca_file"),
                "--outgoing",
                "none",
            ],
            password,
        )
    };
    let wrong = add("not-the-password");
    assert!(!wrong.status.success());
    assert!(last_line(&wrong).starts_with("error: auth:"), "{wrong:?}");
    assert!(
        !settings.join("accounts.json").exists(),
        "(d) nothing saved"
    );

    let added = add(dovecot.get("password"));
    assert!(added.status.success(), "{added:?}");
    let list = stdout(&dovecot.account(&settings, &["list"], ""));
    assert_eq!(list.lines().count(), 1, "{list}");
    assert!(list.starts_with("dove pop3sync@localhost"), "{list}");
    assert!(list.trim_end().ends_with(" active"), "{list}");

    let change = dovecot.account(
        &settings,
        &[
            "set-password",
            "dove",
            "--incoming",
            "--password-env",
            "DOVECOT_SYNC_PASSWORD",
        ],
        "also-not-the-password",
    );
    assert!(!change.status.success());
    assert!(last_line(&change).starts_with("error: auth:"), "{change:?}");
    let verify = dovecot.account(&settings, &["verify", "dove"], "");
    assert!(
        verify.status.success(),
        "the old password works: {verify:?}"
    );
    let steps = stdout(&verify);
    for step in [
        "resolve: ok",
        "connect: ok",
        "tls: ok",
        "greeting: ok (Dovecot",
        "capabilities: ok",
        "login: ok (pop3sync)",
        &format!("mailbox: ok ({small} messages"),
    ] {
        assert!(steps.contains(step), "{step} in {steps}");
    }

    let sync = dovecot.account(&settings, &["sync", "dove"], "");
    assert!(sync.status.success(), "{sync:?}");
    assert!(
        stdout(&sync).starts_with(&format!("dove: {small} new, 0 deleted")),
        "{}",
        stdout(&sync)
    );
    assert_eq!(
        bag(&[settings.join("dove").join("Maildir").join("new")]),
        expected,
        "(d) sync fills the Maildir"
    );
}
