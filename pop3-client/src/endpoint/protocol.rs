//! Which protocol an endpoint serves: POP3 or SMTP submission. It decides
//! the usual ports, and the words errors use.

use super::security::Security;

/// Which protocol an endpoint serves: it decides the usual ports, and the
/// words errors use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Protocol {
    /// POP3: 995 with implicit TLS, 110 otherwise.
    Pop3,
    /// SMTP submission: 465 with implicit TLS (RFC 8314), 587 otherwise
    /// (RFC 6409).
    Smtp,
}

impl Protocol {
    /// The usual port for `security`.
    pub fn default_port(self, security: Security) -> u16 {
        match (self, security) {
            (Self::Pop3, Security::Tls) => 995,
            (Self::Pop3, _) => 110,
            (Self::Smtp, Security::Tls) => 465,
            (Self::Smtp, _) => 587,
        }
    }

    /// The protocol's name, as errors say it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pop3 => "POP3",
            Self::Smtp => "SMTP",
        }
    }

    /// Its command that upgrades a plaintext connection to TLS.
    pub fn starttls_command(self) -> &'static str {
        match self {
            Self::Pop3 => "STLS",
            Self::Smtp => "STARTTLS",
        }
    }
}
