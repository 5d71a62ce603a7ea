//! Interop with GNU Mailutils pop3d (3.15) on 127.0.0.1, started by
//! `scripts/mailutils.sh start` (CI does this). Without it these tests say
//! they were skipped and pass; with POP3_REQUIRE_MAILUTILS=1 (set by CI) they
//! fail.
//!
//! What Mailutils changes, and these tests allow for: it adds an `X-UIDL`
//! header on RETR; its QUIT rewrites the mailbox even when all mail is kept
//! (`Status:`, `X-UID:`, `X-IMAPbase:` in the mbox, which later RETRs then
//! serve); it turns LF into CRLF on the wire and undoes mboxrd `>From `
//! quoting. Each message is compared byte for byte once those headers are
//! removed. It also advertises `EXPIRENEVER` (sic), and with a login delay a
//! bare `30` CAPA line instead of `LOGIN-DELAY 30`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use pop3_client::blocking::Client;
use pop3_client::pop3_proto::Capability;
use pop3_client::testing::InteropServer;
use pop3_client::{
    AuthMethod, ClientConfig, Credentials, Error, ErrorKind, MsgNum, Security, TlsRoots,
};

/// Headers Mailutils adds to what it serves.
const ADDED: [&str; 4] = ["X-UIDL", "Status", "X-UID", "X-IMAPbase"];

struct Mailutils {
    server: InteropServer,
}

impl Mailutils {
    fn find() -> Option<Self> {
        let server = InteropServer::find(
            "POP3_MAILUTILS_DIR",
            "/tmp/pop3-mailutils",
            "POP3_REQUIRE_MAILUTILS",
            "Mailutils interop tests; run scripts/mailutils.sh start",
        )?;
        Some(Self { server })
    }

    fn get(&self, key: &str) -> &str {
        self.server.get(key)
    }

    fn config(&self, security: Security, port_key: &str) -> ClientConfig {
        let mut config = ClientConfig::new(self.get("host"));
        config.security = security;
        config.port = Some(self.get(port_key).parse().unwrap());
        config.roots = TlsRoots::CaFile(self.get("ca_file").into());
        config.auth = AuthMethod::Auto;
        config
    }

    fn credentials(&self, user_key: &str) -> Credentials {
        Credentials::new(self.get(user_key), self.get("password"))
    }

    /// The corpus as it must be served (CRLF), written by the script.
    fn expected(&self) -> Vec<Vec<u8>> {
        let mut bodies: Vec<Vec<u8>> = std::fs::read_dir(self.get("expected"))
            .unwrap()
            .map(|e| std::fs::read(e.unwrap().path()).unwrap())
            .collect();
        bodies.sort();
        bodies
    }
}

/// The message without the header lines Mailutils adds; panics if the
/// header has no end or no X-UIDL (which Mailutils always adds on RETR).
fn without_added_headers(message: &[u8]) -> Vec<u8> {
    let end = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 2)
        .unwrap_or_else(|| panic!("no header end: {:?}", String::from_utf8_lossy(message)));
    let (header, rest) = message.split_at(end);
    let mut out = Vec::with_capacity(message.len());
    let mut saw_uidl = false;
    for line in header.split_inclusive(|&b| b == b'\n') {
        let name = line.split(|&b| b == b':').next().unwrap_or_default();
        let added = ADDED
            .iter()
            .any(|a| a.as_bytes().eq_ignore_ascii_case(name));
        saw_uidl |= name.eq_ignore_ascii_case(b"X-UIDL");
        if !added {
            out.extend_from_slice(line);
        }
    }
    assert!(saw_uidl, "Mailutils adds X-UIDL on RETR");
    out.extend_from_slice(rest);
    out
}

fn fetch_all(client: &mut Client) -> Vec<Vec<u8>> {
    let msgs: Vec<MsgNum> = client.uidl().unwrap().into_iter().map(|u| u.msg).collect();
    let mut bodies: Vec<Vec<u8>> = client
        .retr_many_vec(&msgs)
        .unwrap()
        .into_iter()
        .map(|b| without_added_headers(&b.unwrap()))
        .collect();
    bodies.sort();
    bodies
}

/// Both mailboxes in one test, sessions one after another: two sessions
/// on one mailbox at once would meet [IN-USE].
#[tokio::test]
async fn mbox_and_maildir_corpus_byte_exact_blocking_and_async() {
    let Some(mu) = Mailutils::find() else {
        return;
    };
    let expected = mu.expected();
    assert_eq!(expected.len(), 6);
    for user in ["mbox_user", "maildir_user"] {
        // The second TLS session sees the mailbox as the first QUIT
        // rewrote it.
        for (security, port) in [
            (Security::Tls, "tls_port"),
            (Security::StartTls, "plain_port"),
            (Security::Tls, "tls_port"),
        ] {
            let config = mu.config(security, port);
            let mut client = Client::connect(&config, &mu.credentials(user))
                .unwrap_or_else(|e| panic!("{user} {security:?}: {e}"));
            assert!(client.is_tls());
            assert!(client.capabilities().pipelining());
            assert!(!client.utf8_enabled(), "Mailutils does not offer UTF8");
            assert_eq!(fetch_all(&mut client), expected, "{user} {security:?}");
            client.quit().unwrap();
        }
        let config = mu.config(Security::StartTls, "plain_port");
        let mut client = pop3_client::async_client::Client::connect(&config, &mu.credentials(user))
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
            .map(|b| without_added_headers(&b.unwrap()))
            .collect();
        bodies.sort();
        assert_eq!(bodies, expected, "{user} async");
        client.quit().await.unwrap();
    }
}

#[test]
fn mailbox_in_use_and_wrong_password() {
    let Some(mu) = Mailutils::find() else {
        return;
    };
    let config = mu.config(Security::Tls, "tls_port");
    let mut first = Client::connect(&config, &mu.credentials("lock_user")).unwrap();
    assert_eq!(first.stat().unwrap().count, 1);
    let err = Client::connect(&config, &mu.credentials("lock_user"))
        .err()
        .unwrap();
    assert!(matches!(err, Error::InUse { .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::InUse);
    first.quit().unwrap();
    // Unlocked by QUIT.
    let again = Client::connect(&config, &mu.credentials("lock_user")).unwrap();
    again.quit().unwrap();
    let err = Client::connect(&config, &Credentials::new(mu.get("lock_user"), "wrong"))
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");
    assert!(err.to_string().contains("[AUTH]"), "{err}");
}

#[test]
fn login_delay_is_enforced_and_its_bare_capa_line_tolerated() {
    let Some(mu) = Mailutils::find() else {
        return;
    };
    let config = mu.config(Security::StartTls, "delay_port");
    // The script's own login, or a run less than 30 s ago, may have started
    // the delay already; then the first attempt is refused too.
    match Client::connect(&config, &mu.credentials("delay_user")) {
        Ok(client) => client.quit().unwrap(),
        Err(Error::LoginDelay { .. }) => {}
        Err(e) => panic!("{e}"),
    }
    let client = Client::open(&config).unwrap();
    // `30` alone, not `LOGIN-DELAY 30`: kept as an unknown capability, so
    // the delay is not known in advance.
    assert!(
        client
            .capabilities()
            .iter()
            .any(|c| matches!(c, Capability::Other { name, .. } if name == "30")),
        "{:?}",
        client.capabilities()
    );
    assert_eq!(client.capabilities().login_delay(), None);
    drop(client);
    let err = Client::connect(&config, &mu.credentials("delay_user"))
        .err()
        .unwrap();
    assert!(matches!(err, Error::LoginDelay { .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::LoginDelay);
    assert!(err.is_transient());
}

/// Mailutils rewrites an mbox at QUIT (`Status:`, `X-UID:`), so every size
/// it lists changes after the first session: the delete policies still
/// work, because a message listed with another size is deleted once its
/// header (TOP n 0) shows it is the one stored.
#[test]
fn delete_policies_work_on_an_mbox_that_mailutils_rewrites() {
    use pop3_client::account::DeletePolicy;
    use pop3_client::store::MaildirSink;
    use pop3_client::sync::state::MemoryState;
    use pop3_client::sync::{sync_blocking, SyncOptions};
    let Some(mu) = Mailutils::find() else {
        return;
    };
    assert!(
        !mu.get("rewrite_user").is_empty(),
        "the Mailutils script has no rewrite user: restart it (scripts/mailutils.sh start)"
    );
    let config = mu.config(Security::Tls, "tls_port");
    let credentials = mu.credentials("rewrite_user");
    let dir = tempfile::tempdir().unwrap();
    let mut maildir = MaildirSink::create(dir.path()).unwrap();
    let mut state = MemoryState::new();
    // Delete one day after retrieval, on an injected clock.
    let now = 1_800_000_000;
    let options = |now| SyncOptions {
        policy: DeletePolicy::AfterDays(1),
        now: Some(now),
        ..SyncOptions::default()
    };
    let sizes = || {
        let mut client = Client::connect(&config, &credentials).unwrap();
        let sizes: Vec<u64> = client.list().unwrap().iter().map(|e| e.octets).collect();
        client.quit().unwrap();
        sizes
    };
    let before = sizes();
    assert_eq!(
        before.len(),
        5,
        "the script's five messages (restart scripts/mailutils.sh to run this again)"
    );
    let first = sync_blocking(
        &config,
        &credentials,
        &mut state,
        &mut maildir,
        options(now),
        None,
    )
    .unwrap();
    assert_eq!((first.new, first.deleted), (5, 0), "{first:?}");
    let after = sizes();
    assert_eq!(after.len(), 5);
    assert_ne!(
        before, after,
        "Mailutils rewrote the mbox: the sizes changed"
    );
    let later = now + 2 * 24 * 60 * 60;
    let second = sync_blocking(
        &config,
        &credentials,
        &mut state,
        &mut maildir,
        options(later),
        None,
    )
    .unwrap();
    assert_eq!((second.new, second.deleted), (0, 5), "{second:?}");
    assert!(sizes().is_empty(), "the mailbox is empty");
}
