//! Incremental sync: fetch only what is new, exactly once, under a delete
//! policy.
//!
//! Messages are known by their UIDL unique-id (message numbers are never
//! identity). Each run follows one order, and the order is the guarantee:
//!
//! 1. at start, deliveries an earlier run began but did not record are
//!    reconciled against the sink (found: recorded; not found: dropped);
//! 2. per group of messages: the intent (UID and the sink's name for it) is
//!    recorded, the messages are fetched and written, the group is made
//!    durable in the sink at once (group commit), then the UIDs are recorded
//!    (in the same journal write as the next group's intents: one flush for
//!    both, since both come after this commit and before the next delivery);
//! 3. only then DELE (as the policy says), then QUIT, then the deletions are
//!    recorded.
//!
//! A process killed at any instant therefore loses nothing and, at its next
//! run, delivers nothing twice. [`plan`] decides what each session does,
//! without I/O; [`sync_blocking`] carries it out.
//!
//! ```no_run
//! use pop3_client::account::{Account, Credential};
//! use pop3_client::store::MaildirSink;
//! use pop3_client::sync::{state::StateFile, sync_blocking, SyncOptions};
//!
//! let account = Account::for_email("me", "me@gmail.com", Credential::app_password("xxxx"))?;
//! let mut state = StateFile::open("me.state", &account.state_key())?;
//! let mut maildir = MaildirSink::create("Maildir")?;
//! let options = SyncOptions { policy: account.delete_policy, ..SyncOptions::default() };
//! let report = sync_blocking(&account.client_config(), &account.credentials(), &mut state, &mut maildir, options, None)?;
//! println!("{} new, {} deleted", report.new, report.deleted);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod plan;
pub mod state;

use std::collections::HashMap;
use std::io;
use std::time::{SystemTime, UNIX_EPOCH};

use pop3_proto::{MsgNum, Uid};

use crate::blocking::Client;
use crate::config::{ClientConfig, Credentials};
use crate::engine::ProgressFn;
use crate::error::Error;
use crate::ops::MessageSink;
use crate::store::DeliverySink;

pub use plan::{Listed, SessionPlan, SyncOptions, SyncReport, SyncRun};
use state::{StateChange, StateStore};

/// Marks `uid` as deleted by the application, for the policy
/// [`crate::account::DeletePolicy::WhenDeletedLocally`]: the next sync
/// deletes it on the server.
pub fn mark_deleted_locally(store: &mut dyn StateStore, uid: &Uid) -> io::Result<()> {
    store.apply(&[StateChange::DeletedLocally { uid: uid.clone() }])
}

/// The state failed: the sync stops, nothing is deleted.
fn state_error(e: io::Error) -> Error {
    Error::Io(io::Error::new(
        e.kind(),
        format!("the sync state could not be read or written: {e}"),
    ))
}

fn sink_error(e: io::Error) -> Error {
    Error::Io(io::Error::new(
        e.kind(),
        format!("a message could not be stored: {e}"),
    ))
}

/// The clock of a sync: the injected time, or the system's.
fn now_of(options: &SyncOptions) -> u64 {
    options.now.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    })
}

/// Step 1 of every sync: deliveries begun by an earlier run are recorded if
/// the sink has them and dropped if it does not.
fn reconcile(
    run: &mut SyncRun,
    store: &mut dyn StateStore,
    sink: &mut dyn DeliverySink,
) -> Result<state::SyncState, Error> {
    let loaded = store.load().map_err(state_error)?;
    let mut changes = Vec::new();
    for intent in &loaded.pending {
        if sink.reconcile(&intent.delivery).map_err(sink_error)? {
            run.recovered();
            changes.push(StateChange::Delivered {
                uid: intent.uid.clone(),
                at: run.now(),
            });
        } else {
            changes.push(StateChange::Abandoned {
                uid: intent.uid.clone(),
            });
        }
    }
    store.apply(&changes).map_err(state_error)?;
    store.load().map_err(state_error)
}

/// Joins UIDL and LIST into the listing the plan reads (message order).
fn join_listing(uids: Vec<crate::UidlItem>, sizes: &[crate::ListEntry]) -> Vec<Listed> {
    let sizes: HashMap<MsgNum, u64> = sizes.iter().map(|e| (e.msg, e.octets)).collect();
    let mut listing: Vec<Listed> = uids
        .into_iter()
        .map(|item| Listed {
            octets: sizes.get(&item.msg).copied().unwrap_or(0),
            msg: item.msg,
            uid: item.uid,
        })
        .collect();
    listing.sort_by_key(|l| l.msg);
    listing
}

/// Without UIDL (only when allowed): every listed message, named by its
/// number in this session; nothing is remembered between runs.
fn listing_without_uids(sizes: &[crate::ListEntry]) -> Vec<Listed> {
    sizes
        .iter()
        .filter_map(|e| {
            Some(Listed {
                msg: e.msg,
                uid: Uid::new(format!("msg-{}", e.msg).as_bytes())?,
                octets: e.octets,
            })
        })
        .collect()
}

fn no_uidl_error(host: &str) -> Error {
    Error::Config(format!(
        "{host} does not support UIDL, so messages cannot be told apart between runs and a sync could fetch them twice; allow \"fetch all, then delete\" to fetch everything and delete it from the server"
    ))
}

/// Passes a group's messages to the sink under their reserved names.
struct GroupSink<'a> {
    sink: &'a mut dyn DeliverySink,
    names: &'a [String],
}

impl MessageSink for GroupSink<'_> {
    fn begin(&mut self, index: usize, _: MsgNum) -> io::Result<()> {
        let name = self
            .names
            .get(index)
            .ok_or_else(|| io::Error::other("a message outside the group"))?;
        self.sink.begin(name)
    }
    fn write(&mut self, _: usize, chunk: &[u8]) -> io::Result<()> {
        self.sink.write(chunk)
    }
    fn end(&mut self, _: usize, _: u64) -> io::Result<()> {
        self.sink.end()
    }
}

/// Syncs a mailbox with the blocking client: connects (as often as the
/// server needs, see [`SyncRun::another_session`]), fetches what `store`
/// does not know into `sink`, applies the delete policy, and reports.
/// `progress` is called for every chunk of every message.
pub fn sync_blocking(
    config: &ClientConfig,
    credentials: &Credentials,
    store: &mut dyn StateStore,
    sink: &mut dyn DeliverySink,
    options: SyncOptions,
    mut progress: Option<ProgressFn>,
) -> Result<SyncReport, Error> {
    let now = now_of(&options);
    let mut run = SyncRun::new(options, now, &credentials.user)?;
    let mut known = reconcile(&mut run, store, sink)?;
    loop {
        let mut client = match Client::connect(config, credentials) {
            Ok(client) => client,
            // A follow-up session refused for logging in too soon: the sync
            // ends with what it has and says when to come back.
            Err(Error::LoginDelay { seconds, .. }) if run.report().sessions > 0 => {
                run.login_delayed(seconds);
                break;
            }
            Err(e) => return Err(e),
        };
        run.session_started(client.capabilities().login_delay());
        client.on_progress(progress.take());
        let sizes = client.list()?;
        let (listing, with_uids) = match client.uidl() {
            Ok(uids) => (join_listing(uids, &sizes), true),
            Err(Error::Server { .. }) if run.options().allow_without_uidl => {
                (listing_without_uids(&sizes), false)
            }
            Err(Error::Server { .. }) => return Err(no_uidl_error(&config.host)),
            Err(e) => return Err(e),
        };
        let empty = state::SyncState::default();
        let plan = run.plan(if with_uids { &known } else { &empty }, &listing);
        if with_uids {
            store.apply(&plan.housekeeping).map_err(state_error)?;
        }
        let mut fetched = Vec::new();
        // The records of the group last made durable, written together with
        // the next group's intents (one journal flush for both; both follow
        // that group's commit and precede the next group's delivery), or
        // alone after the last group, before any DELE.
        let mut recorded: Vec<StateChange> = Vec::new();
        for group in &plan.fetch {
            let names = match group
                .iter()
                .map(|l| sink.reserve(&l.uid))
                .collect::<io::Result<Vec<_>>>()
            {
                Ok(names) => names,
                Err(e) => {
                    store.apply(&recorded).map_err(state_error)?;
                    return Err(sink_error(e));
                }
            };
            if with_uids {
                let mut batch = std::mem::take(&mut recorded);
                batch.extend(group.iter().zip(&names).map(|(l, name)| {
                    StateChange::Intent(state::Intent {
                        uid: l.uid.clone(),
                        delivery: name.clone(),
                    })
                }));
                store.apply(&batch).map_err(state_error)?;
            }
            let msgs: Vec<MsgNum> = group.iter().map(|l| l.msg).collect();
            let outcomes = client.retr_many(
                &msgs,
                &mut GroupSink {
                    sink: &mut *sink,
                    names: &names,
                },
            );
            let outcomes = match outcomes {
                Ok(o) => o,
                Err(e) => {
                    sink.rollback();
                    return Err(e);
                }
            };
            if let Err(e) = sink.commit() {
                sink.rollback();
                return Err(sink_error(e));
            }
            let stored: Vec<Option<u64>> =
                outcomes.iter().map(|o| o.as_ref().ok().copied()).collect();
            let changes = run.stored(group, &stored);
            if with_uids {
                recorded = changes;
            }
            fetched.extend(
                group
                    .iter()
                    .zip(&stored)
                    .filter(|(_, s)| s.is_some())
                    .map(|(l, _)| l.clone()),
            );
        }
        store.apply(&recorded).map_err(state_error)?;
        let deletions = if with_uids {
            run.deletions(&plan)
        } else {
            // Fetch all, then delete: what was stored goes.
            fetched
        };
        let mut deleted = Vec::new();
        if !deletions.is_empty() {
            let msgs: Vec<MsgNum> = deletions.iter().map(|l| l.msg).collect();
            for (item, outcome) in deletions.iter().zip(client.dele_many(&msgs)?) {
                if outcome.is_ok() {
                    deleted.push(item.clone());
                }
            }
        }
        progress = client.take_progress();
        client.quit()?;
        let changes = run.deleted(&deleted);
        if with_uids {
            store.apply(&changes).map_err(state_error)?;
        }
        known = store.load().map_err(state_error)?;
        if !run.another_session(!deleted.is_empty()) {
            break;
        }
    }
    Ok(run.finish())
}
