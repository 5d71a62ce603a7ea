//! Helpers shared by the example programs.

/// Sends the library's tracing to stderr when `RUST_LOG` is set
/// (`RUST_LOG=pop3_client=debug` shows every command and reply, with
/// credentials redacted).
pub fn init_tracing() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
}

/// Reads a password (or OAuth token) from the environment variable `env`, or
/// else from the file `file` (a final newline is ignored). The `fetch` and
/// `send` programs share it.
pub fn read_password(
    env: Option<&str>,
    file: Option<&std::path::Path>,
) -> Result<String, pop3_client::Error> {
    use pop3_client::Error;
    if let Some(var) = env {
        return std::env::var(var).map_err(|_| {
            Error::Config(format!(
                "the environment variable {var} is not set (or not UTF-8)"
            ))
        });
    }
    let path = file.ok_or_else(|| Error::Config("no password given".into()))?;
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
