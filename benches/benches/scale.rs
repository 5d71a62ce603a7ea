//! Many sessions at once: 1,000 async TLS sessions on one current-thread
//! tokio runtime against the in-process test server running in another
//! process (this binary, started again with `POP3_SCALE_SERVE=1`).
//!
//! ```text
//! cargo bench -p pop3-benches --bench scale            # 1,000 sessions
//! SCALE_SESSIONS=100 cargo bench -p pop3-benches --bench scale
//! ```
//!
//! Prints, for scripts:
//! - `PER_SESSION_KB idle <n>`: resident memory per open, logged-in, idle session;
//! - `PER_SESSION_KB after_fetch <n>`: the same after each fetched three 20 KB messages;
//! - `SESSIONS_PER_SEC <n>`: sessions opened and logged in per second (all at once);
//! - `RATIO many_vs_one <r>`: messages per second with all sessions fetching
//!   together, against one session fetching alone (the same messages each).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pop3_client::async_client::Client;
use pop3_client::pop3_proto::server::{ServerMessage, ServerOptions};
use pop3_client::testing::{TestServer, TestServerConfig};
use pop3_client::{ClientConfig, Credentials, MsgNum, Security, Timeouts, TlsRoots};

const MESSAGES: usize = 3;

/// Counts the bytes allocated and not yet freed: what the sessions hold,
/// apart from what the allocator keeps after a free (which RSS shows).
struct Live;

static LIVE: AtomicUsize = AtomicUsize::new(0);

#[allow(unsafe_code)]
// SAFETY: delegates every call unchanged to the system allocator.
unsafe impl GlobalAlloc for Live {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Live = Live;

fn live_kb() -> u64 {
    LIVE.load(Ordering::Relaxed) as u64 / 1024
}

fn serve() {
    let messages = (0..MESSAGES)
        .map(|i| ServerMessage {
            uid: format!("m{i}"),
            content: format!("Subject: {i}\r\n\r\n{}\r\n", "x".repeat(20_000)).into_bytes(),
        })
        .collect();
    let server = TestServer::start(TestServerConfig {
        options: ServerOptions::default(),
        messages,
        implicit_tls: true,
        ..TestServerConfig::default()
    })
    .unwrap();
    let mut out = std::io::stdout();
    writeln!(out, "{}", server.addr().port()).unwrap();
    out.write_all(server.ca_pem().as_bytes()).unwrap();
    writeln!(out, "END").unwrap();
    out.flush().unwrap();
    // Serve until the parent closes our stdin.
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
}

/// Resident memory of this process, in KiB (Linux).
fn rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    if std::env::var_os("POP3_SCALE_SERVE").is_some() {
        serve();
        return;
    }
    // cargo bench passes --bench; nothing else is taken.
    let sessions: usize = std::env::var("SCALE_SESSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env("POP3_SCALE_SERVE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
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
    let mut config = ClientConfig::new("127.0.0.1");
    config.port = Some(port);
    config.security = Security::Tls;
    config.roots = TlsRoots::CaPem(ca.into_bytes());
    config.timeouts = Timeouts::all(Duration::from_secs(120));
    let credentials = Credentials::new("user", "password");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let msgs: Vec<MsgNum> = (1..=MESSAGES as u32).filter_map(MsgNum::new).collect();
        // One session alone, as the baseline (and to warm up).
        let started = Instant::now();
        let mut one = Client::connect(&config, &credentials).await.unwrap();
        for _ in 0..5 {
            for m in &msgs {
                one.retr_vec(*m).await.unwrap();
            }
        }
        let one_rate = (5 * MESSAGES) as f64 / started.elapsed().as_secs_f64();
        one.quit().await.unwrap();

        let before = rss_kb();
        let heap_before = live_kb();
        let started = Instant::now();
        let opened = futures_util::future::join_all(
            (0..sessions).map(|_| Client::connect(&config, &credentials)),
        )
        .await;
        let open_secs = started.elapsed().as_secs_f64();
        let mut clients: Vec<_> = opened.into_iter().map(Result::unwrap).collect();
        let idle = rss_kb();
        let heap_idle = live_kb();
        let started = Instant::now();
        futures_util::future::join_all(clients.iter_mut().map(|c| {
            let msgs = msgs.clone();
            async move {
                for m in &msgs {
                    c.retr_vec(*m).await.unwrap();
                }
            }
        }))
        .await;
        let many_rate = (sessions * MESSAGES) as f64 / started.elapsed().as_secs_f64();
        let fetched = rss_kb();
        let heap_fetched = live_kb();
        // One more exchange each: rustls returns its record buffer to 4 KiB
        // at its next read.
        futures_util::future::join_all(clients.iter_mut().map(|c| c.noop())).await;
        let after_noop = rss_kb();
        let heap_after_noop = live_kb();
        futures_util::future::join_all(clients.into_iter().map(Client::quit)).await;
        let per = |kb: u64| kb.saturating_sub(before) as f64 / sessions as f64;
        println!("SESSIONS {sessions}");
        println!("PER_SESSION_KB idle {:.1}", per(idle));
        println!("PER_SESSION_KB after_fetch {:.1}", per(fetched));
        let heap = |kb: u64| kb.saturating_sub(heap_before) as f64 / sessions as f64;
        println!("HEAP_PER_SESSION_KB idle {:.1}", heap(heap_idle));
        println!("HEAP_PER_SESSION_KB after_fetch {:.1}", heap(heap_fetched));
        println!("PER_SESSION_KB after_next_exchange {:.1}", per(after_noop));
        println!(
            "HEAP_PER_SESSION_KB after_next_exchange {:.1}",
            heap(heap_after_noop)
        );
        println!("SESSIONS_PER_SEC {:.0}", sessions as f64 / open_secs);
        println!("MESSAGES_PER_SEC one {one_rate:.0} many {many_rate:.0}");
        println!("RATIO many_vs_one {:.2}", many_rate / one_rate);
    });
    drop(child.stdin.take());
    let _ = child.wait();
}
