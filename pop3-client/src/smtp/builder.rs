//! [`SmtpConfig::builder`] and [`SmtpConfig::validate`].

use super::SmtpConfig;
use crate::config::AuthMethod;
use crate::endpoint::{CertPin, CustomTls, Security, Timeouts, TlsRoots};
use crate::error::Error;

impl SmtpConfig {
    /// A builder for settings for `host`, starting from
    /// [`SmtpConfig::new`]'s defaults; [`SmtpConfigBuilder::build`]
    /// validates.
    ///
    /// ```
    /// use pop3_client::smtp::SmtpConfig;
    /// use pop3_client::Security;
    ///
    /// let config = SmtpConfig::builder("smtp.example.com")
    ///     .security(Security::StartTls) // port 587
    ///     .ehlo_name("client.example.com")
    ///     .build()?;
    /// assert_eq!(config.port(), 587);
    /// assert!(SmtpConfig::builder("smtp.example.com").ehlo_name("").build().is_err());
    /// # Ok::<(), pop3_client::Error>(())
    /// ```
    pub fn builder(host: impl Into<String>) -> SmtpConfigBuilder {
        SmtpConfigBuilder(Self::new(host))
    }

    /// Refuses settings that cannot work, naming the setting: an empty
    /// host, port 0, a zero timeout, a POP3-only login method (`User`,
    /// `Apop`), contradictory trust settings, an EHLO name that is empty
    /// or holds spaces or control characters.
    pub fn validate(&self) -> Result<(), Error> {
        let refuse = |setting: &str, why: &str| Err(Error::invalid_setting(setting, why));
        self.endpoint.validate()?;
        if matches!(self.auth, AuthMethod::User | AuthMethod::Apop) {
            return refuse(
                "auth",
                "is a POP3 login method (SMTP logs in with SASL: auto, plain, login, cram-md5, xoauth2, oauthbearer)",
            );
        }
        if self.ehlo_name.is_empty()
            || self
                .ehlo_name
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return refuse(
                "ehlo_name",
                "must be a host name or address literal, without spaces or control characters",
            );
        }
        Ok(())
    }
}

/// Builds an [`SmtpConfig`] step by step ([`SmtpConfig::builder`]);
/// [`SmtpConfigBuilder::build`] refuses settings that cannot work
/// ([`SmtpConfig::validate`]).
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until build() is called"]
pub struct SmtpConfigBuilder(SmtpConfig);

impl SmtpConfigBuilder {
    crate::config::connection_setters!();

    /// The name sent with EHLO (default `localhost`).
    pub fn ehlo_name(mut self, name: impl Into<String>) -> Self {
        self.0.ehlo_name = name.into();
        self
    }

    /// The settings, validated: an error names the setting that cannot work.
    pub fn build(self) -> Result<SmtpConfig, Error> {
        self.0.validate()?;
        Ok(self.0)
    }
}
