//! The storage of a sync, awaited: a state store and a delivery sink whose
//! calls are futures (a database behind an async driver), which
//! [`sync_async`](crate::sync::sync_async) takes. Every blocking
//! [`StateStore`] and [`DeliverySink`] is one too (their futures are ready
//! at once), so only an application that writes an async store needs this
//! module; importing it beside the blocking traits makes their method names
//! ambiguous on a blocking store.

use std::io;

use pop3_proto::Uid;

use crate::mailbox::store::{Delivery, DeliverySink};
use crate::mailbox::sync::state::{StateChange, StateStore, SyncState};

/// A state store whose reads and writes are awaited (a database behind an
/// async driver): what [`sync_async`](crate::sync::sync_async) takes. Every
/// blocking [`StateStore`] is one, its calls complete at once.
pub trait AsyncStateStore {
    /// Reads the whole state.
    fn load(&mut self) -> impl std::future::Future<Output = io::Result<SyncState>> + Send;
    /// Records `changes`, durably, in order.
    fn apply(
        &mut self,
        changes: &[StateChange],
    ) -> impl std::future::Future<Output = io::Result<()>> + Send;
    /// Called before any DELE: fails if this sync may no longer change the
    /// server ([`StateStore::confirm_writer`]).
    fn confirm_writer(&mut self) -> impl std::future::Future<Output = io::Result<()>> + Send;
}

impl<T: StateStore + ?Sized> AsyncStateStore for T {
    fn load(&mut self) -> impl std::future::Future<Output = io::Result<SyncState>> + Send {
        std::future::ready(StateStore::load(self))
    }

    fn apply(
        &mut self,
        changes: &[StateChange],
    ) -> impl std::future::Future<Output = io::Result<()>> + Send {
        std::future::ready(StateStore::apply(self, changes))
    }

    fn confirm_writer(&mut self) -> impl std::future::Future<Output = io::Result<()>> + Send {
        std::future::ready(StateStore::confirm_writer(self))
    }
}

/// A [`DeliverySink`] whose calls are awaited (a database behind an async
/// driver): what [`sync_async`](crate::sync::sync_async) takes. Every
/// blocking sink is one, its calls complete at once.
pub trait AsyncDeliverySink {
    /// As [`DeliverySink::reserve`].
    fn reserve(
        &mut self,
        uid: &Uid,
    ) -> impl std::future::Future<Output = io::Result<String>> + Send;
    /// As [`DeliverySink::begin`].
    fn begin(
        &mut self,
        delivery: &Delivery<'_>,
    ) -> impl std::future::Future<Output = io::Result<()>> + Send;
    /// As [`DeliverySink::write`].
    fn write(&mut self, chunk: &[u8]) -> impl std::future::Future<Output = io::Result<()>> + Send;
    /// As [`DeliverySink::end`].
    fn end(&mut self) -> impl std::future::Future<Output = io::Result<()>> + Send;
    /// As [`DeliverySink::commit`].
    fn commit(&mut self) -> impl std::future::Future<Output = io::Result<()>> + Send;
    /// As [`DeliverySink::rollback`].
    fn rollback(&mut self) -> impl std::future::Future<Output = ()> + Send;
    /// As [`DeliverySink::reconcile`].
    fn reconcile(
        &mut self,
        name: &str,
    ) -> impl std::future::Future<Output = io::Result<bool>> + Send;
    /// As [`DeliverySink::remove`].
    fn remove(&mut self, name: &str) -> impl std::future::Future<Output = io::Result<()>> + Send;
}

impl<T: DeliverySink + ?Sized> AsyncDeliverySink for T {
    fn reserve(
        &mut self,
        uid: &Uid,
    ) -> impl std::future::Future<Output = io::Result<String>> + Send {
        std::future::ready(DeliverySink::reserve(self, uid))
    }
    fn begin(
        &mut self,
        delivery: &Delivery<'_>,
    ) -> impl std::future::Future<Output = io::Result<()>> + Send {
        std::future::ready(DeliverySink::begin(self, delivery))
    }
    fn write(&mut self, chunk: &[u8]) -> impl std::future::Future<Output = io::Result<()>> + Send {
        std::future::ready(DeliverySink::write(self, chunk))
    }
    fn end(&mut self) -> impl std::future::Future<Output = io::Result<()>> + Send {
        std::future::ready(DeliverySink::end(self))
    }
    fn commit(&mut self) -> impl std::future::Future<Output = io::Result<()>> + Send {
        std::future::ready(DeliverySink::commit(self))
    }
    fn rollback(&mut self) -> impl std::future::Future<Output = ()> + Send {
        DeliverySink::rollback(self);
        std::future::ready(())
    }
    fn reconcile(
        &mut self,
        name: &str,
    ) -> impl std::future::Future<Output = io::Result<bool>> + Send {
        std::future::ready(DeliverySink::reconcile(self, name))
    }
    fn remove(&mut self, name: &str) -> impl std::future::Future<Output = io::Result<()>> + Send {
        std::future::ready(DeliverySink::remove(self, name))
    }
}
