//! An in-process SMTP submission server for tests and demos: 127.0.0.1,
//! TLS (implicit, or STARTTLS) with a certificate generated at start
//! ([`crate::testing::self_signed_tls`]), AUTH PLAIN, LOGIN, CRAM-MD5,
//! XOAUTH2 and OAUTHBEARER against one account, messages stored dot-unstuffed, and fault injection.
//!
//! A thread per connection, line by line. Recipients whose address contains
//! `bad` are refused with `550 5.1.1`; the others are accepted. It stops
//! when the [`SmtpTestServer`] is dropped; connections end when their
//! client goes or after a minute idle.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::testing::{tls_accept, Conn, Listener};
use base64::Engine as _;
use pop3_proto::sasl::SaslClient;

use crate::endpoint::Protocol;
use crate::smtp::SmtpConfig;

/// Longest command line read (the client's lines are far shorter).
const MAX_LINE: usize = 64 * 1024;

/// Misbehaviour to inject.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SmtpFault {
    /// Behave.
    #[default]
    None,
    /// Send a forged `250` right behind STARTTLS's `220`, before the
    /// handshake.
    InjectAfterStartTls,
    /// Do not offer STARTTLS (and refuse it with 502 if sent anyway).
    NoStartTls,
    /// Offer STARTTLS and refuse it with `454 4.7.0`.
    RefuseStartTls,
    /// Answer every AUTH with Gmail's `534 5.7.9` (app-specific password
    /// required).
    AppPasswordRequired,
    /// Advertise `SIZE n`; refuse a bigger message with `552 5.3.4` (at
    /// MAIL when its `SIZE=` says so, else after the message).
    SizeLimit(u64),
    /// Once a message's data passes this many bytes, answer `552 5.3.4`
    /// and close at once, without reading the rest.
    CutMidMessage(u64),
    /// Answer MAIL FROM with `421 4.7.0` and close.
    ShutdownAfterMail,
    /// Answer MAIL FROM with a reply line that never ends.
    EndlessReplyLine,
    /// Stop answering at MAIL FROM (keep the connection open, read and
    /// ignore everything).
    StopAnsweringAtMail,
}

/// How an [`SmtpTestServer`] behaves.
#[derive(Debug, Clone)]
pub struct SmtpTestServerConfig {
    /// The one user name accepted.
    pub user: String,
    /// Its password.
    pub password: String,
    /// TLS from the first byte (port 465 style) instead of plaintext with
    /// STARTTLS.
    pub implicit_tls: bool,
    /// Offer PIPELINING.
    pub pipelining: bool,
    /// The AUTH mechanisms offered (default PLAIN, LOGIN, CRAM-MD5; also
    /// XOAUTH2 and OAUTHBEARER, which take the password as the token).
    pub mechanisms: Vec<String>,
    /// Misbehaviour to inject.
    pub fault: SmtpFault,
}

impl Default for SmtpTestServerConfig {
    fn default() -> Self {
        Self {
            user: "user".into(),
            password: "password".into(),
            implicit_tls: false,
            pipelining: true,
            mechanisms: vec!["PLAIN".into(), "LOGIN".into(), "CRAM-MD5".into()],
            fault: SmtpFault::None,
        }
    }
}

/// A message the server accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// The MAIL FROM address.
    pub from: String,
    /// The accepted recipients.
    pub to: Vec<String>,
    /// The message, dot-unstuffed, line endings as received.
    pub data: Vec<u8>,
}

/// A command line the server received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedLine {
    /// Which connection, from 0.
    pub connection: usize,
    /// Whether it came over TLS.
    pub tls: bool,
    /// The line without its ending (AUTH data included: test credentials).
    pub line: String,
}

#[derive(Default)]
struct Shared {
    messages: Mutex<Vec<ReceivedMessage>>,
    lines: Mutex<Vec<ReceivedLine>>,
    stop: Arc<AtomicBool>,
}

/// A running SMTP server on 127.0.0.1.
pub struct SmtpTestServer {
    listener: Listener,
    shared: Arc<Shared>,
}

impl SmtpTestServer {
    /// Starts listening on an ephemeral port of 127.0.0.1.
    pub fn start(config: SmtpTestServerConfig) -> io::Result<Self> {
        let (ca_pem, tls) = crate::testing::self_signed_tls()?;
        let shared = Arc::new(Shared::default());
        let serving = Arc::clone(&shared);
        let implicit_tls = config.implicit_tls;
        let stop = Arc::clone(&shared.stop);
        let listener =
            Listener::start("smtp-test", ca_pem, implicit_tls, stop, move |stream, n| {
                let _ = Connection::serve(stream, &serving, &tls, &config, n);
            })?;
        Ok(Self { listener, shared })
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.listener.addr()
    }

    /// The server certificate, as PEM: trust it as a CA.
    pub fn ca_pem(&self) -> &str {
        self.listener.ca_pem()
    }

    /// Client settings for this server: 127.0.0.1, its port, the security
    /// its listener speaks (`StartTls` for a plaintext listener), its
    /// certificate trusted, 10-second timeouts.
    pub fn client_config(&self) -> SmtpConfig {
        SmtpConfig {
            endpoint: self.listener.endpoint(Protocol::Smtp),
            ..SmtpConfig::new("127.0.0.1")
        }
    }

    /// The messages accepted so far.
    pub fn messages(&self) -> Vec<ReceivedMessage> {
        self.shared
            .messages
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Every command line received so far, in order.
    pub fn lines(&self) -> Vec<ReceivedLine> {
        self.shared
            .lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Why a line could not be read.
enum Input {
    Line(Vec<u8>),
    Eof,
}

struct Connection<'a> {
    stream: Conn,
    input: Vec<u8>,
    shared: &'a Shared,
    config: &'a SmtpTestServerConfig,
    n: usize,
    tls: bool,
    authenticated: bool,
    from: Option<String>,
    to: Vec<String>,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(text: &[u8]) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim_ascii())
        .ok()
}

/// The address inside `<...>` after a `FROM:`/`TO:` prefix, and what follows.
fn path_of(args: &str) -> Option<(String, String)> {
    let start = args.find('<')?;
    let end = start + args[start..].find('>')?;
    Some((
        args[start + 1..end].to_owned(),
        args[end + 1..].trim().to_owned(),
    ))
}

impl<'a> Connection<'a> {
    fn serve(
        tcp: TcpStream,
        shared: &'a Shared,
        tls: &Arc<rustls::ServerConfig>,
        config: &'a SmtpTestServerConfig,
        n: usize,
    ) -> io::Result<()> {
        if shared.stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        tcp.set_read_timeout(Some(Duration::from_secs(60)))?;
        tcp.set_write_timeout(Some(Duration::from_secs(60)))?;
        tcp.set_nodelay(true)?;
        let stream = if config.implicit_tls {
            tls_accept(tcp, tls)?
        } else {
            Conn::Plain(tcp)
        };
        let mut conn = Connection {
            stream,
            input: Vec::new(),
            shared,
            config,
            n,
            tls: config.implicit_tls,
            authenticated: false,
            from: None,
            to: Vec::new(),
        };
        conn.reply("220 localhost ESMTP test server ready")?;
        conn.run(tls)
    }

    fn reply(&mut self, text: &str) -> io::Result<()> {
        self.stream.write_all(text.as_bytes())?;
        self.stream.write_all(b"\r\n")?;
        self.stream.flush()
    }

    fn read_line(&mut self) -> io::Result<Input> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if let Some(at) = self.input.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.input.drain(..=at).collect();
                return Ok(Input::Line(line));
            }
            if self.input.len() > MAX_LINE {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
            }
            let n = match self.stream.read(&mut chunk) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => 0,
                Err(e) => return Err(e),
            };
            if n == 0 {
                return Ok(Input::Eof);
            }
            self.input.extend_from_slice(&chunk[..n]);
        }
    }

    /// A command line, recorded; `None` at the end of input.
    fn command(&mut self) -> io::Result<Option<String>> {
        let Input::Line(raw) = self.read_line()? else {
            return Ok(None);
        };
        let line = String::from_utf8_lossy(&raw)
            .trim_end_matches(['\r', '\n'])
            .to_owned();
        self.shared
            .lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(ReceivedLine {
                connection: self.n,
                tls: self.tls,
                line: line.clone(),
            });
        Ok(Some(line))
    }

    fn offers_starttls(&self) -> bool {
        !self.tls && self.config.fault != SmtpFault::NoStartTls
    }

    fn run(&mut self, tls: &Arc<rustls::ServerConfig>) -> io::Result<()> {
        while let Some(line) = self.command()? {
            let (verb, args) = match line.split_once(' ') {
                Some((v, a)) => (v.to_ascii_uppercase(), a.to_owned()),
                None => (line.to_ascii_uppercase(), String::new()),
            };
            match verb.as_str() {
                "EHLO" => self.ehlo()?,
                "HELO" => self.reply("250 localhost")?,
                "STARTTLS" if self.config.fault == SmtpFault::RefuseStartTls => {
                    self.reply("454 4.7.0 TLS not available due to temporary reason")?;
                }
                "STARTTLS" if self.offers_starttls() => {
                    let mut out = b"220 2.0.0 Ready to start TLS\r\n".to_vec();
                    if self.config.fault == SmtpFault::InjectAfterStartTls {
                        out.extend_from_slice(b"250 2.7.0 injected by an attacker\r\n");
                    }
                    self.stream.write_all(&out)?;
                    self.stream.flush()?;
                    self.input.clear();
                    self.stream = match std::mem::replace(&mut self.stream, Conn::Gone) {
                        Conn::Plain(tcp) => tls_accept(tcp, tls)?,
                        other => other,
                    };
                    self.tls = true;
                    self.authenticated = false;
                    self.reset();
                }
                "STARTTLS" => self.reply("502 5.5.1 STARTTLS not available")?,
                "AUTH" => self.auth(&args)?,
                "MAIL" => {
                    if !self.mail(&args)? {
                        return Ok(());
                    }
                }
                "RCPT" => self.rcpt(&args)?,
                "DATA" => {
                    if !self.data()? {
                        return Ok(());
                    }
                }
                "RSET" => {
                    self.reset();
                    self.reply("250 2.0.0 Ok")?;
                }
                "NOOP" => self.reply("250 2.0.0 Ok")?,
                "QUIT" => {
                    self.reply("221 2.0.0 Bye")?;
                    return Ok(());
                }
                _ => self.reply("502 5.5.2 Command not recognized")?,
            }
        }
        Ok(())
    }

    fn reset(&mut self) {
        self.from = None;
        self.to.clear();
    }

    fn ehlo(&mut self) -> io::Result<()> {
        let mut lines = vec!["localhost greets you".to_owned()];
        if self.config.pipelining {
            lines.push("PIPELINING".into());
        }
        match self.config.fault {
            SmtpFault::SizeLimit(n) => lines.push(format!("SIZE {n}")),
            _ => lines.push("SIZE".into()),
        }
        lines.push("8BITMIME".into());
        lines.push("ENHANCEDSTATUSCODES".into());
        if self.offers_starttls() {
            lines.push("STARTTLS".into());
        }
        if !self.config.mechanisms.is_empty() {
            lines.push(format!("AUTH {}", self.config.mechanisms.join(" ")));
        }
        let last = lines.len() - 1;
        let mut out = String::new();
        for (i, l) in lines.iter().enumerate() {
            out.push_str(&format!("250{}{l}\r\n", if i == last { ' ' } else { '-' }));
        }
        self.stream.write_all(out.as_bytes())?;
        self.stream.flush()
    }

    /// The client's answer to a 334 challenge, decoded; `None` when it
    /// cancelled (`*`), went away or sent bad base64 (already answered).
    fn sasl_answer(&mut self, challenge: &[u8]) -> io::Result<Option<Vec<u8>>> {
        self.reply(&format!("334 {}", b64(challenge)))?;
        let Some(line) = self.command()? else {
            return Ok(None);
        };
        if line == "*" {
            self.reply("501 5.7.0 Authentication cancelled")?;
            return Ok(None);
        }
        match unb64(line.as_bytes()) {
            Some(data) => Ok(Some(data)),
            None => {
                self.reply("501 5.5.2 Cannot decode the response")?;
                Ok(None)
            }
        }
    }

    fn auth(&mut self, args: &str) -> io::Result<()> {
        if self.authenticated {
            return self.reply("503 5.5.1 Already authenticated");
        }
        let mut parts = args.split_whitespace();
        let mechanism = parts.next().unwrap_or_default().to_ascii_uppercase();
        let initial = parts.next().map(|ir| {
            if ir == "=" {
                Some(Vec::new())
            } else {
                unb64(ir.as_bytes())
            }
        });
        if !self.config.mechanisms.contains(&mechanism) {
            return self.reply("504 5.5.4 Unrecognized authentication type");
        }
        if let Some(None) = initial {
            return self.reply("501 5.5.2 Cannot decode the initial response");
        }
        let initial = initial.flatten();
        let (user, password) = (self.config.user.clone(), self.config.password.clone());
        let ok = match mechanism.as_str() {
            "PLAIN" => {
                let data = match initial {
                    Some(d) => d,
                    None => match self.sasl_answer(b"")? {
                        Some(d) => d,
                        None => return Ok(()),
                    },
                };
                let fields: Vec<&[u8]> = data.split(|&b| b == 0).collect();
                fields.len() == 3
                    && fields[1] == user.as_bytes()
                    && fields[2] == password.as_bytes()
            }
            "LOGIN" => {
                let name = match initial {
                    Some(d) => d,
                    None => match self.sasl_answer(b"Username:")? {
                        Some(d) => d,
                        None => return Ok(()),
                    },
                };
                let Some(secret) = self.sasl_answer(b"Password:")? else {
                    return Ok(());
                };
                name == user.as_bytes() && secret == password.as_bytes()
            }
            "CRAM-MD5" => {
                let challenge = format!("<{}.{}@localhost>", std::process::id(), self.n);
                let Some(answer) = self.sasl_answer(challenge.as_bytes())? else {
                    return Ok(());
                };
                // The right answer is what a client knowing the password says.
                let expected = SaslClient::cram_md5(&user, &password)
                    .respond(challenge.as_bytes())
                    .unwrap_or_default();
                answer == expected
            }
            "XOAUTH2" | "OAUTHBEARER" => {
                let data = match initial {
                    Some(d) => d,
                    None => match self.sasl_answer(b"")? {
                        Some(d) => d,
                        None => return Ok(()),
                    },
                };
                let text = String::from_utf8_lossy(&data);
                let named = text
                    .split(['\x01', ','])
                    .find_map(|f| f.strip_prefix("user=").or_else(|| f.strip_prefix("a=")));
                let token_ok = text
                    .split('\x01')
                    .any(|f| f.strip_prefix("auth=Bearer ") == Some(password.as_str()));
                if named == Some(user.as_str()) && token_ok {
                    true
                } else {
                    // As Gmail does: the error as a JSON challenge, which
                    // the client answers with an empty line.
                    let challenge = br#"{"status":"401","schemes":"bearer"}"#;
                    if self.sasl_answer(challenge)?.is_none() {
                        return Ok(());
                    }
                    false
                }
            }
            _ => false,
        };
        if self.config.fault == SmtpFault::AppPasswordRequired {
            return self.reply(
                "534-5.7.9 Application-specific password required. Learn more at\r\n534 5.7.9  https://support.google.com/mail/?p=InvalidSecondFactor",
            );
        }
        if ok {
            self.authenticated = true;
            self.reply("235 2.7.0 Authentication successful")
        } else {
            self.reply("535 5.7.8 Username and Password not accepted")
        }
    }

    /// MAIL FROM; `false` when the connection must end.
    fn mail(&mut self, args: &str) -> io::Result<bool> {
        match self.config.fault {
            SmtpFault::ShutdownAfterMail => {
                self.reply("421 4.7.0 Try again later, closing connection.")?;
                return Ok(false);
            }
            SmtpFault::EndlessReplyLine => {
                self.stream.write_all(b"250 ")?;
                let filler = [b'x'; 1024];
                while !self.shared.stop.load(Ordering::SeqCst) {
                    self.stream.write_all(&filler)?;
                }
                return Ok(false);
            }
            SmtpFault::StopAnsweringAtMail => {
                while self.command()?.is_some() {}
                return Ok(false);
            }
            _ => {}
        }
        if !self.authenticated {
            self.reply("530 5.7.0 Authentication required")?;
            return Ok(true);
        }
        if self.from.is_some() {
            self.reply("503 5.5.1 Nested MAIL command")?;
            return Ok(true);
        }
        let Some((from, params)) = args
            .get(5..)
            .filter(|_| args[..5].eq_ignore_ascii_case("FROM:"))
            .and_then(path_of)
        else {
            self.reply("501 5.5.4 Syntax: MAIL FROM:<address>")?;
            return Ok(true);
        };
        let declared = params
            .split_whitespace()
            .find_map(|p| p.strip_prefix("SIZE=").and_then(|n| n.parse::<u64>().ok()));
        if let (SmtpFault::SizeLimit(limit), Some(size)) = (&self.config.fault, declared) {
            if size > *limit {
                self.reply("552 5.3.4 Message size exceeds fixed maximum message size")?;
                return Ok(true);
            }
        }
        self.from = Some(from);
        self.reply("250 2.1.0 Ok")?;
        Ok(true)
    }

    fn rcpt(&mut self, args: &str) -> io::Result<()> {
        if self.from.is_none() {
            return self.reply("503 5.5.1 Need MAIL before RCPT");
        }
        let Some((to, _)) = args
            .get(3..)
            .filter(|_| args[..3].eq_ignore_ascii_case("TO:"))
            .and_then(path_of)
        else {
            return self.reply("501 5.5.4 Syntax: RCPT TO:<address>");
        };
        if to.contains("bad") {
            return self.reply(&format!(
                "550 5.1.1 <{to}>: Recipient address rejected: User unknown"
            ));
        }
        self.to.push(to);
        self.reply("250 2.1.5 Ok")
    }

    /// DATA and the message; `false` when the connection must end.
    fn data(&mut self) -> io::Result<bool> {
        if self.from.is_none() || self.to.is_empty() {
            self.reply("554 5.5.1 No valid recipients")?;
            return Ok(true);
        }
        self.reply("354 End data with <CR><LF>.<CR><LF>")?;
        let mut data = Vec::new();
        loop {
            let Input::Line(line) = self.read_line()? else {
                return Ok(false);
            };
            if line == b".\r\n" {
                break;
            }
            if let SmtpFault::CutMidMessage(limit) = self.config.fault {
                if data.len() as u64 > limit {
                    self.reply("552 5.3.4 Message too big, closing")?;
                    return Ok(false);
                }
            }
            // Dot-unstuffing: a leading dot is removed.
            data.extend_from_slice(line.strip_prefix(b".").unwrap_or(&line));
        }
        let from = self.from.take().unwrap_or_default();
        let to = std::mem::take(&mut self.to);
        if let SmtpFault::SizeLimit(limit) = self.config.fault {
            if data.len() as u64 > limit {
                self.reply("552 5.3.4 Message size exceeds fixed maximum message size")?;
                return Ok(true);
            }
        }
        let mut messages = self
            .shared
            .messages
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        messages.push(ReceivedMessage { from, to, data });
        let id = messages.len();
        drop(messages);
        self.reply(&format!("250 2.0.0 Ok: queued as TEST{id}"))?;
        Ok(true)
    }
}
