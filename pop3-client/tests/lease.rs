//! Leases with fencing, in one process: two workers polling one mailbox
//! store every message once; a worker paused past its lease while another
//! takes the mailbox over writes nothing, commits nothing into the sink
//! and deletes nothing when it wakes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pop3_client::account::DeletePolicy;
use pop3_client::lease::{Fenced, LeaseLost, LeaseStore, MemoryLeases};
use pop3_client::pop3_proto::server::{ServerMessage, ServerOptions};
use pop3_client::pop3_proto::Uid;
use pop3_client::store::{Delivery, DeliverySink, MaildirSink};
use pop3_client::sync::state::{MemoryState, StateChange, StateStore, SyncState};
use pop3_client::sync::{sync_blocking, SyncOptions};
use pop3_client::testing::{TestServer, TestServerConfig};
use pop3_client::{Credentials, ErrorKind};

/// The mailbox's state, shared by the workers (as a database row set is).
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<MemoryState>>);

impl StateStore for Shared {
    fn load(&mut self) -> io::Result<SyncState> {
        self.0.lock().unwrap().load()
    }
    fn apply(&mut self, changes: &[StateChange]) -> io::Result<()> {
        self.0.lock().unwrap().apply(changes)
    }
    fn confirm_writer(&mut self) -> io::Result<()> {
        self.0.lock().unwrap().confirm_writer()
    }
}

fn message(i: usize) -> ServerMessage {
    ServerMessage {
        uid: format!("m{i}"),
        content: format!("Subject: {i}\r\n\r\nbody {i} {}\r\n", "x".repeat(i)).into_bytes(),
    }
}

fn server() -> TestServer {
    TestServer::start(TestServerConfig {
        options: ServerOptions {
            stls: true,
            ..ServerOptions::default()
        },
        ..TestServerConfig::default()
    })
    .unwrap()
}

/// Every file delivered into the Maildir, by content, with how often.
fn delivered(dir: &Path) -> BTreeMap<Vec<u8>, usize> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir.join("new")).unwrap() {
        *out.entry(std::fs::read(entry.unwrap().path()).unwrap())
            .or_insert(0) += 1;
    }
    out
}

const TTL: Duration = Duration::from_secs(5);

/// One poll by `owner` if it gets the lease: the sync under its fence.
fn poll(
    server: &TestServer,
    leases: &MemoryLeases,
    owner: &str,
    state: &Shared,
    dir: &Path,
) -> Option<Result<usize, pop3_client::sync::SyncFailure>> {
    let fence = leases.acquire("box", owner, TTL).unwrap()?;
    let mut state = Fenced::new(state.clone(), leases, fence.clone(), TTL);
    let mut sink = Fenced::new(
        MaildirSink::create(dir).unwrap(),
        leases,
        fence.clone(),
        TTL,
    );
    let options = SyncOptions {
        policy: DeletePolicy::AfterRetrieval,
        ..SyncOptions::default()
    };
    let result = sync_blocking(
        &server.client_config(),
        &Credentials::new("user", "password"),
        &mut state,
        &mut sink,
        options,
        None,
    );
    leases.release(&fence).unwrap();
    Some(result.map(|report| report.new))
}

#[test]
fn two_workers_on_one_mailbox_store_every_message_once() {
    let server = server();
    let leases = MemoryLeases::new();
    let state = Shared::default();
    let dir = tempfile::tempdir().unwrap();
    let total = 40;
    let next = Mutex::new(0);
    std::thread::scope(|scope| {
        for owner in ["worker-a", "worker-b"] {
            let (server, leases, state, dir, next) = (&server, &leases, &state, dir.path(), &next);
            scope.spawn(move || {
                for _ in 0..15 {
                    // Mail arrives while the workers poll.
                    for _ in 0..2 {
                        let mut n = next.lock().unwrap();
                        if *n < total {
                            server.deliver(message(*n));
                            *n += 1;
                        }
                    }
                    if let Some(result) = poll(server, leases, owner, state, dir) {
                        result.unwrap();
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            });
        }
    });
    // The last of the mail, by whoever polls next.
    poll(&server, &leases, "worker-a", &state, dir.path())
        .unwrap()
        .unwrap();
    let stored = delivered(dir.path());
    assert_eq!(stored.len(), total, "every message stored");
    assert!(stored.values().all(|&n| n == 1), "each once: {stored:?}");
    assert!(server.messages().is_empty(), "deleted after retrieval");
}

/// A sink that stops in its first message for longer than the lease (a
/// worker paused: GC, a partition, SIGSTOP).
struct Pausing {
    inner: MaildirSink,
    paused: bool,
    pause: Duration,
}

impl DeliverySink for Pausing {
    fn reserve(&mut self, uid: &Uid) -> io::Result<String> {
        self.inner.reserve(uid)
    }
    fn begin(&mut self, delivery: &Delivery<'_>) -> io::Result<()> {
        self.inner.begin(delivery)
    }
    fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        if !self.paused {
            self.paused = true;
            std::thread::sleep(self.pause);
        }
        self.inner.write(chunk)
    }
    fn end(&mut self) -> io::Result<()> {
        self.inner.end()
    }
    fn commit(&mut self) -> io::Result<()> {
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
fn a_worker_paused_past_its_lease_writes_and_deletes_nothing_when_it_wakes() {
    let server = server();
    for i in 0..5 {
        server.deliver(message(i));
    }
    let leases = MemoryLeases::new();
    let state = Shared::default();
    let dir = tempfile::tempdir().unwrap();
    let short = Duration::from_millis(300);
    let fence = leases.acquire("box", "worker-a", short).unwrap().unwrap();
    let options = SyncOptions {
        policy: DeletePolicy::AfterRetrieval,
        ..SyncOptions::default()
    };
    let paused = std::thread::scope(|scope| {
        let a = scope.spawn(|| {
            let mut state = Fenced::new(state.clone(), &leases, fence.clone(), short);
            let sink = Pausing {
                inner: MaildirSink::create(dir.path()).unwrap(),
                paused: false,
                pause: Duration::from_millis(1500),
            };
            let mut sink = Fenced::new(sink, &leases, fence.clone(), short);
            sync_blocking(
                &server.client_config(),
                &Credentials::new("user", "password"),
                &mut state,
                &mut sink,
                options.clone(),
                None,
            )
        });
        // A's lease runs out while it is stopped; B takes the mailbox.
        let b = loop {
            if let Some(fence) = leases.acquire("box", "worker-b", TTL).unwrap() {
                break fence;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(b.token > fence.token);
        let mut b_state = Fenced::new(state.clone(), &leases, b.clone(), TTL);
        let mut b_sink = Fenced::new(MaildirSink::create(dir.path()).unwrap(), &leases, b, TTL);
        let report = sync_blocking(
            &server.client_config(),
            &Credentials::new("user", "password"),
            &mut b_state,
            &mut b_sink,
            options.clone(),
            None,
        )
        .unwrap();
        assert_eq!((report.new, report.deleted), (5, 5));
        a.join().unwrap()
    });
    // A woke: its commit and its records were refused, as lost leases.
    let failure = paused.unwrap_err();
    assert_eq!(
        failure.error.kind(),
        ErrorKind::Storage,
        "{}",
        failure.error
    );
    let lost = std::error::Error::source(&failure.error)
        .and_then(|s| s.downcast_ref::<io::Error>())
        .is_some_and(LeaseLost::is);
    assert!(lost, "{}", failure.error);
    assert_eq!(failure.report.new, 0);
    assert_eq!(failure.report.deleted, 0);
    let stored = delivered(dir.path());
    assert_eq!(stored.len(), 5);
    assert!(stored.values().all(|&n| n == 1), "each once: {stored:?}");
    assert!(server.messages().is_empty());
}
