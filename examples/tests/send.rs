//! The `send` program end to end against the in-process SMTP server: the
//! message on stdin arrives, `--verify-only` sends nothing, a partial
//! refusal exits 3, failures end with `error: KIND:`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use pop3_client::testing::smtp::{SmtpFault, SmtpTestServer, SmtpTestServerConfig};

/// The example binary, built by `cargo test` next to this test's directory.
fn send_binary() -> PathBuf {
    pop3_examples::example_binary("send").unwrap()
}

fn server(fault: SmtpFault) -> SmtpTestServer {
    SmtpTestServer::start(SmtpTestServerConfig {
        fault,
        ..SmtpTestServerConfig::default()
    })
    .unwrap()
}

fn run_send(server: &SmtpTestServer, password: &str, extra: &[&str], stdin: &[u8]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, server.ca_pem()).unwrap();
    let port = server.addr().port().to_string();
    let mut args = vec![
        "--host",
        "127.0.0.1",
        "--port",
        &port,
        "--security",
        "starttls",
        "--user",
        "user",
        "--password-env",
        "SEND_TEST_PASSWORD",
        "--ca-file",
        ca.to_str().unwrap(),
        "--from",
        "me@example.org",
    ];
    if !extra.contains(&"--timeout") {
        args.extend_from_slice(&["--timeout", "10"]);
    }
    args.extend_from_slice(extra);
    let mut child = Command::new(send_binary())
        .args(&args)
        .env("SEND_TEST_PASSWORD", password)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    // The program may not read stdin (--verify-only, early failures).
    let _ = input.write_all(stdin);
    drop(input);
    child.wait_with_output().unwrap()
}

fn last_stderr_line(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn sends_stdin() {
    let server = server(SmtpFault::None);
    let message = b"Subject: hi\n\n.dot\nbody\n";
    let output = run_send(
        &server,
        "password",
        &["--to", "a@example.net", "--to", "b@example.net"],
        message,
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(stdout.trim(), "250 Ok: queued as TEST1");
    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].to, ["a@example.net", "b@example.net"]);
    assert_eq!(messages[0].data, b"Subject: hi\r\n\r\n.dot\r\nbody\r\n");
}

#[test]
fn verify_only() {
    let server = server(SmtpFault::None);
    let output = run_send(
        &server,
        "password",
        &["--to", "a@example.net", "--verify-only"],
        b"",
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        last_stderr_line(&output)
    );
    let output = run_send(
        &server,
        "wrong",
        &["--to", "a@example.net", "--verify-only"],
        b"",
    );
    assert_eq!(output.status.code(), Some(1));
    let last = last_stderr_line(&output);
    assert!(last.starts_with("error: auth: "), "{last}");
    assert!(last.contains("app-specific password"), "{last}");
    assert!(server.messages().is_empty());
}

#[test]
fn partial_refusal_exits_3() {
    let server = server(SmtpFault::None);
    let output = run_send(
        &server,
        "password",
        &["--to", "ok@example.net", "--to", "bad@example.net"],
        b"hi\n",
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("refused: <bad@example.net>: ") && l.contains("550 5.1.1")),
        "{stderr}"
    );
    assert_eq!(server.messages()[0].to, ["ok@example.net"]);
}

#[test]
fn failures_name_their_kind() {
    let server = server(SmtpFault::NoStartTls);
    let output = run_send(&server, "password", &["--to", "a@example.net"], b"hi\n");
    assert_eq!(output.status.code(), Some(1));
    let last = last_stderr_line(&output);
    assert!(last.starts_with("error: tls: "), "{last}");
    let server = self::server(SmtpFault::None);
    let output = run_send(
        &server,
        "password",
        &["--to", "bad1@example.net", "--to", "bad2@example.net"],
        b"hi\n",
    );
    assert_eq!(output.status.code(), Some(1));
    let last = last_stderr_line(&output);
    assert!(last.starts_with("error: recipient: "), "{last}");
    let output = run_send(
        &server,
        "password",
        &["--to", "a@example.net", "--auth", "nope"],
        b"",
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(last_stderr_line(&output).starts_with("error: config: "));
}

#[test]
fn each_fault_ends_with_its_kind_and_nothing_goes_out_in_the_clear() {
    let message = vec![b'x'; 5000];
    let cases = [
        (SmtpFault::InjectAfterStartTls, "tls"),
        (SmtpFault::RefuseStartTls, "tls"),
        (SmtpFault::NoStartTls, "tls"),
        (SmtpFault::AppPasswordRequired, "app-password"),
        (SmtpFault::SizeLimit(1000), "too-big"),
        (SmtpFault::ShutdownAfterMail, "limit"),
        (SmtpFault::EndlessReplyLine, "protocol"),
        (SmtpFault::StopAnsweringAtMail, "timeout"),
    ];
    for (fault, kind) in cases {
        let server = server(fault.clone());
        let output = run_send(
            &server,
            "password",
            &["--to", "a@example.net", "--timeout", "2"],
            &message,
        );
        let last = last_stderr_line(&output);
        assert_eq!(output.status.code(), Some(1), "{fault:?}: {last}");
        assert!(
            last.starts_with(&format!("error: {kind}: ")),
            "{fault:?}: {last}"
        );
        assert!(server.messages().is_empty(), "{fault:?}: nothing delivered");
        // Before TLS only EHLO and STARTTLS may pass: never AUTH or MAIL.
        let in_clear: Vec<String> = server
            .lines()
            .into_iter()
            .filter(|l| !l.tls)
            .map(|l| l.line.split(' ').next().unwrap_or("").to_ascii_uppercase())
            .collect();
        assert!(
            in_clear.iter().all(|c| c == "EHLO" || c == "STARTTLS"),
            "{fault:?}: sent in the clear: {in_clear:?}"
        );
    }
}
