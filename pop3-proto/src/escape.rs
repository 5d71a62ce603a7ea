//! Showing server bytes safely: server text is attacker-controlled (before TLS
//! especially), so anything shown to a user or a log is escaped and truncated.

use std::fmt;

/// Displays bytes with printable ASCII as is and everything else escaped
/// (`\r`, `\n`, `\t`, `\\`, `\xNN`).
#[derive(Clone, Copy)]
pub struct Escaped<'a>(pub &'a [u8]);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in self.0 {
            match b {
                b'\r' => f.write_str("\\r")?,
                b'\n' => f.write_str("\\n")?,
                b'\t' => f.write_str("\\t")?,
                b'\\' => f.write_str("\\\\")?,
                0x20..=0x7e => fmt::Write::write_char(f, char::from(b))?,
                _ => write!(f, "\\x{b:02x}")?,
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// How many bytes of offending input an error keeps.
pub const SNIPPET_LEN: usize = 64;

/// An escaped, truncated copy of `bytes`, for error messages: at most
/// [`SNIPPET_LEN`] input bytes, with `...` when more followed.
///
/// ```
/// assert_eq!(pop3_proto::escape::snippet(b"-ERR \x00oops\r\n"), "-ERR \\x00oops\\r\\n");
/// ```
pub fn snippet(bytes: &[u8]) -> String {
    let cut = bytes.len().min(SNIPPET_LEN);
    let mut s = Escaped(&bytes[..cut]).to_string();
    if bytes.len() > cut {
        s.push_str("...");
    }
    s
}
