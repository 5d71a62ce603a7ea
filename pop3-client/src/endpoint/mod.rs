//! Where and how securely to connect, whatever the protocol: one
//! [`Endpoint`] type that the POP3 and SMTP settings both hold (host, port,
//! security, trust, pins, timeouts), validated once per connect; and the
//! vocabulary below the transport and the errors: [`Security`], the trust
//! settings, and how TLS failed.

pub(crate) mod protocol;
pub(crate) mod security;
pub(crate) mod setting_error;
pub(crate) mod tls_failure;
mod trust;

use std::time::Duration;

pub use protocol::Protocol;
pub use security::Security;
pub use setting_error::SettingError;
#[cfg(test)]
pub(crate) use tls_failure::format_time;
pub(crate) use tls_failure::Fingerprint;
pub use tls_failure::{CertificateInfo, TlsFailure, TlsReason};
pub use trust::{CertPin, CustomTls, TlsRoots};

/// Makes a protocol's settings type dereference to the [`Endpoint`] it
/// holds in its `endpoint` field, so the endpoint's fields read and write
/// as the settings' own.
macro_rules! holds_endpoint {
    ($settings:ty) => {
        impl std::ops::Deref for $settings {
            type Target = crate::endpoint::Endpoint;
            fn deref(&self) -> &crate::endpoint::Endpoint {
                &self.endpoint
            }
        }

        impl std::ops::DerefMut for $settings {
            fn deref_mut(&mut self) -> &mut crate::endpoint::Endpoint {
                &mut self.endpoint
            }
        }
    };
}
pub(crate) use holds_endpoint;

/// Where and how securely to connect: what every connection needs,
/// whatever the protocol. [`crate::config::ClientConfig`] and
/// [`crate::smtp::SmtpConfig`] each hold one and dereference to it, so its
/// fields read and write as theirs (`config.host`, `config.timeouts`).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Endpoint {
    /// Server host name (checked against its certificate) or IP address.
    pub host: String,
    /// Port; `None` for the protocol's usual port for the security chosen
    /// ([`Protocol::default_port`]).
    pub port: Option<u16>,
    /// How the connection is secured (never falls back to plaintext).
    pub security: Security,
    /// Which authorities to trust.
    pub roots: TlsRoots,
    /// Certificate pins: when there are any, the server's certificate must
    /// match one of them, beside what `roots` requires ([`TlsRoots::PinsOnly`]:
    /// instead). Empty by default.
    pub pins: Vec<CertPin>,
    /// TLS set up by the caller, replacing `roots` and `pins`. `None` by
    /// default.
    pub custom_tls: Option<CustomTls>,
    /// Limits on every wait.
    pub timeouts: Timeouts,
    protocol: Protocol,
}

impl Endpoint {
    /// `host` for `protocol`, with implicit TLS on the usual port,
    /// certificates checked against Mozilla's roots, default timeouts.
    pub fn new(protocol: Protocol, host: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            port: None,
            security: Security::Tls,
            roots: TlsRoots::WebPki,
            pins: Vec::new(),
            custom_tls: None,
            timeouts: Timeouts::default(),
            protocol,
        }
    }

    /// The protocol served.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The port to use.
    pub fn port(&self) -> u16 {
        self.port
            .unwrap_or(self.protocol.default_port(self.security))
    }

    /// Refuses an endpoint that cannot work, naming the setting: an empty
    /// host, port 0, a zero timeout (`Duration::MAX` is the way to say "no
    /// limit"), [`TlsRoots::PinsOnly`] without a pin, pins beside a custom
    /// TLS set-up.
    pub fn validate(&self) -> Result<(), SettingError> {
        let refuse = |setting: &str, problem: &str| Err(SettingError::new(setting, problem));
        if self.host.is_empty() {
            return refuse("host", "is empty");
        }
        if self.port == Some(0) {
            return refuse("port", "cannot be 0");
        }
        let t = &self.timeouts;
        for (setting, value) in [
            ("timeouts.connect", t.connect),
            ("timeouts.tls_handshake", t.tls_handshake),
            ("timeouts.response", t.response),
            ("timeouts.idle", t.idle),
        ] {
            if value.is_zero() {
                return refuse(
                    setting,
                    "is 0, so every wait would fail at once (Duration::MAX means no limit)",
                );
            }
        }
        match (&self.roots, self.pins.is_empty(), &self.custom_tls) {
            (_, false, Some(_)) => refuse(
                "pins",
                "cannot be used with custom_tls (the custom set-up decides alone)",
            ),
            (TlsRoots::PinsOnly, true, None) => refuse(
                "roots",
                "is PinsOnly but no pin is given, so no certificate would be trusted",
            ),
            _ => Ok(()),
        }
    }
}

/// Every wait the client makes is bounded by one of these. Any of them may
/// be `Duration::MAX` for no limit; zero is refused by
/// [`Endpoint::validate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// To look up the server's name, and then to establish the TCP
    /// connection (per address tried).
    pub connect: Duration,
    /// To complete a TLS handshake.
    pub tls_handshake: Duration,
    /// For a whole response to arrive, from the moment it is awaited (plus
    /// the allowance for bodies below): a server trickling bytes cannot hold
    /// the client longer.
    pub response: Duration,
    /// For any single read to return data: the longest silence tolerated.
    pub idle: Duration,
    /// Bodies earn extra time at this rate (bytes per second): a large
    /// message over a slow link completes, a trickle does not.
    pub min_body_rate: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(30),
            tls_handshake: Duration::from_secs(30),
            response: Duration::from_secs(60),
            idle: Duration::from_secs(60),
            min_body_rate: 8 * 1024,
        }
    }
}

impl Timeouts {
    /// All timeouts set to `d` (a `--timeout` flag).
    pub fn all(d: Duration) -> Self {
        Self {
            connect: d,
            tls_handshake: d,
            response: d,
            idle: d,
            ..Self::default()
        }
    }
}
