//! The server role: parse client commands, encode responses (with
//! dot-stuffing), and [`ServerSession`], a small sans-IO POP3 server over an
//! in-memory maildrop. Tests, fuzzing, benchmarks and the demo run a real
//! server with it, and round-trip properties check each direction against the
//! other.

use std::borrow::Cow;

use base64::Engine;
use hmac::{Hmac, Mac};
use md5::Md5;
use nom::bytes::complete::{tag, take_till1};
use nom::character::complete::u32 as dec_u32;
use nom::combinator::{all_consuming, map_opt, opt, rest};
use nom::sequence::preceded;
use nom::{IResult, Parser};

use crate::encode::{apop_digest, check_line_safe, hex, is_mechanism_name, is_token, Command};
use crate::error::{EncodeError, ParseError, SessionError};
use crate::escape::snippet;
use crate::frame::{next_line, DotStuffer, DEFAULT_MAX_LINE};
use crate::types::{Capability, Expire, ListEntry, MsgNum, RespCode, Status, UidlEntry};

fn bad(line: &[u8]) -> ParseError {
    ParseError::BadCommand {
        line: snippet(line),
    }
}

fn msg_num(input: &[u8]) -> IResult<&[u8], MsgNum> {
    map_opt(dec_u32, MsgNum::new).parse(input)
}

/// Parses one command line (without its line ending).
///
/// ```
/// use pop3_proto::{server::parse_command, Command, MsgNum};
/// assert_eq!(parse_command(b"retr 2")?, Command::Retr(MsgNum::try_from(2)?));
/// assert!(parse_command(b"RETR 0").is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn parse_command(line: &[u8]) -> Result<Command<'_>, ParseError> {
    let (keyword, args) = match memchr::memchr(b' ', line) {
        Some(sp) => (&line[..sp], Some(&line[sp + 1..])),
        None => (line, None),
    };
    let text = |a: &'_ [u8]| -> Result<(), ParseError> {
        check_line_safe("argument", a).map_err(|_| bad(line))
    };
    if let Some(a) = args {
        text(a)?;
    }
    let number = |a: Option<&[u8]>| -> Option<MsgNum> {
        all_consuming(msg_num).parse(a?).ok().map(|(_, m)| m)
    };
    let upper = keyword.to_ascii_uppercase();
    let command = match (upper.as_slice(), args) {
        (b"STLS", None) => Some(Command::Stls),
        (b"CAPA", None) => Some(Command::Capa),
        (b"STAT", None) => Some(Command::Stat),
        (b"RSET", None) => Some(Command::Rset),
        (b"NOOP", None) => Some(Command::Noop),
        (b"QUIT", None) => Some(Command::Quit),
        (b"UTF8", None) => Some(Command::Utf8),
        (b"LIST", None) => Some(Command::List(None)),
        (b"UIDL", None) => Some(Command::Uidl(None)),
        (b"LANG", None) => Some(Command::Lang(None)),
        (b"LIST", a) => number(a).map(|m| Command::List(Some(m))),
        (b"UIDL", a) => number(a).map(|m| Command::Uidl(Some(m))),
        (b"RETR", a) => number(a).map(Command::Retr),
        (b"DELE", a) => number(a).map(Command::Dele),
        (b"TOP", Some(a)) => all_consuming((msg_num, preceded(tag(&b" "[..]), dec_u32)))
            .parse(a)
            .ok()
            .map(|(_, (msg, lines))| Command::Top { msg, lines }),
        (b"USER", Some(a)) => utf8(a).map(Command::User),
        (b"PASS", Some(a)) => utf8(a).map(Command::Pass),
        (b"LANG", Some(a)) => utf8(a)
            .filter(|t| is_token(t))
            .map(|t| Command::Lang(Some(t))),
        (b"APOP", Some(a)) => {
            let sp = memchr::memrchr(b' ', a);
            sp.and_then(|sp| Some((utf8(&a[..sp])?, utf8(&a[sp + 1..])?)))
                .map(|(user, digest)| Command::Apop { user, digest })
        }
        (b"AUTH", Some(a)) => auth_args(a),
        _ => {
            return Err(ParseError::UnknownCommand {
                line: snippet(line),
            })
        }
    };
    command.ok_or_else(|| bad(line))
}

/// A non-empty UTF-8 argument.
fn utf8(arg: &[u8]) -> Option<&str> {
    std::str::from_utf8(arg).ok().filter(|s| !s.is_empty())
}

fn auth_args(args: &[u8]) -> Option<Command<'_>> {
    type Parsed<'a> = IResult<&'a [u8], (&'a [u8], Option<&'a [u8]>)>;
    let parsed: Parsed<'_> = all_consuming((
        take_till1(|b| b == b' '),
        opt(preceded(tag(&b" "[..]), rest)),
    ))
    .parse(args);
    let (_, (mechanism, ir)) = parsed.ok()?;
    let mechanism = std::str::from_utf8(mechanism)
        .ok()
        .filter(|m| is_mechanism_name(m))?;
    let initial_response = match ir {
        None => None,
        Some(b"=") => Some(Cow::Borrowed(&b""[..])),
        Some(text) => Some(Cow::Owned(
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .ok()?,
        )),
    };
    Some(Command::Auth {
        mechanism,
        initial_response,
    })
}

/// A client's line during a SASL exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaslLine {
    /// Decoded response data.
    Data(Vec<u8>),
    /// `*`: the client cancels the exchange.
    Cancel,
}

/// Parses a client's SASL response line (base64, or `*` to cancel).
pub fn parse_sasl_line(line: &[u8]) -> Result<SaslLine, ParseError> {
    if line == b"*" {
        return Ok(SaslLine::Cancel);
    }
    crate::sasl::decode_challenge(line)
        .map(SaslLine::Data)
        .map_err(|_| bad(line))
}

/// Appends a status line: `+OK`/`-ERR`, the code in brackets if any, the text.
/// Text holding CR, LF or NUL is refused.
///
/// ```
/// use pop3_proto::{server::encode_status, RespCode, Status};
/// let mut out = Vec::new();
/// encode_status(Status::Err, Some(&RespCode::new("IN-USE")), b"locked", &mut out)?;
/// assert_eq!(out, b"-ERR [IN-USE] locked\r\n");
/// # Ok::<(), pop3_proto::EncodeError>(())
/// ```
pub fn encode_status(
    status: Status,
    code: Option<&RespCode>,
    text: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    check_line_safe("response text", text)?;
    out.extend_from_slice(match status {
        Status::Ok => b"+OK",
        Status::Err => b"-ERR",
    });
    if let Some(code) = code {
        out.extend_from_slice(format!(" {code}").as_bytes());
    }
    if !text.is_empty() {
        out.push(b' ');
        out.extend_from_slice(text);
    }
    out.extend_from_slice(b"\r\n");
    Ok(())
}

/// Appends a SASL continuation `+ base64` line.
pub fn encode_continuation(challenge: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b"+ ");
    out.extend_from_slice(
        base64::engine::general_purpose::STANDARD
            .encode(challenge)
            .as_bytes(),
    );
    out.extend_from_slice(b"\r\n");
}

/// Appends one line of a multi-line listing, dot-stuffed. Refuses CR, LF, NUL.
pub fn encode_listing_line(line: &[u8], out: &mut Vec<u8>) -> Result<(), EncodeError> {
    check_line_safe("listing line", line)?;
    if line.first() == Some(&b'.') {
        out.push(b'.');
    }
    out.extend_from_slice(line);
    out.extend_from_slice(b"\r\n");
    Ok(())
}

/// Appends the `.` CRLF that ends a listing.
pub fn encode_end(out: &mut Vec<u8>) {
    out.extend_from_slice(b".\r\n");
}

/// A LIST entry's text (`msg size`).
pub fn list_entry_text(entry: &ListEntry) -> String {
    format!("{} {}", entry.msg, entry.octets)
}

/// A UIDL entry's text (`msg uid`).
pub fn uidl_entry_text(entry: &UidlEntry<'_>) -> Vec<u8> {
    let mut line = format!("{} ", entry.msg).into_bytes();
    line.extend_from_slice(entry.uid);
    line
}

/// A capability's CAPA line.
pub fn capability_line(cap: &Capability) -> String {
    let user = |u: bool| if u { " USER" } else { "" };
    match cap {
        Capability::Top => "TOP".into(),
        Capability::User => "USER".into(),
        Capability::Sasl(mechs) => format!("SASL {}", mechs.join(" ")),
        Capability::RespCodes => "RESP-CODES".into(),
        Capability::AuthRespCode => "AUTH-RESP-CODE".into(),
        Capability::LoginDelay { seconds, per_user } => {
            format!("LOGIN-DELAY {seconds}{}", user(*per_user))
        }
        Capability::Pipelining => "PIPELINING".into(),
        Capability::Expire { policy, per_user } => match policy {
            Expire::Never => format!("EXPIRE NEVER{}", user(*per_user)),
            Expire::Days(d) => format!("EXPIRE {d}{}", user(*per_user)),
        },
        Capability::Uidl => "UIDL".into(),
        Capability::Implementation(text) => format!("IMPLEMENTATION {text}"),
        Capability::Stls => "STLS".into(),
        Capability::Utf8 { user: u } => format!("UTF8{}", user(*u)),
        Capability::Lang => "LANG".into(),
        Capability::Other { name, params } => {
            let mut line = name.clone();
            for p in params {
                line.push(' ');
                line.push_str(p);
            }
            line
        }
    }
}

/// A message in a [`ServerSession`]'s maildrop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerMessage {
    /// Its unique-id.
    pub uid: String,
    /// Its content, as it is sent (CRLF line endings expected).
    pub content: Vec<u8>,
}

/// What a [`ServerSession`] offers and accepts.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// The one account's user name.
    pub user: String,
    /// Its password (also the accepted OAuth token).
    pub password: String,
    /// Advertise PIPELINING (after login as well as before).
    pub pipelining: bool,
    /// Offer STLS (the driver does the handshake).
    pub stls: bool,
    /// Require TLS before login (as servers that disable plaintext auth do).
    pub require_tls_for_login: bool,
    /// SASL mechanisms offered: any of PLAIN, LOGIN, CRAM-MD5, XOAUTH2, OAUTHBEARER.
    pub sasl: Vec<String>,
    /// Offer APOP (an APOP timestamp in the greeting).
    pub apop: bool,
    /// The host name used in the APOP timestamp.
    pub hostname: String,
    /// A `[CODE] text` to refuse logins with after the password was checked
    /// (e.g. `IN-USE` to emulate a locked maildrop).
    pub refuse_login_with: Option<(String, String)>,
    /// Advertise PIPELINING only after login, as Gmail does.
    pub pipelining_only_after_login: bool,
    /// Advertise `LOGIN-DELAY n` after login.
    pub login_delay: Option<u32>,
    /// Courier's UTF-8 mode (RFC 6856): advertise `UTF8 USER` and accept
    /// `UTF8`; until the client sends it, a message with raw 8-bit bytes in
    /// its header is replaced on RETR and TOP by a generated notice
    /// ("Subject: Cannot display Unicode content", the original attached as
    /// message/global, a new boundary each time), whose size differs from
    /// LIST's.
    pub utf8: bool,
    /// Offer UIDL (on by default); off, UIDL is refused as an old server
    /// without it would.
    pub uidl: bool,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            user: "user".into(),
            password: "password".into(),
            pipelining: true,
            stls: false,
            require_tls_for_login: false,
            sasl: vec!["PLAIN".into(), "LOGIN".into()],
            apop: false,
            hostname: "localhost".into(),
            refuse_login_with: None,
            pipelining_only_after_login: false,
            login_delay: None,
            utf8: false,
            uidl: true,
        }
    }
}

/// What the driver of a [`ServerSession`] must do after writing the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerAction {
    /// Keep reading commands.
    Continue,
    /// Start the TLS handshake (after STLS's `+OK`), then call
    /// [`ServerSession::tls_established`].
    StartTls,
    /// Close the connection (after QUIT).
    Close,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ServerSasl {
    Plain,
    LoginUser,
    LoginPassword(String),
    CramMd5(String),
    Bearer {
        oauthbearer: bool,
    },
    /// The token was refused; waiting for the client's empty (or ^A) line.
    BearerFailed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerState {
    Authorization,
    Transaction,
    Closed,
}

/// A sans-IO POP3 server over an in-memory maildrop, for one connection.
///
/// ```
/// use pop3_proto::server::{ServerAction, ServerMessage, ServerOptions, ServerSession};
/// let messages = vec![ServerMessage { uid: "a1".into(), content: b"Subject: hi\r\n\r\n.x\r\n".to_vec() }];
/// let mut server = ServerSession::new(ServerOptions::default(), messages, "<1.2@localhost>");
/// let mut out = Vec::new();
/// server.greeting(&mut out);
/// let input = b"USER user\r\nPASS password\r\nRETR 1\r\n";
/// let mut used = 0;
/// while used < input.len() {
///     let (n, action) = server.handle(&input[used..], &mut out)?;
///     used += n;
///     assert_eq!(action, ServerAction::Continue);
/// }
/// assert!(out.ends_with(b"+OK 19 octets\r\nSubject: hi\r\n\r\n..x\r\n.\r\n"));
/// # Ok::<(), pop3_proto::SessionError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ServerSession {
    options: ServerOptions,
    messages: Vec<ServerMessage>,
    deleted: Vec<bool>,
    state: ServerState,
    user: Option<String>,
    timestamp: String,
    tls: bool,
    sasl: Option<ServerSasl>,
    committed: Vec<usize>,
    utf8: bool,
    notices: u32,
}

impl ServerSession {
    /// A session over `messages`; `timestamp` is the APOP timestamp (and the
    /// CRAM-MD5 challenge), in `<...@...>` form.
    pub fn new(options: ServerOptions, messages: Vec<ServerMessage>, timestamp: &str) -> Self {
        Self {
            deleted: vec![false; messages.len()],
            options,
            messages,
            state: ServerState::Authorization,
            user: None,
            timestamp: timestamp.to_owned(),
            tls: false,
            sasl: None,
            committed: Vec::new(),
            utf8: false,
            notices: 0,
        }
    }

    /// Marks the connection as already secure (implicit TLS).
    pub fn set_tls(&mut self) {
        self.tls = true;
    }

    /// Records that the TLS handshake after STLS succeeded.
    pub fn tls_established(&mut self) {
        self.tls = true;
    }

    /// Indices (from 0) of the messages deleted by a successful QUIT.
    pub fn committed_deletions(&self) -> &[usize] {
        &self.committed
    }

    /// Appends the greeting.
    pub fn greeting(&self, out: &mut Vec<u8>) {
        let text = if self.options.apop {
            format!("POP3 server ready {}", self.timestamp)
        } else {
            "POP3 server ready".to_owned()
        };
        let _ = encode_status(Status::Ok, None, text.as_bytes(), out);
    }

    fn capabilities(&self) -> Vec<Capability> {
        let mut caps = vec![Capability::Top, Capability::RespCodes];
        if self.options.uidl {
            caps.push(Capability::Uidl);
        }
        let logged_in = self.state != ServerState::Authorization;
        if self.options.pipelining && (logged_in || !self.options.pipelining_only_after_login) {
            caps.push(Capability::Pipelining);
        }
        if let (true, Some(seconds)) = (logged_in, self.options.login_delay) {
            caps.push(Capability::LoginDelay {
                seconds,
                per_user: false,
            });
        }
        if !logged_in {
            if self.options.stls && !self.tls {
                caps.push(Capability::Stls);
            }
            caps.push(Capability::User);
            if !self.options.sasl.is_empty() {
                caps.push(Capability::Sasl(self.options.sasl.clone()));
            }
        }
        if self.options.utf8 {
            caps.push(Capability::Utf8 { user: true });
        }
        caps.push(Capability::Implementation("pop3-proto test server".into()));
        caps
    }

    /// Handles the first complete line of `input`, appending the response to
    /// `out`. Returns the bytes used (0 when no complete line yet) and what
    /// the driver must do next.
    pub fn handle(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(usize, ServerAction), SessionError> {
        let Some((line, used)) = next_line(input, DEFAULT_MAX_LINE)? else {
            return Ok((0, ServerAction::Continue));
        };
        let action = if let Some(step) = self.sasl.take() {
            self.sasl_step(step, line, out);
            ServerAction::Continue
        } else {
            match parse_command(line) {
                Ok(command) => self.command(command, out),
                Err(e) => {
                    let text = e.to_string();
                    let _ = encode_status(Status::Err, None, text.as_bytes(), out);
                    ServerAction::Continue
                }
            }
        };
        Ok((used, action))
    }

    fn ok(out: &mut Vec<u8>, text: &str) {
        let _ = encode_status(Status::Ok, None, text.as_bytes(), out);
    }

    fn err(out: &mut Vec<u8>, code: Option<&str>, text: &str) {
        let code = code.map(RespCode::new);
        let _ = encode_status(Status::Err, code.as_ref(), text.as_bytes(), out);
    }

    fn login_allowed(&self, out: &mut Vec<u8>) -> bool {
        if self.options.require_tls_for_login && !self.tls {
            Self::err(out, Some("AUTH"), "Plaintext authentication disallowed.");
            return false;
        }
        true
    }

    /// Ends a login attempt: checks the credentials, enters TRANSACTION.
    fn finish_login(&mut self, user: &str, good: bool, out: &mut Vec<u8>) {
        if !good || user != self.options.user {
            Self::err(out, Some("AUTH"), "Authentication failed.");
            return;
        }
        if let Some((code, text)) = &self.options.refuse_login_with {
            Self::err(out, Some(code), text);
            return;
        }
        self.state = ServerState::Transaction;
        Self::ok(out, "Logged in.");
    }

    fn message(&self, msg: MsgNum) -> Option<(usize, &ServerMessage)> {
        let i = usize::try_from(msg.get() - 1).ok()?;
        match (self.messages.get(i), self.deleted.get(i)) {
            (Some(m), Some(false)) => Some((i, m)),
            _ => None,
        }
    }

    fn command(&mut self, command: Command<'_>, out: &mut Vec<u8>) -> ServerAction {
        use ServerState::{Authorization, Transaction};
        let password = self.options.password.clone();
        match (self.state, command) {
            (_, Command::Capa) => {
                Self::ok(out, "Capability list follows");
                for cap in self.capabilities() {
                    let _ = encode_listing_line(capability_line(&cap).as_bytes(), out);
                }
                encode_end(out);
            }
            (_, Command::Quit) => {
                if self.state == Transaction {
                    self.committed = (0..self.deleted.len())
                        .filter(|&i| self.deleted[i])
                        .collect();
                }
                self.state = ServerState::Closed;
                Self::ok(out, "Logging out.");
                return ServerAction::Close;
            }
            (_, Command::Utf8) if self.options.utf8 => {
                self.utf8 = true;
                Self::ok(out, "UTF8 enabled");
            }
            (Authorization, Command::Stls) if self.options.stls && !self.tls => {
                Self::ok(out, "Begin TLS negotiation now.");
                return ServerAction::StartTls;
            }
            (Authorization, Command::User(user)) => {
                if self.login_allowed(out) {
                    self.user = Some(user.to_owned());
                    Self::ok(out, "");
                }
            }
            (Authorization, Command::Pass(pass)) => match self.user.take() {
                Some(user) => self.finish_login(&user, pass == password, out),
                None => Self::err(out, None, "No user name given."),
            },
            (Authorization, Command::Apop { user, digest }) if self.options.apop => {
                let good = digest == apop_digest(&self.timestamp, &password);
                self.finish_login(user, good, out);
            }
            (
                Authorization,
                Command::Auth {
                    mechanism,
                    initial_response,
                },
            ) => self.auth_start(mechanism, initial_response.as_deref(), out),
            (Transaction, Command::Stat) => {
                let live = self.live();
                let size: usize = live.iter().map(|(_, m)| m.content.len()).sum();
                Self::ok(out, &format!("{} {size}", live.len()));
            }
            (Transaction, Command::List(None)) => {
                Self::ok(out, "scan listing follows");
                for (i, m) in self.live() {
                    let _ = encode_listing_line(
                        format!("{} {}", i + 1, m.content.len()).as_bytes(),
                        out,
                    );
                }
                encode_end(out);
            }
            (Transaction, Command::Uidl(_)) if !self.options.uidl => {
                Self::err(out, None, "Unknown command.");
            }
            (Transaction, Command::Uidl(None)) => {
                Self::ok(out, "unique-id listing follows");
                for (i, m) in self.live() {
                    let _ = encode_listing_line(format!("{} {}", i + 1, m.uid).as_bytes(), out);
                }
                encode_end(out);
            }
            (Transaction, Command::List(Some(n))) => match self.message(n) {
                Some((_, m)) => Self::ok(out, &format!("{n} {}", m.content.len())),
                None => Self::err(out, None, "No such message."),
            },
            (Transaction, Command::Uidl(Some(n))) => match self.message(n) {
                Some((_, m)) => Self::ok(out, &format!("{n} {}", m.uid)),
                None => Self::err(out, None, "No such message."),
            },
            (Transaction, Command::Retr(n)) => match self.served(n) {
                Some(content) => {
                    Self::ok(out, &format!("{} octets", content.len()));
                    let mut stuffer = DotStuffer::new();
                    stuffer.push(&content, out);
                    stuffer.finish(out);
                }
                None => Self::err(out, None, "No such message."),
            },
            (Transaction, Command::Top { msg, lines }) => match self.served(msg) {
                Some(content) => {
                    Self::ok(out, "");
                    let mut stuffer = DotStuffer::new();
                    stuffer.push(top_of(&content, lines), out);
                    stuffer.finish(out);
                }
                None => Self::err(out, None, "No such message."),
            },
            (Transaction, Command::Dele(n)) => match self.message(n) {
                Some((i, _)) => {
                    self.deleted[i] = true;
                    Self::ok(out, "Marked to be deleted.");
                }
                None => Self::err(out, None, "No such message."),
            },
            (Transaction, Command::Rset) => {
                self.deleted.iter_mut().for_each(|d| *d = false);
                Self::ok(out, "");
            }
            (Transaction, Command::Noop) => Self::ok(out, ""),
            (_, other) => Self::err(
                out,
                None,
                &format!("{} not allowed now.", other.kind().name()),
            ),
        }
        ServerAction::Continue
    }

    /// What RETR and TOP send for `msg`: the message, or in UTF-8 mode
    /// before `UTF8` the notice that replaces a message with a raw 8-bit
    /// header.
    fn served(&mut self, msg: MsgNum) -> Option<Cow<'_, [u8]>> {
        let (i, m) = self.message(msg)?;
        let replace = self.options.utf8 && !self.utf8 && header_has_8bit(&m.content);
        if !replace {
            return Some(Cow::Borrowed(&self.messages[i].content));
        }
        self.notices += 1;
        let boundary = format!(
            "=_notice-{}-{}",
            self.notices,
            self.timestamp.trim_matches(['<', '>'])
        );
        Some(Cow::Owned(unicode_notice(
            &self.messages[i].content,
            &boundary,
        )))
    }

    fn live(&self) -> Vec<(usize, &ServerMessage)> {
        self.messages
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.deleted[*i])
            .collect()
    }

    fn auth_start(&mut self, mechanism: &str, initial: Option<&[u8]>, out: &mut Vec<u8>) {
        let offered = self
            .options
            .sasl
            .iter()
            .any(|m| m.eq_ignore_ascii_case(mechanism));
        if !offered {
            return Self::err(out, None, "Unsupported authentication mechanism.");
        }
        if !self.login_allowed(out) {
            return;
        }
        let step = match mechanism.to_ascii_uppercase().as_str() {
            "PLAIN" => ServerSasl::Plain,
            "LOGIN" => ServerSasl::LoginUser,
            "CRAM-MD5" => ServerSasl::CramMd5(self.timestamp.clone()),
            "XOAUTH2" => ServerSasl::Bearer { oauthbearer: false },
            _ => ServerSasl::Bearer { oauthbearer: true },
        };
        match (initial, &step) {
            (Some(data), ServerSasl::Plain | ServerSasl::Bearer { .. }) => {
                self.sasl_data(step, data, out)
            }
            (_, ServerSasl::LoginUser) => {
                encode_continuation(b"Username:", out);
                self.sasl = Some(step);
            }
            (_, ServerSasl::CramMd5(challenge)) => {
                encode_continuation(challenge.as_bytes(), out);
                self.sasl = Some(step);
            }
            _ => {
                encode_continuation(b"", out);
                self.sasl = Some(step);
            }
        }
    }

    fn sasl_step(&mut self, step: ServerSasl, line: &[u8], out: &mut Vec<u8>) {
        match parse_sasl_line(line) {
            Ok(SaslLine::Data(data)) => self.sasl_data(step, &data, out),
            Ok(SaslLine::Cancel) => Self::err(out, None, "Authentication aborted by client."),
            Err(_) => Self::err(out, None, "Invalid base64 data in continued response."),
        }
    }

    fn sasl_data(&mut self, step: ServerSasl, data: &[u8], out: &mut Vec<u8>) {
        let password = self.options.password.clone();
        match step {
            ServerSasl::Plain => {
                let mut parts = data.split(|&b| b == 0);
                let (_authz, user, pass) = (parts.next(), parts.next(), parts.next());
                let user = String::from_utf8_lossy(user.unwrap_or_default()).into_owned();
                let good = pass == Some(password.as_bytes()) && parts.next().is_none();
                self.finish_login(&user, good, out);
            }
            ServerSasl::LoginUser => {
                encode_continuation(b"Password:", out);
                let user = String::from_utf8_lossy(data).into_owned();
                self.sasl = Some(ServerSasl::LoginPassword(user));
            }
            ServerSasl::LoginPassword(user) => {
                self.finish_login(&user, data == password.as_bytes(), out);
            }
            ServerSasl::CramMd5(challenge) => {
                let text = String::from_utf8_lossy(data);
                let (user, digest) = text.rsplit_once(' ').unwrap_or(("", ""));
                let expected = <Hmac<Md5> as Mac>::new_from_slice(password.as_bytes())
                    .map(|mut mac| {
                        mac.update(challenge.as_bytes());
                        hex(&mac.finalize().into_bytes())
                    })
                    .unwrap_or_default();
                self.finish_login(user, digest == expected, out);
            }
            ServerSasl::Bearer { oauthbearer } => {
                let text = String::from_utf8_lossy(data);
                let user = text
                    .split(['\x01', ','])
                    .find_map(|f| f.strip_prefix("user=").or_else(|| f.strip_prefix("a=")))
                    .unwrap_or("")
                    .to_owned();
                let token_ok = text
                    .split('\x01')
                    .any(|f| f.strip_prefix("auth=Bearer ") == Some(password.as_str()));
                let user_ok = user == self.options.user;
                if token_ok && user_ok && (oauthbearer == text.starts_with("n,")) {
                    self.finish_login(&user, true, out);
                } else {
                    encode_continuation(br#"{"status":"401","schemes":"bearer"}"#, out);
                    self.sasl = Some(ServerSasl::BearerFailed);
                }
            }
            ServerSasl::BearerFailed => Self::err(out, Some("AUTH"), "Authentication failed."),
        }
    }
}

/// Whether the header (up to the first empty line) holds a byte above 0x7F.
fn header_has_8bit(content: &[u8]) -> bool {
    let end = memchr::memmem::find(content, b"\r\n\r\n")
        .or_else(|| memchr::memmem::find(content, b"\n\n"))
        .unwrap_or(content.len());
    content[..end].iter().any(|&b| b >= 0x80)
}

/// The message Courier sends instead of one with a raw UTF-8 header to a
/// client that did not send `UTF8`: a notice, with the original attached as
/// message/global.
fn unicode_notice(original: &[u8], boundary: &str) -> Vec<u8> {
    let mut out = format!(
        "From: Mail Delivery Subsystem <postmaster@localhost>\r\n\
         Subject: Cannot display Unicode content\r\n\
         Mime-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\
         \r\n\
         This is a MIME-formatted message.\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\
         \r\n\
         This message has Unicode content that your mail program did not ask\r\n\
         for (it did not send the UTF8 command); it is attached.\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Type: message/global\r\n\
         \r\n"
    )
    .into_bytes();
    out.extend_from_slice(original);
    if !original.ends_with(b"\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    out
}

/// The header and the first `lines` lines of the body, for TOP.
fn top_of(content: &[u8], lines: u32) -> &[u8] {
    let header_end = memchr::memmem::find(content, b"\r\n\r\n")
        .map(|i| i + 4)
        .or_else(|| memchr::memmem::find(content, b"\n\n").map(|i| i + 2))
        .unwrap_or(content.len());
    let mut end = header_end;
    for _ in 0..lines {
        match memchr::memchr(b'\n', &content[end..]) {
            Some(lf) => end += lf + 1,
            None => return content,
        }
    }
    &content[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commands() {
        let m = |n| MsgNum::new(n).unwrap_or_else(|| unreachable!());
        assert_eq!(parse_command(b"stat"), Ok(Command::Stat));
        assert_eq!(
            parse_command(b"TOP 1 10"),
            Ok(Command::Top {
                msg: m(1),
                lines: 10
            })
        );
        assert_eq!(parse_command(b"PASS a b"), Ok(Command::Pass("a b")));
        assert_eq!(
            parse_command(b"APOP mrose c4c9334bac560ecc979e58001b3e22fb"),
            Ok(Command::Apop {
                user: "mrose",
                digest: "c4c9334bac560ecc979e58001b3e22fb"
            })
        );
        assert_eq!(
            parse_command(b"AUTH PLAIN AHUAcA=="),
            Ok(Command::Auth {
                mechanism: "PLAIN",
                initial_response: Some(Cow::Owned(b"\0u\0p".to_vec()))
            })
        );
        assert!(matches!(
            parse_command(b"XYZZY"),
            Err(ParseError::UnknownCommand { .. })
        ));
        // "AUTH O3\tP" was found by the roundtrip fuzzer: parsed, yet not encodable.
        for bad in [
            &b"AUTH O3\tP"[..],
            b"LANG a\tb",
            b"RETR",
            b"RETR 0",
            b"RETR x",
            b"STAT 1",
            b"TOP 1",
            b"USER ",
            b"LIST 1 2",
        ] {
            assert!(parse_command(bad).is_err(), "{bad:?}");
        }
    }

    /// Runs `commands` through a session and returns everything it sent.
    fn exchange(options: ServerOptions, messages: Vec<ServerMessage>, commands: &[u8]) -> Vec<u8> {
        let mut server = ServerSession::new(options, messages, "<1.2@localhost>");
        let mut out = Vec::new();
        let mut used = 0;
        while used < commands.len() {
            let n = server
                .handle(&commands[used..], &mut out)
                .map(|(n, _)| n)
                .unwrap_or(0);
            assert!(n > 0, "every command is a complete line");
            used += n;
        }
        out
    }

    #[test]
    fn utf8_mode_replaces_raw_utf8_headers_until_utf8_is_sent() {
        let raw = "Subject: Gr\u{fc}\u{df}e\r\n\r\nK\u{f6}ln\r\n"
            .as_bytes()
            .to_vec();
        let ascii = b"Subject: hi\r\n\r\nK\xc3\xb6ln\r\n".to_vec();
        let messages = vec![
            ServerMessage {
                uid: "a".into(),
                content: raw.clone(),
            },
            ServerMessage {
                uid: "b".into(),
                content: ascii.clone(),
            },
        ];
        let options = ServerOptions {
            utf8: true,
            ..ServerOptions::default()
        };
        let login = b"USER user\r\nPASS password\r\n";
        let mut off = login.to_vec();
        off.extend_from_slice(b"CAPA\r\nLIST 1\r\nRETR 1\r\nRETR 1\r\nRETR 2\r\n");
        let out = exchange(options.clone(), messages.clone(), &off);
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("\r\nUTF8 USER\r\n"), "{text}");
        assert!(
            text.contains(&format!("+OK 1 {}\r\n", raw.len())),
            "LIST gives the stored size: {text}"
        );
        assert_eq!(
            text.matches("Subject: Cannot display Unicode content")
                .count(),
            2,
            "{text}"
        );
        assert!(
            text.contains("boundary=\"=_notice-1-") && text.contains("boundary=\"=_notice-2-"),
            "a new boundary each time: {text}"
        );
        assert!(
            out.windows(raw.len()).any(|w| w == raw),
            "the original is attached"
        );
        assert!(
            out.windows(ascii.len() + 2)
                .any(|w| w == [&ascii[..], b".\r"].concat()),
            "an ASCII header is sent as stored"
        );
        // After UTF8 (before or after login), the message is sent as stored.
        for utf8_first in [true, false] {
            let mut on = Vec::new();
            if utf8_first {
                on.extend_from_slice(b"UTF8\r\n");
            }
            on.extend_from_slice(login);
            if !utf8_first {
                on.extend_from_slice(b"UTF8\r\n");
            }
            on.extend_from_slice(b"RETR 1\r\n");
            let out = exchange(options.clone(), messages.clone(), &on);
            let mut expected = format!("+OK {} octets\r\n", raw.len()).into_bytes();
            expected.extend_from_slice(&raw);
            expected.extend_from_slice(b".\r\n");
            assert!(
                out.ends_with(&expected),
                "{}",
                String::from_utf8_lossy(&out)
            );
            assert!(String::from_utf8_lossy(&out).contains("+OK UTF8 enabled\r\n"));
        }
        // Without UTF-8 mode the command is refused and nothing is replaced.
        let out = exchange(
            ServerOptions::default(),
            messages,
            b"UTF8\r\nUSER user\r\nPASS password\r\nRETR 1\r\n",
        );
        assert!(out.starts_with(b"-ERR"));
        assert!(out.ends_with(&[&raw[..], b".\r\n"].concat()));
    }

    #[test]
    fn top_cuts_after_header() {
        let msg = b"A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\nl3\r\n";
        assert_eq!(top_of(msg, 0), b"A: 1\r\nB: 2\r\n\r\n");
        assert_eq!(top_of(msg, 2), b"A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\n");
        assert_eq!(top_of(msg, 10), &msg[..]);
    }
}
