//! How a session starts: the login choice (secure first), `UTF8`, STLS
//! required and never fallen back from, and the greeting's failures
//! worded as the security/port mismatch they likely are.

use pop3_proto::sasl::SaslClient;
use pop3_proto::{
    apop_digest, check_line_safe, Capabilities, Capability, ClientSession, Greeting, SessionError,
};

use super::batch::Cmd;
use crate::config::{AuthMethod, ClientConfig, Credentials};
use crate::endpoint::{Protocol, Security, TlsReason};
use crate::error::{Error, MismatchSign};

/// Whether a CAPA refusal means "old server without CAPA" (RFC 1939 only):
/// that is not an error, the capabilities are just unknown.
pub(crate) fn capa_unsupported(error: &Error) -> bool {
    matches!(error, Error::Server { .. } | Error::Auth { .. })
}

/// Whether to send `UTF8` now: the settings ask for it, the server
/// advertises it, and it is not on yet.
pub(crate) fn wants_utf8(config: &ClientConfig, session: &ClientSession) -> bool {
    config.utf8
        && !session.utf8_enabled()
        && session
            .capabilities()
            .iter()
            .any(|c| matches!(c, Capability::Utf8 { .. }))
}

/// The capabilities remembered from before login, when a session may
/// pipeline CAPA with the login on their word: the server pipelined, and no
/// `UTF8` is to be sent first (that needs this session's CAPA).
pub(crate) fn remembered_before_login(config: &ClientConfig) -> Option<&Capabilities> {
    remembered(config, |p| &p.before_login)
}

/// Likewise after login: CAPA then goes with the first commands.
pub(crate) fn remembered_after_login(config: &ClientConfig) -> Option<&Capabilities> {
    remembered(config, |p| &p.after_login)
}

fn remembered(
    config: &ClientConfig,
    phase: impl Fn(&crate::pop3::ServerProfile) -> &Capabilities,
) -> Option<&Capabilities> {
    let caps = phase(config.server_profile.as_ref()?);
    let utf8 = caps.iter().any(|c| matches!(c, Capability::Utf8 { .. }));
    (caps.pipelining() && !(config.utf8 && utf8)).then_some(caps)
}

/// Whether an error is the server's `-ERR` to the command (not a broken
/// connection): for UTF8, the session goes on without UTF-8 mode.
pub(crate) fn is_refusal(error: &Error) -> bool {
    matches!(error, Error::Server { .. } | Error::Auth { .. })
}

/// Names a likely security/port mismatch when the greeting did not come
/// over a plaintext connection: silence (`silent`: not one byte arrived
/// before the timeout), a close before any byte, or a TLS record.
pub(crate) fn greeting_failed(
    error: Error,
    silent: bool,
    is_tls: bool,
    config: &ClientConfig,
) -> Error {
    if is_tls {
        return error;
    }
    let sign = match &error {
        Error::Timeout { after, .. } if silent => MismatchSign::Silence { after: *after },
        Error::Protocol(SessionError::NoGreeting) => MismatchSign::ClosedBeforeGreeting,
        Error::Protocol(SessionError::TlsInsteadOfGreeting) => MismatchSign::TlsRecord,
        _ => return error,
    };
    let tried = match config.security {
        Security::Tls => Security::Plain,
        other => other,
    };
    Error::SecurityMismatch {
        sign,
        tried,
        suggested: Security::Tls,
        protocol: Protocol::Pop3,
    }
}

/// Refuses to go on without TLS when STLS is unavailable: never fall back.
pub(crate) fn require_stls(caps: &Capabilities, host: &str) -> Result<(), Error> {
    if caps.stls() {
        return Ok(());
    }
    Err(Error::Tls {
        host: host.to_owned(),
        failure: TlsReason::StlsMissing.into(),
    })
}

/// A refused STLS is a TLS failure: the caller asked for TLS and gets none.
pub(crate) fn stls_refused(error: Error, host: &str) -> Error {
    match error {
        Error::Server { server_text, .. } | Error::Auth { server_text, .. } => Error::Tls {
            host: host.to_owned(),
            failure: TlsReason::StlsRefused(server_text).into(),
        },
        other => other,
    }
}

/// Chooses how to log in, and the commands that do it.
///
/// Secure first: credentials go in plaintext only when the caller allowed
/// it; APOP and CRAM-MD5 only when asked for; `Auto` takes SASL PLAIN, then
/// USER/PASS.
pub(crate) fn login_commands(
    config: &ClientConfig,
    credentials: &Credentials,
    caps: &Capabilities,
    greeting: &Greeting,
    is_tls: bool,
) -> Result<Vec<Cmd>, Error> {
    let method = config.auth;
    if !is_tls && !config.allow_plaintext_auth && !method.hides_secret() {
        return Err(Error::PlaintextRefused);
    }
    let user = credentials.user.as_str();
    let secret = credentials.secret.expose();
    // One rule for every method, checked before anything is sent: SASL
    // would carry CR or LF safely in base64, but the same credentials also
    // go out as USER/PASS, and no real user name or password holds them.
    let secret_name = match method {
        AuthMethod::XOAuth2 | AuthMethod::OAuthBearer => "access token",
        _ => "password",
    };
    check_line_safe("user name", user.as_bytes()).map_err(Error::InvalidArgument)?;
    check_line_safe(secret_name, secret.as_bytes()).map_err(Error::InvalidArgument)?;
    let sasl_error = Error::Sasl;
    let offered = |name: &str| caps.is_empty() || caps.sasl(name);
    let no_method = |what: &str| {
        let offered = caps.sasl_mechanisms().join(" ");
        Error::NoLoginMethod {
            reason: format!(
                "{what} is not offered by the server (it offers SASL: {}{})",
                if offered.is_empty() { "none" } else { &offered },
                if caps.user() { ", and USER/PASS" } else { "" }
            ),
        }
    };
    let user_pass = || {
        vec![
            Cmd::User(user.to_owned()),
            Cmd::Pass(credentials.secret.clone()),
        ]
    };
    let sasl = |client: SaslClient| vec![Cmd::Auth(client)];
    Ok(match method {
        AuthMethod::Auto => {
            if !caps.is_empty() && caps.sasl("PLAIN") {
                sasl(SaslClient::plain(user, secret).map_err(sasl_error)?)
            } else if caps.is_empty() || caps.user() {
                user_pass()
            } else {
                return Err(no_method("neither SASL PLAIN nor USER/PASS"));
            }
        }
        AuthMethod::User => user_pass(),
        AuthMethod::Apop => {
            let Some(stamp) = &greeting.apop_timestamp else {
                return Err(no_method("APOP (its greeting carries no timestamp)"));
            };
            vec![Cmd::Apop {
                user: user.to_owned(),
                digest: apop_digest(stamp, secret),
            }]
        }
        AuthMethod::Plain if offered("PLAIN") => {
            sasl(SaslClient::plain(user, secret).map_err(sasl_error)?)
        }
        AuthMethod::Login if offered("LOGIN") => sasl(SaslClient::login(user, secret)),
        AuthMethod::CramMd5 if offered("CRAM-MD5") => sasl(SaslClient::cram_md5(user, secret)),
        AuthMethod::XOAuth2 if offered("XOAUTH2") => {
            sasl(SaslClient::xoauth2(user, secret).map_err(sasl_error)?)
        }
        AuthMethod::OAuthBearer if offered("OAUTHBEARER") => sasl(
            SaslClient::oauthbearer(user, secret, Some((&config.host, config.port())))
                .map_err(sasl_error)?,
        ),
        AuthMethod::Plain => return Err(no_method("SASL PLAIN")),
        AuthMethod::Login => return Err(no_method("SASL LOGIN")),
        AuthMethod::CramMd5 => return Err(no_method("SASL CRAM-MD5")),
        AuthMethod::XOAuth2 => return Err(no_method("SASL XOAUTH2")),
        AuthMethod::OAuthBearer => return Err(no_method("SASL OAUTHBEARER")),
    })
}
