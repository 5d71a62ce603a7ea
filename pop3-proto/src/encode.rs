//! Client commands and their encoder. The encoder checks every argument
//! before writing a byte: CR, LF and NUL are refused (they would end the
//! command early and smuggle in another), and so are empty arguments.

use std::borrow::Cow;
use std::fmt;

use base64::Engine;
use md5::{Digest, Md5};

use crate::error::EncodeError;
use crate::types::MsgNum;

impl TryFrom<u32> for MsgNum {
    type Error = EncodeError;

    /// Message numbers start at 1; 0 is [`EncodeError::ZeroMessageNumber`].
    fn try_from(n: u32) -> Result<Self, EncodeError> {
        MsgNum::new(n).ok_or(EncodeError::ZeroMessageNumber)
    }
}

/// A POP3 command, with borrowed arguments.
///
/// `Debug` never shows a password, a digest or SASL data, so commands can be
/// logged as they are.
#[derive(Clone, PartialEq, Eq)]
pub enum Command<'a> {
    /// `USER name`.
    User(&'a str),
    /// `PASS password`.
    Pass(&'a str),
    /// `APOP name digest`; the digest comes from [`apop_digest`].
    Apop {
        /// User name.
        user: &'a str,
        /// 32 lower-case hex digits.
        digest: &'a str,
    },
    /// `AUTH mechanism [initial-response]` (RFC 5034). The initial response is
    /// raw bytes; the encoder base64-encodes it (`=` for an empty one).
    Auth {
        /// SASL mechanism name.
        mechanism: &'a str,
        /// Initial response, raw.
        initial_response: Option<Cow<'a, [u8]>>,
    },
    /// `STLS` (RFC 2595).
    Stls,
    /// `CAPA` (RFC 2449).
    Capa,
    /// `STAT`.
    Stat,
    /// `LIST [msg]`.
    List(Option<MsgNum>),
    /// `UIDL [msg]`.
    Uidl(Option<MsgNum>),
    /// `RETR msg`.
    Retr(MsgNum),
    /// `TOP msg lines`.
    Top {
        /// Message number.
        msg: MsgNum,
        /// Body lines wanted after the header.
        lines: u32,
    },
    /// `DELE msg`.
    Dele(MsgNum),
    /// `RSET`.
    Rset,
    /// `NOOP`.
    Noop,
    /// `QUIT`.
    Quit,
    /// `UTF8` (RFC 6856).
    Utf8,
    /// `LANG [tag]` (RFC 6856): list languages, or choose one.
    Lang(Option<&'a str>),
}

/// A command's kind, without its arguments: what the session remembers about
/// a command while its answer is pending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommandKind {
    /// USER.
    User,
    /// PASS.
    Pass,
    /// APOP.
    Apop,
    /// AUTH.
    Auth,
    /// STLS.
    Stls,
    /// CAPA.
    Capa,
    /// STAT.
    Stat,
    /// LIST; `all` when it lists every message (multi-line).
    List {
        /// No argument: a multi-line listing.
        all: bool,
    },
    /// UIDL; `all` when it lists every message (multi-line).
    Uidl {
        /// No argument: a multi-line listing.
        all: bool,
    },
    /// RETR.
    Retr,
    /// TOP.
    Top,
    /// DELE.
    Dele,
    /// RSET.
    Rset,
    /// NOOP.
    Noop,
    /// QUIT.
    Quit,
    /// UTF8.
    Utf8,
    /// LANG; `all` when it lists languages (multi-line).
    Lang {
        /// No argument: a multi-line listing.
        all: bool,
    },
}

impl CommandKind {
    /// The command's name as sent.
    pub fn name(self) -> &'static str {
        match self {
            Self::User => "USER",
            Self::Pass => "PASS",
            Self::Apop => "APOP",
            Self::Auth => "AUTH",
            Self::Stls => "STLS",
            Self::Capa => "CAPA",
            Self::Stat => "STAT",
            Self::List { .. } => "LIST",
            Self::Uidl { .. } => "UIDL",
            Self::Retr => "RETR",
            Self::Top => "TOP",
            Self::Dele => "DELE",
            Self::Rset => "RSET",
            Self::Noop => "NOOP",
            Self::Quit => "QUIT",
            Self::Utf8 => "UTF8",
            Self::Lang { .. } => "LANG",
        }
    }

    /// Whether a `+OK` answer is followed by a multi-line block.
    pub fn is_multi_line(self) -> bool {
        matches!(
            self,
            Self::Capa
                | Self::Retr
                | Self::Top
                | Self::List { all: true }
                | Self::Uidl { all: true }
                | Self::Lang { all: true }
        )
    }
}

impl Command<'_> {
    /// The command's kind.
    pub fn kind(&self) -> CommandKind {
        match self {
            Self::User(_) => CommandKind::User,
            Self::Pass(_) => CommandKind::Pass,
            Self::Apop { .. } => CommandKind::Apop,
            Self::Auth { .. } => CommandKind::Auth,
            Self::Stls => CommandKind::Stls,
            Self::Capa => CommandKind::Capa,
            Self::Stat => CommandKind::Stat,
            Self::List(m) => CommandKind::List { all: m.is_none() },
            Self::Uidl(m) => CommandKind::Uidl { all: m.is_none() },
            Self::Retr(_) => CommandKind::Retr,
            Self::Top { .. } => CommandKind::Top,
            Self::Dele(_) => CommandKind::Dele,
            Self::Rset => CommandKind::Rset,
            Self::Noop => CommandKind::Noop,
            Self::Quit => CommandKind::Quit,
            Self::Utf8 => CommandKind::Utf8,
            Self::Lang(tag) => CommandKind::Lang { all: tag.is_none() },
        }
    }

    /// Appends the command line, CRLF included, to `out`. On error nothing is
    /// appended.
    ///
    /// ```
    /// use pop3_proto::{Command, EncodeError, MsgNum};
    /// let mut out = Vec::new();
    /// Command::Top { msg: MsgNum::try_from(3)?, lines: 10 }.encode(&mut out)?;
    /// assert_eq!(out, b"TOP 3 10\r\n");
    /// assert_eq!(
    ///     Command::User("bob\r\nDELE 1").encode(&mut out),
    ///     Err(EncodeError::ForbiddenByte { argument: "user name", byte: "CR" })
    /// );
    /// assert_eq!(MsgNum::try_from(0), Err(EncodeError::ZeroMessageNumber));
    /// # Ok::<(), EncodeError>(())
    /// ```
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        self.validate()?;
        let name = self.kind().name();
        let line = match self {
            Self::User(u) => format!("{name} {u}"),
            Self::Pass(p) => format!("{name} {p}"),
            Self::Apop { user, digest } => format!("{name} {user} {digest}"),
            Self::Auth {
                mechanism,
                initial_response: None,
            } => format!("{name} {mechanism}"),
            Self::Auth {
                mechanism,
                initial_response: Some(ir),
            } => format!("{name} {mechanism} {}", encode_sasl_data(ir)),
            Self::List(Some(m)) | Self::Uidl(Some(m)) => format!("{name} {m}"),
            Self::Retr(m) | Self::Dele(m) => format!("{name} {m}"),
            Self::Top { msg, lines } => format!("{name} {msg} {lines}"),
            Self::Lang(Some(tag)) => format!("{name} {tag}"),
            Self::Stls
            | Self::Capa
            | Self::Stat
            | Self::List(None)
            | Self::Uidl(None)
            | Self::Rset
            | Self::Noop
            | Self::Quit
            | Self::Utf8
            | Self::Lang(None) => name.to_owned(),
        };
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
        Ok(())
    }

    fn validate(&self) -> Result<(), EncodeError> {
        match self {
            Self::User(u) => check_arg("user name", u.as_bytes()),
            Self::Pass(p) => check_arg("password", p.as_bytes()),
            Self::Apop { user, digest } => {
                check_arg("user name", user.as_bytes())?;
                check_arg("APOP digest", digest.as_bytes())
            }
            Self::Auth { mechanism, .. } => {
                check_arg("SASL mechanism", mechanism.as_bytes())?;
                if is_mechanism_name(mechanism) {
                    Ok(())
                } else {
                    Err(EncodeError::BadToken {
                        argument: "SASL mechanism",
                    })
                }
            }
            Self::Lang(Some(tag)) => {
                check_arg("language tag", tag.as_bytes())?;
                if is_token(tag) {
                    Ok(())
                } else {
                    Err(EncodeError::BadToken {
                        argument: "language tag",
                    })
                }
            }
            _ => Ok(()),
        }
    }
}

/// Refuses an argument that is empty or holds CR, LF or NUL.
pub(crate) fn check_arg(argument: &'static str, value: &[u8]) -> Result<(), EncodeError> {
    if value.is_empty() {
        return Err(EncodeError::Empty { argument });
    }
    check_line_safe(argument, value)
}

/// Refuses CR, LF and NUL anywhere in `value`.
pub fn check_line_safe(argument: &'static str, value: &[u8]) -> Result<(), EncodeError> {
    match memchr::memchr3(b'\r', b'\n', 0, value).map(|i| value[i]) {
        Some(b'\r') => Err(EncodeError::ForbiddenByte {
            argument,
            byte: "CR",
        }),
        Some(b'\n') => Err(EncodeError::ForbiddenByte {
            argument,
            byte: "LF",
        }),
        Some(_) => Err(EncodeError::ForbiddenByte {
            argument,
            byte: "NUL",
        }),
        None => Ok(()),
    }
}

/// A SASL mechanism name (RFC 4422): 1 to 20 of A-Z, 0-9, `-`, `_`
/// (lower case accepted).
pub(crate) fn is_mechanism_name(name: &str) -> bool {
    (1..=20).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A single token: printable ASCII, no spaces.
pub(crate) fn is_token(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_graphic())
}

/// Base64 of SASL data, `=` for empty data (RFC 5034 / RFC 4954).
pub(crate) fn encode_sasl_data(data: &[u8]) -> String {
    if data.is_empty() {
        "=".to_owned()
    } else {
        base64::engine::general_purpose::STANDARD.encode(data)
    }
}

/// Appends a SASL response line (base64 of `data`, then CRLF) to `out`: the
/// client's answer to a `+ challenge` continuation.
pub fn encode_sasl_response(data: &[u8], out: &mut Vec<u8>) {
    if !data.is_empty() {
        out.extend_from_slice(
            base64::engine::general_purpose::STANDARD
                .encode(data)
                .as_bytes(),
        );
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends the SASL cancel line `*` CRLF to `out`.
pub fn encode_sasl_cancel(out: &mut Vec<u8>) {
    out.extend_from_slice(b"*\r\n");
}

/// The APOP digest (RFC 1939 section 7): MD5 of the greeting's timestamp
/// followed by the shared secret, as 32 lower-case hex digits.
///
/// ```
/// // RFC 1939's own example.
/// let digest = pop3_proto::apop_digest("<1896.697170952@dbc.mtview.ca.us>", "tanstaaf");
/// assert_eq!(digest, "c4c9334bac560ecc979e58001b3e22fb");
/// ```
pub fn apop_digest(timestamp: &str, secret: &str) -> String {
    let mut md5 = Md5::new();
    md5.update(timestamp.as_bytes());
    md5.update(secret.as_bytes());
    hex(&md5.finalize())
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

impl fmt::Debug for Command<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.kind().name();
        match self {
            Self::User(u) => write!(f, "{name} {u:?}"),
            Self::Pass(_) => write!(f, "{name} <redacted>"),
            Self::Apop { user, .. } => write!(f, "{name} {user:?} <redacted>"),
            Self::Auth {
                mechanism,
                initial_response,
            } => match initial_response {
                Some(_) => write!(f, "{name} {mechanism} <redacted>"),
                None => write!(f, "{name} {mechanism}"),
            },
            Self::List(Some(m)) | Self::Uidl(Some(m)) | Self::Retr(m) | Self::Dele(m) => {
                write!(f, "{name} {m}")
            }
            Self::Top { msg, lines } => write!(f, "{name} {msg} {lines}"),
            Self::Lang(Some(tag)) => write!(f, "{name} {tag:?}"),
            _ => f.write_str(name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(cmd: Command<'_>) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        cmd.encode(&mut out).map(|()| out)
    }

    #[test]
    fn encodes_commands() {
        let one = MsgNum::new(1);
        let one = one.unwrap_or_else(|| unreachable!());
        assert_eq!(encoded(Command::Stat), Ok(b"STAT\r\n".to_vec()));
        assert_eq!(
            encoded(Command::List(Some(one))),
            Ok(b"LIST 1\r\n".to_vec())
        );
        assert_eq!(encoded(Command::Uidl(None)), Ok(b"UIDL\r\n".to_vec()));
        assert_eq!(
            encoded(Command::Pass("pass word")),
            Ok(b"PASS pass word\r\n".to_vec())
        );
        assert_eq!(
            encoded(Command::Auth {
                mechanism: "PLAIN",
                initial_response: Some(Cow::Borrowed(b"\0u\0p"))
            }),
            Ok(b"AUTH PLAIN AHUAcA==\r\n".to_vec())
        );
        assert_eq!(
            encoded(Command::Auth {
                mechanism: "EXTERNAL",
                initial_response: Some(Cow::Borrowed(b""))
            }),
            Ok(b"AUTH EXTERNAL =\r\n".to_vec())
        );
    }

    #[test]
    fn refuses_injection() {
        assert_eq!(
            encoded(Command::Pass("a\nb")),
            Err(EncodeError::ForbiddenByte {
                argument: "password",
                byte: "LF"
            })
        );
        assert_eq!(
            encoded(Command::User("a\0")),
            Err(EncodeError::ForbiddenByte {
                argument: "user name",
                byte: "NUL"
            })
        );
        assert_eq!(
            encoded(Command::User("")),
            Err(EncodeError::Empty {
                argument: "user name"
            })
        );
        assert!(encoded(Command::Auth {
            mechanism: "PLAIN X",
            initial_response: None
        })
        .is_err());
    }

    #[test]
    fn debug_redacts_secrets() {
        let shown = format!("{:?}", Command::Pass("hunter2"));
        assert!(!shown.contains("hunter2"), "{shown}");
        let shown = format!(
            "{:?}",
            Command::Auth {
                mechanism: "PLAIN",
                initial_response: Some(Cow::Borrowed(b"\0u\0hunter2"))
            }
        );
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
