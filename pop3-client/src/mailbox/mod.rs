//! What an application keeps per mailbox, over the POP3 client: the
//! account settings ([`account`]), the incremental sync with its plan and
//! state ([`sync`]), where messages are stored ([`store`]), which worker
//! may sync a mailbox now ([`lease`]), many mailboxes kept flowing
//! (`poller`, feature `tokio`), and the form's checks ([`verify`]).

pub mod account;
pub mod async_storage;
pub mod lease;
#[cfg(feature = "tokio")]
pub mod poller;
#[cfg(feature = "sqlite")]
pub mod sql;
pub mod store;
pub mod sync;
pub mod verify;
