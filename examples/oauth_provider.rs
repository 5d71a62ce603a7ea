//! `oauth-provider`: the library's fake OAuth2 provider as a process of its
//! own, on 127.0.0.1, for a real mail server to check tokens with and for
//! trying the sign-in flows without an account at Google or Microsoft.
//!
//! ```text
//! oauth-provider --key-file F --user NAME [--port P] [--expires-in SECS] [--ttl SECS]
//! ```
//!
//! It prints its endpoints (token, authorization, device, introspection)
//! one a line and serves until `--ttl` seconds have passed (default 5400).
//! Access tokens are signed for NAME with the key in F, so any provider
//! started with the same key (a test's own, in-process) issues tokens this
//! one's introspection endpoint accepts until they expire. That is how
//! `scripts/oauth.sh` runs it: Dovecot's `passdb oauth2` introspects here.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use pop3_client::testing::oauth::FakeProvider;

/// A fake OAuth2 provider on 127.0.0.1.
#[derive(Debug, Parser)]
#[command(name = "oauth-provider")]
struct Cli {
    /// Port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// File holding the key access tokens are signed with.
    #[arg(long)]
    key_file: PathBuf,
    /// The user its access tokens name.
    #[arg(long)]
    user: String,
    /// Life of an access token, in seconds.
    #[arg(long, default_value_t = 3600)]
    expires_in: u64,
    /// Exit after this many seconds.
    #[arg(long, default_value_t = 5400)]
    ttl: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let key = match std::fs::read(&cli.key_file) {
        Ok(key) if !key.trim_ascii().is_empty() => key.trim_ascii().to_vec(),
        Ok(_) => {
            eprintln!("oauth-provider: {} is empty", cli.key_file.display());
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("oauth-provider: {}: {e}", cli.key_file.display());
            return ExitCode::FAILURE;
        }
    };
    let provider = match FakeProvider::signed_on(cli.port, &key, &cli.user, cli.expires_in) {
        Ok(provider) => provider,
        Err(e) => {
            eprintln!(
                "oauth-provider: cannot listen on 127.0.0.1:{}: {e}",
                cli.port
            );
            return ExitCode::FAILURE;
        }
    };
    println!("token: {}", provider.token_url());
    println!("authorization: {}", provider.auth_url());
    println!("device: {}", provider.device_url());
    println!("introspection: {}", provider.introspection_url());
    std::thread::sleep(Duration::from_secs(cli.ttl));
    ExitCode::SUCCESS
}
