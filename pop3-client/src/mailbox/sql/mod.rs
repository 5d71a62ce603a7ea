//! Database stores through sqlx (feature `sqlite`; `postgres` adds
//! PostgreSQL): one API, two engines. **SQLite** is the embedded default
//! (one file, WAL, no server); **PostgreSQL** serves many processes on
//! many machines. The tables, made and brought up to date by migrations
//! when the store opens:
//!
//! - `accounts`: each mailbox's settings, its owner and whether it is the
//!   owner's active one; its secrets (passwords, refresh tokens) encrypted
//!   with the application's key ([`DbKey`], XChaCha20-Poly1305), never
//!   stored in the clear;
//! - `health`: per mailbox, the poller's schedule and how it is doing
//!   ([`MailboxHealth`]);
//! - `state_changes`: each mailbox's sync state, as a journal of changes
//!   (rows written in proportion to what a sync does, not to what the
//!   state holds; compacted when it has grown well past the state);
//! - `messages`: raw bytes plus the summary columns an application lists
//!   (From, To, Cc, Reply-To, Date, Subject, Message-ID, In-Reply-To,
//!   References);
//! - `leases`: who may sync a mailbox now, with a fence token every write
//!   checks.
//!
//! [`SqlStore::mailbox`] gives the state store and sink of one mailbox
//! ([`SqlMailbox`]); [`SqlStore::claim_due`] takes the most overdue due
//! mailbox's lease for a worker (PostgreSQL: `FOR UPDATE SKIP LOCKED`;
//! SQLite: one writer at a time, `BEGIN IMMEDIATE`); [`DbPoller`] keeps
//! every active mailbox flowing from many processes at once.

mod accounts;
mod key;
mod mailbox;
mod poller;

use std::io;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};

pub use accounts::{AccountRecord, AccountStoreError, HealthState, MailboxHealth};
pub use key::{DbKey, KeyError, DB_KEY_ENV};
pub use mailbox::SqlMailbox;
pub use poller::{DbPoller, DbPollerConfig, Polled, Prepare};

use crate::lease::Fence;

/// The two engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// SQLite: one file, one writer at a time.
    Sqlite,
    /// PostgreSQL (feature `postgres`).
    Postgres,
}

/// The schema, step by step: (version, SQLite statements, PostgreSQL
/// statements). A step is applied once, in a transaction, by whichever
/// process opens the database first.
const MIGRATIONS: &[(i64, &[&str], &[&str])] = &[
    (
        1,
        &[
            "CREATE TABLE state_changes (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                account TEXT NOT NULL,
                change TEXT NOT NULL)",
            "CREATE INDEX state_changes_account ON state_changes (account, seq)",
            "CREATE TABLE messages (
                account TEXT NOT NULL,
                delivery TEXT NOT NULL,
                uid TEXT NOT NULL,
                headers_only INTEGER NOT NULL,
                visible INTEGER NOT NULL,
                size INTEGER NOT NULL,
                raw BLOB NOT NULL,
                from_addr TEXT, to_addr TEXT, cc TEXT, reply_to TEXT, date INTEGER,
                subject TEXT, message_id TEXT, in_reply_to TEXT, refs TEXT,
                stored_at INTEGER NOT NULL,
                PRIMARY KEY (account, delivery))",
            "CREATE INDEX messages_uid ON messages (account, uid)",
            "CREATE TABLE leases (
                account TEXT PRIMARY KEY,
                owner TEXT NOT NULL,
                token INTEGER NOT NULL,
                expires_ms INTEGER NOT NULL)",
        ],
        &[
            "CREATE TABLE state_changes (
                seq BIGSERIAL PRIMARY KEY,
                account TEXT NOT NULL,
                change TEXT NOT NULL)",
            "CREATE INDEX state_changes_account ON state_changes (account, seq)",
            "CREATE TABLE messages (
                account TEXT NOT NULL,
                delivery TEXT NOT NULL,
                uid TEXT NOT NULL,
                headers_only BIGINT NOT NULL,
                visible BIGINT NOT NULL,
                size BIGINT NOT NULL,
                raw BYTEA NOT NULL,
                from_addr TEXT, to_addr TEXT, cc TEXT, reply_to TEXT, date BIGINT,
                subject TEXT, message_id TEXT, in_reply_to TEXT, refs TEXT,
                stored_at BIGINT NOT NULL,
                PRIMARY KEY (account, delivery))",
            "CREATE INDEX messages_uid ON messages (account, uid)",
            "CREATE TABLE leases (
                account TEXT PRIMARY KEY,
                owner TEXT NOT NULL,
                token BIGINT NOT NULL,
                expires_ms BIGINT NOT NULL)",
        ],
    ),
    (
        2,
        &[
            "CREATE TABLE accounts (
                name TEXT PRIMARY KEY,
                owner TEXT NOT NULL,
                active INTEGER NOT NULL,
                host TEXT NOT NULL,
                settings TEXT NOT NULL,
                secrets BLOB NOT NULL,
                version INTEGER NOT NULL,
                added_ms INTEGER NOT NULL)",
            "CREATE INDEX accounts_owner ON accounts (owner, active)",
            "CREATE TABLE health (
                account TEXT PRIMARY KEY,
                next_ms INTEGER NOT NULL,
                needs_user INTEGER NOT NULL,
                failures INTEGER NOT NULL,
                last_success_ms INTEGER,
                last_error_kind TEXT,
                last_error_text TEXT,
                last_new INTEGER NOT NULL)",
            "CREATE INDEX health_due ON health (next_ms)",
        ],
        &[
            "CREATE TABLE accounts (
                name TEXT PRIMARY KEY,
                owner TEXT NOT NULL,
                active BIGINT NOT NULL,
                host TEXT NOT NULL,
                settings TEXT NOT NULL,
                secrets BYTEA NOT NULL,
                version BIGINT NOT NULL,
                added_ms BIGINT NOT NULL)",
            "CREATE INDEX accounts_owner ON accounts (owner, active)",
            "CREATE TABLE health (
                account TEXT PRIMARY KEY,
                next_ms BIGINT NOT NULL,
                needs_user BIGINT NOT NULL,
                failures BIGINT NOT NULL,
                last_success_ms BIGINT,
                last_error_kind TEXT,
                last_error_text TEXT,
                last_new BIGINT NOT NULL)",
            "CREATE INDEX health_due ON health (next_ms)",
        ],
    ),
    (
        3,
        // What each mailbox's server advertised last time: fewer round
        // trips per poll.
        &["ALTER TABLE health ADD COLUMN server_profile TEXT"],
        &["ALTER TABLE health ADD COLUMN server_profile TEXT"],
    ),
    (
        4,
        // One active mailbox per owner, whatever two writers do at once.
        &["CREATE UNIQUE INDEX accounts_one_active ON accounts (owner) WHERE active = 1"],
        &["CREATE UNIQUE INDEX accounts_one_active ON accounts (owner) WHERE active = 1"],
    ),
    (
        5,
        // What the user can do about the last failure (`Remedy::to_text`),
        // for a screen to say in its own words.
        &["ALTER TABLE health ADD COLUMN last_error_remedy TEXT"],
        &["ALTER TABLE health ADD COLUMN last_error_remedy TEXT"],
    ),
];

pub(crate) fn io_error(e: sqlx::Error) -> io::Error {
    io::Error::other(format!("the database: {e}"))
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

pub(crate) fn ttl_ms(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)
}

pub(crate) fn token_of(fence: &Fence) -> i64 {
    i64::try_from(fence.token).unwrap_or(-1)
}

/// One stored message, as [`SqlStore::messages`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoredMessage {
    /// Its name in the store (unique per account; [`SqlStore::raw`]).
    pub delivery: String,
    /// Its UID on the server.
    pub uid: String,
    /// Its size in bytes, as stored.
    pub size: u64,
    /// Its header only (the whole message was above the size cap).
    pub headers_only: bool,
    /// Its Subject, decoded.
    pub subject: Option<String>,
    /// Its From addresses.
    pub from: Option<String>,
    /// Its To addresses.
    pub to: Option<String>,
    /// Its Cc addresses.
    pub cc: Option<String>,
    /// Its Date, in seconds since the Unix epoch.
    pub date: Option<i64>,
    /// Its Message-ID.
    pub message_id: Option<String>,
    /// When it was stored, in milliseconds since the Unix epoch.
    pub stored_at: i64,
}

/// A database holding many mailboxes: their settings, state, mail, leases
/// and health.
#[derive(Debug, Clone)]
pub struct SqlStore {
    pool: AnyPool,
    engine: Engine,
    /// The file, for SQLite.
    sqlite_path: Option<std::path::PathBuf>,
}

impl SqlStore {
    /// Opens the database at `url` (`sqlite:PATH`, made if missing, or
    /// `postgres://USER:PASSWORD@HOST:PORT/DB` with the `postgres`
    /// feature), and brings its tables up to date.
    pub async fn connect(url: &str) -> io::Result<Self> {
        Self::connect_with(url, 8).await
    }

    /// As [`connect`](Self::connect), with at most `connections` in the
    /// pool.
    pub async fn connect_with(url: &str, connections: u32) -> io::Result<Self> {
        sqlx::any::install_default_drivers();
        let mut sqlite_path = None;
        let (url, engine) = if let Some(path) = url.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "the database: sqlite:PATH names no file",
                ));
            }
            sqlite_path = Some(std::path::PathBuf::from(
                path.split_once('?').map_or(path, |(file, _)| file),
            ));
            let url = if url.contains('?') {
                url.to_owned()
            } else {
                format!("sqlite://{path}?mode=rwc")
            };
            (url, Engine::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            if !cfg!(feature = "postgres") {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "the database: PostgreSQL needs pop3-client's feature `postgres`",
                ));
            }
            (url.to_owned(), Engine::Postgres)
        } else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the database: use sqlite:PATH or postgres://USER:PASSWORD@HOST:PORT/DB",
            ));
        };
        let pool = AnyPoolOptions::new()
            .max_connections(connections.max(1))
            .acquire_timeout(Duration::from_secs(60))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if engine == Engine::Sqlite {
                        // WAL: readers never wait for the writer; writers
                        // wait their turn rather than fail.
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA busy_timeout = 30000").await?;
                        conn.execute("PRAGMA synchronous = FULL").await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .map_err(io_error)?;
        let store = Self {
            pool,
            engine,
            sqlite_path,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Opens (or makes) the SQLite database at `path`.
    pub async fn open(path: &std::path::Path) -> io::Result<Self> {
        Self::connect(&format!("sqlite:{}", path.display())).await
    }

    /// The database file, for SQLite.
    pub fn sqlite_path(&self) -> Option<&std::path::Path> {
        self.sqlite_path.as_deref()
    }

    /// Which engine this is.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// A transaction that writes: SQLite takes the write lock at once
    /// (`BEGIN IMMEDIATE`), so two writers never deadlock upgrading.
    pub(crate) async fn begin_write(
        pool: &AnyPool,
        engine: Engine,
    ) -> io::Result<sqlx::Transaction<'static, sqlx::Any>> {
        match engine {
            Engine::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await,
            Engine::Postgres => pool.begin().await,
        }
        .map_err(io_error)
    }

    /// Applies the migrations this database lacks, one process at a time.
    async fn migrate(&self) -> io::Result<()> {
        let mut tx = Self::begin_write(&self.pool, self.engine).await?;
        if self.engine == Engine::Postgres {
            // Processes starting together: one migrates, the others wait.
            sqlx::query("SELECT pg_advisory_xact_lock(801101939)")
                .execute(&mut *tx)
                .await
                .map_err(io_error)?;
        }
        sqlx::query("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY)")
            .execute(&mut *tx)
            .await
            .map_err(io_error)?;
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations")
            .fetch_all(&mut *tx)
            .await
            .map_err(io_error)?;
        for (version, sqlite, postgres) in MIGRATIONS {
            if applied.contains(version) {
                continue;
            }
            let steps = match self.engine {
                Engine::Sqlite => sqlite,
                Engine::Postgres => postgres,
            };
            for step in *steps {
                sqlx::query(step)
                    .execute(&mut *tx)
                    .await
                    .map_err(io_error)?;
            }
            sqlx::query("INSERT INTO schema_migrations (version) VALUES ($1)")
                .bind(*version)
                .execute(&mut *tx)
                .await
                .map_err(io_error)?;
        }
        tx.commit().await.map_err(io_error)
    }

    /// `account`'s state store and sink, writing under `fence` if given
    /// (renewing the lease for `ttl` at each write).
    pub fn mailbox(&self, account: &str, fence: Option<Fence>, ttl: Duration) -> SqlMailbox {
        SqlMailbox::new(self.clone(), account, fence, ttl)
    }

    /// Takes `account`'s lease for `owner` for `ttl` if no one holds it or
    /// it expired: its fence (larger than any before), or `None`.
    pub async fn acquire(
        &self,
        account: &str,
        owner: &str,
        ttl: Duration,
    ) -> io::Result<Option<Fence>> {
        let mut conn = self.pool.acquire().await.map_err(io_error)?;
        take_lease(&mut conn, account, owner, ttl).await
    }

    /// Renews the lease `fence` holds for `ttl` from now: `false` when it
    /// no longer holds it (expired and taken over, or released).
    pub async fn renew(&self, fence: &Fence, ttl: Duration) -> io::Result<bool> {
        let now = now_ms();
        let renewed = sqlx::query(
            "UPDATE leases SET expires_ms = $1
             WHERE account = $2 AND token = $3 AND expires_ms > $4",
        )
        .bind(now.saturating_add(ttl_ms(ttl)))
        .bind(&fence.account)
        .bind(token_of(fence))
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(io_error)?;
        Ok(renewed.rows_affected() == 1)
    }

    /// Gives the lease up, if `fence` still holds it.
    pub async fn release(&self, fence: &Fence) -> io::Result<()> {
        sqlx::query("UPDATE leases SET expires_ms = 0 WHERE account = $1 AND token = $2")
            .bind(&fence.account)
            .bind(token_of(fence))
            .execute(&self.pool)
            .await
            .map_err(io_error)?;
        Ok(())
    }

    /// How many rows `account`'s state journal holds (what syncs wrote
    /// since the last compaction).
    pub async fn journal_rows(&self, account: &str) -> io::Result<u64> {
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM state_changes WHERE account = $1")
            .bind(account)
            .fetch_one(&self.pool)
            .await
            .map_err(io_error)?;
        Ok(u64::try_from(rows).unwrap_or(0))
    }

    /// How many of `account`'s messages are stored (visible) and how many
    /// are written but waiting for their group's commit: a sync's progress.
    pub async fn message_counts(&self, account: &str) -> io::Result<(u64, u64)> {
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT visible, COUNT(*) FROM messages WHERE account = $1 GROUP BY visible",
        )
        .bind(account)
        .fetch_all(&self.pool)
        .await
        .map_err(io_error)?;
        let count = |visible: i64| {
            rows.iter()
                .find(|(v, _)| *v == visible)
                .map_or(0, |(_, n)| u64::try_from(*n).unwrap_or(0))
        };
        Ok((count(1), count(0)))
    }

    /// `account`'s stored messages, in the order they were stored.
    pub async fn messages(&self, account: &str) -> io::Result<Vec<StoredMessage>> {
        let rows = sqlx::query(
            "SELECT delivery, uid, size, headers_only, subject, from_addr, to_addr, cc, date,
                    message_id, stored_at
             FROM messages WHERE account = $1 AND visible = 1 ORDER BY stored_at, delivery",
        )
        .bind(account)
        .fetch_all(&self.pool)
        .await
        .map_err(io_error)?;
        rows.iter().map(stored_message).collect()
    }

    /// The raw bytes of `account`'s message `delivery`, if stored.
    pub async fn raw(&self, account: &str, delivery: &str) -> io::Result<Option<Vec<u8>>> {
        sqlx::query_scalar(
            "SELECT raw FROM messages WHERE account = $1 AND delivery = $2 AND visible = 1",
        )
        .bind(account)
        .bind(delivery)
        .fetch_optional(&self.pool)
        .await
        .map_err(io_error)
    }

    /// The connection pool, for an application's own tables in the same
    /// database (one URL, one pool; statements with `$N` parameters run
    /// on both engines).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }
}

fn stored_message(row: &AnyRow) -> io::Result<StoredMessage> {
    Ok(StoredMessage {
        delivery: row.try_get("delivery").map_err(io_error)?,
        uid: row.try_get("uid").map_err(io_error)?,
        size: u64::try_from(row.try_get::<i64, _>("size").map_err(io_error)?).unwrap_or(0),
        headers_only: row.try_get::<i64, _>("headers_only").map_err(io_error)? != 0,
        subject: row.try_get("subject").map_err(io_error)?,
        from: row.try_get("from_addr").map_err(io_error)?,
        to: row.try_get("to_addr").map_err(io_error)?,
        cc: row.try_get("cc").map_err(io_error)?,
        date: row.try_get("date").map_err(io_error)?,
        message_id: row.try_get("message_id").map_err(io_error)?,
        stored_at: row.try_get("stored_at").map_err(io_error)?,
    })
}

/// Takes `account`'s lease for `owner` if free or expired, in one
/// statement: the token one more than the last holder's.
pub(crate) async fn take_lease(
    conn: &mut sqlx::AnyConnection,
    account: &str,
    owner: &str,
    ttl: Duration,
) -> io::Result<Option<Fence>> {
    let now = now_ms();
    let token: Option<i64> = sqlx::query_scalar(
        "INSERT INTO leases (account, owner, token, expires_ms) VALUES ($1, $2, 1, $3)
         ON CONFLICT (account) DO UPDATE SET owner = excluded.owner,
             token = leases.token + 1, expires_ms = excluded.expires_ms
         WHERE leases.expires_ms <= $4
         RETURNING token",
    )
    .bind(account)
    .bind(owner)
    .bind(now.saturating_add(ttl_ms(ttl)))
    .bind(now)
    .fetch_optional(&mut *conn)
    .await
    .map_err(io_error)?;
    Ok(token.map(|token| Fence {
        account: account.to_owned(),
        owner: owner.to_owned(),
        token: u64::try_from(token).unwrap_or(0),
    }))
}
