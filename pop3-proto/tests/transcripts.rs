//! Whole sessions from the RFCs and from transcripts typical of Gmail, Office
//! 365 and Dovecot, checked byte for byte in both directions.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{feed, written};
use pop3_proto::sasl::SaslClient;
use pop3_proto::{
    apop_digest, Capability, ClientSession, Command, MsgNum, RespCodeKind, SessionError, State,
};

fn m(n: u32) -> MsgNum {
    MsgNum::new(n).unwrap()
}

/// RFC 1939 section 10, the example POP3 session.
#[test]
fn rfc1939_sample_session() {
    let mut s = ClientSession::default();
    let (ev, _) = feed(
        &mut s,
        b"+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n",
    )
    .unwrap();
    assert_eq!(ev, ["greeting Ok stamp=<1896.697170952@dbc.mtview.ca.us>"]);
    let stamp = s.greeting().unwrap().apop_timestamp.clone().unwrap();
    let digest = apop_digest(&stamp, "tanstaaf");
    assert_eq!(digest, "c4c9334bac560ecc979e58001b3e22fb");
    s.send(&Command::Apop {
        user: "mrose",
        digest: &digest,
    })
    .unwrap();
    assert_eq!(
        written(&mut s),
        "APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n"
    );
    let (ev, _) = feed(
        &mut s,
        b"+OK mrose's maildrop has 2 messages (320 octets)\r\n",
    )
    .unwrap();
    assert_eq!(ev, ["APOP Ok"]);
    assert_eq!(s.state(), State::Transaction);

    s.send(&Command::Stat).unwrap();
    let (ev, _) = feed(&mut s, b"+OK 2 320\r\n").unwrap();
    assert_eq!(ev, ["STAT Ok stat=2/320"]);

    s.send(&Command::List(None)).unwrap();
    let (ev, _) = feed(
        &mut s,
        b"+OK 2 messages (320 octets)\r\n1 120\r\n2 200\r\n.\r\n",
    )
    .unwrap();
    assert_eq!(ev, ["LIST Ok", "list 1 120", "list 2 200", "end LIST"]);

    s.send(&Command::Retr(m(1))).unwrap();
    let (ev, _) = feed(
        &mut s,
        b"+OK 120 octets\r\n<the POP3 server sends message 1>\r\n.\r\n",
    )
    .unwrap();
    assert_eq!(
        ev,
        [
            "RETR Ok",
            "body <the POP3 server sends message 1>\\r\\n",
            "end RETR"
        ]
    );
    s.send(&Command::Dele(m(1))).unwrap();
    let (ev, _) = feed(&mut s, b"+OK message 1 deleted\r\n").unwrap();
    assert_eq!(ev, ["DELE Ok"]);
    s.send(&Command::Retr(m(2))).unwrap();
    let (ev, _) = feed(&mut s, b"+OK 200 octets\r\n<message 2>\r\n.\r\n").unwrap();
    assert_eq!(ev.len(), 3);
    s.send(&Command::Dele(m(2))).unwrap();
    feed(&mut s, b"+OK message 2 deleted\r\n").unwrap();
    s.send(&Command::Quit).unwrap();
    assert_eq!(s.state(), State::Update);
    let (ev, _) = feed(
        &mut s,
        b"+OK dewey POP3 server signing off (maildrop empty)\r\n",
    )
    .unwrap();
    assert_eq!(ev, ["QUIT Ok"]);
    assert_eq!(s.state(), State::Closed);
    assert_eq!(s.handle_eof(), Ok(()));
    assert_eq!(
        written(&mut s),
        "STAT\r\nLIST\r\nRETR 1\r\nDELE 1\r\nRETR 2\r\nDELE 2\r\nQUIT\r\n"
    );
}

const GMAIL_CAPA_BEFORE: &[u8] = b"+OK Capability list follows\r\nUSER\r\nRESP-CODES\r\nEXPIRE 0\r\nLOGIN-DELAY 300\r\nTOP\r\nUIDL\r\nX-GOOGLE-RICO\r\nSASL PLAIN XOAUTH2 OAUTHBEARER\r\n.\r\n";
const GMAIL_CAPA_AFTER: &[u8] = b"+OK Capability list follows\r\nUSER\r\nRESP-CODES\r\nEXPIRE 0\r\nLOGIN-DELAY 300\r\nTOP\r\nUIDL\r\nX-GOOGLE-RICO\r\nPIPELINING\r\n.\r\n";

/// Gmail: CAPA before and after login differ (PIPELINING appears only after
/// login), and `recent:` mode is recognised.
#[test]
fn gmail_recent_mode_and_capabilities_after_login() {
    let mut s = ClientSession::default();
    feed(
        &mut s,
        b"+OK Gpop ready for requests from 192.0.2.1 a1mb12345678abc\r\n",
    )
    .unwrap();
    assert_eq!(s.greeting().unwrap().apop_timestamp, None);
    s.send(&Command::Capa).unwrap();
    let (ev, _) = feed(&mut s, GMAIL_CAPA_BEFORE).unwrap();
    assert_eq!(ev.last().unwrap(), "end CAPA");
    let caps = s.capabilities();
    assert!(caps.sasl("xoauth2") && caps.user() && !caps.pipelining());
    assert_eq!(caps.login_delay(), Some(300));
    assert!(caps.has(&Capability::Other {
        name: "X-GOOGLE-RICO".into(),
        params: vec![]
    }));

    s.send(&Command::User("recent:someone@gmail.com")).unwrap();
    assert!(s.recent_mode());
    feed(&mut s, b"+OK send PASS\r\n").unwrap();
    s.send(&Command::Pass("app specific pw")).unwrap();
    let (ev, _) = feed(&mut s, b"+OK Welcome.\r\n").unwrap();
    assert_eq!(ev, ["PASS Ok"]);
    // Capabilities are forgotten at login and must be read again.
    assert!(s.capabilities().is_empty());
    assert_eq!(s.room(), 1, "no pipelining until CAPA says so");
    s.send(&Command::Capa).unwrap();
    feed(&mut s, GMAIL_CAPA_AFTER).unwrap();
    assert!(s.capabilities().pipelining());
    assert_eq!(s.room(), 100);
    assert_eq!(
        written(&mut s),
        "CAPA\r\nUSER recent:someone@gmail.com\r\nPASS app specific pw\r\nCAPA\r\n"
    );
}

/// Gmail with XOAUTH2 and an expired token: the error challenge is answered
/// with an empty line, and the final -ERR carries [AUTH].
#[test]
fn gmail_xoauth2_error_challenge() {
    let mut s = ClientSession::default();
    feed(&mut s, b"+OK Gpop ready\r\n").unwrap();
    let sasl = SaslClient::xoauth2("someone@gmail.com", "expired")
        .unwrap()
        .with_initial_response(true);
    s.authenticate(sasl).unwrap();
    let first = written(&mut s);
    assert!(
        first.starts_with(
            "AUTH XOAUTH2 dXNlcj1zb21lb25lQGdtYWlsLmNvbQFhdXRoPUJlYXJlciBleHBpcmVkAQE="
        ),
        "{first}"
    );
    let (ev, _) = feed(
        &mut s,
        b"+ eyJzdGF0dXMiOiI0MDAiLCJzY2hlbWVzIjoiQmVhcmVyIiwic2NvcGUiOiJodHRwczovL21haWwuZ29vZ2xlLmNvbS8ifQ==\r\n",
    )
    .unwrap();
    assert!(ev.is_empty());
    assert_eq!(written(&mut s), "\r\n");
    let (ev, _) = feed(&mut s, b"-ERR [AUTH] Invalid credentials.\r\n").unwrap();
    assert_eq!(ev, ["AUTH Err [AUTH]"]);
    assert_eq!(s.state(), State::Authorization);
}

/// Office 365 needs the two-line XOAUTH2 form: AUTH XOAUTH2, then the token
/// after an empty `+`.
#[test]
fn office365_xoauth2_two_line_form() {
    let mut s = ClientSession::default();
    feed(
        &mut s,
        b"+OK The Microsoft Exchange POP3 service is ready. [TQBOADIAUABSADAAMQ==]\r\n",
    )
    .unwrap();
    s.send(&Command::Capa).unwrap();
    feed(
        &mut s,
        b"+OK\r\nTOP\r\nUIDL\r\nSASL PLAIN XOAUTH2\r\nUSER\r\n.\r\n",
    )
    .unwrap();
    assert!(s.capabilities().sasl("XOAUTH2"));
    written(&mut s);
    s.authenticate(SaslClient::xoauth2("user@contoso.com", "tok").unwrap())
        .unwrap();
    assert_eq!(written(&mut s), "AUTH XOAUTH2\r\n");
    // A command while AUTH is pending must wait.
    assert_eq!(
        s.send(&Command::Capa),
        Err(SessionError::MustWait { command: "CAPA" })
    );
    feed(&mut s, b"+ \r\n").unwrap();
    assert_eq!(
        written(&mut s),
        "dXNlcj11c2VyQGNvbnRvc28uY29tAWF1dGg9QmVhcmVyIHRvawEB\r\n"
    );
    let (ev, _) = feed(&mut s, b"+OK User successfully authenticated.\r\n").unwrap();
    assert_eq!(ev, ["AUTH Ok"]);
    assert_eq!(s.state(), State::Transaction);
}

/// Dovecot: greeting with an APOP timestamp, STLS, CAPA again after TLS and
/// after login, a refused password with [AUTH], then SASL PLAIN.
#[test]
fn dovecot_stls_and_login() {
    let mut s = ClientSession::default();
    feed(
        &mut s,
        b"+OK Dovecot (Debian) ready. <2a1b.1.6565c3f1.Ab1c2D3e4F5g6H7i@host>\r\n",
    )
    .unwrap();
    assert!(s.greeting().unwrap().apop_timestamp.is_some());
    s.send(&Command::Capa).unwrap();
    feed(&mut s, b"+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nAUTH-RESP-CODE\r\nSTLS\r\nUSER\r\nSASL PLAIN LOGIN CRAM-MD5\r\n.\r\n").unwrap();
    assert!(s.capabilities().stls());
    s.send(&Command::Stls).unwrap();
    let (ev, used) = feed(&mut s, b"+OK Begin TLS negotiation now.\r\n").unwrap();
    assert_eq!((ev.as_slice(), used), (&["STLS Ok".to_string()][..], 32));
    assert!(s.awaiting_tls());
    assert!(s.capabilities().is_empty());
    assert!(matches!(
        s.send(&Command::Capa),
        Err(SessionError::IllegalCommand { .. })
    ));
    s.tls_established();
    assert!(matches!(
        s.send(&Command::Stls),
        Err(SessionError::IllegalCommand { .. })
    ));
    s.send(&Command::Capa).unwrap();
    feed(&mut s, b"+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nAUTH-RESP-CODE\r\nUSER\r\nSASL PLAIN LOGIN CRAM-MD5\r\n.\r\n").unwrap();
    assert!(!s.capabilities().stls());
    s.send(&Command::User("tim")).unwrap();
    feed(&mut s, b"+OK\r\n").unwrap();
    s.send(&Command::Pass("wrong")).unwrap();
    let (ev, _) = feed(&mut s, b"-ERR [AUTH] Authentication failed.\r\n").unwrap();
    assert_eq!(ev, ["PASS Err [AUTH]"]);
    // PASS is only legal right after an accepted USER.
    assert!(matches!(
        s.send(&Command::Pass("again")),
        Err(SessionError::IllegalCommand { .. })
    ));
    s.authenticate(SaslClient::plain("tim", "right").unwrap())
        .unwrap();
    let (ev, _) = feed(&mut s, b"+OK Logged in.\r\n").unwrap();
    assert_eq!(ev, ["AUTH Ok"]);
    assert_eq!(
        written(&mut s),
        "CAPA\r\nSTLS\r\nCAPA\r\nUSER tim\r\nPASS wrong\r\nAUTH PLAIN AHRpbQByaWdodA==\r\n"
    );
}

/// Courier pop3d (as seen in issue 10): no APOP timestamp, no RESP-CODES,
/// `UTF8 USER` advertised and `+OK UTF8 enabled`, a bare `-ERR Login
/// failed.`, STLS listed again after login, and LIST's odd first line.
#[test]
fn courier_utf8_and_quirks() {
    let mut s = ClientSession::default();
    let (ev, _) = feed(&mut s, b"+OK Hello there.\r\n").unwrap();
    assert_eq!(ev, ["greeting Ok stamp=-"]);
    let capa: &[u8] = b"+OK Here's what I can do:\r\nSTLS\r\nTOP\r\nUSER\r\nLOGIN-DELAY 10\r\nPIPELINING\r\nUIDL\r\nIMPLEMENTATION Courier Mail Server\r\nUTF8 USER\r\n.\r\n";
    s.send(&Command::Capa).unwrap();
    feed(&mut s, capa).unwrap();
    assert!(s.capabilities().has(&Capability::Utf8 { user: true }));
    assert!(!s.capabilities().resp_codes());
    assert_eq!(s.capabilities().login_delay(), Some(10));
    s.send(&Command::Utf8).unwrap();
    let (ev, _) = feed(&mut s, b"+OK UTF8 enabled\r\n").unwrap();
    assert_eq!(ev, ["UTF8 Ok"]);
    assert!(s.utf8_enabled());
    s.send(&Command::User("tim")).unwrap();
    feed(&mut s, b"+OK Password required.\r\n").unwrap();
    s.send(&Command::Pass("wrong")).unwrap();
    let (ev, _) = feed(&mut s, b"-ERR Login failed.\r\n").unwrap();
    assert_eq!(ev, ["PASS Err"], "no response code");
    s.send(&Command::User("tim")).unwrap();
    feed(&mut s, b"+OK Password required.\r\n").unwrap();
    s.send(&Command::Pass("right")).unwrap();
    let (ev, _) = feed(&mut s, b"+OK logged in.\r\n").unwrap();
    assert_eq!(ev, ["PASS Ok"]);
    s.send(&Command::Capa).unwrap();
    feed(&mut s, capa).unwrap();
    assert!(s.capabilities().stls(), "Courier lists STLS after login");
    assert!(
        matches!(
            s.send(&Command::Stls),
            Err(SessionError::IllegalCommand { .. })
        ),
        "but STLS is over after login"
    );
    assert!(s.utf8_enabled(), "UTF-8 mode outlives the login");
    s.send(&Command::List(None)).unwrap();
    let (ev, _) = feed(
        &mut s,
        b"+OK POP3 clients that break here, they violate STD53.\r\n1 83\r\n.\r\n",
    )
    .unwrap();
    assert_eq!(ev, ["LIST Ok", "list 1 83", "end LIST"]);
    s.send(&Command::Retr(m(1))).unwrap();
    let body = "Subject: Gr\u{fc}\u{df}e aus K\u{f6}ln\r\nFrom: J\u{fc}rgen <j@example.com>\r\n\r\nHallo.\r\n";
    let wire = format!("+OK 83 octets follow.\r\n{body}.\r\n");
    let (ev, _) = feed(&mut s, wire.as_bytes()).unwrap();
    assert_eq!(ev.len(), 3, "{ev:?}");
    assert_eq!(
        written(&mut s),
        "CAPA\r\nUTF8\r\nUSER tim\r\nPASS wrong\r\nUSER tim\r\nPASS right\r\nCAPA\r\nLIST\r\nRETR 1\r\n"
    );
}

/// Bytes that arrive with STLS's +OK, before the handshake, are an attack.
#[test]
fn stls_response_injection_is_refused() {
    let mut s = ClientSession::default();
    feed(&mut s, b"+OK ready\r\n").unwrap();
    s.send(&Command::Stls).unwrap();
    let err = feed(&mut s, b"+OK go ahead\r\n+OK injected\r\n").unwrap_err();
    assert!(matches!(err, SessionError::UnexpectedData { .. }), "{err}");
    assert_eq!(s.state(), State::Closed);
}

#[test]
fn response_codes_for_in_use_and_login_delay() {
    let mut s = ClientSession::default();
    feed(&mut s, b"+OK ready\r\n").unwrap();
    s.send(&Command::User("u")).unwrap();
    feed(&mut s, b"+OK\r\n").unwrap();
    s.send(&Command::Pass("p")).unwrap();
    let line = b"-ERR [IN-USE] Do you have another POP session running?\r\n";
    let (n, event) = s.advance(line).unwrap();
    assert_eq!(n, line.len());
    match event {
        pop3_proto::Event::Reply(r) => {
            assert_eq!(r.code.unwrap().kind(), RespCodeKind::InUse);
            assert_eq!(r.text, b"Do you have another POP session running?");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn refused_greeting_closes_the_session() {
    let mut s = ClientSession::default();
    let (ev, _) = feed(&mut s, b"-ERR [SYS/TEMP] Too many connections\r\n").unwrap();
    assert_eq!(ev, ["greeting Err stamp=-"]);
    assert_eq!(s.state(), State::Closed);
    assert_eq!(
        s.greeting().unwrap().code.as_ref().unwrap().kind(),
        RespCodeKind::SysTemp
    );
}
