//! The async client as a tokio user meets it: one call to connect, tokio's
//! AsyncWrite taken as is, futures that `tokio::spawn` accepts on a
//! multi-threaded runtime, progress callbacks that borrow.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use pop3_client::async_client::AsyncMessageSink;
use pop3_client::pop3_proto::server::{ServerMessage, ServerOptions};
use pop3_client::store::MaildirSink;
use pop3_client::sync::state::MemoryState;
use pop3_client::sync::{sync_async, SyncOptions};
use pop3_client::testing::{TestServer, TestServerConfig};
use pop3_client::tokio::Client;
use pop3_client::{Credentials, MsgNum};

fn messages() -> Vec<ServerMessage> {
    (0..12)
        .map(|i| ServerMessage {
            uid: format!("tokio-{i}"),
            content: format!("Subject: {i}\r\n\r\n.dot\r\n{}\r\n", "y".repeat(i * 300))
                .into_bytes(),
        })
        .collect()
}

fn server() -> TestServer {
    TestServer::start(TestServerConfig {
        options: ServerOptions {
            stls: true,
            pipelining: true,
            ..ServerOptions::default()
        },
        messages: messages(),
        ..TestServerConfig::default()
    })
    .unwrap()
}

fn creds() -> Credentials {
    Credentials::new("user", "password")
}

/// A sink of the application's own: it writes with tokio's I/O.
struct TokioFiles {
    out: Vec<tokio::io::BufWriter<Vec<u8>>>,
}

impl AsyncMessageSink for TokioFiles {
    async fn begin(&mut self, _: usize, _: MsgNum) -> io::Result<()> {
        self.out.push(tokio::io::BufWriter::new(Vec::new()));
        Ok(())
    }
    async fn write(&mut self, _: usize, chunk: &[u8]) -> io::Result<()> {
        use tokio::io::AsyncWriteExt;
        match self.out.last_mut() {
            Some(out) => out.write_all(chunk).await,
            None => Err(io::Error::other("no message begun")),
        }
    }
    async fn end(&mut self, _: usize, _: u64) -> io::Result<()> {
        use tokio::io::AsyncWriteExt;
        match self.out.last_mut() {
            Some(out) => out.flush().await,
            None => Ok(()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_runs_in_tokio_spawn() {
    let server = server();
    let config = server.client_config();
    let task = tokio::spawn(async move {
        let mut client = Client::connect(&config, &creds()).await?;
        let msgs: Vec<MsgNum> = client.uidl().await?.iter().map(|u| u.msg).collect();
        let mut sink = TokioFiles { out: Vec::new() };
        // A callback borrowing the task's own counter.
        let mut chunks = 0u64;
        let outcomes = client
            .retr_many_with_progress(&msgs, &mut sink, &mut |_| chunks += 1)
            .await?;
        assert!(outcomes.iter().all(Result::is_ok));
        assert!(chunks >= msgs.len() as u64);
        // tokio's AsyncWrite, as is.
        let mut one = Vec::new();
        client.retr_tokio(msgs[1], &mut one).await?;
        client.quit().await?;
        let bodies: Vec<Vec<u8>> = sink.out.into_iter().map(|w| w.into_inner()).collect();
        Ok::<_, pop3_client::Error>((bodies, one))
    });
    let (bodies, one) = task.await.unwrap().unwrap();
    let expected: Vec<Vec<u8>> = messages().into_iter().map(|m| m.content).collect();
    assert_eq!(bodies, expected);
    assert_eq!(one, expected[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_runs_in_tokio_spawn() {
    let server = server();
    let config = server.client_config();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    let bytes = Arc::new(AtomicU64::new(0));
    let seen = Arc::clone(&bytes);
    let task = tokio::spawn(async move {
        let credentials = creds();
        let mut state = MemoryState::new();
        let mut maildir = MaildirSink::create(&path)?;
        let mut stored = 0u64;
        let report = sync_async(
            || Client::connect(&config, &credentials),
            &config.host,
            &credentials.user,
            &mut state,
            &mut maildir,
            SyncOptions::default(),
            Some(&mut |p| {
                if p.done {
                    stored += p.bytes;
                }
            }),
        )
        .await?;
        seen.store(stored, Ordering::SeqCst);
        Ok::<_, pop3_client::Error>(report)
    });
    let report = task.await.unwrap().unwrap();
    assert_eq!(report.new, 12);
    let total: u64 = messages().iter().map(|m| m.content.len() as u64).sum();
    assert_eq!(bytes.load(Ordering::SeqCst), total);
    assert_eq!(
        std::fs::read_dir(dir.path().join("new")).unwrap().count(),
        12
    );
}

/// A state store and a sink whose every call is awaited for real (each
/// yields to the runtime first, as a database driver's would): the async
/// sync stores every message once, records it, deletes it after
/// retrieval, and a second sync finds nothing new.
#[tokio::test(flavor = "current_thread")]
async fn an_awaited_store_and_sink_serve_the_async_sync() {
    use pop3_client::account::DeletePolicy;
    use pop3_client::async_storage::{AsyncDeliverySink, AsyncStateStore};
    use pop3_client::pop3_proto::Uid;
    use pop3_client::store::{Delivery, DeliverySink};
    use pop3_client::sync::state::{StateChange, StateStore, SyncState};

    struct YieldingState(MemoryState, usize);
    impl AsyncStateStore for YieldingState {
        async fn load(&mut self) -> io::Result<SyncState> {
            tokio::task::yield_now().await;
            self.1 += 1;
            StateStore::load(&mut self.0)
        }
        async fn apply(&mut self, changes: &[StateChange]) -> io::Result<()> {
            tokio::task::yield_now().await;
            self.1 += 1;
            StateStore::apply(&mut self.0, changes)
        }
        async fn confirm_writer(&mut self) -> io::Result<()> {
            tokio::task::yield_now().await;
            Ok(())
        }
    }
    struct YieldingSink(MaildirSink, usize);
    impl AsyncDeliverySink for YieldingSink {
        async fn reserve(&mut self, uid: &Uid) -> io::Result<String> {
            tokio::task::yield_now().await;
            DeliverySink::reserve(&mut self.0, uid)
        }
        async fn begin(&mut self, delivery: &Delivery<'_>) -> io::Result<()> {
            tokio::task::yield_now().await;
            DeliverySink::begin(&mut self.0, delivery)
        }
        async fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
            tokio::task::yield_now().await;
            self.1 += 1;
            DeliverySink::write(&mut self.0, chunk)
        }
        async fn end(&mut self) -> io::Result<()> {
            DeliverySink::end(&mut self.0)
        }
        async fn commit(&mut self) -> io::Result<()> {
            tokio::task::yield_now().await;
            DeliverySink::commit(&mut self.0)
        }
        async fn rollback(&mut self) {
            DeliverySink::rollback(&mut self.0)
        }
        async fn reconcile(&mut self, name: &str) -> io::Result<bool> {
            DeliverySink::reconcile(&mut self.0, name)
        }
        async fn remove(&mut self, name: &str) -> io::Result<()> {
            DeliverySink::remove(&mut self.0, name)
        }
    }
    let server = server();
    let config = server.client_config();
    let credentials = Credentials::new("user", "password");
    let dir = tempfile::tempdir().unwrap();
    let mut state = YieldingState(MemoryState::new(), 0);
    let mut sink = YieldingSink(MaildirSink::create(dir.path()).unwrap(), 0);
    let options = SyncOptions {
        policy: DeletePolicy::AfterRetrieval,
        ..SyncOptions::default()
    };
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
    assert_eq!((report.new, report.deleted), (12, 12));
    assert!(state.1 >= 3 && sink.1 >= 12, "every call awaited");
    assert_eq!(
        std::fs::read_dir(dir.path().join("new")).unwrap().count(),
        12
    );
    assert!(server.messages().is_empty());
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
    assert_eq!(again.new, 0);
}
