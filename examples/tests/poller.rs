//! `poller --once` over a settings folder: every owner's active mailbox
//! polled (an owner's other mailboxes not), activating another switches
//! which; a wrong password fails that mailbox alone, named on its own
//! line, and the exit status says so.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};

use pop3_client::account::Credential;
use pop3_client::pop3_proto::server::{ServerMessage, ServerOptions};
use pop3_client::testing::{TestServer, TestServerConfig};

fn server(count: usize) -> TestServer {
    TestServer::start(TestServerConfig {
        options: ServerOptions {
            stls: true,
            ..ServerOptions::default()
        },
        messages: (0..count)
            .map(|i| ServerMessage {
                uid: format!("m{i}"),
                content: format!("Subject: {i}\r\n\r\nbody {i}\r\n").into_bytes(),
            })
            .collect(),
        ..TestServerConfig::default()
    })
    .unwrap()
}

fn account(dir: &Path, args: &[&str]) -> Output {
    Command::new(pop3_examples::example_binary("account").unwrap())
        .arg("--config")
        .arg(dir)
        .args(args)
        .env("POLLER_TEST_PASSWORD", "password")
        .output()
        .unwrap()
}

fn add(dir: &Path, name: &str, owner: &str, server: &TestServer) {
    let ca = dir.join(format!("{name}.pem"));
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(&ca, server.ca_pem()).unwrap();
    let port = server.addr().port().to_string();
    let output = account(
        dir,
        &[
            "add",
            name,
            "--email",
            "user@example.org",
            "--host",
            "127.0.0.1",
            "--port",
            &port,
            "--security",
            "starttls",
            "--user",
            "user",
            "--password-env",
            "POLLER_TEST_PASSWORD",
            "--ca-file",
            ca.to_str().unwrap(),
            "--outgoing",
            "none",
            "--owner",
            owner,
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn poll_once(dir: &Path) -> (Output, String) {
    let output = Command::new(pop3_examples::example_binary("poller").unwrap())
        .arg("--config")
        .arg(dir)
        .args(["--once", "--timeout", "10"])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output, text)
}

#[test]
fn every_owners_active_mailbox_is_polled_and_a_wrong_password_fails_alone() {
    let (work, home, bob) = (server(3), server(2), server(1));
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("settings");
    add(&dir, "alice-work", "alice", &work);
    add(&dir, "alice-home", "alice", &home);
    add(&dir, "bob", "bob", &bob);
    let list = String::from_utf8_lossy(&account(&dir, &["list"]).stdout).into_owned();
    let active: Vec<&str> = list
        .lines()
        .filter(|l| l.ends_with(" active"))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(active, ["alice-work", "bob"], "{list}");

    let (output, text) = poll_once(&dir);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("alice-work: 3 new"), "{text}");
    assert!(text.contains("bob: 1 new"), "{text}");
    assert!(!text.contains("alice-home"), "{text}");
    assert!(
        String::from_utf8_lossy(&output.stdout)
            .trim_end()
            .ends_with("polled 2 mailboxes: 4 new, 0 deleted, 0 failed"),
        "{text}"
    );

    // Alice switches to her home mailbox: the work one is no longer polled.
    assert!(account(&dir, &["activate", "alice-home"]).status.success());
    let (output, text) = poll_once(&dir);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("alice-home: 2 new"), "{text}");
    assert!(!text.contains("alice-work"), "{text}");

    // Bob's password changed at the provider (here: in the settings).
    let mut settings = pop3_examples::settings::load(&dir).unwrap();
    let bob_account = pop3_examples::settings::find(&mut settings, "bob").unwrap();
    bob_account.incoming.credential = Credential::password("changed elsewhere");
    pop3_examples::settings::save(&dir, &settings).unwrap();
    home.deliver(ServerMessage {
        uid: "late".into(),
        content: b"Subject: late\r\n\r\nbody\r\n".to_vec(),
    });
    let (output, text) = poll_once(&dir);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("error: auth: bob: "), "{text}");
    assert!(text.contains("alice-home: 1 new"), "{text}");
    assert!(
        String::from_utf8_lossy(&output.stdout)
            .trim_end()
            .ends_with("polled 2 mailboxes: 1 new, 0 deleted, 1 failed"),
        "{text}"
    );
}
