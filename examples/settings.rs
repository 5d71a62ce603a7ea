//! What `account` and `poller` share: the settings folder (accounts.json,
//! mode 0600, written atomically), each owner's active account, and the
//! OAuth2 tokens of accounts that sign in (refreshed through the provider,
//! a rotated refresh token written back to accounts.json before use).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use pop3_client::account::{Account, Credential, OAuth2Grant};
use pop3_client::oauth::{HttpTokenEndpoint, RefreshingTokenSource, TokenResponse, TokenStore};
use pop3_client::{Error, Secret};
use serde::{Deserialize, Serialize};

/// One rewrite of accounts.json at a time in this process.
static REWRITE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The metadata key naming the environment variable of the client secret.
pub const CLIENT_SECRET_ENV: &str = "oauth2_client_secret_env";

/// The client secret named by the account's metadata, if any.
pub fn client_secret(metadata: &BTreeMap<String, String>) -> Result<Option<Secret>, Error> {
    let Some(var) = metadata.get(CLIENT_SECRET_ENV) else {
        return Ok(None);
    };
    std::env::var(var)
        .map(|s| Some(Secret::new(s)))
        .map_err(|_| {
            config_error(format!(
                "the OAuth2 client secret: the environment variable {var} is not set"
            ))
        })
}

/// The token endpoint of `grant`, with the client secret if any.
pub fn token_endpoint(
    grant: &OAuth2Grant,
    metadata: &BTreeMap<String, String>,
) -> Result<HttpTokenEndpoint, Error> {
    let mut endpoint = grant.endpoint()?;
    if let Some(secret) = client_secret(metadata)? {
        endpoint = endpoint.client_secret(secret);
    }
    Ok(endpoint)
}

/// Where a rotated refresh token goes: the account's entry in
/// accounts.json, rewritten atomically; or, while `add` has not saved the
/// account yet, memory (the account is saved with the latest one).
pub enum AccountTokens {
    /// In accounts.json.
    Saved {
        /// The settings folder.
        dir: PathBuf,
        /// The account.
        name: String,
        /// The refresh token the file holds, as far as this source knows
        /// (`account sync` and a poller may both rotate it).
        stored: std::sync::Mutex<Secret>,
    },
    /// In memory, until `add` saves the account.
    Unsaved(std::sync::Arc<std::sync::Mutex<Option<Secret>>>),
    /// In the database, sealed with its key.
    Database {
        /// The database.
        tokens: std::sync::Arc<crate::database::DbTokens>,
        /// The account.
        name: String,
        /// The refresh token the database holds, as far as this source
        /// knows: a rotated one replaces it only if the mailbox was not
        /// signed in again meanwhile.
        stored: std::sync::Mutex<Secret>,
    },
}

impl TokenStore for AccountTokens {
    fn save(&self, _account: &str, token: &Secret) -> std::io::Result<()> {
        match self {
            Self::Unsaved(latest) => {
                *latest.lock().unwrap_or_else(|p| p.into_inner()) = Some(token.clone());
                Ok(())
            }
            Self::Database {
                tokens,
                name,
                stored,
            } => tokens.save(name, stored, token),
            Self::Saved { dir, name, stored } => {
                let io = |e: Error| std::io::Error::other(e.to_string());
                // Several mailboxes' tokens rotate at once in a poller: one
                // read-change-write at a time, so none is lost. (Another
                // process writing accounts.json meanwhile is not covered.)
                let _one_at_a_time = REWRITE.lock().unwrap_or_else(|p| p.into_inner());
                let mut settings = load(dir).map_err(io)?;
                let account = find(&mut settings, name).map_err(io)?;
                // Only over the token it was rotated from: not over a newer
                // sign-in, nor over another process's rotation.
                let from = stored.lock().unwrap_or_else(|p| p.into_inner()).clone();
                if !account.replace_refresh_token(&from, token) {
                    return Err(std::io::Error::other(format!(
                        "the sign-in of {name} changed meanwhile (signed in again, or refreshed by another program); the newer one is kept"
                    )));
                }
                save(dir, &settings).map_err(io)?;
                *stored.lock().unwrap_or_else(|p| p.into_inner()) = token.clone();
                Ok(())
            }
        }
    }
}

/// For an account that signs in with OAuth2: a token source refreshing
/// its grant, attached to it, rotated tokens going to `store`.
pub fn attach_tokens(
    account: &mut Account,
    store: AccountTokens,
    first: Option<&TokenResponse>,
) -> Result<(), Error> {
    let Credential::OAuth2(grant) = &account.incoming.credential else {
        return Ok(());
    };
    let endpoint = token_endpoint(grant, &account.metadata)?;
    let mut source = RefreshingTokenSource::new(
        account.name.clone(),
        grant.refresh_token.clone(),
        Box::new(endpoint),
    )
    .with_store(Box::new(store));
    // The sign-in's own access token, when its life is known: no refresh
    // needed right away.
    if let Some((answer, life)) = first.and_then(|a| Some((a, a.expires_in?))) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        source = source.with_access_token(answer.access_token.clone(), now.saturating_add(life));
    }
    account.attach_token_source(std::sync::Arc::new(source));
    Ok(())
}

/// The settings file.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Settings {
    /// The default owner's active account (kept for files written before
    /// owners).
    #[serde(default)]
    pub active: Option<String>,
    /// Each owner's active account.
    #[serde(default)]
    pub active_by_owner: BTreeMap<String, String>,
    /// Every account.
    pub accounts: Vec<Account>,
}

/// The metadata key naming an account's owner (a CRM user); accounts
/// without one belong to [`DEFAULT_OWNER`].
pub const OWNER: &str = "owner";

/// The owner of accounts added without `--owner`.
pub const DEFAULT_OWNER: &str = "default";

/// Who owns `account`.
pub fn owner_of(account: &Account) -> &str {
    account
        .metadata
        .get(OWNER)
        .map_or(DEFAULT_OWNER, String::as_str)
}

impl Settings {
    /// `owner`'s active account, if any.
    pub fn active_of(&self, owner: &str) -> Option<&str> {
        match owner {
            DEFAULT_OWNER => self
                .active_by_owner
                .get(owner)
                .or(self.active.as_ref())
                .map(String::as_str),
            _ => self.active_by_owner.get(owner).map(String::as_str),
        }
    }

    /// Makes `name` its owner's active account (the owner's other accounts
    /// are then inactive).
    pub fn activate(&mut self, owner: &str, name: &str) {
        self.active_by_owner
            .insert(owner.to_owned(), name.to_owned());
        if owner == DEFAULT_OWNER {
            self.active = Some(name.to_owned());
        }
    }

    /// Whether `account` is its owner's active one.
    pub fn is_active(&self, account: &Account) -> bool {
        self.active_of(owner_of(account)) == Some(account.name.as_str())
    }

    /// Every owner's active account: what a poller polls.
    pub fn active_accounts(&self) -> Vec<&Account> {
        self.accounts.iter().filter(|a| self.is_active(a)).collect()
    }

    /// Forgets `name` (removed): its owner's next account, if any, becomes
    /// active.
    pub fn removed(&mut self, owner: &str, name: &str) {
        if self.active_of(owner) != Some(name) {
            return;
        }
        self.active_by_owner.remove(owner);
        if owner == DEFAULT_OWNER {
            self.active = None;
        }
        let next = self
            .accounts
            .iter()
            .find(|a| owner_of(a) == owner && a.name != name)
            .map(|a| a.name.clone());
        if let Some(next) = next {
            self.activate(owner, &next);
        }
    }
}

/// A settings problem in words: `field: problem` names the field, other
/// text is about the settings as a whole.
pub fn config_error(text: impl Into<String>) -> Error {
    let text = text.into();
    match text.split_once(": ") {
        Some((field, problem)) if !field.contains(' ') => Error::invalid_setting(field, problem),
        _ => Error::invalid_setting("settings", text),
    }
}

/// Where the settings of the folder `dir` are kept.
pub fn settings_path(dir: &Path) -> PathBuf {
    dir.join("accounts.json")
}

/// The settings of the folder `dir` (none yet: empty).
pub fn load(dir: &Path) -> Result<Settings, Error> {
    let path = settings_path(dir);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| config_error(format!("{} is damaged: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Settings::default()),
        Err(e) => Err(config_error(format!("cannot read {}: {e}", path.display()))),
    }
}

/// Writes the settings privately (0600), by temp file and rename, so a
/// crash leaves the old file or the new one.
pub fn save(dir: &Path, settings: &Settings) -> Result<(), Error> {
    std::fs::create_dir_all(dir)?;
    let path = settings_path(dir);
    // A name of its own per write: two writers never share a temporary.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let tmp = dir.join(format!("accounts.json.{}.{n}.tmp", std::process::id()));
    // The one file that holds passwords: written 0600, secrets asked for.
    let text = serde_json::to_vec_pretty(&pop3_client::WithSecrets(settings))
        .map_err(|e| config_error(format!("cannot encode the settings: {e}")))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(&text)?;
    file.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    // The rename itself durable.
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// The account named `name`, or an error that says there is none.
pub fn find<'a>(settings: &'a mut Settings, name: &str) -> Result<&'a mut Account, Error> {
    settings
        .accounts
        .iter_mut()
        .find(|a| a.name == name)
        .ok_or_else(|| config_error(format!("there is no account named \"{name}\"")))
}

/// Where the rotated refresh token of `account`, saved in `dir`, goes.
pub fn saved_tokens(dir: &Path, account: &Account) -> AccountTokens {
    AccountTokens::Saved {
        dir: dir.to_owned(),
        name: account.name.clone(),
        stored: stored_refresh_token(account),
    }
}

/// The refresh token `account` holds now (empty when it signs in with a
/// password: then no token is ever saved).
pub fn stored_refresh_token(account: &Account) -> std::sync::Mutex<Secret> {
    std::sync::Mutex::new(match &account.incoming.credential {
        Credential::OAuth2(grant) => grant.refresh_token.clone(),
        _ => Secret::from(""),
    })
}
