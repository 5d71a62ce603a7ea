//! The blocking and async clients offer the same operations with the same
//! signatures. One call list per protocol calls every public operation
//! with the same argument values and binds each result to a variable of an
//! explicit type; it is expanded once for the blocking client and once for
//! the async one (with `.await`) and run against the in-process servers.
//! A signature that differs between the drivers fails to compile; an
//! operation added to `src/pop3/client.rs` or `src/smtp/client.rs` and not
//! to the list fails `the_lists_call_every_public_operation`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::io;
use std::net::{SocketAddr, TcpStream};

use pop3_client::async_client::AsyncMessageSink;
use pop3_client::pop3_proto::server::{ServerMessage, ServerOptions};
use pop3_client::smtp::{Capabilities as SmtpCapabilities, Envelope, SendReport, SmtpError};
use pop3_client::summary::MessageSummary;
use pop3_client::testing::smtp::{SmtpTestServer, SmtpTestServerConfig};
use pop3_client::testing::{TestServer, TestServerConfig};
use pop3_client::transport::{AsyncStream, Connection};
use pop3_client::{
    Capabilities, CertificateInfo, Credentials, Error, Greeting, ListEntry, MessageSink, MsgNum,
    ServerRefusal, Stat, UidlItem,
};
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

/// Runs a call list, one entry at a time: `await NAME: TYPE = RECV.OP(ARGS);`
/// or `await NAME: TYPE = Client::OP(ARGS);` (with the driver's `.await`
/// appended), the same without `await` for an operation that is not async,
/// and `{ STATEMENTS }` for setup and checks. Every operation called is
/// recorded in `$called` under the name of the method actually called.
macro_rules! calls {
    ($called:ident [$($aw:tt)*]) => {};
    ($called:ident [$($aw:tt)*]
        await $v:ident : $T:ty = $recv:ident . $op:ident ( $($arg:expr),* $(,)? );
        $($rest:tt)*
    ) => {
        #[allow(unused_mut, unused_variables, clippy::let_unit_value)]
        let mut $v: $T = $recv.$op($($arg),*) $($aw)*;
        $called.push(stringify!($op));
        calls!($called [$($aw)*] $($rest)*);
    };
    ($called:ident [$($aw:tt)*]
        await $v:ident : $T:ty = $C:ident :: $op:ident ( $($arg:expr),* $(,)? );
        $($rest:tt)*
    ) => {
        #[allow(unused_mut, unused_variables)]
        let mut $v: $T = $C::$op($($arg),*) $($aw)*;
        $called.push(stringify!($op));
        calls!($called [$($aw)*] $($rest)*);
    };
    ($called:ident [$($aw:tt)*]
        $v:ident : $T:ty = $recv:ident . $op:ident ( $($arg:expr),* $(,)? );
        $($rest:tt)*
    ) => {
        #[allow(unused_mut, unused_variables, clippy::let_unit_value)]
        let mut $v: $T = $recv.$op($($arg),*);
        $called.push(stringify!($op));
        calls!($called [$($aw)*] $($rest)*);
    };
    ($called:ident [$($aw:tt)*] { $($statement:tt)* } $($rest:tt)*) => {
        $($statement)*
        calls!($called [$($aw)*] $($rest)*);
    };
}

// ---------------------------------------------------------------------------
// POP3
// ---------------------------------------------------------------------------

fn pop3_server() -> TestServer {
    TestServer::start(TestServerConfig {
        options: ServerOptions {
            stls: true,
            ..ServerOptions::default()
        },
        messages: (1..=3)
            .map(|i| ServerMessage {
                uid: format!("p-{i}"),
                content: format!(
                    "From: a{i}@example.org\r\nSubject: parity {i}\r\n\r\n.line {i}\r\n"
                )
                .into_bytes(),
            })
            .collect(),
        ..TestServerConfig::default()
    })
    .unwrap()
}

fn creds() -> Credentials {
    Credentials::new("user", "password")
}

fn m(n: u32) -> MsgNum {
    MsgNum::new(n).unwrap()
}

/// A sink keeping each message's body, blocking and async: the same value
/// goes to both drivers.
#[derive(Default)]
struct Bodies(Vec<Vec<u8>>);

impl MessageSink for Bodies {
    fn begin(&mut self, _: usize, _: MsgNum) -> io::Result<()> {
        self.0.push(Vec::new());
        Ok(())
    }
    fn write(&mut self, _: usize, chunk: &[u8]) -> io::Result<()> {
        match self.0.last_mut() {
            Some(body) => body.extend_from_slice(chunk),
            None => return Err(io::Error::other("no message begun")),
        }
        Ok(())
    }
}

impl AsyncMessageSink for Bodies {
    async fn begin(&mut self, index: usize, msg: MsgNum) -> io::Result<()> {
        MessageSink::begin(self, index, msg)
    }
    async fn write(&mut self, index: usize, chunk: &[u8]) -> io::Result<()> {
        MessageSink::write(self, index, chunk)
    }
}

fn std_tcp(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).unwrap()
}

async fn tokio_tcp(addr: SocketAddr) -> Compat<tokio::net::TcpStream> {
    tokio::net::TcpStream::connect(addr).await.unwrap().compat()
}

/// Every public POP3 operation of `$Client` (whose `into_inner` gives
/// `$Inner`), over streams from `$stream`. Returns the operations called
/// and what the server answered, for comparing the drivers.
macro_rules! pop3_parity {
    ($Client:ty, $Inner:ty, $stream:path, [$($aw:tt)*]) => {{
        type Client = $Client;
        let server = pop3_server();
        let config = server.client_config();
        let creds = creds();
        let addr = server.addr();
        let msgs = [m(1), m(2)];
        let mut writer: Vec<u8> = Vec::new();
        let mut sink = Bodies::default();
        let mut called: Vec<&'static str> = Vec::new();
        let mut seen: Vec<String> = Vec::new();
        calls!(called [$($aw)*]
            await connected: Result<Client, Error> = Client::connect(&config, &creds);
            { let mut c = connected.unwrap(); }
            await opened: Result<Client, Error> = Client::open(&config);
            { let mut o = opened.unwrap(); assert!(o.is_tls()); }
            await login: Result<(), Error> = o.login(&creds);
            { login.unwrap(); }
            { let stream = $stream(addr) $($aw)*; }
            await over: Result<Client, Error> = Client::connect_over(stream, &config, &creds);
            { assert!(over.unwrap().is_tls()); }
            { let stream = $stream(addr) $($aw)*; }
            await opened_over: Result<Client, Error> = Client::open_over(stream, &config);
            { assert!(opened_over.unwrap().is_tls()); }
            { let stream = $stream(addr) $($aw)*; }
            await plain: Result<Client, Error> = Client::from_stream(stream, &config, false);
            { let mut plain = plain.unwrap(); assert!(!plain.is_tls()); }
            await upgraded: Result<(), Error> = plain.starttls();
            { upgraded.unwrap(); assert!(plain.is_tls()); }
            await refreshed: Result<(), Error> = plain.refresh_capabilities();
            { refreshed.unwrap(); }
            await quit_without_waiting: Result<(), Error> = plain.quit_without_waiting();
            { quit_without_waiting.unwrap(); }

            utf8: bool = c.utf8_enabled();
            greeting: &Greeting = c.greeting();
            { assert!(!greeting.text.is_empty()); }
            capabilities: &Capabilities = c.capabilities();
            { seen.push(format!("pipelining {}", capabilities.pipelining())); }
            tls: bool = c.is_tls();
            { assert!(tls); seen.push(format!("utf8 {utf8}")); }
            peer_certificate: Option<CertificateInfo> = c.peer_certificate();
            { seen.push(peer_certificate.expect("a TLS client shows the certificate").subject); }
            recent: bool = c.recent_mode();
            { assert!(!recent); }
            progress: () = c.on_progress(None);

            await stat: Result<Stat, Error> = c.stat();
            { seen.push(format!("{:?}", stat.unwrap())); }
            await list: Result<Vec<ListEntry>, Error> = c.list();
            { seen.push(format!("{:?}", list.unwrap())); }
            await list_one: Result<ListEntry, Error> = c.list_one(m(2));
            { seen.push(format!("{:?}", list_one.unwrap())); }
            await uidl: Result<Vec<UidlItem>, Error> = c.uidl();
            { seen.push(format!("{:?}", uidl.unwrap())); }
            await uidl_one: Result<UidlItem, Error> = c.uidl_one(m(3));
            { seen.push(format!("{:?}", uidl_one.unwrap())); }
            await listing: Result<(Vec<ListEntry>, Result<Vec<UidlItem>, Error>), Error> = c.listing();
            { let (sizes, uids) = listing.unwrap(); seen.push(format!("{sizes:?} {:?}", uids.unwrap())); }
            server_profile: pop3_client::pop3::ServerProfile = c.server_profile();
            { seen.push(server_profile.to_text()); }
            await top: Result<u64, Error> = c.top(m(1), 0, &mut writer);
            { seen.push(format!("top {}", top.unwrap())); }
            await retr: Result<u64, Error> = c.retr(m(1), &mut writer);
            { seen.push(format!("retr {} {:?}", retr.unwrap(), String::from_utf8_lossy(&writer))); }
            await retr_vec: Result<Vec<u8>, Error> = c.retr_vec(m(2));
            { seen.push(String::from_utf8_lossy(&retr_vec.unwrap()).into_owned()); }
            await retr_many: Result<Vec<Result<u64, ServerRefusal>>, Error> =
                c.retr_many(&msgs, &mut sink);
            { seen.push(format!("{:?}", retr_many.unwrap())); }
            { let mut chunks = 0u64; }
            await retr_many_with_progress: Result<Vec<Result<u64, ServerRefusal>>, Error> =
                c.retr_many_with_progress(&msgs, &mut sink, &mut |_| chunks += 1);
            { seen.push(format!("{:?}", retr_many_with_progress.unwrap())); assert!(chunks >= 2); }
            await retr_many_vec: Result<Vec<Result<Vec<u8>, ServerRefusal>>, Error> =
                c.retr_many_vec(&[m(3), m(99)]);
            { seen.push(format!("{:?}", retr_many_vec.unwrap())); }
            await top_many: Result<Vec<Result<u64, ServerRefusal>>, Error> =
                c.top_many(&msgs, 0, &mut sink);
            { seen.push(format!("{:?} {:?}", top_many.unwrap(), sink.0)); }
            await summaries: Result<Vec<Result<MessageSummary, ServerRefusal>>, Error> =
                c.summaries(&msgs);
            { seen.push(format!("{:?}", summaries.unwrap())); }
            await dele: Result<(), Error> = c.dele(m(1));
            { dele.unwrap(); }
            await rset: Result<(), Error> = c.rset();
            { rset.unwrap(); }
            await dele_many: Result<Vec<Result<(), ServerRefusal>>, Error> =
                c.dele_many(&[m(2), m(99)]);
            { seen.push(format!("{:?}", dele_many.unwrap())); }
            await noop: Result<(), Error> = c.noop();
            { noop.unwrap(); }
            await quit: Result<(), Error> = c.quit();
            { quit.unwrap(); }
            inner: $Inner = o.into_inner();
        );
        let left: Vec<String> = server.messages().into_iter().map(|m| m.uid).collect();
        seen.push(format!("{left:?}"));
        (called, seen)
    }};
}

fn pop3_blocking() -> (Vec<&'static str>, Vec<String>) {
    pop3_parity!(
        pop3_client::blocking::Client,
        Connection<TcpStream>,
        std_tcp,
        []
    )
}

fn pop3_async() -> (Vec<&'static str>, Vec<String>) {
    common::runtime().block_on(async {
        pop3_parity!(
            pop3_client::tokio::Client,
            AsyncStream<Compat<tokio::net::TcpStream>>,
            tokio_tcp,
            [.await]
        )
    })
}

// ---------------------------------------------------------------------------
// SMTP
// ---------------------------------------------------------------------------

/// Every public SMTP operation of `$Client`, over streams from `$stream`.
macro_rules! smtp_parity {
    ($Client:ty, $stream:path, [$($aw:tt)*]) => {{
        type Client = $Client;
        let server = SmtpTestServer::start(SmtpTestServerConfig::default()).unwrap();
        let config = server.client_config();
        let creds = creds();
        let addr = server.addr();
        let mut called: Vec<&'static str> = Vec::new();
        let mut seen: Vec<String> = Vec::new();
        calls!(called [$($aw)*]
            await connected: Result<Client, SmtpError> = Client::connect(&config);
            { let mut c = connected.unwrap(); }
            capabilities: Option<&SmtpCapabilities> = c.capabilities();
            { seen.push(format!("{:?}", capabilities.map(|c| c.pipelining))); }
            tls: bool = c.is_tls();
            peer_certificate: Option<CertificateInfo> = c.peer_certificate();
            { seen.push(format!("{:?}", peer_certificate.map(|p| p.subject))); }
            { assert!(tls); }
            await login: Result<(), SmtpError> = c.login(&creds);
            { login.unwrap(); }
            await sent: Result<SendReport, SmtpError> =
                c.send("me@example.org", &["you@example.net"], &b"one\n"[..]);
            { seen.push(format!("{:?}", sent.unwrap())); }
            { let envelope = Envelope::new("me@example.org", ["you@example.net"]).with_size(4); }
            await sent_envelope: Result<SendReport, SmtpError> =
                c.send_envelope(&envelope, &b"two\n"[..]);
            { seen.push(format!("{:?}", sent_envelope.unwrap())); }
            await quit: Result<(), SmtpError> = c.quit();
            { quit.unwrap(); }
            await verified: Result<(), SmtpError> = Client::verify(&config, &creds);
            { verified.unwrap(); }
            { let stream = $stream(addr) $($aw)*; }
            await over: Result<Client, SmtpError> = Client::connect_over(stream, &config);
            { assert!(over.unwrap().is_tls()); }
            { let stream = $stream(addr) $($aw)*; }
            await verified_over: Result<(), SmtpError> =
                Client::verify_over(stream, &config, &creds);
            { verified_over.unwrap(); }
        );
        for message in server.messages() {
            seen.push(format!(
                "{} {:?} {:?}",
                message.from,
                message.to,
                String::from_utf8_lossy(&message.data)
            ));
        }
        (called, seen)
    }};
}

fn smtp_blocking() -> (Vec<&'static str>, Vec<String>) {
    smtp_parity!(pop3_client::smtp::SmtpClient, std_tcp, [])
}

fn smtp_async() -> (Vec<&'static str>, Vec<String>) {
    common::runtime().block_on(async {
        smtp_parity!(
            pop3_client::smtp::AsyncSmtpClient<Compat<tokio::net::TcpStream>>,
            tokio_tcp,
            [.await]
        )
    })
}

// ---------------------------------------------------------------------------
// The checks
// ---------------------------------------------------------------------------

#[test]
fn pop3_blocking_and_async_agree() {
    let (blocking_called, blocking_seen) = pop3_blocking();
    let (async_called, async_seen) = pop3_async();
    assert_eq!(blocking_called, async_called);
    assert_eq!(blocking_seen, async_seen);
    // What the list did: messages 2 (DELE after RSET) and 99 (refused).
    assert_eq!(blocking_seen.last().unwrap(), r#"["p-1", "p-3"]"#);
}

#[test]
fn smtp_blocking_and_async_agree() {
    let (blocking_called, blocking_seen) = smtp_blocking();
    let (async_called, async_seen) = smtp_async();
    assert_eq!(blocking_called, async_called);
    assert_eq!(blocking_seen, async_seen);
    assert!(
        blocking_seen.iter().any(|s| s.contains("two\\r\\n")),
        "{blocking_seen:?}"
    );
}

/// The names of the public operations an operation list in `source`
/// declares: `pub fn NAME`, `pub async fn NAME` or `pub $($async)? fn
/// NAME` (any qualifiers between `pub` and `fn`).
fn public_operations(source: &str) -> BTreeSet<String> {
    source
        .lines()
        .filter_map(|line| {
            let rest = line.trim_start().strip_prefix("pub ")?;
            let (qualifiers, after) = rest.split_once("fn ")?;
            let qualifiers_only = qualifiers
                .split_whitespace()
                .all(|q| ["async", "const", "unsafe"].contains(&q) || q.starts_with("$("));
            if !qualifiers_only {
                return None;
            }
            let name: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            Some(name)
        })
        .collect()
}

#[test]
fn the_lists_call_every_public_operation() {
    for (protocol, source, called, sentinel) in [
        (
            "POP3",
            include_str!("../src/pop3/client.rs"),
            pop3_blocking().0,
            "retr_many_with_progress",
        ),
        (
            "SMTP",
            include_str!("../src/smtp/client.rs"),
            smtp_blocking().0,
            "send_envelope",
        ),
    ] {
        let declared = public_operations(source);
        assert!(
            declared.contains(sentinel),
            "{protocol}: the operations were not found in the source: {declared:?}"
        );
        let called: BTreeSet<String> = called.iter().map(|s| s.to_string()).collect();
        let missing: Vec<&String> = declared.difference(&called).collect();
        assert!(
            missing.is_empty(),
            "{protocol}: operations not in the parity list: {missing:?}"
        );
        let unknown: Vec<&String> = called.difference(&declared).collect();
        assert!(
            unknown.is_empty(),
            "{protocol}: the parity list calls what the source does not declare: {unknown:?}"
        );
    }
}
