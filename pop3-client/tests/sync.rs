//! Incremental sync against the in-process server: only new mail, each
//! delete policy, an injected clock, failures at every step of a group, and
//! a Gmail-like server in normal and recent modes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use pop3_client::account::DeletePolicy;
use pop3_client::pop3_proto::server::{ServerMessage, ServerOptions};
use pop3_client::store::{Delivery, DeliverySink, MaildirSink};
use pop3_client::sync::state::{MemoryState, StateFile, StateStore};
use pop3_client::sync::{mark_deleted_locally, sync_blocking, SyncOptions, SyncReport};
use pop3_client::testing::{GmailMode, TestServer, TestServerConfig};
use pop3_client::{ErrorKind, Uid};

const DAY: u64 = 24 * 60 * 60;

fn corpus(n: usize) -> Vec<ServerMessage> {
    (0..n)
        .map(|i| ServerMessage {
            uid: format!("uid-{i:04}"),
            content: format!("Subject: {i}\r\n\r\n.dot\r\nbody {i} \u{e9}\r\n").into_bytes(),
        })
        .collect()
}

fn server(messages: Vec<ServerMessage>) -> TestServer {
    TestServer::start(TestServerConfig {
        options: ServerOptions {
            stls: true,
            ..ServerOptions::default()
        },
        messages,
        ..TestServerConfig::default()
    })
    .unwrap()
}

fn sync(
    server: &TestServer,
    user: &str,
    store: &mut dyn StateStore,
    sink: &mut dyn DeliverySink,
    options: SyncOptions,
) -> Result<SyncReport, pop3_client::sync::SyncFailure> {
    let credentials = pop3_client::Credentials::new(user, "password");
    sync_blocking(
        &server.client_config(),
        &credentials,
        store,
        sink,
        options,
        None,
    )
}

/// A fresh Maildir in a temporary folder and an empty state.
fn local() -> (tempfile::TempDir, MaildirSink, MemoryState) {
    let dir = tempfile::tempdir().unwrap();
    let maildir = MaildirSink::create(dir.path()).unwrap();
    (dir, maildir, MemoryState::new())
}

/// Every file in the Maildir's new/, by content, with how often it occurs.
fn delivered(dir: &Path) -> BTreeMap<Vec<u8>, usize> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir.join("new")).unwrap() {
        *out.entry(std::fs::read(entry.unwrap().path()).unwrap())
            .or_insert(0) += 1;
    }
    out
}

fn exactly_once(dir: &Path, messages: &[ServerMessage]) {
    let got = delivered(dir);
    assert_eq!(got.len(), messages.len(), "every message delivered");
    for m in messages {
        assert_eq!(got.get(&m.content), Some(&1), "{} exactly once", m.uid);
    }
    assert_eq!(std::fs::read_dir(dir.join("tmp")).unwrap().count(), 0);
}

#[test]
fn a_second_sync_fetches_nothing_and_new_mail_arrives_alone() {
    let messages = corpus(30);
    let server = server(messages.clone());
    let dir = tempfile::tempdir().unwrap();
    let mut maildir = MaildirSink::create(dir.path()).unwrap();
    let state_path = dir.path().join("state");
    let mut state = StateFile::open(&state_path, "k").unwrap();
    let options = SyncOptions {
        group_size: 7,
        ..SyncOptions::default()
    };
    let first = sync(&server, "user", &mut state, &mut maildir, options.clone()).unwrap();
    assert_eq!(first.new, 30);
    assert_eq!(server.messages().len(), 30, "kept on the server");
    drop(state);
    let mut state = StateFile::open(&state_path, "k").unwrap();
    let second = sync(&server, "user", &mut state, &mut maildir, options).unwrap();
    assert_eq!((second.new, second.sessions), (0, 1));
    exactly_once(dir.path(), &messages);
}

#[test]
fn after_retrieval_empties_the_mailbox() {
    let messages = corpus(12);
    let server = server(messages.clone());
    let (dir, mut maildir, mut state) = local();
    let options = SyncOptions {
        policy: DeletePolicy::AfterRetrieval,
        ..SyncOptions::default()
    };
    let report = sync(&server, "user", &mut state, &mut maildir, options).unwrap();
    assert_eq!((report.new, report.deleted), (12, 12));
    assert!(server.messages().is_empty());
    exactly_once(dir.path(), &messages);
}

#[test]
fn after_days_deletes_on_the_injected_clock() {
    let messages = corpus(4);
    let server = server(messages.clone());
    let (dir, mut maildir, mut state) = local();
    let at = |now, policy| SyncOptions {
        policy,
        now: Some(now),
        ..SyncOptions::default()
    };
    let policy = DeletePolicy::AfterDays(7);
    sync(&server, "user", &mut state, &mut maildir, at(0, policy)).unwrap();
    let r = sync(
        &server,
        "user",
        &mut state,
        &mut maildir,
        at(6 * DAY, policy),
    )
    .unwrap();
    assert_eq!((r.new, r.deleted), (0, 0));
    assert_eq!(server.messages().len(), 4);
    let r = sync(
        &server,
        "user",
        &mut state,
        &mut maildir,
        at(7 * DAY, policy),
    )
    .unwrap();
    assert_eq!((r.new, r.deleted), (0, 4));
    assert!(server.messages().is_empty());
    exactly_once(dir.path(), &messages);
}

#[test]
fn when_deleted_locally_deletes_what_the_application_marked() {
    let messages = corpus(5);
    let server = server(messages.clone());
    let (_dir, mut maildir, mut state) = local();
    let options = SyncOptions {
        policy: DeletePolicy::WhenDeletedLocally,
        ..SyncOptions::default()
    };
    let r = sync(&server, "user", &mut state, &mut maildir, options.clone()).unwrap();
    assert_eq!((r.new, r.deleted), (5, 0));
    mark_deleted_locally(&mut state, &Uid::new(b"uid-0002").unwrap()).unwrap();
    let r = sync(&server, "user", &mut state, &mut maildir, options).unwrap();
    assert_eq!((r.new, r.deleted), (0, 1));
    let left: Vec<String> = server.messages().into_iter().map(|m| m.uid).collect();
    assert_eq!(left, ["uid-0000", "uid-0001", "uid-0003", "uid-0004"]);
}

#[test]
fn caps_leave_the_rest_for_the_next_sync() {
    let messages = corpus(10);
    let server = server(messages.clone());
    let (dir, mut maildir, mut state) = local();
    let options = SyncOptions {
        max_messages: Some(4),
        ..SyncOptions::default()
    };
    let r = sync(&server, "user", &mut state, &mut maildir, options.clone()).unwrap();
    assert_eq!((r.new, r.left), (4, 6));
    let r = sync(&server, "user", &mut state, &mut maildir, options.clone()).unwrap();
    assert_eq!((r.new, r.left), (4, 2));
    let r = sync(&server, "user", &mut state, &mut maildir, options).unwrap();
    assert_eq!((r.new, r.left), (2, 0));
    exactly_once(dir.path(), &messages);
}

/// A Maildir that fails once, at a chosen step of a chosen message.
struct FailingSink {
    inner: MaildirSink,
    fail_at: usize,
    steps: usize,
    /// What each delivery's `begin` was told: UID, listed size, headers only.
    begun: Vec<(String, u64, bool)>,
}

impl FailingSink {
    fn step(&mut self) -> io::Result<()> {
        self.steps += 1;
        if self.steps == self.fail_at {
            return Err(io::Error::other("disk full (injected)"));
        }
        Ok(())
    }
}

impl DeliverySink for FailingSink {
    fn reserve(&mut self, uid: &Uid) -> io::Result<String> {
        self.step()?;
        self.inner.reserve(uid)
    }
    fn begin(&mut self, delivery: &Delivery<'_>) -> io::Result<()> {
        self.step()?;
        self.begun.push((
            delivery.uid.to_string(),
            delivery.listed_octets,
            delivery.headers_only,
        ));
        self.inner.begin(delivery)
    }
    fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.step()?;
        self.inner.write(chunk)
    }
    fn end(&mut self) -> io::Result<()> {
        self.step()?;
        self.inner.end()
    }
    fn commit(&mut self) -> io::Result<()> {
        self.step()?;
        self.inner.commit()
    }
    fn rollback(&mut self) {
        self.inner.rollback();
    }
    fn reconcile(&mut self, name: &str) -> io::Result<bool> {
        self.inner.reconcile(name)
    }
}

#[test]
fn a_failing_sink_at_any_step_loses_and_duplicates_nothing() {
    let messages = corpus(9);
    // Steps of one run: 9 reserves, 9 x (begin, write, end) in groups of 4,
    // 3 commits: about 48; fail at each in turn.
    for fail_at in 1..=50 {
        let server = server(messages.clone());
        let dir = tempfile::tempdir().unwrap();
        let mut state = MemoryState::new();
        let options = SyncOptions {
            group_size: 4,
            policy: DeletePolicy::AfterRetrieval,
            ..SyncOptions::default()
        };
        let mut failing = FailingSink {
            inner: MaildirSink::create(dir.path()).unwrap(),
            fail_at,
            steps: 0,
            begun: Vec::new(),
        };
        let first = sync(&server, "user", &mut state, &mut failing, options.clone());
        if let Err(e) = &first {
            // The store's failure, not the network's: it needs someone.
            assert_eq!(e.kind(), ErrorKind::Storage, "{e}");
            assert!(!e.is_transient(), "{e}");
            assert!(e.to_string().contains("disk full"), "{e}");
            // The failure says what was done before it, exactly.
            assert_eq!(
                e.report.new,
                delivered(dir.path()).len(),
                "fail_at {fail_at}: {:?}",
                e.report
            );
        }
        drop(failing);
        let mut maildir = MaildirSink::create(dir.path()).unwrap();
        sync(&server, "user", &mut state, &mut maildir, options).unwrap();
        exactly_once(dir.path(), &messages);
        assert!(server.messages().is_empty(), "fail_at {fail_at}");
    }
}

fn gmail(messages: Vec<ServerMessage>, user: &str) -> TestServer {
    TestServer::start(TestServerConfig {
        options: ServerOptions {
            user: user.into(),
            pipelining_only_after_login: true,
            login_delay: Some(300),
            ..ServerOptions::default()
        },
        messages,
        implicit_tls: true,
        gmail: Some(GmailMode::default()),
        ..TestServerConfig::default()
    })
    .unwrap()
}

#[test]
fn gmail_normal_mode_takes_several_sessions_and_stores_each_message_once() {
    let messages = corpus(600);
    let server = gmail(messages.clone(), "me@gmail.com");
    let (dir, mut maildir, mut state) = local();
    let r = sync(
        &server,
        "me@gmail.com",
        &mut state,
        &mut maildir,
        SyncOptions::default(),
    )
    .unwrap();
    assert_eq!(r.new, 600);
    assert_eq!(
        r.sessions, 4,
        "250 + 250 + 100, then one that lists nothing"
    );
    assert!(r.next_sync_not_before.is_some(), "LOGIN-DELAY reported");
    assert!(server.messages().is_empty(), "popped by RETR and QUIT");
    exactly_once(dir.path(), &messages);
}

#[test]
fn gmail_recent_mode_fetches_once_and_refuses_deleting() {
    let messages = corpus(40);
    let user = "recent:me@gmail.com";
    let server = gmail(messages.clone(), user);
    let (dir, mut maildir, mut state) = local();
    let r = sync(
        &server,
        user,
        &mut state,
        &mut maildir,
        SyncOptions::default(),
    )
    .unwrap();
    assert_eq!((r.new, r.sessions), (40, 1));
    let r = sync(
        &server,
        user,
        &mut state,
        &mut maildir,
        SyncOptions::default(),
    )
    .unwrap();
    assert_eq!(r.new, 0);
    assert_eq!(server.messages().len(), 40);
    let deleting = SyncOptions {
        policy: DeletePolicy::AfterRetrieval,
        ..SyncOptions::default()
    };
    let e = sync(&server, user, &mut state, &mut maildir, deleting).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    exactly_once(dir.path(), &messages);
}

#[test]
fn a_listing_that_never_ends_is_refused_within_the_cap() {
    let server = TestServer::start(TestServerConfig {
        messages: corpus(3),
        implicit_tls: true,
        fault: pop3_client::testing::Fault::EndlessListing,
        ..TestServerConfig::default()
    })
    .unwrap();
    let mut config = server.client_config();
    config.max_listing_entries = 50_000;
    let credentials = pop3_client::Credentials::new("user", "password");
    let mut client = pop3_client::blocking::Client::connect(&config, &credentials).unwrap();
    let e = client.uidl().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
    assert!(e.to_string().contains("more than 50000"), "{e}");
    // The rest of that answer is still coming: the connection is done.
    assert_eq!(client.stat().unwrap_err().kind(), ErrorKind::Unusable);
}

#[tokio::test]
async fn the_async_driver_follows_the_same_plan() {
    use pop3_client::async_client::Client;
    use pop3_client::sync::sync_async;

    let messages = corpus(520);
    let server = gmail(messages.clone(), "me@gmail.com");
    let config = server.client_config();
    let credentials = pop3_client::Credentials::new("me@gmail.com", "password");
    let (dir, mut maildir, mut state) = local();
    let report = sync_async(
        || Client::connect(&config, &credentials),
        &config.host,
        &credentials.user,
        &mut state,
        &mut maildir,
        SyncOptions::default(),
        None,
    )
    .await
    .unwrap();
    assert_eq!((report.new, report.sessions), (520, 4));
    assert!(server.messages().is_empty());
    exactly_once(dir.path(), &messages);
}

#[test]
fn summaries_come_from_headers_alone() {
    let messages = vec![
        ServerMessage {
            uid: "s1".into(),
            content: b"From: Ann <Ann@Example.ORG>\r\nTo: bob@example.net\r\nCc: c@example.com\r\nSubject: =?utf-8?b?w6l0w6k=?=\r\nMessage-ID: <m1@example.org>\r\nDate: Mon, 30 Nov 2026 10:00:00 +0000\r\n\r\nbody that TOP 0 does not send\r\n".to_vec(),
        },
        ServerMessage {
            uid: "s2".into(),
            content: b"Subject: no addresses\r\n\r\nx\r\n".to_vec(),
        },
    ];
    let server = server(messages);
    let credentials = pop3_client::Credentials::new("user", "password");
    let mut client =
        pop3_client::blocking::Client::connect(&server.client_config(), &credentials).unwrap();
    let m = |n| pop3_client::MsgNum::new(n).unwrap();
    let got = client.summaries(&[m(1), m(2), m(3)]).unwrap();
    let first = got[0].as_ref().unwrap();
    assert_eq!(first.from[0].email, "ann@example.org");
    assert_eq!(first.from[0].name.as_deref(), Some("Ann"));
    assert_eq!(first.to[0].email, "bob@example.net");
    assert_eq!(first.cc[0].email, "c@example.com");
    assert_eq!(first.subject.as_deref(), Some("\u{e9}t\u{e9}"));
    assert_eq!(first.message_id.as_deref(), Some("m1@example.org"));
    assert_eq!(first.date, Some(1_796_032_800));
    assert!(got[1].as_ref().unwrap().from.is_empty());
    assert!(got[2].is_err(), "no message 3: refused in its slot");
    client.quit().unwrap();
}

#[test]
fn a_server_without_uidl_is_refused_unless_fetch_all_then_delete_is_chosen() {
    let messages = corpus(6);
    let server = TestServer::start(TestServerConfig {
        options: ServerOptions {
            stls: true,
            uidl: false,
            ..ServerOptions::default()
        },
        messages: messages.clone(),
        ..TestServerConfig::default()
    })
    .unwrap();
    let (dir, mut maildir, mut state) = local();
    let e = sync(
        &server,
        "user",
        &mut state,
        &mut maildir,
        SyncOptions::default(),
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(e.to_string().contains("does not support UIDL"), "{e}");
    assert_eq!(
        std::fs::read_dir(dir.path().join("new")).unwrap().count(),
        0
    );
    // Keeping mail is impossible without UIDs: refused too.
    let keep = SyncOptions {
        allow_without_uidl: true,
        ..SyncOptions::default()
    };
    let e = sync(&server, "user", &mut state, &mut maildir, keep).unwrap_err();
    assert!(e.to_string().contains("after-retrieval"), "{e}");
    let fetch_all = SyncOptions {
        allow_without_uidl: true,
        policy: DeletePolicy::AfterRetrieval,
        ..SyncOptions::default()
    };
    let r = sync(&server, "user", &mut state, &mut maildir, fetch_all).unwrap();
    assert_eq!((r.new, r.deleted), (6, 6));
    assert!(server.messages().is_empty(), "fetched, then deleted");
    assert!(state.state().records.is_empty(), "nothing to remember");
    exactly_once(dir.path(), &messages);
}

#[test]
fn big_messages_come_headers_only_until_asked_for_whole() {
    let mut messages = corpus(3);
    messages[1].content = format!(
        "Subject: big\r\nFrom: a@example.org\r\n\r\n{}\r\n",
        "y".repeat(50_000)
    )
    .into_bytes();
    let server = server(messages.clone());
    let (dir, mut maildir, mut state) = local();
    let options = SyncOptions {
        policy: DeletePolicy::AfterRetrieval,
        headers_only_above: Some(10_000),
        ..SyncOptions::default()
    };
    let r = sync(&server, "user", &mut state, &mut maildir, options.clone()).unwrap();
    assert_eq!((r.new, r.headers_only, r.deleted), (2, 1, 2));
    let left: Vec<String> = server.messages().into_iter().map(|m| m.uid).collect();
    assert_eq!(left, ["uid-0001"], "a message stored headers only stays");
    let got = delivered(dir.path());
    assert!(got.contains_key(b"Subject: big\r\nFrom: a@example.org\r\n\r\n".as_slice()));
    // Nothing new until the application asks for the whole message.
    let r = sync(&server, "user", &mut state, &mut maildir, options.clone()).unwrap();
    assert_eq!((r.new, r.headers_only, r.deleted), (0, 0, 0));
    pop3_client::sync::request_full_fetch(&mut state, &Uid::new(b"uid-0001").unwrap()).unwrap();
    let r = sync(&server, "user", &mut state, &mut maildir, options).unwrap();
    assert_eq!((r.new, r.deleted), (1, 1));
    assert!(server.messages().is_empty());
    assert_eq!(delivered(dir.path()).get(&messages[1].content), Some(&1));
    let got = delivered(dir.path());
    assert_eq!(got.len(), 3, "the headers-only copy was replaced");
    exactly_once(dir.path(), &messages);
}

/// A server that refuses one message every time and cuts the connection in
/// the middle of another every time, with 40 good messages.
fn server_with_bad_messages() -> (TestServer, Vec<ServerMessage>) {
    use pop3_client::testing::BadMessage;
    let messages = corpus(42);
    let server = TestServer::start(TestServerConfig {
        options: ServerOptions {
            stls: true,
            ..ServerOptions::default()
        },
        messages: messages.clone(),
        bad_messages: vec![
            ("uid-0005".into(), BadMessage::Refused),
            ("uid-0017".into(), BadMessage::CutMidway),
        ],
        ..TestServerConfig::default()
    })
    .unwrap();
    let good = messages
        .into_iter()
        .filter(|m| m.uid != "uid-0005" && m.uid != "uid-0017")
        .collect();
    (server, good)
}

fn uids_of(failed: &[pop3_client::sync::FailedMessage]) -> Vec<String> {
    let mut uids: Vec<String> = failed.iter().map(|f| f.uid.to_string()).collect();
    uids.sort();
    uids
}

#[test]
fn a_message_that_always_fails_is_quarantined_and_the_rest_flows() {
    let (server, good) = server_with_bad_messages();
    let (dir, mut maildir, mut state) = local();
    let options = || SyncOptions {
        policy: DeletePolicy::AfterRetrieval,
        group_size: 8,
        ..SyncOptions::default()
    };
    // First run: every other message is stored and deleted; the two bad
    // ones fail once each, and the sync goes on past them.
    let first = sync(&server, "user", &mut state, &mut maildir, options()).unwrap();
    assert_eq!(first.new, 40, "{first:?}");
    assert_eq!(first.deleted, 40, "{first:?}");
    assert_eq!(uids_of(&first.failed), ["uid-0005", "uid-0017"]);
    assert!(first.failed.iter().all(|f| f.attempts == 1));
    let cut = first
        .failed
        .iter()
        .find(|f| f.uid.to_string() == "uid-0017")
        .unwrap();
    assert!(cut.reason.contains("connection was lost"), "{}", cut.reason);
    let refused = first
        .failed
        .iter()
        .find(|f| f.uid.to_string() == "uid-0005")
        .unwrap();
    assert!(refused.reason.contains("refused"), "{}", refused.reason);
    assert!(first.quarantined.is_empty());
    exactly_once(dir.path(), &good);
    // Second run: they fail again; third: quarantined.
    let second = sync(&server, "user", &mut state, &mut maildir, options()).unwrap();
    assert_eq!((second.new, second.failed.len()), (0, 2), "{second:?}");
    let third = sync(&server, "user", &mut state, &mut maildir, options()).unwrap();
    assert!(third.failed.is_empty(), "{third:?}");
    assert_eq!(uids_of(&third.quarantined), ["uid-0005", "uid-0017"]);
    assert!(third.quarantined.iter().all(|q| q.attempts == 3));
    // Fourth run: not asked for at all, still reported, never deleted.
    let fourth = sync(&server, "user", &mut state, &mut maildir, options()).unwrap();
    assert_eq!((fourth.new, fourth.skipped, fourth.deleted), (0, 0, 0));
    assert_eq!(uids_of(&fourth.quarantined), ["uid-0005", "uid-0017"]);
    let left: Vec<String> = server.messages().into_iter().map(|m| m.uid).collect();
    assert_eq!(
        left,
        ["uid-0005", "uid-0017"],
        "only the two stay on the server"
    );
    exactly_once(dir.path(), &good);
    // Asked for again, one is tried again (and fails once more).
    pop3_client::sync::reprocess(&mut state, &Uid::new(b"uid-0005").unwrap()).unwrap();
    let fifth = sync(&server, "user", &mut state, &mut maildir, options()).unwrap();
    assert_eq!(uids_of(&fifth.failed), ["uid-0005"]);
    assert_eq!(uids_of(&fifth.quarantined), ["uid-0017"]);
}

#[test]
fn a_message_listed_above_the_cap_is_quarantined_before_retr() {
    let mut messages = corpus(3);
    messages[1].content.extend_from_slice(&[b'x'; 500]);
    messages[1].content.extend_from_slice(b"\r\n");
    let server = server(messages.clone());
    let (dir, mut maildir, mut state) = local();
    let big = messages[1].content.len() as u64;
    let options = SyncOptions {
        max_message: Some(big - 1),
        ..SyncOptions::default()
    };
    let report = sync(&server, "user", &mut state, &mut maildir, options.clone()).unwrap();
    assert_eq!(report.new, 2, "{report:?}");
    assert_eq!(uids_of(&report.quarantined), ["uid-0001"]);
    assert!(report.quarantined[0].reason.contains("too big"));
    assert_eq!(delivered(dir.path()).len(), 2);
    // With headers-only above the same size, it comes headers only instead.
    let (_dir, mut maildir, mut state) = local();
    let options = SyncOptions {
        headers_only_above: Some(big - 1),
        ..options
    };
    let report = sync(&server, "user", &mut state, &mut maildir, options).unwrap();
    assert_eq!((report.new, report.headers_only), (2, 1), "{report:?}");
    assert!(report.quarantined.is_empty());
}

#[tokio::test]
async fn the_async_driver_quarantines_the_same_way() {
    use pop3_client::async_client::Client;
    use pop3_client::sync::sync_async;

    let (server, good) = server_with_bad_messages();
    let config = server.client_config();
    let credentials = pop3_client::Credentials::new("user", "password");
    let (dir, mut maildir, mut state) = local();
    for run in 1..=3 {
        let report = sync_async(
            || Client::connect(&config, &credentials),
            &config.host,
            &credentials.user,
            &mut state,
            &mut maildir,
            SyncOptions {
                group_size: 8,
                ..SyncOptions::default()
            },
            None,
        )
        .await
        .unwrap();
        let (failed, quarantined) = (uids_of(&report.failed), uids_of(&report.quarantined));
        if run < 3 {
            assert_eq!(
                (failed.len(), quarantined.len()),
                (2, 0),
                "run {run}: {report:?}"
            );
        } else {
            assert_eq!(
                (failed.len(), quarantined.len()),
                (0, 2),
                "run {run}: {report:?}"
            );
        }
    }
    exactly_once(dir.path(), &good);
}

/// Mail and its state are private to their owner: files 0600, folders 0700.
#[cfg(unix)]
#[test]
fn the_maildir_and_the_state_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let messages = corpus(2);
    let server = server(messages);
    let dir = tempfile::tempdir().unwrap();
    let maildir_path = dir.path().join("Maildir");
    let mut maildir = MaildirSink::create(&maildir_path).unwrap();
    let state_path = dir.path().join("state");
    let mut state = StateFile::open(&state_path, "k").unwrap();
    sync(
        &server,
        "user",
        &mut state,
        &mut maildir,
        SyncOptions::default(),
    )
    .unwrap();
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    for sub in ["", "new", "cur", "tmp"] {
        assert_eq!(mode(&maildir_path.join(sub)), 0o700, "{sub}/");
    }
    let files: Vec<_> = std::fs::read_dir(maildir_path.join("new"))
        .unwrap()
        .collect();
    assert_eq!(files.len(), 2);
    for file in files {
        assert_eq!(mode(&file.unwrap().path()), 0o600);
    }
    assert_eq!(mode(&state_path), 0o600, "the state");
}

fn first_sync(choice: pop3_client::sync::FirstSync) -> SyncOptions {
    SyncOptions {
        first_sync: choice,
        policy: DeletePolicy::AfterRetrieval,
        ..SyncOptions::default()
    }
}

#[test]
fn from_now_on_stores_only_what_arrives_later_and_deletes_nothing_old() {
    use pop3_client::sync::FirstSync;
    let server = server(corpus(100));
    let (dir, mut maildir, mut state) = local();
    let first = sync(
        &server,
        "user",
        &mut state,
        &mut maildir,
        first_sync(FirstSync::FromNowOn),
    )
    .unwrap();
    assert_eq!(
        (first.new, first.left_out, first.deleted),
        (0, 100, 0),
        "{first:?}"
    );
    assert_eq!(delivered(dir.path()).len(), 0);
    let arriving: Vec<ServerMessage> = (100..103)
        .map(|i| ServerMessage {
            uid: format!("new-{i}"),
            content: format!("Subject: new {i}\r\n\r\nhello\r\n").into_bytes(),
        })
        .collect();
    for m in &arriving {
        server.deliver(m.clone());
    }
    // The choice is the first sync's alone: what arrives is fetched (and,
    // under after-retrieval, deleted); the old mail stays untouched.
    let next = sync(
        &server,
        "user",
        &mut state,
        &mut maildir,
        first_sync(FirstSync::FromNowOn),
    )
    .unwrap();
    assert_eq!(
        (next.new, next.left_out, next.deleted),
        (3, 0, 3),
        "{next:?}"
    );
    exactly_once(dir.path(), &arriving);
    assert_eq!(
        server.messages().len(),
        100,
        "the old mail is never deleted"
    );
}

#[test]
fn last_n_and_since_days_choose_the_newest_on_a_first_sync() {
    use pop3_client::sync::FirstSync;
    let messages = corpus(10);
    let server = server(messages.clone());
    let (dir, mut maildir, mut state) = local();
    let report = sync(
        &server,
        "user",
        &mut state,
        &mut maildir,
        first_sync(FirstSync::Last(3)),
    )
    .unwrap();
    assert_eq!((report.new, report.left_out), (3, 7), "{report:?}");
    exactly_once(dir.path(), &messages[7..]);

    // By date: two messages are within the last 10 days of the injected
    // clock (2026-11-30 10:00 UTC); one has no date and is kept.
    let now = 1_796_032_800u64;
    let dated = |uid: &str, date: Option<&str>| ServerMessage {
        uid: uid.into(),
        content: match date {
            Some(date) => format!("Date: {date}\r\nSubject: {uid}\r\n\r\nbody\r\n").into_bytes(),
            None => format!("Subject: {uid}\r\n\r\nno date\r\n").into_bytes(),
        },
    };
    let messages = vec![
        dated("old-1", Some("Sun, 30 Nov 2025 10:00:00 +0000")),
        dated("recent-1", Some("Sat, 28 Nov 2026 10:00:00 +0000")),
        dated("undated", None),
        dated("old-2", Some("Fri, 30 Oct 2026 10:00:00 +0000")),
        dated("recent-2", Some("Sat, 21 Nov 2026 10:00:00 +0000")),
    ];
    let server = self::server(messages.clone());
    let (dir, mut maildir, mut state) = local();
    let options = SyncOptions {
        now: Some(now),
        ..first_sync(FirstSync::SinceDays(10))
    };
    let report = sync(&server, "user", &mut state, &mut maildir, options).unwrap();
    assert_eq!((report.new, report.left_out), (3, 2), "{report:?}");
    let kept: Vec<ServerMessage> = messages
        .into_iter()
        .filter(|m| !m.uid.starts_with("old"))
        .collect();
    exactly_once(dir.path(), &kept);
    let left: Vec<String> = server.messages().into_iter().map(|m| m.uid).collect();
    assert_eq!(left, ["old-1", "old-2"], "left out, and not deleted");
}

/// Gmail's slice after a run that stopped before its QUIT: the messages it
/// stored are known but not popped, so Gmail lists them again; they are
/// fetched into nothing (never deleted), QUIT pops them, and the next slices
/// come: one run then gets every remaining message, each stored once.
#[test]
fn gmail_slices_move_on_after_a_run_stopped_before_quit() {
    let messages = corpus(600);
    let server = gmail(messages.clone(), "me@gmail.com");
    let dir = tempfile::tempdir().unwrap();
    let mut state = MemoryState::new();
    let options = SyncOptions {
        gmail_slices: Some(true),
        group_size: 100,
        ..SyncOptions::default()
    };
    // The first run stores one group of 100, then its store fails at the
    // next commit: the run ends without QUIT, so Gmail pops nothing.
    struct FailSecondCommit(MaildirSink, usize);
    impl DeliverySink for FailSecondCommit {
        fn reserve(&mut self, uid: &Uid) -> io::Result<String> {
            self.0.reserve(uid)
        }
        fn begin(&mut self, delivery: &Delivery<'_>) -> io::Result<()> {
            DeliverySink::begin(&mut self.0, delivery)
        }
        fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
            DeliverySink::write(&mut self.0, chunk)
        }
        fn end(&mut self) -> io::Result<()> {
            DeliverySink::end(&mut self.0)
        }
        fn commit(&mut self) -> io::Result<()> {
            self.1 += 1;
            if self.1 == 2 {
                return Err(io::Error::other("stopped (injected)"));
            }
            self.0.commit()
        }
        fn rollback(&mut self) {
            self.0.rollback();
        }
        fn reconcile(&mut self, name: &str) -> io::Result<bool> {
            self.0.reconcile(name)
        }
    }
    let mut once = FailSecondCommit(MaildirSink::create(dir.path()).unwrap(), 0);
    let first = sync(
        &server,
        "me@gmail.com",
        &mut state,
        &mut once,
        options.clone(),
    )
    .unwrap_err();
    assert_eq!(first.report.new, 100, "{:?}", first.report);
    assert_eq!(server.messages().len(), 600, "nothing popped without QUIT");
    drop(once);
    // The next run pops the 100 it knows (RETR into nothing), stores the
    // other 500 over as many sessions as Gmail's slices need.
    let mut maildir = MaildirSink::create(dir.path()).unwrap();
    let next = sync(&server, "me@gmail.com", &mut state, &mut maildir, options).unwrap();
    assert_eq!((next.new, next.popped_again), (500, 100), "{next:?}");
    assert!(server.messages().is_empty(), "every message popped");
    exactly_once(dir.path(), &messages);
}

/// A server that rewrites mail after retrieval lists another size: the
/// message is deleted once its header shows it is the same one; a UID the
/// server gave to another message is kept, and the report says why.
#[test]
fn rewritten_messages_are_deleted_once_seen_to_be_the_same() {
    let message = |uid: &str, id: &str| {
        ServerMessage {
        uid: uid.into(),
        content: format!("Message-ID: <{id}@x>\r\nDate: Mon, 30 Nov 2026 10:00:00 +0000\r\nSubject: {uid}\r\n\r\nbody\r\n").into_bytes(),
    }
    };
    let messages = vec![message("a", "a"), message("b", "b"), message("c", "c")];
    let server = server(messages.clone());
    let (_dir, mut maildir, mut state) = local();
    let options = |now| SyncOptions {
        policy: DeletePolicy::AfterDays(1),
        now: Some(now),
        ..SyncOptions::default()
    };
    let first = sync(&server, "user", &mut state, &mut maildir, options(0)).unwrap();
    assert_eq!((first.new, first.deleted), (3, 0));
    // As Mailutils does at QUIT: a Status: header more, the same message.
    let mut rewritten = b"Status: RO\r\n".to_vec();
    rewritten.extend_from_slice(&messages[0].content);
    server.rewrite("a", rewritten);
    // A UID reused for another message.
    server.rewrite("b", message("b", "someone-else").content);
    let later = sync(&server, "user", &mut state, &mut maildir, options(2 * DAY)).unwrap();
    assert_eq!(later.deleted, 2, "a (rewritten) and c: {later:?}");
    let left: Vec<String> = server.messages().into_iter().map(|m| m.uid).collect();
    assert_eq!(left, ["b"]);
    use pop3_client::sync::KeptReason;
    assert_eq!(
        later.kept.get(&KeptReason::NotTheSameMessage),
        Some(&1),
        "{later:?}"
    );
    // Kept the next time too, and said so.
    let again = sync(&server, "user", &mut state, &mut maildir, options(3 * DAY)).unwrap();
    assert_eq!(again.deleted, 0);
    assert_eq!(
        again.kept.get(&KeptReason::NotTheSameMessage),
        Some(&1),
        "{again:?}"
    );
}

/// An empty mailbox is polled without UIDL: a server that lacks UIDL is no
/// error while it has nothing to fetch (and every server saves a round
/// trip on the most common poll).
#[test]
fn an_empty_mailbox_is_polled_without_uidl() {
    let server = TestServer::start(TestServerConfig {
        options: ServerOptions {
            stls: true,
            uidl: false,
            ..ServerOptions::default()
        },
        messages: Vec::new(),
        ..TestServerConfig::default()
    })
    .unwrap();
    let (_dir, mut maildir, mut state) = local();
    let report = sync(
        &server,
        "user",
        &mut state,
        &mut maildir,
        SyncOptions::default(),
    )
    .unwrap();
    assert_eq!((report.new, report.sessions), (0, 1));
    // With mail, the missing UIDL is refused as before.
    server.deliver(corpus(1).remove(0));
    let e = sync(
        &server,
        "user",
        &mut state,
        &mut maildir,
        SyncOptions::default(),
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
}

/// At Gmail a first sync cannot leave mail out (the rest would come as new
/// in later slices): refused, with Gmail's own setting named.
#[test]
fn gmail_refuses_a_first_sync_that_leaves_mail_out() {
    let server = gmail(corpus(3), "me@gmail.com");
    let (_dir, mut maildir, mut state) = local();
    let options = SyncOptions {
        first_sync: pop3_client::sync::FirstSync::FromNowOn,
        ..SyncOptions::default()
    };
    let e = sync(&server, "me@gmail.com", &mut state, &mut maildir, options).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(e.to_string().contains("arrives from now on"), "{e}");
    assert_eq!(server.messages().len(), 3, "nothing fetched or popped");
}

/// An empty poll of a server known from the poll before: at most 5 round
/// trips over TLS from connect to close, counted from outside by a
/// delaying proxy (connect, TLS, greeting, CAPA with the login, CAPA with
/// LIST and UIDL; QUIT not waited for, since the session changed
/// nothing). The first poll, knowing nothing, costs more. With AUTH PLAIN
/// and with USER and PASS (one flight, as mpop sends them). New mail from
/// a server that lists the whole mailbox, deleted after retrieval: one
/// session, not a second to look for more.
#[test]
fn an_empty_poll_of_a_known_server_costs_five_round_trips() {
    use pop3_client::testing::proxy::DelayingProxy;
    use std::time::Duration;
    for sasl in [vec!["PLAIN".to_owned()], Vec::new()] {
        let server = TestServer::start(TestServerConfig {
            implicit_tls: true,
            options: ServerOptions {
                sasl: sasl.clone(),
                ..ServerOptions::default()
            },
            ..TestServerConfig::default()
        })
        .unwrap();
        let proxy = DelayingProxy::start(server.addr(), Duration::from_millis(50)).unwrap();
        let mut config = server.client_config();
        config.port = Some(proxy.addr().port());
        let credentials = pop3_client::Credentials::new("user", "password");
        let (_dir, mut maildir, mut state) = local();
        let mut poll = |config: &pop3_client::ClientConfig| {
            sync_blocking(
                config,
                &credentials,
                &mut state,
                &mut maildir,
                SyncOptions::default(),
                None,
            )
            .unwrap()
        };
        let first = poll(&config);
        let unknown = proxy.take_waits();
        config.server_profile = first.server_profile.clone();
        assert!(config.server_profile.is_some(), "{first:?}");
        let second = poll(&config);
        let known = proxy.take_waits();
        assert_eq!(second.sessions, 1);
        assert!(
            known <= 5,
            "{sasl:?}: {known} round trips (first poll: {unknown})"
        );
        assert!(known < unknown, "{sasl:?}: {known} vs {unknown}");

        // Three new messages, deleted after retrieval: one session.
        for i in 0..3 {
            server.deliver(ServerMessage {
                uid: format!("n{i}"),
                content: format!("Subject: {i}\r\n\r\nbody\r\n").into_bytes(),
            });
        }
        let options = SyncOptions {
            policy: DeletePolicy::AfterRetrieval,
            ..SyncOptions::default()
        };
        let report = sync_blocking(
            &config,
            &credentials,
            &mut state,
            &mut maildir,
            options,
            None,
        )
        .unwrap();
        assert_eq!((report.new, report.deleted, report.sessions), (3, 3, 1));
        assert!(server.messages().is_empty());
    }
}

/// The state is read once per sync, however many sessions it opens: what
/// the sync writes is applied to what it read (a mailbox kept on the
/// server for years holds 10^5 UIDs), and the result is what reading the
/// state again gives.
#[test]
fn the_state_is_read_once_per_sync() {
    struct Counting {
        state: MemoryState,
        loads: usize,
    }
    impl StateStore for Counting {
        fn load(&mut self) -> io::Result<pop3_client::sync::state::SyncState> {
            self.loads += 1;
            self.state.load()
        }
        fn apply(&mut self, changes: &[pop3_client::sync::state::StateChange]) -> io::Result<()> {
            self.state.apply(changes)
        }
        fn confirm_writer(&mut self) -> io::Result<()> {
            self.state.confirm_writer()
        }
    }
    // Gmail serves 2 slices of 3: two sessions, then a third finding
    // nothing new (sizes all different: slices that list the same sizes
    // under new UIDs would look like unstable UIDs).
    let messages = (0..6)
        .map(|i| ServerMessage {
            uid: format!("g{i}"),
            content: format!("Subject: {i}\r\n\r\n{}\r\n", "x".repeat(i * 10)).into_bytes(),
        })
        .collect();
    let server = TestServer::start(TestServerConfig {
        options: ServerOptions {
            user: "me@gmail.com".into(),
            ..ServerOptions::default()
        },
        messages,
        implicit_tls: true,
        gmail: Some(GmailMode { session_limit: 3 }),
        ..TestServerConfig::default()
    })
    .unwrap();
    let (_dir, mut maildir, _) = local();
    let mut store = Counting {
        state: MemoryState::new(),
        loads: 0,
    };
    let options = SyncOptions {
        gmail_slices: Some(true),
        ..SyncOptions::default()
    };
    let report = sync(&server, "me@gmail.com", &mut store, &mut maildir, options).unwrap();
    assert_eq!(report.new, 6, "{report:?}");
    assert!(report.sessions >= 2, "{report:?}");
    assert_eq!(store.loads, 1);
    // A second sync stores nothing: what was applied is what was stored.
    let options = SyncOptions {
        gmail_slices: Some(true),
        ..SyncOptions::default()
    };
    let again = sync(&server, "me@gmail.com", &mut store, &mut maildir, options).unwrap();
    assert_eq!(again.new, 0, "{again:?}");
}

/// A sink is told, as each delivery begins, the UID, the size the server
/// listed and whether only the header comes (what a database row needs
/// before the bytes).
#[test]
fn a_sink_is_told_each_deliverys_uid_size_and_kind() {
    let messages = vec![
        ServerMessage {
            uid: "small".into(),
            content: b"Subject: s\r\n\r\nhi\r\n".to_vec(),
        },
        ServerMessage {
            uid: "big".into(),
            content: format!("Subject: b\r\n\r\n{}\r\n", "x".repeat(500)).into_bytes(),
        },
    ];
    let sizes: Vec<u64> = messages.iter().map(|m| m.content.len() as u64).collect();
    let server = server(messages);
    let dir = tempfile::tempdir().unwrap();
    let mut state = MemoryState::new();
    let mut sink = FailingSink {
        inner: MaildirSink::create(dir.path()).unwrap(),
        fail_at: usize::MAX,
        steps: 0,
        begun: Vec::new(),
    };
    let options = SyncOptions {
        headers_only_above: Some(100),
        ..SyncOptions::default()
    };
    sync(&server, "user", &mut state, &mut sink, options).unwrap();
    let mut begun = sink.begun.clone();
    begun.sort();
    assert_eq!(
        begun,
        vec![
            ("big".to_owned(), sizes[1], true),
            ("small".to_owned(), sizes[0], false),
        ]
    );
}

/// A memory the server no longer fits: it says SASL PLAIN, and the server
/// now offers USER and PASS only. The AUTH PLAIN chosen from memory is
/// refused, and the login chosen from this session's CAPA (read in the
/// same flight) logs in. A method asked for that the memory lacks is
/// chosen from CAPA too, and its absence named as without a memory.
#[test]
fn a_login_the_memory_no_longer_fits_is_chosen_again() {
    use pop3_client::pop3::ServerProfile;
    use pop3_client::{AuthMethod, Credentials};
    let server = TestServer::start(TestServerConfig {
        implicit_tls: true,
        options: ServerOptions {
            sasl: Vec::new(),
            ..ServerOptions::default()
        },
        ..TestServerConfig::default()
    })
    .unwrap();
    let mut config = server.client_config();
    config.server_profile = Some(ServerProfile::from_text(
        "before PIPELINING\nbefore SASL PLAIN\nafter PIPELINING\n",
    ));
    let credentials = Credentials::new("user", "password");
    let mut client = pop3_client::blocking::Client::connect(&config, &credentials).unwrap();
    client.stat().unwrap();
    assert!(!client.server_profile().before_login.sasl("PLAIN"));
    client.quit().unwrap();
    config.auth = AuthMethod::CramMd5;
    let Err(e) = pop3_client::blocking::Client::connect(&config, &credentials) else {
        panic!("CRAM-MD5 is not offered");
    };
    assert!(e.to_string().contains("CRAM-MD5"), "{e}");
}
