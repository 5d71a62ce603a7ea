//! Just enough X.509 reading to describe a certificate to a user and to
//! check an exactly trusted one: subject, issuer, validity, whether it has a
//! subject alternative name, the common name, the public key's bytes.
//!
//! The certificate comes from the server before it is trusted, so every
//! read is bounds-checked and a malformed certificate is `None`, never a
//! panic; names are escaped when shown.

use pop3_proto::escape::snippet;

/// The parts of a certificate that are shown or checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Parsed<'a> {
    /// The issuer's distinguished name, as DER (the SEQUENCE's contents).
    pub(crate) issuer: &'a [u8],
    /// The subject's distinguished name, as DER (the SEQUENCE's contents).
    pub(crate) subject: &'a [u8],
    /// Seconds since the Unix epoch.
    pub(crate) not_before: i64,
    /// Seconds since the Unix epoch.
    pub(crate) not_after: i64,
    /// The whole SubjectPublicKeyInfo, tag and length included.
    pub(crate) spki: &'a [u8],
    /// Whether a subjectAltName extension is present.
    pub(crate) has_san: bool,
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// One DER element: its tag, its contents, the whole element, what follows.
type Element<'a> = (u8, &'a [u8], &'a [u8], &'a [u8]);

fn element(input: &[u8]) -> Option<Element<'_>> {
    let tag = *input.first()?;
    if tag & 0x1f == 0x1f {
        return None; // High tag numbers do not occur in what is read here.
    }
    let first = *input.get(1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..count {
            len = (len << 8) | usize::from(*input.get(2 + i)?);
        }
        (len, 2 + count)
    };
    let end = header.checked_add(len)?;
    let contents = input.get(header..end)?;
    let whole = input.get(..end)?;
    let rest = input.get(end..)?;
    Some((tag, contents, whole, rest))
}

/// Expects an element with `tag`: (contents, whole, rest).
fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8], &[u8])> {
    let (found, contents, whole, rest) = element(input)?;
    (found == tag).then_some((contents, whole, rest))
}

/// Reads a certificate's DER.
pub(crate) fn parse(der: &[u8]) -> Option<Parsed<'_>> {
    let (cert, _, _) = expect(der, SEQUENCE)?;
    let (tbs, _, _) = expect(cert, SEQUENCE)?;
    let mut rest = tbs;
    // [0] EXPLICIT version, optional.
    if rest.first() == Some(&0xa0) {
        rest = element(rest)?.3;
    }
    let (_serial, _, _, after) = element(rest)?;
    let (_, _, after) = expect(after, SEQUENCE)?; // signature algorithm
    let (issuer, _, after) = expect(after, SEQUENCE)?;
    let (validity, _, after) = expect(after, SEQUENCE)?;
    let (subject, _, after) = expect(after, SEQUENCE)?;
    let (_, spki, mut after) = expect(after, SEQUENCE)?;
    let (not_before, validity) = time(validity)?;
    let (not_after, _) = time(validity)?;
    let mut has_san = false;
    while let Some((tag, contents, _, next)) = element(after) {
        if tag == 0xa3 {
            has_san = has_extension(contents, &[0x55, 0x1d, 0x11]);
        }
        after = next;
    }
    Some(Parsed {
        issuer,
        subject,
        not_before,
        not_after,
        spki,
        has_san,
    })
}

fn has_extension(explicit: &[u8], wanted: &[u8]) -> bool {
    let Some((mut list, _, _)) = expect(explicit, SEQUENCE) else {
        return false;
    };
    while let Some((extension, _, next)) = expect(list, SEQUENCE) {
        if let Some((oid, _, _)) = expect(extension, OID) {
            if oid == wanted {
                return true;
            }
        }
        list = next;
    }
    false
}

/// A UTCTime or GeneralizedTime (`Z` form, as RFC 5280 requires), as Unix
/// seconds, and what follows it.
fn time(input: &[u8]) -> Option<(i64, &[u8])> {
    let (tag, text, _, rest) = element(input)?;
    let digits = |s: &[u8]| -> Option<i64> {
        s.iter().try_fold(0i64, |n, &b| {
            b.is_ascii_digit().then(|| n * 10 + i64::from(b - b'0'))
        })
    };
    let (year, text) = match tag {
        UTC_TIME => {
            let yy = digits(text.get(..2)?)?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, text.get(2..)?)
        }
        GENERALIZED_TIME => (digits(text.get(..4)?)?, text.get(4..)?),
        _ => return None,
    };
    if text.len() != 11 || text.get(10) != Some(&b'Z') {
        return None;
    }
    let field = |i: usize| digits(text.get(i..i + 2)?);
    let (month, day) = (field(0)?, field(2)?);
    let (hour, minute, second) = (field(4)?, field(6)?, field(8)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some((days * 86_400 + hour * 3600 + minute * 60 + second, rest))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD HH:MM:SS UTC` for Unix seconds.
/// The attributes of a distinguished name, each as (short name, value),
/// in order. Values are escaped.
fn attributes(name: &[u8]) -> Vec<(&'static str, String)> {
    let mut found = Vec::new();
    let mut rdns = name;
    while let Some((set, _, next)) = expect(rdns, SET) {
        let mut atvs = set;
        while let Some((atv, _, after)) = expect(atvs, SEQUENCE) {
            if let Some((oid, _, value)) = expect(atv, OID) {
                let label = match oid {
                    [0x55, 0x04, 0x03] => "CN",
                    [0x55, 0x04, 0x06] => "C",
                    [0x55, 0x04, 0x07] => "L",
                    [0x55, 0x04, 0x08] => "ST",
                    [0x55, 0x04, 0x0a] => "O",
                    [0x55, 0x04, 0x0b] => "OU",
                    [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01] => "emailAddress",
                    _ => "?",
                };
                if let Some((_, text, _, _)) = element(value) {
                    found.push((label, snippet(text)));
                }
            }
            atvs = after;
        }
        rdns = next;
    }
    found
}

/// A distinguished name in words: `CN=mail.example.com, O=Example`.
pub(crate) fn name_to_string(name: &[u8]) -> String {
    let parts: Vec<String> = attributes(name)
        .into_iter()
        .filter(|(label, _)| *label != "?")
        .map(|(label, value)| format!("{label}={value}"))
        .collect();
    if parts.is_empty() {
        "(empty)".to_owned()
    } else {
        parts.join(", ")
    }
}

/// The subject's common names (as shown: escaped).
pub(crate) fn common_names(name: &[u8]) -> Vec<String> {
    attributes(name)
        .into_iter()
        .filter(|(label, _)| *label == "CN")
        .map(|(_, value)| value)
        .collect()
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::endpoint::format_time;

    #[test]
    fn dates_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(format_time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_time(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(
            time(b"\x17\x0d491231235959Z").unwrap().0,
            days_from_civil(2049, 12, 31) * 86_400 + 86_399
        );
        assert_eq!(time(b"\x18\x0f99991231235959Z").unwrap().0, 253_402_300_799);
        assert!(time(b"\x17\x0d4912312359590").is_none());
    }

    #[test]
    fn rcgen_certificates_are_read() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "mail.example.com");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Example\nInc");
        params.not_before = rcgen::date_time_ymd(2001, 2, 3);
        params.not_after = rcgen::date_time_ymd(2061, 4, 5);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let parsed = parse(cert.der()).unwrap();
        assert_eq!(
            name_to_string(parsed.subject),
            "CN=mail.example.com, O=Example\\nInc"
        );
        assert_eq!(parsed.subject, parsed.issuer);
        assert_eq!(common_names(parsed.subject), ["mail.example.com"]);
        assert_eq!(format_time(parsed.not_before), "2001-02-03 00:00:00 UTC");
        assert_eq!(format_time(parsed.not_after), "2061-04-05 00:00:00 UTC");
        assert!(parsed.has_san);
        assert_eq!(parsed.spki, key.public_key_der());
    }

    #[test]
    fn garbage_is_none_never_a_panic() {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().unwrap();
        let der = params.self_signed(&key).unwrap().der().to_vec();
        assert!(!parse(&der).unwrap().has_san);
        for cut in 0..der.len() {
            assert!(parse(&der[..cut]).is_none());
        }
        for i in 0..der.len() {
            let mut bent = der.clone();
            bent[i] ^= 0xff;
            let _ = parse(&bent);
        }
        assert!(parse(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_none());
    }
}
