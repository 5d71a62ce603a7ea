//! Helpers shared by the example programs.

pub mod database;
pub mod settings;

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
            Error::invalid_setting(
                format!("the environment variable {var}"),
                "is not set (or not UTF-8)",
            )
        });
    }
    let path = file.ok_or_else(|| Error::invalid_setting("password", "none was given"))?;
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::invalid_setting(
            format!("the password file {}", path.display()),
            format!("cannot be read: {e}"),
        )
    })?;
    Ok(text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(&text)
        .to_owned())
}

/// `--security tls|starttls|plain`, as every program spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SecurityArg {
    /// TLS from the first byte.
    Tls,
    /// Plaintext, then STLS/STARTTLS (required).
    Starttls,
    /// No TLS.
    Plain,
}

impl From<SecurityArg> for pop3_client::Security {
    fn from(s: SecurityArg) -> Self {
        match s {
            SecurityArg::Tls => Self::Tls,
            SecurityArg::Starttls => Self::StartTls,
            SecurityArg::Plain => Self::Plain,
        }
    }
}

/// Parses the command line. `--help` and `--version` print and end the
/// program with success; a bad line prints clap's message and a last line
/// `error: config: ...`, and ends with status 2.
pub fn parse_cli<T: clap::Parser>() -> Result<T, std::process::ExitCode> {
    match T::try_parse() {
        Ok(cli) => Ok(cli),
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            Err(std::process::ExitCode::SUCCESS)
        }
        Err(e) => {
            let _ = e.print();
            eprintln!("error: config: invalid command line (see above)");
            Err(std::process::ExitCode::from(2))
        }
    }
}

/// Prints the last stderr line `error: KIND: message` and gives the exit
/// status: 2 for a config error (the settings or the command line), 1
/// otherwise.
pub fn fail(kind: &str, message: impl std::fmt::Display) -> std::process::ExitCode {
    eprintln!("error: {kind}: {message}");
    if kind == "config" {
        std::process::ExitCode::from(2)
    } else {
        std::process::ExitCode::FAILURE
    }
}

/// For the tests of the programs: the path of example `name` as `cargo
/// test` builds it (beside the test binary's `deps/`). `cargo test` on the
/// workspace builds the examples; `cargo test --test X` alone does not, so
/// a missing binary is an error that says so.
pub fn example_binary(name: &str) -> Result<std::path::PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .ok_or("the test binary has no parent folder")?;
    let path = dir.join("examples").join(name);
    if path.exists() {
        Ok(path)
    } else {
        Err(format!(
            "{} is missing: run `cargo build --examples` (cargo test on the workspace builds it)",
            path.display()
        ))
    }
}

/// For the tests of the programs: the last line a program wrote to stderr
/// (where the `error: KIND: ...` line stands).
pub fn last_stderr_line(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .last()
        .unwrap_or("")
        .to_owned()
}

/// The server and login options `fetch` and `send` share, spelled the
/// same in both.
#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// Server host name.
    #[arg(long)]
    pub host: String,
    /// Port (default: the usual one for the protocol and the security:
    /// POP3 995 for tls, 110 otherwise; SMTP 465 for tls, 587 otherwise).
    #[arg(long)]
    pub port: Option<u16>,
    /// Connection security.
    #[arg(long, value_enum, default_value = "tls")]
    pub security: SecurityArg,
    /// User name.
    #[arg(long)]
    pub user: String,
    /// Environment variable holding the password (or OAuth token).
    #[arg(
        long,
        conflicts_with_all = ["password_file", "oauth2_token_url"],
        required_unless_present_any = ["password_file", "oauth2_token_url"]
    )]
    pub password_env: Option<String>,
    /// File holding the password (or OAuth token); a final newline is ignored.
    #[arg(long, conflicts_with = "oauth2_token_url")]
    pub password_file: Option<std::path::PathBuf>,
    /// OAuth2: the provider's token endpoint; an access token is refreshed
    /// from it at each login (with --auth xoauth2 or oauthbearer).
    #[arg(
        long,
        value_name = "URL",
        requires_all = ["oauth2_client_id", "oauth2_refresh_token_file"]
    )]
    pub oauth2_token_url: Option<String>,
    /// OAuth2: the application's client id.
    #[arg(long, value_name = "ID", requires = "oauth2_token_url")]
    pub oauth2_client_id: Option<String>,
    /// OAuth2: environment variable holding the client secret, if the
    /// application has one.
    #[arg(long, value_name = "VAR", requires = "oauth2_token_url")]
    pub oauth2_client_secret_env: Option<String>,
    /// OAuth2: a scope to ask for at each refresh (repeatable).
    #[arg(long, value_name = "S", requires = "oauth2_token_url")]
    pub oauth2_scope: Vec<String>,
    /// OAuth2: file holding the refresh token (mode 0600); rewritten
    /// atomically when the provider rotates it, before the new access
    /// token is used.
    #[arg(long, value_name = "F", requires = "oauth2_token_url")]
    pub oauth2_refresh_token_file: Option<std::path::PathBuf>,
    /// PEM file of the certificate authority to trust (default: Mozilla's roots).
    #[arg(long)]
    pub ca_file: Option<std::path::PathBuf>,
    /// Allow sending a password without TLS (USER/PASS, PLAIN, LOGIN,
    /// XOAUTH2, OAUTHBEARER). Not needed for --auth apop (POP3) or
    /// cram-md5, which are used over plaintext without it since they send
    /// only a digest, not the password (a weak MD5 digest: anyone on the
    /// path can try to guess the password from it offline).
    #[arg(long)]
    pub allow_plaintext_auth: bool,
    /// Limit, in seconds, for connecting, the TLS handshake and each answer.
    #[arg(long)]
    pub timeout: Option<u64>,
}

impl ServerArgs {
    /// The password, from the environment or the file.
    pub fn password(&self) -> Result<String, pop3_client::Error> {
        read_password(self.password_env.as_deref(), self.password_file.as_deref())
    }

    /// Who to log in as: the password, or with `--oauth2-token-url` a
    /// token source refreshing from the provider (which needs `auth` to
    /// be XOAUTH2 or OAUTHBEARER).
    pub fn credentials(
        &self,
        auth: pop3_client::AuthMethod,
    ) -> Result<pop3_client::Credentials, pop3_client::Error> {
        use pop3_client::oauth::{FileTokenStore, HttpTokenEndpoint, RefreshingTokenSource};
        use pop3_client::AuthMethod;
        let Some(url) = &self.oauth2_token_url else {
            return Ok(pop3_client::Credentials::new(
                self.user.clone(),
                self.password()?,
            ));
        };
        if !matches!(auth, AuthMethod::XOAuth2 | AuthMethod::OAuthBearer) {
            return Err(pop3_client::Error::invalid_setting(
                "--auth",
                "must be xoauth2 or oauthbearer with --oauth2-token-url",
            ));
        }
        let client_id = self.oauth2_client_id.clone().unwrap_or_default();
        let mut endpoint = HttpTokenEndpoint::new(url, client_id)?;
        if let Some(var) = &self.oauth2_client_secret_env {
            let secret = std::env::var(var).map_err(|_| {
                pop3_client::Error::invalid_setting(
                    "--oauth2-client-secret-env",
                    format!("the environment variable {var} is not set"),
                )
            })?;
            endpoint = endpoint.client_secret(pop3_client::Secret::new(secret));
        }
        for scope in &self.oauth2_scope {
            endpoint = endpoint.scope(scope.clone());
        }
        if let Some(secs) = self.timeout {
            endpoint = endpoint.timeout(std::time::Duration::from_secs(secs.max(1)));
        }
        let file = self.oauth2_refresh_token_file.clone().unwrap_or_default();
        let refresh = FileTokenStore::new(&file).load().map_err(|e| {
            pop3_client::Error::invalid_setting(
                "--oauth2-refresh-token-file",
                format!("{} could not be read: {e}", file.display()),
            )
        })?;
        let source = RefreshingTokenSource::new(self.user.clone(), refresh, Box::new(endpoint))
            .with_store(Box::new(FileTokenStore::new(&file)));
        Ok(pop3_client::Credentials::oauth2(
            self.user.clone(),
            std::sync::Arc::new(source),
        ))
    }

    /// `--timeout` as every limit, if given (at least one second).
    pub fn timeouts(&self) -> Option<pop3_client::Timeouts> {
        self.timeout
            .map(|secs| pop3_client::Timeouts::all(std::time::Duration::from_secs(secs.max(1))))
    }
}

/// `--auth NAME` as a login method ([`pop3_client::AuthMethod::from_name`]);
/// clap has already limited NAME to the program's choices.
pub fn auth_method(name: &str) -> pop3_client::AuthMethod {
    pop3_client::AuthMethod::from_name(name).unwrap_or(pop3_client::AuthMethod::Auto)
}

/// What the server advertised last time, kept at `path` (beside the sync
/// state) by [`save_server_profile`]: `None` if there is none yet. A
/// missing or damaged file only costs round trips.
pub fn load_server_profile(path: &std::path::Path) -> Option<pop3_client::pop3::ServerProfile> {
    let text = std::fs::read_to_string(path).ok()?;
    let profile = pop3_client::pop3::ServerProfile::from_text(&text);
    profile.is_complete().then_some(profile)
}

/// Keeps what the sync's last session saw of the server at `path`
/// (written beside and renamed over it), for the next run's
/// [`load_server_profile`]. Failing to keep it is no error.
pub fn save_server_profile(path: &std::path::Path, report: &pop3_client::sync::SyncReport) {
    let Some(profile) = &report.server_profile else {
        return;
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    if std::fs::write(&tmp, profile.to_text()).is_ok() {
        let _ = std::fs::rename(&tmp, path);
    }
}

/// Where [`save_server_profile`] keeps the profile for the state file
/// `state`: `STATE.server`.
pub fn server_profile_path(state: &std::path::Path) -> std::path::PathBuf {
    let mut path = state.as_os_str().to_owned();
    path.push(".server");
    std::path::PathBuf::from(path)
}

/// `at` as `YYYY-MM-DDTHH:MM:SSZ` (UTC), as lists print times.
pub fn utc_time(at: std::time::SystemTime) -> String {
    let secs = at
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = i64::try_from(days).unwrap_or(0) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3_600,
        rest % 3_600 / 60,
        rest % 60
    )
}
