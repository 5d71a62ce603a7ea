//! Line parsers for server responses, written with nom. Private: nom's types
//! never leave this module; callers get [`ParseError`] with the line shown.
//!
//! Every function here takes one protocol line with its line ending already
//! removed (framing is [`crate::frame`]'s job).

use nom::branch::alt;
use nom::bytes::complete::{tag, tag_no_case, take_while1};
use nom::character::complete::{space0, space1, u32 as dec_u32, u64 as dec_u64};
use nom::combinator::{all_consuming, map_opt, opt, rest};
use nom::sequence::{delimited, preceded};
use nom::{IResult, Parser};

use crate::error::ParseError;
use crate::escape::snippet;
use crate::types::{
    all_uid_bytes, is_uid_byte, Capability, Expire, ListEntry, MsgNum, RespCode, Stat, Status,
    UidlEntry,
};

/// A parsed status line: `+OK [CODE] text` or `-ERR [CODE] text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StatusLine<'a> {
    pub(crate) status: Status,
    pub(crate) code: Option<RespCode>,
    pub(crate) text: &'a [u8],
}

/// A line that answers a command: a status, or (during SASL) a continuation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReplyLine<'a> {
    Status(StatusLine<'a>),
    /// `+ base64`: the base64 text, not yet decoded.
    Continuation(&'a [u8]),
}

#[inline]
fn status_indicator(input: &[u8]) -> IResult<&[u8], Status> {
    // The exact upper-case forms every server sends, without nom's set-up.
    if let Some(rest) = input.strip_prefix(b"+OK") {
        return Ok((rest, Status::Ok));
    }
    if let Some(rest) = input.strip_prefix(b"-ERR") {
        return Ok((rest, Status::Err));
    }
    status_indicator_any_case(input)
}

#[cold]
fn status_indicator_any_case(input: &[u8]) -> IResult<&[u8], Status> {
    alt((
        tag_no_case(&b"+OK"[..]).map(|_| Status::Ok),
        tag_no_case(&b"-ERR"[..]).map(|_| Status::Err),
    ))
    .parse(input)
}

fn resp_level(input: &[u8]) -> IResult<&[u8], &[u8]> {
    take_while1(|b: u8| b.is_ascii_alphanumeric() || b == b'-').parse(input)
}

/// `[LEVEL/LEVEL...]` at the start of the text (RFC 2449 section 8).
fn resp_code(input: &[u8]) -> IResult<&[u8], RespCode> {
    let levels = nom::combinator::recognize((
        resp_level,
        nom::multi::many0_count(preceded(tag(&b"/"[..]), resp_level)),
    ));
    map_opt(delimited(tag(&b"["[..]), levels, tag(&b"]"[..])), |raw| {
        std::str::from_utf8(raw).ok().map(RespCode::new)
    })
    .parse(input)
}

/// Splits a status's text into its optional response code and the rest.
#[inline]
fn code_and_text(text: &[u8]) -> (Option<RespCode>, &[u8]) {
    if text.first() != Some(&b'[') {
        return (None, text);
    }
    match resp_code(text) {
        Ok((rest, code)) => {
            let rest = rest.strip_prefix(b" ").unwrap_or(rest);
            (Some(code), rest)
        }
        Err(_) => (None, text),
    }
}

/// `+OK`/`-ERR`, optional code, text; `None` for anything else.
fn status_only(line: &[u8]) -> Option<StatusLine<'_>> {
    let (after, status) = status_indicator(line).ok()?;
    // The indicator must stand alone: "+OKAY" is not "+OK".
    let text = match after.split_first() {
        None => after,
        Some((b' ' | b'\t', text)) => text,
        Some(_) => return None,
    };
    let (code, text) = code_and_text(text);
    Some(StatusLine { status, code, text })
}

fn bad_status(line: &[u8]) -> ParseError {
    ParseError::BadStatus {
        line: snippet(line),
    }
}

/// Parses a status line (the greeting, or an answer outside SASL).
pub(crate) fn status_line(line: &[u8]) -> Result<StatusLine<'_>, ParseError> {
    status_only(line).ok_or_else(|| bad_status(line))
}

/// Parses a line answering a command. With `allow_continuation`, a line
/// starting `+ ` (or a lone `+`) is a SASL continuation.
pub(crate) fn reply_line(
    line: &[u8],
    allow_continuation: bool,
) -> Result<ReplyLine<'_>, ParseError> {
    if let Some(status) = status_only(line) {
        return Ok(ReplyLine::Status(status));
    }
    match line {
        [b'+'] if allow_continuation => Ok(ReplyLine::Continuation(b"")),
        [b'+', b' ', data @ ..] if allow_continuation => Ok(ReplyLine::Continuation(data)),
        _ => Err(bad_status(line)),
    }
}

fn msg_num(input: &[u8]) -> IResult<&[u8], MsgNum> {
    map_opt(dec_u32, MsgNum::new).parse(input)
}

/// STAT's text: `count size`, tolerating extra tokens after the size.
pub(crate) fn stat(text: &[u8]) -> Result<Stat, ParseError> {
    // The common exact form `count size`, then the grammar for the rest.
    if let Some((count, size)) = text
        .iter()
        .position(|&b| b == b' ')
        .map(|sp| (&text[..sp], &text[sp + 1..]))
    {
        let count = decimal(count, 10).and_then(|n| u32::try_from(n).ok());
        if let (Some(count), Some(octets)) = (count, decimal(size, 19)) {
            return Ok(Stat { count, octets });
        }
    }
    stat_grammar(text)
}

#[cold]
fn stat_grammar(text: &[u8]) -> Result<Stat, ParseError> {
    let parsed: IResult<&[u8], (u32, u64, _, _)> = all_consuming((
        preceded(space0, dec_u32),
        preceded(space1, dec_u64),
        opt(preceded(space1, rest)),
        space0,
    ))
    .parse(text);
    match parsed {
        Ok((_, (count, octets, _, _))) => Ok(Stat { count, octets }),
        Err(_) => Err(ParseError::BadStat {
            line: snippet(text),
        }),
    }
}

/// A decimal number of at most `max_digits` digits, nothing else.
#[inline]
fn decimal(digits: &[u8], max_digits: usize) -> Option<u64> {
    if digits.is_empty() || digits.len() > max_digits {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0'))
    })
}

/// The hot path of listings: `digits SP token` exactly, as every server sends
/// them. Anything else (extra blanks, errors) goes to the nom grammar, which
/// is the definition; this only avoids its cost in the common case.
#[inline]
fn split_entry(line: &[u8]) -> Option<(MsgNum, &[u8])> {
    // The number is short: a plain scan beats memchr's set-up here.
    let space = line.iter().position(|&b| b == b' ')?;
    let msg = decimal(&line[..space], 10).and_then(|n| u32::try_from(n).ok());
    Some((MsgNum::new(msg?)?, &line[space + 1..]))
}

#[inline]
fn fast_list_entry(line: &[u8]) -> Option<ListEntry> {
    let (msg, size) = split_entry(line)?;
    let octets = decimal(size, 19)?;
    Some(ListEntry { msg, octets })
}

#[inline]
fn fast_uidl_entry(line: &[u8], max_uid: usize) -> Option<UidlEntry<'_>> {
    let (msg, uid) = split_entry(line)?;
    let valid = !uid.is_empty() && uid.len() <= max_uid && all_uid_bytes(uid);
    valid.then_some(UidlEntry { msg, uid })
}

/// A LIST entry: `msg size`, tolerating extra tokens after the size (RFC 1939
/// allows servers to add information there).
#[inline]
pub(crate) fn list_entry(line: &[u8]) -> Result<ListEntry, ParseError> {
    match fast_list_entry(line) {
        Some(entry) => Ok(entry),
        None => list_entry_grammar(line),
    }
}

#[cold]
#[inline(never)]
fn list_entry_grammar(line: &[u8]) -> Result<ListEntry, ParseError> {
    let parsed = all_consuming((
        preceded(space0, msg_num),
        preceded(space1, dec_u64),
        opt(preceded(space1, rest)),
        space0,
    ))
    .parse(line);
    match parsed {
        Ok((_, (msg, octets, _, _))) => Ok(ListEntry { msg, octets }),
        Err(_) => Err(ParseError::BadListEntry {
            line: snippet(line),
        }),
    }
}

/// A UIDL entry: `msg uid`, the UID being 1..=`max_uid` printable non-space
/// bytes; trailing blanks are tolerated.
#[inline]
pub(crate) fn uidl_entry(line: &[u8], max_uid: usize) -> Result<UidlEntry<'_>, ParseError> {
    match fast_uidl_entry(line, max_uid) {
        Some(entry) => Ok(entry),
        None => uidl_entry_grammar(line, max_uid),
    }
}

#[cold]
#[inline(never)]
fn uidl_entry_grammar(line: &[u8], max_uid: usize) -> Result<UidlEntry<'_>, ParseError> {
    let parsed = all_consuming((
        preceded(space0, msg_num),
        preceded(space1, take_while1(is_uid_byte)),
        space0,
    ))
    .parse(line);
    match parsed {
        Ok((_, (msg, uid, _))) if uid.len() <= max_uid => Ok(UidlEntry { msg, uid }),
        _ => Err(ParseError::BadUidlEntry {
            line: snippet(line),
        }),
    }
}

/// One CAPA line. Never fails: anything not understood is kept as
/// [`Capability::Other`].
pub(crate) fn capability(line: &[u8]) -> Capability {
    let text = String::from_utf8_lossy(line);
    let text = text.trim();
    let (name, params_text) = match text.split_once([' ', '\t']) {
        Some((n, p)) => (n, p.trim_start()),
        None => (text, ""),
    };
    let name = name.to_ascii_uppercase();
    let params: Vec<&str> = params_text.split_ascii_whitespace().collect();
    let per_user = |p: Option<&&str>| p.is_some_and(|p| p.eq_ignore_ascii_case("USER"));
    let known = match (name.as_str(), params.as_slice()) {
        ("TOP", []) => Some(Capability::Top),
        ("USER", []) => Some(Capability::User),
        ("SASL", mechs) => Some(Capability::Sasl(
            mechs.iter().map(|m| m.to_ascii_uppercase()).collect(),
        )),
        ("RESP-CODES", []) => Some(Capability::RespCodes),
        ("AUTH-RESP-CODE", []) => Some(Capability::AuthRespCode),
        ("PIPELINING", []) => Some(Capability::Pipelining),
        ("UIDL", []) => Some(Capability::Uidl),
        ("STLS", []) => Some(Capability::Stls),
        ("LANG", []) => Some(Capability::Lang),
        ("UTF8", []) => Some(Capability::Utf8 { user: false }),
        ("UTF8", [u]) if u.eq_ignore_ascii_case("USER") => Some(Capability::Utf8 { user: true }),
        ("IMPLEMENTATION", _) => Some(Capability::Implementation(params_text.to_owned())),
        ("LOGIN-DELAY", [n, more @ ..]) if more.len() <= 1 => {
            n.parse().ok().map(|seconds| Capability::LoginDelay {
                seconds,
                per_user: per_user(more.first()),
            })
        }
        ("EXPIRE", [n, more @ ..]) if more.len() <= 1 => {
            let policy = if n.eq_ignore_ascii_case("NEVER") {
                Some(Expire::Never)
            } else {
                n.parse().ok().map(Expire::Days)
            };
            policy.map(|policy| Capability::Expire {
                policy,
                per_user: per_user(more.first()),
            })
        }
        _ => None,
    };
    known.unwrap_or_else(|| Capability::Other {
        params: params.iter().map(|p| (*p).to_owned()).collect(),
        name,
    })
}

/// The APOP timestamp in a greeting's text, in strict `<local@domain>` form:
/// printable, no spaces or brackets inside, one `@` with text on both sides.
/// A malformed timestamp means the server offers no APOP.
pub(crate) fn apop_timestamp(text: &[u8]) -> Option<String> {
    let start = memchr::memchr(b'<', text)?;
    let len = memchr::memchr(b'>', &text[start..])?;
    let candidate = &text[start..=start + len];
    let inner = &candidate[1..candidate.len() - 1];
    let parsed: IResult<&[u8], ()> = all_consuming(
        (
            take_while1(is_stamp_byte),
            tag(&b"@"[..]),
            take_while1(is_stamp_byte),
        )
            .map(|_| ()),
    )
    .parse(inner);
    parsed.ok()?;
    String::from_utf8(candidate.to_vec()).ok()
}

fn is_stamp_byte(b: u8) -> bool {
    (0x21..=0x7e).contains(&b) && !matches!(b, b'<' | b'>' | b'@')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::RespCodeKind;

    fn status(line: &[u8]) -> StatusLine<'_> {
        match reply_line(line, false) {
            Ok(ReplyLine::Status(s)) => s,
            other => panic!("not a status: {other:?}"),
        }
    }

    #[test]
    fn status_lines() {
        let s = status(b"+OK maildrop has 2 messages (320 octets)");
        assert_eq!(s.status, Status::Ok);
        assert_eq!(s.code, None);
        assert_eq!(s.text, b"maildrop has 2 messages (320 octets)");
        assert_eq!(status(b"+OK").text, b"");
        assert_eq!(status(b"-ERR").status, Status::Err);
        assert!(reply_line(b"+OKAY", false).is_err());
        assert!(reply_line(b"* OK imap", false).is_err());
        assert!(reply_line(b"", false).is_err());
        assert!(reply_line(b"+ abc", false).is_err());
        assert_eq!(
            reply_line(b"+ abc", true),
            Ok(ReplyLine::Continuation(b"abc"))
        );
        assert_eq!(reply_line(b"+", true), Ok(ReplyLine::Continuation(b"")));
    }

    #[test]
    fn response_codes() {
        let s = status(b"-ERR [IN-USE] Do you have another POP session running?");
        assert_eq!(
            s.code.as_ref().map(RespCode::kind),
            Some(RespCodeKind::InUse)
        );
        assert_eq!(s.text, b"Do you have another POP session running?");
        let s = status(b"-ERR [SYS/TEMP/DISK] try later");
        let code = s.code.as_ref().map(|c| (c.kind(), c.as_str()));
        assert_eq!(code, Some((RespCodeKind::SysTemp, "SYS/TEMP/DISK")));
        let s = status(b"-ERR [SYS/PERM] gone");
        assert_eq!(s.code.map(|c| c.kind()), Some(RespCodeKind::SysPerm));
        let s = status(b"-ERR [AUTH] Authentication failed.");
        assert_eq!(s.code.map(|c| c.kind()), Some(RespCodeKind::Auth));
        let s = status(b"-ERR [LOGIN-DELAY] wait");
        assert_eq!(s.code.map(|c| c.kind()), Some(RespCodeKind::LoginDelay));
        let s = status(b"-ERR [X-FOO/BAR] custom");
        let code = s.code.as_ref().map(|c| (c.kind(), c.as_str()));
        assert_eq!(code, Some((RespCodeKind::Other, "X-FOO/BAR")));
        // Not codes: unclosed, empty, bad characters.
        for line in [&b"-ERR [IN-USE oops"[..], b"-ERR [] x", b"-ERR [A B] x"] {
            assert_eq!(status(line).code, None, "{line:?}");
        }
    }

    #[test]
    fn stat_and_listings() {
        assert_eq!(
            stat(b"2 320"),
            Ok(Stat {
                count: 2,
                octets: 320
            })
        );
        assert_eq!(stat(b"2 320 extra tokens").map(|s| s.octets), Ok(320));
        assert!(stat(b"2").is_err());
        assert!(stat(b"two 320").is_err());
        assert!(stat(b"99999999999 1").is_err());
        let e = list_entry(b"1 120").ok();
        assert_eq!(e.map(|e| (e.msg.get(), e.octets)), Some((1, 120)));
        assert!(list_entry(b"0 120").is_err());
        assert!(list_entry(b"1").is_err());
        assert!(list_entry(b"1 12x").is_err());
        let u = uidl_entry(b"1 whqtswO00WBw418f9t5JxYwZ", 70).ok();
        assert_eq!(u.map(|u| u.uid), Some(&b"whqtswO00WBw418f9t5JxYwZ"[..]));
        assert!(uidl_entry(b"1 a b", 70).is_err());
        assert!(uidl_entry(b"1 ", 70).is_err());
        assert!(uidl_entry(b"1 abcdef", 5).is_err());
        assert!(uidl_entry(b"1 ab\x01", 70).is_err());
        assert!(uidl_entry(b"1 \xc3\xa9t\xc3\xa9 ", 70).is_ok());
    }

    proptest::proptest! {
        /// The fast path, where it answers, agrees with the nom grammar.
        #[test]
        fn fast_paths_agree_with_the_grammar(line in proptest::collection::vec(
            proptest::prop_oneof![proptest::num::u8::ANY, proptest::strategy::Just(b' '), 0x30u8..0x3a], 0..40)) {
            if let Some(fast) = fast_list_entry(&line) {
                proptest::prop_assert_eq!(Ok(fast), list_entry_grammar(&line));
            }
            if let Some(fast) = fast_uidl_entry(&line, 70) {
                proptest::prop_assert_eq!(Ok(fast), uidl_entry_grammar(&line, 70));
            }
            if let Ok(fast) = stat(&line) {
                proptest::prop_assert_eq!(Ok(fast), stat_grammar(&line));
            }
        }
    }

    #[test]
    fn capabilities() {
        assert_eq!(capability(b"top"), Capability::Top);
        assert_eq!(
            capability(b"SASL plain LOGIN xoauth2"),
            Capability::Sasl(vec!["PLAIN".into(), "LOGIN".into(), "XOAUTH2".into()])
        );
        assert_eq!(
            capability(b"LOGIN-DELAY 900 USER"),
            Capability::LoginDelay {
                seconds: 900,
                per_user: true
            }
        );
        assert_eq!(
            capability(b"EXPIRE NEVER"),
            Capability::Expire {
                policy: Expire::Never,
                per_user: false
            }
        );
        assert_eq!(
            capability(b"EXPIRE 31 USER"),
            Capability::Expire {
                policy: Expire::Days(31),
                per_user: true
            }
        );
        assert_eq!(
            capability(b"IMPLEMENTATION Shlemazle Plotz v302"),
            Capability::Implementation("Shlemazle Plotz v302".into())
        );
        assert_eq!(capability(b"UTF8 USER"), Capability::Utf8 { user: true });
        assert_eq!(
            capability(b"X-GOOGLE-RICO foo"),
            Capability::Other {
                name: "X-GOOGLE-RICO".into(),
                params: vec!["foo".into()]
            }
        );
        assert!(matches!(
            capability(b"LOGIN-DELAY soon"),
            Capability::Other { .. }
        ));
    }

    #[test]
    fn apop_timestamps() {
        assert_eq!(
            apop_timestamp(b"POP3 server ready <1896.697170952@dbc.mtview.ca.us>").as_deref(),
            Some("<1896.697170952@dbc.mtview.ca.us>")
        );
        assert_eq!(apop_timestamp(b"ready <no-at-sign>"), None);
        assert_eq!(apop_timestamp(b"ready <a b@c>"), None);
        assert_eq!(apop_timestamp(b"ready <@c>"), None);
        assert_eq!(apop_timestamp(b"ready <a@>"), None);
        assert_eq!(apop_timestamp(b"ready <a@b"), None);
        assert_eq!(apop_timestamp(b"ready"), None);
    }
}
