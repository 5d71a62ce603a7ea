//! The crate's errors, one enum per purpose. Each says what was wrong and,
//! where input was at fault, shows the offending bytes escaped and truncated.

use thiserror::Error;

/// A server response (or, in the server role, a client command) that does not
/// follow the protocol.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The status line starts with neither `+OK` nor `-ERR` (nor `+` where a
    /// SASL continuation is allowed).
    #[error("the server sent a line that is not a POP3 status (+OK/-ERR): \"{line}\"")]
    BadStatus {
        /// The line, escaped and truncated.
        line: String,
    },
    /// A STAT answer without a valid count and size.
    #[error("malformed STAT answer: \"{line}\"")]
    BadStat {
        /// The line, escaped and truncated.
        line: String,
    },
    /// A LIST entry without a valid message number and size.
    #[error("malformed LIST entry: \"{line}\"")]
    BadListEntry {
        /// The line, escaped and truncated.
        line: String,
    },
    /// A UIDL entry without a valid message number and unique-id.
    #[error("malformed UIDL entry: \"{line}\"")]
    BadUidlEntry {
        /// The line, escaped and truncated.
        line: String,
    },
    /// A SASL challenge that is not valid base64.
    #[error("SASL challenge is not valid base64: \"{line}\"")]
    BadChallenge {
        /// The line, escaped and truncated.
        line: String,
    },
    /// A client command line that cannot be parsed (server role).
    #[error("malformed command: \"{line}\"")]
    BadCommand {
        /// The line, escaped and truncated.
        line: String,
    },
    /// A command the server role does not know.
    #[error("unknown command: \"{line}\"")]
    UnknownCommand {
        /// The line, escaped and truncated.
        line: String,
    },
}

/// A command that cannot be sent as asked. Nothing is written when the
/// encoder returns one of these.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// An argument holds CR, LF or NUL, which would let it end the command
    /// early and smuggle in another (command injection).
    #[error("the {argument} contains a forbidden {byte} character (CR, LF and NUL are refused)")]
    ForbiddenByte {
        /// Which argument ("user name", "password", ...).
        argument: &'static str,
        /// The byte's name: "CR", "LF" or "NUL".
        byte: &'static str,
    },
    /// An argument that must not be empty is.
    #[error("the {argument} is empty")]
    Empty {
        /// Which argument.
        argument: &'static str,
    },
    /// An argument that must be a single token (a SASL mechanism name, a
    /// language tag) holds spaces or other characters it cannot have.
    #[error("the {argument} is not a valid name (letters, digits, '-' and '_' only, no spaces)")]
    BadToken {
        /// Which argument.
        argument: &'static str,
    },
    /// Message number 0, which POP3 never uses (messages count from 1).
    #[error("message number 0 does not exist: POP3 numbers messages from 1")]
    ZeroMessageNumber,
}

/// A SASL exchange that cannot go on.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SaslError {
    /// The server kept challenging beyond the configured number of rounds.
    #[error("the server sent more than {limit} SASL challenges; giving up")]
    TooManyRounds {
        /// The cap.
        limit: u32,
    },
    /// A challenge arrived when the mechanism expected none.
    #[error("the server sent an unexpected SASL challenge for {mechanism}")]
    UnexpectedChallenge {
        /// Mechanism name.
        mechanism: &'static str,
    },
    /// A credential holds a byte the mechanism cannot carry (NUL in PLAIN,
    /// ^A in XOAUTH2/OAUTHBEARER, a comma in an OAUTHBEARER user name...).
    #[error("the {argument} contains a character that {mechanism} cannot carry")]
    BadCredential {
        /// Mechanism name.
        mechanism: &'static str,
        /// Which credential.
        argument: &'static str,
    },
    /// The challenge is not valid base64.
    #[error("SASL challenge is not valid base64: \"{text}\"")]
    BadBase64 {
        /// The challenge, escaped and truncated.
        text: String,
    },
}

/// What went wrong driving a client session. Protocol violations by the server
/// end the session; misuse by the caller leaves it as it was.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The server violated the protocol.
    #[error("protocol violation in the answer to {during}: {error}")]
    Protocol {
        /// Which answer: the command's name, or "the greeting".
        during: &'static str,
        /// What was wrong, with the offending line.
        error: ParseError,
    },
    /// A protocol line (status, CAPA, LIST or UIDL entry) exceeded the cap.
    #[error("the server sent a protocol line longer than {limit} bytes (starting \"{start}\")")]
    LineTooLong {
        /// The configured cap.
        limit: usize,
        /// The line's start, escaped.
        start: String,
    },
    /// A message body exceeded the configured total-size cap.
    #[error("the message is larger than the configured limit of {limit} bytes")]
    BodyTooLarge {
        /// The configured cap.
        limit: u64,
    },
    /// The connection ended in the middle of a response: part of it had
    /// arrived.
    #[error("the server closed the connection in the middle of the answer to {during}")]
    UnexpectedEof {
        /// The command whose answer was cut off ("the greeting" before it).
        during: &'static str,
    },
    /// The connection ended before any byte of the greeting arrived: a
    /// server refusing the connection, or one waiting for a TLS handshake
    /// that gave up.
    #[error("the server closed the connection without sending a greeting (not one byte arrived)")]
    NoGreeting,
    /// The connection ended before any byte of a command's answer arrived.
    #[error("the server closed the connection without answering {during}")]
    NoAnswer {
        /// The command left unanswered.
        during: &'static str,
    },
    /// Where the greeting was expected, the server sent what looks like a
    /// TLS record (0x15 or 0x16, then 0x03): the port speaks TLS from the
    /// first byte.
    #[error("the server sent a TLS record where the POP3 greeting was expected")]
    TlsInsteadOfGreeting,
    /// The server closed the connection while no answer was pending.
    #[error("the server closed the connection")]
    Disconnected,
    /// The server sent bytes nobody asked for: after STLS's `+OK` (response
    /// injection, RFC 2595 / CVE-2011-0411 class), or with no command pending.
    #[error("the server sent unexpected data {context}: \"{bytes}\"")]
    UnexpectedData {
        /// Where ("after STLS was accepted", "with no command pending").
        context: &'static str,
        /// The bytes, escaped and truncated.
        bytes: String,
    },
    /// The command is not allowed in the session's current state.
    #[error("{command} is not allowed {state}")]
    IllegalCommand {
        /// The command's name.
        command: &'static str,
        /// The state, worded for the sentence ("before login").
        state: &'static str,
    },
    /// The command must wait: earlier commands are unanswered and the server
    /// does not pipeline (or the pipelining window is full, or an earlier
    /// command changes the state).
    #[error("{command} must wait for the answers to earlier commands")]
    MustWait {
        /// The command's name.
        command: &'static str,
    },
    /// The command could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The SASL exchange failed.
    #[error(transparent)]
    Sasl(#[from] SaslError),
    /// The session already failed or ended; it cannot be used further.
    #[error("the session has ended")]
    Closed,
}
