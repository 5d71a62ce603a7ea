//! One mailbox's state store and sink in a [`SqlStore`].
//!
//! A message is written when it is complete, invisible, and made visible
//! with the rest of its group at the commit, so a crash leaves an earlier
//! group's messages or this one's, never half a group; it is held whole in
//! memory until written (bounded by the client's body cap,
//! `ClientConfig::session.max_body`).
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
use sqlx::AnyConnection;

use super::{io_error, now_ms, token_of, ttl_ms, SqlStore};

/// How many journal rows per live line before the journal is compacted.
const COMPACT_RATIO: i64 = 2;

use crate::lease::{Fence, LeaseLost};
use crate::mailbox::async_storage::{AsyncDeliverySink, AsyncStateStore};
use crate::mailbox::store::Delivery;
use crate::mailbox::sync::state::{
    format_change, parse_change, snapshot_lines, StateChange, SyncState,
};
use crate::pop3::summary::{MailAddress, MessageSummary};

/// The message being written: its delivery and bytes so far.
struct Current {
    name: String,
    uid: String,
    headers_only: bool,
    bytes: Vec<u8>,
}

/// One account's state store and sink in a [`SqlStore`].
pub struct SqlMailbox {
    store: SqlStore,
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
    pub(super) fn new(store: SqlStore, account: &str, fence: Option<Fence>, ttl: Duration) -> Self {
        Self {
            store,
            account: account.to_owned(),
            fence,
            ttl,
            current: None,
            staged: Vec::new(),
            renewed: std::time::Instant::now(),
        }
    }

    /// A transaction in which the fence has been checked and the lease
    /// renewed: every write of this mailbox is made in one.
    async fn begin_fenced(&mut self) -> io::Result<sqlx::Transaction<'static, sqlx::Any>> {
        let mut tx = SqlStore::begin_write(self.store.pool(), self.store.engine()).await?;
        self.check_fence(&mut tx).await?;
        Ok(tx)
    }

    /// In `tx`: refuses when the fence no longer holds the lease, renews
    /// it when it does.
    async fn check_fence(&mut self, tx: &mut AnyConnection) -> io::Result<()> {
        let Some(fence) = &self.fence else {
            return Ok(());
        };
        self.renewed = std::time::Instant::now();
        let now = now_ms();
        let renewed = sqlx::query(
            "UPDATE leases SET expires_ms = $1
             WHERE account = $2 AND token = $3 AND expires_ms > $4",
        )
        .bind(now.saturating_add(ttl_ms(self.ttl)))
        .bind(&fence.account)
        .bind(token_of(fence))
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
    tx: &mut AnyConnection,
    account: &str,
    lines: impl Iterator<Item = String>,
) -> io::Result<()> {
    for line in lines {
        sqlx::query("INSERT INTO state_changes (account, change) VALUES ($1, $2)")
            .bind(account)
            .bind(line)
            .execute(&mut *tx)
            .await
            .map_err(io_error)?;
    }
    Ok(())
}

/// Removes `account`'s delivery `name` if it was never made visible.
async fn delete_invisible(conn: &mut AnyConnection, account: &str, name: &str) -> io::Result<()> {
    sqlx::query("DELETE FROM messages WHERE account = $1 AND delivery = $2 AND visible = 0")
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
        use futures_util::TryStreamExt;
        // Streamed: each row applied as it comes, never all rows at once
        // (a mailbox kept on its server for years has 10^5 of them).
        let mut state = SyncState::default();
        let mut stored: i64 = 0;
        {
            let mut rows = sqlx::query_scalar::<_, String>(
                "SELECT change FROM state_changes WHERE account = $1 ORDER BY seq",
            )
            .bind(&self.account)
            .fetch(self.store.pool());
            while let Some(line) = rows.try_next().await.map_err(io_error)? {
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
                stored += 1;
            }
        }
        // Under the fence, in one transaction: invisible messages no intent
        // waits for (a rollback that failed) go, and a journal grown well
        // past what it holds is rewritten as the state's own lines.
        let mut tx = self.begin_fenced().await?;
        let pending: Vec<&str> = state.pending.iter().map(|p| p.delivery.as_str()).collect();
        let invisible: Vec<String> =
            sqlx::query_scalar("SELECT delivery FROM messages WHERE account = $1 AND visible = 0")
                .bind(&self.account)
                .fetch_all(&mut *tx)
                .await
                .map_err(io_error)?;
        for name in invisible.iter().filter(|n| !pending.contains(&n.as_str())) {
            delete_invisible(&mut tx, &self.account, name).await?;
        }
        // The state's own lines are at least one per record: built only
        // when the journal may have outgrown them.
        let at_least = i64::try_from(state.records.len()).unwrap_or(i64::MAX);
        let due = |live: i64| stored > COMPACT_RATIO.saturating_mul(live).saturating_add(100);
        let lines = due(at_least).then(|| snapshot_lines(&state));
        if let Some(lines) = lines.filter(|l| due(i64::try_from(l.len()).unwrap_or(i64::MAX))) {
            sqlx::query("DELETE FROM state_changes WHERE account = $1")
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
             VALUES ($1, $2, $3, $4, 0, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
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
        .execute(self.store.pool())
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
                "UPDATE messages SET visible = 1 WHERE account = $1 AND delivery = $2 AND visible = 0",
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
        if let Ok(mut conn) = self.store.pool().acquire().await {
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
            sqlx::query_scalar("SELECT visible FROM messages WHERE account = $1 AND delivery = $2")
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
        sqlx::query("DELETE FROM messages WHERE account = $1 AND delivery = $2")
            .bind(&self.account)
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(io_error)?;
        tx.commit().await.map_err(io_error)
    }
}
