//! How a connection is secured: a choice every other module names (the
//! settings, the errors that explain a mismatch, both protocols' clients),
//! so it stands on its own, below them all.

/// How the connection is secured. There is no "TLS if available": a client
/// asked for TLS never falls back to plaintext.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Security {
    /// TLS from the first byte (POP3S, port 995).
    Tls,
    /// Plaintext, then STLS (port 110); fails before any credential is sent
    /// if the server does not offer STLS or refuses it.
    StartTls,
    /// No TLS (port 110). Credentials are refused unless
    /// [`crate::config::ClientConfig::allow_plaintext_auth`] is set.
    Plain,
}

impl Security {
    /// The mode's short name: tls, starttls, plain (`fetch --security`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tls => "tls",
            Self::StartTls => "starttls",
            Self::Plain => "plain",
        }
    }

    /// Parses a short name ([`Security::as_str`]): tls, starttls, plain.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Tls, Self::StartTls, Self::Plain]
            .into_iter()
            .find(|s| s.as_str() == name)
    }
}
