//! `smtp-sink`: a tiny SMTP receiver for tests, standing behind a real
//! submission server (Dovecot relays every accepted message to it).
//!
//! ```text
//! smtp-sink --port P --dir DIR [--ttl SECS]
//! ```
//!
//! Listens on 127.0.0.1 only (never another address), a thread per
//! connection, no authentication, no TLS. Each message is written as
//! received, dot-unstuffed and nothing added (no trace header), streamed
//! to `DIR/tmp/NAME` and renamed to `DIR/new/NAME.eml` once complete;
//! `DIR/new/NAME.envelope` (written first) holds the MAIL FROM address
//! and then each recipient, one a line. Lines of any length are taken.
//! It exits by itself after `--ttl` seconds (default 5400).

use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;
use pop3_client::pop3_proto::frame::{BodyDecoder, Decoded};

/// Receive SMTP on 127.0.0.1 and write each message to a folder.
#[derive(Debug, Parser)]
#[command(name = "smtp-sink")]
struct Cli {
    /// Port on 127.0.0.1.
    #[arg(long)]
    port: u16,
    /// Folder for the messages (tmp/ and new/ are made in it).
    #[arg(long)]
    dir: PathBuf,
    /// Exit after this many seconds.
    #[arg(long, default_value_t = 5400)]
    ttl: u64,
}

/// Longest command line taken.
const MAX_LINE: u64 = 4096;

/// A connection silent for this long is dropped.
const IDLE: Duration = Duration::from_secs(300);

struct Sink {
    dir: PathBuf,
    prefix: String,
    next: AtomicU64,
}

impl Sink {
    fn name(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        format!("{}.{n:06}", self.prefix)
    }
}

/// Reads one command line (CRLF or LF removed); `None` at EOF.
fn command_line(reader: &mut impl BufRead) -> io::Result<Option<String>> {
    let mut line = Vec::new();
    reader.take(MAX_LINE).read_until(b'\n', &mut line)?;
    if line.is_empty() {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "command line too long",
        ));
    }
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.pop();
    }
    Ok(Some(String::from_utf8_lossy(&line).into_owned()))
}

/// The address inside `<...>` after the verb's colon.
fn address(argument: &str) -> String {
    let start = argument.find('<').map_or(0, |i| i + 1);
    let end = argument[start..]
        .find('>')
        .map_or(argument.len(), |i| start + i);
    argument[start..end].to_owned()
}

/// Streams DATA into `DIR/tmp/NAME`, then publishes it in `DIR/new`.
fn receive(
    reader: &mut impl BufRead,
    sink: &Sink,
    from: &str,
    to: &[String],
) -> io::Result<String> {
    let name = sink.name();
    let tmp = sink.dir.join("tmp").join(&name);
    let mut file = BufWriter::with_capacity(64 * 1024, std::fs::File::create(&tmp)?);
    let mut decoder = BodyDecoder::new();
    loop {
        let input = reader.fill_buf()?;
        if input.is_empty() {
            let _ = std::fs::remove_file(&tmp);
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let (used, found) = decoder
            .decode(input)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        let end = match found {
            Decoded::Chunk(chunk) => {
                file.write_all(chunk)?;
                false
            }
            Decoded::NeedMore => false,
            Decoded::End => true,
        };
        reader.consume(used);
        if end {
            break;
        }
    }
    file.flush()?;
    file.get_ref().sync_all()?;
    drop(file);
    let new = sink.dir.join("new");
    let mut envelope = format!("{from}\n");
    for t in to {
        envelope.push_str(t);
        envelope.push('\n');
    }
    std::fs::write(new.join(format!("{name}.envelope")), envelope)?;
    std::fs::rename(&tmp, new.join(format!("{name}.eml")))?;
    Ok(name)
}

fn serve(stream: TcpStream, sink: &Sink) -> io::Result<()> {
    stream.set_read_timeout(Some(IDLE))?;
    stream.set_write_timeout(Some(IDLE))?;
    let mut out = stream.try_clone()?;
    let mut reader = BufReader::with_capacity(64 * 1024, stream);
    out.write_all(b"220 localhost ESMTP smtp-sink\r\n")?;
    let mut from: Option<String> = None;
    let mut to: Vec<String> = Vec::new();
    while let Some(line) = command_line(&mut reader)? {
        let verb = line
            .split([' ', ':'])
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let reply: String = match verb.as_str() {
            "EHLO" => "250-localhost\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n".into(),
            "HELO" => "250 localhost\r\n".into(),
            "MAIL" => {
                from = Some(address(&line));
                to.clear();
                "250 2.1.0 Ok\r\n".into()
            }
            "RCPT" if from.is_some() => {
                to.push(address(&line));
                "250 2.1.5 Ok\r\n".into()
            }
            "RCPT" => "503 5.5.1 MAIL first\r\n".into(),
            "DATA" => match &from {
                Some(sender) if !to.is_empty() => {
                    out.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")?;
                    let name = receive(&mut reader, sink, sender, &to)?;
                    from = None;
                    to.clear();
                    format!("250 2.0.0 Ok: queued as {name}\r\n")
                }
                _ => "503 5.5.1 MAIL and RCPT first\r\n".into(),
            },
            "RSET" => {
                from = None;
                to.clear();
                "250 2.0.0 Ok\r\n".into()
            }
            "NOOP" => "250 2.0.0 Ok\r\n".into(),
            "QUIT" => {
                out.write_all(b"221 2.0.0 Bye\r\n")?;
                return Ok(());
            }
            _ => "502 5.5.2 Command not recognized\r\n".into(),
        };
        out.write_all(reply.as_bytes())?;
    }
    Ok(())
}

fn run(cli: &Cli) -> io::Result<()> {
    for sub in ["tmp", "new"] {
        std::fs::create_dir_all(cli.dir.join(sub))?;
    }
    // Loopback only, whatever the caller asks.
    let listener = TcpListener::bind(("127.0.0.1", cli.port))?;
    let ttl = Duration::from_secs(cli.ttl);
    thread::spawn(move || {
        thread::sleep(ttl);
        std::process::exit(0);
    });
    let started = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let sink = Arc::new(Sink {
        dir: cli.dir.clone(),
        prefix: format!("{started}.P{}", std::process::id()),
        next: AtomicU64::new(1),
    });
    eprintln!("smtp-sink: listening on 127.0.0.1:{}", cli.port);
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let sink = Arc::clone(&sink);
        thread::spawn(move || {
            if let Err(e) = serve(stream, &sink) {
                eprintln!("smtp-sink: connection ended: {e}");
            }
        });
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("smtp-sink: {}: {e}", cli.dir.display());
            ExitCode::FAILURE
        }
    }
}
