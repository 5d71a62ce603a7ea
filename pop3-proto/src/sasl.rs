//! Protocol-neutral SASL client steps: PLAIN, LOGIN, CRAM-MD5, XOAUTH2 and
//! OAUTHBEARER. The mechanisms work on raw bytes; POP3 (`+ base64`) and SMTP
//! (`334 base64`) both carry them in base64, with [`decode_challenge`] and the
//! encoders of each protocol. This is the one SASL implementation in the
//! workspace: smtp-auth uses it too.
//!
//! ```
//! use pop3_proto::sasl::SaslClient;
//! let mut plain = SaslClient::plain("tim", "tanstaaf")?;
//! assert_eq!(plain.initial_response().as_deref(), Some(&b"\0tim\0tanstaaf"[..]));
//! # Ok::<(), pop3_proto::SaslError>(())
//! ```

use std::fmt;

use base64::Engine;
use hmac::{Hmac, Mac};
use md5::Md5;

use crate::error::SaslError;
use crate::escape::snippet;

/// Challenge rounds allowed by default before giving up on a server.
pub const DEFAULT_MAX_ROUNDS: u32 = 8;

/// The SASL mechanisms this crate speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mechanism {
    /// PLAIN (RFC 4616): user and password in one message; TLS required.
    Plain,
    /// LOGIN: user, then password, each in answer to a prompt.
    Login,
    /// CRAM-MD5 (RFC 2195): challenge-response; weak, opt-in only.
    CramMd5,
    /// XOAUTH2 (Google, Microsoft): an OAuth 2 bearer token.
    XOAuth2,
    /// OAUTHBEARER (RFC 7628): the standard form of the above.
    OAuthBearer,
}

impl Mechanism {
    /// Every mechanism, in the order an automatic choice prefers them.
    pub const ALL: [Mechanism; 5] = [
        Mechanism::OAuthBearer,
        Mechanism::XOAuth2,
        Mechanism::Plain,
        Mechanism::Login,
        Mechanism::CramMd5,
    ];

    /// The IANA name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::Login => "LOGIN",
            Self::CramMd5 => "CRAM-MD5",
            Self::XOAuth2 => "XOAUTH2",
            Self::OAuthBearer => "OAUTHBEARER",
        }
    }

    /// The mechanism with this name (case-insensitive).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A SASL client exchange in progress, holding the credentials it needs.
/// `Debug` shows neither password nor token.
#[derive(Clone)]
pub struct SaslClient {
    mechanism: Mechanism,
    authzid: String,
    user: String,
    secret: String,
    oauth_host: Option<(String, u16)>,
    xoauth2_initial: bool,
    /// Messages sent so far, initial response included.
    sent: u32,
    rounds: u32,
    max_rounds: u32,
}

impl fmt::Debug for SaslClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaslClient")
            .field("mechanism", &self.mechanism)
            .field("user", &self.user)
            .field("secret", &"<redacted>")
            .field("rounds", &self.rounds)
            .finish()
    }
}

fn refuse(
    mechanism: Mechanism,
    argument: &'static str,
    value: &str,
    bad: &[u8],
) -> Result<(), SaslError> {
    if value.bytes().any(|b| bad.contains(&b)) {
        return Err(SaslError::BadCredential {
            mechanism: mechanism.name(),
            argument,
        });
    }
    Ok(())
}

impl SaslClient {
    fn new(mechanism: Mechanism, user: &str, secret: &str) -> Self {
        Self {
            mechanism,
            authzid: String::new(),
            user: user.to_owned(),
            secret: secret.to_owned(),
            oauth_host: None,
            xoauth2_initial: false,
            sent: 0,
            rounds: 0,
            max_rounds: DEFAULT_MAX_ROUNDS,
        }
    }

    /// PLAIN with a user name and password.
    pub fn plain(user: &str, password: &str) -> Result<Self, SaslError> {
        Self::plain_as(None, user, password)
    }

    /// PLAIN acting as `authzid` (an administrator logging in for a user).
    pub fn plain_as(authzid: Option<&str>, user: &str, password: &str) -> Result<Self, SaslError> {
        let m = Mechanism::Plain;
        refuse(m, "authorization identity", authzid.unwrap_or(""), &[0])?;
        refuse(m, "user name", user, &[0])?;
        refuse(m, "password", password, &[0])?;
        let mut client = Self::new(m, user, password);
        client.authzid = authzid.unwrap_or("").to_owned();
        Ok(client)
    }

    /// LOGIN with a user name and password.
    pub fn login(user: &str, password: &str) -> Self {
        Self::new(Mechanism::Login, user, password)
    }

    /// CRAM-MD5 with a user name and password. Weak: use only when asked for.
    pub fn cram_md5(user: &str, password: &str) -> Self {
        Self::new(Mechanism::CramMd5, user, password)
    }

    /// XOAUTH2 with a user name and OAuth 2 access token, in the two-line form
    /// (`AUTH XOAUTH2`, then the token after the server's `+`), which Office
    /// 365 requires. See [`SaslClient::with_initial_response`].
    pub fn xoauth2(user: &str, token: &str) -> Result<Self, SaslError> {
        let m = Mechanism::XOAuth2;
        refuse(m, "user name", user, &[1, 0])?;
        refuse(m, "access token", token, &[1, 0])?;
        Ok(Self::new(m, user, token))
    }

    /// OAUTHBEARER (RFC 7628) with a user name, access token, and optionally
    /// the server's host and port, which some providers check.
    pub fn oauthbearer(
        user: &str,
        token: &str,
        server: Option<(&str, u16)>,
    ) -> Result<Self, SaslError> {
        let m = Mechanism::OAuthBearer;
        refuse(m, "user name", user, &[1, 0])?;
        refuse(m, "access token", token, &[1, 0])?;
        refuse(m, "host name", server.map_or("", |s| s.0), &[1, 0])?;
        let mut client = Self::new(m, user, token);
        client.oauth_host = server.map(|(h, p)| (h.to_owned(), p));
        Ok(client)
    }

    /// For XOAUTH2: send the token with the AUTH command itself instead of
    /// waiting for a `+` (one round trip less; Gmail accepts it, Office 365
    /// does not).
    pub fn with_initial_response(mut self, yes: bool) -> Self {
        self.xoauth2_initial = yes;
        self
    }

    /// Caps the challenge rounds (default [`DEFAULT_MAX_ROUNDS`]).
    pub fn with_max_rounds(mut self, rounds: u32) -> Self {
        self.max_rounds = rounds;
        self
    }

    /// The mechanism.
    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// The user name the exchange logs in as.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The initial response to send with the AUTH command (RFC 4954 / 5034),
    /// or `None` when this mechanism waits for the server's first challenge.
    /// Call it once, before any [`SaslClient::respond`].
    pub fn initial_response(&mut self) -> Option<Vec<u8>> {
        let first = match self.mechanism {
            Mechanism::Plain | Mechanism::OAuthBearer => self.first_message(),
            Mechanism::XOAuth2 if self.xoauth2_initial => self.first_message(),
            _ => None,
        };
        if first.is_some() {
            self.sent += 1;
        }
        first
    }

    /// The client-first message of PLAIN, XOAUTH2 and OAUTHBEARER.
    fn first_message(&self) -> Option<Vec<u8>> {
        match self.mechanism {
            Mechanism::Plain => {
                Some(format!("{}\0{}\0{}", self.authzid, self.user, self.secret).into_bytes())
            }
            Mechanism::XOAuth2 => Some(
                format!("user={}\x01auth=Bearer {}\x01\x01", self.user, self.secret).into_bytes(),
            ),
            Mechanism::OAuthBearer => {
                // RFC 5801 saslname: ',' and '=' are escaped.
                let user = self.user.replace('=', "=3D").replace(',', "=2C");
                let mut msg = format!("n,a={user},\x01");
                if let Some((host, port)) = &self.oauth_host {
                    msg.push_str(&format!("host={host}\x01port={port}\x01"));
                }
                msg.push_str(&format!("auth=Bearer {}\x01\x01", self.secret));
                Some(msg.into_bytes())
            }
            Mechanism::Login | Mechanism::CramMd5 => None,
        }
    }

    /// Answers one server challenge (already base64-decoded).
    pub fn respond(&mut self, challenge: &[u8]) -> Result<Vec<u8>, SaslError> {
        self.rounds += 1;
        if self.rounds > self.max_rounds {
            return Err(SaslError::TooManyRounds {
                limit: self.max_rounds,
            });
        }
        let unexpected = SaslError::UnexpectedChallenge {
            mechanism: self.mechanism.name(),
        };
        let response = match (self.mechanism, self.sent) {
            (Mechanism::Plain | Mechanism::XOAuth2 | Mechanism::OAuthBearer, 0) => {
                self.first_message().ok_or(unexpected)?
            }
            (Mechanism::Plain, _) => return Err(unexpected),
            // A challenge after the token is an error report (JSON): answer
            // with an empty line (XOAUTH2) or ^A (RFC 7628) to get the final
            // -ERR, which carries the failure.
            (Mechanism::XOAuth2, _) => Vec::new(),
            (Mechanism::OAuthBearer, _) => vec![1],
            (Mechanism::Login, 0) => self.user.clone().into_bytes(),
            (Mechanism::Login, 1) => self.secret.clone().into_bytes(),
            (Mechanism::CramMd5, 0) => self.cram_md5_response(challenge),
            (Mechanism::Login | Mechanism::CramMd5, _) => return Err(unexpected),
        };
        self.sent += 1;
        Ok(response)
    }

    fn cram_md5_response(&self, challenge: &[u8]) -> Vec<u8> {
        // HMAC accepts keys of any length, so this cannot fail.
        let digest = match <Hmac<Md5> as Mac>::new_from_slice(self.secret.as_bytes()) {
            Ok(mut mac) => {
                mac.update(challenge);
                crate::encode::hex(&mac.finalize().into_bytes())
            }
            Err(_) => String::new(),
        };
        format!("{} {digest}", self.user).into_bytes()
    }
}

/// Decodes a challenge's base64 text (surrounding blanks ignored; empty text
/// is an empty challenge).
///
/// ```
/// assert_eq!(pop3_proto::sasl::decode_challenge(b"VXNlcm5hbWU6")?, b"Username:");
/// # Ok::<(), pop3_proto::SaslError>(())
/// ```
pub fn decode_challenge(text: &[u8]) -> Result<Vec<u8>, SaslError> {
    let trimmed = text.trim_ascii();
    if trimmed.is_empty() || trimmed == b"=" {
        return Ok(Vec::new());
    }
    base64::engine::general_purpose::STANDARD
        .decode(trimmed)
        .map_err(|_| SaslError::BadBase64 {
            text: snippet(text),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cram_md5_rfc2195_example() {
        let mut c = SaslClient::cram_md5("tim", "tanstaaftanstaaf");
        assert_eq!(c.initial_response(), None);
        let challenge = b"<1896.697170952@postoffice.reston.mci.net>";
        assert_eq!(
            c.respond(challenge).ok(),
            Some(b"tim b913a602c7eda7a495b4e6e7334d3890".to_vec())
        );
        assert!(c.respond(challenge).is_err());
    }

    #[test]
    fn login_steps() {
        let mut c = SaslClient::login("bob", "pw");
        assert_eq!(c.initial_response(), None);
        assert_eq!(c.respond(b"Username:").ok(), Some(b"bob".to_vec()));
        assert_eq!(c.respond(b"Password:").ok(), Some(b"pw".to_vec()));
        assert!(matches!(
            c.respond(b"?"),
            Err(SaslError::UnexpectedChallenge { .. })
        ));
    }

    #[test]
    fn xoauth2_two_line_form_and_error_challenge() -> Result<(), SaslError> {
        let mut c = SaslClient::xoauth2("someone@example.com", "ya29.token")?;
        assert_eq!(c.initial_response(), None);
        assert_eq!(
            c.respond(b"")?,
            b"user=someone@example.com\x01auth=Bearer ya29.token\x01\x01".to_vec()
        );
        assert_eq!(c.respond(br#"{"status":"401"}"#)?, Vec::<u8>::new());
        let mut ir = SaslClient::xoauth2("u", "t")?.with_initial_response(true);
        assert!(ir.initial_response().is_some());
        Ok(())
    }

    #[test]
    fn oauthbearer_message() -> Result<(), SaslError> {
        let mut c = SaslClient::oauthbearer("a,b=c", "tok", Some(("mail.example", 995)))?;
        assert_eq!(
            c.initial_response(),
            Some(
                b"n,a=a=2Cb=3Dc,\x01host=mail.example\x01port=995\x01auth=Bearer tok\x01\x01"
                    .to_vec()
            )
        );
        assert_eq!(c.respond(b"{}")?, vec![1]);
        Ok(())
    }

    #[test]
    fn round_cap_and_bad_credentials() {
        let mut c = SaslClient::xoauth2("u", "t")
            .map(|c| c.with_max_rounds(2))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(c.respond(b"").is_ok());
        assert!(c.respond(b"").is_ok());
        assert_eq!(c.respond(b""), Err(SaslError::TooManyRounds { limit: 2 }));
        assert!(SaslClient::plain("a\0b", "p").is_err());
        assert!(SaslClient::xoauth2("a", "t\x01").is_err());
        assert!(decode_challenge(b"!!").is_err());
    }
}
