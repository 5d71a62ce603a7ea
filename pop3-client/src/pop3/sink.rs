//! Where fetched messages go, chunk by chunk: the sink traits of the two
//! drivers ([`MessageSink`] blocking, [`AsyncMessageSink`] async) and the
//! sinks the clients use themselves (none, a writer, memory).

use std::future::Future;
use std::io;

use futures_io::AsyncWrite;
use futures_util::io::AsyncWriteExt;
use pop3_proto::MsgNum;

use super::batch::ServerRefusal;

/// Receives the messages of a fetch, chunk by chunk, in bounded memory.
pub trait MessageSink {
    /// Message `index` of the batch (number `msg`) begins.
    fn begin(&mut self, index: usize, msg: MsgNum) -> io::Result<()> {
        let _ = (index, msg);
        Ok(())
    }
    /// More of message `index`: exactly the bytes the server sent, unstuffed.
    fn write(&mut self, index: usize, chunk: &[u8]) -> io::Result<()>;
    /// Message `index` is complete with `octets` bytes.
    fn end(&mut self, index: usize, octets: u64) -> io::Result<()> {
        let _ = (index, octets);
        Ok(())
    }
}

/// A sink for commands without bodies.
pub(crate) struct NoBody;

impl MessageSink for NoBody {
    fn write(&mut self, _: usize, _: &[u8]) -> io::Result<()> {
        Ok(())
    }
}

/// Streams one message into a `Write`.
pub(crate) struct WriteSink<'a, W: io::Write + ?Sized>(pub(crate) &'a mut W);

impl<W: io::Write + ?Sized> MessageSink for WriteSink<'_, W> {
    fn write(&mut self, _: usize, chunk: &[u8]) -> io::Result<()> {
        self.0.write_all(chunk)
    }
}

/// Collects messages into memory (the `Vec<u8>` conveniences).
#[derive(Default)]
pub(crate) struct VecSink(pub(crate) Vec<Vec<u8>>);

impl MessageSink for VecSink {
    fn begin(&mut self, index: usize, _: MsgNum) -> io::Result<()> {
        if self.0.len() <= index {
            self.0.resize(index + 1, Vec::new());
        }
        Ok(())
    }
    fn write(&mut self, index: usize, chunk: &[u8]) -> io::Result<()> {
        if let Some(buf) = self.0.get_mut(index) {
            buf.extend_from_slice(chunk);
        }
        Ok(())
    }
}

/// Pairs each fetch outcome with its collected body.
pub(crate) fn zip_bodies(
    outcomes: Vec<Result<u64, ServerRefusal>>,
    sink: VecSink,
) -> Vec<Result<Vec<u8>, ServerRefusal>> {
    let mut bodies = sink.0;
    bodies.resize(outcomes.len(), Vec::new());
    outcomes
        .into_iter()
        .zip(bodies)
        .map(|(outcome, body)| outcome.map(|_| body))
        .collect()
}

/// Receives fetched messages chunk by chunk, asynchronously: the async
/// twin of [`MessageSink`].
pub trait AsyncMessageSink {
    /// Message `index` of the batch (number `msg`) begins.
    fn begin(&mut self, index: usize, msg: MsgNum) -> impl Future<Output = io::Result<()>> {
        let _ = (index, msg);
        async { Ok(()) }
    }
    /// More of message `index`, exactly as the server sent it, unstuffed.
    fn write(&mut self, index: usize, chunk: &[u8]) -> impl Future<Output = io::Result<()>>;
    /// Message `index` is complete with `octets` bytes.
    fn end(&mut self, index: usize, octets: u64) -> impl Future<Output = io::Result<()>> {
        let _ = (index, octets);
        async { Ok(()) }
    }
}

impl AsyncMessageSink for NoBody {
    async fn write(&mut self, _: usize, _: &[u8]) -> io::Result<()> {
        Ok(())
    }
}

impl AsyncMessageSink for VecSink {
    async fn begin(&mut self, index: usize, msg: MsgNum) -> io::Result<()> {
        MessageSink::begin(self, index, msg)
    }
    async fn write(&mut self, index: usize, chunk: &[u8]) -> io::Result<()> {
        MessageSink::write(self, index, chunk)
    }
}

/// Streams one message into a futures-io `AsyncWrite`.
pub(crate) struct AsyncWriteSink<'a, W: AsyncWrite + Unpin + ?Sized>(pub(crate) &'a mut W);

impl<W: AsyncWrite + Unpin + ?Sized> AsyncMessageSink for AsyncWriteSink<'_, W> {
    async fn write(&mut self, _: usize, chunk: &[u8]) -> io::Result<()> {
        self.0.write_all(chunk).await
    }
}
