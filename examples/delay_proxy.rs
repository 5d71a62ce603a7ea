//! `delay-proxy`: a TCP proxy on 127.0.0.1 that holds what the server sends
//! for a while, to measure a client at a distance from its server (and
//! count its round trips from outside).
//!
//! ```text
//! delay-proxy --target HOST:PORT --delay-ms N [--port P] [--ttl SECS]
//! ```
//!
//! Listens on 127.0.0.1:P (0: any free port; the line `listening: ADDR`
//! says which), forwards each connection to the target, and delays every
//! chunk the server sends by N ms: one round trip costs N ms more. When a
//! connection's client is done it prints `waits: K` (the client's round
//! trips on it, connect included). It exits after `--ttl` seconds (default
//! 3600).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use pop3_client::testing::proxy::DelayingProxy;

/// A delaying TCP proxy on 127.0.0.1.
#[derive(Debug, Parser)]
#[command(name = "delay-proxy")]
struct Cli {
    /// Where to forward connections.
    #[arg(long)]
    target: std::net::SocketAddr,
    /// Delay, in milliseconds, of each chunk the server sends.
    #[arg(long)]
    delay_ms: u64,
    /// Port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Exit after this many seconds.
    #[arg(long, default_value_t = 3600)]
    ttl: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let proxy =
        match DelayingProxy::start_on(cli.port, cli.target, Duration::from_millis(cli.delay_ms)) {
            Ok(proxy) => proxy,
            Err(e) => {
                eprintln!("delay-proxy: cannot listen on 127.0.0.1:{}: {e}", cli.port);
                return ExitCode::FAILURE;
            }
        };
    println!("listening: {}", proxy.addr());
    let end = Instant::now() + Duration::from_secs(cli.ttl);
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(200));
        for waits in proxy.take_finished_waits() {
            println!("waits: {waits}");
        }
    }
    ExitCode::SUCCESS
}
