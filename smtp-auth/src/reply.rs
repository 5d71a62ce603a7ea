//! SMTP replies (RFC 5321 section 4.2): a three-digit code, one or more
//! lines (`250-...` continues, `250 ...` or a bare `250` ends), and an
//! enhanced status code (RFC 3463 `x.y.z`) when the server sends one.
//!
//! [`ReplyParser`] reads replies from a stream cut into arbitrary reads and
//! returns "need more input" as a value. Memory is bounded: a line may hold
//! at most [`MAX_LINE`] bytes (CRLF included) and a reply at most
//! [`MAX_LINES`] lines, so a reply never holds more than 1 MiB whatever the
//! server sends. The longest line RFC 5321 allows is 512 bytes; real EHLO
//! and error texts (Gmail's, Office 365's) stay far below 4 KiB.

use std::fmt;

use pop3_proto::escape::{snippet, Escaped};
use pop3_proto::frame::next_line;
use thiserror::Error;

/// Longest reply line accepted, CRLF included: 4096 bytes.
pub const MAX_LINE: usize = 4096;

/// Most lines accepted in one multi-line reply: 256.
pub const MAX_LINES: usize = 256;

/// A reply that breaks the reply grammar or the limits.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ReplyError {
    /// A line longer than the cap, whether or not its end had arrived.
    #[error("the server sent a reply line longer than {limit} bytes (starting \"{start}\")")]
    LineTooLong {
        /// The cap, CRLF included.
        limit: usize,
        /// The line's start, escaped.
        start: String,
    },
    /// A multi-line reply with more lines than the cap.
    #[error("the server sent a reply of more than {limit} lines")]
    TooManyLines {
        /// The cap.
        limit: usize,
    },
    /// A line that does not start with a reply code (three digits, the first
    /// 2 to 5, the second 0 to 5) followed by a space, a `-` or the line end.
    #[error("the server sent a line that is not an SMTP reply: \"{line}\"")]
    BadLine {
        /// The line, escaped and truncated.
        line: String,
    },
    /// A continuation line with another code than the reply's first line.
    #[error("a multi-line reply changed its code from {first} to {then}: \"{line}\"")]
    MixedCodes {
        /// The code of the first line.
        first: u16,
        /// The code of the offending line.
        then: u16,
        /// The line, escaped and truncated.
        line: String,
    },
}

/// An RFC 3463 enhanced status code `class.subject.detail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EnhancedCode {
    /// 2 (success), 4 (persistent transient failure) or 5 (permanent failure).
    pub class: u8,
    /// 0 to 999: the subject (7 is security or policy, 3 is mail system, ...).
    pub subject: u16,
    /// 0 to 999: the detail.
    pub detail: u16,
}

impl EnhancedCode {
    /// Parses the code at the start of `text` (followed by a space or the end)
    /// and returns it with the bytes it took (the space included).
    ///
    /// ```
    /// use smtp_auth::EnhancedCode;
    /// let (code, used) = EnhancedCode::parse_prefix(b"5.7.8 Authentication failed").unwrap();
    /// assert_eq!((code.to_string(), used), ("5.7.8".to_string(), 6));
    /// assert!(EnhancedCode::parse_prefix(b"5.7 nope").is_none());
    /// ```
    pub fn parse_prefix(text: &[u8]) -> Option<(Self, usize)> {
        let (class, rest) = text.split_first()?;
        if !matches!(class, b'2' | b'4' | b'5') || rest.first() != Some(&b'.') {
            return None;
        }
        let (subject, n1) = number(rest.get(1..)?)?;
        let after = rest.get(1 + n1..)?;
        if after.first() != Some(&b'.') {
            return None;
        }
        let (detail, n2) = number(after.get(1..)?)?;
        let mut used = 1 + 1 + n1 + 1 + n2;
        match text.get(used) {
            None => {}
            Some(b' ') => used += 1,
            Some(_) => return None,
        }
        Some((
            Self {
                class: class - b'0',
                subject,
                detail,
            },
            used,
        ))
    }
}

/// One to three digits at the start of `bytes`.
fn number(bytes: &[u8]) -> Option<(u16, usize)> {
    let n = bytes
        .iter()
        .take(4)
        .take_while(|b| b.is_ascii_digit())
        .count();
    if !(1..=3).contains(&n) {
        return None;
    }
    let value = bytes
        .iter()
        .take(n)
        .fold(0u16, |v, d| v * 10 + u16::from(d - b'0'));
    Some((value, n))
}

impl fmt::Display for EnhancedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// A complete reply. Its text is server-controlled bytes: escape them to show
/// them ([`Reply::text_escaped`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    code: u16,
    enhanced: Option<EnhancedCode>,
    lines: Vec<Vec<u8>>,
}

impl Reply {
    /// A reply from its code and lines of text (after `250-`/`250 `), for
    /// tests and servers. `None` if the code is not a valid reply code, there
    /// are no lines or too many, or a line holds CR or LF or is too long.
    pub fn new(code: u16, lines: Vec<Vec<u8>>) -> Option<Self> {
        let valid_code = (200..=559).contains(&code) && code / 10 % 10 <= 5;
        let valid_lines = !lines.is_empty()
            && lines.len() <= MAX_LINES
            && lines
                .iter()
                .all(|l| l.len() + 6 <= MAX_LINE && memchr::memchr2(b'\r', b'\n', l).is_none());
        if !(valid_code && valid_lines) {
            return None;
        }
        let enhanced = enhanced_of(code, lines.first().map_or(&[][..], |l| l));
        Some(Self {
            code,
            enhanced,
            lines,
        })
    }

    /// The three-digit code.
    pub fn code(&self) -> u16 {
        self.code
    }

    /// The enhanced status code of the first line, when the server sent one
    /// whose class agrees with the reply code.
    pub fn enhanced(&self) -> Option<EnhancedCode> {
        self.enhanced
    }

    /// 2xx.
    pub fn is_positive(&self) -> bool {
        self.code / 100 == 2
    }

    /// 3xx: the server waits for more (AUTH's 334, DATA's 354).
    pub fn is_intermediate(&self) -> bool {
        self.code / 100 == 3
    }

    /// 4xx: a transient failure.
    pub fn is_transient(&self) -> bool {
        self.code / 100 == 4
    }

    /// The lines of text as sent, each without code, separator and CRLF.
    pub fn lines(&self) -> &[Vec<u8>] {
        &self.lines
    }

    /// The text of each line without its enhanced status code.
    pub fn texts(&self) -> impl Iterator<Item = &[u8]> {
        self.lines.iter().map(|line| match self.enhanced {
            Some(_) => match EnhancedCode::parse_prefix(line) {
                Some((_, used)) => line.get(used..).unwrap_or_default(),
                None => line,
            },
            None => line,
        })
    }

    /// All the text, enhanced codes removed, lines joined by a space,
    /// escaped (see [`pop3_proto::escape`]) and cut after 1024 bytes, as
    /// errors keep it.
    pub fn text_escaped(&self) -> String {
        const MAX: usize = 1024;
        let mut joined = Vec::new();
        for text in self.texts() {
            if !joined.is_empty() {
                joined.push(b' ');
            }
            joined.extend_from_slice(text);
            if joined.len() > MAX {
                break;
            }
        }
        let cut = joined.len().min(MAX);
        let mut s = Escaped(&joined[..cut]).to_string();
        if joined.len() > cut {
            s.push_str("...");
        }
        s
    }

    /// Appends the reply in wire form to `out` (the last line with `code SP`,
    /// the others with `code-`).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let last = self.lines.len().saturating_sub(1);
        for (i, line) in self.lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            out.extend_from_slice(format!("{}{sep}", self.code).as_bytes());
            out.extend_from_slice(line);
            out.extend_from_slice(b"\r\n");
        }
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(e) = self.enhanced {
            write!(f, " {e}")?;
        }
        write!(f, " {}", self.text_escaped())
    }
}

fn enhanced_of(code: u16, first_line: &[u8]) -> Option<EnhancedCode> {
    EnhancedCode::parse_prefix(first_line)
        .map(|(e, _)| e)
        .filter(|e| u16::from(e.class) == code / 100)
}

/// Streaming reply parser: feed it bytes as they arrive; it keeps the lines
/// of a multi-line reply until the last one comes.
///
/// ```
/// use smtp_auth::ReplyParser;
/// let mut parser = ReplyParser::new();
/// assert_eq!(parser.parse(b"250-mail.example.org\r\n250-SIZE 1000")?, (22, None));
/// let (used, reply) = parser.parse(b"250-SIZE 1000\r\n250 8BITMIME\r\n")?;
/// let reply = reply.unwrap();
/// assert_eq!((used, reply.code(), reply.lines().len()), (29, 250, 3));
/// # Ok::<(), smtp_auth::ReplyError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct ReplyParser {
    code: u16,
    lines: Vec<Vec<u8>>,
}

impl ReplyParser {
    /// A parser at the start of a reply.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether part of a reply (some of its lines) has been read.
    pub fn in_reply(&self) -> bool {
        !self.lines.is_empty()
    }

    /// Reads complete lines from the start of `input`. Returns the bytes used
    /// and the reply once its last line is in; `None` means every complete
    /// line was used and more input is needed (keep the unused bytes). After
    /// an error the parser starts afresh.
    pub fn parse(&mut self, input: &[u8]) -> Result<(usize, Option<Reply>), ReplyError> {
        let result = self.parse_inner(input);
        if result.is_err() {
            *self = Self::new();
        }
        result
    }

    fn parse_inner(&mut self, input: &[u8]) -> Result<(usize, Option<Reply>), ReplyError> {
        let mut used = 0;
        loop {
            let rest = input.get(used..).unwrap_or_default();
            let (line, n) = match next_line(rest, MAX_LINE) {
                Ok(Some(found)) => found,
                Ok(None) => return Ok((used, None)),
                Err(_) => {
                    return Err(ReplyError::LineTooLong {
                        limit: MAX_LINE,
                        start: snippet(rest),
                    })
                }
            };
            used += n;
            let (code, last, text) = split_line(line)?;
            if self.lines.is_empty() {
                self.code = code;
            } else if code != self.code {
                return Err(ReplyError::MixedCodes {
                    first: self.code,
                    then: code,
                    line: snippet(line),
                });
            }
            if !last && self.lines.len() + 1 >= MAX_LINES {
                return Err(ReplyError::TooManyLines { limit: MAX_LINES });
            }
            self.lines.push(text.to_vec());
            if last {
                let lines = std::mem::take(&mut self.lines);
                let enhanced = enhanced_of(self.code, lines.first().map_or(&[][..], |l| l));
                return Ok((
                    used,
                    Some(Reply {
                        code: self.code,
                        enhanced,
                        lines,
                    }),
                ));
            }
        }
    }
}

/// Splits a reply line into its code, whether it is the last line, and text.
fn split_line(line: &[u8]) -> Result<(u16, bool, &[u8]), ReplyError> {
    let bad = || ReplyError::BadLine {
        line: snippet(line),
    };
    let (&[a, b, c], rest) = line.split_first_chunk::<3>().ok_or_else(bad)?;
    if !(b'2'..=b'5').contains(&a) || !(b'0'..=b'5').contains(&b) || !c.is_ascii_digit() {
        return Err(bad());
    }
    let code = u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0');
    match rest.split_first() {
        None => Ok((code, true, rest)),
        Some((b' ', text)) => Ok((code, true, text)),
        Some((b'-', text)) => Ok((code, false, text)),
        Some(_) => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(input: &[u8]) -> Result<(usize, Option<Reply>), ReplyError> {
        ReplyParser::new().parse(input)
    }

    #[test]
    fn single_and_multi_line() {
        let (used, reply) = one(b"250 2.1.0 Ok\r\nnext").unwrap();
        let reply = reply.unwrap();
        assert_eq!(used, 14);
        assert_eq!(reply.code(), 250);
        assert_eq!(
            reply.enhanced().map(|e| e.to_string()),
            Some("2.1.0".into())
        );
        assert_eq!(reply.texts().collect::<Vec<_>>(), vec![&b"Ok"[..]]);
        let (_, reply) =
            one(b"534-5.7.9 Application-specific password required.\r\n534 5.7.9 https://x\n")
                .unwrap();
        let reply = reply.unwrap();
        assert_eq!(reply.lines().len(), 2);
        assert_eq!(
            reply.text_escaped(),
            "Application-specific password required. https://x"
        );
        let (_, reply) = one(b"220\r\n").unwrap();
        assert_eq!(reply.unwrap().lines(), &[Vec::<u8>::new()]);
    }

    #[test]
    fn enhanced_code_must_agree_with_class() {
        let (_, reply) = one(b"250 5.1.1 odd\r\n").unwrap();
        assert_eq!(reply.unwrap().enhanced(), None);
        assert!(EnhancedCode::parse_prefix(b"5.1234.1").is_none());
        assert!(EnhancedCode::parse_prefix(b"5.1.1x").is_none());
        assert!(EnhancedCode::parse_prefix(b"3.1.1").is_none());
        assert!(EnhancedCode::parse_prefix(b"4.7.0").is_some());
    }

    #[test]
    fn bad_lines() {
        assert!(matches!(one(b"25 x\r\n"), Err(ReplyError::BadLine { .. })));
        assert!(matches!(one(b"650 x\r\n"), Err(ReplyError::BadLine { .. })));
        assert!(matches!(one(b"250x\r\n"), Err(ReplyError::BadLine { .. })));
        assert!(matches!(one(b"\r\n"), Err(ReplyError::BadLine { .. })));
        assert!(matches!(
            one(b"250-a\r\n251 b\r\n"),
            Err(ReplyError::MixedCodes {
                first: 250,
                then: 251,
                ..
            })
        ));
    }

    #[test]
    fn bounds() {
        let long = vec![b'a'; MAX_LINE];
        assert!(matches!(one(&long), Err(ReplyError::LineTooLong { .. })));
        let mut many = Vec::new();
        for _ in 0..MAX_LINES {
            many.extend_from_slice(b"250-x\r\n");
        }
        assert_eq!(
            one(&many),
            Err(ReplyError::TooManyLines { limit: MAX_LINES })
        );
        let mut fits = b"250-x\r\n".repeat(MAX_LINES - 1);
        fits.extend_from_slice(b"250 x\r\n");
        assert!(one(&fits).unwrap().1.is_some());
    }
}
