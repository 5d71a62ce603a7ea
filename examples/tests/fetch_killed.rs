//! Crash safety, shown: a real `fetch --state` process is killed with
//! SIGKILL at varied moments of a sync that deletes after retrieval, again
//! and again; then one run finishes the job. Every message of the mailbox
//! must be in the Maildir exactly once, byte-identical, and the mailbox
//! must be empty.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use pop3_client::pop3_proto::server::{ServerMessage, ServerOptions};
use pop3_client::testing::{Fault, TestServer, TestServerConfig};

fn fetch_binary() -> PathBuf {
    pop3_examples::example_binary("fetch").unwrap()
}

fn fetch(server: &TestServer, dir: &Path) -> Command {
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, server.ca_pem()).unwrap();
    let mut command = Command::new(fetch_binary());
    command
        .args(["--host", "127.0.0.1", "--port"])
        .arg(server.addr().port().to_string())
        .args(["--security", "starttls", "--user", "user"])
        .args(["--password-env", "FETCH_KILL_PASSWORD", "--ca-file"])
        .arg(&ca)
        .args(["--timeout", "20", "--delete", "after-retrieval", "--state"])
        .arg(dir.join("state"))
        .arg("--maildir")
        .arg(dir.join("Maildir"))
        .env("FETCH_KILL_PASSWORD", "password")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

#[test]
fn killed_at_random_moments_then_finished_every_message_arrives_once() {
    let messages: Vec<ServerMessage> = (0..300)
        .map(|i| ServerMessage {
            uid: format!("k{i}"),
            content: format!(
                "Subject: {i}\r\n\r\n{}\r\n.end {i}\r\n",
                "z".repeat((i * 7919) % 20_000)
            )
            .into_bytes(),
        })
        .collect();
    let server = TestServer::start(TestServerConfig {
        options: ServerOptions {
            stls: true,
            ..ServerOptions::default()
        },
        messages: messages.clone(),
        // Each answer a little late, so a run lasts long enough to be
        // killed in every phase (login, fetch, commit, DELE, QUIT).
        fault: Fault::Delay(Duration::from_millis(2)),
        ..TestServerConfig::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A fixed pseudo-random sequence of kill moments, 5 to 900 ms (a whole
    // run takes about a second here).
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut killed_mid_run = 0;
    for _ in 0..20 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let wait = Duration::from_millis(5 + seed % 895);
        let mut child = fetch(&server, dir.path()).spawn().unwrap();
        std::thread::sleep(wait);
        if child.try_wait().unwrap().is_none() {
            killed_mid_run += 1;
        }
        let _ = child.kill(); // SIGKILL on Unix
        child.wait().unwrap();
    }
    // The kills landed while work was under way: some mail had arrived,
    // not all of it.
    let before = std::fs::read_dir(dir.path().join("Maildir").join("new"))
        .unwrap()
        .count();
    eprintln!(
        "before the final run: {before} delivered, {} left on the server",
        server.messages().len()
    );
    assert!(before > 0, "the killed runs made progress");
    let status = fetch(&server, dir.path()).status().unwrap();
    assert!(status.success(), "the final run finishes the job");
    let mut got: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    for entry in std::fs::read_dir(dir.path().join("Maildir").join("new")).unwrap() {
        *got.entry(std::fs::read(entry.unwrap().path()).unwrap())
            .or_insert(0) += 1;
    }
    for m in &messages {
        assert_eq!(got.get(&m.content), Some(&1), "{} exactly once", m.uid);
    }
    assert_eq!(got.len(), messages.len(), "nothing else delivered");
    assert!(server.messages().is_empty(), "the mailbox is empty");
    eprintln!("{killed_mid_run} of 20 runs were killed mid-run");
    assert!(killed_mid_run >= 1, "some kills should land mid-run");
}

/// Gmail's slices: a `fetch` killed after it stored mail but before its
/// QUIT leaves that mail unpopped, so the Gmail-like server lists it again
/// at the head of its slice; one more run pops it (RETR into nothing),
/// takes every remaining slice, and stores each message exactly once.
#[test]
fn gmail_killed_before_quit_then_one_run_gets_everything_once() {
    use pop3_client::testing::GmailMode;
    // Slices of 400, stored in groups of 256: a run stores its first group
    // well before the QUIT that ends its slice.
    let messages: Vec<ServerMessage> = (0..800)
        .map(|i| ServerMessage {
            uid: format!("g{i}"),
            content: format!("Subject: {i}\r\n\r\nbody {i}\r\n").into_bytes(),
        })
        .collect();
    let server = TestServer::start(TestServerConfig {
        options: ServerOptions {
            stls: true,
            ..ServerOptions::default()
        },
        messages: messages.clone(),
        gmail: Some(GmailMode { session_limit: 400 }),
        // Slow enough that a run can be killed in the middle of its slice.
        fault: Fault::Delay(Duration::from_millis(3)),
        ..TestServerConfig::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let delivered = || {
        std::fs::read_dir(dir.path().join("Maildir").join("new"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    let keep = |command: &mut Command| {
        // Gmail's normal mode pops what was fetched at QUIT, whatever the
        // policy: keep on server, as most Gmail users do.
        let args: Vec<_> = command.get_args().map(|a| a.to_owned()).collect();
        let mut fresh = Command::new(command.get_program());
        for arg in args {
            fresh.arg(if arg == "after-retrieval" {
                "never".into()
            } else {
                arg
            });
        }
        for (key, value) in command.get_envs() {
            if let Some(value) = value {
                fresh.env(key, value);
            }
        }
        fresh.stdout(Stdio::null()).stderr(Stdio::null());
        fresh
    };
    // Kill a run as soon as it has stored its first group: the rest of its
    // slice (and its QUIT) is still to come.
    let mut child = keep(&mut fetch(&server, dir.path())).spawn().unwrap();
    let started = std::time::Instant::now();
    while delivered() == 0
        && child.try_wait().unwrap().is_none()
        && started.elapsed() < Duration::from_secs(120)
    {
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = child.kill(); // SIGKILL
    child.wait().unwrap();
    // Stored, yet still on the server: not popped.
    let popped = messages.len() - server.messages().len();
    let stored_then_killed = delivered() > popped;
    assert!(
        stored_then_killed,
        "a run was killed after storing, before its QUIT"
    );
    eprintln!(
        "killed with {} stored, {} left on the server",
        delivered(),
        server.messages().len()
    );
    let output = keep(&mut fetch(&server, dir.path()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    eprintln!(
        "{stdout}{}",
        stderr
            .lines()
            .filter(|l| !l.starts_with("fetching"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let mut got: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    for entry in std::fs::read_dir(dir.path().join("Maildir").join("new")).unwrap() {
        *got.entry(std::fs::read(entry.unwrap().path()).unwrap())
            .or_insert(0) += 1;
    }
    for m in &messages {
        assert_eq!(got.get(&m.content), Some(&1), "{} exactly once", m.uid);
    }
    assert!(server.messages().is_empty(), "every message popped");
}
