//! `fetch --state` against a Gmail-like server: normal mode serves 250
//! unpopped messages a session and pops what RETR and QUIT took; recent
//! mode lists the same messages every time and must keep them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use pop3_client::pop3_proto::server::{ServerMessage, ServerOptions};
use pop3_client::testing::{GmailMode, TestServer, TestServerConfig};

fn gmail(user: &str, count: usize) -> (TestServer, Vec<ServerMessage>) {
    let messages: Vec<ServerMessage> = (0..count)
        .map(|i| ServerMessage {
            uid: format!("GmailId{i:05}"),
            content: format!("Subject: {i}\r\n\r\nbody {i}\r\n").into_bytes(),
        })
        .collect();
    let server = TestServer::start(TestServerConfig {
        options: ServerOptions {
            user: user.into(),
            pipelining_only_after_login: true,
            login_delay: Some(300),
            ..ServerOptions::default()
        },
        messages: messages.clone(),
        implicit_tls: true,
        gmail: Some(GmailMode::default()),
        ..TestServerConfig::default()
    })
    .unwrap();
    (server, messages)
}

fn fetch(port: u16, ca: &str, user: &str, dir: &Path, extra: &[&str]) -> Output {
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca).unwrap();
    Command::new(pop3_examples::example_binary("fetch").unwrap())
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--user",
            user,
        ])
        .args(["--password-env", "GMAIL_TEST_PASSWORD", "--timeout", "20"])
        .arg("--ca-file")
        .arg(&ca_file)
        .arg("--state")
        .arg(dir.join("state"))
        .arg("--maildir")
        .arg(dir.join("Maildir"))
        .args(extra)
        .env("GMAIL_TEST_PASSWORD", "password")
        .output()
        .unwrap()
}

fn stored(dir: &Path) -> BTreeMap<Vec<u8>, usize> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir.join("Maildir").join("new")).unwrap() {
        *out.entry(std::fs::read(entry.unwrap().path()).unwrap())
            .or_insert(0) += 1;
    }
    out
}

#[test]
fn normal_mode_one_run_stores_all_600_once() {
    let (server, messages) = gmail("me@gmail.com", 600);
    let dir = tempfile::tempdir().unwrap();
    let out = fetch(
        server.addr().port(),
        server.ca_pem(),
        "me@gmail.com",
        dir.path(),
        &[],
    );
    assert!(out.status.success(), "{out:?}");
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.starts_with("fetched 600 new messages"), "{summary}");
    let got = stored(dir.path());
    assert_eq!(got.len(), 600);
    assert!(messages.iter().all(|m| got.get(&m.content) == Some(&1)));
    assert!(server.messages().is_empty(), "all popped");
}

#[test]
fn recent_mode_stores_nothing_the_second_time_and_refuses_deleting() {
    let user = "recent:me@gmail.com";
    let (server, messages) = gmail(user, 40);
    let dir = tempfile::tempdir().unwrap();
    let port = server.addr().port();
    let first = fetch(port, server.ca_pem(), user, dir.path(), &[]);
    assert!(first.status.success(), "{first:?}");
    let second = fetch(port, server.ca_pem(), user, dir.path(), &[]);
    let summary = String::from_utf8_lossy(&second.stdout);
    assert!(summary.starts_with("fetched 0 new messages"), "{summary}");
    assert_eq!(stored(dir.path()).len(), messages.len());
    assert_eq!(server.messages().len(), 40, "recent mode keeps mail");
    // Refused before connecting: port 1 has no server, so an attempt to
    // connect would end `error: connect:`.
    let refused = fetch(
        1,
        server.ca_pem(),
        user,
        dir.path(),
        &["--delete", "after-retrieval"],
    );
    assert_eq!(refused.status.code(), Some(2));
    let last = pop3_examples::last_stderr_line(&refused);
    assert!(last.starts_with("error: config:"), "{last}");
    assert!(last.contains("recent:"), "{last}");
}

#[test]
fn after_days_and_caps_need_a_state_file() {
    let dir = tempfile::tempdir().unwrap();
    for extra in [["--delete", "after-days=3"], ["--max-messages", "5"]] {
        let out = Command::new(pop3_examples::example_binary("fetch").unwrap())
            .args(["--host", "127.0.0.1", "--port", "1", "--user", "u"])
            .args(["--password-env", "GMAIL_TEST_PASSWORD", "--maildir"])
            .arg(dir.path().join("Maildir"))
            .args(extra)
            .env("GMAIL_TEST_PASSWORD", "password")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{extra:?}");
        let last = pop3_examples::last_stderr_line(&out);
        assert!(last.contains("need --state"), "{last}");
    }
}
