//! `send`: sends the message on standard input over SMTP submission.
//!
//! ```text
//! cargo run --release --example send -- --host H [--port P] [--security tls|starttls|plain]
//!     --user U (--password-env VAR | --password-file F
//!       | --oauth2-token-url URL --oauth2-client-id ID [--oauth2-client-secret-env VAR]
//!         [--oauth2-scope S]... --oauth2-refresh-token-file F)
//!     [--auth auto|plain|login|cram-md5|xoauth2|oauthbearer] [--ca-file PEM]
//!     [--allow-plaintext-auth] [--timeout SECS]
//!     --from ADDR --to ADDR [--to ADDR]... [--verify-only]  < message
//! ```
//!
//! The message is streamed from stdin in bounded memory (dot-stuffed, line
//! endings made CRLF on the way). The port defaults to 465 for tls and 587
//! otherwise. On success the server's final reply is printed and the exit
//! status is 0. `--verify-only` connects, secures the connection, logs in
//! and quits without reading stdin. When the server refuses some
//! recipients and accepts others the message is sent to the others, each
//! refusal is named on its own stderr line, and the exit status is 3.
//! Otherwise the exit status is 1 (2 for a bad command line or settings)
//! and the last line on stderr is `error: KIND: ...` with KIND one of
//! connect, tls, auth, app-password, too-big, limit, recipient, server,
//! protocol, timeout, io, config.

use std::process::ExitCode;

use clap::Parser;
use pop3_client::smtp::{SmtpClient, SmtpConfig, SmtpError};
use pop3_client::TlsRoots;
use pop3_examples::ServerArgs;

/// Send the message on standard input over SMTP submission.
#[derive(Debug, Parser)]
#[command(name = "send")]
struct Cli {
    #[command(flatten)]
    server: ServerArgs,
    /// Login method.
    #[arg(long, default_value = "auto", value_parser = ["auto", "plain", "login", "cram-md5", "xoauth2", "oauthbearer"])]
    auth: String,
    /// Sender address (MAIL FROM).
    #[arg(long)]
    from: String,
    /// Recipient address (RCPT TO); repeat for more.
    #[arg(long, required = true)]
    to: Vec<String>,
    /// Log in and quit without sending anything.
    #[arg(long)]
    verify_only: bool,
}

fn config(cli: &Cli) -> SmtpConfig {
    let server = &cli.server;
    let mut config = SmtpConfig::new(server.host.clone());
    config.port = server.port;
    config.security = server.security.into();
    config.auth = pop3_examples::auth_method(&cli.auth);
    if let Some(ca) = &server.ca_file {
        config.roots = TlsRoots::CaFile(ca.clone());
    }
    config.allow_plaintext_auth = server.allow_plaintext_auth;
    if let Some(timeouts) = server.timeouts() {
        config.timeouts = timeouts;
    }
    config
}

/// What a successful run ends with.
enum Outcome {
    /// Everything as asked.
    Done,
    /// Sent, but some recipients were refused.
    SomeRefused,
}

fn run(cli: &Cli) -> Result<Outcome, SmtpError> {
    let config = config(cli);
    let credentials = cli.server.credentials(config.auth)?;
    if cli.verify_only {
        SmtpClient::verify(&config, &credentials)?;
        println!(
            "verified: logged in to {}:{} as {}",
            config.host,
            config.port(),
            cli.server.user
        );
        return Ok(Outcome::Done);
    }
    let mut client = SmtpClient::connect(&config)?;
    client.login(&credentials)?;
    let report = client.send(&cli.from, &cli.to, std::io::stdin().lock())?;
    if let Err(e) = client.quit() {
        // The message was accepted; a failed goodbye changes nothing.
        eprintln!("warning: {}: {e}", e.kind());
    }
    println!("{} {}", report.delivery.code, report.delivery.text);
    let refused: Vec<_> = report.delivery.refused().collect();
    if refused.is_empty() {
        return Ok(Outcome::Done);
    }
    for (address, why) in &refused {
        eprintln!("refused: <{address}>: {why}");
    }
    eprintln!(
        "error: recipient: {} of {} recipients refused; the message was sent to the others",
        refused.len(),
        report.delivery.recipients.len()
    );
    Ok(Outcome::SomeRefused)
}

fn main() -> ExitCode {
    pop3_examples::init_tracing();
    let cli: Cli = match pop3_examples::parse_cli() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    match run(&cli) {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::SomeRefused) => ExitCode::from(3),
        Err(e) => pop3_examples::fail(e.kind().as_str(), e),
    }
}
