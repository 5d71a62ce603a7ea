//! How a secure connection failed, as data: the reason, and the
//! certificate the server presented when that is what was refused. These
//! are the errors' vocabulary for TLS, so they stand below both the errors
//! and the transport that produces them.

use std::fmt;

/// Why a secure connection could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsReason {
    /// The certificate is not signed by a trusted authority.
    UnknownIssuer,
    /// The certificate is self-signed and not in the trust file.
    SelfSigned,
    /// The certificate's validity period has ended.
    Expired,
    /// The certificate's validity period has not begun.
    NotYetValid,
    /// The certificate is for another host name.
    WrongHost,
    /// The certificate is a CA certificate, and not exactly one in the
    /// trust file.
    CaUsedAsEndEntity,
    /// The certificate has been revoked.
    Revoked,
    /// The certificate matches none of the pins.
    PinMismatch,
    /// Another certificate problem, in words.
    BadCertificate(String),
    /// STARTTLS was required and the server does not offer STLS.
    StlsMissing,
    /// STARTTLS was required and the server refused STLS (its words, escaped).
    StlsRefused(String),
    /// The server did not answer in TLS.
    NotTls,
    /// The server closed the connection during the handshake.
    ClosedDuringHandshake,
    /// The server aborted the handshake with this alert.
    Alert(String),
    /// Another handshake failure, in words.
    Other(String),
}

impl fmt::Display for TlsReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownIssuer => f.write_str("the server's certificate is not signed by a trusted authority (a private CA: pass its certificate as the CA file)"),
            Self::SelfSigned => f.write_str("the server's certificate is self-signed, so not signed by a trusted authority (pass it as the CA file, or pin its fingerprint)"),
            Self::Expired => f.write_str("the server's certificate has expired"),
            Self::NotYetValid => f.write_str("the server's certificate is not valid yet (check this computer's clock)"),
            Self::WrongHost => f.write_str("the server's certificate is for a different host name (check the server name you typed)"),
            Self::CaUsedAsEndEntity => f.write_str("the server's certificate is a CA certificate, which is trusted for a server only when it is exactly the one in the CA file (pass it as the CA file, or pin its fingerprint)"),
            Self::Revoked => f.write_str("the server's certificate has been revoked"),
            Self::PinMismatch => f.write_str("the server's certificate matches none of the pinned fingerprints (if the server's certificate was renewed, check the new fingerprint with its administrator)"),
            Self::BadCertificate(words) => write!(f, "the server's certificate is unusable: {words}"),
            Self::StlsMissing => f.write_str("the server does not offer STLS, and STARTTLS was required; no credentials were sent (use implicit TLS on port 995 if the server supports it)"),
            Self::StlsRefused(text) => write!(f, "the server refused STLS (\"{text}\"), and STARTTLS was required; no credentials were sent"),
            Self::NotTls => f.write_str("the server did not speak TLS (is this the right port for the chosen security?)"),
            Self::ClosedDuringHandshake => f.write_str("the server closed the connection during the handshake (is this the right port for the chosen security?)"),
            Self::Alert(alert) => write!(f, "the server aborted the handshake ({alert})"),
            Self::Other(words) => f.write_str(words),
        }
    }
}

/// What the server presented, for a user deciding whether to trust it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    /// The subject's distinguished name (`CN=..., O=...`), escaped.
    pub subject: String,
    /// The issuer's distinguished name, escaped.
    pub issuer: String,
    /// Start of the validity period, seconds since the Unix epoch (`None`
    /// if the certificate could not be read).
    pub not_before: Option<i64>,
    /// End of the validity period, seconds since the Unix epoch.
    pub not_after: Option<i64>,
    /// The SHA-256 digest of the certificate (DER): what a pin names.
    pub sha256: [u8; 32],
}

impl CertificateInfo {
    /// The SHA-256 fingerprint as `AB:CD:...`, ready for `--pin-sha256`.
    pub fn fingerprint(&self) -> String {
        Fingerprint(&self.sha256).to_string()
    }
}

impl fmt::Display for CertificateInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "subject \"{}\", issuer \"{}\"",
            self.subject, self.issuer
        )?;
        if let (Some(from), Some(until)) = (self.not_before, self.not_after) {
            write!(
                f,
                ", valid from {} until {}",
                format_time(from),
                format_time(until)
            )?;
        }
        write!(f, ", SHA-256 fingerprint {}", self.fingerprint())
    }
}

/// A TLS failure: the reason, and the certificate the server presented
/// when that is what was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFailure {
    /// Why.
    pub reason: TlsReason,
    /// The server's certificate, when it was refused.
    pub certificate: Option<Box<CertificateInfo>>,
}

impl TlsFailure {
    /// A failure with no certificate to show.
    pub fn new(reason: TlsReason) -> Self {
        Self {
            reason,
            certificate: None,
        }
    }
}

impl From<TlsReason> for TlsFailure {
    fn from(reason: TlsReason) -> Self {
        Self::new(reason)
    }
}

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.reason)?;
        if let Some(cert) = &self.certificate {
            write!(f, "; the server presented a certificate with {cert}")?;
        }
        Ok(())
    }
}

impl std::error::Error for TlsFailure {}

/// A digest shown as colon-separated upper-case hex (`AB:CD:...`), the form
/// `openssl x509 -fingerprint` prints and `fetch --pin-sha256` accepts.
pub(crate) struct Fingerprint<'a>(pub(crate) &'a [u8]);

impl fmt::Display for Fingerprint<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

/// A time in seconds since the Unix epoch as `YYYY-MM-DD hh:mm:ss UTC`.
pub(crate) fn format_time(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    // The inverse of days_from_civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}
