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
