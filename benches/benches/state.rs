//! A mailbox kept on its server for years: the sync state holds 100,000
//! UIDs and 10 messages are new. One sync into the SQLite store (feature
//! `sqlite`), against the in-process server running in another process,
//! each sync in a fresh process of its own, so that what is measured is
//! the sync's alone (this binary started again with `POP3_STATE_MODE` set
//! to `serve`, `memory` or `sqlite`).
//!
//! ```text
//! cargo bench -p pop3-benches --bench state
//! STATE_UIDS=10000 cargo bench -p pop3-benches --bench state
//! ```
//!
//! Prints, for scripts:
//! - `CPU_MS sqlite <n> memory <n>`: the client process's CPU time (user and
//!   system) for the sync, into SQLite and, as the baseline measured in the
//!   same run, into an in-memory state and a sink that discards;
//! - `RATIO sqlite_vs_memory <r>`: the first over the second;
//! - `ROWS_WRITTEN journal <n> messages <n>`: the rows the SQLite sync
//!   added (in proportion to the new messages, not to the known ones);
//! - `PEAK_RSS_MB sqlite <n> memory <n>`: each syncing process's peak
//!   resident memory, over its whole life.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use pop3_client::async_storage::AsyncStateStore;
use pop3_client::pop3_proto::server::ServerMessage;
use pop3_client::sql::SqlStore;
use pop3_client::store::{Delivery, DeliverySink};
use pop3_client::sync::state::{MemoryState, StateChange, StateStore};
use pop3_client::sync::{sync_async, SyncOptions, SyncReport};
use pop3_client::testing::{TestServer, TestServerConfig};
use pop3_client::tokio::Client;
use pop3_client::{ClientConfig, Credentials, Security, Timeouts, TlsRoots, Uid};

const NEW: usize = 10;

fn known() -> usize {
    std::env::var("STATE_UIDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

fn message(i: usize) -> ServerMessage {
    ServerMessage {
        uid: format!("uid-{i:08}-kept-on-the-server"),
        content: format!(
            "Subject: message {i}\r\nMessage-ID: <{i}@state.bench>\r\n\r\nbody {i}\r\n"
        )
        .into_bytes(),
    }
}

/// The server: every known message and the new ones; prints its port and
/// CA, then serves until stdin closes.
fn serve() {
    let server = TestServer::start(TestServerConfig {
        implicit_tls: true,
        messages: (0..known() + NEW).map(message).collect(),
        ..TestServerConfig::default()
    })
    .unwrap();
    println!("{}", server.addr().port());
    print!("{}", server.ca_pem());
    println!("END");
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

/// The state's changes for the known messages, as syncs recorded them.
fn known_changes() -> Vec<StateChange> {
    (0..known())
        .map(|i| {
            let m = message(i);
            StateChange::Delivered {
                uid: Uid::new(m.uid.as_bytes()).unwrap(),
                at: 1_700_000_000,
                octets: m.content.len() as u64,
            }
        })
        .collect()
}

/// A sink that keeps nothing: the baseline's.
struct Discard(u64);

impl DeliverySink for Discard {
    fn reserve(&mut self, _uid: &Uid) -> std::io::Result<String> {
        self.0 += 1;
        Ok(self.0.to_string())
    }
    fn begin(&mut self, _delivery: &Delivery<'_>) -> std::io::Result<()> {
        Ok(())
    }
    fn write(&mut self, _chunk: &[u8]) -> std::io::Result<()> {
        Ok(())
    }
    fn end(&mut self) -> std::io::Result<()> {
        Ok(())
    }
    fn commit(&mut self) -> std::io::Result<()> {
        Ok(())
    }
    fn rollback(&mut self) {}
    fn reconcile(&mut self, _name: &str) -> std::io::Result<bool> {
        Ok(false)
    }
}

/// CPU time (user and system) of this process so far, in milliseconds.
fn cpu_ms() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // After the command name (in parentheses): fields 14 and 15 of the
    // whole line are utime and stime, in clock ticks (100 per second).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks * 10
}

fn status_kb(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The client's settings for the server the parent started.
fn client_config() -> ClientConfig {
    let mut config = ClientConfig::new("127.0.0.1");
    config.port = Some(std::env::var("STATE_PORT").unwrap().parse().unwrap());
    config.security = Security::Tls;
    config.roots = TlsRoots::CaPem(std::fs::read(std::env::var("STATE_CA").unwrap()).unwrap());
    config.timeouts = Timeouts::all(Duration::from_secs(300));
    config
}

/// One sync, in this process: into memory (`memory`) or into the SQLite
/// database at `STATE_DB` (`sqlite`). Prints `CPU_MS`, `PEAK_KB`, `NEW`.
fn sync_once(mode: &str) {
    let config = client_config();
    let credentials = Credentials::new("user", "password");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let options = SyncOptions {
        max_message: config.session.max_body,
        ..SyncOptions::default()
    };
    let connect = || Client::connect(&config, &credentials);
    let (cpu, report): (u64, SyncReport) = if mode == "memory" {
        let mut state = MemoryState::new();
        StateStore::apply(&mut state, &known_changes()).unwrap();
        let mut sink = Discard(0);
        let before = cpu_ms();
        let report = runtime
            .block_on(sync_async(
                connect,
                &config.host,
                &credentials.user,
                &mut state,
                &mut sink,
                options,
                None,
            ))
            .unwrap();
        (cpu_ms() - before, report)
    } else {
        let path = std::path::PathBuf::from(std::env::var("STATE_DB").unwrap());
        runtime.block_on(async {
            let store = SqlStore::open(&path).await.unwrap();
            let mut state = store.mailbox("big", None, Duration::from_secs(60));
            let mut sink = store.mailbox("big", None, Duration::from_secs(60));
            let before = cpu_ms();
            let report = sync_async(
                connect,
                &config.host,
                &credentials.user,
                &mut state,
                &mut sink,
                options,
                None,
            )
            .await
            .unwrap();
            (cpu_ms() - before, report)
        })
    };
    println!("CPU_MS {cpu}");
    println!("PEAK_KB {}", status_kb("VmHWM:"));
    println!("NEW {}", report.new);
}

/// Runs this binary in `mode` with `env`; its lines as key -> value.
fn child(mode: &str, env: &[(&str, String)]) -> std::collections::HashMap<String, String> {
    let out = Command::new(std::env::current_exe().unwrap())
        .env("POP3_STATE_MODE", mode)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn main() {
    match std::env::var("POP3_STATE_MODE").as_deref() {
        Ok("serve") => return serve(),
        Ok(mode @ ("memory" | "sqlite")) => return sync_once(mode),
        _ => {}
    }
    let mut server = Command::new(std::env::current_exe().unwrap())
        .env("POP3_STATE_MODE", "serve")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let port: u16 = lines.next().unwrap().unwrap().parse().unwrap();
    let mut ca = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line == "END" {
            break;
        }
        ca.push_str(&line);
        ca.push('\n');
    }
    let dir = tempfile::tempdir().unwrap();
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, ca).unwrap();
    let db = dir.path().join("state.db");
    // The SQLite state, written as syncs would have written it.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = runtime.block_on(SqlStore::open(&db)).unwrap();
    runtime.block_on(async {
        let mut mailbox = store.mailbox("big", None, Duration::from_secs(60));
        for chunk in known_changes().chunks(10_000) {
            mailbox.apply(chunk).await.unwrap();
        }
    });
    let journal_before = runtime.block_on(store.journal_rows("big")).unwrap();
    let env = [
        ("STATE_PORT", port.to_string()),
        ("STATE_CA", ca_path.display().to_string()),
        ("STATE_DB", db.display().to_string()),
    ];
    let memory = child("memory", &env);
    let sqlite = child("sqlite", &env);
    for run in [&memory, &sqlite] {
        assert_eq!(run["NEW"], NEW.to_string());
    }
    let journal_after = runtime.block_on(store.journal_rows("big")).unwrap();
    let messages = runtime.block_on(store.messages("big")).unwrap().len();
    drop(server.stdin.take());
    let _ = server.wait();
    let ms =
        |run: &std::collections::HashMap<String, String>| -> u64 { run["CPU_MS"].parse().unwrap() };
    let mb = |run: &std::collections::HashMap<String, String>| -> f64 {
        run["PEAK_KB"].parse::<f64>().unwrap() / 1024.0
    };
    println!("UIDS known {} new {NEW}", known());
    println!("CPU_MS sqlite {} memory {}", ms(&sqlite), ms(&memory));
    println!(
        "RATIO sqlite_vs_memory {:.2}",
        ms(&sqlite) as f64 / ms(&memory).max(1) as f64
    );
    println!(
        "ROWS_WRITTEN journal {} messages {messages}",
        journal_after.saturating_sub(journal_before)
    );
    println!(
        "PEAK_RSS_MB sqlite {:.1} memory {:.1}",
        mb(&sqlite),
        mb(&memory)
    );
}
