//! What `account --db` and `poller --db` share: the database (`sqlite:PATH`
//! or `postgres://...`), the key that seals its secrets (`POP3_DB_KEY`),
//! and where an account's settings live, a folder or a database, behind
//! one set of operations ([`Place`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use pop3_client::account::Account;
use pop3_client::sql::{AccountStoreError, DbKey, SqlStore, DB_KEY_ENV};
use pop3_client::{Error, Secret};

use crate::settings::{self, config_error, owner_of, AccountTokens, Settings, DEFAULT_OWNER};

/// An open database, its key, and the runtime its calls run on.
pub struct Database {
    /// The store.
    pub store: SqlStore,
    /// The key from `POP3_DB_KEY`, if set.
    pub key: Option<DbKey>,
    /// The runtime the store's calls run on.
    pub runtime: tokio::runtime::Runtime,
}

/// A database error in the words `fail` prints.
pub fn store_error(e: AccountStoreError) -> Error {
    match e.kind() {
        pop3_client::ErrorKind::Config => config_error(e.to_string()),
        _ => Error::Storage {
            what: "the database".to_owned(),
            source: std::io::Error::other(e.to_string()),
        },
    }
}

/// A failure of the database itself.
pub fn io_error(e: std::io::Error) -> Error {
    Error::Storage {
        what: "the database".to_owned(),
        source: e,
    }
}

impl Database {
    /// Opens `url` (migrations run), with the key from `POP3_DB_KEY`; a key
    /// set but malformed is refused.
    pub fn open(url: &str, connections: u32) -> Result<Self, Error> {
        let key = DbKey::from_env().map_err(|e| config_error(format!("{DB_KEY_ENV}: {e}")))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let store = runtime
            .block_on(SqlStore::connect_with(url, connections))
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::InvalidInput | std::io::ErrorKind::Unsupported => {
                    config_error(format!("--db: {e}"))
                }
                _ => io_error(e),
            })?;
        Ok(Self {
            store,
            key,
            runtime,
        })
    }

    /// The key, or the error that says how to give one.
    pub fn key(&self) -> Result<&DbKey, Error> {
        self.key.as_ref().ok_or_else(|| {
            config_error(format!(
                "{DB_KEY_ENV}: {}",
                pop3_client::sql::KeyError::Missing
            ))
        })
    }
}

/// Where a rotated refresh token of a mailbox in the database goes.
pub struct DbTokens {
    /// The store.
    pub store: SqlStore,
    /// The key.
    pub key: Option<DbKey>,
    /// The runtime to run the write on (from a thread outside it).
    pub handle: tokio::runtime::Handle,
}

impl DbTokens {
    /// Writes `token` as `name`'s refresh token in place of `stored`, the
    /// one it was rotated from, and makes `token` the stored one. When the
    /// mailbox was signed in again or its password changed meanwhile,
    /// nothing is written: the newer settings stand, and the refresh fails
    /// with a storage error that says so.
    pub fn save(
        &self,
        name: &str,
        stored: &std::sync::Mutex<Secret>,
        token: &Secret,
    ) -> std::io::Result<()> {
        let from = stored.lock().unwrap_or_else(|p| p.into_inner()).clone();
        self.handle
            .block_on(
                self.store
                    .rotate_refresh_token(name, self.key.as_ref(), &from, token),
            )
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        *stored.lock().unwrap_or_else(|p| p.into_inner()) = token.clone();
        Ok(())
    }
}

/// One mailbox as a list shows it.
pub struct Listed {
    /// Its settings.
    pub account: Account,
    /// Its owner.
    pub owner: String,
    /// Whether it is its owner's active one.
    pub active: bool,
}

/// Where accounts live: a settings folder (accounts.json) or a database.
pub enum Place {
    /// `--config DIR`.
    Dir(PathBuf),
    /// `--db URL`.
    Db(Database),
}

impl Place {
    /// The folder, if the accounts live in one.
    pub fn dir(&self) -> Option<&Path> {
        match self {
            Self::Dir(dir) => Some(dir),
            Self::Db(_) => None,
        }
    }

    /// Whether an account is named `name`.
    pub fn exists(&self, name: &str) -> Result<bool, Error> {
        match self {
            Self::Dir(dir) => Ok(settings::load(dir)?.accounts.iter().any(|a| a.name == name)),
            Self::Db(db) => match db.runtime.block_on(db.store.account(name, None)) {
                Ok(_) => Ok(true),
                Err(AccountStoreError::NotFound(_)) => Ok(false),
                Err(e) => Err(store_error(e)),
            },
        }
    }

    /// Checks that an account with secrets can be stored here (a database
    /// needs its key): before anything is asked of the user.
    pub fn can_store_secrets(&self) -> Result<(), Error> {
        match self {
            Self::Dir(_) => Ok(()),
            Self::Db(db) => db.key().map(drop),
        }
    }

    /// Stores a new account of `owner`: whether it is the owner's active
    /// one (the first an owner adds is).
    pub fn insert(&self, account: Account, owner: &str) -> Result<bool, Error> {
        match self {
            Self::Dir(dir) => {
                let mut settings = settings::load(dir)?;
                if settings.accounts.iter().any(|a| a.name == account.name) {
                    return Err(config_error(format!(
                        "an account named \"{}\" exists already",
                        account.name
                    )));
                }
                let active = settings.active_of(owner).is_none();
                if active {
                    settings.activate(owner, &account.name);
                }
                settings.accounts.push(account);
                settings::save(dir, &settings)?;
                Ok(active)
            }
            Self::Db(db) => db
                .runtime
                .block_on(db.store.add_account(&account, owner, Some(db.key()?)))
                .map_err(store_error),
        }
    }

    /// Every account, oldest first (without secrets from a database).
    pub fn list(&self) -> Result<Vec<Listed>, Error> {
        match self {
            Self::Dir(dir) => {
                let settings = settings::load(dir)?;
                Ok(settings
                    .accounts
                    .iter()
                    .map(|a| Listed {
                        account: a.clone(),
                        owner: owner_of(a).to_owned(),
                        active: settings.is_active(a),
                    })
                    .collect())
            }
            Self::Db(db) => Ok(db
                .runtime
                .block_on(db.store.accounts(None))
                .map_err(store_error)?
                .into_iter()
                .map(|r| Listed {
                    account: r.account,
                    owner: r.owner,
                    active: r.active,
                })
                .collect()),
        }
    }

    /// The account `name` with its secrets.
    pub fn account(&self, name: &str) -> Result<Account, Error> {
        match self {
            Self::Dir(dir) => {
                let mut settings = settings::load(dir)?;
                Ok(settings::find(&mut settings, name)?.clone())
            }
            Self::Db(db) => Ok(db
                .runtime
                .block_on(db.store.account(name, Some(db.key()?)))
                .map_err(store_error)?
                .account),
        }
    }

    /// The active account of the default owner.
    pub fn default_active(&self) -> Result<Option<String>, Error> {
        match self {
            Self::Dir(dir) => Ok(settings::load(dir)?
                .active_of(DEFAULT_OWNER)
                .map(str::to_owned)),
            Self::Db(_) => Ok(self
                .list()?
                .into_iter()
                .find(|l| l.active && l.owner == DEFAULT_OWNER)
                .map(|l| l.account.name)),
        }
    }

    /// Replaces the account of the same name (a changed password).
    pub fn update(&self, account: Account) -> Result<(), Error> {
        match self {
            Self::Dir(dir) => {
                let mut settings = settings::load(dir)?;
                let name = account.name.clone();
                *settings::find(&mut settings, &name)? = account;
                settings::save(dir, &settings)
            }
            Self::Db(db) => db
                .runtime
                .block_on(db.store.update_account(&account, Some(db.key()?)))
                .map_err(store_error),
        }
    }

    /// Makes `name` its owner's active account.
    pub fn activate(&self, name: &str) -> Result<(), Error> {
        match self {
            Self::Dir(dir) => {
                let mut settings = settings::load(dir)?;
                let owner = owner_of(settings::find(&mut settings, name)?).to_owned();
                settings.activate(&owner, name);
                settings::save(dir, &settings)
            }
            Self::Db(db) => db
                .runtime
                .block_on(db.store.activate(name))
                .map_err(store_error),
        }
    }

    /// Forgets the account `name`.
    pub fn remove(&self, name: &str) -> Result<(), Error> {
        match self {
            Self::Dir(dir) => {
                let mut settings: Settings = settings::load(dir)?;
                let owner = owner_of(settings::find(&mut settings, name)?).to_owned();
                settings.removed(&owner, name);
                settings.accounts.retain(|a| a.name != name);
                settings::save(dir, &settings)
            }
            Self::Db(db) => db
                .runtime
                .block_on(db.store.remove_account(name))
                .map_err(store_error),
        }
    }

    /// Where the rotated refresh token of `account`, as saved, goes.
    pub fn tokens(&self, account: &Account) -> AccountTokens {
        match self {
            Self::Dir(dir) => settings::saved_tokens(dir, account),
            Self::Db(db) => AccountTokens::Database {
                tokens: Arc::new(DbTokens {
                    store: db.store.clone(),
                    key: db.key.clone(),
                    handle: db.runtime.handle().clone(),
                }),
                name: account.name.clone(),
                stored: settings::stored_refresh_token(account),
            },
        }
    }

    /// What a database poller does to each account before its sync: an
    /// OAuth2 account's token source attached, rotated tokens written
    /// where the account lives.
    pub fn prepare_tokens(&self) -> pop3_client::sql::Prepare {
        let Self::Db(db) = self else {
            return Arc::new(|_| Ok(()));
        };
        prepare_tokens(&db.store, db.key.clone(), db.runtime.handle().clone())
    }
}

/// For a `DbPoller` over `store`: each OAuth2 account gets a token source
/// refreshing its grant, rotated refresh tokens sealed back into the
/// database (on `handle`, from the refresh's own thread).
pub fn prepare_tokens(
    store: &SqlStore,
    key: Option<DbKey>,
    handle: tokio::runtime::Handle,
) -> pop3_client::sql::Prepare {
    let tokens = Arc::new(DbTokens {
        store: store.clone(),
        key,
        handle,
    });
    Arc::new(move |account: &mut Account| {
        let store = AccountTokens::Database {
            tokens: Arc::clone(&tokens),
            name: account.name.clone(),
            stored: settings::stored_refresh_token(account),
        };
        settings::attach_tokens(account, store, None)
    })
}
