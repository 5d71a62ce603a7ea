//! POP3 clients, blocking and async, over the one sans-IO core in
//! [`pop3_proto`]: rustls TLS (implicit or STLS) verified by default, SASL,
//! pipelining, bodies streamed in bounded memory, every wait bounded, and
//! errors an application can act on.
//!
//! - [`blocking::Client`]: over `std::io` (any `Read + Write`, or a
//!   connection made by [`transport`]).
//! - [`async_client::Client`]: over futures-io, on any runtime; with the
//!   `tokio` feature, `pop3_client::tokio::Client::connect`.
//! - [`smtp::SmtpClient`]: sending mail, a blocking SMTP submission client
//!   over [`smtp_auth`]'s sans-IO core and the same transport.
//! - [`transport`]: TCP and TLS set-up, protocol-neutral.
//!
//! Both clients drive the same engine and the same batches of commands, so
//! neither holds protocol logic of its own, and they offer the same
//! operations (a test compares them).
//!
//! # Connect, list, fetch, quit
//!
//! Blocking:
//!
//! ```
//! use pop3_client::{blocking::Client, ClientConfig, Credentials, Security};
//! # use pop3_client::testing::{TestServer, TestServerConfig};
//! # use pop3_client::pop3_proto::server::ServerMessage;
//! # let server = TestServer::start(TestServerConfig {
//! #     implicit_tls: true,
//! #     messages: vec![ServerMessage { uid: "a1".into(), content: b"Subject: hi\r\n\r\nHello.\r\n".to_vec() }],
//! #     ..TestServerConfig::default()
//! # })?;
//!
//! let config = ClientConfig::builder("pop.example.com")
//!     .security(Security::Tls) // implicit TLS, port 995, certificates verified
//!     .build()?;
//! # // The example runs against an in-process server instead.
//! # let config = server.client_config();
//! let credentials = Credentials::new("user", "password");
//! let mut client = Client::connect(&config, &credentials)?;
//! for entry in client.list()? {
//!     println!("message {}: {} bytes", entry.msg, entry.octets);
//! }
//! for item in client.uidl()? {
//!     let message = client.retr_vec(item.msg)?; // exactly as sent, dot-unstuffed
//!     assert!(message.starts_with(b"Subject: hi"));
//!     // store it durably, then remember item.uid
//! }
//! client.quit()?; // commits deletions, then TLS close_notify
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Async, on any executor (here tokio, with the `tokio` feature:
//! `pop3_client::tokio::Client` connects with tokio's TCP):
//!
//! ```
//! use pop3_client::{ClientConfig, Credentials};
//! # use pop3_client::testing::{TestServer, TestServerConfig};
//! # use pop3_client::pop3_proto::server::ServerMessage;
//! # let server = TestServer::start(TestServerConfig {
//! #     implicit_tls: true,
//! #     messages: vec![ServerMessage { uid: "a1".into(), content: b"Subject: hi\r\n\r\nHello.\r\n".to_vec() }],
//! #     ..TestServerConfig::default()
//! # })?;
//! # let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! # runtime.block_on(async {
//!
//! let config = ClientConfig::builder("pop.example.com").build()?;
//! # let config = server.client_config();
//! let credentials = Credentials::new("user", "password");
//! let mut client = pop3_client::tokio::Client::connect(&config, &credentials).await?;
//! for entry in client.list().await? {
//!     let message = client.retr_vec(entry.msg).await?;
//!     assert_eq!(message.len() as u64, entry.octets);
//! }
//! client.quit().await?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Over a stream of the caller's (a socket pair, a proxy, its own TLS),
//! `from_stream(stream, &config, is_tls)` on either client says whether
//! that stream is already secure.
//!
//! # Features
//!
//! - `tokio`: `pop3_client::tokio::Client`, connecting with tokio's TCP; `retr_tokio`
//!   and `top_tokio` take tokio's `AsyncWrite`.
//! - `testing`: in-process POP3 and SMTP servers (`pop3_client::testing`,
//!   `pop3_client::testing::smtp`) with TLS and fault injection.
//! - `serde`: account settings ([`account::Account`]) serialize.
//! - `aws-lc-rs`: aws-lc-rs instead of ring as the crypto provider.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod config;
pub mod endpoint;
mod error;
mod mailbox;
pub mod oauth;
pub mod pop3;
pub mod smtp;
#[cfg(feature = "testing")]
pub mod testing;
mod timer;
pub mod transport;

#[cfg(feature = "tokio")]
pub use mailbox::poller;
#[cfg(feature = "sqlite")]
pub use mailbox::sql;
pub use mailbox::{account, async_storage, lease, store, sync, verify};
pub use pop3::summary;

#[cfg(feature = "serde")]
pub use config::WithSecrets;
pub use config::{
    AuthMethod, ClientConfig, ClientConfigBuilder, Credentials, Secret, TokenSource,
    DEFAULT_MAX_LISTING, DEFAULT_MAX_MESSAGE,
};
pub use endpoint::{
    CertPin, CertificateInfo, CustomTls, Endpoint, Protocol, Security, Timeouts, TlsFailure,
    TlsReason, TlsRoots,
};
pub use error::{Error, ErrorKind, MismatchSign, Remedy};
#[cfg(feature = "tokio")]
pub use pop3::tokio;
pub use pop3::{async_client, blocking};
pub use pop3::{FetchProgress, MessageSink, ProgressFn, ServerRefusal, UidlItem};
pub use pop3_proto;
pub use pop3_proto::{Capabilities, Greeting, ListEntry, MsgNum, Stat, Uid};
pub use smtp_auth;
