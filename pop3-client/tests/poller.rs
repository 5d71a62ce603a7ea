//! The poller against in-process servers: mailboxes synced at once within
//! the bounds; a wrong password paused for the user while the others go
//! on; a server that stops answering delays no other mailbox and is
//! retried after a backoff; a stop asked for ends a sync after its group,
//! with QUIT, and the next sync goes on.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg(feature = "tokio")]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use pop3_client::account::{Account, Credential};
use pop3_client::poller::{MaildirMailbox, Poller, PollerConfig};
use pop3_client::pop3_proto::server::{ServerMessage, ServerOptions};
use pop3_client::testing::{Fault, TestServer, TestServerConfig};
use pop3_client::{ErrorKind, Security, Timeouts};

fn server(messages: usize, fault: Fault) -> TestServer {
    TestServer::start(TestServerConfig {
        options: ServerOptions {
            stls: true,
            ..ServerOptions::default()
        },
        messages: (0..messages)
            .map(|i| ServerMessage {
                uid: format!("m{i}"),
                content: format!("Subject: {i}\r\n\r\nbody {i}\r\n").into_bytes(),
            })
            .collect(),
        fault,
        ..TestServerConfig::default()
    })
    .unwrap()
}

/// A mailbox on `server` logging in with `password`, its files in `dir`.
fn mailbox(
    name: &str,
    server: &TestServer,
    password: &str,
    dir: &std::path::Path,
) -> MaildirMailbox {
    let mut account =
        Account::for_email(name, "user@example.org", Credential::password(password)).unwrap();
    account.incoming.host = "127.0.0.1".into();
    account.incoming.port = server.addr().port();
    account.incoming.security = Security::StartTls;
    account.incoming.user = "user".into();
    let ca = dir.join(format!("{name}.pem"));
    std::fs::write(&ca, server.ca_pem()).unwrap();
    account.trust.ca_file = Some(ca);
    MaildirMailbox {
        account,
        state: dir.join(format!("{name}.state")),
        maildir: dir.join(name),
        options: Default::default(),
        timeouts: None,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_wrong_password_pauses_that_mailbox_alone_until_resumed() {
    let (one, two, bad) = (
        server(3, Fault::None),
        server(2, Fault::None),
        server(1, Fault::None),
    );
    let dir = tempfile::tempdir().unwrap();
    let mut poller = Poller::new(PollerConfig::default());
    poller.add(Arc::new(mailbox("one", &one, "password", dir.path())));
    poller.add(Arc::new(mailbox("two", &two, "password", dir.path())));
    // At a provider with regions: the account's remedy (the region), not
    // the error's (the password).
    let mut wrong = mailbox("bad", &bad, "wrong", dir.path());
    wrong.account.email = "user@zoho.eu".into();
    poller.add(Arc::new(wrong));
    let runtime = runtime();
    let outcomes = runtime.block_on(poller.poll_due());
    assert_eq!(outcomes.len(), 3);
    let health = poller.health();
    assert_eq!((health["one"].last_new, health["two"].last_new), (3, 2));
    let bad_health = &health["bad"];
    assert!(bad_health.needs_user_action, "{bad_health:?}");
    assert_eq!(bad_health.next_attempt, None);
    assert_eq!(bad_health.last_error.as_ref().unwrap().0, ErrorKind::Auth);
    assert!(
        matches!(
            bad_health.remedy,
            Some(pop3_client::Remedy::ChooseRegion { hosts }) if hosts.contains(&"pop.zoho.eu")
        ),
        "{bad_health:?}"
    );
    assert_eq!(health["one"].remedy, None);
    assert!(health["one"].next_attempt.unwrap() > SystemTime::now() + Duration::from_secs(200));
    // Nothing is due: the good ones polled, the bad one paused.
    assert!(runtime.block_on(poller.poll_due()).is_empty());
    // Its settings changed: tried again (and still refused).
    poller.resume("bad");
    let again = runtime.block_on(poller.poll_due());
    assert_eq!(again.len(), 1);
    assert_eq!(poller.health()["bad"].consecutive_failures, 2);
}

#[test]
fn a_server_that_stops_answering_delays_no_other_mailbox() {
    let slow = server(1, Fault::Delay(Duration::from_secs(30)));
    let (one, two) = (server(2, Fault::None), server(2, Fault::None));
    let dir = tempfile::tempdir().unwrap();
    let mut config = PollerConfig::default();
    config.concurrency = 2;
    config.per_host = 3;
    let mut poller = Poller::new(config);
    let mut stuck = mailbox("slow", &slow, "password", dir.path());
    // Its own limit: one second for each answer.
    stuck.timeouts = Some(Timeouts::all(Duration::from_secs(1)));
    poller.add(Arc::new(stuck));
    poller.add(Arc::new(mailbox("one", &one, "password", dir.path())));
    poller.add(Arc::new(mailbox("two", &two, "password", dir.path())));
    let outcomes = runtime().block_on(poller.poll_due());
    let order: Vec<&str> = outcomes.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(order.last(), Some(&"slow"), "{order:?}");
    let (_, last) = outcomes.last().unwrap();
    assert_eq!(last.as_ref().unwrap_err().kind(), ErrorKind::Timeout);
    let health = poller.health();
    assert!(!health["slow"].needs_user_action);
    // Retried after a backoff, not paused.
    assert!(health["slow"].next_attempt.is_some());
    assert_eq!((health["one"].last_new, health["two"].last_new), (2, 2));
}

#[test]
fn a_stop_ends_a_sync_after_its_group_with_quit_and_the_next_goes_on() {
    use pop3_client::account::DeletePolicy;
    use pop3_client::store::{Delivery, DeliverySink, MaildirSink};
    use pop3_client::sync::state::MemoryState;
    use pop3_client::sync::{sync_blocking, StopSignal, StoppedEarly, SyncOptions};

    /// Asks to stop as its first group is committed.
    struct StopAtCommit(MaildirSink, StopSignal);
    impl DeliverySink for StopAtCommit {
        fn reserve(&mut self, uid: &pop3_client::Uid) -> std::io::Result<String> {
            self.0.reserve(uid)
        }
        fn begin(&mut self, delivery: &Delivery<'_>) -> std::io::Result<()> {
            DeliverySink::begin(&mut self.0, delivery)
        }
        fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
            DeliverySink::write(&mut self.0, chunk)
        }
        fn end(&mut self) -> std::io::Result<()> {
            DeliverySink::end(&mut self.0)
        }
        fn commit(&mut self) -> std::io::Result<()> {
            self.1.stop();
            self.0.commit()
        }
        fn rollback(&mut self) {
            self.0.rollback();
        }
        fn reconcile(&mut self, name: &str) -> std::io::Result<bool> {
            self.0.reconcile(name)
        }
    }
    let server = server(12, Fault::None);
    let dir = tempfile::tempdir().unwrap();
    let stop = StopSignal::new();
    let mut state = MemoryState::new();
    let options = SyncOptions {
        group_size: 5,
        policy: DeletePolicy::AfterRetrieval,
        stop: Some(stop.clone()),
        ..SyncOptions::default()
    };
    let credentials = pop3_client::Credentials::new("user", "password");
    let mut sink = StopAtCommit(MaildirSink::create(dir.path()).unwrap(), stop);
    let report = sync_blocking(
        &server.client_config(),
        &credentials,
        &mut state,
        &mut sink,
        options.clone(),
        None,
    )
    .unwrap();
    assert_eq!((report.new, report.deleted), (5, 5), "{report:?}");
    assert_eq!(report.stopped_early, Some(StoppedEarly::Asked));
    // QUIT committed the deletions of what was stored.
    assert_eq!(server.messages().len(), 7);
    let options = SyncOptions {
        stop: None,
        ..options
    };
    let mut maildir = MaildirSink::create(dir.path()).unwrap();
    let rest = sync_blocking(
        &server.client_config(),
        &credentials,
        &mut state,
        &mut maildir,
        options,
        None,
    )
    .unwrap();
    assert_eq!(rest.new, 7);
    assert!(server.messages().is_empty());
}

/// `run`: each mailbox on its own schedule, so a long sync holds up no
/// other: a fast mailbox is polled again and again while a slow one's
/// first sync is still under way (never two syncs of one mailbox at once).
/// The stop returns once the slow sync has ended; a later round starts
/// afresh.
#[test]
fn run_polls_each_mailbox_on_its_own_and_stops() {
    let slow = server(3, Fault::Delay(Duration::from_millis(300)));
    let fast = server(1, Fault::None);
    let dir = tempfile::tempdir().unwrap();
    let mut config = PollerConfig::default();
    config.interval = Duration::from_millis(100);
    config.per_host = 4;
    let mut poller = Poller::new(config);
    assert!(poller.add(Arc::new(mailbox("slow", &slow, "password", dir.path()))));
    assert!(poller.add(Arc::new(mailbox("fast", &fast, "password", dir.path()))));
    assert!(
        !poller.add(Arc::new(mailbox("fast", &fast, "password", dir.path()))),
        "one mailbox per name"
    );
    let runtime = runtime();
    let stop = Arc::new(tokio::sync::Notify::new());
    let mut order = Vec::new();
    runtime.block_on(async {
        let stopper = Arc::clone(&stop);
        poller
            .run_with(async move { stopper.notified().await }, |name, outcome| {
                assert!(outcome.is_ok(), "{name}: {outcome:?}");
                order.push(name.to_owned());
                if order.iter().filter(|n| *n == "fast").count() == 3 {
                    stop.notify_one();
                }
            })
            .await;
    });
    let first_slow = order.iter().position(|n| n == "slow");
    let fast_before = order[..first_slow.unwrap_or(order.len())]
        .iter()
        .filter(|n| *n == "fast")
        .count();
    assert!(fast_before >= 3, "{order:?}");
    // The slow sync ended (stopped after its group, or done) before the
    // return, and no sync is left under way.
    assert_eq!(first_slow, Some(order.len() - 1), "{order:?}");
    assert!(poller.health().values().all(|h| !h.polling));
    // A later round is not stopped by the earlier stop.
    std::thread::sleep(Duration::from_millis(150));
    let later = runtime.block_on(poller.poll_due());
    assert!(
        later.iter().any(|(name, r)| name == "fast" && r.is_ok()),
        "{later:?}"
    );
}
