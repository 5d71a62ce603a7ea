//! `cargo run --example demo`: a POP3 server (pop3-proto's server role) on
//! 127.0.0.1 over TLS with a certificate generated at start, and the real
//! client fetching everything from it. No outside server needed.

use std::process::ExitCode;
use std::time::Instant;

use pop3_client::blocking::Client;
use pop3_client::pop3_proto::escape::Escaped;
use pop3_client::pop3_proto::server::{ServerMessage, ServerOptions};
use pop3_client::testing::{Fault, TestServer, TestServerConfig};
use pop3_client::{Credentials, Error, MsgNum};

fn maildrop() -> Vec<ServerMessage> {
    let mut big = b"From: archive@example.com\r\nSubject: A long newsletter\r\n\r\n".to_vec();
    for i in 0..2000 {
        big.extend_from_slice(
            format!("Line {i} of the newsletter, long enough to look like real text.\r\n")
                .as_bytes(),
        );
    }
    let messages: Vec<Vec<u8>> = vec![
        b"From: alice@example.com\r\nSubject: Lunch?\r\n\r\nNoon at the usual place.\r\n".to_vec(),
        "From: b\u{e9}atrice@example.fr\r\nSubject: =?utf-8?q?Caf=C3=A9?=\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nUn caf\u{e9} cr\u{e8}me, s'il vous pla\u{ee}t.\r\n".as_bytes().to_vec(),
        b"From: carol@example.com\r\nSubject: Dots\r\n\r\n.A line starting with a dot\r\n.\r\n..Two dots\r\n".to_vec(),
        big,
    ];
    messages
        .into_iter()
        .enumerate()
        .map(|(i, content)| ServerMessage {
            uid: format!("demo-{i:04}"),
            content,
        })
        .collect()
}

fn subject(message: &[u8]) -> String {
    let text = String::from_utf8_lossy(message);
    text.lines()
        .find_map(|l| l.strip_prefix("Subject: "))
        .unwrap_or("(no subject)")
        .to_owned()
}

fn run() -> Result<(), Error> {
    pop3_examples::init_tracing();
    let messages = maildrop();
    let options = ServerOptions {
        user: "demo@example.com".into(),
        password: "app-password".into(),
        ..ServerOptions::default()
    };
    let server = TestServer::start(TestServerConfig {
        options,
        messages: messages.clone(),
        implicit_tls: true,
        fault: Fault::None,
        gmail: None,
        ..TestServerConfig::default()
    })?;
    println!(
        "server: POP3 over TLS on {} (self-signed certificate generated at start)",
        server.addr()
    );

    let config = server.client_config();
    let started = Instant::now();
    let mut client = Client::connect(
        &config,
        &Credentials::new("demo@example.com", "app-password"),
    )?;
    println!(
        "client: connected and logged in over TLS: {}",
        client.is_tls()
    );
    println!("client: greeting \"{}\"", Escaped(&client.greeting().text));
    let caps: Vec<String> = client
        .capabilities()
        .iter()
        .map(|c| format!("{c:?}"))
        .collect();
    println!("client: capabilities after login: {}", caps.join(", "));

    let stat = client.stat()?;
    println!("client: {} messages, {} bytes", stat.count, stat.octets);
    let uids = client.uidl()?;
    let numbers: Vec<MsgNum> = uids.iter().map(|u| u.msg).collect();
    let pipelined = client.capabilities().pipelining();
    let fetched = client.retr_many_vec(&numbers)?;
    let mut identical = 0;
    for ((item, body), original) in uids.iter().zip(&fetched).zip(&messages) {
        let body = body.as_ref().map_err(|r| r.to_error(None))?;
        let same = body == &original.content;
        identical += usize::from(same);
        println!(
            "  #{} uid {} {:>7} bytes  {}  \"{}\"",
            item.msg,
            item.uid,
            body.len(),
            if same { "byte-identical" } else { "DIFFERENT" },
            subject(body)
        );
    }
    client.quit()?;
    println!(
        "client: fetched {}/{} messages ({}pipelined) in {:.1} ms",
        identical,
        messages.len(),
        if pipelined { "" } else { "not " },
        started.elapsed().as_secs_f64() * 1000.0
    );

    // What a user sees when the password is wrong.
    match Client::connect(
        &config,
        &Credentials::new("demo@example.com", "old-password"),
    ) {
        Err(e) => println!("with a wrong password the client says: {e}"),
        Ok(_) => println!("unexpected: a wrong password was accepted"),
    }
    if identical == messages.len() {
        Ok(())
    } else {
        Err(Error::Io(std::io::Error::other(
            "some messages differed from what the server holds",
        )))
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}: {e}", e.kind().as_str());
            ExitCode::FAILURE
        }
    }
}
