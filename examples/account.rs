//! `account`: the "add a POP3 mailbox" workflow over a settings folder.
//!
//! ```text
//! account --config DIR add NAME --email ADDR [--host H] [--port P] [--security tls|starttls|plain]
//!         [--user U] (--password-env VAR | --password-file F) [--ca-file PEM] [--allow-plaintext-auth]
//!         [--delete never|after-retrieval|after-days=N|when-deleted-locally]
//!         [--outgoing same|none|separate] [--smtp-host H] [--smtp-port P] [--smtp-security tls|starttls|plain]
//!         [--smtp-user U] [--smtp-password-env VAR] [--meta KEY=VALUE]... [--owner OWNER]
//! account --config DIR add NAME --email ADDR [the server options above, without a password]
//!         --oauth2 google|microsoft|zoho|yahoo|fastmail|custom
//!         [--oauth2-tenant T] [--oauth2-region R] [--oauth2-client-id ID] [--oauth2-client-secret-env VAR]
//!         [--oauth2-token-url URL] [--oauth2-auth-url URL] [--oauth2-device-url URL] [--oauth2-scope S]...
//!         (--oauth2-refresh-token-env VAR | --oauth2-browser | --oauth2-device)
//! account --config DIR list
//! account --config DIR activate NAME
//! account --config DIR verify NAME
//! account --config DIR set-password NAME (--incoming|--outgoing) (--password-env VAR | --password-file F)
//! account --config DIR sync [NAME] [--maildir DIR]
//! account --config DIR remove NAME
//! ```
//!
//! Settings live in `DIR/accounts.json` (mode 0600: it holds passwords),
//! each account's sync state in `DIR/NAME.state`, and mail in
//! `DIR/NAME/Maildir` unless `--maildir` says otherwise. Passwords come from
//! the environment, a file or a prompt, never from the command line, and are
//! never printed. `add` verifies the login before saving anything;
//! `set-password --incoming` verifies the new password and keeps the old one
//! when it fails. On failure the last stderr line is `error: KIND: ...` as
//! in `fetch`.
//!
//! With `--oauth2` the account signs in at the provider instead of giving a
//! password: `--oauth2-browser` prints the URL to open and waits for the
//! redirect to a loopback port; `--oauth2-device` prints a URL and a code
//! to type there; `--oauth2-refresh-token-env` takes a refresh token the
//! application already has. The refresh token is kept in accounts.json,
//! replaced there (atomically) each time the provider rotates it, before
//! the new access token is used; the client secret is never kept, only the
//! name of the environment variable that holds it. Every login asks for a
//! fresh access token, and one token serves POP3 and SMTP. A refresh token
//! the provider refuses ends `error: reconsent: ...`: add the account
//! again to sign in anew.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand, ValueEnum};
use pop3_client::account::{
    Account, Credential, DeletePolicy, OAuth2Grant, Outgoing, ServerSettings,
};
use pop3_client::oauth::{OAuthProvider, SignIn, TokenResponse};
use pop3_client::smtp::SmtpError;
use pop3_client::sql::{DbPoller, DbPollerConfig};
use pop3_client::store::MaildirSink;
use pop3_client::sync::state::StateFile;
use pop3_client::sync::{sync_blocking, FirstSync, SyncOptions, SyncReport};
use pop3_client::verify::{verify_incoming, verify_outgoing, Stage, Step};
use pop3_client::Secret;
use pop3_client::{Error, Protocol, Security};
use pop3_examples::database::{io_error, Database, Place};
use pop3_examples::settings::{
    attach_tokens, config_error, token_endpoint, AccountTokens, CLIENT_SECRET_ENV, DEFAULT_OWNER,
    OWNER,
};
use pop3_examples::SecurityArg;

/// Manage POP3 mailbox accounts and sync them into Maildirs.
#[derive(Debug, Parser)]
#[command(name = "account")]
struct Cli {
    /// The settings folder (created if missing).
    #[arg(long, required_unless_present = "db", conflicts_with = "db")]
    config: Option<PathBuf>,
    /// The database instead of a folder: sqlite:PATH or
    /// postgres://USER@HOST:PORT/DB, its password from PGPASSWORD or
    /// ~/.pgpass (in the URL, `ps` would show it); secrets sealed with the
    /// key in POP3_DB_KEY.
    #[arg(long)]
    db: Option<String>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OutgoingArg {
    Same,
    None,
    Separate,
}

/// Where a password comes from (never the command line itself).
#[derive(Debug, Args)]
struct PasswordSource {
    /// Environment variable holding the password.
    #[arg(long, conflicts_with = "password_file")]
    password_env: Option<String>,
    /// File holding the password; a final newline is ignored.
    #[arg(long)]
    password_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ProviderArg {
    Google,
    Microsoft,
    Zoho,
    Yahoo,
    Fastmail,
    Custom,
}

/// Signing in with OAuth2 instead of a password.
#[derive(Debug, Args)]
struct OAuth2Args {
    /// Sign in at this provider (OAuth2) instead of giving a password.
    #[arg(long = "oauth2", value_enum, value_name = "PROVIDER", conflicts_with_all = ["password_env", "password_file"])]
    provider: Option<ProviderArg>,
    /// Microsoft: the tenant (a domain or id, or common, organizations, consumers).
    #[arg(long = "oauth2-tenant", value_name = "T", requires = "provider")]
    tenant: Option<String>,
    /// Zoho: the data centre (com, eu, in, com.au, jp, ca, sa, com.cn).
    #[arg(long = "oauth2-region", value_name = "R", requires = "provider")]
    region: Option<String>,
    /// The application's client id at the provider.
    #[arg(long = "oauth2-client-id", value_name = "ID", requires = "provider")]
    client_id: Option<String>,
    /// Environment variable holding the application's client secret, if it has one.
    #[arg(
        long = "oauth2-client-secret-env",
        value_name = "VAR",
        requires = "provider"
    )]
    client_secret_env: Option<String>,
    /// custom: the token endpoint.
    #[arg(long = "oauth2-token-url", value_name = "URL", requires = "provider")]
    token_url: Option<String>,
    /// custom: the authorization endpoint (for --oauth2-browser).
    #[arg(long = "oauth2-auth-url", value_name = "URL", requires = "provider")]
    auth_url: Option<String>,
    /// custom: the device authorization endpoint (for --oauth2-device).
    #[arg(long = "oauth2-device-url", value_name = "URL", requires = "provider")]
    device_url: Option<String>,
    /// A scope to ask for, instead of the provider's (repeatable).
    #[arg(long = "oauth2-scope", value_name = "S", requires = "provider")]
    scopes: Vec<String>,
    /// Environment variable holding a refresh token the application already has.
    #[arg(long = "oauth2-refresh-token-env", value_name = "VAR", requires = "provider", conflicts_with_all = ["browser", "device"])]
    refresh_token_env: Option<String>,
    /// Sign in in a browser: print the URL to open, wait for the redirect to 127.0.0.1.
    #[arg(
        long = "oauth2-browser",
        requires = "provider",
        conflicts_with = "device"
    )]
    browser: bool,
    /// Sign in on another device: print a URL and a code to type there.
    #[arg(long = "oauth2-device", requires = "provider")]
    device: bool,
}

/// How long a sign-in in the browser or on another device may take.
const SIGN_IN_WAIT: Duration = Duration::from_secs(600);

impl OAuth2Args {
    fn provider(&self, kind: ProviderArg) -> Result<OAuthProvider, Error> {
        Ok(match kind {
            ProviderArg::Google => OAuthProvider::Google,
            ProviderArg::Yahoo => OAuthProvider::Yahoo,
            ProviderArg::Fastmail => OAuthProvider::Fastmail,
            ProviderArg::Microsoft => {
                OAuthProvider::microsoft(self.tenant.as_deref().unwrap_or("common"))?
            }
            ProviderArg::Zoho => OAuthProvider::zoho(self.region.as_deref().unwrap_or("com"))?,
            ProviderArg::Custom => OAuthProvider::Custom {
                token_url: self
                    .token_url
                    .clone()
                    .ok_or_else(|| config_error("--oauth2 custom needs --oauth2-token-url"))?,
                auth_url: self.auth_url.clone().unwrap_or_default(),
                device_url: self.device_url.clone(),
            },
        })
    }
}

/// Signs in as `args` says; the grant and the provider's first answer
/// (none for a refresh token taken from the environment).
fn sign_in(
    args: &OAuth2Args,
    kind: ProviderArg,
    metadata: &BTreeMap<String, String>,
) -> Result<(OAuth2Grant, Option<TokenResponse>), Error> {
    let provider = args.provider(kind)?;
    let client_id = args.client_id.clone().ok_or_else(|| {
        config_error("--oauth2 needs --oauth2-client-id (the application's id at the provider)")
    })?;
    let mut grant = OAuth2Grant::new(provider.clone(), client_id, Secret::new(""));
    if !args.scopes.is_empty() {
        grant.scopes = args.scopes.clone();
    }
    let endpoint = || token_endpoint(&grant, metadata);
    let answer = if let Some(var) = &args.refresh_token_env {
        let token = std::env::var(var).map_err(|_| {
            config_error(format!(
                "--oauth2-refresh-token-env: the environment variable {var} is not set"
            ))
        })?;
        grant.refresh_token = Secret::new(token.trim());
        return Ok((grant, None));
    } else if args.browser {
        let auth_url = provider.auth_url();
        if auth_url.is_empty() {
            return Err(config_error("--oauth2-browser needs --oauth2-auth-url"));
        }
        SignIn::new(endpoint()?, &auth_url)?.loopback(
            |url| {
                println!("open this URL in a browser to sign in: {url}");
                let _ = std::io::stdout().flush();
            },
            SIGN_IN_WAIT,
        )?
    } else if args.device {
        let device_url = provider.device_url().ok_or_else(|| {
            config_error(
                "--oauth2-device: this provider has no device sign-in; use --oauth2-browser (or give --oauth2-device-url)",
            )
        })?;
        SignIn::device(
            &endpoint()?,
            &device_url,
            |url, code| {
                println!("to sign in, open {url} and enter the code {code}");
                let _ = std::io::stdout().flush();
            },
            SIGN_IN_WAIT,
        )?
    } else {
        return Err(config_error(
            "--oauth2 needs one of --oauth2-browser, --oauth2-device or --oauth2-refresh-token-env",
        ));
    };
    grant.refresh_token = answer.refresh_token.clone().ok_or_else(|| {
        config_error(
            "the provider signed in but gave no refresh token: ask for offline access (Microsoft: the offline_access scope)",
        )
    })?;
    Ok((grant, Some(answer)))
}

#[derive(Debug, Subcommand)]
// Parsed once per run: the size of the biggest variant does not matter.
#[allow(clippy::large_enum_variant)]
enum Cmd {
    /// Add an account (the login is verified before anything is saved).
    Add {
        /// The account's name.
        name: String,
        /// The e-mail address (its domain picks a provider preset).
        #[arg(long)]
        email: String,
        /// Incoming (POP3) server; needed when the domain has no preset.
        #[arg(long)]
        host: Option<String>,
        /// Incoming port (default: the preset's, or 995 for tls, 110 otherwise).
        #[arg(long)]
        port: Option<u16>,
        /// Incoming connection security.
        #[arg(long, value_enum)]
        security: Option<SecurityArg>,
        /// User name (default: the e-mail address).
        #[arg(long)]
        user: Option<String>,
        #[command(flatten)]
        password: PasswordSource,
        #[command(flatten)]
        oauth2: OAuth2Args,
        /// PEM file of the authority (or the server's own certificate) to trust.
        #[arg(long)]
        ca_file: Option<PathBuf>,
        /// Allow sending credentials without TLS (APOP and CRAM-MD5 never
        /// reveal the password and need no permission).
        #[arg(long)]
        allow_plaintext_auth: bool,
        /// What to do with fetched mail on the server.
        #[arg(long, default_value = "never")]
        delete: String,
        /// What the first sync does with the mail already on the server:
        /// all, from-now-on, since-days=N or last=N.
        #[arg(long, default_value = "all")]
        first_sync: String,
        /// Outgoing server: the incoming credentials, none, or its own.
        #[arg(long, value_enum, default_value = "same")]
        outgoing: OutgoingArg,
        /// Outgoing (SMTP) server (default: the preset's).
        #[arg(long)]
        smtp_host: Option<String>,
        /// Outgoing port (default: 465 for tls, 587 otherwise).
        #[arg(long)]
        smtp_port: Option<u16>,
        /// Outgoing connection security.
        #[arg(long, value_enum)]
        smtp_security: Option<SecurityArg>,
        /// Outgoing user (with --outgoing separate).
        #[arg(long)]
        smtp_user: Option<String>,
        /// Environment variable holding the outgoing password (with --outgoing separate).
        #[arg(long)]
        smtp_password_env: Option<String>,
        /// Application data, KEY=VALUE (repeatable).
        #[arg(long = "meta")]
        meta: Vec<String>,
        /// Whose mailbox it is (a CRM user): an owner has several, one
        /// active; the first an owner adds is the active one.
        #[arg(long)]
        owner: Option<String>,
    },
    /// List the accounts, one line each.
    List,
    /// Make NAME the active account.
    Activate {
        /// The account.
        name: String,
    },
    /// Check the incoming server step by step.
    Verify {
        /// The account.
        name: String,
    },
    /// Change a password (the incoming one is verified before it is kept).
    SetPassword {
        /// The account.
        name: String,
        /// The incoming (POP3) password.
        #[arg(
            long,
            conflicts_with = "outgoing",
            required_unless_present = "outgoing"
        )]
        incoming: bool,
        /// The outgoing (SMTP) password.
        #[arg(long)]
        outgoing: bool,
        #[command(flatten)]
        password: PasswordSource,
    },
    /// Fetch new mail of NAME (default: the active account).
    Sync {
        /// The account.
        name: Option<String>,
        /// Deliver into this Maildir instead of DIR/NAME/Maildir.
        #[arg(long)]
        maildir: Option<PathBuf>,
    },
    /// Remove an account (its mail and state stay on disk).
    Remove {
        /// The account.
        name: String,
    },
    /// (--db) The stored messages of NAME, one line each: UID SIZE SHA256.
    Messages {
        /// The account.
        name: String,
    },
    /// (--db) Each mailbox's health, one line each:
    /// NAME STATE LAST-SUCCESS LAST-ERROR NEXT.
    Health,
}

/// A failure of either side, printed as `error: KIND: ...`.
#[derive(Debug)]
enum Failure {
    Incoming(Error),
    Outgoing(SmtpError),
}

impl Failure {
    fn kind(&self) -> pop3_client::ErrorKind {
        match self {
            Self::Incoming(e) => e.kind(),
            Self::Outgoing(e) => e.kind(),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Incoming(e) => e.fmt(f),
            Self::Outgoing(e) => write!(f, "the outgoing server: {e}"),
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Self::Incoming(e)
    }
}

impl From<SmtpError> for Failure {
    fn from(e: SmtpError) -> Self {
        Self::Outgoing(e)
    }
}

impl From<pop3_client::account::AccountError> for Failure {
    fn from(e: pop3_client::account::AccountError) -> Self {
        Self::Incoming(e.into())
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Self::Incoming(e.into())
    }
}

/// The environment or a file (as in `fetch` and `send`), else a prompt
/// without echo on a terminal.
fn read_password(source: &PasswordSource, what: &str) -> Result<String, Error> {
    if source.password_env.is_some() || source.password_file.is_some() {
        return pop3_examples::read_password(
            source.password_env.as_deref(),
            source.password_file.as_deref(),
        );
    }
    if std::io::stdin().is_terminal() {
        return rpassword::prompt_password(format!("{what}: "))
            .map_err(|e| config_error(format!("cannot read the password: {e}")));
    }
    Err(config_error(
        "no password given: use --password-env VAR or --password-file F",
    ))
}

/// Verifies the incoming login (the library's steps), and says what the
/// mailbox holds: the check `add` and `set-password` make before saving.
fn verify_login(account: &Account) -> Result<String, Error> {
    let steps = verify_incoming(account).map_err(|failure| failure.error)?;
    Ok(steps
        .iter()
        .find(|s| s.stage == Stage::Mailbox)
        .map(|s| s.detail.clone())
        .unwrap_or_default())
}

/// Verifies the outgoing login (the library's steps).
fn verify_sending(account: &Account) -> Result<(), SmtpError> {
    verify_outgoing(account)
        .map(drop)
        .map_err(|failure| failure.error)
}

fn add(place: &Place, cmd: Cmd) -> Result<(), Failure> {
    let Cmd::Add {
        name,
        email,
        host,
        port,
        security,
        user,
        password,
        oauth2,
        ca_file,
        allow_plaintext_auth,
        delete,
        first_sync,
        outgoing,
        smtp_host,
        smtp_port,
        smtp_security,
        smtp_user,
        smtp_password_env,
        meta,
        owner,
    } = cmd
    else {
        return Ok(());
    };
    // The name names files in the settings folder (NAME.state, NAME/Maildir).
    if name.is_empty()
        || name.starts_with('.')
        || name.contains(['/', '\\'])
        || name.chars().any(char::is_control)
    {
        return Err(config_error(format!(
            "name: \"{}\" cannot name an account: use letters, digits and dashes (no slash, no leading dot)",
            name.escape_debug()
        ))
        .into());
    }
    if place.exists(&name)? {
        return Err(config_error(format!("an account named \"{name}\" exists already")).into());
    }
    // A database refuses secrets without its key: said before anything is
    // asked or verified.
    place.can_store_secrets()?;
    let mut metadata = BTreeMap::new();
    for item in meta {
        let (key, value) = item
            .split_once('=')
            .ok_or_else(|| config_error(format!("--meta {item}: use KEY=VALUE")))?;
        if key == OWNER {
            return Err(config_error("--meta owner=...: give the owner with --owner").into());
        }
        metadata.insert(key.to_owned(), value.to_owned());
    }
    if let Some(var) = &oauth2.client_secret_env {
        metadata.insert(CLIENT_SECRET_ENV.to_owned(), var.clone());
    }
    let owner = owner.unwrap_or_else(|| DEFAULT_OWNER.to_owned());
    if owner != DEFAULT_OWNER {
        metadata.insert(OWNER.to_owned(), owner.clone());
    }
    let (credential, first_answer) = match oauth2.provider {
        Some(kind) => {
            let (grant, answer) = sign_in(&oauth2, kind, &metadata)?;
            (Credential::OAuth2(grant), answer)
        }
        None => (
            Credential::password(read_password(&password, "incoming password")?),
            None,
        ),
    };
    let mut account = Account::for_email(&name, &email, credential)?;
    let preset_smtp = account.outgoing.clone();
    if let Some(security) = security {
        account.incoming.security = security.into();
        if port.is_none() && host.is_some() {
            account.incoming.port = Protocol::Pop3.default_port(Security::from(security));
        }
    }
    if let Some(host) = host {
        account.incoming.host = host;
    }
    if let Some(port) = port {
        account.incoming.port = port;
    } else if account.incoming.security != Security::Tls && account.incoming.port == 995 {
        account.incoming.port = 110;
    }
    if let Some(user) = user {
        account.incoming.user = user;
    }
    account.incoming.allow_plaintext_auth = allow_plaintext_auth;
    account.trust.ca_file = ca_file;
    account.delete_policy = DeletePolicy::from_name(&delete)?;
    account.first_sync = FirstSync::from_name(&first_sync).ok_or_else(|| {
        config_error(format!(
            "first_sync: \"{first_sync}\" is not a choice; use all, from-now-on, since-days=N or last=N"
        ))
    })?;
    let smtp_security = smtp_security.map(Security::from);
    let smtp_endpoint = |preset: &Outgoing| -> Result<(String, u16, Security), Error> {
        let (p_host, p_port, p_security) = match preset {
            Outgoing::SameCredentials {
                host,
                port,
                security,
            } => (Some(host.clone()), Some(*port), Some(*security)),
            _ => (None, None, None),
        };
        let security = smtp_security.or(p_security).unwrap_or(Security::StartTls);
        let host = smtp_host.clone().or(p_host).ok_or_else(|| {
            config_error("outgoing.host: no preset is known for this domain; give --smtp-host")
        })?;
        let port = smtp_port.or(if smtp_security.is_some() {
            None
        } else {
            p_port
        });
        let port = port.unwrap_or(if security == Security::Tls { 465 } else { 587 });
        Ok((host, port, security))
    };
    account.outgoing = match outgoing {
        OutgoingArg::None => Outgoing::None,
        OutgoingArg::Same => {
            let (host, port, security) = smtp_endpoint(&preset_smtp)?;
            Outgoing::SameCredentials {
                host,
                port,
                security,
            }
        }
        OutgoingArg::Separate => {
            let (host, port, security) = smtp_endpoint(&preset_smtp)?;
            let user = smtp_user.ok_or_else(|| {
                config_error("outgoing.user: --smtp-user is needed with --outgoing separate")
            })?;
            let var = smtp_password_env.ok_or_else(|| {
                config_error(
                    "outgoing.credential: --smtp-password-env is needed with --outgoing separate",
                )
            })?;
            let source = PasswordSource {
                password_env: Some(var),
                password_file: None,
            };
            Outgoing::Separate(ServerSettings {
                host,
                port,
                security,
                user,
                credential: Credential::password(read_password(&source, "outgoing password")?),
                allow_plaintext_auth,
            })
        }
    };
    account.metadata = metadata;
    account.validate()?;
    // Until the account is saved, a rotated refresh token is held here.
    let latest = std::sync::Arc::new(std::sync::Mutex::new(None));
    attach_tokens(
        &mut account,
        AccountTokens::Unsaved(std::sync::Arc::clone(&latest)),
        first_answer.as_ref(),
    )?;
    let mailbox = verify_login(&account)?;
    let outgoing = if account.outgoing == Outgoing::None {
        "no outgoing server"
    } else {
        verify_sending(&account)?;
        "outgoing login verified"
    };
    let rotated = latest.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(token) = rotated {
        account.incoming.credential = account.incoming.credential.with_secret(token);
    }
    // The first mailbox an owner adds is the active one.
    place.insert(account, &owner)?;
    println!("added {name}: login verified, {mailbox} on the server; {outgoing}");
    Ok(())
}

fn list(place: &Place) -> Result<(), Error> {
    for listed in place.list()? {
        let a = &listed.account;
        let security = a.incoming.security.as_str();
        let active = if listed.active { " active" } else { "" };
        let owner = match listed.owner.as_str() {
            DEFAULT_OWNER => String::new(),
            other => format!(" owner={other}"),
        };
        println!(
            "{} {} {}:{} {} {}{owner}{active}",
            a.name,
            a.email,
            a.incoming.host,
            a.incoming.port,
            security,
            a.delete_policy.name()
        );
    }
    Ok(())
}

fn verify(place: &Place, name: &str) -> Result<(), Failure> {
    let mut account = place.account(name)?;
    let tokens = place.tokens(&account);
    attach_tokens(&mut account, tokens, None)?;
    let show = |prefix: &str, steps: &[Step]| {
        for step in steps {
            let stage = match step.stage {
                Stage::Auth => "login",
                other => other.name(),
            };
            println!("{prefix}{stage}: ok ({})", step.detail);
            if let Some(certificate) = &step.certificate {
                println!("{prefix}certificate: {certificate}");
            }
        }
    };
    match verify_incoming(&account) {
        Ok(steps) => show("", &steps),
        Err(failure) => {
            show("", &failure.passed);
            return Err(failure.error.into());
        }
    }
    if account.outgoing != Outgoing::None {
        match verify_outgoing(&account) {
            Ok(steps) => show("outgoing ", &steps),
            Err(failure) => {
                show("outgoing ", &failure.passed);
                return Err(failure.error.into());
            }
        }
    }
    Ok(())
}

fn set_password(
    place: &Place,
    name: &str,
    incoming: bool,
    source: &PasswordSource,
) -> Result<(), Failure> {
    place.can_store_secrets()?;
    let account = place.account(name)?;
    let secret = read_password(source, "new password")?;
    if incoming && matches!(account.incoming.credential, Credential::OAuth2(_)) {
        return Err(config_error(format!(
            "{name} signs in with OAuth2 and has no password: remove it and add it again to sign in anew"
        ))
        .into());
    }
    if incoming {
        let mut changed = account.clone();
        changed.incoming.credential = account.incoming.credential.with_secret(secret);
        changed.validate()?;
        // The old password stays unless the new one logs in (on the
        // outgoing server too when it uses the same credentials).
        verify_login(&changed)?;
        if matches!(changed.outgoing, Outgoing::SameCredentials { .. }) {
            verify_sending(&changed)?;
        }
        place.update(changed)?;
        println!("{name}: incoming password changed and verified");
    } else {
        let mut changed = account.clone();
        match &mut changed.outgoing {
            Outgoing::Separate(server) => {
                server.credential = server.credential.with_secret(secret);
            }
            Outgoing::SameCredentials { .. } => {
                return Err(config_error(format!(
                    "{name} uses the incoming credentials for the outgoing server; change the incoming password"
                ))
                .into())
            }
            Outgoing::None => {
                return Err(config_error(format!("{name} has no outgoing server")).into())
            }
            _ => {
                return Err(config_error(format!(
                    "{name}: this kind of outgoing server has no password to change here"
                ))
                .into())
            }
        }
        changed.validate()?;
        // The old password stays unless the new one logs in.
        verify_sending(&changed)?;
        place.update(changed)?;
        println!("{name}: outgoing password changed and verified");
    }
    Ok(())
}

fn sync(place: &Place, name: Option<String>, maildir: Option<PathBuf>) -> Result<(), Error> {
    let started = Instant::now();
    let name = match name {
        Some(name) => name,
        None => place
            .default_active()?
            .ok_or_else(|| config_error("no account is active: add one, or name it"))?,
    };
    let dir = match place {
        Place::Dir(dir) => dir,
        Place::Db(db) => {
            if maildir.is_some() {
                return Err(config_error(
                    "--maildir: with --db the mail is stored in the database",
                ));
            }
            let report = sync_into_database(place, db, &name)?;
            print_report(&name, &report, started);
            return Ok(());
        }
    };
    let mut account = place.account(&name)?;
    account.validate()?;
    let tokens = place.tokens(&account);
    attach_tokens(&mut account, tokens, None)?;
    let maildir = maildir.unwrap_or_else(|| dir.join(&name).join("Maildir"));
    let mut sink = MaildirSink::create(&maildir)
        .map_err(|e| config_error(format!("cannot use the Maildir {}: {e}", maildir.display())))?;
    let state_path = dir.join(format!("{name}.state"));
    let mut state = StateFile::open(&state_path, &account.state_key()).map_err(|e| {
        config_error(format!(
            "cannot use the state {}: {e}",
            state_path.display()
        ))
    })?;
    let options = SyncOptions {
        policy: account.delete_policy,
        first_sync: account.first_sync,
        ..SyncOptions::default()
    };
    let interactive = std::io::stderr().is_terminal();
    let mut last = Instant::now();
    let mut progress = move |p: &pop3_client::FetchProgress| {
        if interactive {
            if p.done || last.elapsed() > Duration::from_millis(100) {
                last = Instant::now();
                let width = 30;
                let filled = (p.index + usize::from(p.done)) * width / p.count.max(1);
                eprint!(
                    "\r[{}{}] {}/{} {} bytes ",
                    "#".repeat(filled),
                    " ".repeat(width - filled.min(width)),
                    p.index + 1,
                    p.count,
                    p.bytes
                );
                let _ = std::io::stderr().flush();
            }
        } else if p.done {
            eprintln!("stored message {} ({} bytes)", p.msg, p.bytes);
        }
    };
    // What the server advertised last time: fewer round trips.
    let profile_path = pop3_examples::server_profile_path(&state_path);
    let mut config = account.client_config();
    config.server_profile = pop3_examples::load_server_profile(&profile_path);
    let result = sync_blocking(
        &config,
        &account.credentials(),
        &mut state,
        &mut sink,
        options,
        Some(&mut progress),
    );
    if interactive {
        eprintln!();
    }
    // A failed sync still says what it did before the error.
    let report = match &result {
        Ok(report) => report,
        Err(failure) => &*failure.report,
    };
    pop3_examples::save_server_profile(&profile_path, report);
    print_report(&name, report, started);
    result?;
    Ok(())
}

/// What a sync did, on stdout (warnings on stderr).
fn print_report(name: &str, report: &SyncReport, started: Instant) {
    for failed in &report.failed {
        eprintln!("failed {}: {}", failed.uid, failed.reason);
    }
    for quarantined in &report.quarantined {
        eprintln!("quarantined {}: {}", quarantined.uid, quarantined.reason);
    }
    println!(
        "{name}: {} new, {} deleted, {} skipped, {} quarantined, {} bytes, {:.1} seconds{}",
        report.new,
        report.deleted,
        report.skipped,
        report.quarantined.len(),
        report.bytes,
        started.elapsed().as_secs_f64(),
        report
            .next_sync_not_before
            .map(|t| format!("; next sync not before {t} (Unix time)"))
            .unwrap_or_default()
    );
    if let Some(why) = &report.stopped_early {
        eprintln!("warning: the sync stopped early: {why}");
    }
}

/// `sync` with `--db`: one poll of `name` into the database, under its
/// lease, its health recorded, as the poller does it.
fn sync_into_database(place: &Place, db: &Database, name: &str) -> Result<SyncReport, Error> {
    // Refused here, not after a connection: the secrets need the key.
    db.key()?;
    let worker = format!("account-sync-{}", std::process::id());
    let poller = Arc::new(
        DbPoller::new(
            db.store.clone(),
            db.key.clone(),
            DbPollerConfig::new(worker),
        )
        .with_prepare(place.prepare_tokens()),
    );
    let polled = db
        .runtime
        .block_on(poller.poll_names(vec![name.to_owned()], LEASE_WAIT))
        .map_err(io_error)?;
    let outcome = polled
        .into_iter()
        .next()
        .ok_or_else(|| config_error(format!("there is no account named \"{name}\"")))?
        .outcome;
    outcome
}

/// How long `sync --db` waits for a lease another worker holds.
const LEASE_WAIT: Duration = Duration::from_secs(120);

/// `messages NAME`: UID SIZE SHA256 per stored message.
fn messages(db: &Database, name: &str) -> Result<(), Error> {
    use sha2::Digest;
    db.runtime
        .block_on(db.store.account(name, None))
        .map_err(pop3_examples::database::store_error)?;
    let stored = db
        .runtime
        .block_on(db.store.messages(name))
        .map_err(io_error)?;
    let mut out = std::io::stdout().lock();
    for message in stored {
        let raw = db
            .runtime
            .block_on(db.store.raw(name, &message.delivery))
            .map_err(io_error)?
            .unwrap_or_default();
        let digest = sha2::Sha256::digest(&raw);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        writeln!(out, "{} {} {hex}", message.uid, message.size)?;
    }
    Ok(())
}

/// `health`: NAME STATE LAST-SUCCESS LAST-ERROR NEXT per mailbox.
fn health(db: &Database) -> Result<(), Error> {
    let all = db.runtime.block_on(db.store.health()).map_err(io_error)?;
    for mailbox in all {
        let h = &mailbox.health;
        let when = |at: Option<std::time::SystemTime>| {
            at.map_or_else(|| "-".to_owned(), pop3_examples::utc_time)
        };
        let error = match (&h.last_error, h.consecutive_failures) {
            (Some((kind, _)), n) if n > 0 => kind.as_str().to_owned(),
            _ => "-".to_owned(),
        };
        let next = if mailbox.active {
            when(h.next_attempt)
        } else {
            "inactive".to_owned()
        };
        println!(
            "{} {} {} {error} {next}",
            mailbox.name,
            mailbox.state().as_str(),
            when(h.last_success),
        );
    }
    Ok(())
}

fn run(cli: Cli) -> Result<(), Failure> {
    let place = match (cli.config, cli.db) {
        (_, Some(url)) => Place::Db(Database::open(&url, 4)?),
        (Some(dir), None) => Place::Dir(dir),
        (None, None) => return Err(config_error("give --config DIR or --db URL").into()),
    };
    let db_only = |what: &str| -> Result<&Database, Error> {
        match &place {
            Place::Db(db) => Ok(db),
            Place::Dir(_) => Err(config_error(format!("{what}: needs --db URL"))),
        }
    };
    match cli.command {
        cmd @ Cmd::Add { .. } => add(&place, cmd),
        Cmd::List => Ok(list(&place)?),
        Cmd::Activate { name } => {
            // The owner's other mailboxes are inactive from now on.
            place.activate(&name)?;
            println!("{name} is active");
            Ok(())
        }
        Cmd::Verify { name } => verify(&place, &name),
        Cmd::SetPassword {
            name,
            incoming,
            password,
            ..
        } => set_password(&place, &name, incoming, &password),
        Cmd::Sync { name, maildir } => Ok(sync(&place, name, maildir)?),
        Cmd::Remove { name } => {
            place.remove(&name)?;
            println!("{name} removed");
            Ok(())
        }
        Cmd::Messages { name } => Ok(messages(db_only("messages")?, &name)?),
        Cmd::Health => Ok(health(db_only("health")?)?),
    }
}

fn main() -> ExitCode {
    pop3_examples::init_tracing();
    let cli: Cli = match pop3_examples::parse_cli() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => pop3_examples::fail(e.kind().as_str(), e),
    }
}
