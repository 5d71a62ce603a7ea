//! The DATA encoder: message bytes in, SMTP DATA bytes out, chunk by chunk.
//! A thin wrapper over pop3-proto's [`DotStuffer`] in its normalising mode,
//! the workspace's one dot-stuffer.

use pop3_proto::frame::DotStuffer;

/// Turns a message, given in chunks of any size from any source, into what
/// follows DATA's 354 (RFC 5321 section 4.5.2):
///
/// - a `.` starting a line is doubled;
/// - bare LF and bare CR become CRLF (CRLF stays), across chunk boundaries
///   (a CR ending one chunk and the LF starting the next are one CRLF);
/// - [`finish`](Self::finish) adds CRLF if the message did not end with a
///   line ending, then `.` CRLF.
///
/// Memory is bounded: the output for a chunk is at most twice its length,
/// and the encoder keeps two flags between chunks.
///
/// ```
/// use smtp_auth::DataEncoder;
/// let mut enc = DataEncoder::new();
/// let mut out = Vec::new();
/// enc.push(b"Subject: hi\n\n.leading dot\r", &mut out);
/// enc.push(b"\nno final newline", &mut out);
/// enc.finish(&mut out);
/// assert_eq!(out, b"Subject: hi\r\n\r\n..leading dot\r\nno final newline\r\n.\r\n");
/// ```
#[derive(Debug, Clone)]
pub struct DataEncoder {
    stuffer: DotStuffer,
    bytes_in: u64,
}

impl Default for DataEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl DataEncoder {
    /// An encoder at the start of a message.
    pub fn new() -> Self {
        Self {
            stuffer: DotStuffer::normalizing(),
            bytes_in: 0,
        }
    }

    /// Appends `chunk`, encoded, to `out`.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        self.bytes_in += chunk.len() as u64;
        self.stuffer.push(chunk, out);
    }

    /// Ends the message (line ending if needed, then `.` CRLF); the encoder
    /// is ready for another message afterwards.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        self.stuffer.finish(out);
        self.bytes_in = 0;
    }

    /// Message bytes pushed since the start of the message.
    pub fn bytes_in(&self) -> u64 {
        self.bytes_in
    }
}
