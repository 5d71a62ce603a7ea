//! Errors and refusals. A [`Refusal`] is the server saying no, classified so
//! an application can act on it (ask for a new password, wait, shrink the
//! message); an [`Error`] is anything that stops an operation, with
//! [`Error::kind`] and [`Error::is_transient`] for the driver to map.

use std::fmt;

use pop3_proto::SaslError;
use thiserror::Error;

use crate::reply::{EnhancedCode, Reply, ReplyError};

/// Which command (or the greeting) a reply answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Step {
    /// The server's greeting.
    Greeting,
    /// EHLO.
    Ehlo,
    /// STARTTLS.
    StartTls,
    /// AUTH and its exchange.
    Auth,
    /// MAIL FROM.
    Mail,
    /// RCPT TO.
    Rcpt,
    /// DATA (the 354 go-ahead).
    Data,
    /// The message, after its final dot.
    Message,
    /// RSET, sent by the session to end a failed transaction.
    Rset,
    /// QUIT.
    Quit,
    /// No command: a reply the server sent unasked (a 421 before closing an
    /// idle connection).
    Unsolicited,
}

impl Step {
    /// The command's name ("the greeting" for the greeting).
    pub fn name(self) -> &'static str {
        match self {
            Self::Greeting => "the greeting",
            Self::Ehlo => "EHLO",
            Self::StartTls => "STARTTLS",
            Self::Auth => "AUTH",
            Self::Mail => "MAIL FROM",
            Self::Rcpt => "RCPT TO",
            Self::Data => "DATA",
            Self::Message => "the message",
            Self::Rset => "RSET",
            Self::Quit => "QUIT",
            Self::Unsolicited => "no command",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a refusal means for the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RefusalKind {
    /// The server turned the connection away in its greeting (554, 421).
    Unavailable,
    /// Wrong user name or password (535, 5.7.8).
    CredentialsRejected,
    /// An app-specific password or a log-in through the provider's web page
    /// is needed (534, 5.7.9, Gmail's 5.7.14): the reply text says how.
    AppPasswordRequired,
    /// The server wants AUTH first (530 without a word on encryption).
    AuthRequired,
    /// The server wants TLS first (538; 530 with 5.7.0 or 5.7.10/5.7.11
    /// naming TLS or encryption).
    EncryptionRequired,
    /// The message is larger than the server takes (552 after MAIL, DATA or
    /// the message; x.3.4; 5.2.3), with the server's SIZE when known.
    TooBig {
        /// The server's announced SIZE, if any.
        limit: Option<u64>,
    },
    /// A sending limit: rate, quota or policy (421/450/451/452/550/554 whose
    /// text names a rate, quota, limit or throttling, or a policy with a
    /// x.7.x code; a 421 with a x.7.x code, as Gmail's `421 4.7.0 Try again
    /// later` when it throttles).
    Limit,
    /// The provider refuses passwords: sign in with OAuth2 (Microsoft's
    /// `535 5.7.139 ... basic authentication is disabled`, `550 5.7.30
    /// Basic authentication is not supported for Client Submission`), or
    /// have the administrator enable SMTP AUTH for the mailbox (`535 5.7.139
    /// ... SmtpClientAuthentication is disabled for the Tenant`).
    OAuthRequired,
    /// A recipient refused (an answer to RCPT TO).
    Recipient,
    /// Any other refusal; transient or not by its code.
    Other,
}

impl RefusalKind {
    /// The stable short name ([`Error::kind`]).
    pub fn name(self) -> &'static str {
        match self {
            Self::Unavailable => "connect",
            Self::CredentialsRejected | Self::AuthRequired => "auth",
            Self::AppPasswordRequired => "app-password",
            Self::EncryptionRequired => "tls",
            Self::TooBig { .. } => "too-big",
            Self::Limit => "limit",
            Self::OAuthRequired => "oauth-required",
            Self::Recipient => "recipient",
            Self::Other => "server",
        }
    }
}

/// The server said no: its code, enhanced code and text (escaped), what the
/// session was doing, and what it means ([`RefusalKind`]).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("the server refused {step}: {code}{} {text}", enhanced.map(|e| format!(" {e}")).unwrap_or_default())]
pub struct Refusal {
    /// What was refused.
    pub step: Step,
    /// The reply code.
    pub code: u16,
    /// The enhanced status code, when sent.
    pub enhanced: Option<EnhancedCode>,
    /// The server's text, escaped, enhanced codes removed, lines joined.
    pub text: String,
    /// What it means.
    pub kind: RefusalKind,
}

impl Refusal {
    /// Classifies `reply` as the answer to `step`; `size_limit` is the
    /// server's announced SIZE, if any.
    pub fn classify(step: Step, reply: &Reply, size_limit: Option<u64>) -> Self {
        let code = reply.code();
        let enhanced = reply.enhanced();
        let text = reply.text_escaped();
        let kind = classify(step, code, enhanced, &text.to_ascii_lowercase(), size_limit);
        Self {
            step,
            code,
            enhanced,
            text,
            kind,
        }
    }

    /// 4xx: trying again later may work.
    pub fn is_transient(&self) -> bool {
        self.code / 100 == 4
    }
}

fn classify(
    step: Step,
    code: u16,
    enhanced: Option<EnhancedCode>,
    lower: &str,
    size_limit: Option<u64>,
) -> RefusalKind {
    let e = enhanced.map(|e| (e.class, e.subject, e.detail));
    let subject = e.map(|(_, s, _)| s);
    // Whole words, so that "generated" does not name a rate.
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let names = |prefixes: &[&str]| {
        words
            .iter()
            .any(|w| prefixes.iter().any(|p| w.starts_with(p)))
    };
    let names_tls = names(&["encrypt"]) || words.iter().any(|w| w.contains("tls") || *w == "ssl");
    let too_many = words.windows(2).any(|w| w == ["too", "many"]);
    // Office 365 writes `SubmissionQuotaExceededException`: "quota" and
    // "throttl" are looked for inside words, "rate" and "limit" only at
    // their start.
    let inside = |parts: &[&str]| words.iter().any(|w| parts.iter().any(|p| w.contains(p)));
    let names_limit =
        too_many || names(&["rate", "limit"]) || inside(&["quota", "throttl", "ratelimit"]);
    // Before "wrong password": Microsoft answers 535 when passwords are
    // refused altogether.
    let basic_auth_off = words.windows(3).any(|w| {
        w[0] == "basic"
            && w[1].starts_with("auth")
            && (w[2] == "is" || w[2] == "disabled" || w[2] == "not")
    }) && (names(&["disabled"])
        || words.windows(2).any(|w| w == ["not", "supported"]));
    let tenant_off = inside(&["smtpclientauthentication"]) && names(&["disabled"]);
    // 5.7.139 alone also comes with wrong credentials: the text decides;
    // 5.7.30 is "basic authentication is not supported" itself.
    if basic_auth_off || tenant_off || matches!(e, Some((5, 7, 30))) {
        return RefusalKind::OAuthRequired;
    }
    if code == 534 || matches!(e, Some((5, 7, 9 | 14))) {
        return RefusalKind::AppPasswordRequired;
    }
    if code == 535 || matches!(e, Some((5, 7, 8))) {
        return RefusalKind::CredentialsRejected;
    }
    if code == 538 || matches!(e, Some((_, 7, 10 | 11))) || (code == 530 && names_tls) {
        return RefusalKind::EncryptionRequired;
    }
    if code == 530 {
        return RefusalKind::AuthRequired;
    }
    let too_big = matches!(e, Some((_, 3, 4) | (_, 2, 3)))
        || (code == 552 && matches!(step, Step::Mail | Step::Data | Step::Message));
    if too_big {
        return RefusalKind::TooBig { limit: size_limit };
    }
    let limit_code = matches!(code, 421 | 450 | 451 | 452 | 550 | 554);
    if limit_code && (names_limit || (subject == Some(7) && names(&["policy"]))) {
        return RefusalKind::Limit;
    }
    // A closing 421 for a policy reason is the server throttling.
    if code == 421 && subject == Some(7) && !names_tls {
        return RefusalKind::Limit;
    }
    match step {
        Step::Greeting => RefusalKind::Unavailable,
        Step::Rcpt => RefusalKind::Recipient,
        _ => RefusalKind::Other,
    }
}

/// An argument the caller gave that cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ArgumentError {
    /// CR, LF or NUL: they would end the command early and smuggle in
    /// another (command injection).
    #[error("the {argument} contains a forbidden {byte} character (CR, LF and NUL are refused)")]
    ForbiddenByte {
        /// Which argument ("sender address", "EHLO name", ...).
        argument: &'static str,
        /// "CR", "LF" or "NUL".
        byte: &'static str,
    },
    /// An address or name this crate will not put on the wire.
    #[error("the {argument} is not usable: {reason}")]
    Invalid {
        /// Which argument.
        argument: &'static str,
        /// Why, in words.
        reason: &'static str,
    },
}

/// What stops an operation. After an error the session is closed unless
/// [`crate::SmtpSession::is_closed`] says otherwise (refusals of AUTH or of
/// a transaction, the caller's own mistakes).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    /// The server refused a command.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The server refused every recipient of the message, so nothing was sent.
    #[error("the server refused every recipient: {}", list_refused(.0))]
    RecipientsRefused(Vec<(String, Refusal)>),
    /// The message is larger than the server's announced SIZE; nothing was
    /// sent.
    #[error("the message is {size} bytes, more than the server's limit of {limit} bytes")]
    TooBig {
        /// The message's size as given.
        size: u64,
        /// The server's SIZE.
        limit: u64,
    },
    /// STARTTLS was asked for and the server does not offer it.
    #[error("the server does not offer STARTTLS; refusing to go on without TLS")]
    StartTlsNotOffered,
    /// The server sent bytes after its 220 to STARTTLS, before the TLS
    /// handshake: response injection (CVE-2011-0411 class). Nothing more is
    /// sent on this connection.
    #[error("the server sent data after accepting STARTTLS, before TLS began: \"{bytes}\"")]
    StartTlsInjection {
        /// The bytes, escaped and truncated.
        bytes: String,
    },
    /// The SASL mechanism is not in the server's AUTH list.
    #[error("the server does not offer AUTH {mechanism} (it offers: {offered})")]
    MechanismNotOffered {
        /// The mechanism asked for.
        mechanism: &'static str,
        /// What the server offers, space-separated.
        offered: String,
    },
    /// A message needs an extension the server lacks (8BITMIME, SMTPUTF8).
    #[error("the message needs {extension}, which the server does not offer")]
    ExtensionNotOffered {
        /// The extension's name.
        extension: &'static str,
    },
    /// A reply broke the grammar or the limits.
    #[error("protocol violation in the answer to {during}: {error}")]
    Reply {
        /// What the reply answered.
        during: Step,
        /// What was wrong.
        error: ReplyError,
    },
    /// A well-formed reply that makes no sense here (a 354 to MAIL, a 334
    /// outside AUTH, a 2xx to the greeting other than 220).
    #[error("unexpected reply to {during}: {reply}")]
    UnexpectedReply {
        /// What the reply answered.
        during: Step,
        /// The reply, escaped.
        reply: String,
    },
    /// A complete reply arrived with no command pending.
    #[error("the server sent data with no command pending: \"{bytes}\"")]
    UnexpectedData {
        /// The bytes, escaped and truncated.
        bytes: String,
    },
    /// The SASL exchange failed (the exchange was cancelled with `*`).
    #[error(transparent)]
    Sasl(#[from] SaslError),
    /// An argument cannot be sent.
    #[error(transparent)]
    Argument(#[from] ArgumentError),
    /// The connection ended in the middle of the answer to `during`.
    #[error("the server closed the connection in the middle of the answer to {during}")]
    UnexpectedEof {
        /// What was being answered.
        during: Step,
    },
    /// The connection ended while no answer was pending.
    #[error("the server closed the connection")]
    Disconnected,
    /// The call is not allowed now.
    #[error("{call} is not allowed {state}")]
    IllegalCall {
        /// The call.
        call: &'static str,
        /// The session's state, worded for the sentence.
        state: &'static str,
    },
    /// The session already ended.
    #[error("the session has ended")]
    Closed,
}

fn list_refused(refused: &[(String, Refusal)]) -> String {
    let parts: Vec<String> = refused
        .iter()
        .map(|(rcpt, r)| {
            format!(
                "<{}>: {}{} {}",
                pop3_proto::escape::Escaped(rcpt.as_bytes()),
                r.code,
                r.enhanced.map(|e| format!(" {e}")).unwrap_or_default(),
                r.text
            )
        })
        .collect();
    parts.join("; ")
}

impl Error {
    /// A stable short name for what went wrong: connect, tls, auth,
    /// app-password, too-big, limit, recipient, server, protocol, io, config.
    /// (The drivers add timeout.)
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Refused(r) => r.kind.name(),
            Self::RecipientsRefused(_) => "recipient",
            Self::TooBig { .. } => "too-big",
            Self::StartTlsNotOffered | Self::StartTlsInjection { .. } => "tls",
            Self::MechanismNotOffered { .. } => "auth",
            Self::ExtensionNotOffered { .. } => "server",
            Self::Reply { .. } | Self::UnexpectedReply { .. } | Self::UnexpectedData { .. } => {
                "protocol"
            }
            Self::Sasl(SaslError::BadCredential { .. }) => "config",
            Self::Sasl(_) => "protocol",
            Self::UnexpectedEof { .. } | Self::Disconnected => "io",
            Self::Argument(_) | Self::IllegalCall { .. } | Self::Closed => "config",
        }
    }

    /// Whether trying again later may work: 4xx refusals (all recipients
    /// refused with 4xx included) and cut connections.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Refused(r) => r.is_transient(),
            Self::RecipientsRefused(all) => all.iter().all(|(_, r)| r.is_transient()),
            Self::UnexpectedEof { .. } | Self::Disconnected => true,
            _ => false,
        }
    }

    /// Whether the server refused the credentials: wrong user name or
    /// password (535, 5.7.8), or an app-specific password needed (534,
    /// 5.7.9, 5.7.14). Retrying with the same credentials will not help.
    pub fn is_auth_failure(&self) -> bool {
        matches!(
            self,
            Self::Refused(Refusal {
                kind: RefusalKind::CredentialsRejected
                    | RefusalKind::AppPasswordRequired
                    | RefusalKind::OAuthRequired,
                ..
            })
        )
    }

    /// The refusal, when the server refused.
    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            Self::Refused(r) => Some(r),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reply::ReplyParser;

    fn refusal(step: Step, wire: &[u8]) -> Refusal {
        let reply = ReplyParser::new().parse(wire).unwrap().1.unwrap();
        Refusal::classify(step, &reply, Some(1000))
    }

    #[test]
    fn auth_failures_are_told_apart() {
        let e = |step, wire: &[u8]| Error::Refused(refusal(step, wire));
        assert!(e(Step::Auth, b"535 5.7.8 Authentication failed\r\n").is_auth_failure());
        assert!(e(
            Step::Auth,
            b"534 5.7.9 Application-specific password required\r\n"
        )
        .is_auth_failure());
        assert!(!e(
            Step::Auth,
            b"454 4.7.0 Temporary authentication failure\r\n"
        )
        .is_auth_failure());
        assert!(!e(Step::Mail, b"530 5.7.0 Authentication required\r\n").is_auth_failure());
        assert!(!Error::Disconnected.is_auth_failure());
    }

    #[test]
    fn classification() {
        let k = |step, wire: &[u8]| refusal(step, wire).kind;
        assert_eq!(
            k(Step::Auth, b"535 5.7.8 Authentication failed\r\n"),
            RefusalKind::CredentialsRejected
        );
        assert_eq!(
            k(Step::Auth, b"534-5.7.9 Application-specific password required. Learn more at\r\n534 5.7.9 https://support.google.com/mail/?p=InvalidSecondFactor\r\n"),
            RefusalKind::AppPasswordRequired
        );
        assert_eq!(k(Step::Auth, b"534-5.7.14 <https://accounts.google.com/signin>\r\n534 5.7.14 Please log in via your web browser\r\n"), RefusalKind::AppPasswordRequired);
        assert_eq!(
            k(
                Step::Mail,
                b"530 5.7.0 Must issue a STARTTLS command first.\r\n"
            ),
            RefusalKind::EncryptionRequired
        );
        assert_eq!(
            k(Step::Auth, b"538 5.7.11 Encryption required\r\n"),
            RefusalKind::EncryptionRequired
        );
        assert_eq!(
            k(
                Step::Mail,
                b"530-5.7.0 Authentication Required. Learn more at\r\n530 5.7.0 https://x\r\n"
            ),
            RefusalKind::AuthRequired
        );
        assert_eq!(
            k(
                Step::Message,
                b"552 5.3.4 Message size exceeds fixed limit\r\n"
            ),
            RefusalKind::TooBig { limit: Some(1000) }
        );
        assert_eq!(
            k(Step::Mail, b"552 Too much mail data\r\n"),
            RefusalKind::TooBig { limit: Some(1000) }
        );
        assert_eq!(
            k(Step::Rcpt, b"552 5.2.2 Mailbox full\r\n"),
            RefusalKind::Recipient
        );
        assert_eq!(
            k(
                Step::Mail,
                b"550 5.4.5 Daily user sending quota exceeded.\r\n"
            ),
            RefusalKind::Limit
        );
        assert_eq!(
            k(Step::Mail, b"451 4.7.1 Rate limited, try later\r\n"),
            RefusalKind::Limit
        );
        assert_eq!(
            k(
                Step::Message,
                b"554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException\r\n"
            ),
            RefusalKind::Limit
        );
        assert_eq!(
            k(Step::Greeting, b"554 No SMTP service here\r\n"),
            RefusalKind::Unavailable
        );
        assert_eq!(
            k(
                Step::Mail,
                b"550 5.7.1 Message generated by a separate moderated list\r\n"
            ),
            RefusalKind::Other
        );
        assert_eq!(
            k(
                Step::Mail,
                b"451 4.7.1 Ratelimit reached; too many messages\r\n"
            ),
            RefusalKind::Limit
        );
        assert_eq!(
            k(Step::Mail, b"550 5.7.1 Rejected by policy\r\n"),
            RefusalKind::Limit
        );
        // Gmail's throttling.
        let r = refusal(
            Step::Mail,
            b"421 4.7.0 Try again later, closing connection.\r\n",
        );
        assert_eq!((r.kind, r.is_transient()), (RefusalKind::Limit, true));
        assert_eq!(Error::from(r).kind(), "limit");
        // Microsoft's refusals of passwords, as they are sent.
        for wire in [
            &b"535 5.7.139 Authentication unsuccessful, basic authentication is disabled. [SN4PR0501CA0054.namprd05.prod.outlook.com]\r\n"[..],
            b"550 5.7.30 Basic authentication is not supported for Client Submission.\r\n",
            b"535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information.\r\n",
        ] {
            let r = refusal(Step::Auth, wire);
            assert_eq!(r.kind, RefusalKind::OAuthRequired, "{r}");
            assert!(Error::Refused(r).is_auth_failure());
        }
        assert_eq!(
            k(
                Step::Auth,
                b"535 5.7.8 Username and Password not accepted\r\n"
            ),
            RefusalKind::CredentialsRejected
        );
        // Microsoft's 5.7.139 with wrong credentials stays a wrong password.
        assert_eq!(
            k(
                Step::Auth,
                b"535 5.7.139 Authentication unsuccessful, the user credentials were incorrect.\r\n"
            ),
            RefusalKind::CredentialsRejected
        );
        assert_eq!(
            k(Step::Rcpt, b"550 5.1.1 No such user\r\n"),
            RefusalKind::Recipient
        );
    }

    #[test]
    fn messages_escape_server_text() {
        let r = refusal(Step::Auth, b"535 5.7.8 bad\x1b[31m \xff\r\n");
        assert_eq!(
            r.to_string(),
            "the server refused AUTH: 535 5.7.8 bad\\x1b[31m \\xff"
        );
    }
}
