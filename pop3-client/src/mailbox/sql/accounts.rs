//! Mailboxes' settings (secrets sealed), owners, the active one, and
//! health, in the database.

use std::io;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::any::AnyRow;
use sqlx::Row;

use super::key::{DbKey, KeyError};
use super::{io_error, now_ms, SqlStore};
use crate::account::{Account, Credential, Outgoing};
use crate::config::Secret;
use crate::error::{ErrorKind, Remedy};
use crate::poller::Health;

/// Why an account could not be stored or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccountStoreError {
    /// The key is missing, malformed or not the one that sealed the
    /// secrets.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// An account of that name exists already.
    #[error("an account named \"{0}\" exists already")]
    Exists(String),
    /// No account has that name.
    #[error("there is no account named \"{0}\"")]
    NotFound(String),
    /// The account's settings changed (a new password or sign-in, a
    /// removal) since they were read: what was to be written for the
    /// older settings was not, so the newer ones stand.
    #[error("the settings of \"{0}\" changed meanwhile (a new password or sign-in); the newer settings are kept")]
    Changed(String),
    /// A stored account that does not read back (written by another
    /// version, or altered).
    #[error("the stored settings of \"{0}\" are damaged: {1}")]
    Damaged(String, String),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] io::Error),
}

impl AccountStoreError {
    /// The error's kind in the crate's vocabulary: `config` for what the
    /// user mends (a key, a name), `storage` for the database.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Database(_) | Self::Changed(_) => ErrorKind::Storage,
            _ => ErrorKind::Config,
        }
    }
}

/// One stored mailbox.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AccountRecord {
    /// Its settings (with its secrets when read with the key).
    pub account: Account,
    /// Its owner (a CRM user).
    pub owner: String,
    /// Whether it is its owner's active mailbox (the one polled).
    pub active: bool,
    /// Raised by every settings change: a sync under older settings stops.
    pub version: i64,
    /// The sealed secrets as read (a fresh nonce at every seal, so equal
    /// bytes are the same secrets): what a conditional write compares.
    sealed: Vec<u8>,
}

/// A mailbox's state in words, for a list or a screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthState {
    /// Not polled yet.
    Never,
    /// The last poll worked.
    Ok,
    /// The last polls failed; retried after a backoff.
    Failing,
    /// Paused until the user mends something (a password, a setting).
    Paused,
}

impl HealthState {
    /// `never`, `ok`, `failing` or `paused`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Never => "never",
            Self::Ok => "ok",
            Self::Failing => "failing",
            Self::Paused => "paused",
        }
    }

    /// The state `health` describes.
    pub fn of(health: &Health) -> Self {
        if health.needs_user_action {
            Self::Paused
        } else if health.consecutive_failures > 0 {
            Self::Failing
        } else if health.last_success.is_some() {
            Self::Ok
        } else {
            Self::Never
        }
    }
}

/// One mailbox's health as the poller recorded it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MailboxHealth {
    /// The mailbox.
    pub name: String,
    /// Its owner.
    pub owner: String,
    /// Whether it is polled (its owner's active one).
    pub active: bool,
    /// The record.
    pub health: Health,
}

impl MailboxHealth {
    /// Its state in words.
    pub fn state(&self) -> HealthState {
        HealthState::of(&self.health)
    }
}

/// The secrets an account holds, sealed apart from its settings.
#[derive(serde::Serialize, serde::Deserialize)]
struct Secrets {
    incoming: Credential,
    outgoing: Option<Credential>,
}

/// What a sealed secret is bound to (the cipher's associated data): the
/// mailbox and where its secrets are sent, so that settings altered in the
/// database (another server, another user) make the secrets refuse to
/// open rather than go to that server.
fn binding(account: &Account) -> String {
    let server = |s: &crate::account::ServerSettings| {
        format!(
            "{}:{}:{}:{}",
            s.host.to_ascii_lowercase(),
            s.port,
            s.security.as_str(),
            s.user
        )
    };
    let outgoing = match &account.outgoing {
        Outgoing::None => String::new(),
        Outgoing::SameCredentials {
            host,
            port,
            security,
        } => {
            format!("{}:{port}:{}", host.to_ascii_lowercase(), security.as_str())
        }
        Outgoing::Separate(s) => server(s),
    };
    format!(
        "{}\n{}\n{outgoing}",
        account.name,
        server(&account.incoming)
    )
}

fn seal(account: &Account, key: Option<&DbKey>) -> Result<Vec<u8>, AccountStoreError> {
    let key = key.ok_or(KeyError::Missing)?;
    let secrets = Secrets {
        incoming: account.incoming.credential.clone(),
        outgoing: match &account.outgoing {
            Outgoing::Separate(server) => Some(server.credential.clone()),
            _ => None,
        },
    };
    let text = zeroize::Zeroizing::new(
        serde_json::to_vec(&crate::WithSecrets(&secrets))
            .map_err(|e| AccountStoreError::Damaged(account.name.clone(), e.to_string()))?,
    );
    Ok(key.seal(&binding(account), &text))
}

fn settings_text(account: &Account) -> Result<String, AccountStoreError> {
    // Secrets serialize as null unless asked for: never in this column.
    serde_json::to_string(account)
        .map_err(|e| AccountStoreError::Damaged(account.name.clone(), e.to_string()))
}

fn ms_to_time(ms: Option<i64>) -> Option<SystemTime> {
    ms.and_then(|ms| u64::try_from(ms).ok())
        .map(|ms| UNIX_EPOCH + Duration::from_millis(ms))
}

pub(crate) fn time_to_ms(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl SqlStore {
    /// Stores a new mailbox of `owner`, its secrets sealed with `key`
    /// (refused without one). The first mailbox an owner adds is the
    /// active one: whether this one is.
    pub async fn add_account(
        &self,
        account: &Account,
        owner: &str,
        key: Option<&DbKey>,
    ) -> Result<bool, AccountStoreError> {
        let secrets = seal(account, key)?;
        let settings = settings_text(account)?;
        let mut tx = Self::begin_write(self.pool(), self.engine()).await?;
        let exists: Option<String> =
            sqlx::query_scalar("SELECT name FROM accounts WHERE name = $1")
                .bind(&account.name)
                .fetch_optional(&mut *tx)
                .await
                .map_err(io_error)?;
        if exists.is_some() {
            return Err(AccountStoreError::Exists(account.name.clone()));
        }
        let active_one: Option<String> =
            sqlx::query_scalar("SELECT name FROM accounts WHERE owner = $1 AND active = 1")
                .bind(owner)
                .fetch_optional(&mut *tx)
                .await
                .map_err(io_error)?;
        let active = active_one.is_none();
        // The version starts at the time of adding in microseconds and each
        // change (a transaction, far longer than a microsecond) adds one,
        // so it stays below the clock and keeps growing across a removal
        // and a re-adding under the same name: a version read before
        // cannot pass for one after.
        let added_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX / 2));
        sqlx::query(
            "INSERT INTO accounts (name, owner, active, host, settings, secrets, version, added_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&account.name)
        .bind(owner)
        .bind(i64::from(active))
        .bind(account.incoming.host.to_ascii_lowercase())
        .bind(settings)
        .bind(secrets)
        .bind(added_us)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(io_error)?;
        // A name used before (removed since) starts afresh.
        for table in ["health", "state_changes"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE account = $1"))
                .bind(&account.name)
                .execute(&mut *tx)
                .await
                .map_err(io_error)?;
        }
        sqlx::query(
            "INSERT INTO health (account, next_ms, needs_user, failures, last_new)
             VALUES ($1, 0, 0, 0, 0)",
        )
        .bind(&account.name)
        .execute(&mut *tx)
        .await
        .map_err(io_error)?;
        tx.commit().await.map_err(io_error)?;
        Ok(active)
    }

    /// Replaces a mailbox's settings and secrets (a new password, say): a
    /// sync under the old ones stops at its next group, and a mailbox
    /// paused for the user is polled again at once, its failures no longer
    /// counted.
    pub async fn update_account(
        &self,
        account: &Account,
        key: Option<&DbKey>,
    ) -> Result<(), AccountStoreError> {
        self.update(account, key, None).await
    }

    /// As [`SqlStore::update_account`], only if the mailbox is still as
    /// `read` (its settings' version and its secrets, a rotated refresh
    /// token included): an application that read the settings, then spent
    /// seconds verifying a new password, does not write back a refresh
    /// token the provider has rotated meanwhile. Otherwise nothing is
    /// written and the error is [`AccountStoreError::Changed`]: read again
    /// and apply the change to what is there.
    pub async fn update_account_if_unchanged(
        &self,
        read: &AccountRecord,
        account: &Account,
        key: Option<&DbKey>,
    ) -> Result<(), AccountStoreError> {
        self.update(account, key, Some(read)).await
    }

    async fn update(
        &self,
        account: &Account,
        key: Option<&DbKey>,
        read: Option<&AccountRecord>,
    ) -> Result<(), AccountStoreError> {
        let secrets = seal(account, key)?;
        let settings = settings_text(account)?;
        let mut tx = Self::begin_write(self.pool(), self.engine()).await?;
        let query = match read {
            None => sqlx::query(
                "UPDATE accounts SET host = $1, settings = $2, secrets = $3, version = version + 1
                 WHERE name = $4",
            ),
            Some(_) => sqlx::query(
                "UPDATE accounts SET host = $1, settings = $2, secrets = $3, version = version + 1
                 WHERE name = $4 AND version = $5 AND secrets = $6",
            ),
        }
        .bind(account.incoming.host.to_ascii_lowercase())
        .bind(settings)
        .bind(secrets)
        .bind(&account.name);
        let query = match read {
            None => query,
            Some(read) => query.bind(read.version).bind(read.sealed.clone()),
        };
        let changed = query.execute(&mut *tx).await.map_err(io_error)?;
        if changed.rows_affected() == 0 {
            // Removed, or changed: say which (in the same transaction).
            let exists = sqlx::query("SELECT 1 FROM accounts WHERE name = $1")
                .bind(&account.name)
                .fetch_optional(&mut *tx)
                .await
                .map_err(io_error)?
                .is_some();
            return Err(if exists {
                AccountStoreError::Changed(account.name.clone())
            } else {
                AccountStoreError::NotFound(account.name.clone())
            });
        }
        // Failures under the old settings say nothing of the new ones: not
        // counted, their remedy no longer shown (the error's words are kept
        // for the record).
        sqlx::query(
            "UPDATE health SET needs_user = 0, next_ms = 0, failures = 0, last_error_remedy = NULL
             WHERE account = $1",
        )
        .bind(&account.name)
        .execute(&mut *tx)
        .await
        .map_err(io_error)?;
        tx.commit().await.map_err(io_error)?;
        Ok(())
    }

    /// Writes `to`, a refresh token the provider rotated, in place of
    /// `from`, the one it was rotated from, wherever the mailbox keeps that
    /// grant (incoming, and a separate outgoing sign-in with the same
    /// grant); not a settings change. Written only if the stored secrets
    /// are still exactly those read here: when the user signed in again or
    /// changed a password meanwhile (here or in another process), nothing
    /// is written and the error is [`AccountStoreError::Changed`], so a
    /// token rotated under an older grant never replaces a newer one.
    pub async fn rotate_refresh_token(
        &self,
        name: &str,
        key: Option<&DbKey>,
        from: &Secret,
        to: &Secret,
    ) -> Result<(), AccountStoreError> {
        let key = key.ok_or(KeyError::Missing)?;
        let read = self.account(name, Some(key)).await?;
        let mut account = read.account.clone();
        if !account.replace_refresh_token(from, to) {
            return Err(AccountStoreError::Changed(name.to_owned()));
        }
        let changed =
            sqlx::query("UPDATE accounts SET secrets = $1 WHERE name = $2 AND secrets = $3")
                .bind(seal(&account, Some(key))?)
                .bind(name)
                .bind(read.sealed)
                .execute(self.pool())
                .await
                .map_err(io_error)?;
        if changed.rows_affected() == 0 {
            return Err(AccountStoreError::Changed(name.to_owned()));
        }
        Ok(())
    }

    /// Makes `name` its owner's active mailbox; the owner's others are
    /// inactive from now on (their syncs stop at the next group).
    pub async fn activate(&self, name: &str) -> Result<(), AccountStoreError> {
        let mut tx = Self::begin_write(self.pool(), self.engine()).await?;
        let owner: Option<String> =
            sqlx::query_scalar("SELECT owner FROM accounts WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await
                .map_err(io_error)?;
        let owner = owner.ok_or_else(|| AccountStoreError::NotFound(name.to_owned()))?;
        sqlx::query(
            "UPDATE accounts SET active = 0, version = version + 1
             WHERE owner = $1 AND active = 1 AND name <> $2",
        )
        .bind(&owner)
        .bind(name)
        .execute(&mut *tx)
        .await
        .map_err(io_error)?;
        sqlx::query("UPDATE accounts SET active = 1 WHERE name = $1 AND active = 0")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(io_error)?;
        tx.commit().await.map_err(io_error)?;
        Ok(())
    }

    /// Forgets a mailbox: its settings, state, health and lease (its
    /// stored messages stay, the application's to keep or delete). When it
    /// was its owner's active one, the owner's oldest other becomes active.
    pub async fn remove_account(&self, name: &str) -> Result<(), AccountStoreError> {
        let mut tx = Self::begin_write(self.pool(), self.engine()).await?;
        let lock = match self.engine() {
            super::Engine::Postgres => " FOR UPDATE",
            super::Engine::Sqlite => "",
        };
        let row: Option<(String, i64)> = sqlx::query_as(&format!(
            "SELECT owner, active FROM accounts WHERE name = $1{lock}"
        ))
        .bind(name)
        .fetch_optional(&mut *tx)
        .await
        .map_err(io_error)?;
        let (owner, active) = row.ok_or_else(|| AccountStoreError::NotFound(name.to_owned()))?;
        for table in ["health", "state_changes"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE account = $1"))
                .bind(name)
                .execute(&mut *tx)
                .await
                .map_err(io_error)?;
        }
        // The lease row stays, expired: its token keeps growing, so a
        // worker still syncing the removed mailbox can never pass for the
        // holder of a mailbox added again under the same name.
        sqlx::query("UPDATE leases SET expires_ms = 0 WHERE account = $1")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(io_error)?;
        sqlx::query("DELETE FROM accounts WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(io_error)?;
        if active == 1 {
            let next: Option<String> = sqlx::query_scalar(
                "SELECT name FROM accounts WHERE owner = $1 ORDER BY added_ms, name LIMIT 1",
            )
            .bind(&owner)
            .fetch_optional(&mut *tx)
            .await
            .map_err(io_error)?;
            if let Some(next) = next {
                sqlx::query("UPDATE accounts SET active = 1 WHERE name = $1")
                    .bind(next)
                    .execute(&mut *tx)
                    .await
                    .map_err(io_error)?;
            }
        }
        tx.commit().await.map_err(io_error)?;
        Ok(())
    }

    /// Every stored mailbox, oldest first. With `key`, their secrets are
    /// opened; without, they are left empty (enough to list them).
    pub async fn accounts(
        &self,
        key: Option<&DbKey>,
    ) -> Result<Vec<AccountRecord>, AccountStoreError> {
        let rows = sqlx::query(
            "SELECT name, owner, active, settings, secrets, version FROM accounts
             ORDER BY added_ms, name",
        )
        .fetch_all(self.pool())
        .await
        .map_err(io_error)?;
        rows.iter().map(|row| record(row, key)).collect()
    }

    /// The mailbox `name`, its secrets opened with `key` when given.
    pub async fn account(
        &self,
        name: &str,
        key: Option<&DbKey>,
    ) -> Result<AccountRecord, AccountStoreError> {
        let row = sqlx::query(
            "SELECT name, owner, active, settings, secrets, version FROM accounts WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(self.pool())
        .await
        .map_err(io_error)?
        .ok_or_else(|| AccountStoreError::NotFound(name.to_owned()))?;
        record(&row, key)
    }

    /// Every mailbox's health, by name.
    pub async fn health(&self) -> io::Result<Vec<MailboxHealth>> {
        let rows = sqlx::query(
            "SELECT a.name, a.owner, a.active, h.next_ms, h.needs_user, h.failures,
                    h.last_success_ms, h.last_error_kind, h.last_error_text,
                    h.last_error_remedy, h.last_new
             FROM accounts a JOIN health h ON h.account = a.name ORDER BY a.name",
        )
        .fetch_all(self.pool())
        .await
        .map_err(io_error)?;
        rows.iter()
            .map(|row| {
                let get_i64 = |column: &str| row.try_get::<i64, _>(column).map_err(io_error);
                let needs_user = get_i64("needs_user")? != 0;
                let kind: Option<String> = row.try_get("last_error_kind").map_err(io_error)?;
                let text: Option<String> = row.try_get("last_error_text").map_err(io_error)?;
                let remedy: Option<String> = row.try_get("last_error_remedy").map_err(io_error)?;
                let health = Health {
                    last_success: ms_to_time(row.try_get("last_success_ms").map_err(io_error)?),
                    last_error: kind.map(|k| {
                        (
                            ErrorKind::from_name(&k).unwrap_or(ErrorKind::Io),
                            text.unwrap_or_default(),
                        )
                    }),
                    remedy: remedy.as_deref().and_then(Remedy::from_text),
                    consecutive_failures: u32::try_from(get_i64("failures")?).unwrap_or(u32::MAX),
                    next_attempt: if needs_user {
                        None
                    } else {
                        ms_to_time(Some(get_i64("next_ms")?))
                    },
                    needs_user_action: needs_user,
                    last_new: usize::try_from(get_i64("last_new")?).unwrap_or(0),
                    polling: false,
                };
                Ok(MailboxHealth {
                    name: row.try_get("name").map_err(io_error)?,
                    owner: row.try_get("owner").map_err(io_error)?,
                    active: get_i64("active")? != 0,
                    health,
                })
            })
            .collect()
    }
}

fn record(row: &AnyRow, key: Option<&DbKey>) -> Result<AccountRecord, AccountStoreError> {
    let name: String = row.try_get("name").map_err(io_error)?;
    let settings: String = row.try_get("settings").map_err(io_error)?;
    let damaged = |e: serde_json::Error| AccountStoreError::Damaged(name.clone(), e.to_string());
    let mut account: Account = serde_json::from_str(&settings).map_err(damaged)?;
    let sealed: Vec<u8> = row.try_get("secrets").map_err(io_error)?;
    if let Some(key) = key {
        let opened = key
            .open(&binding(&account), &sealed)
            .map_err(|_| KeyError::WrongKey(name.clone()))?;
        let secrets: Secrets = serde_json::from_slice(&opened).map_err(damaged)?;
        account.incoming.credential = secrets.incoming;
        if let (Outgoing::Separate(server), Some(credential)) =
            (&mut account.outgoing, secrets.outgoing)
        {
            server.credential = credential;
        }
    }
    Ok(AccountRecord {
        account,
        owner: row.try_get("owner").map_err(io_error)?,
        active: row.try_get::<i64, _>("active").map_err(io_error)? != 0,
        version: row.try_get("version").map_err(io_error)?,
        sealed,
    })
}
