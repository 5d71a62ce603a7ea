//! The blocking client over any `Read + Write`: a canned server transcript in
//! memory, including a server that forgets to dot-stuff and one without CAPA.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Cursor, Read, Write};

use pop3_client::blocking::Client;
use pop3_client::transport::Unbounded;
use pop3_client::{AuthMethod, ClientConfig, Credentials, MsgNum, Security};

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
    let sent = client.into_inner().0.to_server;
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
