//! The `fetch` program end to end: its fixed command line, the Maildir it
//! writes (byte-identical to what the server holds), its summary line, and
//! its `error: KIND:` last line on failure.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::{Command, Output};

use pop3_client::pop3_proto::server::{ServerMessage, ServerOptions};
use pop3_client::testing::{Fault, TestServer, TestServerConfig};

/// The example binary, built by `cargo test` next to this test's directory.
fn fetch_binary() -> PathBuf {
    pop3_examples::example_binary("fetch").unwrap()
}

fn corpus() -> Vec<ServerMessage> {
    (0..12)
        .map(|i| ServerMessage {
            uid: format!("f{i}"),
            content: format!(
                "Subject: {i}\r\n\r\n.{}\r\n\u{e9}t\u{e9}\r\n",
                "y".repeat(i * 997)
            )
            .into_bytes(),
        })
        .collect()
}

fn run_fetch(server: &TestServer, password: &str, extra: &[&str]) -> (Output, tempfile::TempDir) {
    run_fetch_with_timeout(server, password, "10", extra)
}

fn run_fetch_with_timeout(
    server: &TestServer,
    password: &str,
    timeout: &str,
    extra: &[&str],
) -> (Output, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, server.ca_pem()).unwrap();
    let maildir = dir.path().join("Maildir");
    let port = server.addr().port().to_string();
    let mut args = vec![
        "--host",
        "127.0.0.1",
        "--port",
        &port,
        "--user",
        "user",
        "--password-env",
        "FETCH_TEST_PASSWORD",
        "--ca-file",
        ca.to_str().unwrap(),
        "--timeout",
        timeout,
        "--maildir",
        maildir.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let output = Command::new(fetch_binary())
        .args(&args)
        .env("FETCH_TEST_PASSWORD", password)
        .output()
        .unwrap();
    (output, dir)
}

fn delivered(dir: &tempfile::TempDir) -> Vec<Vec<u8>> {
    let new = dir.path().join("Maildir").join("new");
    let mut files: Vec<PathBuf> = std::fs::read_dir(new)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut bodies: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    bodies.sort();
    bodies
}

#[test]
fn fetches_into_maildir_over_tls_and_starttls() {
    for (implicit_tls, security) in [(true, "tls"), (false, "starttls")] {
        let options = ServerOptions {
            stls: !implicit_tls,
            ..ServerOptions::default()
        };
        let server = TestServer::start(TestServerConfig {
            options,
            messages: corpus(),
            implicit_tls,
            fault: Fault::None,
            gmail: None,
            ..TestServerConfig::default()
        })
        .unwrap();
        let (output, dir) = run_fetch(&server, "password", &["--security", security]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stderr}");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(stdout.lines().count(), 1, "{stdout}");
        assert!(stdout.starts_with("fetched 12 of 12 messages"), "{stdout}");
        assert!(
            stderr.contains("fetching 12/12"),
            "progress shown: {stderr}"
        );
        let mut expected: Vec<Vec<u8>> = corpus().into_iter().map(|m| m.content).collect();
        expected.sort();
        assert_eq!(delivered(&dir), expected);
        assert!(std::fs::read_dir(dir.path().join("Maildir/tmp"))
            .unwrap()
            .next()
            .is_none());
        assert_eq!(server.messages().len(), 12, "messages stay on the server");
    }
}

#[test]
fn failures_end_with_error_kind() {
    let options = ServerOptions {
        stls: true,
        ..ServerOptions::default()
    };
    let server = TestServer::start(TestServerConfig {
        options,
        messages: corpus(),
        ..TestServerConfig::default()
    })
    .unwrap();
    let cases: [(&str, &[&str], &str); 3] = [
        ("wrong", &["--security", "starttls"], "error: auth:"),
        ("password", &["--security", "plain"], "error: config:"),
        ("password", &["--auth", "nonsense"], "error: config:"),
    ];
    for (password, extra, expected) in cases {
        let (output, _dir) = run_fetch(&server, password, extra);
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().last().unwrap_or("");
        assert!(last.starts_with(expected), "{extra:?}: {stderr}");
    }
    drop(server);
    let cut = TestServer::start(TestServerConfig {
        implicit_tls: true,
        messages: corpus(),
        fault: Fault::DisconnectMidRetr { after: 100 },
        ..TestServerConfig::default()
    })
    .unwrap();
    let (output, dir) = run_fetch(&cut, "password", &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr
            .lines()
            .last()
            .unwrap_or("")
            .starts_with("error: connection-lost:"),
        "{stderr}"
    );
    assert!(
        std::fs::read_dir(dir.path().join("Maildir/tmp"))
            .unwrap()
            .next()
            .is_none(),
        "no partial file left"
    );
}

/// The last stderr line of a failed run.
fn last_error_line(output: &Output) -> String {
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    stderr.lines().last().unwrap_or("").to_owned()
}

#[test]
fn a_security_port_mismatch_names_the_other_security_in_every_direction() {
    let tls_port = TestServer::start(TestServerConfig {
        implicit_tls: true,
        messages: corpus(),
        ..TestServerConfig::default()
    })
    .unwrap();
    // The TLS server waits for a ClientHello while fetch waits for a greeting.
    for security in ["starttls", "plain"] {
        let extra = ["--security", security, "--allow-plaintext-auth"];
        let (output, _dir) = run_fetch_with_timeout(&tls_port, "password", "1", &extra);
        let last = last_error_line(&output);
        assert!(last.starts_with("error: timeout:"), "{security}: {last}");
        assert!(last.contains("not one byte"), "{security}: {last}");
        assert!(last.contains("implicit TLS"), "{security}: {last}");
        assert!(last.ends_with("(--security tls)"), "{security}: {last}");
        assert!(!last.contains("in the middle"), "{security}: {last}");
    }
    let plain_port = TestServer::start(TestServerConfig {
        options: ServerOptions {
            stls: true,
            ..ServerOptions::default()
        },
        messages: corpus(),
        ..TestServerConfig::default()
    })
    .unwrap();
    let (output, _dir) = run_fetch(&plain_port, "password", &["--security", "tls"]);
    let last = last_error_line(&output);
    assert!(last.starts_with("error: tls:"), "{last}");
    assert!(last.contains("plaintext POP3"), "{last}");
    assert!(last.ends_with("(--security starttls)"), "{last}");
}

#[test]
fn raw_utf8_headers_are_stored_as_the_server_holds_them() {
    let messages = vec![ServerMessage {
        uid: "u1".into(),
        content: "From: J\u{fc}rgen <j@example.com>\r\nSubject: Gr\u{fc}\u{df}e aus K\u{f6}ln\r\n\r\nHallo.\r\n"
            .as_bytes()
            .to_vec(),
    }];
    let server = TestServer::start(TestServerConfig {
        options: ServerOptions {
            utf8: true,
            ..ServerOptions::default()
        },
        messages: messages.clone(),
        implicit_tls: true,
        fault: Fault::None,
        gmail: None,
        ..TestServerConfig::default()
    })
    .unwrap();
    let (output, dir) = run_fetch(&server, "password", &[]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(delivered(&dir), [messages[0].content.clone()]);
}

#[test]
fn help_states_the_apop_and_cram_md5_exception() {
    let output = Command::new(fetch_binary()).arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout).replace('\n', " ");
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(help.contains("--allow-plaintext-auth"), "{help}");
    assert!(
        help.contains("Not needed for --auth apop (POP3) or cram-md5"),
        "{help}"
    );
}

/// The case: one message the server refuses every time, one it
/// cuts in the middle every time. The others are stored and deleted in the
/// first run; the two are quarantined by the third; the fourth exits 0
/// without asking for them, and only they stay on the server.
#[test]
fn messages_that_always_fail_are_quarantined_and_the_rest_flows() {
    use pop3_client::testing::BadMessage;
    let server = TestServer::start(TestServerConfig {
        options: ServerOptions {
            stls: true,
            ..ServerOptions::default()
        },
        messages: corpus(),
        bad_messages: vec![
            ("f3".into(), BadMessage::Refused),
            ("f7".into(), BadMessage::CutMidway),
        ],
        ..TestServerConfig::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = || {
        fetch_with_state(
            &server,
            dir.path(),
            &["--delete", "after-retrieval", "--max-attempts", "3"],
        )
    };
    let good = corpus().len() - 2;
    let (stdout, stderr) = run();
    assert!(
        stdout.starts_with(&format!("fetched {good} new messages")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("deleted {good}, skipped 2, quarantined 0")),
        "{stdout}"
    );
    assert!(
        stderr.contains("failed f3: the server refused to send it"),
        "{stderr}"
    );
    assert!(
        stderr.contains("failed f7: the connection was lost"),
        "{stderr}"
    );
    run();
    let (stdout, stderr) = run();
    assert!(stdout.contains("skipped 0, quarantined 2"), "{stdout}");
    assert!(
        stderr.contains("quarantined f3: the server refused"),
        "{stderr}"
    );
    assert!(
        stderr.contains("quarantined f7: the connection was lost"),
        "{stderr}"
    );
    let (stdout, stderr) = run();
    assert!(stdout.starts_with("fetched 0 new messages"), "{stdout}");
    assert!(
        stdout.contains("deleted 0, skipped 0, quarantined 2"),
        "{stdout}"
    );
    assert!(!stderr.contains("failed "), "not asked for again: {stderr}");
    let left: Vec<String> = server.messages().into_iter().map(|m| m.uid).collect();
    assert_eq!(left, ["f3", "f7"]);
    let mut stored = 0;
    for entry in std::fs::read_dir(dir.path().join("Maildir/new")).unwrap() {
        let content = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(corpus().iter().any(|m| m.content == content));
        stored += 1;
    }
    assert_eq!(stored, good, "every other message once");
}

/// `--first-sync from-now-on` on a mailbox of 100 stores nothing; after 3
/// new messages arrive, the next run stores exactly those 3.
#[test]
fn first_sync_from_now_on_stores_only_what_arrives_later() {
    let old: Vec<ServerMessage> = (0..100)
        .map(|i| ServerMessage {
            uid: format!("old-{i}"),
            content: format!("Subject: old {i}\r\n\r\nold\r\n").into_bytes(),
        })
        .collect();
    let server = TestServer::start(TestServerConfig {
        options: ServerOptions {
            stls: true,
            ..ServerOptions::default()
        },
        messages: old,
        ..TestServerConfig::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = || fetch_with_state(&server, dir.path(), &["--first-sync", "from-now-on"]).0;
    let stored = || {
        std::fs::read_dir(dir.path().join("Maildir/new"))
            .unwrap()
            .count()
    };
    let first = run();
    assert!(first.starts_with("fetched 0 new messages"), "{first}");
    assert!(first.contains("left out by the first sync 100"), "{first}");
    assert_eq!(stored(), 0);
    for i in 0..3 {
        server.deliver(ServerMessage {
            uid: format!("new-{i}"),
            content: format!("Subject: new {i}\r\n\r\nnew\r\n").into_bytes(),
        });
    }
    let next = run();
    assert!(next.starts_with("fetched 3 new messages"), "{next}");
    assert_eq!(stored(), 3);
    for entry in std::fs::read_dir(dir.path().join("Maildir/new")).unwrap() {
        let content = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(content.starts_with(b"Subject: new "));
    }
}

/// `fetch --state` into `dir` (its Maildir and state kept from run to
/// run) against `server` over STARTTLS, with `extra` options; asserts it
/// succeeded and returns its stdout and stderr.
fn fetch_with_state(
    server: &TestServer,
    dir: &std::path::Path,
    extra: &[&str],
) -> (String, String) {
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, server.ca_pem()).unwrap();
    let port = server.addr().port().to_string();
    let output = Command::new(fetch_binary())
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port,
            "--security",
            "starttls",
        ])
        .args(["--user", "user", "--password-env", "FETCH_TEST_PASSWORD"])
        .arg("--ca-file")
        .arg(&ca)
        .arg("--maildir")
        .arg(dir.join("Maildir"))
        .arg("--state")
        .arg(dir.join("state"))
        .args(extra)
        .env("FETCH_TEST_PASSWORD", "password")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    (String::from_utf8_lossy(&output.stdout).into_owned(), stderr)
}

/// `fetch --oauth2-*` three times against the fake provider, whose access
/// tokens live 1 second and whose refresh tokens rotate on every use and
/// are refused once used: each run stores what is new (runs 2 and 3 work
/// only if the rotated token was written back to the file); then the grant
/// is revoked: `error: reconsent:`, nothing fetched, the file unchanged.
#[test]
fn oauth2_refresh_tokens_rotate_across_runs_then_reconsent() {
    use pop3_client::testing::oauth::FakeProvider;
    let provider = FakeProvider::start("password", 1).unwrap();
    let server = TestServer::start(TestServerConfig {
        options: ServerOptions {
            stls: true,
            sasl: vec!["XOAUTH2".into()],
            ..ServerOptions::default()
        },
        ..TestServerConfig::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, server.ca_pem()).unwrap();
    let token_file = dir.path().join("refresh-token");
    std::fs::write(&token_file, "refresh-0\n").unwrap();
    let maildir = dir.path().join("Maildir");
    let state = dir.path().join("state");
    let port = server.addr().port().to_string();
    let url = provider.token_url();
    let run = || {
        Command::new(fetch_binary())
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port,
                "--security",
                "starttls",
                "--user",
                "user",
                "--auth",
                "xoauth2",
                "--oauth2-token-url",
                &url,
                "--oauth2-client-id",
                "client-id",
                "--oauth2-scope",
                "https://outlook.office.com/POP.AccessAsUser.All",
                "--oauth2-refresh-token-file",
                token_file.to_str().unwrap(),
                "--ca-file",
                ca.to_str().unwrap(),
                "--timeout",
                "10",
                "--maildir",
                maildir.to_str().unwrap(),
                "--state",
                state.to_str().unwrap(),
            ])
            .output()
            .unwrap()
    };
    let stored = || std::fs::read_dir(maildir.join("new")).unwrap().count();
    for round in 0..3 {
        server.deliver(ServerMessage {
            uid: format!("o{round}"),
            content: format!("Subject: {round}\r\n\r\nbody\r\n").into_bytes(),
        });
        let output = run();
        assert!(
            output.status.success(),
            "round {round}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(stored(), round + 1);
    }
    let current = provider.current_refresh_token().unwrap();
    assert_eq!(
        std::fs::read_to_string(&token_file).unwrap().trim(),
        current
    );
    provider.revoke();
    server.deliver(ServerMessage {
        uid: "late".into(),
        content: b"Subject: late\r\n\r\nbody\r\n".to_vec(),
    });
    let output = run();
    assert_eq!(output.status.code(), Some(1));
    let line = last_error_line(&output);
    assert!(line.starts_with("error: reconsent: "), "{line}");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!all.contains(&current), "{all}");
    assert_eq!(stored(), 3);
    assert_eq!(
        std::fs::read_to_string(&token_file).unwrap().trim(),
        current
    );
}
