//! `poller`: keeps every owner's active mailbox of a settings folder
//! flowing (the folder `account` writes).
//!
//! ```text
//! poller --config DIR [--interval SECS] [--concurrency N] [--per-host N] [--timeout SECS] [--once]
//! ```
//!
//! Each owner's active account is synced into `DIR/NAME/Maildir`, its
//! state in `DIR/NAME.state`, every `--interval` seconds (default 300),
//! at most `--concurrency` (16) at once and `--per-host` (2) per server.
//! A transient failure is retried after a backoff with jitter; a wrong
//! password, a certificate, a setting or a sign-in to renew pauses that
//! mailbox alone (its line says why) until the poller starts again. One
//! line per sync: `NAME: N new, D deleted` or `error: KIND: NAME: ...`.
//! SIGTERM or Ctrl-C ends it: the syncs in flight end after their group,
//! with QUIT. `--once` polls every active mailbox once and exits: 0 when
//! all succeeded, 1 otherwise, the last line `polled N mailboxes: NEW new,
//! DELETED deleted, FAILED failed`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use pop3_client::poller::{MaildirMailbox, Poller, PollerConfig};
use pop3_client::sync::SyncReport;
use pop3_client::{Error, Timeouts};
use pop3_examples::settings::{attach_tokens, load, saved_tokens};

/// Keep every owner's active mailbox flowing.
#[derive(Debug, Parser)]
#[command(name = "poller")]
struct Cli {
    /// The settings folder (as `account --config DIR` writes it).
    #[arg(long)]
    config: PathBuf,
    /// Seconds between two polls of a mailbox that worked.
    #[arg(long, default_value_t = 300)]
    interval: u64,
    /// Syncs at once, over all mailboxes.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Syncs at once per server.
    #[arg(long, default_value_t = 2)]
    per_host: usize,
    /// Limit, in seconds, for connecting and each answer.
    #[arg(long)]
    timeout: Option<u64>,
    /// Poll every active mailbox once, then exit.
    #[arg(long)]
    once: bool,
}

/// One line for a sync that ended; whether it worked.
fn report(name: &str, outcome: &Result<SyncReport, Error>) -> bool {
    match outcome {
        Ok(report) => {
            println!("{name}: {} new, {} deleted", report.new, report.deleted);
            true
        }
        Err(e) => {
            eprintln!("error: {}: {name}: {e}", e.kind());
            false
        }
    }
}

fn run(cli: &Cli) -> Result<bool, Error> {
    let settings = load(&cli.config)?;
    let mut config = PollerConfig::default();
    config.interval = Duration::from_secs(cli.interval.max(1));
    config.concurrency = cli.concurrency.max(1);
    config.per_host = cli.per_host.max(1);
    let mut poller = Poller::new(config);
    let active = settings.active_accounts();
    let count = active.len();
    for account in active {
        let mut account = account.clone();
        let tokens = saved_tokens(&cli.config, &account.name);
        attach_tokens(&mut account, tokens, None)?;
        poller.add(Arc::new(MaildirMailbox {
            state: cli.config.join(format!("{}.state", account.name)),
            maildir: cli.config.join(&account.name).join("Maildir"),
            options: Default::default(),
            timeouts: cli
                .timeout
                .map(|secs| Timeouts::all(Duration::from_secs(secs.max(1)))),
            account,
        }));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Error::Io)?;
    if cli.once {
        let outcomes = runtime.block_on(poller.poll_due());
        let (mut new, mut deleted, mut failed) = (0, 0, 0);
        for (name, outcome) in &outcomes {
            if report(name, outcome) {
                let r = outcome
                    .as_ref()
                    .map(|r| (r.new, r.deleted))
                    .unwrap_or_default();
                new += r.0;
                deleted += r.1;
            } else {
                failed += 1;
            }
        }
        println!("polled {count} mailboxes: {new} new, {deleted} deleted, {failed} failed");
        return Ok(failed == 0);
    }
    runtime.block_on(poller.run_with(shutdown(), |name, outcome| {
        report(name, outcome);
    }));
    Ok(true)
}

/// SIGTERM or Ctrl-C.
async fn shutdown() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn main() -> ExitCode {
    pop3_examples::init_tracing();
    let cli: Cli = match pop3_examples::parse_cli() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    match run(&cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => pop3_examples::fail(e.kind().as_str(), e),
    }
}
