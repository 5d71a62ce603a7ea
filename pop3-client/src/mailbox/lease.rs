//! Leases with fencing: which worker may sync a mailbox now.
//!
//! A worker takes a mailbox's lease ([`LeaseStore::acquire`]) for a time
//! and gets a [`Fence`], a token larger than any handed out before for that
//! mailbox. Every write of its sync goes through the fence ([`Fenced`]
//! around its state store and its sink): a write is made only while the
//! fence still holds the lease, and it renews the lease; the check and the
//! write happen under the mailbox's lease lock, so no other worker can take
//! the lease over in between; a message streaming in renews it too, a few
//! times per life. Before any DELE, and again right before a QUIT that
//! would change the server, the sync asks the state store to confirm it
//! may still change it ([`StateStore::confirm_writer`], which renews the
//! lease for a whole life). So a worker paused past its lease (a long GC,
//! a network partition, SIGSTOP) and woken while another has taken over
//! writes nothing and commits nothing into the sink: its writes fail with
//! [`LeaseLost`], a storage error that says so, and its session is dropped
//! without QUIT, so the server deletes nothing for it. (A worker stopped
//! between that last check and its QUIT leaving the machine holds a lease
//! just renewed for a whole life; and it only ever deletes messages
//! already recorded as stored.)
//!
//! [`MemoryLeases`] serves the workers of one process; the SQLite store
//! (`sql`, feature `sqlite`) checks its fence in each write's own
//! transaction, across processes.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use pop3_proto::Uid;

use crate::mailbox::store::{Delivery, DeliverySink};
use crate::mailbox::sync::state::{StateChange, StateStore, SyncState};

/// The right to sync one mailbox, until the lease expires: the mailbox,
/// the worker, and the token that orders it after every earlier holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The mailbox (the application's account name or id).
    pub account: String,
    /// The worker holding it.
    pub owner: String,
    /// Larger than every fence handed out for this mailbox before.
    pub token: u64,
}

/// A write refused because the writer's lease is gone: it expired and
/// another worker took the mailbox over (or it was released).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the lease on mailbox \"{account}\" was lost (it expired, and another worker may have taken the mailbox over): nothing was written")]
pub struct LeaseLost {
    /// The mailbox.
    pub account: String,
}

impl LeaseLost {
    /// Whether `error` is a lost lease (as a store's `io::Error` carries it).
    pub fn is(error: &io::Error) -> bool {
        error
            .get_ref()
            .is_some_and(|inner| inner.downcast_ref::<LeaseLost>().is_some())
    }
}

/// Who may sync which mailbox now.
pub trait LeaseStore: Send + Sync {
    /// Takes `account`'s lease for `owner` for `ttl`, if no one holds it or
    /// its holder's lease has expired: its fence, or `None` when another
    /// worker holds it.
    fn acquire(&self, account: &str, owner: &str, ttl: Duration) -> io::Result<Option<Fence>>;
    /// Extends the lease by `ttl` from now, if `fence` still holds it.
    fn renew(&self, fence: &Fence, ttl: Duration) -> io::Result<bool>;
    /// Gives the lease up (the sync is over); a lost one is no error.
    fn release(&self, fence: &Fence) -> io::Result<()>;
}

/// One mailbox's lease.
#[derive(Debug)]
struct Lease {
    owner: String,
    token: u64,
    expires: Instant,
    released: bool,
}

/// Leases for the workers of one process.
#[derive(Debug, Default)]
pub struct MemoryLeases {
    /// One lock per mailbox: a write under one mailbox's fence (an fsync)
    /// holds up no other mailbox.
    leases: Mutex<HashMap<String, Arc<Mutex<Option<Lease>>>>>,
}

impl MemoryLeases {
    /// No lease held.
    pub fn new() -> Self {
        Self::default()
    }

    /// `account`'s lease slot (empty the first time).
    fn slot(&self, account: &str) -> Arc<Mutex<Option<Lease>>> {
        let mut leases = self.leases.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(leases.entry(account.to_owned()).or_default())
    }

    /// Runs `write` only while `fence` holds its lease, renewing it by
    /// `ttl`, with the mailbox's lease locked throughout: no one takes the
    /// mailbox over between the check and the write.
    pub fn under_fence<T>(
        &self,
        fence: &Fence,
        ttl: Duration,
        write: impl FnOnce() -> io::Result<T>,
    ) -> io::Result<T> {
        let slot = self.slot(&fence.account);
        let mut lease = slot.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        match lease.as_mut() {
            Some(lease) if lease.token == fence.token && !lease.released && lease.expires > now => {
                lease.expires = now.checked_add(ttl).unwrap_or(lease.expires);
                write()
            }
            _ => Err(io::Error::other(LeaseLost {
                account: fence.account.clone(),
            })),
        }
    }
}

impl LeaseStore for MemoryLeases {
    fn acquire(&self, account: &str, owner: &str, ttl: Duration) -> io::Result<Option<Fence>> {
        let slot = self.slot(account);
        let mut lease = slot.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let token = match lease.as_ref() {
            Some(held) if !held.released && held.expires > now => return Ok(None),
            Some(held) => held.token + 1,
            None => 1,
        };
        *lease = Some(Lease {
            owner: owner.to_owned(),
            token,
            expires: now.checked_add(ttl).unwrap_or(now),
            released: false,
        });
        Ok(Some(Fence {
            account: account.to_owned(),
            owner: owner.to_owned(),
            token,
        }))
    }

    fn renew(&self, fence: &Fence, ttl: Duration) -> io::Result<bool> {
        match self.under_fence(fence, ttl, || Ok(())) {
            Ok(()) => Ok(true),
            Err(e) if LeaseLost::is(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn release(&self, fence: &Fence) -> io::Result<()> {
        let slot = self.slot(&fence.account);
        let mut lease = slot.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(lease) = lease.as_mut() {
            if lease.token == fence.token && lease.owner == fence.owner {
                lease.released = true;
            }
        }
        Ok(())
    }
}

/// A state store or a sink whose writes go through a fence: each is made
/// only while the fence holds the lease (which it renews), so a worker
/// that lost its lease writes nothing.
pub struct Fenced<'l, T> {
    inner: T,
    leases: &'l MemoryLeases,
    fence: Fence,
    ttl: Duration,
    /// When this writer last renewed the lease.
    renewed: Instant,
}

impl<'l, T> Fenced<'l, T> {
    /// `inner`'s writes under `fence` (each renewing the lease by `ttl`).
    pub fn new(inner: T, leases: &'l MemoryLeases, fence: Fence, ttl: Duration) -> Self {
        Self {
            inner,
            leases,
            fence,
            ttl,
            renewed: Instant::now(),
        }
    }

    /// The store or sink itself.
    pub fn into_inner(self) -> T {
        self.inner
    }

    fn fenced<R>(&mut self, write: impl FnOnce(&mut T) -> io::Result<R>) -> io::Result<R> {
        let inner = &mut self.inner;
        let result = self
            .leases
            .under_fence(&self.fence, self.ttl, move || write(inner));
        if result.is_ok() {
            self.renewed = Instant::now();
        }
        result
    }

    /// While a message streams in (a group can take longer than a lease's
    /// life): the lease renewed a few times per life, and the download
    /// stopped at once when it is lost.
    fn keep_alive(&mut self) -> io::Result<()> {
        if self.renewed.elapsed() < self.ttl / 4 {
            return Ok(());
        }
        self.fenced(|_| Ok(()))
    }
}

impl<S: StateStore> StateStore for Fenced<'_, S> {
    fn load(&mut self) -> io::Result<SyncState> {
        self.inner.load()
    }

    fn apply(&mut self, changes: &[StateChange]) -> io::Result<()> {
        self.fenced(|inner| inner.apply(changes))
    }

    fn confirm_writer(&mut self) -> io::Result<()> {
        self.fenced(|inner| inner.confirm_writer())
    }
}

impl<K: DeliverySink> DeliverySink for Fenced<'_, K> {
    fn reserve(&mut self, uid: &Uid) -> io::Result<String> {
        self.inner.reserve(uid)
    }

    fn begin(&mut self, delivery: &Delivery<'_>) -> io::Result<()> {
        self.keep_alive()?;
        self.inner.begin(delivery)
    }

    fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.keep_alive()?;
        self.inner.write(chunk)
    }

    fn end(&mut self) -> io::Result<()> {
        self.keep_alive()?;
        self.inner.end()
    }

    /// Made visible only under the fence: a worker that lost its lease
    /// adds nothing to the mailbox's store.
    fn commit(&mut self) -> io::Result<()> {
        self.fenced(|inner| inner.commit())
    }

    fn rollback(&mut self) {
        self.inner.rollback();
    }

    fn reconcile(&mut self, name: &str) -> io::Result<bool> {
        self.fenced(|inner| inner.reconcile(name))
    }

    fn remove(&mut self, name: &str) -> io::Result<()> {
        self.fenced(|inner| inner.remove(name))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn a_lease_is_one_workers_until_it_expires_and_fences_grow() {
        let leases = MemoryLeases::new();
        let ttl = Duration::from_millis(50);
        let a = leases.acquire("box", "a", ttl).unwrap().unwrap();
        assert!(leases.acquire("box", "b", ttl).unwrap().is_none());
        assert!(leases.renew(&a, ttl).unwrap());
        std::thread::sleep(Duration::from_millis(80));
        let b = leases.acquire("box", "b", ttl).unwrap().unwrap();
        assert!(b.token > a.token);
        // A woke up: nothing it writes gets through.
        assert!(!leases.renew(&a, ttl).unwrap());
        let e = leases.under_fence(&a, ttl, || Ok(())).unwrap_err();
        assert!(LeaseLost::is(&e), "{e}");
        assert!(e.to_string().contains("lease on mailbox \"box\""), "{e}");
        // Released: the next worker need not wait for the expiry.
        leases.release(&b).unwrap();
        let c = leases.acquire("box", "c", ttl).unwrap().unwrap();
        assert!(c.token > b.token);
    }
}
