//! Interop with a real submission server: Dovecot's submission service
//! (`scripts/submission.sh start`), relaying to `smtp-sink`. The `send`
//! example delivers a message with 8-bit text, dot-led lines and a 10 MB
//! attachment over STARTTLS and implicit TLS with each AUTH mechanism, and
//! what reaches the sink is the message byte for byte after the one
//! `Received:` header Dovecot puts on top (the sink adds nothing); a wrong
//! password ends `error: auth:`; the library's `verify_outgoing` logs in.
//!
//! Skipped when `$POP3_SUBMISSION_DIR/env` (default
//! /tmp/pop3-submission/env) is missing, unless `POP3_REQUIRE_SUBMISSION=1`
//! (CI), which makes a missing server a failure.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use pop3_client::account::{Account, Credential, Outgoing, ServerSettings};
use pop3_client::testing::InteropServer;
use pop3_client::verify::{verify_outgoing, Stage};
use pop3_client::Security;

type Env = InteropServer;

fn env() -> Option<Env> {
    InteropServer::find(
        "POP3_SUBMISSION_DIR",
        "/tmp/pop3-submission",
        "POP3_REQUIRE_SUBMISSION",
        "submission tests; run scripts/submission.sh start",
    )
}

/// The example binary, built by `cargo test` next to this test's directory.
fn send_binary() -> PathBuf {
    pop3_examples::example_binary("send").unwrap()
}

fn base64(data: &[u8]) -> Vec<u8> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(data.len() * 4 / 3 + data.len() / 38 + 8);
    for (i, group) in data.chunks(3).enumerate() {
        let b = [
            group[0],
            *group.get(1).unwrap_or(&0),
            *group.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= group.len() {
                out.push(ALPHABET[(n >> (18 - 6 * k)) as usize & 63]);
            } else {
                out.push(b'=');
            }
        }
        // 76 characters a line.
        if i % 19 == 18 {
            out.extend_from_slice(b"\r\n");
        }
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A MIME message in CRLF form: 8-bit text (UTF-8 and bytes that are not),
/// dot-led lines (".", "..", ".x"), and a 10 MB attachment.
fn message(tag: &str) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(
        format!(
            "From: smtptest@example.org\r\nTo: sink@example.net\r\nSubject: interop {tag}\r\n\
             Message-ID: <{tag}@pop3.test>\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/mixed; boundary=\"b-{tag}\"\r\n\r\n\
             --b-{tag}\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: 8bit\r\n\r\n"
        )
        .as_bytes(),
    );
    m.extend_from_slice("Grüße aus Köln, naïve café, 日本語 😀\r\n".as_bytes());
    m.extend_from_slice(&(0x80u8..=0xff).collect::<Vec<u8>>());
    m.extend_from_slice(b"\r\n.\r\n..\r\n.leading dot\r\n...three\r\nend.\r\n");
    m.extend_from_slice(
        format!(
            "--b-{tag}\r\nContent-Type: application/octet-stream\r\n\
             Content-Disposition: attachment; filename=\"big.bin\"\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n"
        )
        .as_bytes(),
    );
    let mut x: u32 = 0x2545_f491;
    let attachment: Vec<u8> = (0..10 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    m.extend_from_slice(&base64(&attachment));
    m.extend_from_slice(format!("--b-{tag}--\r\n").as_bytes());
    m
}

fn run_send(env: &Env, password: &str, args: &[&str], stdin: Option<&Path>) -> Output {
    let mut command = Command::new(send_binary());
    command
        .args([
            "--host",
            env.get("host"),
            "--user",
            env.get("user"),
            "--password-env",
            "SUBMISSION_TEST_PASSWORD",
            "--ca-file",
            env.get("ca_file"),
            "--timeout",
            "60",
            "--from",
            "smtptest@example.org",
        ])
        .args(args)
        .env("SUBMISSION_TEST_PASSWORD", password)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match stdin {
        Some(path) => command.stdin(std::fs::File::open(path).unwrap()),
        None => command.stdin(Stdio::null()),
    };
    command.output().unwrap()
}

/// The message the sink received for `recipient`.
fn arrived(env: &Env, recipient: &str) -> Vec<u8> {
    let new = Path::new(env.get("sink_dir")).join("new");
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        for entry in std::fs::read_dir(&new).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "envelope") {
                let envelope = std::fs::read_to_string(&path).unwrap();
                if envelope.lines().skip(1).any(|l| l == recipient) {
                    let eml = path.with_extension("eml");
                    if let Ok(data) = std::fs::read(&eml) {
                        return data;
                    }
                }
            }
        }
        assert!(
            Instant::now() < until,
            "nothing reached the sink for {recipient}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Removes the one `Received:` header field (with its folded lines) that
/// Dovecot puts on top; returns it and the rest.
fn without_trace(data: &[u8]) -> (String, &[u8]) {
    assert!(data.starts_with(b"Received: "), "no trace header on top");
    let mut at = 0;
    loop {
        let end = data[at..].iter().position(|&b| b == b'\n').unwrap() + at + 1;
        at = end;
        if !matches!(data.get(at), Some(b' ' | b'\t')) {
            break;
        }
    }
    (
        String::from_utf8_lossy(&data[..at]).into_owned(),
        &data[at..],
    )
}

#[test]
fn send_delivers_byte_for_byte_over_both_modes_with_each_mechanism() {
    let Some(env) = env() else { return };
    let dir = tempfile::tempdir().unwrap();
    let pid = std::process::id();
    for (security, port) in [("starttls", "starttls_port"), ("tls", "tls_port")] {
        for auth in ["plain", "login", "cram-md5"] {
            let tag = format!("{security}-{auth}-{pid}");
            let message = message(&tag);
            let file = dir.path().join(format!("{tag}.eml"));
            std::fs::write(&file, &message).unwrap();
            let recipient = format!("rcpt-{tag}@example.net");
            let output = run_send(
                &env,
                env.get("password"),
                &[
                    "--port",
                    env.get(port),
                    "--security",
                    security,
                    "--auth",
                    auth,
                    "--to",
                    &recipient,
                ],
                Some(&file),
            );
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(output.status.code(), Some(0), "{tag}: {stderr}");
            let stdout = String::from_utf8_lossy(&output.stdout);
            assert!(stdout.starts_with("250 "), "{tag}: {stdout}");
            let data = arrived(&env, &recipient);
            let (trace, rest) = without_trace(&data);
            assert!(trace.contains("with ESMTPSA"), "{trace}");
            assert!(trace.contains(&format!("for <{recipient}>")), "{trace}");
            assert!(
                rest == message.as_slice(),
                "{tag}: {} bytes arrived after the trace header, {} sent",
                rest.len(),
                message.len()
            );
        }
    }
}

#[test]
fn verify_only_with_a_wrong_password_is_auth() {
    let Some(env) = env() else { return };
    for (security, port) in [("starttls", "starttls_port"), ("tls", "tls_port")] {
        let args = [
            "--port",
            env.get(port),
            "--security",
            security,
            "--to",
            "nobody@example.net",
            "--verify-only",
        ];
        let output = run_send(&env, "wrong password", &args, None);
        assert_eq!(output.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().last().unwrap_or_default();
        assert!(last.starts_with("error: auth: "), "{stderr}");
        assert!(last.contains("535 5.7.8"), "{last}");
        let output = run_send(&env, env.get("password"), &args, None);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(0), "{stdout}");
        assert!(stdout.starts_with("verified: "), "{stdout}");
    }
}

#[test]
fn verify_outgoing_against_dovecot() {
    let Some(env) = env() else { return };
    for (security, port) in [
        (Security::StartTls, "starttls_port"),
        (Security::Tls, "tls_port"),
    ] {
        let mut account = Account::for_email(
            "submission",
            "smtptest@example.org",
            Credential::password(env.get("password")),
        )
        .unwrap();
        let settings = |secret: &str| ServerSettings {
            host: env.get("host").into(),
            port: env.get(port).parse().unwrap(),
            security,
            user: env.get("user").into(),
            credential: Credential::password(secret),
            allow_plaintext_auth: false,
        };
        account.outgoing = Outgoing::Separate(settings(env.get("password")));
        account.trust.ca_file = Some(env.get("ca_file").into());
        let steps = verify_outgoing(&account).unwrap();
        let stages: Vec<Stage> = steps.iter().map(|s| s.stage).collect();
        assert!(stages.ends_with(&[Stage::Ehlo, Stage::Auth]), "{stages:?}");
        let tls = steps.iter().find(|s| s.stage == Stage::Tls).unwrap();
        assert!(tls.certificate.is_some(), "the certificate is shown");
        account.outgoing = Outgoing::Separate(settings("wrong"));
        let e = verify_outgoing(&account).unwrap_err();
        assert_eq!(e.failed, Stage::Auth, "{e}");
        assert_eq!(e.error.kind(), "auth", "{e}");
        assert!(!e.error.is_transient());
    }
}
