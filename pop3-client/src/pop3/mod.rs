//! POP3: the operations written once (the `client` module), the engine that runs
//! them over [`pop3_proto`]'s session, and the two drivers built from the
//! list, [`blocking`] and [`async_client`] (and [`tokio`], the async one
//! over tokio's TCP).

mod batch;
mod client;
mod commands;
mod engine;
mod login;
mod profile;
mod sink;
pub mod summary;

pub mod async_client;
pub mod blocking;
#[cfg(feature = "tokio")]
pub mod tokio;

pub use batch::ServerRefusal;
pub use commands::UidlItem;
pub use engine::{FetchProgress, ProgressFn};
pub use profile::ServerProfile;
pub use sink::{AsyncMessageSink, MessageSink};
