//! `fetch`'s trust options end to end: `--ca-file` holding a CA:TRUE
//! self-signed certificate (what a bare `openssl req -x509` makes),
//! `--pin-sha256` alone, a wrong pin failing before any credential is sent,
//! and an untrusted certificate's error line in words with its fingerprint.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::{Command, Output};

use pop3_client::pop3_proto::server::{ServerMessage, ServerOptions};
use pop3_client::testing::{Fault, TestCertificate, TestServer, TestServerConfig};

/// The example binary, built by `cargo test` next to this test's directory.
fn fetch_binary() -> PathBuf {
    pop3_examples::example_binary("fetch").unwrap()
}

fn server(implicit_tls: bool) -> TestServer {
    TestServer::start_with_certificate(
        TestServerConfig {
            options: ServerOptions {
                stls: !implicit_tls,
                ..ServerOptions::default()
            },
            messages: vec![ServerMessage {
                uid: "t1".into(),
                content: b"Subject: trust\r\n\r\nHello\r\n".to_vec(),
            }],
            implicit_tls,
            fault: Fault::None,
            gmail: None,
            ..TestServerConfig::default()
        },
        TestCertificate::SelfSignedCa,
    )
    .unwrap()
}

/// Runs fetch against `server` with `extra` trust flags (`CA` in them is
/// replaced by the path of a file holding the server's certificate), with
/// the library's debug trace on so that every command sent is visible.
fn run_fetch(server: &TestServer, security: &str, extra: &[&str]) -> (Output, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("server.pem");
    std::fs::write(&ca, server.ca_pem()).unwrap();
    let maildir = dir.path().join("Maildir");
    let port = server.addr().port().to_string();
    let mut args: Vec<&str> = vec![
        "--host",
        "127.0.0.1",
        "--port",
        &port,
        "--security",
        security,
        "--user",
        "user",
        "--password-env",
        "FETCH_TEST_PASSWORD",
        "--timeout",
        "10",
        "--maildir",
        maildir.to_str().unwrap(),
    ];
    let ca = ca.to_str().unwrap();
    args.extend(extra.iter().map(|a| if *a == "CA" { ca } else { a }));
    let output = Command::new(fetch_binary())
        .args(&args)
        .env("FETCH_TEST_PASSWORD", "password")
        .env("RUST_LOG", "pop3_client=debug")
        .output()
        .unwrap();
    (output, dir)
}

fn fingerprint(server: &TestServer) -> String {
    let fingerprint = server.fingerprint();
    assert_eq!(fingerprint.len(), 32 * 3 - 1, "{fingerprint}");
    fingerprint
}

fn last_line(output: &Output) -> String {
    pop3_examples::last_stderr_line(output)
}

#[test]
fn ca_file_with_a_ca_true_self_signed_certificate_is_trusted() {
    for (implicit_tls, security) in [(true, "tls"), (false, "starttls")] {
        let server = server(implicit_tls);
        let (output, _dir) = run_fetch(&server, security, &["--ca-file", "CA"]);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{security}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(stdout.starts_with("fetched 1 of 1 messages"), "{stdout}");
    }
}

#[test]
fn the_right_pin_alone_is_trusted_in_any_form() {
    let server = server(true);
    let pin = fingerprint(&server);
    let bare = pin.replace(':', "").to_lowercase();
    let (output, _dir) = run_fetch(&server, "tls", &["--pin-sha256", &bare]);
    assert!(output.status.success(), "{}", last_line(&output));
    // The trace names login commands when they are sent (the wrong-pin test
    // relies on it).
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("send") && (l.contains("USER") || l.contains("AUTH"))),
        "{stderr}"
    );
    // Beside a wrong one, and beside the CA file.
    let wrong = "00".repeat(32);
    let (output, _dir) = run_fetch(
        &server,
        "tls",
        &[
            "--pin-sha256",
            &wrong,
            "--pin-sha256",
            &pin,
            "--ca-file",
            "CA",
        ],
    );
    assert!(output.status.success(), "{}", last_line(&output));
}

#[test]
fn a_wrong_pin_fails_with_tls_before_any_credential() {
    let server = server(false);
    let right = fingerprint(&server);
    let wrong = "ab:".repeat(31) + "ab";
    for extra in [
        vec!["--pin-sha256", wrong.as_str()],
        vec!["--pin-sha256", wrong.as_str(), "--ca-file", "CA"],
    ] {
        let (output, dir) = run_fetch(&server, "starttls", &extra);
        assert!(!output.status.success());
        let last = last_line(&output);
        assert!(last.starts_with("error: tls: "), "{last}");
        assert!(last.contains("none of the pinned fingerprints"), "{last}");
        assert!(last.contains(&right), "the presented fingerprint: {last}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let sent: Vec<&str> = stderr.lines().filter(|l| l.contains("send")).collect();
        assert!(
            sent.iter().any(|l| l.contains("STLS")),
            "the trace shows what was sent: {stderr}"
        );
        assert!(
            !sent.iter().any(|l| ["USER", "PASS", "AUTH", "APOP"]
                .iter()
                .any(|c| l.contains(c))),
            "no credential sent: {stderr}"
        );
        let new = dir.path().join("Maildir/new");
        assert_eq!(std::fs::read_dir(new).unwrap().count(), 0);
    }
    let (output, _dir) = run_fetch(&server, "tls", &["--pin-sha256", "not-hex"]);
    assert!(last_line(&output).starts_with("error: config: "));
}

#[test]
fn an_untrusted_certificate_is_described_in_words_with_its_fingerprint() {
    let server = server(true);
    let (output, _dir) = run_fetch(&server, "tls", &[]);
    assert!(!output.status.success());
    let last = last_line(&output);
    assert!(last.starts_with("error: tls: "), "{last}");
    assert!(last.contains("is a CA certificate"), "{last}");
    assert!(last.contains("subject \"CN=localhost\""), "{last}");
    assert!(last.contains("valid from "), "{last}");
    assert!(
        last.contains(&format!("SHA-256 fingerprint {}", fingerprint(&server))),
        "{last}"
    );
    assert!(
        !last.contains("Other") && !last.contains("Error("),
        "no Debug dump: {last}"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--pin-sha256 "), "a hint: {stderr}");
}
