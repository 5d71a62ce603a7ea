//! `cargo bench -p pop3-benches`: the parser hot path against memcpy and
//! memchr on the same bytes, listings, the client session in memory, and
//! fetches over loopback TCP with emulated round trips.
//!
//! Each figure that matters is printed at the end as `RATIO <name> <value>`:
//! a speed relative to a baseline measured in the same run (the best sample
//! of each), so noisy machines still compare. `ALLOCS` lines count heap
//! allocations in a steady-state decode.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{black_box, BatchSize, Criterion, Throughput};
use pop3_benches::{list_listing, mail_corpus, stuffed, uidl_listing};
use pop3_client::blocking::Client;
use pop3_client::pop3_proto::server::{ServerMessage, ServerOptions};
use pop3_client::testing::{TestServer, TestServerConfig};
use pop3_client::{ClientConfig, Credentials, MsgNum, Security, Timeouts};
use pop3_proto::frame::{BodyDecoder, Decoded};
use pop3_proto::{ClientSession, Command, Event, SessionConfig};

/// Counts heap allocations, to show the decoder allocates nothing per chunk.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

#[allow(unsafe_code)]
// SAFETY: delegates every call unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const CHUNK: usize = 16 * 1024;

/// Best (lowest) time per iteration seen for each benchmark, in seconds.
static BEST: Mutex<BTreeMap<&'static str, f64>> = Mutex::new(BTreeMap::new());

fn record(name: &'static str, elapsed: Duration, iters: u64) {
    let per_iter = elapsed.as_secs_f64() / iters.max(1) as f64;
    let mut best = BEST.lock().unwrap_or_else(PoisonError::into_inner);
    let entry = best.entry(name).or_insert(f64::INFINITY);
    *entry = entry.min(per_iter);
}

/// Runs `f` as a criterion benchmark named `name`, recording its best time.
fn bench(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &'static str,
    mut f: impl FnMut(),
) {
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                f();
            }
            let elapsed = start.elapsed();
            record(name, elapsed, iters);
            elapsed
        })
    });
}

/// Decodes a dot-stuffed body fed in 16 KiB reads, copying the body into
/// `out` (as a sink would). Returns the body length.
fn decode_chunked(wire: &[u8], out: &mut Vec<u8>) -> usize {
    out.clear();
    let mut decoder = BodyDecoder::new();
    for chunk in wire.chunks(CHUNK) {
        let mut input = chunk;
        loop {
            match decoder.decode(input) {
                Ok((used, Decoded::Chunk(c))) => {
                    out.extend_from_slice(c);
                    input = &input[used..];
                }
                Ok((_, Decoded::NeedMore)) => break,
                Ok((_, Decoded::End)) | Err(_) => return out.len(),
            }
        }
    }
    out.len()
}

/// The decoder alone, handing out borrowed chunks (no copy).
fn decode_borrowed(wire: &[u8]) -> usize {
    let mut decoder = BodyDecoder::new();
    let mut total = 0;
    for chunk in wire.chunks(CHUNK) {
        let mut input = chunk;
        loop {
            match decoder.decode(input) {
                Ok((used, Decoded::Chunk(c))) => {
                    total += black_box(c).len();
                    input = &input[used..];
                }
                Ok((_, Decoded::NeedMore)) => break,
                Ok((_, Decoded::End)) | Err(_) => return total,
            }
        }
    }
    total
}

fn memcpy_chunked(wire: &[u8], out: &mut Vec<u8>) -> usize {
    out.clear();
    for chunk in wire.chunks(CHUNK) {
        out.extend_from_slice(chunk);
    }
    out.len()
}

fn memchr_lines(wire: &[u8]) -> usize {
    wire.chunks(CHUNK)
        .map(|c| memchr::memchr_iter(b'\n', c).count())
        .sum()
}

fn decode_benches(c: &mut Criterion) {
    let body = mail_corpus(8 << 20, 1);
    let wire = stuffed(&body);
    let mut out = Vec::with_capacity(wire.len());
    assert_eq!(decode_chunked(&wire, &mut out), body.len());
    assert_eq!(out, body);

    // Allocation count in steady state: none per chunk.
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    decode_chunked(&wire, &mut out);
    let copying = ALLOCATIONS.load(Ordering::Relaxed) - before;
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    decode_borrowed(&wire);
    let borrowed = ALLOCATIONS.load(Ordering::Relaxed) - before;
    println!(
        "ALLOCS decode_into_reused_buffer {copying} (for {} chunks of 16 KiB)",
        wire.len().div_ceil(CHUNK)
    );
    println!("ALLOCS decode_borrowed {borrowed}");

    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Bytes(wire.len() as u64));
    bench(&mut group, "memcpy", || {
        black_box(memcpy_chunked(black_box(&wire), &mut out));
    });
    bench(&mut group, "memchr_lines", || {
        black_box(memchr_lines(black_box(&wire)));
    });
    bench(&mut group, "decode_into", || {
        black_box(decode_chunked(black_box(&wire), &mut out));
    });
    bench(&mut group, "decode_borrowed", || {
        black_box(decode_borrowed(black_box(&wire)));
    });
    group.finish();
}

/// A session in TRANSACTION, with PIPELINING and a window of `window`.
fn logged_in(window: usize) -> ClientSession {
    let config = SessionConfig {
        pipeline_max: window,
        pipeline_refill: window / 5,
        ..SessionConfig::default()
    };
    let mut s = ClientSession::new(config);
    let feed = |s: &mut ClientSession, bytes: &[u8]| {
        let mut used = 0;
        while let Ok((n, event)) = s.advance(&bytes[used..]) {
            used += n;
            if event == Event::NeedInput {
                break;
            }
        }
    };
    feed(&mut s, b"+OK ready\r\n");
    let _ = s.send(&Command::User("u"));
    feed(&mut s, b"+OK\r\n");
    let _ = s.send(&Command::Pass("p"));
    feed(&mut s, b"+OK\r\n");
    let _ = s.send(&Command::Capa);
    feed(&mut s, b"+OK\r\nPIPELINING\r\nUIDL\r\nTOP\r\n.\r\n");
    s.clear_output();
    s
}

/// Feeds `wire` in 16 KiB reads with carry-over, as a driver does; counts
/// the events, a batch of listing entries as one per entry, and reads every
/// entry as a consumer would.
fn drive(session: &mut ClientSession, wire: &[u8], buffer: &mut Vec<u8>) -> usize {
    buffer.clear();
    let mut events = 0;
    for chunk in wire.chunks(CHUNK) {
        buffer.extend_from_slice(chunk);
        let mut used = 0;
        loop {
            match session.advance(&buffer[used..]) {
                Ok((n, Event::NeedInput)) => {
                    used += n;
                    break;
                }
                Ok((n, Event::UidlEntries(entries))) => {
                    used += n;
                    for entry in entries {
                        events += 1;
                        black_box((entry.msg, entry.uid));
                    }
                }
                Ok((n, Event::ListEntries(entries))) => {
                    used += n;
                    for entry in entries {
                        events += 1;
                        black_box(entry);
                    }
                }
                Ok((n, event)) => {
                    used += n;
                    events += 1;
                    black_box(&event);
                }
                Err(e) => panic!("{e}"),
            }
        }
        buffer.drain(..used);
    }
    events
}

fn listing_benches(c: &mut Criterion) {
    let uidl = uidl_listing(100_000);
    let list = list_listing(100_000);
    let stats: Vec<u8> = b"+OK 2 320\r\n".repeat(100_000);
    let mut buffer = Vec::with_capacity(2 * CHUNK);

    let mut group = c.benchmark_group("listings");
    group.throughput(Throughput::Bytes(uidl.len() as u64));
    bench(&mut group, "uidl_memchr_lines", || {
        black_box(memchr_lines(black_box(&uidl)));
    });
    bench(&mut group, "uidl_100k", || {
        let mut s = logged_in(100);
        let _ = s.send(&Command::Uidl(None));
        assert_eq!(drive(&mut s, &uidl, &mut buffer), 100_002);
    });
    group.throughput(Throughput::Bytes(list.len() as u64));
    bench(&mut group, "list_memchr_lines", || {
        black_box(memchr_lines(black_box(&list)));
    });
    bench(&mut group, "list_100k", || {
        let mut s = logged_in(100);
        let _ = s.send(&Command::List(None));
        assert_eq!(drive(&mut s, &list, &mut buffer), 100_002);
    });
    group.finish();

    let mut group = c.benchmark_group("status");
    group.throughput(Throughput::Bytes(stats.len() as u64));
    group.sample_size(20);
    bench(&mut group, "status_memchr_lines", || {
        black_box(memchr_lines(black_box(&stats)));
    });
    group.bench_function("stat_replies_100k", |b| {
        b.iter_batched(
            || {
                let mut s = logged_in(100_000);
                for _ in 0..100_000 {
                    let _ = s.send(&Command::Stat);
                }
                s.clear_output();
                s
            },
            |mut s| {
                let start = Instant::now();
                assert_eq!(drive(&mut s, &stats, &mut buffer), 100_000);
                record("stat_replies_100k", start.elapsed(), 1);
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

/// 2,000 messages of 20 KB: the wire bytes of their RETR answers.
fn session_corpus() -> (Vec<Vec<u8>>, Vec<u8>, Vec<u8>) {
    let bodies: Vec<Vec<u8>> = (0..2000).map(|i| mail_corpus(20 * 1024, 100 + i)).collect();
    let mut wire = Vec::new();
    let mut bodies_wire = Vec::new();
    for body in &bodies {
        wire.extend_from_slice(format!("+OK {} octets\r\n", body.len()).as_bytes());
        let s = stuffed(body);
        wire.extend_from_slice(&s);
        bodies_wire.extend_from_slice(&s);
    }
    (bodies, wire, bodies_wire)
}

fn session_benches(c: &mut Criterion) {
    let (bodies, wire, _) = session_corpus();
    let stuffed_bodies: Vec<Vec<u8>> = bodies.iter().map(|b| stuffed(b)).collect();
    let total_body: usize = bodies.iter().map(Vec::len).sum();
    let mut sink = Vec::with_capacity(32 * 1024);
    let mut buffer = Vec::with_capacity(2 * CHUNK);

    let mut group = c.benchmark_group("session");
    group.throughput(Throughput::Bytes(wire.len() as u64));
    group.sample_size(20);
    // Decoding alone, the same bodies, copied to a sink.
    bench(&mut group, "decode_2000x20k", || {
        let mut n = 0;
        for s in &stuffed_bodies {
            n += decode_chunked(s, &mut sink);
        }
        assert_eq!(n, total_body);
    });
    // The whole client session: pipelined RETRs (window of 100), status
    // lines, unstuffing, events; the "server" side is the precomputed wire.
    bench(&mut group, "session_fetch_2000x20k", || {
        let mut s = logged_in(100);
        let mut next = 1u32;
        let mut got = 0usize;
        let mut input = wire.as_slice();
        buffer.clear();
        while got < total_body || next <= 2000 {
            while s.room() > 0 && next <= 2000 {
                let _ = s.send(&Command::Retr(
                    MsgNum::new(next).unwrap_or_else(|| unreachable!()),
                ));
                next += 1;
            }
            s.clear_output();
            let take = input.len().min(CHUNK);
            buffer.extend_from_slice(&input[..take]);
            input = &input[take..];
            let mut used = 0;
            loop {
                match s.advance(&buffer[used..]) {
                    Ok((n, Event::NeedInput)) => {
                        used += n;
                        break;
                    }
                    Ok((n, Event::Body(chunk))) => {
                        used += n;
                        got += chunk.len();
                        sink.clear();
                        sink.extend_from_slice(chunk);
                    }
                    Ok((n, _)) => used += n,
                    Err(e) => panic!("{e}"),
                }
            }
            buffer.drain(..used);
            if take == 0 {
                break;
            }
        }
        assert_eq!(got, total_body);
    });
    group.finish();
}

/// A TCP proxy on 127.0.0.1 that delays every byte by `one_way` in each
/// direction: a round trip of twice that, like a distant server.
fn latency_proxy(target: SocketAddr, one_way: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(target) else {
                continue;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            for (from, to) in [
                (client.try_clone(), server.try_clone()),
                (server.try_clone(), client.try_clone()),
            ] {
                let (Ok(mut from), Ok(mut to)) = (from, to) else {
                    continue;
                };
                let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
                thread::spawn(move || {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n) = from.read(&mut buf) {
                        if n == 0
                            || tx
                                .send((Instant::now() + one_way, buf[..n].to_vec()))
                                .is_err()
                        {
                            break;
                        }
                    }
                });
                thread::spawn(move || {
                    for (due, bytes) in rx {
                        if let Some(wait) = due.checked_duration_since(Instant::now()) {
                            thread::sleep(wait);
                        }
                        if to.write_all(&bytes).is_err() {
                            break;
                        }
                    }
                    let _ = to.shutdown(std::net::Shutdown::Write);
                });
            }
        }
    });
    addr
}

fn e2e_benches(c: &mut Criterion) {
    let messages: Vec<ServerMessage> = (0..500)
        .map(|i| ServerMessage {
            uid: format!("m{i}"),
            content: mail_corpus(2048, 5000 + i),
        })
        .collect();
    let bytes: usize = messages.iter().map(|m| m.content.len()).sum();
    let msgs: Vec<MsgNum> = (1..=500).filter_map(MsgNum::new).collect();
    let mut group = c.benchmark_group("loopback");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(1));
    let cases: [(&'static str, bool, u64); 4] = [
        ("fetch500_pipelined_rtt0", true, 0),
        ("fetch500_sequential_rtt0", false, 0),
        ("fetch500_pipelined_rtt10ms", true, 10),
        ("fetch500_sequential_rtt10ms", false, 10),
    ];
    for (name, pipelining, rtt_ms) in cases {
        let options = ServerOptions {
            pipelining,
            ..ServerOptions::default()
        };
        let server = TestServer::start(TestServerConfig {
            options,
            messages: messages.clone(),
            ..TestServerConfig::default()
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let addr = if rtt_ms == 0 {
            server.addr()
        } else {
            latency_proxy(server.addr(), Duration::from_millis(rtt_ms / 2))
        };
        let mut config = ClientConfig::new("127.0.0.1");
        config.port = Some(addr.port());
        config.security = Security::Plain;
        config.allow_plaintext_auth = true;
        config.timeouts = Timeouts::all(Duration::from_secs(60));
        let mut client = Client::connect(&config, &Credentials::new("user", "password"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(client.capabilities().pipelining(), pipelining);
        bench(&mut group, name, || {
            let fetched = client
                .retr_many_vec(&msgs)
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(fetched.len(), 500);
        });
        let _ = client.quit();
    }
    group.finish();
}

fn ratio(best: &BTreeMap<&str, f64>, name: &str, baseline: &str, subject: &str) {
    if let (Some(b), Some(s)) = (best.get(baseline), best.get(subject)) {
        // Same bytes, so a speed ratio is the inverse ratio of times.
        println!("RATIO {name} {:.3}", b / s);
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    decode_benches(&mut c);
    listing_benches(&mut c);
    session_benches(&mut c);
    e2e_benches(&mut c);
    c.final_summary();
    let best = BEST.lock().unwrap_or_else(PoisonError::into_inner).clone();
    for (name, secs) in &best {
        println!("BEST {name} {:.6} ms", secs * 1000.0);
    }
    ratio(&best, "decode_vs_memcpy", "memcpy", "decode_into");
    ratio(
        &best,
        "decode_borrowed_vs_memcpy",
        "memcpy",
        "decode_borrowed",
    );
    ratio(&best, "decode_vs_memchr", "memchr_lines", "decode_into");
    ratio(&best, "uidl_vs_memchr", "uidl_memchr_lines", "uidl_100k");
    ratio(&best, "list_vs_memchr", "list_memchr_lines", "list_100k");
    ratio(
        &best,
        "status_vs_memchr",
        "status_memchr_lines",
        "stat_replies_100k",
    );
    ratio(
        &best,
        "session_vs_decode",
        "decode_2000x20k",
        "session_fetch_2000x20k",
    );
    ratio(
        &best,
        "pipelining_speedup_0ms",
        "fetch500_sequential_rtt0",
        "fetch500_pipelined_rtt0",
    );
    ratio(
        &best,
        "pipelining_speedup_10ms",
        "fetch500_sequential_rtt10ms",
        "fetch500_pipelined_rtt10ms",
    );
}
