//! A SQLite store (feature `sqlite`, through sqlx): a mailbox's sync state,
//! its messages with the summary columns an application lists (From, To,
//! Cc, Reply-To, Date, Subject, Message-ID, In-Reply-To, References), and
//! leases with fencing, in one database file (WAL, no server).
//!
//! [`SqlStore::mailbox`] gives a handle on one account that is both its
//! [`AsyncStateStore`] and its [`AsyncDeliverySink`]; `sync_async` takes
//! two handles (each with the same fence). The state is a journal of
//! changes per account (rows written in proportion to what a sync does,
//! not to what the state holds), compacted into the state's own lines when
//! it has grown well past them. A message is written when it is complete,
//! invisible, and made visible with the rest of its group at the commit,
//! so a crash leaves an earlier group's messages or this one's, never half
//! a group; it is held whole in memory until written (bounded by the
//! client's body cap, `ClientConfig::session.max_body`).
//!
//! With a [`Fence`] ([`SqlStore::acquire`]), every state write, commit,
//! removal and reconciliation checks in its own transaction that the fence
//! still holds the mailbox's lease, and renews it (as messages complete,
//! too): a worker whose lease another has taken over changes nothing
//! anyone sees (it may write its own invisible rows, which the next load
//! removes), and its sync stops before DELE with
//! [`LeaseLost`](crate::lease::LeaseLost).

use std::io;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pop3_proto::Uid;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::Row;

/// How many journal rows per live line before the journal is compacted.
const COMPACT_RATIO: i64 = 2;

use crate::lease::{Fence, LeaseLost};
use crate::mailbox::async_storage::{AsyncDeliverySink, AsyncStateStore};
use crate::mailbox::store::Delivery;
use crate::mailbox::sync::state::{
    format_change, parse_change, snapshot_lines, StateChange, SyncState,
};
use crate::pop3::summary::{MailAddress, MessageSummary};

/// The tables, made at open when missing.
const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS state_changes (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        account TEXT NOT NULL,
        change TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS state_changes_account ON state_changes (account, seq)",
    "CREATE TABLE IF NOT EXISTS messages (
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
    // Not unique: a UID a server gives to new mail after the old message
    // was deleted is another message (the sync's state decides what is
    // new, and stores each message once).
    "CREATE INDEX IF NOT EXISTS messages_uid ON messages (account, uid)",
    "CREATE TABLE IF NOT EXISTS leases (
        account TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        token INTEGER NOT NULL,
        expires_ms INTEGER NOT NULL)",
];

fn io_error(e: sqlx::Error) -> io::Error {
    io::Error::other(format!("the database: {e}"))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn ttl_ms(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)
}

/// One stored message, as [`SqlStore::messages`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
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
}

/// A SQLite database holding many mailboxes.
#[derive(Debug, Clone)]
pub struct SqlStore {
    pool: SqlitePool,
}

impl SqlStore {
    /// Opens (or makes) the database at `path`, in WAL mode, with its
    /// tables.
    pub async fn open(path: &std::path::Path) -> io::Result<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(io_error)?;
        for statement in SCHEMA {
            sqlx::query(statement)
                .execute(&pool)
                .await
                .map_err(io_error)?;
        }
        Ok(Self { pool })
    }

    /// `account`'s state store and sink, writing under `fence` if given.
    pub fn mailbox(&self, account: &str, fence: Option<Fence>, ttl: Duration) -> SqlMailbox {
        SqlMailbox {
            pool: self.pool.clone(),
            account: account.to_owned(),
            fence,
            ttl,
            current: None,
            staged: Vec::new(),
            renewed: std::time::Instant::now(),
        }
    }

    /// Takes `account`'s lease for `owner` for `ttl` if no one holds it or
    /// it expired: its fence (larger than any before), or `None`.
    pub async fn acquire(
        &self,
        account: &str,
        owner: &str,
        ttl: Duration,
    ) -> io::Result<Option<Fence>> {
        let now = now_ms();
        // One statement: taken only if free or expired, the token one more
        // than the last holder's, atomically.
        let token: Option<i64> = sqlx::query_scalar(
            "INSERT INTO leases (account, owner, token, expires_ms) VALUES (?, ?, 1, ?)
             ON CONFLICT (account) DO UPDATE SET owner = excluded.owner,
                 token = leases.token + 1, expires_ms = excluded.expires_ms
             WHERE leases.expires_ms <= ?
             RETURNING token",
        )
        .bind(account)
        .bind(owner)
        .bind(now.saturating_add(ttl_ms(ttl)))
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(io_error)?;
        Ok(token.map(|token| Fence {
            account: account.to_owned(),
            owner: owner.to_owned(),
            token: u64::try_from(token).unwrap_or(0),
        }))
    }

    /// Gives the lease up, if `fence` still holds it.
    pub async fn release(&self, fence: &Fence) -> io::Result<()> {
        sqlx::query("UPDATE leases SET expires_ms = 0 WHERE account = ? AND token = ?")
            .bind(&fence.account)
            .bind(i64::try_from(fence.token).unwrap_or(-1))
            .execute(&self.pool)
            .await
            .map_err(io_error)?;
        Ok(())
    }

    /// How many rows `account`'s state journal holds (what a sync wrote
    /// since the last compaction).
    pub async fn journal_rows(&self, account: &str) -> io::Result<u64> {
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM state_changes WHERE account = ?")
            .bind(account)
            .fetch_one(&self.pool)
            .await
            .map_err(io_error)?;
        Ok(u64::try_from(rows).unwrap_or(0))
    }

    /// `account`'s stored messages, in the order they were stored.
    pub async fn messages(&self, account: &str) -> io::Result<Vec<StoredMessage>> {
        let rows = sqlx::query(
            "SELECT uid, size, headers_only, subject, from_addr FROM messages
             WHERE account = ? AND visible = 1 ORDER BY stored_at, rowid",
        )
        .bind(account)
        .fetch_all(&self.pool)
        .await
        .map_err(io_error)?;
        rows.iter()
            .map(|row| {
                Ok(StoredMessage {
                    uid: row.try_get("uid").map_err(io_error)?,
                    size: u64::try_from(row.try_get::<i64, _>("size").map_err(io_error)?)
                        .unwrap_or(0),
                    headers_only: row.try_get::<i64, _>("headers_only").map_err(io_error)? != 0,
                    subject: row.try_get("subject").map_err(io_error)?,
                    from: row.try_get("from_addr").map_err(io_error)?,
                })
            })
            .collect()
    }
}

/// The message being written: its delivery and bytes so far.
struct Current {
    name: String,
    uid: String,
    headers_only: bool,
    bytes: Vec<u8>,
}

/// One account's state store and sink in a [`SqlStore`].
pub struct SqlMailbox {
    pool: SqlitePool,
    account: String,
    fence: Option<Fence>,
    ttl: Duration,
    current: Option<Current>,
    /// Written, invisible, waiting for the commit.
    staged: Vec<String>,
    /// When the lease was last renewed by this writer.
    renewed: std::time::Instant,
}

impl SqlMailbox {
    /// A transaction in which the fence has been checked and the lease
    /// renewed: every write of this mailbox is made in one.
    async fn begin_fenced(&mut self) -> io::Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        let mut tx = self.pool.begin().await.map_err(io_error)?;
        self.check_fence(&mut tx).await?;
        Ok(tx)
    }

    /// In `tx`: refuses when the fence no longer holds the lease, renews
    /// it when it does.
    async fn check_fence(&mut self, tx: &mut sqlx::SqliteConnection) -> io::Result<()> {
        let Some(fence) = &self.fence else {
            return Ok(());
        };
        self.renewed = std::time::Instant::now();
        let now = now_ms();
        let renewed = sqlx::query(
            "UPDATE leases SET expires_ms = ?
             WHERE account = ? AND token = ? AND expires_ms > ?",
        )
        .bind(now.saturating_add(ttl_ms(self.ttl)))
        .bind(&fence.account)
        .bind(i64::try_from(fence.token).unwrap_or(-1))
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(io_error)?;
        if renewed.rows_affected() == 1 {
            Ok(())
        } else {
            Err(io::Error::other(LeaseLost {
                account: fence.account.clone(),
            }))
        }
    }
}

/// Appends `lines` to `account`'s state journal, in `tx`.
async fn append_lines(
    tx: &mut sqlx::SqliteConnection,
    account: &str,
    lines: impl Iterator<Item = String>,
) -> io::Result<()> {
    for line in lines {
        sqlx::query("INSERT INTO state_changes (account, change) VALUES (?, ?)")
            .bind(account)
            .bind(line)
            .execute(&mut *tx)
            .await
            .map_err(io_error)?;
    }
    Ok(())
}

/// Removes `account`'s delivery `name` if it was never made visible.
async fn delete_invisible(
    conn: &mut sqlx::SqliteConnection,
    account: &str,
    name: &str,
) -> io::Result<()> {
    sqlx::query("DELETE FROM messages WHERE account = ? AND delivery = ? AND visible = 0")
        .bind(account)
        .bind(name)
        .execute(&mut *conn)
        .await
        .map_err(io_error)?;
    Ok(())
}

fn addresses(list: &[MailAddress]) -> Option<String> {
    (!list.is_empty()).then(|| {
        list.iter()
            .map(|a| a.email.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    })
}

impl AsyncStateStore for SqlMailbox {
    async fn load(&mut self) -> io::Result<SyncState> {
        let rows = sqlx::query("SELECT change FROM state_changes WHERE account = ? ORDER BY seq")
            .bind(&self.account)
            .fetch_all(&self.pool)
            .await
            .map_err(io_error)?;
        let mut state = SyncState::default();
        for row in &rows {
            let line: String = row.try_get("change").map_err(io_error)?;
            let change = parse_change(&line).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "the database's sync state holds a line that is not one: {}",
                        line.escape_debug()
                    ),
                )
            })?;
            state.apply(&change);
        }
        // Under the fence, in one transaction: invisible messages no intent
        // waits for (a rollback that failed) go, and a journal grown well
        // past what it holds is rewritten as the state's own lines.
        let mut tx = self.begin_fenced().await?;
        let pending: Vec<&str> = state.pending.iter().map(|p| p.delivery.as_str()).collect();
        let invisible: Vec<String> =
            sqlx::query_scalar("SELECT delivery FROM messages WHERE account = ? AND visible = 0")
                .bind(&self.account)
                .fetch_all(&mut *tx)
                .await
                .map_err(io_error)?;
        for name in invisible.iter().filter(|n| !pending.contains(&n.as_str())) {
            delete_invisible(&mut tx, &self.account, name).await?;
        }
        let lines = snapshot_lines(&state);
        let live = i64::try_from(lines.len()).unwrap_or(i64::MAX);
        let stored = i64::try_from(rows.len()).unwrap_or(i64::MAX);
        if stored > COMPACT_RATIO.saturating_mul(live).saturating_add(100) {
            sqlx::query("DELETE FROM state_changes WHERE account = ?")
                .bind(&self.account)
                .execute(&mut *tx)
                .await
                .map_err(io_error)?;
            append_lines(&mut tx, &self.account, lines.into_iter()).await?;
        }
        tx.commit().await.map_err(io_error)?;
        Ok(state)
    }

    async fn apply(&mut self, changes: &[StateChange]) -> io::Result<()> {
        let mut tx = self.begin_fenced().await?;
        append_lines(&mut tx, &self.account, changes.iter().map(format_change)).await?;
        tx.commit().await.map_err(io_error)
    }

    async fn confirm_writer(&mut self) -> io::Result<()> {
        let tx = self.begin_fenced().await?;
        tx.commit().await.map_err(io_error)
    }
}

impl AsyncDeliverySink for SqlMailbox {
    /// A delivery name unique within its account across processes and
    /// runs: the time, the process (its id and start) and a counter.
    async fn reserve(&mut self, _uid: &Uid) -> io::Result<String> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        static PROCESS: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        // The process: its id and the instant it first reserved (two
        // containers' process 1 differ in the latter).
        let process = PROCESS.get_or_init(|| {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            format!("{}.{nanos:x}", std::process::id())
        });
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(format!("{}.{process}.{n}", now_ms()))
    }

    async fn begin(&mut self, delivery: &Delivery<'_>) -> io::Result<()> {
        let capacity = usize::try_from(delivery.listed_octets.min(1 << 20)).unwrap_or(0);
        self.current = Some(Current {
            name: delivery.name.to_owned(),
            uid: delivery.uid.to_string(),
            headers_only: delivery.headers_only,
            bytes: Vec::with_capacity(capacity),
        });
        Ok(())
    }

    async fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        match &mut self.current {
            Some(current) => {
                current.bytes.extend_from_slice(chunk);
                Ok(())
            }
            None => Err(io::Error::other("a chunk with no message begun")),
        }
    }

    async fn end(&mut self) -> io::Result<()> {
        let Some(current) = self.current.take() else {
            return Err(io::Error::other("no message begun"));
        };
        let summary = MessageSummary::parse(&current.bytes);
        sqlx::query(
            "INSERT INTO messages (account, delivery, uid, headers_only, visible, size, raw,
                 from_addr, to_addr, cc, reply_to, date, subject, message_id, in_reply_to, refs,
                 stored_at)
             VALUES (?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&self.account)
        .bind(&current.name)
        .bind(&current.uid)
        .bind(i64::from(current.headers_only))
        .bind(i64::try_from(current.bytes.len()).unwrap_or(i64::MAX))
        .bind(&current.bytes)
        .bind(addresses(&summary.from))
        .bind(addresses(&summary.to))
        .bind(addresses(&summary.cc))
        .bind(addresses(&summary.reply_to))
        .bind(summary.date)
        .bind(summary.subject)
        .bind(summary.message_id)
        .bind((!summary.in_reply_to.is_empty()).then(|| summary.in_reply_to.join(" ")))
        .bind((!summary.references.is_empty()).then(|| summary.references.join(" ")))
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .map_err(io_error)?;
        self.staged.push(current.name);
        // A group can take longer than a lease's life: renewed as messages
        // complete, and stopped at once when lost.
        if self.fence.is_some() && self.renewed.elapsed() >= self.ttl / 4 {
            let tx = self.begin_fenced().await?;
            tx.commit().await.map_err(io_error)?;
        }
        Ok(())
    }

    async fn commit(&mut self) -> io::Result<()> {
        let mut tx = self.begin_fenced().await?;
        for name in &self.staged {
            let made = sqlx::query(
                "UPDATE messages SET visible = 1 WHERE account = ? AND delivery = ? AND visible = 0",
            )
            .bind(&self.account)
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(io_error)?;
            // Every staged message made visible, or none: never recorded
            // as stored when it is not.
            if made.rows_affected() != 1 {
                return Err(io::Error::other(format!(
                    "the message written as {name} is no longer in the database: nothing of this group was stored"
                )));
            }
        }
        tx.commit().await.map_err(io_error)?;
        self.staged.clear();
        Ok(())
    }

    async fn rollback(&mut self) {
        self.current = None;
        // A failure leaves invisible rows, removed at the next load.
        let staged = std::mem::take(&mut self.staged);
        if let Ok(mut conn) = self.pool.acquire().await {
            for name in staged {
                let _ = delete_invisible(&mut conn, &self.account, &name).await;
            }
        }
    }

    async fn reconcile(&mut self, name: &str) -> io::Result<bool> {
        // Under the fence: a worker that lost the mailbox does not remove
        // the live worker's deliveries in flight.
        let mut tx = self.begin_fenced().await?;
        let visible: Option<i64> =
            sqlx::query_scalar("SELECT visible FROM messages WHERE account = ? AND delivery = ?")
                .bind(&self.account)
                .bind(name)
                .fetch_optional(&mut *tx)
                .await
                .map_err(io_error)?;
        if visible == Some(0) {
            // Written by a run that stopped before its commit: a leftover.
            delete_invisible(&mut tx, &self.account, name).await?;
        }
        tx.commit().await.map_err(io_error)?;
        Ok(visible == Some(1))
    }

    async fn remove(&mut self, name: &str) -> io::Result<()> {
        let mut tx = self.begin_fenced().await?;
        sqlx::query("DELETE FROM messages WHERE account = ? AND delivery = ?")
            .bind(&self.account)
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(io_error)?;
        tx.commit().await.map_err(io_error)
    }
}
