//! The database store (SQLite and PostgreSQL): a sync into it stores every message once with its
//! summary columns and finds nothing new the second time; deletions after
//! retrieval; a delivery cut before its commit is a leftover the next run
//! removes; a writer whose lease another worker took over writes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg(all(feature = "sqlite", feature = "testing"))]

use std::time::Duration;

use pop3_client::account::DeletePolicy;
use pop3_client::async_storage::{AsyncDeliverySink, AsyncStateStore};
use pop3_client::lease::LeaseLost;
use pop3_client::pop3_proto::server::{ServerMessage, ServerOptions};
use pop3_client::sql::SqlStore;
use pop3_client::store::Delivery;
use pop3_client::sync::state::StateChange;
use pop3_client::sync::{sync_async, SyncOptions};
use pop3_client::testing::{TestServer, TestServerConfig};
use pop3_client::tokio::Client;
use pop3_client::{Credentials, Uid};

fn server(count: usize) -> TestServer {
    TestServer::start(TestServerConfig {
        options: ServerOptions {
            stls: true,
            ..ServerOptions::default()
        },
        messages: (0..count)
            .map(|i| ServerMessage {
                uid: format!("m{i}"),
                content: format!(
                    "From: Sender {i} <sender{i}@example.com>\r\nTo: me@example.org\r\nSubject: hello {i}\r\nMessage-ID: <{i}@example.com>\r\n\r\nbody {i} {}\r\n",
                    "x".repeat(i * 100)
                )
                .into_bytes(),
            })
            .collect(),
        ..TestServerConfig::default()
    })
    .unwrap()
}

async fn a_sync_into_the_database_stores_each_message_once_with_its_summary(store: SqlStore) {
    let server = server(6);
    let config = server.client_config();
    let credentials = Credentials::new("user", "password");
    let options = SyncOptions {
        group_size: 4,
        headers_only_above: Some(400),
        policy: DeletePolicy::AfterRetrieval,
        ..SyncOptions::default()
    };
    let mut mailbox = store.mailbox("work", None, Duration::from_secs(60));
    // The state and the sink: two handles on one database.
    let mut sink = store.mailbox("work", None, Duration::from_secs(60));
    let report = sync_async(
        || Client::connect(&config, &credentials),
        &config.host,
        &credentials.user,
        &mut mailbox,
        &mut sink,
        options.clone(),
        None,
    )
    .await
    .unwrap();
    assert_eq!((report.new, report.headers_only), (3, 3), "{report:?}");
    let stored = store.messages("work").await.unwrap();
    assert_eq!(stored.len(), 6);
    let mut uids: Vec<&str> = stored.iter().map(|m| m.uid.as_str()).collect();
    uids.sort_unstable();
    assert_eq!(uids, ["m0", "m1", "m2", "m3", "m4", "m5"]);
    let m1 = stored.iter().find(|m| m.uid == "m1").unwrap();
    assert_eq!(m1.subject.as_deref(), Some("hello 1"));
    assert_eq!(m1.from.as_deref(), Some("sender1@example.com"));
    assert!(!m1.headers_only);
    // Above the cap: the header only, kept on the server.
    assert!(stored.iter().find(|m| m.uid == "m5").unwrap().headers_only);
    assert_eq!(server.messages().len(), 3, "the headers-only ones stay");
    // A second run (new handles, as a new process) finds nothing new.
    let mut state = store.mailbox("work", None, Duration::from_secs(60));
    let mut sink = store.mailbox("work", None, Duration::from_secs(60));
    let again = sync_async(
        || Client::connect(&config, &credentials),
        &config.host,
        &credentials.user,
        &mut state,
        &mut sink,
        options,
        None,
    )
    .await
    .unwrap();
    assert_eq!(again.new, 0, "{again:?}");
    assert_eq!(store.messages("work").await.unwrap().len(), 6);
    // Another account in the same database holds nothing.
    assert!(store.messages("home").await.unwrap().is_empty());
}

async fn a_delivery_cut_before_its_commit_is_a_leftover_and_a_lost_lease_writes_nothing(
    store: SqlStore,
) {
    let uid = Uid::new(b"u1").unwrap();
    // Written, never committed (the run was killed).
    let mut killed = store.mailbox("box", None, Duration::from_secs(60));
    let name = killed.reserve(&uid).await.unwrap();
    killed.begin(&Delivery::new(&name, &uid, 10)).await.unwrap();
    killed.write(b"Subject: x\r\n\r\nbody\r\n").await.unwrap();
    killed.end().await.unwrap();
    drop(killed);
    assert!(store.messages("box").await.unwrap().is_empty(), "invisible");
    let mut next = store.mailbox("box", None, Duration::from_secs(60));
    assert!(!next.reconcile(&name).await.unwrap());
    assert!(!next.reconcile(&name).await.unwrap(), "and removed");

    // Leases: A's expires, B takes the mailbox over.
    let ttl = Duration::from_millis(200);
    let a = store
        .acquire("box", "worker-a", ttl)
        .await
        .unwrap()
        .unwrap();
    assert!(store
        .acquire("box", "worker-b", ttl)
        .await
        .unwrap()
        .is_none());
    let mut a_box = store.mailbox("box", Some(a.clone()), ttl);
    let change = StateChange::DeletedLocally {
        uid: Uid::new(b"u2").unwrap(),
    };
    a_box.apply(std::slice::from_ref(&change)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The taker holds it long enough for what follows, however loaded the
    // machine.
    let b = store
        .acquire("box", "worker-b", Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    assert!(b.token > a.token);
    let e = a_box
        .apply(std::slice::from_ref(&change))
        .await
        .unwrap_err();
    assert!(LeaseLost::is(&e), "{e}");
    assert!(LeaseLost::is(&a_box.confirm_writer().await.unwrap_err()));
    let mut b_box = store.mailbox("box", Some(b.clone()), Duration::from_secs(60));
    b_box.confirm_writer().await.unwrap();
    store.release(&b).await.unwrap();
    assert!(store
        .acquire("box", "worker-c", ttl)
        .await
        .unwrap()
        .is_some());
}

/// A UID the server gives to new mail after the old message was deleted
/// is another message: stored beside the first, not refused.
async fn a_reused_uid_is_new_mail_stored_beside_the_old(store: SqlStore) {
    let server = server(1);
    let config = server.client_config();
    let credentials = Credentials::new("user", "password");
    let options = SyncOptions {
        policy: DeletePolicy::AfterRetrieval,
        ..SyncOptions::default()
    };
    for round in 0..2 {
        if round == 1 {
            server.deliver(ServerMessage {
                uid: "m0".into(),
                content: b"Subject: another message\r\n\r\nnew body\r\n".to_vec(),
            });
        }
        let mut state = store.mailbox("box", None, Duration::from_secs(60));
        let mut sink = store.mailbox("box", None, Duration::from_secs(60));
        let report = sync_async(
            || Client::connect(&config, &credentials),
            &config.host,
            &credentials.user,
            &mut state,
            &mut sink,
            options.clone(),
            None,
        )
        .await
        .unwrap();
        assert_eq!(
            (report.new, report.deleted),
            (1, 1),
            "round {round}: {report:?}"
        );
    }
    let subjects: Vec<Option<String>> = store
        .messages("box")
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.subject)
        .collect();
    assert_eq!(
        subjects,
        [
            Some("hello 0".to_owned()),
            Some("another message".to_owned())
        ]
    );
}

/// A commit under a lease another worker has taken over makes nothing
/// visible; a journal compacted on load gives the same state.
async fn a_lost_lease_commits_nothing_and_compaction_keeps_the_state(store: SqlStore) {
    let ttl = Duration::from_millis(200);
    let a = store
        .acquire("box", "worker-a", ttl)
        .await
        .unwrap()
        .unwrap();
    let mut a_sink = store.mailbox("box", Some(a), ttl);
    let uid = Uid::new(b"u1").unwrap();
    let name = a_sink.reserve(&uid).await.unwrap();
    a_sink.begin(&Delivery::new(&name, &uid, 10)).await.unwrap();
    a_sink.write(b"Subject: x\r\n\r\nbody\r\n").await.unwrap();
    a_sink.end().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The taker holds it long enough for what follows, however loaded the
    // machine.
    let b = store
        .acquire("box", "worker-b", Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    let e = a_sink.commit().await.unwrap_err();
    assert!(LeaseLost::is(&e), "{e}");
    assert!(store.messages("box").await.unwrap().is_empty());

    let mut b_state = store.mailbox("box", Some(b), Duration::from_secs(60));
    let changes: Vec<StateChange> = (0..300)
        .map(|i| StateChange::Delivered {
            uid: Uid::new(format!("u{}", i % 3).as_bytes()).unwrap(),
            at: 1_000 + i,
            octets: 10,
        })
        .collect();
    b_state.apply(&changes).await.unwrap();
    // The first load replays 300 rows and compacts them; the second
    // replays the compacted lines: the same state.
    assert_eq!(store.journal_rows("box").await.unwrap(), 300);
    let before = b_state.load().await.unwrap();
    assert_eq!(before.records.len(), 3);
    let compacted = store.journal_rows("box").await.unwrap();
    assert!(compacted < 20, "{compacted} rows");
    let after = b_state.load().await.unwrap();
    assert_eq!(before, after);
}

/// Each scenario on both engines: a SQLite file, and a PostgreSQL database
/// of its own (skipped, saying so, without `scripts/postgres.sh start`).
macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "current_thread")]
                async fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    let store = super::SqlStore::open(&dir.path().join("mail.db")).await.unwrap();
                    super::$name(store).await;
                }
            )*
        }
        #[cfg(feature = "postgres")]
        mod postgres {
            $(
                #[tokio::test(flavor = "current_thread")]
                async fn $name() {
                    let Some(url) = pop3_client::testing::postgres_database().await else {
                        return;
                    };
                    let store = super::SqlStore::connect(&url).await.unwrap();
                    super::$name(store).await;
                }
            )*
        }
    };
}

on_both_engines!(
    a_sync_into_the_database_stores_each_message_once_with_its_summary,
    a_delivery_cut_before_its_commit_is_a_leftover_and_a_lost_lease_writes_nothing,
    a_reused_uid_is_new_mail_stored_beside_the_old,
    a_lost_lease_commits_nothing_and_compaction_keeps_the_state,
);
