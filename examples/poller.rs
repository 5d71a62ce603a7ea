//! `poller`: keeps every owner's active mailbox flowing, from a settings
//! folder or a database (as `account` writes them).
//!
//! ```text
//! poller --config DIR [--interval SECS] [--concurrency N] [--per-host N] [--timeout SECS] [--once]
//! poller --db URL [--interval SECS] [--concurrency N] [--per-host N] [--timeout SECS]
//!        [--lease-secs N] [--worker-id ID] [--once]
//! ```
//!
//! With `--db` (`sqlite:PATH` or `postgres://...`, secrets opened with
//! the key in `POP3_DB_KEY`) the mail, the sync state, the schedule and
//! each mailbox's health live in the database, and any number of `poller`
//! processes, on any number of machines, share the work: each claims a due
//! mailbox with its lease (`--lease-secs`, default 60; renewed while the
//! sync runs), so no two sync one mailbox at once, and a worker that died
//! leaves its mailboxes to the others once its leases expire. `--once`
//! then polls every active mailbox once, waiting (up to twice the lease)
//! for the leases of dead workers to expire. `account --db URL health`
//! shows each mailbox's health.
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
use pop3_client::sql::{DbPoller, DbPollerConfig};
use pop3_client::sync::SyncReport;
use pop3_client::{Error, Timeouts};
use pop3_examples::database::{io_error, Database, Place};
use pop3_examples::settings::{attach_tokens, config_error, load, saved_tokens};

/// Keep every owner's active mailbox flowing.
#[derive(Debug, Parser)]
#[command(name = "poller")]
struct Cli {
    /// The settings folder (as `account --config DIR` writes it).
    #[arg(long, required_unless_present = "db", conflicts_with = "db")]
    config: Option<PathBuf>,
    /// The database (as `account --db URL` writes it): sqlite:PATH or
    /// postgres://USER@HOST:PORT/DB, its password from PGPASSWORD or
    /// ~/.pgpass (in the URL, `ps` would show it).
    #[arg(long)]
    db: Option<String>,
    /// With --db: seconds a worker's lease on a mailbox lasts (renewed
    /// while it syncs); a dead worker's mailboxes wait this long.
    #[arg(long, default_value_t = 60)]
    lease_secs: u64,
    /// With --db: this worker's name (default: host name and process id).
    #[arg(long)]
    worker_id: Option<String>,
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

/// The pacing the command line asks for.
fn pacing(cli: &Cli) -> PollerConfig {
    let mut config = PollerConfig::default();
    config.interval = Duration::from_secs(cli.interval.max(1));
    config.concurrency = cli.concurrency.max(1);
    config.per_host = cli.per_host.max(1);
    config
}

/// Adds a poll's outcome to the totals.
fn tally(totals: &mut (usize, usize, usize), name: &str, outcome: &Result<SyncReport, Error>) {
    if report(name, outcome) {
        if let Ok(r) = outcome {
            totals.0 += r.new;
            totals.1 += r.deleted;
        }
    } else {
        totals.2 += 1;
    }
}

/// `--db URL`: a worker over the database.
fn run_db(cli: &Cli, url: &str) -> Result<bool, Error> {
    // Connections: a sync holds one only for each statement, so a few
    // dozen serve a thousand syncs in flight (each SQLite connection has a
    // page cache of its own; a PostgreSQL one is a server process).
    let connections = u32::try_from(cli.concurrency.max(1))
        .unwrap_or(u32::MAX)
        .saturating_add(4)
        .min(32);
    let place = Place::Db(Database::open(url, connections)?);
    let Place::Db(db) = &place else {
        return Ok(false);
    };
    db.key()?;
    let worker = cli
        .worker_id
        .clone()
        .unwrap_or_else(|| format!("{}-{}", host_name(), std::process::id()));
    let mut config = DbPollerConfig::new(worker);
    config.lease = Duration::from_secs(cli.lease_secs.max(1));
    config.pacing = pacing(cli);
    config.timeouts = cli
        .timeout
        .map(|secs| Timeouts::all(Duration::from_secs(secs.max(1))));
    let lease = config.lease;
    let poller = Arc::new(
        DbPoller::new(db.store.clone(), db.key.clone(), config)
            .with_prepare(place.prepare_tokens()),
    );
    if cli.once {
        let outcomes = db
            .runtime
            .block_on(poller.poll_once(lease.saturating_mul(2)))
            .map_err(io_error)?;
        let mut totals = (0, 0, 0);
        for polled in &outcomes {
            tally(&mut totals, &polled.name, &polled.outcome);
        }
        let (new, deleted, failed) = totals;
        println!(
            "polled {} mailboxes: {new} new, {deleted} deleted, {failed} failed",
            outcomes.len()
        );
        return Ok(failed == 0);
    }
    db.runtime
        .block_on(poller.run(shutdown(), |polled| {
            report(&polled.name, &polled.outcome);
        }))
        .map_err(io_error)?;
    Ok(true)
}

/// This machine's name, for a worker's default name.
fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".to_owned())
}

fn run(cli: &Cli) -> Result<bool, Error> {
    let dir = match (&cli.config, &cli.db) {
        (_, Some(url)) => return run_db(cli, url),
        (Some(dir), None) => dir,
        (None, None) => return Err(config_error("give --config DIR or --db URL")),
    };
    let settings = load(dir)?;
    let config = pacing(cli);
    let mut poller = Poller::new(config);
    let active = settings.active_accounts();
    let count = active.len();
    for account in active {
        let mut account = account.clone();
        let tokens = saved_tokens(dir, &account);
        attach_tokens(&mut account, tokens, None)?;
        poller.add(Arc::new(MaildirMailbox {
            state: dir.join(format!("{}.state", account.name)),
            maildir: dir.join(&account.name).join("Maildir"),
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
        let mut totals = (0, 0, 0);
        for (name, outcome) in &outcomes {
            tally(&mut totals, name, outcome);
        }
        let (new, deleted, failed) = totals;
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
