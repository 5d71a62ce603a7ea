//! `fetch`: downloads a mailbox into a Maildir.
//!
//! ```text
//! cargo run --release --example fetch -- --host H [--port P] [--security tls|starttls|plain]
//!     --user U (--password-env VAR | --password-file F)
//!     [--auth auto|user|apop|plain|login|cram-md5|xoauth2|oauthbearer]
//!     [--ca-file PEM] [--pin-sha256 HEX]... [--allow-plaintext-auth] [--timeout SECS]
//!     --maildir DIR
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
//! kept. Messages stay on the server. Exit status 0 on success; otherwise the
//! last line on stderr is `error: KIND: ...` with KIND one of connect, tls,
//! auth, in-use, login-delay, server, protocol, timeout, io, config, unusable.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use pop3_client::blocking::Client;
use pop3_client::store::MaildirSink;
use pop3_client::{
    AuthMethod, CertPin, ClientConfig, Credentials, Error, MsgNum, Security, Timeouts, TlsFailure,
    TlsRoots,
};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SecurityArg {
    Tls,
    Starttls,
    Plain,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum AuthArg {
    Auto,
    User,
    Apop,
    Plain,
    Login,
    #[value(name = "cram-md5")]
    CramMd5,
    Xoauth2,
    Oauthbearer,
}

/// Download a POP3 mailbox into a Maildir (messages stay on the server).
#[derive(Debug, Parser)]
#[command(name = "fetch")]
struct Cli {
    /// Server host name.
    #[arg(long)]
    host: String,
    /// Port (default: 995 for tls, 110 otherwise).
    #[arg(long)]
    port: Option<u16>,
    /// Connection security.
    #[arg(long, value_enum, default_value = "tls")]
    security: SecurityArg,
    /// User name.
    #[arg(long)]
    user: String,
    /// Environment variable holding the password (or OAuth token).
    #[arg(
        long,
        conflicts_with = "password_file",
        required_unless_present = "password_file"
    )]
    password_env: Option<String>,
    /// File holding the password (or OAuth token); a final newline is ignored.
    #[arg(long)]
    password_file: Option<PathBuf>,
    /// Login method.
    #[arg(long, value_enum, default_value = "auto")]
    auth: AuthArg,
    /// PEM file of the certificate authority to trust (default: Mozilla's roots).
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Trust the server's certificate by its SHA-256 fingerprint (hex, colons
    /// optional; repeatable). Alone it replaces the CA; with --ca-file both must hold.
    #[arg(long, value_name = "HEX")]
    pin_sha256: Vec<String>,
    /// Allow sending credentials without TLS.
    #[arg(long)]
    allow_plaintext_auth: bool,
    /// Limit, in seconds, for connecting, the TLS handshake and each answer.
    #[arg(long)]
    timeout: Option<u64>,
    /// Maildir to deliver into (created if missing).
    #[arg(long)]
    maildir: PathBuf,
}

fn password(cli: &Cli) -> Result<String, Error> {
    if let Some(var) = &cli.password_env {
        return std::env::var(var).map_err(|_| {
            Error::Config(format!(
                "the environment variable {var} is not set (or not UTF-8)"
            ))
        });
    }
    let path = cli
        .password_file
        .as_ref()
        .ok_or_else(|| Error::Config("no password given".into()))?;
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::Config(format!(
            "cannot read the password file {}: {e}",
            path.display()
        ))
    })?;
    Ok(text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(&text)
        .to_owned())
}

fn config(cli: &Cli) -> Result<ClientConfig, Error> {
    let mut config = ClientConfig::new(cli.host.clone());
    config.port = cli.port;
    config.security = match cli.security {
        SecurityArg::Tls => Security::Tls,
        SecurityArg::Starttls => Security::StartTls,
        SecurityArg::Plain => Security::Plain,
    };
    config.auth = match cli.auth {
        AuthArg::Auto => AuthMethod::Auto,
        AuthArg::User => AuthMethod::User,
        AuthArg::Apop => AuthMethod::Apop,
        AuthArg::Plain => AuthMethod::Plain,
        AuthArg::Login => AuthMethod::Login,
        AuthArg::CramMd5 => AuthMethod::CramMd5,
        AuthArg::Xoauth2 => AuthMethod::XOAuth2,
        AuthArg::Oauthbearer => AuthMethod::OAuthBearer,
    };
    if let Some(ca) = &cli.ca_file {
        config.roots = TlsRoots::CaFile(ca.clone());
    } else if !cli.pin_sha256.is_empty() {
        config.roots = TlsRoots::PinsOnly;
    }
    for pin in &cli.pin_sha256 {
        config.pins.push(CertPin::certificate_sha256(pin)?);
    }
    config.allow_plaintext_auth = cli.allow_plaintext_auth;
    if let Some(secs) = cli.timeout {
        config.timeouts = Timeouts::all(Duration::from_secs(secs.max(1)));
    }
    Ok(config)
}

fn run(cli: &Cli) -> Result<(), Error> {
    let started = Instant::now();
    let config = config(cli)?;
    let credentials = Credentials::new(cli.user.clone(), password(cli)?);
    let mut sink = MaildirSink::create(&cli.maildir).map_err(|e| {
        Error::Config(format!(
            "cannot use the Maildir {}: {e}",
            cli.maildir.display()
        ))
    })?;
    let mut client = Client::connect(&config, &credentials)?;
    let listing = client.list()?;
    let count = listing.len();
    let total: u64 = listing.iter().map(|e| e.octets).sum();
    let interactive = std::io::stderr().is_terminal();
    let mut last_shown = Instant::now();
    client.on_progress(Some(Box::new(move |p| {
        // A line per message, or a live line on a terminal.
        if p.done || (interactive && last_shown.elapsed() > Duration::from_millis(100)) {
            last_shown = Instant::now();
            let end = if interactive && !p.done { "\r" } else { "\n" };
            eprint!(
                "fetching {}/{}: message {} {} bytes{}{end}",
                p.index + 1,
                p.count,
                p.msg,
                p.bytes,
                if p.done { " done" } else { "" }
            );
            let _ = std::io::stderr().flush();
        }
    })));
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
        cli.host,
        cli.maildir.display(),
        started.elapsed().as_secs_f64()
    );
    if let Some(refused) = outcomes.into_iter().find_map(Result::err) {
        return Err(refused.to_error(login_delay));
    }
    Ok(())
}

fn main() -> ExitCode {
    pop3_examples::init_tracing();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let _ = e.print();
            eprintln!("error: config: invalid command line (see above)");
            return ExitCode::from(2);
        }
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
            eprintln!("error: {}: {e}", e.kind().as_str());
            ExitCode::FAILURE
        }
    }
}
