//! Sans-IO SMTP submission (RFC 6409): bytes in, events out; calls in, bytes
//! out. No sockets, no async, no clock, no threads, no `unsafe`.
//!
//! - [`ReplyParser`]: replies with enhanced status codes, streamed across
//!   any split of the input, bounded ([`reply::MAX_LINE`],
//!   [`reply::MAX_LINES`]).
//! - [`Capabilities`]: what EHLO offered.
//! - [`SmtpSession`]: greeting, EHLO, STARTTLS (injection refused, EHLO
//!   again after TLS), AUTH with pop3-proto's [`SaslClient`] and SASL-IR,
//!   MAIL/RCPT/DATA pipelined when offered, per-recipient outcomes, QUIT.
//! - [`DataEncoder`]: a message into DATA bytes, chunk by chunk
//!   (dot-stuffing and CRLF normalisation by pop3-proto's
//!   [`DotStuffer`](pop3_proto::frame::DotStuffer)).
//! - [`Error`] and [`Refusal`]: typed outcomes with [`Error::kind`] and
//!   [`Error::is_transient`]; server text is kept, escaped.
//!
//! [`SaslClient`]: pop3_proto::sasl::SaslClient
//!
//! # A whole session, from a canned transcript
//!
//! A driver writes the session's output, feeds it what the server sent and
//! acts on events. The TLS handshake is the driver's; here it is pretended.
//!
//! ```
//! use pop3_proto::sasl::SaslClient;
//! use smtp_auth::{Config, Envelope, Event, SmtpSession};
//!
//! // What the server sends, in the pieces a network might deliver.
//! let server: &[&[u8]] = &[
//!     b"220 mail.example.org ESMTP ready\r\n",
//!     b"250-mail.example.org\r\n250-STARTTLS\r\n250 SIZE 10000\r\n",
//!     b"220 2.0.0 Ready to start TLS\r\n",
//!     b"250-mail.example.org\r\n250-PIPELINING\r\n250-AUTH PLAIN LOGIN\r\n250 SIZE 10000\r",
//!     b"\n235 2.7.0 Authentication successful\r\n",
//!     b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 No such user\r\n354 Go ahead\r\n",
//!     b"250 2.0.0 Ok: queued as 4BRT3\r\n221 2.0.0 Bye\r\n",
//! ];
//! let message = b"Subject: hi\n\n.a line with a leading dot\n";
//! let envelope = Envelope::new("me@example.org", ["you@example.net", "nobody@example.net"])
//!     .with_size(message.len() as u64);
//!
//! let mut session = SmtpSession::new(Config::default())?;
//! let mut sasl = Some(SaslClient::plain("me@example.org", "app password")?);
//! let mut to_server = Vec::new();
//! let mut buffer = Vec::new();
//! let mut delivered = None;
//! for piece in server {
//!     buffer.extend_from_slice(piece); // a read
//!     loop {
//!         let (used, event) = session.advance(&buffer)?;
//!         buffer.drain(..used);
//!         match event {
//!             Event::NeedInput => break,
//!             Event::Ready if !session.is_tls() => session.starttls()?,
//!             Event::StartTls => session.tls_established()?, // after the handshake
//!             Event::Ready => session.authenticate(sasl.take().unwrap())?,
//!             Event::Authenticated => session.send_mail(&envelope)?,
//!             Event::SendData => {
//!                 for chunk in message.chunks(7) {
//!                     session.write_data(chunk)?;
//!                     to_server.extend_from_slice(session.output()); // write
//!                     session.clear_output();
//!                 }
//!                 session.finish_data()?;
//!             }
//!             Event::Sent(delivery) => {
//!                 delivered = Some(delivery);
//!                 session.quit()?;
//!             }
//!             Event::Failed(error) => return Err(error.into()),
//!             Event::Closed => break,
//!         }
//!         to_server.extend_from_slice(session.output()); // write
//!         session.clear_output();
//!     }
//! }
//! session.handle_eof()?;
//!
//! let delivery = delivered.unwrap();
//! assert_eq!(delivery.accepted().collect::<Vec<_>>(), ["you@example.net"]);
//! let (refused, why) = delivery.refused().next().unwrap();
//! assert_eq!((refused, why.code, why.kind.name()), ("nobody@example.net", 550, "recipient"));
//! assert_eq!(delivery.text, "Ok: queued as 4BRT3");
//! assert_eq!(
//!     String::from_utf8(to_server)?,
//!     "EHLO localhost\r\nSTARTTLS\r\nEHLO localhost\r\n\
//!      AUTH PLAIN AG1lQGV4YW1wbGUub3JnAGFwcCBwYXNzd29yZA==\r\n\
//!      MAIL FROM:<me@example.org> SIZE=40\r\nRCPT TO:<you@example.net>\r\n\
//!      RCPT TO:<nobody@example.net>\r\nDATA\r\n\
//!      Subject: hi\r\n\r\n..a line with a leading dot\r\n.\r\nQUIT\r\n"
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod caps;
mod data;
mod error;
pub mod reply;
mod session;

pub use caps::Capabilities;
pub use data::DataEncoder;
pub use error::{ArgumentError, Error, Refusal, RefusalKind, Step};
pub use reply::{EnhancedCode, Reply, ReplyError, ReplyParser};
pub use session::{
    Config, Delivery, Envelope, Event, RecipientOutcome, SmtpSession, State, MAX_ADDRESS,
    MAX_AUTH_LINE, PIPELINE_WINDOW,
};
