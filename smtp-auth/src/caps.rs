//! EHLO capabilities (RFC 5321 section 4.1.1.1): the lines after the first
//! of a 250 reply to EHLO, one extension each (`KEYWORD [params]`).

use pop3_proto::sasl::Mechanism;

use crate::reply::Reply;

/// What the server offered in its EHLO reply. Keywords are matched
/// case-insensitively; extensions this crate does not use are kept, as sent,
/// in [`Capabilities::others`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// The server's name from the first line (escape it to show it).
    pub server_name: Vec<u8>,
    /// SASL mechanisms from `AUTH` (and the old `AUTH=` form), upper-cased.
    pub auth: Vec<String>,
    /// STARTTLS (RFC 3207).
    pub starttls: bool,
    /// SIZE (RFC 1870) was offered.
    pub size_offered: bool,
    /// The SIZE limit in bytes; `None` when SIZE came without a value or with
    /// 0 (RFC 1870: no fixed limit announced).
    pub size_limit: Option<u64>,
    /// PIPELINING (RFC 2920).
    pub pipelining: bool,
    /// 8BITMIME (RFC 6152).
    pub eight_bit_mime: bool,
    /// SMTPUTF8 (RFC 6531).
    pub smtputf8: bool,
    /// ENHANCEDSTATUSCODES (RFC 2034).
    pub enhanced_status_codes: bool,
    /// CHUNKING (RFC 3030); this crate sends DATA, never BDAT.
    pub chunking: bool,
    /// Every other extension line, as sent.
    pub others: Vec<Vec<u8>>,
}

impl Capabilities {
    /// Reads the capabilities from a positive EHLO reply.
    ///
    /// ```
    /// use smtp_auth::{Capabilities, Reply};
    /// let reply = Reply::new(250, vec![
    ///     b"smtp.example.com Hello".to_vec(),
    ///     b"SIZE 35882577".to_vec(),
    ///     b"AUTH LOGIN PLAIN XOAUTH2".to_vec(),
    ///     b"8BITMIME".to_vec(),
    /// ]).unwrap();
    /// let caps = Capabilities::from_ehlo(&reply);
    /// assert_eq!(caps.size_limit, Some(35882577));
    /// assert!(caps.offers_auth(pop3_proto::sasl::Mechanism::Plain));
    /// assert!(caps.eight_bit_mime && !caps.starttls);
    /// ```
    pub fn from_ehlo(reply: &Reply) -> Self {
        let mut caps = Self::default();
        let mut lines = reply.lines().iter();
        if let Some(first) = lines.next() {
            let name = first.split(|&b| b == b' ').next().unwrap_or_default();
            caps.server_name = name.to_vec();
        }
        for line in lines {
            caps.add(line);
        }
        caps
    }

    fn add(&mut self, line: &[u8]) {
        let line = line.trim_ascii();
        // `AUTH=LOGIN PLAIN`: the form from before RFC 2554 was final.
        let split = line
            .iter()
            .position(|&b| b == b' ' || b == b'=')
            .unwrap_or(line.len());
        let (keyword, params) = line.split_at(split);
        let params = params.get(1..).unwrap_or_default();
        let params = || {
            params
                .split(|&b| b == b' ')
                .filter(|p| !p.is_empty())
                .map(|p| String::from_utf8_lossy(p).to_ascii_uppercase())
        };
        let is = |name: &str| keyword.eq_ignore_ascii_case(name.as_bytes());
        if is("AUTH") {
            for mechanism in params() {
                if !self.auth.contains(&mechanism) {
                    self.auth.push(mechanism);
                }
            }
        } else if is("STARTTLS") {
            self.starttls = true;
        } else if is("SIZE") {
            self.size_offered = true;
            self.size_limit = params()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .filter(|&n| n > 0);
        } else if is("PIPELINING") {
            self.pipelining = true;
        } else if is("8BITMIME") {
            self.eight_bit_mime = true;
        } else if is("SMTPUTF8") {
            self.smtputf8 = true;
        } else if is("ENHANCEDSTATUSCODES") {
            self.enhanced_status_codes = true;
        } else if is("CHUNKING") {
            self.chunking = true;
        } else if !line.is_empty() {
            self.others.push(line.to_vec());
        }
    }

    /// Whether `AUTH` lists this mechanism.
    pub fn offers_auth(&self, mechanism: Mechanism) -> bool {
        self.auth.iter().any(|m| m == mechanism.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(lines: &[&[u8]]) -> Capabilities {
        let reply = Reply::new(250, lines.iter().map(|l| l.to_vec()).collect()).unwrap();
        Capabilities::from_ehlo(&reply)
    }

    #[test]
    fn every_keyword() {
        let c = caps(&[
            b"mx.example Hi [1.2.3.4]",
            b"auth=LOGIN plain",
            b"AUTH PLAIN CRAM-MD5",
            b"starttls",
            b"SIZE",
            b"PIPELINING",
            b"8BITMIME",
            b"SMTPUTF8",
            b"ENHANCEDSTATUSCODES",
            b"CHUNKING",
            b"DSN",
            b"X-\xff",
        ]);
        assert_eq!(c.server_name, b"mx.example");
        assert_eq!(c.auth, vec!["LOGIN", "PLAIN", "CRAM-MD5"]);
        assert!(c.starttls && c.size_offered && c.pipelining && c.eight_bit_mime);
        assert!(c.smtputf8 && c.enhanced_status_codes && c.chunking);
        assert_eq!(c.size_limit, None);
        assert_eq!(c.others, vec![b"DSN".to_vec(), b"X-\xff".to_vec()]);
        assert!(c.offers_auth(Mechanism::CramMd5));
        assert!(!c.offers_auth(Mechanism::XOAuth2));
    }

    #[test]
    fn size_values() {
        assert_eq!(caps(&[b"x", b"SIZE 0"]).size_limit, None);
        assert_eq!(caps(&[b"x", b"SIZE 1000"]).size_limit, Some(1000));
        assert_eq!(caps(&[b"x", b"SIZE junk"]).size_limit, None);
        assert!(!caps(&[b"x"]).size_offered);
    }
}
