//! The protocol's vocabulary: message numbers, UIDs, statuses, response codes,
//! capabilities and the payloads of STAT, LIST and UIDL.

use std::fmt;
use std::num::NonZeroU32;

/// A message number as used by RETR, DELE, LIST, TOP and UIDL.
///
/// RFC 1939 numbers messages from 1; zero is never valid, so the type cannot
/// hold it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MsgNum(NonZeroU32);

impl MsgNum {
    /// Makes a message number; `None` for 0, which POP3 never uses.
    ///
    /// ```
    /// use pop3_proto::MsgNum;
    /// assert!(MsgNum::new(0).is_none());
    /// assert_eq!(MsgNum::new(7).map(MsgNum::get), Some(7));
    /// ```
    pub fn new(n: u32) -> Option<Self> {
        NonZeroU32::new(n).map(Self)
    }

    /// The number itself.
    pub fn get(self) -> u32 {
        self.0.get()
    }
}

impl fmt::Display for MsgNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Longest unique-id the parser accepts by default.
///
/// RFC 1939 allows 70 octets; some servers send longer ones, so the default
/// leaves room while still bounding memory.
pub const DEFAULT_MAX_UID_LEN: usize = 512;

/// Whether `b` may appear in a unique-id: any printable, non-space byte.
///
/// RFC 1939 restricts UIDs to 0x21..=0x7E; real servers also send 8-bit
/// bytes, which are accepted as opaque data.
#[inline]
pub fn is_uid_byte(b: u8) -> bool {
    // 0x21..=0x7E or 0x80..: everything above space except DEL.
    b > 0x20 && b != 0x7f
}

/// Whether every byte of `bytes` is a [`is_uid_byte`]. Listings of 100,000
/// UIDs pass through here, so it tests eight bytes at a time (SWAR): a word
/// holds a byte below 0x21 when `(w - 0x21..) & !w & 0x80..` is non-zero
/// (exact for "any", and blind to bytes >= 0x80, which are allowed), and a
/// DEL when `w ^ 0x7f..` holds a zero byte.
pub(crate) fn all_uid_bytes(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const DELS: u64 = u64::from_ne_bytes([0x7f; 8]);
    let below = |w: u64, n: u64| w.wrapping_sub(ONES * n) & !w & HIGHS != 0;
    let mut words = bytes.chunks_exact(8);
    for word in words.by_ref() {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        let w = u64::from_ne_bytes(w);
        if below(w, 0x21) || below(w ^ DELS, 1) {
            return false;
        }
    }
    words.remainder().iter().all(|&b| is_uid_byte(b))
}

/// A message's unique-id, as opaque bytes that survive across sessions.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Uid(Box<[u8]>);

impl Uid {
    /// Makes a UID from bytes, checking they form a valid unique-id: non-empty,
    /// at most [`DEFAULT_MAX_UID_LEN`] bytes, no spaces or control bytes.
    ///
    /// ```
    /// use pop3_proto::Uid;
    /// assert!(Uid::new(b"QhdPYR:00WBw1Ph7x7").is_some());
    /// assert!(Uid::new(b"two words").is_none());
    /// ```
    pub fn new(bytes: &[u8]) -> Option<Self> {
        let valid = !bytes.is_empty() && bytes.len() <= DEFAULT_MAX_UID_LEN && all_uid_bytes(bytes);
        valid.then(|| Self(bytes.into()))
    }

    /// The UID's bytes, exactly as the server sent them.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Uid({})", crate::escape::Escaped(&self.0))
    }
}

impl fmt::Display for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::escape::Escaped(&self.0).fmt(f)
    }
}

/// `+OK` or `-ERR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// `+OK`: the command succeeded.
    Ok,
    /// `-ERR`: the command failed.
    Err,
}

/// The meaning of an RFC 2449 extended response code, as far as this crate
/// knows it. Codes are hierarchical: `SYS/TEMP/DISK` is a [`RespCodeKind::SysTemp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RespCodeKind {
    /// `[IN-USE]` (RFC 2449): another session holds the maildrop lock.
    InUse,
    /// `[LOGIN-DELAY]` (RFC 2449): logging in again too soon.
    LoginDelay,
    /// `[AUTH]` (RFC 3206): the credentials were wrong.
    Auth,
    /// `[SYS/TEMP]` (RFC 3206): a temporary server problem; try later.
    SysTemp,
    /// `[SYS/PERM]` (RFC 3206): a permanent server problem; retrying won't help.
    SysPerm,
    /// `[UTF8]` (RFC 6856): the command needs UTF-8 mode.
    Utf8,
    /// A code this crate does not know; its text is kept in [`RespCode::as_str`].
    Other,
}

/// An extended response code such as `[SYS/TEMP]`, kept verbatim and classified.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RespCode {
    raw: Box<str>,
    kind: RespCodeKind,
}

impl RespCode {
    /// Classifies a code given without its brackets (`SYS/TEMP`). Matching is
    /// case-insensitive and by prefix of levels, so unknown sub-levels still
    /// classify by their parent.
    pub fn new(raw: &str) -> Self {
        let mut levels = raw.split('/');
        let first = levels.next().unwrap_or("");
        let second = levels.next().unwrap_or("");
        let is = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
        let kind = if is(first, "IN-USE") {
            RespCodeKind::InUse
        } else if is(first, "LOGIN-DELAY") {
            RespCodeKind::LoginDelay
        } else if is(first, "AUTH") {
            RespCodeKind::Auth
        } else if is(first, "UTF8") {
            RespCodeKind::Utf8
        } else if is(first, "SYS") && is(second, "TEMP") {
            RespCodeKind::SysTemp
        } else if is(first, "SYS") && is(second, "PERM") {
            RespCodeKind::SysPerm
        } else {
            RespCodeKind::Other
        };
        Self {
            raw: raw.into(),
            kind,
        }
    }

    /// What the code means.
    pub fn kind(&self) -> RespCodeKind {
        self.kind
    }

    /// The code as the server sent it, without brackets.
    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

impl fmt::Display for RespCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}]", self.raw)
    }
}

/// The server's greeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Greeting {
    /// `+OK`, or `-ERR` when the server refuses the connection (busy, or
    /// blocked); the code then often says why.
    pub status: Status,
    /// The extended response code, if the greeting carried one.
    pub code: Option<RespCode>,
    /// The greeting's text, as sent (attacker-controlled before TLS: escape it
    /// before showing it).
    pub text: Vec<u8>,
    /// The APOP timestamp (`<1896.697170952@dbc.mtview.ca.us>`), brackets
    /// included, when the greeting carried one in valid form.
    pub apop_timestamp: Option<String>,
}

/// The answer to STAT: how many messages, and their total size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Number of messages in the maildrop.
    pub count: u32,
    /// Total size in octets.
    pub octets: u64,
}

/// One entry of a LIST answer: a message number and its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListEntry {
    /// The message number.
    pub msg: MsgNum,
    /// Its size in octets, as the server counts it.
    pub octets: u64,
}

/// One entry of a UIDL answer, borrowing its UID from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UidlEntry<'a> {
    /// The message number.
    pub msg: MsgNum,
    /// The unique-id bytes (validated: printable, no spaces, length capped).
    pub uid: &'a [u8],
}

impl UidlEntry<'_> {
    /// An owned copy of the UID.
    pub fn to_uid(&self) -> Uid {
        Uid(self.uid.into())
    }
}

/// The EXPIRE capability's value (RFC 2449).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Expire {
    /// Messages are kept for this many days.
    Days(u32),
    /// Messages are never deleted by the server.
    Never,
}

/// One capability from a CAPA listing (RFC 2449, 2595, 5034, 6856).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Capability {
    /// `TOP`.
    Top,
    /// `USER`: USER/PASS login is available.
    User,
    /// `SASL mech...`: the SASL mechanisms offered (upper-cased).
    Sasl(Vec<String>),
    /// `RESP-CODES`: the server sends extended response codes.
    RespCodes,
    /// `AUTH-RESP-CODE` (RFC 3206).
    AuthRespCode,
    /// `LOGIN-DELAY n [USER]`: minimum seconds between logins.
    LoginDelay {
        /// Seconds.
        seconds: u32,
        /// `USER`: the value may change after login.
        per_user: bool,
    },
    /// `PIPELINING`.
    Pipelining,
    /// `EXPIRE n|NEVER [USER]`.
    Expire {
        /// Retention policy.
        policy: Expire,
        /// `USER`: the value may change after login.
        per_user: bool,
    },
    /// `UIDL`.
    Uidl,
    /// `IMPLEMENTATION text`.
    Implementation(String),
    /// `STLS` (RFC 2595).
    Stls,
    /// `UTF8 [USER]` (RFC 6856).
    Utf8 {
        /// `USER`: UTF-8 user names are accepted too.
        user: bool,
    },
    /// `LANG` (RFC 6856).
    Lang,
    /// Any other capability: its name (upper-cased) and parameters, kept.
    Other {
        /// Capability name, upper-cased.
        name: String,
        /// Its parameters, as sent.
        params: Vec<String>,
    },
}

impl Capability {
    /// One line of a CAPA listing (without its CRLF), read as the session
    /// reads it: the form [`crate::server::capability_line`] writes, so a
    /// caller can keep a server's capabilities as text and read them back.
    ///
    /// ```
    /// use pop3_proto::{server::capability_line, Capability};
    /// let cap = Capability::parse(b"SASL PLAIN XOAUTH2");
    /// assert_eq!(cap, Capability::Sasl(vec!["PLAIN".into(), "XOAUTH2".into()]));
    /// assert_eq!(Capability::parse(capability_line(&cap).as_bytes()), cap);
    /// ```
    pub fn parse(line: &[u8]) -> Self {
        crate::parse::capability(line)
    }
}

/// The capabilities a server advertised in its last CAPA listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    list: Vec<Capability>,
}

impl Capabilities {
    /// Most capabilities kept; a server listing more is misbehaving, and the
    /// cap bounds the memory it can make us use.
    pub const MAX: usize = 256;

    /// An empty set (nothing known yet).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one capability, ignoring any beyond [`Capabilities::MAX`].
    pub fn push(&mut self, cap: Capability) {
        if self.list.len() < Self::MAX {
            self.list.push(cap);
        }
    }

    /// All capabilities, in the order advertised.
    pub fn iter(&self) -> impl Iterator<Item = &Capability> {
        self.list.iter()
    }

    /// Whether nothing was advertised (or CAPA was not read yet).
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Whether `cap` was advertised.
    pub fn has(&self, cap: &Capability) -> bool {
        self.list.contains(cap)
    }

    /// PIPELINING advertised.
    pub fn pipelining(&self) -> bool {
        self.has(&Capability::Pipelining)
    }

    /// STLS advertised.
    pub fn stls(&self) -> bool {
        self.has(&Capability::Stls)
    }

    /// USER advertised.
    pub fn user(&self) -> bool {
        self.has(&Capability::User)
    }

    /// TOP advertised.
    pub fn top(&self) -> bool {
        self.has(&Capability::Top)
    }

    /// UIDL advertised.
    pub fn uidl(&self) -> bool {
        self.has(&Capability::Uidl)
    }

    /// RESP-CODES advertised.
    pub fn resp_codes(&self) -> bool {
        self.has(&Capability::RespCodes)
    }

    /// The SASL mechanisms offered, upper-cased; empty when SASL is not offered.
    pub fn sasl_mechanisms(&self) -> &[String] {
        self.list
            .iter()
            .find_map(|c| match c {
                Capability::Sasl(m) => Some(m.as_slice()),
                _ => None,
            })
            .unwrap_or(&[])
    }

    /// Whether the SASL mechanism `name` is offered (case-insensitive).
    pub fn sasl(&self, name: &str) -> bool {
        self.sasl_mechanisms()
            .iter()
            .any(|m| m.eq_ignore_ascii_case(name))
    }

    /// LOGIN-DELAY in seconds, if advertised.
    pub fn login_delay(&self) -> Option<u32> {
        self.list.iter().find_map(|c| match c {
            Capability::LoginDelay { seconds, .. } => Some(*seconds),
            _ => None,
        })
    }

    /// EXPIRE policy, if advertised.
    pub fn expire(&self) -> Option<Expire> {
        self.list.iter().find_map(|c| match c {
            Capability::Expire { policy, .. } => Some(*policy),
            _ => None,
        })
    }

    /// IMPLEMENTATION text, if advertised.
    pub fn implementation(&self) -> Option<&str> {
        self.list.iter().find_map(|c| match c {
            Capability::Implementation(s) => Some(s.as_str()),
            _ => None,
        })
    }
}

/// Whether `user` asks Gmail for its `recent:` mode, in which the last 30 days
/// of mail are served on every login whatever earlier sessions fetched. A
/// client in that mode must track UIDs itself and must not delete.
///
/// ```
/// assert!(pop3_proto::is_recent_mode_user("recent:someone@gmail.com"));
/// assert!(!pop3_proto::is_recent_mode_user("someone@gmail.com"));
/// ```
pub fn is_recent_mode_user(user: &str) -> bool {
    user.get(..7)
        .is_some_and(|p| p.eq_ignore_ascii_case("recent:"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The word-at-a-time test agrees with the byte rule.
        #[test]
        fn uid_check_agrees_with_the_byte_rule(bytes in proptest::collection::vec(
            prop_oneof![any::<u8>(), Just(0x20u8), Just(0x21u8), Just(0x7fu8), Just(0x80u8), Just(0x00u8), Just(0xffu8)], 0..40)) {
            prop_assert_eq!(all_uid_bytes(&bytes), bytes.iter().all(|&b| is_uid_byte(b)));
        }
    }
}
