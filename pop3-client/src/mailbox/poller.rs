//! The poller: every mailbox synced on its interval, many at once, each
//! failing alone.
//!
//! A [`Poller`] holds mailboxes ([`Mailbox`]: a name, a host, one sync) and
//! keeps each flowing on tokio: on its interval; with a bound on syncs in
//! flight and on connections per host (a provider that counts connections
//! per IP is not flooded); the server's LOGIN-DELAY and a token endpoint's
//! Retry-After honoured; a transient failure retried after an exponential
//! backoff with jitter; a failure only the user can mend (a wrong password,
//! a certificate, a setting, a sign-in to renew) pausing that mailbox until
//! [`Poller::resume`] says its settings changed. Each mailbox's
//! [`Health`] is data: last success, last error (kind and words),
//! consecutive failures, next attempt, whether it needs the user. One slow
//! or silent server delays no other mailbox beyond its own timeout: each
//! sync runs on a blocking thread of its own.
//!
//! [`next_attempt`] is the schedule alone, without I/O or a clock of its
//! own: the time is given. A poller is driven by one [`Poller::run`] (or
//! [`Poller::poll_due`] rounds) at a time.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::sync::Semaphore;

use crate::error::{Error, ErrorKind, Remedy};
use crate::mailbox::sync::{StopSignal, SyncFailure, SyncReport};

/// How the poller paces its mailboxes.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PollerConfig {
    /// Between two polls of a mailbox that worked (default 5 minutes).
    pub interval: Duration,
    /// Syncs in flight at once, over all mailboxes (default 16).
    pub concurrency: usize,
    /// Syncs in flight at once per server host (default 2).
    pub per_host: usize,
    /// The first wait after a transient failure (default 30 seconds); it
    /// doubles with each failure in a row, with jitter.
    pub backoff: Duration,
    /// The longest wait after failures (default 1 hour).
    pub max_backoff: Duration,
}

impl Default for PollerConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(300),
            concurrency: 16,
            per_host: 2,
            backoff: Duration::from_secs(30),
            max_backoff: Duration::from_secs(3600),
        }
    }
}

/// One mailbox the poller keeps flowing.
pub trait Mailbox: Send + Sync + 'static {
    /// Its name, unique among the poller's mailboxes.
    fn name(&self) -> &str;
    /// The server's host (for the per-host bound).
    fn host(&self) -> &str;
    /// One sync, blocking (the poller runs it on a thread of its own),
    /// with `stop` in its [`SyncOptions::stop`](crate::sync::SyncOptions::stop)
    /// so that a stopping poller's syncs end after their group, with QUIT.
    fn poll(&self, stop: &StopSignal) -> Result<SyncReport, SyncFailure>;

    /// What the user can do about `error` from this mailbox (by default
    /// what the error itself says; an account knows its provider too).
    fn remedy(&self, error: &Error) -> Option<Remedy> {
        error.remedy()
    }
}

/// How a mailbox is doing, as data for a screen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Health {
    /// When a sync last worked.
    pub last_success: Option<SystemTime>,
    /// The last failure's kind and words (kept after a success, for the
    /// record; `consecutive_failures` says whether it is current).
    pub last_error: Option<(ErrorKind, String)>,
    /// What the user can do about the last failure, when the library
    /// knows (kept with `last_error`).
    pub remedy: Option<Remedy>,
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// When the next sync may start; `None` while paused.
    pub next_attempt: Option<SystemTime>,
    /// Paused until the user mends something (the error says what).
    pub needs_user_action: bool,
    /// Messages stored by the last sync that worked.
    pub last_new: usize,
    /// A sync of it is under way (never two at once).
    pub polling: bool,
}

/// Whether only the user can mend `error` (the poller then pauses the
/// mailbox rather than retrying): a refused login, a certificate, a
/// setting, a sign-in to renew, POP3 off at the provider.
pub fn needs_user(error: &Error) -> bool {
    !error.is_transient()
        && matches!(
            error.kind(),
            ErrorKind::Auth
                | ErrorKind::AuthMethod
                | ErrorKind::AppPassword
                | ErrorKind::Tls
                | ErrorKind::Config
                | ErrorKind::PopDisabled
                | ErrorKind::OAuthRequired
                | ErrorKind::Reconsent
        )
}

/// The schedule after a sync ended at `now`: `health` brought up to date,
/// and when the next may start (`None`: paused for the user). `jitter` in
/// 0..1 spreads the retries of mailboxes that failed together.
pub fn next_attempt(
    health: &mut Health,
    outcome: Result<&SyncReport, &Error>,
    now: SystemTime,
    config: &PollerConfig,
    jitter: f64,
) -> Option<SystemTime> {
    let next = match outcome {
        Ok(report) => {
            health.last_success = Some(now);
            health.consecutive_failures = 0;
            health.needs_user_action = false;
            health.last_new = report.new;
            // LOGIN-DELAY: not before the server allows.
            let allowed = report
                .next_sync_not_before
                .map(|secs| later(SystemTime::UNIX_EPOCH, Duration::from_secs(secs)));
            let due = later(now, config.interval);
            Some(allowed.map_or(due, |at| at.max(due)))
        }
        Err(error) => {
            health.consecutive_failures = health.consecutive_failures.saturating_add(1);
            health.last_error = Some((error.kind(), error.to_string()));
            health.remedy = error.remedy();
            if needs_user(error) {
                health.needs_user_action = true;
                None
            } else {
                let doublings = health.consecutive_failures.saturating_sub(1).min(20);
                let wait = config
                    .backoff
                    .saturating_mul(1u32 << doublings)
                    .min(config.max_backoff);
                // Between half and all of the wait.
                let jitter = if jitter.is_finite() {
                    jitter.clamp(0.0, 1.0)
                } else {
                    1.0
                };
                let wait = wait.mul_f64(0.5 + 0.5 * jitter);
                // What the server asked, within reason (a day at most).
                let asked = error
                    .retry_after()
                    .map(|a| a.min(Duration::from_secs(86_400)));
                let wait = asked.map_or(wait, |after| after.max(wait));
                Some(later(now, wait))
            }
        }
    };
    health.next_attempt = next;
    next
}

/// An account synced into a Maildir, its state in a file (what `account
/// sync` does), as a poller's mailbox.
#[derive(Debug, Clone)]
pub struct MaildirMailbox {
    /// The account.
    pub account: crate::account::Account,
    /// Its state file.
    pub state: std::path::PathBuf,
    /// Where its mail goes.
    pub maildir: std::path::PathBuf,
    /// How it syncs (the policy and first sync come from the account).
    pub options: crate::sync::SyncOptions,
    /// Its own limits for connecting and each answer (default: the
    /// client's); a server that stops answering holds its mailbox this
    /// long, and no other.
    pub timeouts: Option<crate::endpoint::Timeouts>,
}

impl Mailbox for MaildirMailbox {
    fn name(&self) -> &str {
        &self.account.name
    }

    fn host(&self) -> &str {
        &self.account.incoming.host
    }

    fn remedy(&self, error: &Error) -> Option<Remedy> {
        self.account.remedy(error)
    }

    fn poll(&self, stop: &StopSignal) -> Result<SyncReport, SyncFailure> {
        let failed = |what: String, source: std::io::Error| SyncFailure {
            error: Error::Storage { what, source },
            report: Box::default(),
        };
        let mut state = crate::sync::state::StateFile::open(&self.state, &self.account.state_key())
            .map_err(|e| failed(format!("the state {}", self.state.display()), e))?;
        let mut sink = crate::store::MaildirSink::create(&self.maildir)
            .map_err(|e| failed(format!("the Maildir {}", self.maildir.display()), e))?;
        let options = crate::sync::SyncOptions {
            policy: self.account.delete_policy,
            first_sync: self.account.first_sync,
            stop: Some(stop.clone()),
            ..self.options.clone()
        };
        let mut config = self.account.client_config();
        if let Some(timeouts) = self.timeouts {
            config.timeouts = timeouts;
        }
        crate::sync::sync_blocking(
            &config,
            &self.account.credentials(),
            &mut state,
            &mut sink,
            options,
            None,
        )
    }
}

/// `at + wait`, or a time far off when that is beyond the clock.
fn later(at: SystemTime, wait: Duration) -> SystemTime {
    at.checked_add(wait)
        .or_else(|| at.checked_add(Duration::from_secs(10 * 365 * 86_400)))
        .unwrap_or(at)
}

/// What a sync's end sends back to the loop.
/// A sync that ended: its mailbox, its outcome, and what the user can do
/// about its failure (asked of the mailbox before the health lock).
type Ended = (String, Result<SyncReport, SyncFailure>, Option<Remedy>);

/// Mailboxes kept flowing on tokio.
pub struct Poller {
    config: PollerConfig,
    mailboxes: Vec<Arc<dyn Mailbox>>,
    health: Arc<Mutex<BTreeMap<String, Health>>>,
    hosts: Mutex<HashMap<String, Arc<Semaphore>>>,
    slots: Arc<Semaphore>,
    /// The signal of the run under way (a new one for each run).
    stop: Mutex<StopSignal>,
}

impl Poller {
    /// A poller with no mailbox yet.
    pub fn new(config: PollerConfig) -> Self {
        let slots = Arc::new(Semaphore::new(config.concurrency.max(1)));
        Self {
            config,
            mailboxes: Vec::new(),
            health: Arc::default(),
            hosts: Mutex::default(),
            slots,
            stop: Mutex::new(StopSignal::new()),
        }
    }

    /// Adds a mailbox (due at once); `false`, and nothing added, when one
    /// of that name is there already.
    pub fn add(&mut self, mailbox: Arc<dyn Mailbox>) -> bool {
        if self.mailboxes.iter().any(|m| m.name() == mailbox.name()) {
            return false;
        }
        self.lock_health()
            .insert(mailbox.name().to_owned(), Health::default());
        self.mailboxes.push(mailbox);
        true
    }

    /// Every mailbox's health, by name.
    pub fn health(&self) -> BTreeMap<String, Health> {
        self.lock_health().clone()
    }

    /// The user mended `name`'s settings: due again at once.
    pub fn resume(&self, name: &str) {
        if let Some(health) = self.lock_health().get_mut(name) {
            health.needs_user_action = false;
            health.next_attempt = Some(SystemTime::now());
        }
    }

    fn lock_health(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Health>> {
        self.health.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn host_slots(&self, host: &str) -> Arc<Semaphore> {
        let mut hosts = self.hosts.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(
            hosts
                .entry(host.to_ascii_lowercase())
                .or_insert_with(|| Arc::new(Semaphore::new(self.config.per_host.max(1)))),
        )
    }

    /// A new stop signal for the syncs started from now on: an earlier
    /// run's stop does not carry over.
    fn fresh_signal(&self) -> StopSignal {
        let signal = StopSignal::new();
        *self.stop.lock().unwrap_or_else(PoisonError::into_inner) = signal.clone();
        signal
    }

    /// The mailboxes that may start now (due, not paused, not under way),
    /// marked as under way.
    fn take_due(&self, now: SystemTime) -> Vec<Arc<dyn Mailbox>> {
        let mut health = self.lock_health();
        self.mailboxes
            .iter()
            .filter(|m| {
                let Some(h) = health.get_mut(m.name()) else {
                    return false;
                };
                let due =
                    !h.polling && !h.needs_user_action && h.next_attempt.is_none_or(|at| at <= now);
                h.polling |= due;
                due
            })
            .cloned()
            .collect()
    }

    /// Starts `mailbox`'s sync (on a blocking thread, within the bounds);
    /// its end is sent to `done`.
    fn start(&self, mailbox: Arc<dyn Mailbox>, done: tokio::sync::mpsc::UnboundedSender<Ended>) {
        let host = self.host_slots(mailbox.host());
        let slots = Arc::clone(&self.slots);
        let stop = self
            .stop
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        tokio::spawn(async move {
            // The host's bound first: a busy host holds no global slot.
            let host_permit = host.acquire_owned().await;
            let slot = slots.acquire_owned().await;
            let name = mailbox.name().to_owned();
            let polled = Arc::clone(&mailbox);
            let outcome = if stop.is_stopped() {
                // Told to stop while it waited for a slot: not begun.
                Err(SyncFailure {
                    error: Error::Io(std::io::Error::other("not begun: the poller is stopping")),
                    report: Box::default(),
                })
            } else {
                tokio::task::spawn_blocking(move || polled.poll(&stop))
                    .await
                    .unwrap_or_else(|e| {
                        Err(SyncFailure {
                            error: Error::Io(std::io::Error::other(format!(
                                "the sync of this mailbox stopped unexpectedly: {e}"
                            ))),
                            report: Box::default(),
                        })
                    })
            };
            drop((slot, host_permit));
            let remedy = outcome
                .as_ref()
                .err()
                .and_then(|f| mailbox.remedy(&f.error));
            let _ = done.send((name, outcome, remedy));
        });
    }

    /// A sync ended: its mailbox's health and next attempt.
    fn ended(&self, ended: &Ended, begun: bool) {
        let (name, outcome, remedy) = ended;
        let jitter = f64::from(
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos()),
        ) / 1e9;
        if let Some(health) = self.lock_health().get_mut(name) {
            health.polling = false;
            if begun {
                let view = outcome.as_ref().map_err(|f| &f.error);
                next_attempt(health, view, SystemTime::now(), &self.config, jitter);
                if outcome.is_err() {
                    health.remedy.clone_from(remedy);
                }
            }
        }
    }

    /// Polls every mailbox that is due now, within the bounds, and returns
    /// each one's outcome in the order they ended (a paused one, or one
    /// already under way, is not polled).
    pub async fn poll_due(&self) -> Vec<(String, Result<SyncReport, Error>)> {
        self.fresh_signal();
        let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
        let due = self.take_due(SystemTime::now());
        let count = due.len();
        for mailbox in due {
            self.start(mailbox, done_tx.clone());
        }
        drop(done_tx);
        let mut outcomes = Vec::with_capacity(count);
        while let Some(ended) = done_rx.recv().await {
            self.ended(&ended, true);
            let (name, outcome, _) = ended;
            outcomes.push((name, outcome.map_err(|f| f.error)));
        }
        outcomes
    }

    /// Polls each mailbox as it falls due, each on its own (a long sync
    /// holds up no other), until `stop` completes (SIGTERM, Ctrl-C, the
    /// application's own signal); the syncs in flight then end after their
    /// group, with QUIT, and those waiting for a slot do not begin, before
    /// this returns.
    pub async fn run(&self, stop: impl std::future::Future<Output = ()>) {
        self.run_with(stop, |_, _| {}).await;
    }

    /// As [`Poller::run`], telling `outcome` of each sync as it ends
    /// (a log line, a screen's refresh).
    pub async fn run_with(
        &self,
        stop: impl std::future::Future<Output = ()>,
        mut outcome: impl FnMut(&str, &Result<SyncReport, Error>),
    ) {
        let signal = self.fresh_signal();
        let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<Ended>();
        let mut in_flight = 0usize;
        let mut stop = std::pin::pin!(stop);
        loop {
            for mailbox in self.take_due(SystemTime::now()) {
                in_flight += 1;
                self.start(mailbox, done_tx.clone());
            }
            let wait = self.until_next_due();
            tokio::select! {
                () = &mut stop => break,
                Some(ended) = done_rx.recv() => {
                    in_flight -= 1;
                    self.ended(&ended, true);
                    let (name, result, _) = ended;
                    outcome(&name, &result.map_err(|f| f.error));
                }
                () = tokio::time::sleep(wait) => {}
            }
        }
        signal.stop();
        while in_flight > 0 {
            let Some(ended) = done_rx.recv().await else {
                break;
            };
            in_flight -= 1;
            let begun = ended
                .1
                .as_ref()
                .map_or_else(|f| !is_not_begun(&f.error), |_| true);
            self.ended(&ended, begun);
            let (name, result, _) = ended;
            if begun {
                outcome(&name, &result.map_err(|f| f.error));
            }
        }
    }

    /// How long until the next mailbox falls due (at most a minute, so a
    /// resumed mailbox is seen soon).
    fn until_next_due(&self) -> Duration {
        let now = SystemTime::now();
        self.lock_health()
            .values()
            .filter(|h| !h.needs_user_action && !h.polling)
            .filter_map(|h| h.next_attempt)
            .map(|at| at.duration_since(now).unwrap_or(Duration::ZERO))
            .min()
            .unwrap_or(Duration::from_secs(60))
            .min(Duration::from_secs(60))
    }
}

/// Whether `error` says a sync was not begun because the poller stopped.
fn is_not_begun(error: &Error) -> bool {
    matches!(error, Error::Io(e) if e.to_string() == "not begun: the poller is stopping")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn the_schedule_backs_off_pauses_for_the_user_and_honours_the_server() {
        let config = PollerConfig::default();
        let mut health = Health::default();
        let timeout = Error::Timeout {
            what: "the greeting".into(),
            after: Duration::from_secs(30),
        };
        // Transient: 30 s, then 60 s, 120 s... (full jitter: the whole wait).
        let waits: Vec<u64> = (0..4)
            .map(|_| {
                let next = next_attempt(&mut health, Err(&timeout), at(1000), &config, 1.0);
                next.unwrap().duration_since(at(1000)).unwrap().as_secs()
            })
            .collect();
        assert_eq!(waits, [30, 60, 120, 240]);
        assert_eq!(health.consecutive_failures, 4);
        // Jitter takes at most half off.
        let next = next_attempt(&mut health, Err(&timeout), at(1000), &config, 0.0).unwrap();
        assert_eq!(next.duration_since(at(1000)).unwrap().as_secs(), 240);
        // Capped.
        for _ in 0..20 {
            next_attempt(&mut health, Err(&timeout), at(1000), &config, 1.0);
        }
        assert_eq!(health.next_attempt, Some(at(1000 + 3600)));
        // A success resets; LOGIN-DELAY beyond the interval is honoured.
        let report = SyncReport {
            new: 2,
            next_sync_not_before: Some(2000),
            ..SyncReport::default()
        };
        assert_eq!(
            next_attempt(&mut health, Ok(&report), at(1000), &config, 0.5),
            Some(at(2000))
        );
        assert_eq!((health.consecutive_failures, health.last_new), (0, 2));
        // A wrong password pauses until the user acts.
        let auth = Error::Auth {
            code: None,
            server_text: "authentication failed".into(),
        };
        assert_eq!(
            next_attempt(&mut health, Err(&auth), at(3000), &config, 0.5),
            None
        );
        assert!(health.needs_user_action);
        assert_eq!(health.last_error.as_ref().unwrap().0, ErrorKind::Auth);
        assert_eq!(health.remedy, Some(Remedy::CheckPassword));
    }
}
