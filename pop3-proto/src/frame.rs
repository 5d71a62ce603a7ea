//! Framing: where protocol lines end, and the streaming multi-line body
//! decoder and encoder (dot-unstuffing and dot-stuffing). This is the hot
//! path: scans use memchr's SIMD searches, never a byte-by-byte loop.
//!
//! # Line endings
//! POP3 lines end in CRLF. Some servers (and some stored mail) use a bare LF,
//! so the policy is:
//! - a line ends at LF; a CR right before that LF belongs to the line ending;
//! - in a multi-line body, a line starts after any LF, so `.\n` ends a body as
//!   `.\r\n` does, and `..` at the start of a line is unstuffed either way;
//! - body bytes are passed through unchanged: the decoder never turns LF into
//!   CRLF or back, so the caller gets exactly what the server sent, minus the
//!   stuffing dots and the terminator.
//!
//! # Memory
//! Protocol lines are capped (see [`next_line`]); body lines are not (real
//! mail has lines far beyond any line cap), and bodies are streamed in chunks
//! that borrow the input, so a message of any size passes through in the
//! caller's buffer. [`BodyDecoder::with_limit`] optionally caps the total size.

use memchr::memmem;

use crate::error::SessionError;
use crate::escape::snippet;

/// Default cap on a protocol line (status, CAPA, LIST and UIDL entries): 8 KiB.
pub const DEFAULT_MAX_LINE: usize = 8 * 1024;

/// Finds the first line in `input`.
///
/// Returns the line without its ending (`\r\n` or `\n`) and the number of
/// bytes it took, or `None` when the line is not complete yet. A line longer
/// than `max_line` bytes (ending included) is an error, whether or not its end
/// has arrived, so a server can never make the caller buffer more.
///
/// ```
/// use pop3_proto::frame::next_line;
/// assert_eq!(next_line(b"+OK hi\r\nmore", 100), Ok(Some((&b"+OK hi"[..], 8))));
/// assert_eq!(next_line(b"+OK h", 100), Ok(None));
/// assert!(next_line(b"+OK this is far too long", 8).is_err());
/// ```
#[inline]
pub fn next_line(input: &[u8], max_line: usize) -> Result<Option<(&[u8], usize)>, SessionError> {
    let window = &input[..input.len().min(max_line)];
    match memchr::memchr(b'\n', window) {
        Some(lf) => {
            let line = &input[..lf];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            Ok(Some((line, lf + 1)))
        }
        None if input.len() >= max_line => Err(SessionError::LineTooLong {
            limit: max_line,
            start: snippet(window),
        }),
        None => Ok(None),
    }
}

/// What [`BodyDecoder::decode`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// Body bytes, unstuffed. They borrow the input (or a static `.` in the
    /// rare lenient cases below).
    Chunk(&'a [u8]),
    /// All input was used and the terminator has not come yet: feed more.
    NeedMore,
    /// The terminating `.` line was consumed: the body is complete.
    End,
}

/// Where the decoder stands relative to line starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyState {
    /// At the start of a line (also the state at the start of the body: the
    /// status line just ended, so a leading `.` is a stuffed or final dot).
    LineStart,
    /// A `.` began the line and was consumed.
    Dot,
    /// `.` then CR began the line.
    DotCr,
    /// Inside a line.
    Mid,
    /// The terminator was seen.
    Done,
}

/// Streaming multi-line decoder: removes dot-stuffing and finds the
/// terminator across any split of the input, without allocating.
///
/// ```
/// use pop3_proto::frame::{BodyDecoder, Decoded};
/// let mut dec = BodyDecoder::new();
/// let mut body = Vec::new();
/// // The terminator split across three reads.
/// for part in [&b"Hello\r\n..dots\r"[..], b"\n.", b"\r\n"] {
///     let mut input = part;
///     loop {
///         let (used, found) = dec.decode(input).unwrap();
///         input = &input[used..];
///         match found {
///             Decoded::Chunk(c) => body.extend_from_slice(c),
///             Decoded::NeedMore | Decoded::End => break,
///         }
///     }
/// }
/// assert!(dec.is_done());
/// assert_eq!(body, b"Hello\r\n.dots\r\n");
/// ```
#[derive(Debug, Clone)]
pub struct BodyDecoder {
    state: BodyState,
    total: u64,
    limit: Option<u64>,
    finder: memmem::Finder<'static>,
}

impl Default for BodyDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl BodyDecoder {
    /// A decoder at the start of a body, with no size limit.
    pub fn new() -> Self {
        Self {
            state: BodyState::LineStart,
            total: 0,
            limit: None,
            finder: memmem::Finder::new(b"\n."),
        }
    }

    /// A decoder that fails with [`SessionError::BodyTooLarge`] once the body
    /// exceeds `limit` bytes.
    pub fn with_limit(limit: Option<u64>) -> Self {
        Self {
            limit,
            ..Self::new()
        }
    }

    /// Makes the decoder ready for a new body, keeping its searcher.
    pub fn reset(&mut self, limit: Option<u64>) {
        self.state = BodyState::LineStart;
        self.total = 0;
        self.limit = limit;
    }

    /// Whether the terminator has been seen.
    pub fn is_done(&self) -> bool {
        self.state == BodyState::Done
    }

    /// Body bytes produced so far.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Decodes the start of `input`: returns how many bytes were used and what
    /// was found. Call again with the rest until `NeedMore` (then feed more
    /// input) or `End`.
    pub fn decode<'a>(&mut self, input: &'a [u8]) -> Result<(usize, Decoded<'a>), SessionError> {
        let mut used = 0;
        loop {
            let rest = &input[used..];
            let Some(&first) = rest.first() else {
                let found = if self.is_done() {
                    Decoded::End
                } else {
                    Decoded::NeedMore
                };
                return Ok((used, found));
            };
            match self.state {
                BodyState::Done => return Ok((used, Decoded::End)),
                BodyState::LineStart if first == b'.' => {
                    used += 1;
                    self.state = BodyState::Dot;
                }
                BodyState::LineStart => self.state = BodyState::Mid,
                BodyState::Dot => match first {
                    // A stuffed dot: the second one is content.
                    b'.' => self.state = BodyState::Mid,
                    b'\r' => {
                        used += 1;
                        self.state = BodyState::DotCr;
                    }
                    b'\n' => {
                        self.state = BodyState::Done;
                        return Ok((used + 1, Decoded::End));
                    }
                    // Lenient: a lone dot the server forgot to stuff is content.
                    _ => {
                        self.state = BodyState::Mid;
                        return self.emit(used, b".");
                    }
                },
                BodyState::DotCr if first == b'\n' => {
                    self.state = BodyState::Done;
                    return Ok((used + 1, Decoded::End));
                }
                BodyState::DotCr => {
                    self.state = BodyState::Mid;
                    return self.emit(used, b".\r");
                }
                BodyState::Mid => {
                    // Only a dot at a line start matters: jump to the next one.
                    let take = match self.finder.find(rest) {
                        Some(lf) => {
                            self.state = BodyState::LineStart;
                            lf + 1
                        }
                        None => {
                            if rest.last() == Some(&b'\n') {
                                self.state = BodyState::LineStart;
                            }
                            rest.len()
                        }
                    };
                    return self.emit(used + take, &rest[..take]);
                }
            }
        }
    }

    fn emit<'a>(
        &mut self,
        used: usize,
        chunk: &'a [u8],
    ) -> Result<(usize, Decoded<'a>), SessionError> {
        self.total += chunk.len() as u64;
        match self.limit {
            Some(limit) if self.total > limit => Err(SessionError::BodyTooLarge { limit }),
            _ => Ok((used, Decoded::Chunk(chunk))),
        }
    }

    /// Decodes as much of `input` as possible, appending the body bytes to
    /// `out`. Returns the bytes used and whether the body is complete.
    pub fn decode_into(
        &mut self,
        mut input: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(usize, bool), SessionError> {
        let mut used = 0;
        loop {
            let (n, found) = self.decode(input)?;
            used += n;
            input = &input[n..];
            match found {
                Decoded::Chunk(c) => out.extend_from_slice(c),
                Decoded::NeedMore => return Ok((used, false)),
                Decoded::End => return Ok((used, true)),
            }
        }
    }
}

/// Streaming dot-stuffer: doubles a `.` that starts a line, across any split
/// of the body, then writes the terminator. POP3's server role uses it as
/// [`DotStuffer::new`] makes it (bytes pass through unchanged);
/// SMTP's DATA uses [`DotStuffer::normalizing`], which also turns bare LF
/// and bare CR into CRLF.
///
/// ```
/// use pop3_proto::frame::DotStuffer;
/// let mut out = Vec::new();
/// let mut s = DotStuffer::new();
/// s.push(b"a\r\n.b\r", &mut out);
/// s.push(b"\n.", &mut out);
/// s.finish(&mut out);
/// assert_eq!(out, b"a\r\n..b\r\n..\r\n.\r\n");
/// ```
#[derive(Debug, Clone)]
pub struct DotStuffer {
    at_line_start: bool,
    /// Normalising mode: the last byte pushed was a CR (already written as
    /// CRLF), so an LF starting the next chunk belongs to it.
    after_cr: bool,
    normalize: bool,
    finder: memmem::Finder<'static>,
}

impl Default for DotStuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl DotStuffer {
    /// A stuffer at the start of a body that passes line endings through
    /// unchanged (a line starts after any LF).
    pub fn new() -> Self {
        Self {
            at_line_start: true,
            after_cr: false,
            normalize: false,
            finder: memmem::Finder::new(b"\n."),
        }
    }

    /// A stuffer at the start of a body that also normalises line endings, as
    /// SMTP DATA needs (RFC 5321 section 2.3.8): a bare LF and a bare CR each
    /// become CRLF, CRLF stays as it is, also when its CR ends one chunk and
    /// its LF starts the next. Each input byte gives at most two output bytes.
    ///
    /// ```
    /// use pop3_proto::frame::DotStuffer;
    /// let mut out = Vec::new();
    /// let mut s = DotStuffer::normalizing();
    /// s.push(b"a\n.b\r", &mut out);
    /// s.push(b"\nc\rd", &mut out);
    /// s.finish(&mut out);
    /// assert_eq!(out, b"a\r\n..b\r\nc\r\nd\r\n.\r\n");
    /// ```
    pub fn normalizing() -> Self {
        Self {
            normalize: true,
            ..Self::new()
        }
    }

    /// Whether this stuffer normalises line endings.
    pub fn normalizes(&self) -> bool {
        self.normalize
    }

    /// Appends `chunk`, stuffed, to `out`.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        if chunk.is_empty() {
            return;
        }
        if self.normalize {
            self.push_normalizing(chunk, out);
            return;
        }
        out.reserve(chunk.len() + 8);
        let mut rest = chunk;
        if self.at_line_start && rest[0] == b'.' {
            out.push(b'.');
        }
        while let Some(lf) = self.finder.find(rest) {
            out.extend_from_slice(&rest[..=lf]);
            out.push(b'.');
            rest = &rest[lf + 1..];
        }
        out.extend_from_slice(rest);
        self.at_line_start = chunk.last() == Some(&b'\n');
    }

    fn push_normalizing(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        out.reserve(chunk.len() + 8);
        let mut rest = chunk;
        while let Some((&first, tail)) = rest.split_first() {
            if std::mem::take(&mut self.after_cr) && first == b'\n' {
                // The LF of a CRLF whose CR was already written as CRLF.
                rest = tail;
                continue;
            }
            if self.at_line_start && first == b'.' {
                out.push(b'.');
            }
            match memchr::memchr2(b'\r', b'\n', rest) {
                Some(end) => {
                    out.extend_from_slice(&rest[..end]);
                    out.extend_from_slice(b"\r\n");
                    self.after_cr = rest[end] == b'\r';
                    self.at_line_start = true;
                    rest = &rest[end + 1..];
                }
                None => {
                    out.extend_from_slice(rest);
                    self.at_line_start = false;
                    rest = &[];
                }
            }
        }
    }

    /// Ends the body: a CRLF if the body did not end a line (RFC 1939 and
    /// RFC 5321 bodies are lines), then the `.` CRLF terminator. The stuffer
    /// is ready for the next body afterwards.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if !self.at_line_start {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
        self.at_line_start = true;
        self.after_cr = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_whole(wire: &[u8]) -> (Vec<u8>, usize, bool) {
        let mut out = Vec::new();
        let (used, done) = BodyDecoder::new()
            .decode_into(wire, &mut out)
            .unwrap_or_else(|e| panic!("{e}"));
        (out, used, done)
    }

    #[test]
    fn empty_body() {
        assert_eq!(decode_whole(b".\r\n+OK next"), (vec![], 3, true));
        assert_eq!(decode_whole(b".\n"), (vec![], 2, true));
    }

    #[test]
    fn unstuffs_and_stops_at_terminator() {
        let (body, used, done) = decode_whole(b"..a\r\nb.\r\n...\r\n.\r\n+OK");
        assert_eq!(body, b".a\r\nb.\r\n..\r\n");
        assert_eq!((used, done), (17, true));
    }

    #[test]
    fn bare_lf_policy() {
        let (body, _, done) = decode_whole(b"a\n..b\n.\n");
        assert_eq!(body, b"a\n.b\n");
        assert!(done);
    }

    #[test]
    fn lenient_on_unstuffed_dots() {
        let (body, _, done) = decode_whole(b".x\r\n.\rx\r\n.\r\n");
        assert_eq!(body, b".x\r\n.\rx\r\n");
        assert!(done);
    }

    #[test]
    fn every_split_of_the_terminator() {
        let wire = b"line one\r\n..two\r\n.\r\nTRAILING";
        for cut in 0..=wire.len() {
            let mut dec = BodyDecoder::new();
            let mut out = Vec::new();
            let (a, done_a) = dec
                .decode_into(&wire[..cut], &mut out)
                .unwrap_or((0, false));
            assert_eq!(a, cut.min(20), "cut {cut}");
            if !done_a {
                let (_, done) = dec.decode_into(&wire[a..], &mut out).unwrap_or((0, false));
                assert!(done, "cut {cut}");
            }
            assert_eq!(out, b"line one\r\n.two\r\n", "cut {cut}");
        }
    }

    #[test]
    fn body_limit() {
        let mut dec = BodyDecoder::with_limit(Some(4));
        let mut out = Vec::new();
        assert_eq!(
            dec.decode_into(b"12345\r\n.\r\n", &mut out),
            Err(SessionError::BodyTooLarge { limit: 4 })
        );
    }

    #[test]
    fn line_cap() {
        assert_eq!(next_line(b"abc\nx", 4), Ok(Some((&b"abc"[..], 4))));
        assert!(next_line(b"abcd\n", 4).is_err());
        assert_eq!(next_line(b"abc", 4), Ok(None));
        assert!(next_line(b"abcd", 4).is_err());
    }

    #[test]
    fn stuffer_finishes_unterminated_body() {
        let mut out = Vec::new();
        let mut s = DotStuffer::new();
        s.push(b".", &mut out);
        s.finish(&mut out);
        assert_eq!(out, b"..\r\n.\r\n");
        out.clear();
        s.finish(&mut out);
        assert_eq!(out, b".\r\n");
    }

    #[test]
    fn normalizing_stuffer_line_endings_across_splits() {
        let body = b"a\nb\rc\r\n.d\r\r\n\n.\r.";
        let want = b"a\r\nb\r\nc\r\n..d\r\n\r\n\r\n..\r\n..\r\n.\r\n";
        for cut in 0..=body.len() {
            for cut2 in cut..=body.len() {
                let mut out = Vec::new();
                let mut s = DotStuffer::normalizing();
                s.push(&body[..cut], &mut out);
                s.push(&body[cut..cut2], &mut out);
                s.push(&body[cut2..], &mut out);
                s.finish(&mut out);
                assert_eq!(out, want, "cuts {cut} {cut2}");
            }
        }
    }

    #[test]
    fn plain_stuffer_keeps_line_endings() {
        let mut out = Vec::new();
        let mut s = DotStuffer::new();
        assert!(!s.normalizes());
        s.push(b"a\rb\n.c\r", &mut out);
        s.finish(&mut out);
        assert_eq!(out, b"a\rb\n..c\r\r\n.\r\n");
    }
}
