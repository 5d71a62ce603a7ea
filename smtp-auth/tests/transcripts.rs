//! Whole sessions against canned server bytes, each fed whole and cut into
//! reads of several sizes: what the client writes, the events and the
//! outcome must not depend on how the bytes arrive.

use pop3_proto::sasl::SaslClient;
use smtp_auth::{
    reply::MAX_LINE, Config, Envelope, Error, Event, RefusalKind, ReplyError, SmtpSession, State,
    Step,
};

/// What the test driver does at each event.
#[derive(Clone)]
struct Plan {
    starttls: bool,
    sasl: Option<SaslClient>,
    envelope: Option<Envelope>,
    message: Vec<u8>,
}

impl Default for Plan {
    fn default() -> Self {
        Self {
            starttls: false,
            sasl: None,
            envelope: Some(Envelope::new("a@example.org", ["b@example.net"])),
            message: b"Subject: t\r\n\r\nbody\r\n".to_vec(),
        }
    }
}

#[derive(Debug)]
struct Outcome {
    /// Everything written, in order.
    wire: String,
    /// Each write (what the driver wrote before reading again).
    writes: Vec<String>,
    events: Vec<Event>,
    /// The first error from `advance`, a call, or the end of input.
    error: Option<Error>,
    state: State,
}

fn act(session: &mut SmtpSession, event: &Event, plan: &mut Plan) -> Result<(), Error> {
    match event {
        Event::Ready if plan.starttls && !session.is_tls() => session.starttls(),
        Event::StartTls => session.tls_established(),
        Event::Ready if plan.sasl.is_some() => match plan.sasl.take() {
            Some(sasl) => session.authenticate(sasl),
            None => Ok(()),
        },
        Event::Ready | Event::Authenticated => match plan.envelope.take() {
            Some(envelope) => session.send_mail(&envelope),
            None => session.quit(),
        },
        Event::SendData => {
            for chunk in plan.message.chunks(5) {
                session.write_data(chunk)?;
            }
            session.finish_data()
        }
        Event::Sent(_) | Event::Failed(_) => session.quit(),
        Event::NeedInput | Event::Closed => Ok(()),
    }
}

/// Runs a session over `server` delivered in reads of `read` bytes.
/// `server` holds what the server sends before it waits for the client
/// (STARTTLS's 220 ends one: the server waits for the handshake).
fn run_with(mut session: SmtpSession, server: &[&str], read: usize, plan: &Plan) -> Outcome {
    let mut plan = plan.clone();
    let mut out = Outcome {
        wire: String::new(),
        writes: Vec::new(),
        events: Vec::new(),
        error: None,
        state: State::Greeting,
    };
    let mut buffer = Vec::new();
    let flush = |session: &mut SmtpSession, out: &mut Outcome| {
        if !session.output().is_empty() {
            let text = String::from_utf8_lossy(session.output()).into_owned();
            out.wire.push_str(&text);
            out.writes.push(text);
            session.clear_output();
        }
    };
    let reads = server
        .iter()
        .flat_map(|flight| flight.as_bytes().chunks(read.max(1)));
    'reads: for piece in reads {
        buffer.extend_from_slice(piece);
        loop {
            let (used, event) = match session.advance(&buffer) {
                Ok(step) => step,
                Err(e) => {
                    out.error = Some(e);
                    break 'reads;
                }
            };
            buffer.drain(..used);
            if event == Event::NeedInput {
                flush(&mut session, &mut out);
                break;
            }
            if let Err(e) = act(&mut session, &event, &mut plan) {
                out.error = Some(e);
                break 'reads;
            }
            let closed = event == Event::Closed;
            out.events.push(event);
            if closed {
                break 'reads;
            }
        }
    }
    flush(&mut session, &mut out);
    if out.error.is_none() {
        out.error = session.handle_eof().err();
    }
    out.state = session.state();
    out
}

/// Runs the transcript whole and cut into reads of 1, 2, 3, 7 and 64 bytes;
/// the wire, the events and the error must be the same each time.
fn run(server: &[&str], plan: &Plan) -> Outcome {
    let whole = run_with(session(), server, usize::MAX, plan);
    for read in [1, 2, 3, 7, 64] {
        let cut = run_with(session(), server, read, plan);
        assert_eq!(cut.wire, whole.wire, "reads of {read}");
        assert_eq!(cut.events, whole.events, "reads of {read}");
        assert_eq!(cut.error, whole.error, "reads of {read}");
    }
    whole
}

#[allow(clippy::unwrap_used)]
fn session() -> SmtpSession {
    SmtpSession::new(Config::default()).unwrap()
}

fn sent(events: &[Event]) -> Option<&smtp_auth::Delivery> {
    events.iter().find_map(|e| match e {
        Event::Sent(d) => Some(d),
        _ => None,
    })
}

fn failed(events: &[Event]) -> Option<&Error> {
    events.iter().find_map(|e| match e {
        Event::Failed(e) => Some(e),
        _ => None,
    })
}

const GREETING: &str = "220 mx.example.org ESMTP\r\n";

#[test]
fn plain_submission_one_command_at_a_time() {
    let server = format!(
        "{GREETING}250-mx.example.org\r\n250 8BITMIME\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n\
         354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Ok: queued as X\r\n221 2.0.0 Bye\r\n"
    );
    let out = run(&[&server], &Plan::default());
    assert_eq!(out.error, None);
    assert_eq!(out.state, State::Closed);
    // Read a byte at a time, each command waits for the previous reply.
    let slow = run_with(session(), &[&server], 1, &Plan::default());
    assert_eq!(
        slow.writes,
        [
            "EHLO localhost\r\n",
            "MAIL FROM:<a@example.org>\r\n",
            "RCPT TO:<b@example.net>\r\n",
            "DATA\r\n",
            "Subject: t\r\n\r\nbody\r\n.\r\n",
            "QUIT\r\n",
        ]
    );
    let delivery = sent(&out.events).unwrap();
    assert_eq!(delivery.accepted().collect::<Vec<_>>(), ["b@example.net"]);
    assert_eq!(delivery.text, "Ok: queued as X");
    assert_eq!(out.events.last(), Some(&Event::Closed));
}

#[test]
fn pipelined_mail_rcpt_data_in_one_write() {
    let server = format!(
        "{GREETING}250-mx\r\n250-PIPELINING\r\n250 SIZE\r\n250 Ok\r\n250 Ok\r\n250 Ok\r\n354 Go\r\n\
         250 Ok\r\n221 Bye\r\n"
    );
    let plan = Plan {
        envelope: Some(Envelope::new("a@x", ["b@y", "c@z"]).with_size(20)),
        ..Plan::default()
    };
    let out = run_with(session(), &[&server], 1, &plan);
    assert_eq!(out.error, None);
    assert_eq!(
        out.writes[1],
        "MAIL FROM:<a@x> SIZE=20\r\nRCPT TO:<b@y>\r\nRCPT TO:<c@z>\r\nDATA\r\n"
    );
    let out = run(&[&server], &plan);
    assert_eq!(sent(&out.events).unwrap().accepted().count(), 2);
}

#[test]
fn partial_recipient_refusal_is_per_recipient() {
    let server = format!(
        "{GREETING}250-mx\r\n250 PIPELINING\r\n250 Ok\r\n550 5.1.1 <b@y>: no such user\r\n\
         250 Ok\r\n452 4.2.2 Mailbox full\r\n354 Go\r\n250 Ok\r\n221 Bye\r\n"
    );
    let plan = Plan {
        envelope: Some(Envelope::new("a@x", ["b@y", "c@z", "d@w"])),
        ..Plan::default()
    };
    let out = run(&[&server], &plan);
    assert_eq!(out.error, None);
    let delivery = sent(&out.events).unwrap();
    assert_eq!(delivery.accepted().collect::<Vec<_>>(), ["c@z"]);
    let refused: Vec<_> = delivery
        .refused()
        .map(|(a, r)| (a, r.code, r.kind, r.is_transient()))
        .collect();
    assert_eq!(
        refused,
        [
            ("b@y", 550, RefusalKind::Recipient, false),
            ("d@w", 452, RefusalKind::Recipient, true)
        ]
    );
    assert!(delivery.recipients[0]
        .refusal
        .as_ref()
        .unwrap()
        .text
        .contains("no such user"));
}

#[test]
fn every_recipient_refused_resets_and_reports_them() {
    // Pipelined: DATA is refused, the session sends RSET.
    let server = format!(
        "{GREETING}250-mx\r\n250 PIPELINING\r\n250 Ok\r\n550 5.1.1 no\r\n554 5.5.1 No valid recipients\r\n\
         250 2.0.0 Ok\r\n221 Bye\r\n"
    );
    let out = run(&[&server], &Plan::default());
    assert_eq!(out.error, None);
    assert!(
        out.wire.contains("DATA\r\nRSET\r\nQUIT\r\n"),
        "{}",
        out.wire
    );
    let error = failed(&out.events).unwrap();
    assert!(matches!(error, Error::RecipientsRefused(r) if r.len() == 1));
    assert_eq!(error.kind(), "recipient");
    assert!(error.to_string().contains("<b@example.net>: 550 5.1.1 no"));
    // One at a time: DATA is never sent.
    let server =
        format!("{GREETING}250 mx\r\n250 Ok\r\n450 4.1.1 try later\r\n250 Ok\r\n221 Bye\r\n");
    let out = run(&[&server], &Plan::default());
    assert!(!out.wire.contains("DATA"), "{}", out.wire);
    assert!(out.wire.ends_with("RSET\r\nQUIT\r\n"));
    assert!(failed(&out.events).unwrap().is_transient());
}

#[test]
fn starttls_then_ehlo_again_with_new_capabilities() {
    let before = format!("{GREETING}250-mx\r\n250-STARTTLS\r\n250 SIZE 100\r\n");
    let server = [
        before.as_str(),
        "220 2.0.0 Ready to start TLS\r\n",
        "250-mx\r\n250-AUTH PLAIN\r\n250 SIZE 200\r\n235 2.7.0 Accepted\r\n221 Bye\r\n",
    ];
    let plan = Plan {
        starttls: true,
        sasl: Some(SaslClient::plain("u", "p").unwrap()),
        envelope: None,
        ..Plan::default()
    };
    let out = run(&server, &plan);
    assert_eq!(out.error, None);
    assert_eq!(
        out.wire,
        "EHLO localhost\r\nSTARTTLS\r\nEHLO localhost\r\nAUTH PLAIN AHUAcA==\r\nQUIT\r\n"
    );
    assert_eq!(
        out.events,
        [
            Event::Ready,
            Event::StartTls,
            Event::Ready,
            Event::Authenticated,
            Event::Closed
        ]
    );
    // Capabilities are gone between the handshake and the new EHLO.
    let mut s = session();
    let wire = format!("{GREETING}250-mx\r\n250 STARTTLS\r\n220 go\r\n250-mx\r\n250 SIZE 200\r\n");
    let (n, _) = s.advance(wire.as_bytes()).unwrap();
    s.starttls().unwrap();
    let rest = &wire.as_bytes()[n..];
    let (m, ev) = s.advance(&rest[..8]).unwrap();
    assert_eq!((m, ev), (8, Event::StartTls));
    s.tls_established().unwrap();
    assert!(s.capabilities().is_none() && s.is_tls());
    let (_, ev) = s.advance(&rest[8..]).unwrap();
    assert_eq!(ev, Event::Ready);
    assert_eq!(s.capabilities().unwrap().size_limit, Some(200));
    assert!(s.starttls().is_err());
}

#[test]
fn starttls_injection_is_refused() {
    // The injected line arrives in the same read as the 220.
    let server =
        format!("{GREETING}250-mx\r\n250 STARTTLS\r\n220 Ready\r\n250-mx\r\n250 AUTH PLAIN\r\n");
    let plan = Plan {
        starttls: true,
        ..Plan::default()
    };
    let out = run_with(session(), &[&server], usize::MAX, &plan);
    assert!(
        matches!(&out.error, Some(Error::StartTlsInjection { bytes }) if bytes.starts_with("250-mx")),
        "{:?}",
        out.error
    );
    assert_eq!(out.error.as_ref().unwrap().kind(), "tls");
    assert_eq!(out.wire, "EHLO localhost\r\nSTARTTLS\r\n");
    assert_eq!(out.state, State::Closed);
    // Or in a later read, before the driver reports the handshake.
    let mut s = session();
    s.advance(format!("{GREETING}250-mx\r\n250 STARTTLS\r\n").as_bytes())
        .unwrap();
    s.starttls().unwrap();
    s.clear_output();
    assert_eq!(s.advance(b"220 go\r\n").unwrap(), (8, Event::StartTls));
    assert!(matches!(
        s.advance(b"250 x\r\n"),
        Err(Error::StartTlsInjection { .. })
    ));
    assert!(s.output().is_empty() && s.is_closed());
}

#[test]
fn starttls_not_offered_or_refused() {
    let mut s = session();
    let (_, ev) = s
        .advance(format!("{GREETING}250 mx\r\n").as_bytes())
        .unwrap();
    assert_eq!(ev, Event::Ready);
    s.clear_output();
    assert_eq!(s.starttls(), Err(Error::StartTlsNotOffered));
    assert!(s.output().is_empty());
    assert_eq!(s.state(), State::Ready);
    // Refused: the session ends, no plaintext fallback.
    let server = format!("{GREETING}250-mx\r\n250 STARTTLS\r\n454 4.7.0 TLS not available\r\n");
    let plan = Plan {
        starttls: true,
        ..Plan::default()
    };
    let out = run(&[&server], &plan);
    assert!(
        matches!(&out.error, Some(Error::Refused(r)) if r.step == Step::StartTls && r.is_transient())
    );
    assert_eq!(out.state, State::Closed);
}

#[test]
fn auth_plain_initial_response_too_long_goes_after_334() {
    let password = "p".repeat(400);
    let server =
        format!("{GREETING}250-mx\r\n250 AUTH PLAIN\r\n334 \r\n235 2.7.0 Ok\r\n221 Bye\r\n");
    let plan = Plan {
        sasl: Some(SaslClient::plain("user", &password).unwrap()),
        envelope: None,
        ..Plan::default()
    };
    let out = run(&[&server], &plan);
    assert_eq!(out.error, None);
    let lines: Vec<&str> = out.wire.split("\r\n").collect();
    assert_eq!(lines[1], "AUTH PLAIN");
    assert!(lines[2].len() > 500 && lines[2].starts_with("AHVzZXIAcH"));
    assert!(out.events.contains(&Event::Authenticated));
}

#[test]
fn auth_login() {
    let server = format!(
        "{GREETING}250-mx\r\n250 AUTH=LOGIN\r\n334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n\
         235 2.7.0 Authentication successful\r\n221 Bye\r\n"
    );
    let plan = Plan {
        sasl: Some(SaslClient::login("tim", "secret")),
        envelope: None,
        ..Plan::default()
    };
    let out = run(&[&server], &plan);
    assert_eq!(out.error, None);
    assert_eq!(
        out.wire,
        "EHLO localhost\r\nAUTH LOGIN\r\ndGlt\r\nc2VjcmV0\r\nQUIT\r\n"
    );
}

#[test]
fn auth_cram_md5_rfc2195() {
    let server = format!(
        "{GREETING}250-mx\r\n250 AUTH CRAM-MD5\r\n\
         334 PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+\r\n235 Ok\r\n221 Bye\r\n"
    );
    let plan = Plan {
        sasl: Some(SaslClient::cram_md5("tim", "tanstaaftanstaaf")),
        envelope: None,
        ..Plan::default()
    };
    let out = run(&[&server], &plan);
    assert_eq!(out.error, None);
    assert!(out
        .wire
        .contains("AUTH CRAM-MD5\r\ndGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw\r\n"));
}

#[test]
fn auth_refusals_are_typed_and_leave_the_session_usable() {
    let server = format!(
        "{GREETING}250-mx\r\n250 AUTH PLAIN\r\n535 5.7.8 Authentication failed\r\n221 Bye\r\n"
    );
    let plan = Plan {
        sasl: Some(SaslClient::plain("u", "wrong").unwrap()),
        envelope: None,
        ..Plan::default()
    };
    let out = run(&[&server], &plan);
    assert_eq!(out.error, None);
    let error = failed(&out.events).unwrap();
    assert_eq!((error.kind(), error.is_transient()), ("auth", false));
    assert_eq!(
        error.refusal().map(|r| r.kind),
        Some(RefusalKind::CredentialsRejected)
    );
    assert!(out.wire.ends_with("QUIT\r\n"));

    let server = format!(
        "{GREETING}250-mx\r\n250 AUTH PLAIN\r\n\
         534-5.7.9 Application-specific password required. Learn more at\r\n\
         534 5.7.9 https://support.google.com/mail/?p=InvalidSecondFactor\r\n221 Bye\r\n"
    );
    let plan = Plan {
        sasl: Some(SaslClient::plain("u", "p").unwrap()),
        envelope: None,
        ..Plan::default()
    };
    let out = run(&[&server], &plan);
    let error = failed(&out.events).unwrap();
    assert_eq!(error.kind(), "app-password");
    let refusal = error.refusal().unwrap();
    assert_eq!(
        refusal.enhanced.map(|e| e.to_string()).as_deref(),
        Some("5.7.9")
    );
    assert!(
        refusal.text.contains("?p=InvalidSecondFactor"),
        "{}",
        refusal.text
    );
}

#[test]
fn auth_mechanism_not_offered_and_bad_challenge_cancelled() {
    let mut s = session();
    s.advance(format!("{GREETING}250-mx\r\n250 AUTH LOGIN\r\n").as_bytes())
        .unwrap();
    s.clear_output();
    let e = s.authenticate(SaslClient::cram_md5("u", "p")).unwrap_err();
    assert!(
        matches!(&e, Error::MechanismNotOffered { mechanism: "CRAM-MD5", offered } if offered == "LOGIN")
    );
    assert!(s.output().is_empty());

    let server = format!(
        "{GREETING}250-mx\r\n250 AUTH LOGIN\r\n334 !!notbase64\r\n501 5.7.0 cancelled\r\n221 Bye\r\n"
    );
    let plan = Plan {
        sasl: Some(SaslClient::login("u", "p")),
        envelope: None,
        ..Plan::default()
    };
    let out = run(&[&server], &plan);
    assert_eq!(out.error, None);
    assert!(
        out.wire.contains("AUTH LOGIN\r\n*\r\nQUIT\r\n"),
        "{}",
        out.wire
    );
    assert!(matches!(failed(&out.events), Some(Error::Sasl(_))));
}

#[test]
fn size_is_checked_before_sending_and_552_is_too_big() {
    let mut s = session();
    s.advance(format!("{GREETING}250-mx\r\n250 SIZE 1000\r\n").as_bytes())
        .unwrap();
    s.clear_output();
    let e = s
        .send_mail(&Envelope::new("a@x", ["b@y"]).with_size(1001))
        .unwrap_err();
    assert_eq!(
        e,
        Error::TooBig {
            size: 1001,
            limit: 1000
        }
    );
    assert_eq!((e.kind(), e.is_transient()), ("too-big", false));
    assert!(s.output().is_empty());
    assert_eq!(s.state(), State::Ready);

    // Size unknown: the server refuses after the dot.
    let server = format!(
        "{GREETING}250-mx\r\n250 SIZE 1000\r\n250 Ok\r\n250 Ok\r\n354 Go\r\n\
         552 5.3.4 Message size exceeds fixed limit\r\n221 Bye\r\n"
    );
    let out = run(&[&server], &Plan::default());
    let error = failed(&out.events).unwrap();
    assert_eq!(error.kind(), "too-big");
    assert_eq!(
        error.refusal().map(|r| r.kind),
        Some(RefusalKind::TooBig { limit: Some(1000) })
    );
}

#[test]
fn service_closing_mid_session_is_fatal_and_transient() {
    let server = format!(
        "{GREETING}250-mx\r\n250 PIPELINING\r\n421 4.7.0 Try again later, closing connection.\r\n"
    );
    let out = run(&[&server], &Plan::default());
    let error = out.error.unwrap();
    assert!(error.is_transient());
    assert_eq!(
        error.refusal().map(|r| (r.step, r.code)),
        Some((Step::Mail, 421))
    );
    assert!(error.to_string().contains("Try again later"));
    assert_eq!(out.state, State::Closed);
    // Unsolicited, while idle.
    let mut s = session();
    s.advance(format!("{GREETING}250 mx\r\n").as_bytes())
        .unwrap();
    let e = s.advance(b"421 4.4.2 idle timeout\r\n").unwrap_err();
    assert!(e.is_transient() && s.is_closed());
}

#[test]
fn sending_limit() {
    let server = format!(
        "{GREETING}250 mx\r\n550 5.4.5 Daily user sending quota exceeded. https://x\r\n221 Bye\r\n"
    );
    let out = run(&[&server], &Plan::default());
    let error = failed(&out.events).unwrap();
    assert_eq!(error.kind(), "limit");
    assert!(!out.wire.contains("RCPT"));
}

#[test]
fn a_reply_line_that_never_ends_is_bounded() {
    let mut s = session();
    let mut buffer = Vec::new();
    let mut error = None;
    for _ in 0..10_000 {
        buffer.extend_from_slice(b"220 aaaaaaaaaaaaaaa");
        match s.advance(&buffer) {
            Ok((used, _)) => {
                buffer.drain(..used);
            }
            Err(e) => {
                error = Some(e);
                break;
            }
        }
        assert!(buffer.len() < MAX_LINE + 20);
    }
    assert!(matches!(
        error,
        Some(Error::Reply {
            during: Step::Greeting,
            error: ReplyError::LineTooLong {
                limit: MAX_LINE,
                ..
            }
        })
    ));
    assert_eq!(error.map(|e| e.kind()), Some("protocol"));
}

#[test]
fn greeting_refused_and_protocol_errors() {
    let out = run(&["554 5.3.2 No SMTP service here\r\n"], &Plan::default());
    let error = out.error.unwrap();
    assert_eq!((error.kind(), error.is_transient()), ("connect", false));
    let out = run(&["230 hm\r\n"], &Plan::default());
    assert!(matches!(
        out.error,
        Some(Error::UnexpectedReply {
            during: Step::Greeting,
            ..
        })
    ));
    let out = run(&["+OK POP3\r\n"], &Plan::default());
    assert!(matches!(
        out.error,
        Some(Error::Reply {
            error: ReplyError::BadLine { .. },
            ..
        })
    ));
    // Cut off mid-session.
    let out = run(&[&format!("{GREETING}250-mx\r\n250-SI")], &Plan::default());
    assert_eq!(out.error, Some(Error::UnexpectedEof { during: Step::Ehlo }));
    assert!(out.error.unwrap().is_transient());
    // A reply nobody asked for.
    let mut s = session();
    s.advance(format!("{GREETING}250 mx\r\n").as_bytes())
        .unwrap();
    assert!(matches!(
        s.advance(b"250 surprise\r\n"),
        Err(Error::UnexpectedData { .. })
    ));
    assert_eq!(s.advance(b""), Err(Error::Closed));
}

#[test]
fn arguments_are_checked_before_anything_is_written() {
    let mut s = session();
    s.advance(format!("{GREETING}250-mx\r\n250 SIZE\r\n").as_bytes())
        .unwrap();
    s.clear_output();
    let bad = |from: &str, to: &str| Envelope::new(from, [to]);
    let cases = [
        (bad("a@x\r\nRSET", "b@y"), "config"),
        (bad("a@x", "b@y\0"), "config"),
        (bad("<a@x>", "b@y"), "config"),
        (bad("a@x", "b @y"), "config"),
        (bad("a@x", ""), "config"),
        (Envelope::new("a@x", Vec::<String>::new()), "config"),
        (bad("a@x", "b@y").with_eight_bit(true), "server"),
        (bad("ä@x", "b@y"), "server"),
    ];
    for (envelope, kind) in cases {
        let e = s.send_mail(&envelope).unwrap_err();
        assert_eq!(e.kind(), kind, "{envelope:?}: {e}");
        assert!(s.output().is_empty());
    }
    assert!(matches!(
        s.send_mail(&bad("a@x\r", "b@y")),
        Err(Error::Argument(smtp_auth::ArgumentError::ForbiddenByte {
            byte: "CR",
            ..
        }))
    ));
    // The null reverse-path is fine.
    s.send_mail(&bad("", "b@y")).unwrap();
    assert_eq!(s.output(), b"MAIL FROM:<>\r\n");
    assert!(SmtpSession::new(Config {
        client_name: "a b".into()
    })
    .is_err());
    assert!(SmtpSession::new(Config {
        client_name: "x\r\n".into()
    })
    .is_err());
}

#[test]
fn eight_bit_and_smtputf8_parameters() {
    let mut s = session();
    s.advance(format!("{GREETING}250-mx\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n").as_bytes())
        .unwrap();
    s.clear_output();
    s.send_mail(&Envelope::new("ä@x", ["b@y"]).with_eight_bit(true))
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(s.output()),
        "MAIL FROM:<ä@x> BODY=8BITMIME SMTPUTF8\r\n"
    );
    // Calls out of turn leave the session as it was.
    assert!(matches!(s.quit(), Err(Error::IllegalCall { .. })));
    assert!(matches!(s.write_data(b"x"), Err(Error::IllegalCall { .. })));
}

#[test]
fn xoauth2_error_challenge_gets_an_empty_line() {
    let server = format!(
        "{GREETING}250-mx\r\n250 AUTH XOAUTH2\r\n334 \r\n334 eyJzdGF0dXMiOiI0MDAifQ==\r\n\
         535 5.7.8 Username and Password not accepted\r\n221 Bye\r\n"
    );
    let plan = Plan {
        sasl: Some(SaslClient::xoauth2("u", "tok").unwrap()),
        envelope: None,
        ..Plan::default()
    };
    let out = run(&[&server], &plan);
    assert_eq!(out.error, None);
    assert!(
        out.wire
            .contains("AUTH XOAUTH2\r\ndXNlcj11AWF1dGg9QmVhcmVyIHRvawEB\r\n\r\nQUIT\r\n"),
        "{}",
        out.wire
    );
    assert_eq!(failed(&out.events).map(Error::kind), Some("auth"));
}

#[test]
fn debug_shows_no_credentials() {
    let mut s = session();
    s.advance(format!("{GREETING}250-mx\r\n250 AUTH PLAIN\r\n").as_bytes())
        .unwrap();
    let secret = "p".repeat(600);
    s.authenticate(SaslClient::plain("u", &secret).unwrap())
        .unwrap();
    let shown = format!("{s:?}");
    assert!(!shown.contains("ppp") && !shown.contains("cHBw"), "{shown}");
}
