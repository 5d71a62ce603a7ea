//! `web`: the CRM's "Configurar o POP3" screens as a web application, on
//! the library's parts: accounts verified step by step, one active per
//! owner, the database stores and the poller, the inbox linked to
//! contacts and leads, and sending through the active mailbox.
//!
//! ```text
//! web [--listen ADDR:PORT] [--db URL] [--ca-file PEM] [--poll-interval SECS] [--demo]
//!     [--oauth google=CLIENT_ID] [--oauth microsoft=CLIENT_ID] [--oauth-custom AUTH_URL,TOKEN_URL,CLIENT_ID]
//! ```
//!
//! `--listen` defaults to 127.0.0.1:8080 (port 0 picks a free one); `--db`
//! to `sqlite:web.db` (or `postgres://...`); the mailboxes' secrets are
//! sealed with the key in `POP3_DB_KEY` (`--demo` makes one up).
//! `--ca-file` adds an authority trusted for every mailbox (a company's own
//! server), tried when the public ones do not know a server's certificate.
//! At start it prints `url: http://ADDR:PORT/`, and with `--demo` one line
//! `user: LOGIN PASSWORD` per demo user and one line `mailbox: EMAIL
//! HOST:PORT USER PASSWORD` per demo mailbox: `--demo` runs in-process
//! POP3 and SMTP servers (TLS) with sample mail, a fresh database with two
//! CRM users and a few contacts and leads, and trusts the demo servers'
//! certificate. Ctrl-C stops it.

mod app;
mod data;
mod demo;
mod i18n;
mod oauth;
mod send;
mod views;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use pop3_client::poller::PollerConfig;
use pop3_client::sql::{DbKey, DbPoller, DbPollerConfig, SqlStore, DB_KEY_ENV};

/// The CRM's POP3 screens as a web application.
#[derive(Debug, Parser)]
#[command(name = "web")]
struct Cli {
    /// Where to listen (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
    /// The database: sqlite:PATH or postgres://USER@HOST:PORT/DB with its
    /// password in PGPASSWORD or ~/.pgpass (default sqlite:web.db; with
    /// --demo a fresh one).
    #[arg(long)]
    db: Option<String>,
    /// A PEM file of an authority trusted for every mailbox.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Seconds between two polls of a mailbox.
    #[arg(long, default_value_t = 60)]
    poll_interval: u64,
    /// Demo servers, users and data; no outside server needed.
    #[arg(long)]
    demo: bool,
    /// Offer "Sign in with" a provider: google=CLIENT_ID or
    /// microsoft=CLIENT_ID (the client secret, if any, in
    /// POP3_WEB_GOOGLE_CLIENT_SECRET or POP3_WEB_MICROSOFT_CLIENT_SECRET);
    /// the redirect URI to register is http://ADDR:PORT/oauth/callback.
    #[arg(long = "oauth", value_name = "NAME=CLIENT_ID")]
    oauth: Vec<String>,
    /// Offer "Sign in with" a company's own provider: AUTH_URL,TOKEN_URL,CLIENT_ID.
    #[arg(long = "oauth-custom", value_name = "AUTH_URL,TOKEN_URL,CLIENT_ID")]
    oauth_custom: Option<String>,
}

async fn run(cli: Cli) -> Result<(), String> {
    let demo_dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let url = match (&cli.db, cli.demo) {
        (Some(url), _) => url.clone(),
        (None, true) => format!("sqlite:{}", demo_dir.path().join("web.db").display()),
        (None, false) => "sqlite:web.db".to_owned(),
    };
    let key = match DbKey::from_env().map_err(|e| e.to_string())? {
        Some(key) => key,
        None if cli.demo => {
            // A demo's database lives as long as the demo: a key of its own.
            let mut bytes = [0u8; 32];
            getrandom::getrandom(&mut bytes).map_err(|e| e.to_string())?;
            use base64::Engine as _;
            DbKey::from_base64(&base64::engine::general_purpose::STANDARD.encode(bytes))
                .map_err(|e| e.to_string())?
        }
        None => {
            return Err(format!(
                "config: {DB_KEY_ENV}: set it to 32 random bytes in base64 (`openssl rand -base64 32`): it seals the mailboxes' passwords in the database"
            ))
        }
    };
    let store = SqlStore::connect_with(&url, 16)
        .await
        .map_err(|e| format!("storage: {e}"))?;
    let crm = data::Crm::open(store.pool().clone())
        .await
        .map_err(|e| format!("storage: {e}"))?;
    let demo = if cli.demo {
        Some(demo::start(&crm).await.map_err(|e| format!("demo: {e}"))?)
    } else {
        None
    };
    // The demo servers' certificate beside the caller's authority.
    let ca_file = match (&cli.ca_file, &demo) {
        (Some(ca), Some(demo)) => {
            let mut pem = std::fs::read(ca).map_err(|e| format!("config: --ca-file: {e}"))?;
            pem.extend(std::fs::read(&demo.ca_file).map_err(|e| e.to_string())?);
            let both = demo_dir.path().join("ca.pem");
            std::fs::write(&both, pem).map_err(|e| e.to_string())?;
            Some(both)
        }
        (Some(ca), None) => Some(ca.clone()),
        (None, Some(demo)) => Some(demo.ca_file.clone()),
        (None, None) => None,
    };
    let mut providers = Vec::new();
    for arg in &cli.oauth {
        providers.push(oauth::Provider::from_arg(arg).map_err(|e| format!("config: {e}"))?);
    }
    if let Some(arg) = &cli.oauth_custom {
        providers.push(oauth::Provider::custom(arg).map_err(|e| format!("config: {e}"))?);
    }
    let listener = tokio::net::TcpListener::bind(cli.listen)
        .await
        .map_err(|e| format!("config: --listen {}: {e}", cli.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let app = Arc::new(app::App {
        store: store.clone(),
        key: key.clone(),
        crm,
        ca_file,
        base_url: format!("http://{addr}"),
        providers,
        sign_ins: oauth::SignIns::default(),
    });
    println!("url: http://{addr}/");
    if let Some(demo) = &demo {
        for (login, password) in &demo.users {
            println!("user: {login} {password}");
        }
        for (email, user, password, server) in &demo.mailboxes {
            println!("mailbox: {email} {} {user} {password}", server.addr());
        }
        println!("smtp: {}", demo.smtp.addr());
    }
    // The poller: every active mailbox on its interval, in this process.
    let mut config = DbPollerConfig::new(format!("web-{}", std::process::id()));
    config.pacing = {
        let mut pacing = PollerConfig::default();
        pacing.interval = Duration::from_secs(cli.poll_interval.max(1));
        pacing.backoff = Duration::from_secs(cli.poll_interval.clamp(1, 30));
        pacing
    };
    // OAuth2 accounts get a token source; rotated tokens go back, sealed.
    let prepare = pop3_examples::database::prepare_tokens(
        &store,
        Some(key.clone()),
        tokio::runtime::Handle::current(),
    );
    let poller = Arc::new(DbPoller::new(store, Some(key), config).with_prepare(prepare));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let polling = tokio::spawn(async move {
        let _ = poller
            .run(
                async {
                    let _ = stop_rx.await;
                },
                |polled| {
                    if let Err(e) = &polled.outcome {
                        eprintln!("error: {}: {}: {e}", e.kind(), polled.name);
                    }
                },
            )
            .await;
    });
    axum::serve(listener, app::router(app))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| e.to_string())?;
    let _ = stop_tx.send(());
    let _ = polling.await;
    drop(demo);
    Ok(())
}

fn main() -> ExitCode {
    pop3_examples::init_tracing();
    let cli: Cli = match pop3_examples::parse_cli() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return pop3_examples::fail("io", e),
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => match e.split_once(": ") {
            Some((kind, text)) if !kind.contains(' ') => pop3_examples::fail(kind, text),
            _ => pop3_examples::fail("io", e),
        },
    }
}
