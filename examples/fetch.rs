//! `fetch`: downloads a mailbox into a Maildir.
//!
//! ```text
//! cargo run --release --example fetch -- --host H [--port P] [--security tls|starttls|plain]
//!     --user U (--password-env VAR | --password-file F
//!       | --oauth2-token-url URL --oauth2-client-id ID [--oauth2-client-secret-env VAR]
//!         [--oauth2-scope S]... --oauth2-refresh-token-file F)
//!     [--auth auto|user|apop|plain|login|cram-md5|xoauth2|oauthbearer]
//!     [--ca-file PEM] [--pin-sha256 HEX]... [--allow-plaintext-auth] [--timeout SECS]
//!     --maildir DIR [--state FILE] [--delete never|after-retrieval|after-days=N] [--max-messages N]
//!     [--max-attempts N] [--headers-only-above BYTES]
//!     [--first-sync all|from-now-on|since-days=N|last=N]
//! ```
//!
//! `--ca-file` trusts the authorities in a PEM file, and a certificate that
//! is exactly in it even if it is marked as a CA (as a bare `openssl req
//! -x509` makes it). `--pin-sha256` trusts the server's certificate by its
//! SHA-256 fingerprint (`openssl x509 -noout -fingerprint -sha256`; colons
//! optional, any case; repeatable): alone it replaces the authorities, beside
//! `--ca-file` both must hold. An untrusted certificate's error line shows
//! its subject, issuer, validity and fingerprint.
//!
//! Each message becomes one file under DIR/new (written in DIR/tmp, synced,
//! then renamed) holding exactly the bytes the server sent, unstuffed, CRLF
//! kept. Messages stay on the server unless `--delete` says otherwise. With
//! `--state FILE` only messages not yet recorded there are fetched, exactly
//! once even when a run is killed (see `pop3_client::sync`). A message that
//! fails is reported on stderr (`failed UID: REASON`) and the rest goes on;
//! after `--max-attempts` failures (3; one per run) it is quarantined: kept
//! on the server, skipped, reported as `quarantined UID: REASON`, and counted
//! in the summary line. `--headers-only-above BYTES` stores larger messages
//! headers only. `--first-sync` chooses what the first run (a new state)
//! does with the mail already there: all of it, none (from now on), what
//! is dated within N days, or the newest N; the rest is left on the server
//! untouched and never fetched. Exit status 0 on success (failed or quarantined messages
//! included); otherwise the
//! last line on stderr is `error: KIND: ...` with KIND one of connect, tls,
//! auth, auth-method, in-use, login-delay, server, protocol, timeout,
//! connection-lost, io, config, unusable, storage (the state or the Maildir
//! failed; the summary line of what was done comes first), pop-disabled,
//! oauth-required, reconsent (the OAuth2 refresh token was refused: sign in
//! again), token-endpoint.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use pop3_client::account::DeletePolicy;
use pop3_client::blocking::Client;
use pop3_client::store::MaildirSink;
use pop3_client::sync::state::{MemoryState, StateFile, StateStore};
use pop3_client::sync::{sync_blocking, FirstSync, SyncOptions};
use pop3_client::{CertPin, ClientConfig, Error, MsgNum, ProgressFn, TlsFailure, TlsRoots};
use pop3_examples::ServerArgs;

/// Download a POP3 mailbox into a Maildir (messages stay on the server).
#[derive(Debug, Parser)]
#[command(name = "fetch")]
struct Cli {
    #[command(flatten)]
    server: ServerArgs,
    /// Login method.
    #[arg(long, default_value = "auto", value_parser = ["auto", "user", "apop", "plain", "login", "cram-md5", "xoauth2", "oauthbearer"])]
    auth: String,
    /// Trust the server's certificate by its SHA-256 fingerprint (hex, colons
    /// optional; repeatable). Alone it replaces the CA; with --ca-file both must hold.
    #[arg(long, value_name = "HEX")]
    pin_sha256: Vec<String>,
    /// Maildir to deliver into (created if missing).
    #[arg(long)]
    maildir: PathBuf,
    /// Sync state file: fetch only messages not yet recorded in it, exactly
    /// once even if a run is killed (created if missing).
    #[arg(long)]
    state: Option<PathBuf>,
    /// What to do with fetched messages on the server: never,
    /// after-retrieval, or after-days=N (N days after first fetched).
    #[arg(long, default_value = "never")]
    delete: String,
    /// Fetch at most N messages in this run.
    #[arg(long)]
    max_messages: Option<usize>,
    /// Quarantine a message after it failed in N runs (default 3): it stays
    /// on the server and is skipped. Needs --state.
    #[arg(long, value_name = "N")]
    max_attempts: Option<u32>,
    /// Store messages larger than BYTES (as listed) headers only.
    #[arg(long, value_name = "BYTES")]
    headers_only_above: Option<u64>,
    /// What the first run (a new --state) does with the mail already on
    /// the server: all, from-now-on, since-days=N or last=N.
    #[arg(long, default_value = "all", value_name = "CHOICE")]
    first_sync: String,
}

fn config(cli: &Cli) -> Result<ClientConfig, Error> {
    let server = &cli.server;
    let mut config = ClientConfig::new(server.host.clone());
    config.port = server.port;
    config.security = server.security.into();
    config.auth = pop3_examples::auth_method(&cli.auth);
    if let Some(ca) = &server.ca_file {
        config.roots = TlsRoots::CaFile(ca.clone());
    } else if !cli.pin_sha256.is_empty() {
        config.roots = TlsRoots::PinsOnly;
    }
    for pin in &cli.pin_sha256 {
        config.pins.push(CertPin::certificate_sha256(pin)?);
    }
    config.allow_plaintext_auth = server.allow_plaintext_auth;
    if let Some(timeouts) = server.timeouts() {
        config.timeouts = timeouts;
    }
    Ok(config)
}

/// Progress on stderr: a line per message, or a live line on a terminal.
fn progress_printer() -> ProgressFn {
    let interactive = std::io::stderr().is_terminal();
    let mut last_shown = Instant::now();
    Box::new(move |p| {
        // A line per message, or a live line on a terminal.
        if p.done || (interactive && last_shown.elapsed() > Duration::from_millis(100)) {
            last_shown = Instant::now();
            let end = if interactive && !p.done { "\r" } else { "\n" };
            // One write per line (eprint! writes each piece on its own, a
            // dozen system calls per message).
            let line = format!(
                "fetching {}/{}: message {} {} bytes{}{end}",
                p.index + 1,
                p.count,
                p.msg,
                p.bytes,
                if p.done { " done" } else { "" }
            );
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        }
    })
}

fn open_maildir(cli: &Cli) -> Result<MaildirSink, Error> {
    MaildirSink::create(&cli.maildir).map_err(|e| {
        Error::invalid_setting(
            format!("--maildir {}", cli.maildir.display()),
            format!("cannot be used: {e}"),
        )
    })
}

fn run(cli: &Cli) -> Result<(), Error> {
    let policy = DeletePolicy::from_name(&cli.delete)?;
    if policy == DeletePolicy::WhenDeletedLocally {
        return Err(Error::invalid_setting(
            "--delete when-deleted-locally",
            "needs an application that deletes locally; fetch offers never, after-retrieval and after-days=N",
        ));
    }
    // Without a state, "N days after the first fetch" could never come and
    // a cap would fetch the same first messages every run.
    if cli.state.is_none()
        && (matches!(policy, DeletePolicy::AfterDays(_))
            || cli.max_messages.is_some()
            || cli.max_attempts.is_some())
    {
        return Err(Error::invalid_setting(
            "--delete after-days=N, --max-messages and --max-attempts",
            "need --state FILE (to remember what was fetched, and when)",
        ));
    }
    let first_sync = FirstSync::from_name(&cli.first_sync).ok_or_else(|| {
        Error::invalid_setting(
            "--first-sync",
            format!(
                "\"{}\" is not a choice: use all, from-now-on, since-days=N or last=N",
                cli.first_sync
            ),
        )
    })?;
    if first_sync != FirstSync::All && cli.state.is_none() {
        return Err(Error::invalid_setting(
            "--first-sync",
            "needs --state FILE (without it every run would be the first)",
        ));
    }
    if cli.max_attempts == Some(0) {
        return Err(Error::invalid_setting(
            "--max-attempts",
            "must be at least 1",
        ));
    }
    if cli.state.is_some()
        || policy.deletes()
        || cli.max_messages.is_some()
        || cli.headers_only_above.is_some()
    {
        return run_sync(cli, policy);
    }
    let started = Instant::now();
    let config = config(cli)?;
    let credentials = cli.server.credentials(config.auth)?;
    let mut sink = open_maildir(cli)?;
    let mut client = Client::connect(&config, &credentials)?;
    let listing = client.list()?;
    let count = listing.len();
    let total: u64 = listing.iter().map(|e| e.octets).sum();
    client.on_progress(Some(progress_printer()));
    let msgs: Vec<MsgNum> = listing.iter().map(|e| e.msg).collect();
    let outcomes = client.retr_many(&msgs, &mut sink);
    if outcomes.is_err() {
        sink.discard_partial();
    }
    let outcomes = outcomes?;
    let login_delay = client.capabilities().login_delay();
    client.quit()?;
    let fetched: u64 = outcomes.iter().filter_map(|o| o.as_ref().ok()).sum();
    let delivered = sink.delivered().len();
    println!(
        "fetched {delivered} of {count} messages ({fetched} bytes; server listed {total}) from {} into {} in {:.1} s",
        cli.server.host,
        cli.maildir.display(),
        started.elapsed().as_secs_f64()
    );
    if let Some(refused) = outcomes.into_iter().find_map(Result::err) {
        return Err(refused.to_error(login_delay));
    }
    Ok(())
}

/// `--state`, `--delete`, `--max-messages`, `--headers-only-above`: an
/// incremental sync.
fn run_sync(cli: &Cli, policy: DeletePolicy) -> Result<(), Error> {
    let started = Instant::now();
    let mut config = config(cli)?;
    // What the server advertised last run: its CAPA goes with the login.
    let profile_path = cli.state.as_deref().map(pop3_examples::server_profile_path);
    config.server_profile = profile_path
        .as_deref()
        .and_then(pop3_examples::load_server_profile);
    let options = SyncOptions {
        policy,
        max_messages: cli.max_messages,
        max_attempts: cli.max_attempts.unwrap_or(3),
        first_sync: FirstSync::from_name(&cli.first_sync).unwrap_or_default(),
        headers_only_above: cli.headers_only_above,
        ..SyncOptions::default()
    };
    // Refused before connecting: recent: mode with a deleting policy.
    pop3_client::sync::SyncRun::new(options.clone(), 0, &cli.server.user)?;
    let credentials = cli.server.credentials(config.auth)?;
    let mut sink = open_maildir(cli)?;
    let mut memory = MemoryState::new();
    let mut file;
    let store: &mut dyn StateStore = match &cli.state {
        Some(path) => {
            let key = format!(
                "{}:{}:{}",
                config.host.to_ascii_lowercase(),
                config.port(),
                cli.server.user
            );
            file = StateFile::open(path, &key).map_err(|e| {
                Error::invalid_setting(
                    format!("--state {}", path.display()),
                    format!("cannot be used: {e}"),
                )
            })?;
            &mut file
        }
        None => &mut memory,
    };
    let result = sync_blocking(
        &config,
        &credentials,
        store,
        &mut sink,
        options,
        Some(&mut progress_printer()),
    );
    // A failed sync still says what it did before the error.
    let report = match &result {
        Ok(report) => report,
        Err(failure) => &*failure.report,
    };
    if let Some(path) = &profile_path {
        pop3_examples::save_server_profile(path, report);
    }
    for failed in &report.failed {
        eprintln!(
            "failed {}: {} (attempt {}; tried again next run)",
            failed.uid, failed.reason, failed.attempts
        );
    }
    for quarantined in &report.quarantined {
        eprintln!("quarantined {}: {}", quarantined.uid, quarantined.reason);
    }
    println!(
        "fetched {} new messages ({} bytes), deleted {}, skipped {}, quarantined {}, left {}{} from {} into {} in {} session(s), {:.1} s{}",
        report.new,
        report.bytes,
        report.deleted,
        report.skipped,
        report.quarantined.len(),
        report.left,
        if report.left_out > 0 { format!(", left out by the first sync {}", report.left_out) } else { String::new() },
        cli.server.host,
        cli.maildir.display(),
        report.sessions,
        started.elapsed().as_secs_f64(),
        if report.recovered > 0 { format!("; {} interrupted deliveries recovered", report.recovered) } else { String::new() }
    );
    if !report.kept.is_empty() {
        let kept: Vec<String> = report
            .kept
            .iter()
            .map(|(reason, count)| format!("{} {count}", reason.name()))
            .collect();
        println!("kept on the server: {}", kept.join(", "));
    }
    if let Some(why) = &report.stopped_early {
        eprintln!("warning: the sync stopped early: {why}");
    }
    result?;
    Ok(())
}

fn main() -> ExitCode {
    pop3_examples::init_tracing();
    let cli: Cli = match pop3_examples::parse_cli() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Error::Tls {
                failure:
                    TlsFailure {
                        certificate: Some(cert),
                        ..
                    },
                ..
            } = &e
            {
                eprintln!(
                    "hint: if you trust this certificate (check its fingerprint with the server's administrator), run again with --pin-sha256 {}",
                    cert.fingerprint()
                );
            }
            // A security/port mismatch names the option to try.
            let hint = e
                .suggested_security()
                .map(|s| format!(" (--security {})", s.as_str()))
                .unwrap_or_default();
            pop3_examples::fail(e.kind().as_str(), format!("{e}{hint}"))
        }
    }
}
