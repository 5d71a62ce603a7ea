//! Which certificates to trust: the authorities, pins, or a caller's own
//! TLS set-up.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;

use super::setting_error::SettingError;
use super::tls_failure::Fingerprint;

/// Which certificate authorities to trust.
///
/// A certificate that is exactly one in a CA file (or PEM) is trusted even
/// when it is marked as a CA, as OpenSSL and GnuTLS clients do (a bare
/// `openssl req -x509` makes such certificates); its validity and host name
/// are still checked. See also [`Endpoint::pins`](super::Endpoint::pins).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsRoots {
    /// Mozilla's roots, built in (webpki-roots). The default.
    WebPki,
    /// The operating system's store.
    System,
    /// The certificates in a PEM file (a private CA, a self-signed server).
    CaFile(PathBuf),
    /// The certificates in PEM text held in memory.
    CaPem(Vec<u8>),
    /// No authority: only a certificate matching one of
    /// [`Endpoint::pins`](super::Endpoint::pins) is trusted, whatever its issuer, validity or
    /// names (as mpop's `tls_fingerprint`). Needs at least one pin.
    PinsOnly,
}

/// TLS set up by the caller instead of by [`Endpoint::roots`](super::Endpoint::roots) and
/// [`Endpoint::pins`](super::Endpoint::pins).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum CustomTls {
    /// A certificate verifier of the caller's (MailKit's validation
    /// callback): it decides alone which certificates are trusted.
    Verifier(Arc<dyn ServerCertVerifier>),
    /// A whole rustls client configuration, used as is.
    Config(Arc<rustls::ClientConfig>),
}

/// A certificate pin: the SHA-256 digest of what the server must present.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CertPin {
    /// The digest of the whole certificate (DER), as shown by
    /// `openssl x509 -noout -fingerprint -sha256` and used by mpop's
    /// `tls_fingerprint` and fetchmail's `sslfingerprint`.
    Certificate([u8; 32]),
    /// The digest of the certificate's SubjectPublicKeyInfo (DER): it
    /// survives a renewal that keeps the key.
    PublicKey([u8; 32]),
}

impl CertPin {
    /// A pin on the whole certificate from its SHA-256 fingerprint in hex:
    /// 64 hex digits, upper or lower case, optionally separated by colons
    /// (`AB:CD:...`) or spaces.
    pub fn certificate_sha256(hex: &str) -> Result<Self, SettingError> {
        parse_sha256(hex).map(Self::Certificate)
    }

    /// A pin on the public key from the SHA-256 of its SubjectPublicKeyInfo
    /// in hex (same forms as [`CertPin::certificate_sha256`]).
    pub fn public_key_sha256(hex: &str) -> Result<Self, SettingError> {
        parse_sha256(hex).map(Self::PublicKey)
    }

    pub(crate) fn matches(&self, certificate: &[u8; 32], public_key: Option<&[u8; 32]>) -> bool {
        match self {
            Self::Certificate(digest) => digest == certificate,
            Self::PublicKey(digest) => Some(digest) == public_key,
        }
    }
}

impl fmt::Display for CertPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Certificate(d) => write!(f, "certificate SHA-256 {}", Fingerprint(d)),
            Self::PublicKey(d) => write!(f, "public key SHA-256 {}", Fingerprint(d)),
        }
    }
}

fn parse_sha256(text: &str) -> Result<[u8; 32], SettingError> {
    let digits: Vec<u8> = text.bytes().filter(|b| *b != b':' && *b != b' ').collect();
    let invalid = || {
        SettingError::new(
            "pins",
            format!(
                "\"{}\" is not a SHA-256 fingerprint (64 hex digits, colons allowed)",
                pop3_proto::escape::snippet(text.as_bytes())
            ),
        )
    };
    if digits.len() != 64 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return Err(invalid());
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let hex = std::str::from_utf8(pair).map_err(|_| invalid())?;
        *byte = u8::from_str_radix(hex, 16).map_err(|_| invalid())?;
    }
    Ok(out)
}
