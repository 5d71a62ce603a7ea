//! The poller over a database: every active mailbox kept flowing by as
//! many worker processes as the application runs, on as many machines.
//!
//! A worker claims a due mailbox and its lease in one transaction
//! ([`SqlStore::claim_due`]: the most overdue first; PostgreSQL skips rows
//! another worker is claiming, SQLite takes one writer at a time), syncs
//! it into the database under the lease's fence, records the outcome in
//! `health` (the schedule of [`next_attempt`]: the interval, LOGIN-DELAY,
//! backoff with jitter, a pause for what only the user can mend), and
//! releases the lease. While a sync runs, a watcher renews its lease and
//! stops it at the next group when the lease is lost or the mailbox's
//! settings changed (a new password, deactivated, removed). A worker that
//! dies leaves its lease to expire; another worker then takes the mailbox
//! over, and the fence makes the dead one's late writes (a process
//! SIGSTOPped and woken) fail and its DELE never go out.

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use sqlx::Row;
use tokio::sync::mpsc;

use super::accounts::time_to_ms;
use super::{io_error, now_ms, take_lease, token_of, AccountRecord, DbKey, Engine, SqlStore};
use crate::account::Account;
use crate::endpoint::Timeouts;
use crate::error::Error;
use crate::lease::Fence;
use crate::poller::{next_attempt, Health, PollerConfig};
use crate::sync::{sync_async, StopSignal, SyncOptions, SyncReport};

/// How a database poller works.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DbPollerConfig {
    /// This worker's name, unique among the workers (the lease's owner).
    pub worker: String,
    /// A lease's life: how long a dead worker's mailbox waits before
    /// another takes it over (default 60 s). Renewed every third of it
    /// while a sync runs.
    pub lease: Duration,
    /// Interval, concurrency, per-host bound, backoff.
    pub pacing: PollerConfig,
    /// Timeouts for every mailbox's connection, instead of its own.
    pub timeouts: Option<Timeouts>,
    /// How long [`DbPoller::run`] waits, once told to stop, for the syncs
    /// in flight to finish their group (default 30 s); a sync still
    /// running then is dropped without QUIT (the server deletes nothing
    /// for it) and its lease expires.
    pub stop_grace: Duration,
}

impl DbPollerConfig {
    /// The defaults, for the worker `worker`.
    pub fn new(worker: impl Into<String>) -> Self {
        Self {
            worker: worker.into(),
            lease: Duration::from_secs(60),
            pacing: PollerConfig::default(),
            timeouts: None,
            stop_grace: Duration::from_secs(30),
        }
    }
}

/// One poll's outcome.
#[derive(Debug)]
#[non_exhaustive]
pub struct Polled {
    /// The mailbox.
    pub name: String,
    /// What the sync did, or why it failed.
    pub outcome: Result<SyncReport, Error>,
}

/// What the application does to an account read from the database before
/// it is synced (attach an OAuth2 token source, say).
pub type Prepare = Arc<dyn Fn(&mut Account) -> Result<(), Error> + Send + Sync>;

/// A worker polling the mailboxes of a [`SqlStore`].
pub struct DbPoller {
    store: SqlStore,
    key: Option<DbKey>,
    config: DbPollerConfig,
    prepare: Option<Prepare>,
    /// Syncs in flight per host, in this worker.
    hosts: Mutex<HashMap<String, usize>>,
}

impl std::fmt::Debug for DbPoller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbPoller")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl SqlStore {
    /// Claims for `worker` the most overdue due mailbox (active, not
    /// paused, its lease free or expired, its host not in `busy_hosts`),
    /// taking its lease for `ttl`: its fence and host, or `None`.
    pub async fn claim_due(
        &self,
        worker: &str,
        ttl: Duration,
        busy_hosts: &BTreeSet<String>,
    ) -> io::Result<Option<(Fence, String)>> {
        let now = now_ms();
        let mut tx = Self::begin_write(self.pool(), self.engine()).await?;
        let lock = match self.engine() {
            Engine::Postgres => " FOR UPDATE OF h SKIP LOCKED",
            Engine::Sqlite => "",
        };
        let candidates = sqlx::query(&format!(
            "SELECT a.name, a.host FROM accounts a
             JOIN health h ON h.account = a.name
             LEFT JOIN leases l ON l.account = a.name
             WHERE a.active = 1 AND h.needs_user = 0 AND h.next_ms <= $1
               AND (l.expires_ms IS NULL OR l.expires_ms <= $1)
             ORDER BY h.next_ms, a.name LIMIT 64{lock}"
        ))
        .bind(now)
        .fetch_all(&mut *tx)
        .await
        .map_err(io_error)?;
        for row in candidates {
            let host: String = row.try_get("host").map_err(io_error)?;
            if busy_hosts.contains(&host) {
                continue;
            }
            let name: String = row.try_get("name").map_err(io_error)?;
            if let Some(fence) = take_lease(&mut tx, &name, worker, ttl).await? {
                tx.commit().await.map_err(io_error)?;
                return Ok(Some((fence, host)));
            }
        }
        tx.commit().await.map_err(io_error)?;
        Ok(None)
    }

    /// Records a sync's outcome in `name`'s health under `fence` (a worker
    /// that lost the lease records nothing), then releases the lease.
    async fn record_outcome(
        &self,
        fence: &Fence,
        version: Option<i64>,
        outcome: Result<&SyncReport, &Error>,
        remedy: Option<crate::error::Remedy>,
        profile: Option<&crate::pop3::ServerProfile>,
        pacing: &PollerConfig,
    ) -> io::Result<()> {
        let mut tx = Self::begin_write(self.pool(), self.engine()).await?;
        // The rows held until the commit (PostgreSQL; SQLite's writer is
        // alone): a settings change or a takeover waits, never interleaves.
        let lock = match self.engine() {
            Engine::Postgres => " FOR UPDATE OF h, a, l",
            Engine::Sqlite => "",
        };
        let row = sqlx::query(&format!(
            "SELECT h.failures, h.last_success_ms, a.version FROM health h
             JOIN accounts a ON a.name = h.account
             JOIN leases l ON l.account = h.account
             WHERE h.account = $1 AND l.token = $2 AND l.expires_ms > $3{lock}"
        ))
        .bind(&fence.account)
        .bind(token_of(fence))
        .bind(now_ms())
        .fetch_optional(&mut *tx)
        .await
        .map_err(io_error)?;
        let Some(row) = row else {
            // The lease was lost, or the mailbox removed: not ours to record.
            return Ok(());
        };
        let mut health = Health {
            consecutive_failures: u32::try_from(
                row.try_get::<i64, _>("failures").map_err(io_error)?,
            )
            .unwrap_or(u32::MAX),
            ..Health::default()
        };
        let now = SystemTime::now();
        let jitter = f64::from(
            now.duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos()),
        ) / 1e9;
        let next = next_attempt(&mut health, outcome, now, pacing, jitter);
        let current = row.try_get::<i64, _>("version").map_err(io_error)?;
        let settings_changed = version.is_some_and(|v| v != current);
        // A failure under settings since replaced says nothing of the new
        // ones: tried again at once.
        let (next_ms, needs_user) = match (settings_changed, next) {
            (true, _) => (0, 0),
            (false, Some(at)) => (time_to_ms(at), 0),
            (false, None) => (0, 1),
        };
        let (kind, text) = health
            .last_error
            .as_ref()
            .map(|(kind, text)| (Some(kind.as_str()), Some(text.as_str())))
            .unwrap_or((None, None));
        let query = match (outcome.is_ok(), settings_changed) {
            (true, _) => sqlx::query(
                "UPDATE health SET next_ms = $1, needs_user = $2, failures = $3,
                     last_success_ms = $4, last_new = $5
                 WHERE account = $6",
            )
            .bind(next_ms)
            .bind(needs_user)
            .bind(i64::from(health.consecutive_failures))
            .bind(health.last_success.map(time_to_ms))
            .bind(i64::try_from(health.last_new).unwrap_or(i64::MAX)),
            // Nor is it counted or shown: no stale error or remedy for
            // settings the user has just mended.
            (false, true) => {
                sqlx::query("UPDATE health SET next_ms = $1, needs_user = $2 WHERE account = $3")
                    .bind(next_ms)
                    .bind(needs_user)
            }
            (false, false) => sqlx::query(
                "UPDATE health SET next_ms = $1, needs_user = $2, failures = $3,
                     last_error_kind = $4, last_error_text = $5, last_error_remedy = $6
                 WHERE account = $7",
            )
            .bind(next_ms)
            .bind(needs_user)
            .bind(i64::from(health.consecutive_failures))
            .bind(kind)
            .bind(text)
            .bind(remedy.map(|r| r.to_text())),
        };
        query
            .bind(&fence.account)
            .execute(&mut *tx)
            .await
            .map_err(io_error)?;
        if let Some(profile) = profile {
            sqlx::query("UPDATE health SET server_profile = $1 WHERE account = $2")
                .bind(profile.to_text())
                .bind(&fence.account)
                .execute(&mut *tx)
                .await
                .map_err(io_error)?;
        }
        sqlx::query("UPDATE leases SET expires_ms = 0 WHERE account = $1 AND token = $2")
            .bind(&fence.account)
            .bind(token_of(fence))
            .execute(&mut *tx)
            .await
            .map_err(io_error)?;
        tx.commit().await.map_err(io_error)
    }

    /// What `name`'s server advertised at its last poll, if known.
    async fn server_profile(&self, name: &str) -> io::Result<Option<crate::pop3::ServerProfile>> {
        let text: Option<Option<String>> =
            sqlx::query_scalar("SELECT server_profile FROM health WHERE account = $1")
                .bind(name)
                .fetch_optional(self.pool())
                .await
                .map_err(io_error)?;
        Ok(text
            .flatten()
            .map(|t| crate::pop3::ServerProfile::from_text(&t))
            .filter(crate::pop3::ServerProfile::is_complete))
    }

    /// The version and whether `name` is still active: `None` once removed.
    async fn settings_version(&self, name: &str) -> io::Result<Option<(i64, bool)>> {
        let row: Option<(i64, i64)> =
            sqlx::query_as("SELECT version, active FROM accounts WHERE name = $1")
                .bind(name)
                .fetch_optional(self.pool())
                .await
                .map_err(io_error)?;
        Ok(row.map(|(version, active)| (version, active != 0)))
    }

    /// The names of the active mailboxes.
    async fn active_names(&self) -> io::Result<Vec<String>> {
        sqlx::query_scalar("SELECT name FROM accounts WHERE active = 1 ORDER BY name")
            .fetch_all(self.pool())
            .await
            .map_err(io_error)
    }

    /// The server host of the mailbox `name`, if there is one.
    async fn host_of(&self, name: &str) -> io::Result<Option<String>> {
        sqlx::query_scalar("SELECT host FROM accounts WHERE name = $1")
            .bind(name)
            .fetch_optional(self.pool())
            .await
            .map_err(io_error)
    }
}

type Ended = (Polled, String);

impl DbPoller {
    /// A worker over `store`, opening secrets with `key`.
    pub fn new(store: SqlStore, key: Option<DbKey>, config: DbPollerConfig) -> Self {
        Self {
            store,
            key,
            config,
            prepare: None,
            hosts: Mutex::default(),
        }
    }

    /// Runs `prepare` on each account before its sync.
    pub fn with_prepare(mut self, prepare: Prepare) -> Self {
        self.prepare = Some(prepare);
        self
    }

    fn busy_hosts(&self) -> BTreeSet<String> {
        let per_host = self.config.pacing.per_host.max(1);
        self.hosts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(_, n)| **n >= per_host)
            .map(|(host, _)| host.clone())
            .collect()
    }

    fn host_count(&self, host: &str, change: isize) {
        let mut hosts = self.hosts.lock().unwrap_or_else(PoisonError::into_inner);
        let n = hosts.entry(host.to_owned()).or_default();
        *n = n.saturating_add_signed(change);
        if *n == 0 {
            hosts.remove(host);
        }
    }

    /// A sync on `host` ended ("" when it never began).
    fn ended(&self, host: &str) {
        if !host.is_empty() {
            self.host_count(host, -1);
        }
    }

    /// Polls every active mailbox once: those whose lease another worker
    /// holds are waited for, up to `wait_for_leases` (a dead worker's lease
    /// expires within the lease's life), then reported as failed.
    pub async fn poll_once(self: &Arc<Self>, wait_for_leases: Duration) -> io::Result<Vec<Polled>> {
        let names = self.store.active_names().await?;
        self.poll_names(names, wait_for_leases).await
    }

    /// Polls the mailboxes `names` once each (active or not), as
    /// [`poll_once`](Self::poll_once) does.
    pub async fn poll_names(
        self: &Arc<Self>,
        names: Vec<String>,
        wait_for_leases: Duration,
    ) -> io::Result<Vec<Polled>> {
        let mut remaining = names;
        let deadline = Instant::now() + wait_for_leases;
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Ended>();
        let mut in_flight = 0usize;
        let mut outcomes = Vec::new();
        let stop = StopSignal::new();
        loop {
            let mut waiting = Vec::new();
            // Refused by another worker's lease in this pass (not merely
            // held back by the bounds): what the deadline fails.
            let mut refused = Vec::new();
            for name in std::mem::take(&mut remaining) {
                if in_flight >= self.config.pacing.concurrency.max(1) {
                    waiting.push(name);
                    continue;
                }
                let Some(host) = self.store.host_of(&name).await? else {
                    outcomes.push(Polled {
                        outcome: Err(Error::invalid_setting(
                            "account",
                            format!("there is no account named \"{name}\""),
                        )),
                        name,
                    });
                    continue;
                };
                if self.busy_hosts().contains(&host) {
                    waiting.push(name);
                    continue;
                }
                let mut conn = self.store.pool().acquire().await.map_err(io_error)?;
                match take_lease(&mut conn, &name, &self.config.worker, self.config.lease).await? {
                    Some(fence) => {
                        in_flight += 1;
                        self.start(fence, host, stop.clone(), done_tx.clone());
                    }
                    None => refused.push(name),
                }
            }
            if Instant::now() >= deadline {
                for name in refused.drain(..) {
                    outcomes.push(Polled {
                        name,
                        outcome: Err(Error::Io(io::Error::other(format!(
                            "another worker held this mailbox's lease for longer than {} s",
                            wait_for_leases.as_secs()
                        )))),
                    });
                }
            }
            waiting.append(&mut refused);
            remaining = waiting;
            if remaining.is_empty() && in_flight == 0 {
                break;
            }
            tokio::select! {
                Some((polled, host)) = done_rx.recv() => {
                    in_flight -= 1;
                    self.ended(&host);
                    outcomes.push(polled);
                }
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
        Ok(outcomes)
    }

    /// Polls due mailboxes until `stop` completes, then lets the syncs in
    /// flight end after their group (QUIT, leases released), within
    /// [`DbPollerConfig::stop_grace`]. `outcome` sees each poll's outcome
    /// as it ends.
    pub async fn run(
        self: &Arc<Self>,
        stop: impl std::future::Future<Output = ()>,
        mut outcome: impl FnMut(&Polled),
    ) -> io::Result<()> {
        let signal = StopSignal::new();
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Ended>();
        let mut in_flight = 0usize;
        let mut stop = std::pin::pin!(stop);
        // How often to look for due mailboxes other workers may have
        // changed: often enough for an interval, rarely enough for the
        // database.
        let look = (self.config.pacing.interval / 4)
            .clamp(Duration::from_millis(200), Duration::from_secs(2));
        loop {
            while in_flight < self.config.pacing.concurrency.max(1) {
                let claimed = self
                    .store
                    .claim_due(&self.config.worker, self.config.lease, &self.busy_hosts())
                    .await;
                match claimed {
                    Ok(Some((fence, host))) => {
                        in_flight += 1;
                        self.start(fence, host, signal.clone(), done_tx.clone());
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!("claiming a mailbox: {e}");
                        break;
                    }
                }
            }
            tokio::select! {
                () = &mut stop => break,
                Some((polled, host)) = done_rx.recv() => {
                    in_flight -= 1;
                    self.ended(&host);
                    outcome(&polled);
                }
                () = tokio::time::sleep(look) => {}
            }
        }
        signal.stop();
        let drain = async {
            while in_flight > 0 {
                let Some((polled, host)) = done_rx.recv().await else {
                    break;
                };
                in_flight -= 1;
                self.ended(&host);
                outcome(&polled);
            }
        };
        if tokio::time::timeout(self.config.stop_grace, drain)
            .await
            .is_err()
        {
            tracing::warn!(
                "syncs still running {} s after the stop: left to their leases",
                self.config.stop_grace.as_secs()
            );
        }
        Ok(())
    }

    /// Starts the sync of the mailbox `fence` holds, on a task of its own.
    /// `host` is counted against the per-host bound from now until the
    /// sync ends.
    fn start(
        self: &Arc<Self>,
        fence: Fence,
        host: String,
        stop: StopSignal,
        done: mpsc::UnboundedSender<Ended>,
    ) {
        self.host_count(&host, 1);
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let name = fence.account.clone();
            let record = this.store.account(&name, this.key.as_ref()).await;
            let outcome = match record {
                Ok(record) => this.sync(record, &fence, stop).await,
                Err(e) => {
                    // Settings that do not read (another key sealed them,
                    // or the row was altered): the mailbox is paused for
                    // the user, not claimed again at once.
                    let error = Error::invalid_setting("account", e.to_string());
                    let recorded = this
                        .store
                        .record_outcome(
                            &fence,
                            None,
                            Err(&error),
                            error.remedy(),
                            None,
                            &this.config.pacing,
                        )
                        .await;
                    if recorded.is_err() {
                        let _ = this.store.release(&fence).await;
                    }
                    Err(error)
                }
            };
            let _ = done.send((Polled { name, outcome }, host));
        });
    }

    /// One sync under `fence`, its outcome recorded.
    async fn sync(
        &self,
        record: AccountRecord,
        fence: &Fence,
        poller_stop: StopSignal,
    ) -> Result<SyncReport, Error> {
        let AccountRecord {
            mut account,
            version,
            ..
        } = record;
        let ttl = self.config.lease;
        if self.key.is_none() {
            // Without the key the secrets read empty: every login would fail
            // and pause its mailbox for nothing.
            let error = Error::invalid_setting("account", super::KeyError::Missing.to_string());
            let _ = self.store.release(fence).await;
            return Err(error);
        }
        if let Some(prepare) = &self.prepare {
            if let Err(error) = prepare(&mut account) {
                let _ = self
                    .store
                    .record_outcome(
                        fence,
                        Some(version),
                        Err(&error),
                        account.remedy(&error),
                        None,
                        &self.config.pacing,
                    )
                    .await;
                return Err(error);
            }
        }
        // This sync's own signal: the poller stopping, the lease lost, or
        // the settings changed, each end it after its group.
        let stop = StopSignal::new();
        let watcher = {
            let store = self.store.clone();
            let fence = fence.clone();
            let stop = stop.clone();
            let name = account.name.clone();
            tokio::spawn(async move {
                let mut renewed = Instant::now();
                loop {
                    tokio::time::sleep(Duration::from_millis(250).min(ttl / 4)).await;
                    if poller_stop.is_stopped() {
                        stop.stop();
                    }
                    if renewed.elapsed() < ttl / 3 {
                        continue;
                    }
                    renewed = Instant::now();
                    let kept = store.renew(&fence, ttl).await.unwrap_or(false);
                    let current = store.settings_version(&name).await.ok().flatten();
                    if !kept || current.map(|(v, _)| v) != Some(version) {
                        stop.stop();
                    }
                }
            })
        };
        let mut config = account.client_config();
        if let Some(timeouts) = self.config.timeouts {
            config.timeouts = timeouts;
        }
        // What the server advertised last time: fewer round trips. A
        // profile that cannot be read only costs them.
        config.server_profile = self
            .store
            .server_profile(&account.name)
            .await
            .ok()
            .flatten();
        let credentials = account.credentials();
        let options = SyncOptions {
            policy: account.delete_policy,
            first_sync: account.first_sync,
            stop: Some(stop),
            max_message: config.session.max_body,
            ..SyncOptions::default()
        };
        let mut state = self.store.mailbox(&account.name, Some(fence.clone()), ttl);
        let mut sink = self.store.mailbox(&account.name, Some(fence.clone()), ttl);
        let result = sync_async(
            || crate::tokio::Client::connect(&config, &credentials),
            &config.host,
            &credentials.user,
            &mut state,
            &mut sink,
            options,
            None,
        )
        .await;
        watcher.abort();
        // A failed sync still says what it saw of the server.
        let profile = match &result {
            Ok(report) => report.server_profile.clone(),
            Err(failure) => failure.report.server_profile.clone(),
        };
        let result = result.map_err(|failure| failure.error);
        let remedy = result.as_ref().err().and_then(|e| account.remedy(e));
        if let Err(e) = self
            .store
            .record_outcome(
                fence,
                Some(version),
                result.as_ref(),
                remedy,
                profile.as_ref(),
                &self.config.pacing,
            )
            .await
        {
            tracing::warn!("recording the outcome of {}: {e}", account.name);
        }
        result
    }
}
