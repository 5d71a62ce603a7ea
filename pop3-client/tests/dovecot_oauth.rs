//! OAuth2 logins against a real server: Dovecot with `passdb oauth2`
//! (`scripts/oauth.sh start`), which accepts XOAUTH2 and OAUTHBEARER only
//! and checks each access token at the introspection endpoint of a fake
//! provider. Each test runs its own provider with the same signing key, so
//! its grant (rotation, refresh count) is its own.
//!
//! Skipped when `$POP3_OAUTH_DIR/env` (default /tmp/pop3-oauth/env) is
//! missing, unless `POP3_REQUIRE_OAUTH=1` (CI), which makes a missing
//! server a failure.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg(all(feature = "testing", feature = "oauth2-http"))]

use std::sync::Arc;
use std::time::Duration;

use pop3_client::blocking::Client;
use pop3_client::oauth::{HttpTokenEndpoint, RefreshingTokenSource, TokenEndpoint};
use pop3_client::smtp::{SmtpClient, SmtpConfig};
use pop3_client::testing::oauth::FakeProvider;
use pop3_client::testing::InteropServer;
use pop3_client::{AuthMethod, ClientConfig, Credentials, ErrorKind, Secret, Security, TlsRoots};

struct Dovecot {
    server: InteropServer,
}

impl Dovecot {
    fn find() -> Option<Self> {
        InteropServer::find(
            "POP3_OAUTH_DIR",
            "/tmp/pop3-oauth",
            "POP3_REQUIRE_OAUTH",
            "OAuth2 tests against Dovecot; run scripts/oauth.sh start",
        )
        .map(|server| Self { server })
    }

    fn get(&self, key: &str) -> &str {
        self.server.get(key)
    }

    /// A provider whose tokens this Dovecot accepts, living `expires_in`.
    fn provider(&self, expires_in: u64) -> FakeProvider {
        let key = std::fs::read(self.get("key_file")).unwrap();
        FakeProvider::signed(key.trim_ascii(), self.get("user"), expires_in).unwrap()
    }

    fn endpoint(provider: &FakeProvider) -> HttpTokenEndpoint {
        HttpTokenEndpoint::new(&provider.token_url(), "client-id")
            .unwrap()
            .timeout(Duration::from_secs(5))
    }

    fn source(&self, provider: &FakeProvider) -> Arc<RefreshingTokenSource> {
        Arc::new(RefreshingTokenSource::new(
            self.get("user"),
            Secret::new("refresh-0"),
            Box::new(Self::endpoint(provider)),
        ))
    }

    fn pop3(&self, security: Security, auth: AuthMethod) -> ClientConfig {
        let mut config = ClientConfig::new(self.get("host"));
        config.security = security;
        let port = match security {
            Security::Tls => self.get("tls_port"),
            _ => self.get("plain_port"),
        };
        config.port = Some(port.parse().unwrap());
        config.roots = TlsRoots::CaFile(self.get("ca_file").into());
        config.auth = auth;
        config
    }

    fn smtp(&self, auth: AuthMethod) -> SmtpConfig {
        let mut config = SmtpConfig::new(self.get("host"));
        config.security = Security::StartTls;
        config.port = Some(self.get("submission_port").parse().unwrap());
        config.roots = TlsRoots::CaFile(self.get("ca_file").into());
        config.auth = auth;
        config
    }
}

#[test]
fn pop3_and_smtp_log_in_with_each_mechanism_and_security() {
    let Some(dovecot) = Dovecot::find() else {
        return;
    };
    let provider = dovecot.provider(3600);
    let credentials = Credentials::oauth2(dovecot.get("user"), dovecot.source(&provider));
    for security in [Security::StartTls, Security::Tls] {
        for auth in [AuthMethod::XOAuth2, AuthMethod::OAuthBearer] {
            let mut client = Client::connect(&dovecot.pop3(security, auth), &credentials)
                .unwrap_or_else(|e| panic!("{security:?} {auth:?}: {e}"));
            client.stat().unwrap();
            client.quit().unwrap();
        }
    }
    for auth in [AuthMethod::XOAuth2, AuthMethod::OAuthBearer] {
        let mut client = SmtpClient::connect(&dovecot.smtp(auth)).unwrap();
        client
            .login(&credentials)
            .unwrap_or_else(|e| panic!("SMTP {auth:?}: {e}"));
        client.quit().unwrap();
    }
    // Six logins, one token: refreshed once.
    assert_eq!(provider.refreshes(), 1);
}

#[test]
fn a_held_token_dovecot_refuses_is_refreshed_once_and_the_login_retried() {
    let Some(dovecot) = Dovecot::find() else {
        return;
    };
    let provider = dovecot.provider(3600);
    // A token the source believes valid for a day, which the server's
    // provider never issued (revoked, say, by the tenant's administrator).
    let far = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 86_400;
    let stale = |source: RefreshingTokenSource| {
        Arc::new(source.with_access_token(Secret::new("v1.not-issued.0.x"), far))
    };
    let endpoint = |p: &FakeProvider| Box::new(Dovecot::endpoint(p));
    let source = stale(RefreshingTokenSource::new(
        "pop3",
        Secret::new("refresh-0"),
        endpoint(&provider),
    ));
    let credentials = Credentials::oauth2(dovecot.get("user"), source);
    let config = dovecot.pop3(Security::Tls, AuthMethod::XOAuth2);
    let client = Client::connect(&config, &credentials).unwrap();
    client.quit().unwrap();
    assert_eq!(provider.refreshes(), 1);

    let provider = dovecot.provider(3600);
    let source = stale(RefreshingTokenSource::new(
        "smtp",
        Secret::new("refresh-0"),
        endpoint(&provider),
    ));
    let credentials = Credentials::oauth2(dovecot.get("user"), source);
    let mut client = SmtpClient::connect(&dovecot.smtp(AuthMethod::OAuthBearer)).unwrap();
    client.login(&credentials).unwrap();
    client.quit().unwrap();
    assert_eq!(provider.refreshes(), 1);
}

#[test]
fn a_token_from_another_provider_is_refused_as_auth_without_showing_it() {
    let Some(dovecot) = Dovecot::find() else {
        return;
    };
    let user = dovecot.get("user");
    let other = FakeProvider::signed(b"another provider's key", user, 3600).unwrap();
    let token = Dovecot::endpoint(&other)
        .refresh(&Secret::new("refresh-0"))
        .unwrap()
        .access_token;
    let credentials = Credentials::new(user, token.expose());
    for auth in [AuthMethod::XOAuth2, AuthMethod::OAuthBearer] {
        let config = dovecot.pop3(Security::Tls, auth);
        let Err(e) = Client::connect(&config, &credentials) else {
            panic!("{auth:?}: a token from another provider was accepted");
        };
        assert_eq!(e.kind(), ErrorKind::Auth, "{auth:?}: {e}");
        let text = format!("{e} {e:?}");
        assert!(!text.contains(token.expose()), "{text}");
        let mut client = SmtpClient::connect(&dovecot.smtp(auth)).unwrap();
        let e = client.login(&credentials).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Auth, "SMTP {auth:?}: {e}");
    }
}
