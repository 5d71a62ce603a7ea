//! The state machine's rules: legal commands per state, the pipelining
//! window, end of input, caps on lines and bodies.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{feed, written};
use pop3_proto::{ClientSession, Command, MsgNum, SessionConfig, SessionError, State};

fn logged_in(config: SessionConfig, pipelining: bool) -> ClientSession {
    let mut s = ClientSession::new(config);
    feed(&mut s, b"+OK hi\r\n").unwrap();
    s.send(&Command::User("u")).unwrap();
    feed(&mut s, b"+OK\r\n").unwrap();
    s.send(&Command::Pass("p")).unwrap();
    feed(&mut s, b"+OK\r\n").unwrap();
    s.send(&Command::Capa).unwrap();
    let capa: &[u8] = if pipelining {
        b"+OK\r\nPIPELINING\r\nUIDL\r\n.\r\n"
    } else {
        b"+OK\r\nUIDL\r\n.\r\n"
    };
    feed(&mut s, capa).unwrap();
    written(&mut s);
    s
}

#[test]
fn commands_are_refused_in_the_wrong_state() {
    let mut s = ClientSession::default();
    assert!(matches!(
        s.send(&Command::Capa),
        Err(SessionError::IllegalCommand { .. })
    ));
    feed(&mut s, b"+OK hi\r\n").unwrap();
    let one = MsgNum::new(1).unwrap();
    for cmd in [
        Command::Stat,
        Command::Retr(one),
        Command::Dele(one),
        Command::Noop,
        Command::Pass("x"),
    ] {
        let err = s.send(&cmd).unwrap_err();
        assert!(
            matches!(err, SessionError::IllegalCommand { .. }),
            "{cmd:?}: {err}"
        );
    }
    assert_eq!(s.output(), b"", "nothing written for refused commands");
    let mut s = logged_in(SessionConfig::default(), false);
    // (UTF8 is legal here: see utf8_is_legal_before_and_after_login...)
    let apop = Command::Apop {
        user: "u",
        digest: "d",
    };
    for cmd in [Command::User("u"), Command::Stls, apop] {
        assert!(
            matches!(s.send(&cmd), Err(SessionError::IllegalCommand { .. })),
            "{cmd:?}"
        );
    }
    s.send(&Command::Quit).unwrap();
    assert_eq!(s.state(), State::Update);
    assert!(s.send(&Command::Noop).is_err());
}

#[test]
fn without_pipelining_one_command_at_a_time() {
    let mut s = logged_in(SessionConfig::default(), false);
    s.send(&Command::Noop).unwrap();
    assert_eq!(s.room(), 0);
    assert_eq!(
        s.send(&Command::Stat),
        Err(SessionError::MustWait { command: "STAT" })
    );
}

#[test]
fn pipelining_window_fills_to_max_and_refills_below_low_water() {
    let config = SessionConfig {
        pipeline_max: 10,
        pipeline_refill: 3,
        ..SessionConfig::default()
    };
    let mut s = logged_in(config, true);
    for _ in 0..10 {
        s.send(&Command::Noop).unwrap();
    }
    assert_eq!(s.room(), 0);
    assert!(matches!(
        s.send(&Command::Noop),
        Err(SessionError::MustWait { .. })
    ));
    assert_eq!(written(&mut s), "NOOP\r\n".repeat(10));
    // Seven answered: three still out, the window stays shut...
    feed(&mut s, &b"+OK\r\n".repeat(7)).unwrap();
    assert_eq!((s.pending(), s.room()), (3, 0));
    // ...until fewer than three are unanswered.
    feed(&mut s, b"+OK\r\n").unwrap();
    assert_eq!((s.pending(), s.room()), (2, 8));
}

#[test]
fn pipelined_replies_arrive_in_order() {
    let mut s = logged_in(SessionConfig::default(), true);
    let (one, two) = (MsgNum::new(1).unwrap(), MsgNum::new(2).unwrap());
    s.send(&Command::Retr(one)).unwrap();
    s.send(&Command::Retr(two)).unwrap();
    s.send(&Command::Dele(one)).unwrap();
    let (ev, _) = feed(
        &mut s,
        b"+OK\r\nA\r\n.\r\n-ERR [SYS/TEMP] no\r\n+OK deleted\r\n",
    )
    .unwrap();
    assert_eq!(
        ev,
        [
            "RETR Ok",
            "body A\\r\\n",
            "end RETR",
            "RETR Err [SYS/TEMP]",
            "DELE Ok"
        ]
    );
    assert_eq!(s.pending(), 0);
}

#[test]
fn end_of_input_mid_response_is_an_error() {
    let mut s = logged_in(SessionConfig::default(), false);
    s.send(&Command::Retr(MsgNum::new(1).unwrap())).unwrap();
    feed(&mut s, b"+OK\r\npart of a bo").unwrap();
    assert_eq!(
        s.handle_eof(),
        Err(SessionError::UnexpectedEof { during: "RETR" })
    );
    let mut s = ClientSession::default();
    feed(&mut s, b"+OK half a gree").unwrap();
    assert_eq!(
        s.handle_eof(),
        Err(SessionError::UnexpectedEof {
            during: "the greeting"
        })
    );
    let mut s = logged_in(SessionConfig::default(), false);
    assert_eq!(s.handle_eof(), Err(SessionError::Disconnected));
}

#[test]
fn end_of_input_before_any_answer_says_nothing_arrived() {
    let mut s = ClientSession::default();
    feed(&mut s, b"").unwrap();
    assert_eq!(s.handle_eof(), Err(SessionError::NoGreeting));
    assert_eq!(s.state(), State::Closed);
    let mut s = logged_in(SessionConfig::default(), false);
    s.send(&Command::Stat).unwrap();
    feed(&mut s, b"").unwrap();
    assert_eq!(
        s.handle_eof(),
        Err(SessionError::NoAnswer { during: "STAT" })
    );
    // Part of the status line counts as part of the answer.
    let mut s = logged_in(SessionConfig::default(), false);
    s.send(&Command::Stat).unwrap();
    feed(&mut s, b"+OK 1").unwrap();
    assert_eq!(
        s.handle_eof(),
        Err(SessionError::UnexpectedEof { during: "STAT" })
    );
    // So does a SASL challenge, though the final status never came.
    let mut s = ClientSession::default();
    feed(&mut s, b"+OK hi\r\n").unwrap();
    s.authenticate(pop3_proto::sasl::SaslClient::login("u", "p"))
        .unwrap();
    feed(&mut s, b"+ VXNlcm5hbWU6\r\n").unwrap();
    assert_eq!(
        s.handle_eof(),
        Err(SessionError::UnexpectedEof { during: "AUTH" })
    );
}

#[test]
fn a_tls_record_instead_of_the_greeting_is_named_at_once() {
    // A TLS alert (0x15 0x03 0x03 ...) carries no line end: no waiting for one.
    for record in [&b"\x15\x03\x03\x00\x02\x02\x32"[..], b"\x16\x03\x01\x00"] {
        let mut s = ClientSession::default();
        assert_eq!(
            feed(&mut s, record).unwrap_err(),
            SessionError::TlsInsteadOfGreeting
        );
        assert_eq!(s.state(), State::Closed);
    }
    // One byte is not enough to tell; the next decides.
    let mut s = ClientSession::default();
    assert_eq!(feed(&mut s, b"\x16").unwrap().0, Vec::<String>::new());
    assert_eq!(
        feed(&mut s, b"\x16\x03").unwrap_err(),
        SessionError::TlsInsteadOfGreeting
    );
    // Other garbage is still a malformed greeting, once its line ends.
    let mut s = ClientSession::default();
    assert!(matches!(
        feed(&mut s, b"\x16\x04\r\n").unwrap_err(),
        SessionError::Protocol { .. }
    ));
}

#[test]
fn utf8_is_legal_before_and_after_login_and_recorded_when_accepted() {
    let mut s = ClientSession::default();
    feed(&mut s, b"+OK hi\r\n").unwrap();
    s.send(&Command::Utf8).unwrap();
    // UTF8 changes what follows: it goes alone.
    assert!(matches!(
        s.send(&Command::Capa),
        Err(SessionError::MustWait { .. })
    ));
    feed(&mut s, b"-ERR not now\r\n").unwrap();
    assert!(!s.utf8_enabled(), "refused: off");
    let mut s = logged_in(SessionConfig::default(), true);
    s.send(&Command::Utf8).unwrap();
    assert_eq!(written(&mut s), "UTF8\r\n");
    let (ev, _) = feed(&mut s, b"+OK UTF8 enabled\r\n").unwrap();
    assert_eq!(ev, ["UTF8 Ok"]);
    assert!(s.utf8_enabled());
    assert_eq!(s.state(), State::Transaction);
}

#[test]
fn protocol_lines_are_capped_but_body_lines_are_not() {
    let config = SessionConfig {
        max_line: 64,
        ..SessionConfig::default()
    };
    let mut s = logged_in(config, false);
    s.send(&Command::Retr(MsgNum::new(1).unwrap())).unwrap();
    let long_line = vec![b'x'; 10_000];
    let mut wire = b"+OK\r\n".to_vec();
    wire.extend_from_slice(&long_line);
    wire.extend_from_slice(b"\r\n.\r\n");
    let (ev, used) = feed(&mut s, &wire).unwrap();
    assert_eq!(used, wire.len());
    assert_eq!(ev.len(), 3);
    s.send(&Command::Uidl(None)).unwrap();
    let mut listing = b"+OK\r\n1 ".to_vec();
    listing.extend_from_slice(&[b'u'; 100]);
    let err = feed(&mut s, &listing).unwrap_err();
    assert!(
        matches!(err, SessionError::LineTooLong { limit: 64, .. }),
        "{err}"
    );
}

#[test]
fn body_size_cap() {
    let config = SessionConfig {
        max_body: Some(10),
        ..SessionConfig::default()
    };
    let mut s = logged_in(config, false);
    s.send(&Command::Retr(MsgNum::new(1).unwrap())).unwrap();
    let err = feed(&mut s, b"+OK\r\n0123456789abc\r\n.\r\n").unwrap_err();
    assert_eq!(err, SessionError::BodyTooLarge { limit: 10 });
    assert_eq!(s.state(), State::Closed);
}

#[test]
fn unsolicited_data_and_garbage_are_errors() {
    let mut s = logged_in(SessionConfig::default(), false);
    assert!(matches!(
        feed(&mut s, b"+OK surprise\r\n"),
        Err(SessionError::UnexpectedData { .. })
    ));
    let mut s = logged_in(SessionConfig::default(), false);
    s.send(&Command::Noop).unwrap();
    let err = feed(&mut s, b"HTTP/1.1 400 Bad Request\r\n").unwrap_err();
    assert!(err.to_string().contains("HTTP/1.1 400"), "{err}");
    assert!(matches!(err, SessionError::Protocol { during: "NOOP", .. }));
    assert!(err.to_string().contains("in the answer to NOOP"), "{err}");
}

#[test]
fn malformed_listing_entries_are_typed_errors() {
    let mut s = logged_in(SessionConfig::default(), false);
    s.send(&Command::List(None)).unwrap();
    let err = feed(&mut s, b"+OK\r\n1 100\r\nfoo bar\r\n.\r\n").unwrap_err();
    assert!(
        err.to_string()
            .contains("malformed LIST entry: \"foo bar\""),
        "{err}"
    );
}

#[test]
fn listings_in_unusual_forms_read_the_same_as_exact_ones() {
    // Exact lines are batched; the others (extra blanks, a tab, bare LF, a
    // ten-digit number, 8-bit UIDs) go through the grammar one by one.
    let wire = b"+OK\r\n1 a1\r\n2  b2\r\n 3 c3\r\n4 d4 \r\n5\te5\r\n6 f6\n\
                 1234567890 g7\r\n8 h\xe98\r\n9 i9\r\n.\r\n";
    let mut s = logged_in(SessionConfig::default(), false);
    s.send(&Command::Uidl(None)).unwrap();
    let (events, used) = feed(&mut s, wire).unwrap();
    assert_eq!(used, wire.len());
    assert_eq!(
        events,
        [
            "UIDL Ok",
            "uid 1 a1",
            "uid 2 b2",
            "uid 3 c3",
            "uid 4 d4",
            "uid 5 e5",
            "uid 6 f6",
            "uid 1234567890 g7",
            "uid 8 h\\xe98",
            "uid 9 i9",
            "end UIDL",
        ]
    );
    let wire = b"+OK\r\n1 10\r\n2  20\r\n3 30 extra\r\n4 40\n5 00050\r\n.\r\n";
    s.send(&Command::List(None)).unwrap();
    let (events, _) = feed(&mut s, wire).unwrap();
    assert_eq!(
        events,
        [
            "LIST Ok",
            "list 1 10",
            "list 2 20",
            "list 3 30",
            "list 4 40",
            "list 5 50",
            "end LIST"
        ]
    );
}

#[test]
fn sasl_round_cap_cancels() {
    let mut s = ClientSession::default();
    feed(&mut s, b"+OK hi\r\n").unwrap();
    let sasl = pop3_proto::sasl::SaslClient::xoauth2("u", "t")
        .unwrap()
        .with_max_rounds(2);
    s.authenticate(sasl).unwrap();
    let err = feed(&mut s, b"+ \r\n+ \r\n+ \r\n").unwrap_err();
    assert!(matches!(err, SessionError::Sasl(_)), "{err}");
    assert!(written(&mut s).ends_with("*\r\n"));
}

/// A server remembered as pipelining: CAPA and the login go in one flight;
/// nothing follows the login until it is answered; the answers are read in
/// order (a SASL challenge reaches AUTH even behind CAPA).
#[test]
fn a_remembered_pipelining_server_gets_capa_and_the_login_in_one_flight() {
    use pop3_proto::sasl::SaslClient;
    let mut s = ClientSession::default();
    feed(&mut s, b"+OK hi\r\n").unwrap();
    s.assume_pipelining();
    s.send(&Command::Capa).unwrap();
    s.authenticate(SaslClient::cram_md5("u", "p")).unwrap();
    assert!(matches!(
        s.send(&Command::Capa),
        Err(SessionError::MustWait { .. })
    ));
    assert_eq!(written(&mut s), "CAPA\r\nAUTH CRAM-MD5\r\n");
    // CAPA's listing, then AUTH's challenge: answered by the session.
    feed(
        &mut s,
        b"+OK\r\nPIPELINING\r\nSASL CRAM-MD5\r\n.\r\n+ PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+\r\n",
    )
    .unwrap();
    assert!(s.capabilities().pipelining());
    assert!(
        written(&mut s).ends_with("\r\n"),
        "the challenge is answered"
    );
    feed(&mut s, b"+OK in\r\n").unwrap();
    assert_eq!(s.state(), State::Transaction);
    // After login nothing is assumed any more: one command at a time
    // until this phase's CAPA, or the caller's memory, says otherwise.
    s.send(&Command::Capa).unwrap();
    assert!(matches!(
        s.send(&Command::Stat),
        Err(SessionError::MustWait { .. })
    ));
    feed(&mut s, b"+OK\r\nUIDL\r\n.\r\n").unwrap();
    s.assume_pipelining();
    s.send(&Command::Stat).unwrap();
    s.send(&Command::Uidl(None)).unwrap();
    s.send(&Command::Quit).unwrap();
    assert_eq!(written(&mut s), "CAPA\r\nSTAT\r\nUIDL\r\nQUIT\r\n");
}

/// STLS is never pipelined, not even behind CAPA to a pipelining server;
/// a CAPA listing without PIPELINING takes back what was assumed; without
/// pipelining a login waits for CAPA's answer as before.
#[test]
fn stls_goes_alone_and_the_servers_word_replaces_the_memory() {
    let mut s = ClientSession::default();
    feed(&mut s, b"+OK hi\r\n").unwrap();
    s.assume_pipelining();
    s.send(&Command::Capa).unwrap();
    assert!(matches!(
        s.send(&Command::Stls),
        Err(SessionError::MustWait { .. })
    ));
    feed(&mut s, b"+OK\r\nSTLS\r\nUSER\r\n.\r\n").unwrap();
    // The server no longer pipelines: CAPA then USER wait for each other.
    s.send(&Command::Capa).unwrap();
    assert!(matches!(
        s.send(&Command::User("u")),
        Err(SessionError::MustWait { .. })
    ));
    let mut plain = ClientSession::default();
    feed(&mut plain, b"+OK hi\r\n").unwrap();
    plain.send(&Command::Capa).unwrap();
    assert!(matches!(
        plain.send(&Command::User("u")),
        Err(SessionError::MustWait { .. })
    ));
}

/// USER and PASS in one flight to a pipelining server (as mpop sends
/// them); nothing after PASS; a refused USER fails the login with PASS's
/// answer read too.
#[test]
fn user_and_pass_go_together_to_a_pipelining_server() {
    let mut s = ClientSession::default();
    feed(&mut s, b"+OK hi\r\n").unwrap();
    s.assume_pipelining();
    s.send(&Command::Capa).unwrap();
    s.send(&Command::User("u")).unwrap();
    s.send(&Command::Pass("p")).unwrap();
    assert!(matches!(
        s.send(&Command::Capa),
        Err(SessionError::MustWait { .. })
    ));
    assert_eq!(written(&mut s), "CAPA\r\nUSER u\r\nPASS p\r\n");
    let (events, _) = feed(&mut s, b"+OK\r\nPIPELINING\r\n.\r\n+OK\r\n+OK in\r\n").unwrap();
    assert!(
        events.iter().any(|e| e.starts_with("PASS Ok")),
        "{events:?}"
    );
    assert_eq!(s.state(), State::Transaction);
    // Without pipelining PASS waits for USER's answer.
    let mut s = ClientSession::default();
    feed(&mut s, b"+OK hi\r\n").unwrap();
    s.send(&Command::User("u")).unwrap();
    assert!(s.send(&Command::Pass("p")).is_err());
    // A refused USER: PASS is refused too, and the session stays logged out.
    let mut s = ClientSession::default();
    feed(&mut s, b"+OK hi\r\n").unwrap();
    s.assume_pipelining();
    s.send(&Command::User("nobody")).unwrap();
    s.send(&Command::Pass("p")).unwrap();
    feed(&mut s, b"-ERR no such user\r\n-ERR no USER\r\n").unwrap();
    assert_eq!(s.state(), State::Authorization);
}
