//! The blocking client over any `Read + Write`: a canned server transcript in
//! memory, including a server that forgets to dot-stuff and one without CAPA.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Cursor, Read, Write};

use pop3_client::blocking::Client;
use pop3_client::transport::Unbounded;
use pop3_client::{
    AuthMethod, ClientConfig, Credentials, Error, ErrorKind, MismatchSign, MsgNum, Security,
};

struct Canned {
    from_server: Cursor<Vec<u8>>,
    to_server: Vec<u8>,
}

impl Read for Canned {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // Three bytes at a time: every line and terminator split across reads.
        let n = buf.len().min(3);
        self.from_server.read(&mut buf[..n])
    }
}

impl Write for Canned {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.to_server.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A client over `transcript`, plaintext allowed (the stream is in memory).
fn client(transcript: &[u8]) -> Client<Unbounded<Canned>> {
    let canned = Canned {
        from_server: Cursor::new(transcript.to_vec()),
        to_server: Vec::new(),
    };
    let mut config = ClientConfig::new("example.invalid");
    config.security = Security::Plain;
    config.allow_plaintext_auth = true;
    config.auth = AuthMethod::Auto;
    Client::from_stream(Unbounded(canned), &config, false).unwrap()
}

#[test]
fn old_server_without_capa_and_unstuffed_dots() {
    let mut client = client(
        b"+OK old server\r\n\
        -ERR unknown command\r\n\
        +OK\r\n\
        +OK logged in\r\n\
        -ERR unknown command\r\n\
        +OK 20 octets\r\n.x unstuffed\r\n.\rodd\r\n..real\r\n.\r\n",
    );
    assert!(
        client.capabilities().is_empty(),
        "no CAPA: capabilities unknown, not an error"
    );
    client.login(&Credentials::new("u", "p")).unwrap();
    let body = client.retr_vec(MsgNum::new(1).unwrap()).unwrap();
    assert_eq!(body, b".x unstuffed\r\n.\rodd\r\n.real\r\n");
    let sent = sent_by(client);
    assert_eq!(
        String::from_utf8(sent).unwrap(),
        "CAPA\r\nUSER u\r\nPASS p\r\nCAPA\r\nRETR 1\r\n",
        "without CAPA, login falls back to USER/PASS"
    );
}

#[test]
fn eof_mid_body_is_an_error_not_a_short_message() {
    let mut client = client(
        b"+OK hi\r\n+OK\r\nUSER\r\n.\r\n+OK\r\n+OK\r\n+OK\r\nUSER\r\n.\r\n+OK\r\nthe start of a bo",
    );
    client.login(&Credentials::new("u", "p")).unwrap();
    let err = client.retr_vec(MsgNum::new(1).unwrap()).unwrap_err();
    assert!(
        err.to_string()
            .contains("closed the connection in the middle of the answer to RETR"),
        "{err}"
    );
}

/// Courier pop3d, byte for byte as issue 10 saw it: `UTF8 USER` advertised,
/// so the client sends UTF8 before logging in and gets the message as
/// stored; LIST's odd first line, a bare `+OK logged in.`, STLS listed
/// again after login.
#[test]
fn courier_sends_utf8_before_login_and_the_message_comes_as_stored() {
    let capa = "+OK Here's what I can do:\r\nSTLS\r\nTOP\r\nUSER\r\nLOGIN-DELAY 10\r\nPIPELINING\r\nUIDL\r\nIMPLEMENTATION Courier Mail Server\r\nUTF8 USER\r\n.\r\n";
    let message = "From: J\u{fc}rgen <j@example.com>\r\nSubject: Gr\u{fc}\u{df}e aus K\u{f6}ln\r\n\r\nHallo.\r\n";
    let transcript = format!(
        "+OK Hello there.\r\n{capa}+OK UTF8 enabled\r\n+OK Password required.\r\n+OK logged in.\r\n{capa}\
         +OK POP3 clients that break here, they violate STD53.\r\n1 {len}\r\n.\r\n\
         +OK {len} octets follow.\r\n{message}.\r\n",
        len = message.len()
    );
    let mut client = client(transcript.as_bytes());
    assert!(!client.utf8_enabled());
    client.login(&Credentials::new("tim", "secret")).unwrap();
    assert!(client.utf8_enabled());
    let listing = client.list().unwrap();
    assert_eq!(listing.len(), 1);
    assert_eq!(listing[0].octets, message.len() as u64);
    let body = client.retr_vec(MsgNum::new(1).unwrap()).unwrap();
    assert_eq!(body, message.as_bytes());
    let sent = sent_by(client);
    assert_eq!(
        String::from_utf8(sent).unwrap(),
        "CAPA\r\nUTF8\r\nUSER tim\r\nPASS secret\r\nCAPA\r\nLIST\r\nRETR 1\r\n",
        "UTF8 once, before the credentials"
    );
}

#[test]
fn utf8_refused_is_not_an_error_and_is_tried_again_after_login_only_if_advertised() {
    // Refused before login; advertised after login too, and accepted there.
    let mut c = client(
        b"+OK hi\r\n+OK\r\nUSER\r\nUTF8\r\n.\r\n-ERR not before login\r\n+OK\r\n+OK in\r\n\
          +OK\r\nUTF8\r\n.\r\n+OK UTF8 enabled\r\n",
    );
    c.login(&Credentials::new("u", "p")).unwrap();
    assert!(c.utf8_enabled());
    assert_eq!(
        String::from_utf8(sent_by(c)).unwrap(),
        "CAPA\r\nUTF8\r\nUSER u\r\nPASS p\r\nCAPA\r\nUTF8\r\n"
    );
    // Refused, and not advertised after login: off, no error.
    let mut c = client(
        b"+OK hi\r\n+OK\r\nUSER\r\nUTF8\r\n.\r\n-ERR no\r\n+OK\r\n+OK in\r\n+OK\r\nUIDL\r\n.\r\n",
    );
    c.login(&Credentials::new("u", "p")).unwrap();
    assert!(!c.utf8_enabled());
    // Turned off by the caller: never sent.
    let canned = Canned {
        from_server: Cursor::new(
            b"+OK hi\r\n+OK\r\nUSER\r\nUTF8\r\n.\r\n+OK\r\n+OK in\r\n+OK\r\nUTF8\r\n.\r\n".to_vec(),
        ),
        to_server: Vec::new(),
    };
    let mut config = ClientConfig::new("example.invalid");
    config.security = Security::Plain;
    config.allow_plaintext_auth = true;
    config.utf8 = false;
    let mut c = Client::from_stream(Unbounded(canned), &config, false).unwrap();
    c.login(&Credentials::new("u", "p")).unwrap();
    assert!(!c.utf8_enabled());
    assert_eq!(
        String::from_utf8(sent_by(c)).unwrap(),
        "CAPA\r\nUSER u\r\nPASS p\r\nCAPA\r\n"
    );
}

#[test]
fn no_greeting_is_told_apart_from_a_cut_greeting() {
    let canned = |bytes: &[u8]| Canned {
        from_server: Cursor::new(bytes.to_vec()),
        to_server: Vec::new(),
    };
    let mut config = ClientConfig::new("example.invalid");
    config.security = Security::StartTls;
    // Closed before one byte: maybe a TLS port that gave up waiting.
    let err = Client::from_stream(Unbounded(canned(b"")), &config, false)
        .err()
        .unwrap();
    assert!(
        matches!(
            err,
            Error::SecurityMismatch {
                sign: MismatchSign::ClosedBeforeGreeting,
                tried: Security::StartTls,
                suggested: Security::Tls,
                protocol: pop3_client::Protocol::Pop3,
            }
        ),
        "{err}"
    );
    let text = err.to_string();
    assert!(text.contains("without sending a greeting"), "{text}");
    assert!(text.contains("implicit TLS"), "{text}");
    assert!(!text.contains("in the middle"), "{text}");
    assert_eq!(err.kind(), ErrorKind::Connect);
    // A TLS alert where the greeting belongs: named at once.
    let err = Client::from_stream(
        Unbounded(canned(b"\x15\x03\x03\x00\x02\x02\x32")),
        &config,
        false,
    )
    .err()
    .unwrap();
    assert_eq!(err.suggested_security(), Some(Security::Tls), "{err}");
    assert!(err.to_string().contains("TLS record"), "{err}");
    assert_eq!(err.kind(), ErrorKind::Tls);
    // Part of a greeting, then the end: cut off, no mismatch suggested.
    let err = Client::from_stream(Unbounded(canned(b"+OK hel")), &config, false)
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .contains("in the middle of the answer to the greeting"),
        "{err}"
    );
    assert_eq!(err.suggested_security(), None);
}

/// What the client wrote to the canned server.
fn sent_by(client: Client<Unbounded<Canned>>) -> Vec<u8> {
    match client.into_inner() {
        pop3_client::transport::Connection::Plain(stream) => stream.0.to_server,
        _ => panic!("the canned stream is plaintext"),
    }
}
