//! POP3 clients, blocking and async, over the one sans-IO core in
//! [`pop3_proto`]: rustls TLS (implicit or STLS) verified by default, SASL,
//! pipelining, bodies streamed in bounded memory, every wait bounded, and
//! errors an application can act on.
//!
//! - [`blocking::Client`]: over `std::io` (any `Read + Write`, or a
//!   connection made by [`transport`]).
//! - [`async_client::Client`]: over futures-io, on any runtime; with the
//!   `tokio` feature, `async_client::Client::connect_tokio`.
//! - [`smtp::SmtpClient`]: sending mail, a blocking SMTP submission client
//!   over [`smtp_auth`]'s sans-IO core and the same transport.
//! - [`transport`]: TCP and TLS set-up, protocol-neutral.
//!
//! Both clients drive the same engine and the same batches of commands, so
//! neither holds protocol logic of its own.

#![forbid(unsafe_code)]

pub mod account;
pub mod async_client;
mod batch;
pub mod blocking;
mod config;
mod engine;
mod error;
mod ops;
pub mod smtp;
pub mod store;
pub mod summary;
pub mod sync;
#[cfg(feature = "testing")]
pub mod testing;
#[cfg(feature = "testing")]
pub mod testing_smtp;
mod timer;
#[cfg(feature = "tokio")]
pub mod tokio;
pub mod transport;

pub use batch::ServerRefusal;
pub use config::{
    AuthMethod, ClientConfig, ClientConfigBuilder, Credentials, CustomTls, Secret, Security,
    Timeouts, TlsRoots, DEFAULT_MAX_LISTING, DEFAULT_MAX_MESSAGE,
};
pub use engine::{FetchProgress, ProgressFn};
pub use error::{Error, ErrorKind, MismatchSign};
pub use ops::{MessageSink, UidlItem};
pub use pop3_proto;
pub use pop3_proto::{Capabilities, Greeting, ListEntry, MsgNum, Stat, Uid};
pub use smtp_auth;
pub use transport::{CertPin, CertificateInfo, TlsFailure, TlsReason};
