//! An in-process POP3 server for tests, benchmarks and demos: pop3-proto's
//! server role driven over real TCP on 127.0.0.1, with TLS (implicit and
//! STLS) from a certificate generated at start, and fault injection.
//!
//! It listens on loopback only and stops when the [`TestServer`] is dropped;
//! connection threads end when their client goes or after a minute idle.

pub mod oauth;
pub mod proxy;
pub mod smtp;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use pop3_proto::server::{ServerAction, ServerMessage, ServerOptions, ServerSession};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConnection, StreamOwned};

use crate::config::ClientConfig;
use crate::endpoint::{Endpoint, Protocol, Security, Timeouts, TlsRoots};

/// Misbehaviour to inject, to test how the client copes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Fault {
    /// Behave.
    #[default]
    None,
    /// Close the connection after sending this many bytes of a RETR answer.
    DisconnectMidRetr {
        /// Bytes of the answer sent before the cut.
        after: usize,
    },
    /// Wait this long before every answer (after the greeting).
    Delay(Duration),
    /// Send every answer one byte at a time, this far apart.
    Trickle(Duration),
    /// Answer STAT, LIST, UIDL and RETR with a line that is not POP3.
    GarbageStatus,
    /// Send a forged `+OK` right behind STLS's `+OK`, before the handshake.
    InjectAfterStls,
    /// Answer RETR with a body that never ends.
    EndlessBody,
    /// Advertise STLS but refuse it with `-ERR [SYS/TEMP]`.
    RefuseStls,
    /// Answer UIDL with a listing that never ends.
    EndlessListing,
}

/// A message the server can never send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadMessage {
    /// RETR answers `-ERR [SYS/PERM]`, every time.
    Refused,
    /// RETR sends half of the message, then closes the connection, every
    /// time.
    CutMidway,
}

/// How a [`TestServer`] behaves.
#[derive(Debug, Clone, Default)]
pub struct TestServerConfig {
    /// What the server offers and the account it accepts.
    pub options: ServerOptions,
    /// The maildrop.
    pub messages: Vec<ServerMessage>,
    /// TLS from the first byte (POP3S) instead of plaintext (+ STLS if offered).
    pub implicit_tls: bool,
    /// Misbehaviour to inject.
    pub fault: Fault,
    /// Serve the maildrop as Gmail does.
    pub gmail: Option<GmailMode>,
    /// Messages (by UID) the server can never send, and how it fails them.
    pub bad_messages: Vec<(String, BadMessage)>,
}

/// Gmail's POP3 behaviour. In normal mode a session lists only the oldest
/// messages not yet popped, at most `session_limit` of them, and a message
/// fetched (RETR) in a session that ends with QUIT is gone from POP
/// afterwards, DELE or not. A user name starting `recent:` (set it as the
/// server's `options.user`) lists every message in every session and pops
/// nothing. Configure `options.pipelining_only_after_login` and
/// `options.login_delay` to complete the picture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GmailMode {
    /// Messages listed per session (Gmail: about 250).
    pub session_limit: usize,
}

impl Default for GmailMode {
    fn default() -> Self {
        Self { session_limit: 250 }
    }
}

struct Shared {
    messages: Mutex<Vec<ServerMessage>>,
    stop: Arc<AtomicBool>,
}

/// A running server on 127.0.0.1.
pub struct TestServer {
    listener: Listener,
    shared: Arc<Shared>,
}

/// The certificate a [`TestServer`] presents (all self-signed, made at start).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TestCertificate {
    /// For `localhost` and 127.0.0.1, not a CA: what webpki accepts when it
    /// is the trust anchor.
    #[default]
    Leaf,
    /// For `localhost` and 127.0.0.1 but marked CA:TRUE, as a bare
    /// `openssl req -x509` makes it.
    SelfSignedCa,
    /// CA:TRUE with `CN=localhost` and no subject alternative name: what
    /// `openssl req -x509 -subj /CN=localhost` makes.
    CommonNameOnly,
    /// For `localhost` and 127.0.0.1, expired since 2001.
    Expired,
}

/// A self-signed certificate for `localhost` and 127.0.0.1, as PEM, with the
/// rustls server configuration that presents it.
pub fn self_signed_tls() -> io::Result<(String, Arc<rustls::ServerConfig>)> {
    self_signed_tls_with(TestCertificate::Leaf)
}

/// A self-signed certificate of the given kind, as PEM, with the rustls
/// server configuration that presents it.
pub fn self_signed_tls_with(
    kind: TestCertificate,
) -> io::Result<(String, Arc<rustls::ServerConfig>)> {
    let other = |e: &dyn std::fmt::Display| io::Error::other(e.to_string());
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let certified = match kind {
        TestCertificate::Leaf => {
            rcgen::generate_simple_self_signed(names).map_err(|e| other(&e))?
        }
        _ => {
            let names = if kind == TestCertificate::CommonNameOnly {
                Vec::new()
            } else {
                names
            };
            let mut params = rcgen::CertificateParams::new(names).map_err(|e| other(&e))?;
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, "localhost");
            if kind == TestCertificate::Expired {
                params.not_before = rcgen::date_time_ymd(2000, 1, 1);
                params.not_after = rcgen::date_time_ymd(2001, 1, 1);
            } else {
                params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            }
            let key_pair = rcgen::KeyPair::generate().map_err(|e| other(&e))?;
            let cert = params.self_signed(&key_pair).map_err(|e| other(&e))?;
            rcgen::CertifiedKey { cert, key_pair }
        }
    };
    let cert = CertificateDer::from(certified.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| other(&e))?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .map_err(|e| other(&e))?;
    Ok((certified.cert.pem(), Arc::new(config)))
}

impl TestServer {
    /// Starts listening on an ephemeral port of 127.0.0.1.
    pub fn start(config: TestServerConfig) -> io::Result<Self> {
        Self::start_with_certificate(config, TestCertificate::Leaf)
    }

    /// Starts listening on an ephemeral port of 127.0.0.1, presenting a
    /// certificate of the given kind.
    pub fn start_with_certificate(
        config: TestServerConfig,
        certificate: TestCertificate,
    ) -> io::Result<Self> {
        let (ca_pem, tls) = self_signed_tls_with(certificate)?;
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared {
            messages: Mutex::new(config.messages.clone()),
            stop: Arc::clone(&stop),
        });
        let serving = Arc::clone(&shared);
        let implicit_tls = config.implicit_tls;
        let listener =
            Listener::start("pop3-test", ca_pem, implicit_tls, stop, move |stream, n| {
                let _ = serve(stream, &serving, &tls, &config, n);
            })?;
        Ok(Self { listener, shared })
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.listener.addr
    }

    /// The server certificate, as PEM: trust it as a CA.
    pub fn ca_pem(&self) -> &str {
        &self.listener.ca_pem
    }

    /// The SHA-256 fingerprint of the server's certificate (`AB:CD:...`),
    /// as a pin names it.
    pub fn fingerprint(&self) -> String {
        use rustls::pki_types::pem::PemObject;
        CertificateDer::from_pem_slice(self.listener.ca_pem.as_bytes())
            .map(|der| crate::transport::certificate_fingerprint(&der))
            .unwrap_or_default()
    }

    /// Client settings for this server: 127.0.0.1, its port, the security
    /// its listener speaks (`StartTls` for a plaintext listener), its
    /// certificate trusted, 10-second timeouts.
    pub fn client_config(&self) -> ClientConfig {
        ClientConfig {
            endpoint: self.listener.endpoint(Protocol::Pop3),
            ..ClientConfig::new("127.0.0.1")
        }
    }

    /// New mail arrives: `message` is added to the maildrop (the next
    /// session lists it).
    pub fn deliver(&self, message: ServerMessage) {
        self.shared
            .messages
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(message);
    }

    /// The server rewrites the message `uid` (as GNU Mailutils rewrites an
    /// mbox's `Status:` at QUIT, or a server that reuses a UID): the next
    /// session lists `content` under the same UID.
    pub fn rewrite(&self, uid: &str, content: Vec<u8>) {
        let mut messages = self
            .shared
            .messages
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(message) = messages.iter_mut().find(|m| m.uid == uid) {
            message.content = content;
        }
    }

    /// The messages left on the server (after committed deletions).
    pub fn messages(&self) -> Vec<ServerMessage> {
        self.shared
            .messages
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// What the POP3 and SMTP test servers share: a listener on an ephemeral
/// port of 127.0.0.1 whose connections are each served on a thread of
/// their own, the certificate it presents, the security it speaks, and the
/// stop flag that dropping it sets (then it connects once to wake the
/// accept loop, which checks the flag at each connection).
pub(crate) struct Listener {
    addr: SocketAddr,
    ca_pem: String,
    implicit_tls: bool,
    stop: Arc<AtomicBool>,
}

impl Listener {
    /// Binds 127.0.0.1:0 and serves each connection with `serve` (given
    /// its number) until `stop` is set.
    pub(crate) fn start(
        name: &'static str,
        ca_pem: String,
        implicit_tls: bool,
        stop: Arc<AtomicBool>,
        serve: impl Fn(TcpStream, usize) + Send + Sync + 'static,
    ) -> io::Result<Self> {
        Self::start_on(0, name, ca_pem, implicit_tls, stop, serve)
    }

    /// As [`Listener::start`], on 127.0.0.1:`port` (0: any free port).
    pub(crate) fn start_on(
        port: u16,
        name: &'static str,
        ca_pem: String,
        implicit_tls: bool,
        stop: Arc<AtomicBool>,
        serve: impl Fn(TcpStream, usize) + Send + Sync + 'static,
    ) -> io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", port))?;
        let addr = listener.local_addr()?;
        let serve = Arc::new(serve);
        let stopped = Arc::clone(&stop);
        thread::Builder::new()
            .name(format!("{name}-server"))
            .spawn(move || {
                for (n, stream) in listener.incoming().enumerate() {
                    if stopped.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let serve = Arc::clone(&serve);
                    let _ = thread::Builder::new()
                        .name(format!("{name}-conn-{n}"))
                        .spawn(move || serve(stream, n));
                }
            })?;
        Ok(Self {
            addr,
            ca_pem,
            implicit_tls,
            stop,
        })
    }

    /// Where a client reaches this server: 127.0.0.1, its port, the
    /// security its listener speaks (`StartTls` for a plaintext listener),
    /// its certificate trusted, 10-second timeouts.
    pub(crate) fn endpoint(&self, protocol: Protocol) -> Endpoint {
        let mut endpoint = Endpoint::new(protocol, "127.0.0.1");
        endpoint.port = Some(self.addr.port());
        endpoint.security = if self.implicit_tls {
            Security::Tls
        } else {
            Security::StartTls
        };
        endpoint.roots = TlsRoots::CaPem(self.ca_pem.clone().into_bytes());
        endpoint.timeouts = Timeouts::all(Duration::from_secs(10));
        endpoint
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub(crate) fn ca_pem(&self) -> &str {
        &self.ca_pem
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// A test server's side of a connection: plaintext, TLS, or handed away
/// (during an upgrade). The POP3 and SMTP test servers share it.
pub(crate) enum Conn {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ServerConnection, TcpStream>>),
    Gone,
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
            Conn::Gone => Ok(0),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
            Conn::Gone => Err(io::ErrorKind::NotConnected.into()),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
            Conn::Gone => Ok(()),
        }
    }
}

/// Completes a server-side TLS handshake over `tcp`.
pub(crate) fn tls_accept(tcp: TcpStream, tls: &Arc<rustls::ServerConfig>) -> io::Result<Conn> {
    let conn = ServerConnection::new(Arc::clone(tls)).map_err(io::Error::other)?;
    let mut stream = StreamOwned::new(conn, tcp);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    Ok(Conn::Tls(Box::new(stream)))
}

fn send(conn: &mut Conn, bytes: &[u8], fault: &Fault) -> io::Result<()> {
    match fault {
        Fault::Delay(d) => thread::sleep(*d),
        Fault::Trickle(d) => {
            for b in bytes {
                conn.write_all(std::slice::from_ref(b))?;
                conn.flush()?;
                thread::sleep(*d);
            }
            return Ok(());
        }
        _ => {}
    }
    conn.write_all(bytes)?;
    conn.flush()
}

fn serve(
    tcp: TcpStream,
    shared: &Shared,
    tls: &Arc<rustls::ServerConfig>,
    config: &TestServerConfig,
    n: usize,
) -> io::Result<()> {
    if shared.stop.load(Ordering::SeqCst) {
        return Ok(());
    }
    tcp.set_read_timeout(Some(Duration::from_secs(60)))?;
    tcp.set_nodelay(true)?;
    let mut messages = shared
        .messages
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let recent_mode = pop3_proto::is_recent_mode_user(&config.options.user);
    if let (Some(gmail), false) = (&config.gmail, recent_mode) {
        messages.truncate(gmail.session_limit);
    }
    let mut popped: Vec<usize> = Vec::new();
    let uids: Vec<String> = messages.iter().map(|m| m.uid.clone()).collect();
    let stamp = format!("<{}.{n}@localhost>", std::process::id());
    let mut session = ServerSession::new(config.options.clone(), messages, &stamp);
    let mut conn = if config.implicit_tls {
        session.set_tls();
        tls_accept(tcp, tls)?
    } else {
        Conn::Plain(tcp)
    };
    let mut out = Vec::new();
    if config.gmail.is_some() {
        // Gmail's own words (a client may tell Gmail by them).
        let text = format!("Gpop ready for requests from 127.0.0.1 test{n}");
        let _ = pop3_proto::server::encode_status(
            pop3_proto::Status::Ok,
            None,
            text.as_bytes(),
            &mut out,
        );
    } else {
        session.greeting(&mut out);
    }
    conn.write_all(&out)?;
    out.clear();
    let mut input = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let read = conn.read(&mut chunk)?;
        if read == 0 {
            return Ok(());
        }
        input.extend_from_slice(&chunk[..read]);
        loop {
            let keyword = input
                .split(|&b| b == b' ' || b == b'\r' || b == b'\n')
                .next()
                .map(<[u8]>::to_ascii_uppercase)
                .unwrap_or_default();
            let (used, mut action) = session
                .handle(&input, &mut out)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            if used == 0 {
                break;
            }
            if keyword == b"RETR" && out.starts_with(b"+OK") {
                let number = std::str::from_utf8(&input[4..used])
                    .ok()
                    .and_then(|t| t.trim().parse::<usize>().ok());
                let index = number.filter(|&n| n > 0).map(|n| n - 1);
                let bad = index
                    .and_then(|i| uids.get(i))
                    .and_then(|uid| config.bad_messages.iter().find(|(u, _)| u == uid))
                    .map(|(_, how)| *how);
                match bad {
                    Some(BadMessage::Refused) => {
                        out.clear();
                        out.extend_from_slice(b"-ERR [SYS/PERM] this message cannot be read\r\n");
                    }
                    Some(BadMessage::CutMidway) => {
                        conn.write_all(&out[..out.len() / 2])?;
                        conn.flush()?;
                        return Ok(());
                    }
                    None => popped.extend(index),
                }
            }
            input.drain(..used);
            let keyword = keyword.as_slice();
            match (&config.fault, keyword) {
                (Fault::DisconnectMidRetr { after }, b"RETR") => {
                    conn.write_all(&out[..(*after).min(out.len())])?;
                    conn.flush()?;
                    return Ok(());
                }
                (Fault::GarbageStatus, b"STAT" | b"LIST" | b"UIDL" | b"RETR") => {
                    out.clear();
                    out.extend_from_slice(b"HTTP/1.1 500 Internal Server Error\r\n");
                }
                (Fault::EndlessBody, b"RETR") => {
                    conn.write_all(b"+OK\r\n")?;
                    let line = [b'x'; 78];
                    loop {
                        conn.write_all(&line)?;
                        conn.write_all(b"\r\n")?;
                        if shared.stop.load(Ordering::SeqCst) {
                            return Ok(());
                        }
                    }
                }
                (Fault::EndlessListing, b"UIDL") => {
                    conn.write_all(b"+OK\r\n")?;
                    for n in 1u64.. {
                        conn.write_all(format!("{n} uid-{n}\r\n").as_bytes())?;
                        if shared.stop.load(Ordering::SeqCst) {
                            return Ok(());
                        }
                    }
                }
                (Fault::RefuseStls, b"STLS") => {
                    out.clear();
                    out.extend_from_slice(b"-ERR [SYS/TEMP] TLS is not available right now\r\n");
                    action = ServerAction::Continue;
                }
                (Fault::InjectAfterStls, _) if action == ServerAction::StartTls => {
                    out.extend_from_slice(b"+OK injected by an attacker\r\n");
                }
                _ => {}
            }
            // As RFC 1939 has it, deletions are done before QUIT's +OK says
            // so (a client may check the maildrop as soon as it reads it).
            if action == ServerAction::Close {
                let mut gone = session.committed_deletions().to_vec();
                // Gmail's normal mode: fetched and QUIT is popped.
                if config.gmail.is_some() && !recent_mode && out.starts_with(b"+OK") {
                    gone.extend(&popped);
                }
                commit(shared, &uids, &gone);
            }
            send(&mut conn, &out, &config.fault)?;
            out.clear();
            match action {
                ServerAction::Continue => {}
                ServerAction::Close => return Ok(()),
                ServerAction::StartTls => {
                    conn = match conn {
                        Conn::Plain(tcp) => tls_accept(tcp, tls)?,
                        tls_conn => tls_conn,
                    };
                    session.tls_established();
                }
            }
        }
    }
}

/// Removes the messages a session deleted from the shared maildrop.
fn commit(shared: &Shared, uids: &[String], deleted: &[usize]) {
    if deleted.is_empty() {
        return;
    }
    let gone: Vec<&String> = deleted.iter().filter_map(|&i| uids.get(i)).collect();
    shared
        .messages
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .retain(|m| !gone.contains(&&m.uid));
}

/// A real server started by one of the repository's scripts
/// (`scripts/dovecot.sh`, `scripts/mailutils.sh`, `scripts/submission.sh`),
/// as its `env` file describes it (`key=value` lines).
#[derive(Debug, Clone)]
pub struct InteropServer {
    /// The folder the script ran the server in.
    pub dir: std::path::PathBuf,
    env: std::collections::HashMap<String, String>,
}

impl InteropServer {
    /// Reads `$DIR_VAR/env` (default `default_dir/env`). Without it the
    /// tests of `what` are skipped, saying so, unless `$REQUIRE_VAR` is set
    /// (as CI sets it), which makes the missing server a failure.
    ///
    /// # Panics
    ///
    /// When `$REQUIRE_VAR` is set and the file is missing: the test fails,
    /// as it must in CI.
    #[allow(clippy::panic)]
    pub fn find(dir_var: &str, default_dir: &str, require_var: &str, what: &str) -> Option<Self> {
        let dir = std::path::PathBuf::from(
            std::env::var(dir_var).unwrap_or_else(|_| default_dir.to_owned()),
        );
        let path = dir.join("env");
        let Ok(text) = std::fs::read_to_string(&path) else {
            if std::env::var_os(require_var).is_some() {
                panic!("{require_var} is set but {} is missing", path.display());
            }
            eprintln!("skipped: {what} (no {})", path.display());
            return None;
        };
        let env = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Some(Self { dir, env })
    }

    /// The value of `key`, or "" when the file has none.
    pub fn get(&self, key: &str) -> &str {
        self.env.get(key).map_or("", String::as_str)
    }
}

/// A fresh, empty PostgreSQL database of its own for one test, on the
/// server `scripts/postgres.sh start` runs (its `env` names it): the URL,
/// or `None` (the test skipped, saying so) when that server is not
/// running and `POP3_REQUIRE_POSTGRES` is not set.
///
/// # Panics
///
/// When `POP3_REQUIRE_POSTGRES` is set and the server is missing or
/// refuses to make the database: the test fails, as it must in CI.
#[cfg(feature = "postgres")]
#[allow(clippy::panic)]
pub async fn postgres_database() -> Option<String> {
    use sqlx::Connection;
    let server = InteropServer::find(
        "POP3_POSTGRES_DIR",
        "/tmp/pop3-postgres",
        "POP3_REQUIRE_POSTGRES",
        "PostgreSQL tests; run scripts/postgres.sh start",
    )?;
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let name = format!(
        "t_{}_{nanos:x}_{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    );
    let mut admin = sqlx::PgConnection::connect(server.get("admin_url"))
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {}: {e}", server.get("admin_url")));
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
    let url = server.get("url");
    let base = url.rsplit_once('/').map_or(url, |(base, _)| base);
    Some(format!("{base}/{name}"))
}
