//! The `account` workflow end to end against the in-process server: add
//! (verified before saving), list, activate, verify, set-password (the old
//! password kept when the new one fails), sync, remove.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use pop3_client::pop3_proto::server::{ServerMessage, ServerOptions};
use pop3_client::testing::smtp::{SmtpTestServer, SmtpTestServerConfig};
use pop3_client::testing::{TestServer, TestServerConfig};

fn binary() -> PathBuf {
    pop3_examples::example_binary("account").unwrap()
}

fn account(dir: &Path, args: &[&str], password: &str) -> Output {
    Command::new(binary())
        .arg("--config")
        .arg(dir)
        .args(args)
        .env("ACCOUNT_TEST_PASSWORD", password)
        .output()
        .unwrap()
}

fn last_line(output: &Output) -> String {
    pop3_examples::last_stderr_line(output)
}

#[test]
fn add_verify_change_password_sync_and_remove() {
    let messages: Vec<ServerMessage> = (0..5)
        .map(|i| ServerMessage {
            uid: format!("a{i}"),
            content: format!("Subject: {i}\r\n\r\nbody {i}\r\n").into_bytes(),
        })
        .collect();
    let server = TestServer::start(TestServerConfig {
        options: ServerOptions {
            stls: true,
            ..ServerOptions::default()
        },
        messages,
        ..TestServerConfig::default()
    })
    .unwrap();
    // The outgoing server takes the same user and password over STARTTLS.
    let smtp = SmtpTestServer::start(SmtpTestServerConfig::default()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("settings");
    let ca = tmp.path().join("ca.pem");
    // One trust file for both servers' self-signed certificates.
    std::fs::write(&ca, format!("{}{}", server.ca_pem(), smtp.ca_pem())).unwrap();
    let port = server.addr().port().to_string();
    let smtp_port = smtp.addr().port().to_string();
    let add = |name: &str, password: &str| {
        account(
            &dir,
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
                "ACCOUNT_TEST_PASSWORD",
                "--ca-file",
                ca.to_str().unwrap(),
                "--outgoing",
                "same",
                "--smtp-host",
                "127.0.0.1",
                "--smtp-port",
                &smtp_port,
                "--smtp-security",
                "starttls",
                "--meta",
                "share=team",
            ],
            password,
        )
    };

    let wrong = add("work", "wrong");
    assert!(!wrong.status.success());
    assert!(last_line(&wrong).starts_with("error: auth:"), "{wrong:?}");
    assert!(!dir.join("accounts.json").exists(), "nothing saved");

    let ok = add("work", "password");
    assert!(ok.status.success(), "{ok:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("accounts.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let second = add("home", "password");
    assert!(second.status.success(), "{second:?}");
    let list = String::from_utf8(account(&dir, &["list"], "").stdout).unwrap();
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 2, "{list}");
    assert!(
        lines[0].starts_with("work user@example.org 127.0.0.1:"),
        "{list}"
    );
    assert!(
        lines[0].ends_with(" active"),
        "the first added is active: {list}"
    );
    assert!(!lines[1].ends_with(" active"), "{list}");
    assert!(!list.contains("password"), "no secret shown");

    let activate = account(&dir, &["activate", "home"], "");
    assert!(activate.status.success());
    let list = String::from_utf8(account(&dir, &["list"], "").stdout).unwrap();
    assert!(list.lines().nth(1).unwrap().ends_with(" active"), "{list}");

    let change = account(
        &dir,
        &[
            "set-password",
            "work",
            "--incoming",
            "--password-env",
            "ACCOUNT_TEST_PASSWORD",
        ],
        "not-the-password",
    );
    assert!(last_line(&change).starts_with("error: auth:"), "{change:?}");
    let verify = account(&dir, &["verify", "work"], "");
    assert!(
        verify.status.success(),
        "the old password still works: {verify:?}"
    );
    let steps = String::from_utf8(verify.stdout).unwrap();
    for step in [
        "resolve: ok",
        "connect: ok",
        "tls: ok",
        "greeting: ok",
        "capabilities: ok",
        "login: ok",
        "mailbox: ok (5 messages",
        "outgoing connect: ok",
        "outgoing tls: ok",
        "outgoing login: ok",
    ] {
        assert!(steps.contains(step), "{step} in {steps}");
    }

    let sync = account(&dir, &["sync", "work"], "");
    assert!(sync.status.success(), "{sync:?}");
    let summary = String::from_utf8(sync.stdout).unwrap();
    assert!(
        summary.starts_with("work: 5 new, 0 deleted, 0 skipped"),
        "{summary}"
    );
    let maildir = dir.join("work").join("Maildir").join("new");
    assert_eq!(std::fs::read_dir(&maildir).unwrap().count(), 5);
    let again = String::from_utf8(account(&dir, &["sync", "work"], "").stdout).unwrap();
    assert!(again.starts_with("work: 0 new"), "{again}");

    let remove = account(&dir, &["remove", "home"], "");
    assert!(remove.status.success());
    let list = String::from_utf8(account(&dir, &["list"], "").stdout).unwrap();
    assert_eq!(list.lines().count(), 1);
    assert!(list.trim_end().ends_with(" active"), "{list}");
}

#[test]
fn a_recent_user_with_a_deleting_policy_is_refused_before_connecting() {
    let tmp = tempfile::tempdir().unwrap();
    let out = account(
        tmp.path(),
        &[
            "add",
            "g",
            "--email",
            "me@gmail.com",
            "--user",
            "recent:me@gmail.com",
            "--password-env",
            "ACCOUNT_TEST_PASSWORD",
            "--delete",
            "after-retrieval",
        ],
        "pw",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        last_line(&out).starts_with("error: config: delete_policy:"),
        "{out:?}"
    );
    let icloud = account(
        tmp.path(),
        &[
            "add",
            "i",
            "--email",
            "me@icloud.com",
            "--password-env",
            "ACCOUNT_TEST_PASSWORD",
        ],
        "pw",
    );
    assert!(last_line(&icloud).contains("no POP3 service"), "{icloud:?}");
}

#[test]
fn the_outgoing_login_is_verified_before_it_is_saved() {
    let server = TestServer::start(TestServerConfig {
        implicit_tls: true,
        ..TestServerConfig::default()
    })
    .unwrap();
    let smtp = SmtpTestServer::start(SmtpTestServerConfig {
        implicit_tls: true,
        ..SmtpTestServerConfig::default()
    })
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("settings");
    let ca = tmp.path().join("ca.pem");
    std::fs::write(&ca, format!("{}{}", server.ca_pem(), smtp.ca_pem())).unwrap();
    let (port, smtp_port) = (
        server.addr().port().to_string(),
        smtp.addr().port().to_string(),
    );
    let add = |smtp_password: &str| {
        Command::new(binary())
            .arg("--config")
            .arg(&dir)
            .args([
                "add",
                "out",
                "--email",
                "user@example.org",
                "--host",
                "127.0.0.1",
            ])
            .args([
                "--port",
                &port,
                "--user",
                "user",
                "--password-env",
                "POP_PW",
            ])
            .args(["--ca-file", ca.to_str().unwrap(), "--outgoing", "separate"])
            .args(["--smtp-host", "127.0.0.1", "--smtp-port", &smtp_port])
            .args(["--smtp-security", "tls", "--smtp-user", "user"])
            .args(["--smtp-password-env", "SMTP_PW"])
            .env("POP_PW", "password")
            .env("SMTP_PW", smtp_password)
            .output()
            .unwrap()
    };
    let wrong = add("wrong");
    assert!(last_line(&wrong).starts_with("error: auth:"), "{wrong:?}");
    assert!(!dir.join("accounts.json").exists(), "nothing saved");
    let ok = add("password");
    assert!(ok.status.success(), "{ok:?}");
    let change = |password: &str| {
        account(
            &dir,
            &[
                "set-password",
                "out",
                "--outgoing",
                "--password-env",
                "ACCOUNT_TEST_PASSWORD",
            ],
            password,
        )
    };
    let refused = change("not-it");
    assert!(
        last_line(&refused).starts_with("error: auth:"),
        "{refused:?}"
    );
    let verify = account(&dir, &["verify", "out"], "");
    assert!(
        verify.status.success(),
        "the old outgoing password kept: {verify:?}"
    );
    assert!(change("password").status.success());
}

/// `add --oauth2 custom --oauth2-browser`: the URL printed is followed as a
/// browser would (the fake provider signs in at once and redirects to the
/// program's loopback port); the account is saved with the refresh token,
/// each sync refreshes and writes the rotated token back to accounts.json
/// (the second works only if the first kept it); a revoked grant is
/// `error: reconsent:`. The device flow likewise, with its code.
#[test]
fn oauth2_sign_in_in_a_browser_and_on_a_device_then_syncs_keep_the_rotated_token() {
    use std::io::BufRead;
    use std::process::Stdio;

    use pop3_client::testing::oauth::{browse, FakeProvider};

    let server = TestServer::start(TestServerConfig {
        options: ServerOptions {
            stls: true,
            sasl: vec!["XOAUTH2".into()],
            ..ServerOptions::default()
        },
        ..TestServerConfig::default()
    })
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("settings");
    let ca = tmp.path().join("ca.pem");
    std::fs::write(&ca, server.ca_pem()).unwrap();
    let port = server.addr().port().to_string();
    // Adds NAME signing in with `how` at `provider`; `user_acts` is given
    // the line the program printed and plays the user's part.
    let add = |name: &str, provider: &FakeProvider, how: &str, user_acts: &dyn Fn(&str)| {
        let mut child = Command::new(binary())
            .arg("--config")
            .arg(&dir)
            .args([
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
                "--ca-file",
                ca.to_str().unwrap(),
                "--outgoing",
                "none",
                "--oauth2",
                "custom",
                "--oauth2-client-id",
                "client-id",
                "--oauth2-token-url",
                &provider.token_url(),
                "--oauth2-auth-url",
                &provider.auth_url(),
                "--oauth2-device-url",
                &provider.device_url(),
                "--oauth2-scope",
                "pop",
                how,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        user_acts(line.trim());
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{line}{rest}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            rest.contains(&format!("added {name}: login verified")),
            "{rest}"
        );
    };
    let saved = || std::fs::read_to_string(dir.join("accounts.json")).unwrap();

    let provider = FakeProvider::start("password", 3600).unwrap();
    add("browser", &provider, "--oauth2-browser", &|line| {
        let url = line
            .strip_prefix("open this URL in a browser to sign in: ")
            .unwrap_or_else(|| panic!("{line}"));
        let answer = browse(url).unwrap();
        assert!(answer.contains("Signed in."), "{answer}");
    });
    let first = provider.current_refresh_token().unwrap();
    assert!(saved().contains(&format!("\"{first}\"")), "{}", saved());
    assert!(saved().contains("\"kind\": \"oauth2\""), "{}", saved());
    assert_eq!(
        provider.refreshes(),
        0,
        "the sign-in's own token verified the login"
    );

    for round in 0..2 {
        server.deliver(ServerMessage {
            uid: format!("o{round}"),
            content: format!("Subject: {round}\r\n\r\nbody\r\n").into_bytes(),
        });
        let output = account(&dir, &["sync", "browser"], "");
        assert!(
            output.status.success(),
            "round {round}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(stdout.contains("browser: 1 new"), "round {round}: {stdout}");
        let current = provider.current_refresh_token().unwrap();
        assert!(saved().contains(&format!("\"{current}\"")), "round {round}");
    }
    assert_eq!(provider.refreshes(), 2);

    provider.revoke();
    let output = account(&dir, &["sync", "browser"], "");
    assert_eq!(output.status.code(), Some(1));
    assert!(
        last_line(&output).starts_with("error: reconsent: "),
        "{}",
        last_line(&output)
    );

    // The device flow: a URL and a code; the user opens the URL
    // elsewhere (here a GET approves) and the program's polling ends.
    let provider = FakeProvider::start("password", 3600).unwrap();
    add("device", &provider, "--oauth2-device", &|line| {
        let (url, code) = line
            .strip_prefix("to sign in, open ")
            .and_then(|rest| rest.split_once(" and enter the code "))
            .unwrap_or_else(|| panic!("{line}"));
        assert_eq!(code, "WDJB-MJHT");
        browse(url).unwrap();
    });
    let output = account(&dir, &["sync", "device"], "");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A refresh token rotated under a grant the user has since replaced (signed
/// in again while a poll was refreshing) is not written over the new one:
/// the new sign-in stands and the refresh fails saying why. Without a race,
/// a rotated token is written and the next one replaces it in turn.
#[test]
fn a_token_rotated_under_an_older_sign_in_does_not_replace_the_newer_one() {
    use pop3_client::account::{Account, Credential, OAuth2Grant};
    use pop3_client::oauth::OAuthProvider;
    use pop3_client::sql::{DbKey, SqlStore};
    use pop3_examples::database::DbTokens;
    use pop3_examples::settings::stored_refresh_token;

    let grant = |refresh: &str| {
        Credential::OAuth2(OAuth2Grant::new(
            OAuthProvider::Google,
            "client-id",
            refresh.into(),
        ))
    };
    let refresh_token_in = |store: &SqlStore, key: &DbKey, runtime: &tokio::runtime::Runtime| {
        let record = runtime.block_on(store.account("work", Some(key))).unwrap();
        match &record.account.incoming.credential {
            Credential::OAuth2(grant) => grant.refresh_token.expose().to_owned(),
            other => panic!("{other:?}"),
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = DbKey::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
    let store = runtime
        .block_on(SqlStore::open(&dir.path().join("mail.db")))
        .unwrap();
    let polled = Account::for_email("work", "someone@gmail.com", grant("first")).unwrap();
    runtime
        .block_on(store.add_account(&polled, "alice", Some(&key)))
        .unwrap();
    let tokens = DbTokens {
        store: store.clone(),
        key: Some(key.clone()),
        handle: runtime.handle().clone(),
    };

    // The poll read "first"; the user signs in again ("second") before the
    // poll's refresh rotates "first" into "rotated".
    let stored = stored_refresh_token(&polled);
    let signed_in_again = Account::for_email("work", "someone@gmail.com", grant("second")).unwrap();
    runtime
        .block_on(store.update_account(&signed_in_again, Some(&key)))
        .unwrap();
    let refused = tokens.save("work", &stored, &"rotated".into()).unwrap_err();
    assert!(
        refused.to_string().contains("changed meanwhile"),
        "{refused}"
    );
    assert_eq!(refresh_token_in(&store, &key, &runtime), "second");

    // A poll under the new sign-in: each rotation is written and becomes
    // the one the next replaces.
    let stored = stored_refresh_token(&signed_in_again);
    tokens.save("work", &stored, &"third".into()).unwrap();
    assert_eq!(refresh_token_in(&store, &key, &runtime), "third");
    tokens.save("work", &stored, &"fourth".into()).unwrap();
    assert_eq!(refresh_token_in(&store, &key, &runtime), "fourth");
}
