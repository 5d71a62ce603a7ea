//! Interop with a real Dovecot POP3 server on 127.0.0.1, started by
//! `scripts/dovecot.sh start` (CI does this). Without it these tests say they
//! were skipped and pass; with POP3_REQUIRE_DOVECOT=1 (set by CI) they fail.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use pop3_client::blocking::Client;
use pop3_client::pop3_proto::RespCodeKind;
use pop3_client::testing::InteropServer;
use pop3_client::{
    AuthMethod, ClientConfig, Credentials, Error, ErrorKind, MsgNum, Security, TlsRoots,
};

struct Dovecot {
    server: InteropServer,
}

impl Dovecot {
    fn find() -> Option<Self> {
        let server = InteropServer::find(
            "POP3_DOVECOT_DIR",
            "/tmp/pop3-dovecot",
            "POP3_REQUIRE_DOVECOT",
            "Dovecot interop tests; run scripts/dovecot.sh start",
        )?;
        Some(Self { server })
    }

    fn get(&self, key: &str) -> &str {
        self.server.get(key)
    }

    fn config(&self, security: Security, auth: AuthMethod) -> ClientConfig {
        let mut config = ClientConfig::new(self.get("host"));
        config.security = security;
        config.port = Some(
            match security {
                Security::Tls => self.get("tls_port"),
                _ => self.get("plain_port"),
            }
            .parse()
            .unwrap(),
        );
        config.roots = TlsRoots::CaFile(self.get("ca_file").into());
        config.auth = auth;
        config
    }

    fn credentials(&self) -> Credentials {
        Credentials::new(self.get("user"), self.get("password"))
    }

    /// What Dovecot serves: the corpus files, which the script wrote in CRLF
    /// form with a final CRLF, so the bytes on the wire are the file's.
    /// Read again when Dovecot moves a file from new/ to cur/ meanwhile
    /// (it does when a session, another test's, opens the mailbox).
    fn expected(&self) -> Vec<Vec<u8>> {
        let maildir = PathBuf::from(self.get("maildir"));
        'again: loop {
            let mut bodies = Vec::new();
            for sub in ["new", "cur"] {
                for entry in std::fs::read_dir(maildir.join(sub)).unwrap() {
                    match std::fs::read(entry.unwrap().path()) {
                        Ok(body) => bodies.push(body),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue 'again,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
            bodies.sort();
            return bodies;
        }
    }
}

fn fetch_all(client: &mut Client) -> Vec<Vec<u8>> {
    let msgs: Vec<MsgNum> = client.uidl().unwrap().into_iter().map(|u| u.msg).collect();
    let mut bodies: Vec<Vec<u8>> = client
        .retr_many_vec(&msgs)
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    bodies.sort();
    bodies
}

#[test]
fn every_message_byte_identical_in_every_auth_mode() {
    let Some(dovecot) = Dovecot::find() else {
        return;
    };
    let expected = dovecot.expected();
    assert_eq!(expected.len(), 6);
    assert!(expected.iter().any(|b| b.len() > 10 * 1024 * 1024));
    for security in [Security::Tls, Security::StartTls] {
        for auth in [
            AuthMethod::Auto,
            AuthMethod::User,
            AuthMethod::Plain,
            AuthMethod::Login,
            AuthMethod::CramMd5,
            AuthMethod::Apop,
        ] {
            let config = dovecot.config(security, auth);
            let mut client = Client::connect(&config, &dovecot.credentials())
                .unwrap_or_else(|e| panic!("{security:?} {auth:?}: {e}"));
            assert!(client.is_tls());
            assert!(
                client.capabilities().pipelining(),
                "Dovecot pipelines after login"
            );
            assert_eq!(fetch_all(&mut client), expected, "{security:?} {auth:?}");
            // TOP gives the header and the blank line at least.
            let mut top = Vec::new();
            client.top(MsgNum::new(1).unwrap(), 0, &mut top).unwrap();
            assert!(
                top.ends_with(b"\r\n\r\n"),
                "{:?}",
                String::from_utf8_lossy(&top)
            );
            client.quit().unwrap();
        }
    }
}

#[test]
fn plaintext_login_only_when_allowed() {
    let Some(dovecot) = Dovecot::find() else {
        return;
    };
    let mut config = dovecot.config(Security::Plain, AuthMethod::User);
    let err = Client::connect(&config, &dovecot.credentials())
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    config.allow_plaintext_auth = true;
    let mut client = Client::connect(&config, &dovecot.credentials()).unwrap();
    assert!(!client.is_tls());
    assert_eq!(client.stat().unwrap().count, 6);
    client.quit().unwrap();
}

#[test]
fn wrong_password_gives_auth_code() {
    let Some(dovecot) = Dovecot::find() else {
        return;
    };
    let config = dovecot.config(Security::Tls, AuthMethod::User);
    let err = Client::connect(&config, &Credentials::new(dovecot.get("user"), "wrong"))
        .err()
        .unwrap();
    match &err {
        Error::Auth { code, .. } => {
            assert_eq!(code.as_ref().map(|c| c.kind()), Some(RespCodeKind::Auth))
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("app-specific password"));
}

#[tokio::test]
async fn async_client_fetches_the_same_bytes() {
    let Some(dovecot) = Dovecot::find() else {
        return;
    };
    let config = dovecot.config(Security::StartTls, AuthMethod::Auto);
    let mut client = pop3_client::async_client::Client::connect(&config, &dovecot.credentials())
        .await
        .unwrap();
    let msgs: Vec<MsgNum> = client
        .uidl()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.msg)
        .collect();
    let mut bodies: Vec<Vec<u8>> = client
        .retr_many_vec(&msgs)
        .await
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    bodies.sort();
    assert_eq!(bodies, dovecot.expected());
    client.quit().await.unwrap();
}

/// A poll that finds nothing new, at a Dovecot remembered from the poll
/// before: at most 5 round trips over TLS from connect to close (connect,
/// TLS, greeting, CAPA with AUTH PLAIN, CAPA with LIST and UIDL; QUIT not
/// waited for), counted from outside by a delaying proxy; the same poll
/// without the memory costs more. The mail stays on the server.
#[test]
fn a_poll_of_a_remembered_dovecot_costs_five_round_trips() {
    use pop3_client::store::MaildirSink;
    use pop3_client::sync::state::MemoryState;
    use pop3_client::sync::{sync_blocking, SyncOptions};
    use pop3_client::testing::proxy::DelayingProxy;
    use std::time::Duration;
    let Some(dovecot) = Dovecot::find() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut maildir = MaildirSink::create(dir.path()).unwrap();
    let mut state = MemoryState::new();
    let mut config = dovecot.config(Security::Tls, AuthMethod::Auto);
    let mut poll = |config: &ClientConfig| {
        sync_blocking(
            config,
            &dovecot.credentials(),
            &mut state,
            &mut maildir,
            SyncOptions::default(),
            None,
        )
        .unwrap()
    };
    // The corpus (10 MB among it) fetched directly, not through the delay.
    let first = poll(&config);
    assert_eq!(first.new, dovecot.expected().len());
    let profile = first.server_profile.clone();
    assert!(profile.is_some(), "{first:?}");
    let dovecot_addr = format!("127.0.0.1:{}", dovecot.get("tls_port"))
        .parse()
        .unwrap();
    let proxy = DelayingProxy::start(dovecot_addr, Duration::from_millis(50)).unwrap();
    config.port = Some(proxy.addr().port());
    let unknown = poll(&config);
    let without = proxy.take_waits();
    config.server_profile = profile;
    let known = poll(&config);
    let with = proxy.take_waits();
    assert_eq!((unknown.new, known.new, known.sessions), (0, 0, 1));
    assert!(
        with <= 5,
        "{with} round trips (without the memory: {without})"
    );
    assert!(with < without, "{with} vs {without}");
}
