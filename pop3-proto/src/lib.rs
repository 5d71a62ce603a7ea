//! Sans-IO POP3: bytes in, events out; commands in, bytes out.
//!
//! This crate holds the whole protocol and nothing else: no sockets, no
//! async, no clock, no threads, no `unsafe`. Drivers (the blocking and async
//! clients of `pop3-client`, tests, fuzzers) move bytes between a stream and
//! a [`ClientSession`] (or, in the server role, a [`server::ServerSession`]).
//!
//! - [`frame`]: where lines end; the streaming dot-unstuffing decoder (the
//!   hot path) and the dot-stuffing encoder.
//! - [`Command`]: commands and their encoder, which refuses CR, LF and NUL.
//! - [`sasl`]: PLAIN, LOGIN, CRAM-MD5, XOAUTH2, OAUTHBEARER, protocol-neutral.
//! - [`ClientSession`]: the state machine, capabilities, pipelining window;
//!   LIST and UIDL listings arrive in batches ([`Event::ListEntries`],
//!   [`UidlEntries`]).
//! - [`server`]: the server role.
//!
//! # A whole session, from a canned transcript
//!
//! The driver loop is the same whatever the transport: write the session's
//! output, feed it what the server sent, act on events.
//!
//! ```
//! use pop3_proto::{ClientSession, Command, Event, MsgNum, Payload, State};
//!
//! // What the server sends, in the pieces a network might deliver.
//! let server: &[&[u8]] = &[
//!     b"+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n",
//!     b"+OK mrose's maildrop has 2 messages (320 octets)\r\n",
//!     b"+OK 2 320\r\n+OK 1 whqtswO00WBw418f9t5JxYwZ\r\n",
//!     b"+OK 120 octets\r\nSubject: hi\r\n\r\n..leading dot\r",
//!     b"\n.\r\n+OK dewey POP3 server signing off\r\n",
//! ];
//! let mut session = ClientSession::default();
//! let mut to_server = Vec::new();
//! let mut body = Vec::new();
//! let mut buffer = Vec::new();
//! let mut script = vec![
//!     Command::Quit,
//!     Command::Retr(MsgNum::try_from(1)?),
//!     Command::Uidl(Some(MsgNum::try_from(1)?)),
//!     Command::Stat,
//! ];
//! for piece in server {
//!     buffer.extend_from_slice(piece);
//!     let mut used = 0;
//!     loop {
//!         let (n, event) = session.advance(&buffer[used..])?;
//!         used += n;
//!         match event {
//!             Event::NeedInput => break,
//!             Event::Greeting(g) => {
//!                 let stamp = g.apop_timestamp.unwrap();
//!                 let digest = pop3_proto::apop_digest(&stamp, "tanstaaf");
//!                 session.send(&Command::Apop { user: "mrose", digest: &digest })?;
//!             }
//!             Event::Reply(reply) => {
//!                 assert!(reply.is_ok());
//!                 if let Payload::Stat(stat) = reply.payload {
//!                     assert_eq!((stat.count, stat.octets), (2, 320));
//!                 }
//!             }
//!             Event::Body(chunk) => body.extend_from_slice(chunk),
//!             _ => {}
//!         }
//!         // Next command once the previous one is answered.
//!         if session.room() > 0 && session.state() == State::Transaction {
//!             if let Some(cmd) = script.pop() {
//!                 session.send(&cmd)?;
//!             }
//!         }
//!     }
//!     buffer.drain(..used);
//!     to_server.extend_from_slice(session.output());
//!     session.clear_output();
//! }
//! session.handle_eof()?;
//! assert_eq!(body, b"Subject: hi\r\n\r\n.leading dot\r\n");
//! assert_eq!(
//!     to_server,
//!     b"APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\nSTAT\r\nUIDL 1\r\nRETR 1\r\nQUIT\r\n"
//! );
//! assert_eq!(session.state(), State::Closed);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod encode;
mod error;
pub mod escape;
pub mod frame;
mod listing;
mod parse;
pub mod sasl;
pub mod server;
mod session;
mod types;

pub use encode::{
    apop_digest, check_line_safe, encode_sasl_cancel, encode_sasl_response, Command, CommandKind,
};
pub use error::{EncodeError, ParseError, SaslError, SessionError};
pub use listing::{UidlEntries, UidlIter};
pub use session::{ClientSession, Event, Payload, Reply, SessionConfig, State};
pub use types::{
    is_recent_mode_user, is_uid_byte, Capabilities, Capability, Expire, Greeting, ListEntry,
    MsgNum, RespCode, RespCodeKind, Stat, Status, Uid, UidlEntry, DEFAULT_MAX_UID_LEN,
};
