//! The async client on tokio (feature `tokio`): one call to connect, and
//! tokio's `AsyncWrite` accepted where the futures-io one is.
//!
//! [`Client`] is [`async_client::Client`] over tokio's `TcpStream` (through
//! tokio-util's compat layer), so every operation of the async client is
//! there, and `Client::connect` and `Client::open` connect with tokio's TCP; its futures are `Send` (with a `Send` sink), so a fetch can run
//! in `tokio::spawn` on a multi-threaded runtime.
//!
//! ```no_run
//! # async fn example() -> Result<(), pop3_client::Error> {
//! use pop3_client::{tokio::Client, ClientConfig, Credentials};
//!
//! let config = ClientConfig::new("pop.example.com");
//! let credentials = Credentials::new("me@example.com", "app password");
//! let mut client = Client::connect(&config, &credentials).await?;
//! for item in client.uidl().await? {
//!     // Any tokio AsyncWrite: a tokio::fs::File, a socket, a Vec.
//!     let mut message = Vec::new();
//!     client.retr_tokio(item.msg, &mut message).await?;
//!     println!("{}: {} bytes", item.uid, message.len());
//! }
//! client.quit().await
//! # }
//! ```

use ::tokio::net::TcpStream;
use futures_io::{AsyncRead, AsyncWrite};
use pop3_proto::MsgNum;
use tokio_util::compat::{Compat, TokioAsyncWriteCompatExt};

use super::async_client;
use crate::error::Error;

/// The async client over tokio's TCP.
pub type Client = async_client::Client<Compat<TcpStream>>;

impl<S: AsyncRead + AsyncWrite + Unpin> async_client::Client<S> {
    /// RETR, streamed into tokio's `AsyncWrite` (a `tokio::fs::File`, a
    /// socket) in bounded memory. Returns the message's size.
    pub async fn retr_tokio<W>(&mut self, msg: MsgNum, out: &mut W) -> Result<u64, Error>
    where
        W: ::tokio::io::AsyncWrite + Unpin + ?Sized,
    {
        self.retr(msg, &mut out.compat_write()).await
    }

    /// TOP into tokio's `AsyncWrite`: the header and the first `lines`
    /// body lines.
    pub async fn top_tokio<W>(&mut self, msg: MsgNum, lines: u32, out: &mut W) -> Result<u64, Error>
    where
        W: ::tokio::io::AsyncWrite + Unpin + ?Sized,
    {
        self.top(msg, lines, &mut out.compat_write()).await
    }
}
