//! OAuth2 end to end against a real server: Dovecot with `passdb oauth2`
//! (`scripts/oauth.sh start`), which takes XOAUTH2 and OAUTHBEARER only
//! and checks each access token at a fake provider's introspection
//! endpoint. This test's own provider (same signing key) issues 5-second
//! access tokens, rotates the refresh token on every use and refuses a
//! used one. `fetch` runs three times, six seconds apart, and each run
//! stores what is new (the second and third work only if the rotated
//! refresh token was written back); `send` delivers with the same token
//! file; the grant is revoked: `error: reconsent:`, nothing fetched or
//! deleted, the file unchanged.
//!
//! Skipped when `$POP3_OAUTH_DIR/env` (default /tmp/pop3-oauth/env) is
//! missing, unless `POP3_REQUIRE_OAUTH=1` (CI), which makes a missing
//! server a failure.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use pop3_client::testing::oauth::FakeProvider;
use pop3_client::testing::InteropServer;

fn env() -> Option<InteropServer> {
    InteropServer::find(
        "POP3_OAUTH_DIR",
        "/tmp/pop3-oauth",
        "POP3_REQUIRE_OAUTH",
        "OAuth2 tests against Dovecot; run scripts/oauth.sh start",
    )
}

/// Replaces what the user's Maildir holds by `count` new messages.
fn fill(env: &InteropServer, count: usize) {
    let out = Command::new("bash")
        .arg(env.get("fill_script"))
        .args(["fill", &count.to_string()])
        .env("POP3_OAUTH_DIR", &env.dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The files Dovecot holds for the user (new/ and cur/).
fn on_server(env: &InteropServer) -> usize {
    let maildir = PathBuf::from(env.get("maildir"));
    ["new", "cur"]
        .iter()
        .map(|sub| std::fs::read_dir(maildir.join(sub)).unwrap().count())
        .sum()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The `--oauth2-*` options both examples take.
fn oauth_args<'a>(provider_url: &'a str, token_file: &'a Path, mechanism: &'a str) -> Vec<&'a str> {
    vec![
        "--auth",
        mechanism,
        "--oauth2-token-url",
        provider_url,
        "--oauth2-client-id",
        "client-id",
        "--oauth2-scope",
        "https://mail.example/pop",
        "--oauth2-refresh-token-file",
        token_file.to_str().unwrap(),
    ]
}

#[test]
fn fetch_three_times_six_seconds_apart_then_send_then_reconsent() {
    let Some(env) = env() else { return };
    let key = std::fs::read(env.get("key_file")).unwrap();
    let provider = FakeProvider::signed(key.trim_ascii(), env.get("user"), 5).unwrap();
    let url = provider.token_url();
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("refresh-token");
    std::fs::write(&token_file, "refresh-0\n").unwrap();
    let maildir = dir.path().join("Maildir");
    let state = dir.path().join("state");
    let fetch = |mechanism: &str| {
        Command::new(pop3_examples::example_binary("fetch").unwrap())
            .args([
                "--host",
                env.get("host"),
                "--port",
                env.get("tls_port"),
                "--security",
                "tls",
                "--user",
                env.get("user"),
                "--ca-file",
                env.get("ca_file"),
                "--timeout",
                "20",
                "--maildir",
                maildir.to_str().unwrap(),
                "--state",
                state.to_str().unwrap(),
                "--delete",
                "after-retrieval",
            ])
            .args(oauth_args(&url, &token_file, mechanism))
            .output()
            .unwrap()
    };
    let stored = || std::fs::read_dir(maildir.join("new")).map_or(0, |d| d.count());

    // Three runs, each after the last access token expired: each refresh
    // presents the refresh token the previous run stored.
    let mut expected = 0;
    for (round, (count, mechanism)) in [(2, "xoauth2"), (3, "oauthbearer"), (1, "xoauth2")]
        .into_iter()
        .enumerate()
    {
        if round > 0 {
            std::thread::sleep(Duration::from_secs(6));
        }
        fill(&env, count);
        let output = fetch(mechanism);
        assert!(output.status.success(), "round {round}: {}", text(&output));
        expected += count;
        assert_eq!(stored(), expected, "round {round}: {}", text(&output));
        assert_eq!(on_server(&env), 0, "round {round}: deleted after retrieval");
    }
    assert_eq!(provider.refreshes(), 3);
    let current = provider.current_refresh_token().unwrap();
    assert_eq!(
        std::fs::read_to_string(&token_file).unwrap().trim(),
        current
    );

    // The same token file sends through the submission service.
    let sink = Path::new(env.get("sink_dir")).join("new");
    let before = std::fs::read_dir(&sink).map_or(0, |d| d.count());
    let mut send = Command::new(pop3_examples::example_binary("send").unwrap())
        .args([
            "--host",
            env.get("host"),
            "--port",
            env.get("submission_port"),
            "--security",
            "starttls",
            "--user",
            env.get("user"),
            "--ca-file",
            env.get("ca_file"),
            "--timeout",
            "20",
            "--from",
            "oauthtest@example.org",
            "--to",
            "someone@example.org",
        ])
        .args(oauth_args(&url, &token_file, "oauthbearer"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    send.stdin
        .take()
        .unwrap()
        .write_all(b"Subject: sent with a token\r\n\r\nHello.\r\n")
        .unwrap();
    let output = send.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let after = std::fs::read_dir(&sink).map_or(0, |d| d.count());
    assert!(after > before, "nothing reached the sink");

    // Revoked: a sign-in is needed, and nothing is fetched or deleted.
    let current = provider.current_refresh_token().unwrap();
    provider.revoke();
    std::thread::sleep(Duration::from_secs(6));
    fill(&env, 2);
    let output = fetch("xoauth2");
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr.lines().last().unwrap_or("");
    assert!(last.starts_with("error: reconsent: "), "{last}");
    assert!(!text(&output).contains(&current), "{}", text(&output));
    assert_eq!(stored(), expected);
    assert_eq!(on_server(&env), 2);
    assert_eq!(
        std::fs::read_to_string(&token_file).unwrap().trim(),
        current
    );
}
