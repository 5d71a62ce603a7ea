//! Property tests: every encoder against its parser, the body codec under
//! arbitrary splits, and no panic or unbounded buffering on arbitrary input.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::borrow::Cow;

use pop3_proto::frame::{BodyDecoder, DotStuffer};
use pop3_proto::server::{
    capability_line, encode_end, encode_listing_line, encode_status, parse_command, ServerAction,
    ServerMessage, ServerOptions, ServerSession,
};
use pop3_proto::{
    Capability, ClientSession, Command, Event, Expire, MsgNum, RespCode, SessionConfig, Status,
};
use proptest::prelude::*;

fn msg() -> impl Strategy<Value = MsgNum> {
    (1..=u32::MAX).prop_map(|n| MsgNum::new(n).unwrap())
}

/// Text for arguments: anything but CR, LF and NUL, non-empty.
const ARG: &str = "[^\r\n\u{0}]{1,24}";

#[derive(Debug, Clone)]
enum Owned {
    User(String),
    Pass(String),
    Apop(String, String),
    Auth(String, Option<Vec<u8>>),
    Simple(u8),
    List(Option<MsgNum>),
    Uidl(Option<MsgNum>),
    Retr(MsgNum),
    Dele(MsgNum),
    Top(MsgNum, u32),
    Lang(Option<String>),
}

impl Owned {
    fn command(&self) -> Command<'_> {
        match self {
            Owned::User(u) => Command::User(u),
            Owned::Pass(p) => Command::Pass(p),
            Owned::Apop(u, d) => Command::Apop { user: u, digest: d },
            Owned::Auth(m, ir) => Command::Auth {
                mechanism: m,
                initial_response: ir.as_deref().map(Cow::Borrowed),
            },
            Owned::Simple(i) => [
                Command::Stls,
                Command::Capa,
                Command::Stat,
                Command::Rset,
                Command::Noop,
                Command::Quit,
                Command::Utf8,
            ][usize::from(*i) % 7]
                .clone(),
            Owned::List(m) => Command::List(*m),
            Owned::Uidl(m) => Command::Uidl(*m),
            Owned::Retr(m) => Command::Retr(*m),
            Owned::Dele(m) => Command::Dele(*m),
            Owned::Top(m, l) => Command::Top { msg: *m, lines: *l },
            Owned::Lang(t) => Command::Lang(t.as_deref()),
        }
    }
}

fn command() -> impl Strategy<Value = Owned> {
    prop_oneof![
        ARG.prop_map(Owned::User),
        ARG.prop_map(Owned::Pass),
        (ARG, "[0-9a-f]{32}").prop_map(|(u, d)| Owned::Apop(u, d)),
        (
            "[A-Z0-9_-]{1,20}",
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64))
        )
            .prop_map(|(m, ir)| Owned::Auth(m, ir)),
        any::<u8>().prop_map(Owned::Simple),
        proptest::option::of(msg()).prop_map(Owned::List),
        proptest::option::of(msg()).prop_map(Owned::Uidl),
        msg().prop_map(Owned::Retr),
        msg().prop_map(Owned::Dele),
        (msg(), any::<u32>()).prop_map(|(m, l)| Owned::Top(m, l)),
        proptest::option::of("[a-zA-Z-]{1,12}").prop_map(Owned::Lang),
    ]
}

fn resp_code() -> impl Strategy<Value = RespCode> {
    proptest::collection::vec("[A-Z-]{1,8}", 1..4)
        .prop_map(|levels| RespCode::new(&levels.join("/")))
}

fn capability() -> impl Strategy<Value = Capability> {
    let user = any::<bool>();
    prop_oneof![
        Just(Capability::Top),
        Just(Capability::User),
        Just(Capability::RespCodes),
        Just(Capability::Pipelining),
        Just(Capability::Uidl),
        Just(Capability::Stls),
        Just(Capability::Lang),
        proptest::collection::vec("[A-Z0-9-]{1,12}", 0..5).prop_map(Capability::Sasl),
        (any::<u32>(), user)
            .prop_map(|(seconds, per_user)| Capability::LoginDelay { seconds, per_user }),
        (proptest::option::of(any::<u32>()), user).prop_map(|(d, per_user)| {
            Capability::Expire {
                policy: d.map_or(Expire::Never, Expire::Days),
                per_user,
            }
        }),
        user.prop_map(|user| Capability::Utf8 { user }),
        "[a-zA-Z0-9]([a-zA-Z0-9 .]{0,20}[a-zA-Z0-9])?".prop_map(Capability::Implementation),
        (
            "X-[A-Z]{1,8}",
            proptest::collection::vec("[a-z0-9]{1,6}", 0..3)
        )
            .prop_map(|(name, params)| Capability::Other { name, params }),
    ]
}

/// Feeds `wire` to a fresh logged-in session in pieces cut at `cuts`, and
/// returns the events described. Checks the buffered remainder never exceeds
/// the line cap.
fn run_split(
    session: &mut ClientSession,
    wire: &[u8],
    cuts: &[usize],
) -> Result<Vec<String>, pop3_proto::SessionError> {
    let mut events = Vec::new();
    let mut buffer = Vec::new();
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
    points.sort_unstable();
    points.push(wire.len());
    let mut from = 0;
    for to in points {
        buffer.extend_from_slice(&wire[from..to]);
        from = to;
        let (mut ev, used) = common::feed(session, &buffer)?;
        buffer.drain(..used);
        assert!(
            buffer.len() < session.config().max_line,
            "buffered {} bytes",
            buffer.len()
        );
        events.append(&mut ev);
    }
    // Merge body chunks split by the cuts.
    let mut merged: Vec<String> = Vec::new();
    for e in events {
        match (merged.last_mut(), e.strip_prefix("body ")) {
            (Some(last), Some(more)) if last.starts_with("body ") => last.push_str(more),
            _ => merged.push(e),
        }
    }
    Ok(merged)
}

fn logged_in() -> ClientSession {
    let mut s = ClientSession::default();
    common::feed(&mut s, b"+OK\r\n").unwrap();
    s.send(&Command::User("u")).unwrap();
    common::feed(&mut s, b"+OK\r\n").unwrap();
    s.send(&Command::Pass("p")).unwrap();
    common::feed(&mut s, b"+OK\r\n").unwrap();
    s.clear_output();
    s
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn commands_round_trip(owned in command()) {
        let cmd = owned.command();
        let mut wire = Vec::new();
        cmd.encode(&mut wire).unwrap();
        prop_assert!(wire.ends_with(b"\r\n"));
        prop_assert_eq!(memchr::memchr_iter(b'\n', &wire).count(), 1);
        let parsed = parse_command(&wire[..wire.len() - 2]).unwrap();
        prop_assert_eq!(parsed, cmd);
    }

    #[test]
    fn arguments_with_line_breaks_are_refused(prefix in ARG, bad in prop::sample::select(vec!['\r', '\n', '\0']), suffix in ARG) {
        let arg = format!("{prefix}{bad}{suffix}");
        let mut out = Vec::new();
        prop_assert!(Command::User(&arg).encode(&mut out).is_err());
        prop_assert!(Command::Pass(&arg).encode(&mut out).is_err());
        let apop = Command::Apop { user: &arg, digest: "00" };
        prop_assert!(apop.encode(&mut out).is_err());
        prop_assert!(out.is_empty());
    }

    #[test]
    fn status_lines_round_trip(
        ok in any::<bool>(),
        code in proptest::option::of(resp_code()),
        text in "([^\\[\r\n\u{0}][^\r\n\u{0}]{0,40})?",
        cuts in proptest::collection::vec(any::<usize>(), 0..4),
    ) {
        let status = if ok { Status::Ok } else { Status::Err };
        let mut wire = Vec::new();
        encode_status(status, code.as_ref(), text.as_bytes(), &mut wire).unwrap();
        let mut s = logged_in();
        s.send(&Command::Noop).unwrap();
        let ev = run_split(&mut s, &wire, &cuts).unwrap();
        let code_text = code.map(|c| format!(" {c}")).unwrap_or_default();
        prop_assert_eq!(ev, vec![format!("NOOP {status:?}{code_text}")]);
        // The text survives too.
        let mut s = logged_in();
        s.send(&Command::Noop).unwrap();
        let (_, event) = s.advance(&wire).unwrap();
        match event {
            Event::Reply(r) => prop_assert_eq!(r.text, text.as_bytes()),
            other => prop_assert!(false, "{:?}", other),
        }
    }

    #[test]
    fn listings_round_trip(
        entries in proptest::collection::vec((msg(), any::<u64>(), proptest::collection::vec(prop::num::u8::ANY.prop_filter("uid byte", |b| pop3_proto::is_uid_byte(*b)), 1..70)), 0..20),
        cuts in proptest::collection::vec(any::<usize>(), 0..6),
    ) {
        let mut list = Vec::new();
        let mut uidl = Vec::new();
        encode_status(Status::Ok, None, b"", &mut list).unwrap();
        encode_status(Status::Ok, None, b"", &mut uidl).unwrap();
        for (m, size, uid) in &entries {
            encode_listing_line(format!("{m} {size}").as_bytes(), &mut list).unwrap();
            let mut line = format!("{m} ").into_bytes();
            line.extend_from_slice(uid);
            encode_listing_line(&line, &mut uidl).unwrap();
        }
        encode_end(&mut list);
        encode_end(&mut uidl);
        let mut s = logged_in();
        s.send(&Command::List(None)).unwrap();
        let ev = run_split(&mut s, &list, &cuts).unwrap();
        let expected: Vec<String> = std::iter::once("LIST Ok".to_string())
            .chain(entries.iter().map(|(m, size, _)| format!("list {m} {size}")))
            .chain(std::iter::once("end LIST".to_string()))
            .collect();
        prop_assert_eq!(ev, expected);
        let mut s = logged_in();
        s.send(&Command::Uidl(None)).unwrap();
        let ev = run_split(&mut s, &uidl, &cuts).unwrap();
        let expected: Vec<String> = std::iter::once("UIDL Ok".to_string())
            .chain(entries.iter().map(|(m, _, uid)| format!("uid {m} {}", pop3_proto::escape::Escaped(uid))))
            .chain(std::iter::once("end UIDL".to_string()))
            .collect();
        prop_assert_eq!(ev, expected);
    }

    #[test]
    fn capabilities_round_trip(caps in proptest::collection::vec(capability(), 0..12)) {
        let mut wire = Vec::new();
        encode_status(Status::Ok, None, b"", &mut wire).unwrap();
        for cap in &caps {
            encode_listing_line(capability_line(cap).as_bytes(), &mut wire).unwrap();
        }
        encode_end(&mut wire);
        let mut s = logged_in();
        s.send(&Command::Capa).unwrap();
        run_split(&mut s, &wire, &[]).unwrap();
        let got: Vec<Capability> = s.capabilities().iter().cloned().collect();
        prop_assert_eq!(got, caps.clone());
        // Kept as text and read back (a client's memory of the server).
        for cap in &caps {
            prop_assert_eq!(&Capability::parse(capability_line(cap).as_bytes()), cap);
        }
    }

    #[test]
    fn bodies_survive_stuffing_and_any_split(
        body in proptest::collection::vec(prop_oneof![Just(b'.'), Just(b'\r'), Just(b'\n'), any::<u8>()], 0..400),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut wire = Vec::new();
        let mut stuffer = DotStuffer::new();
        // Stuff in the same arbitrary pieces, to test the stuffer's state too.
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (body.len() + 1)).collect();
        points.sort_unstable();
        points.push(body.len());
        let mut from = 0;
        for &to in &points {
            stuffer.push(&body[from..to], &mut wire);
            from = to;
        }
        stuffer.finish(&mut wire);
        wire.extend_from_slice(b"+OK next");

        let mut decoder = BodyDecoder::new();
        let mut out = Vec::new();
        let mut used = 0;
        let mut done = false;
        let mut from = 0;
        for to in points.iter().map(|p| p * wire.len() / body.len().max(1)).chain([wire.len()]) {
            let to = to.min(wire.len()).max(from);
            let (n, end) = decoder.decode_into(&wire[used..to], &mut out).unwrap();
            used += n;
            from = to;
            if end { done = true; break; }
        }
        prop_assert!(done);
        prop_assert_eq!(&wire[used..], b"+OK next");
        // Bodies are lines: the server role ends an unterminated last line.
        let mut expected = body.clone();
        if !body.is_empty() && body.last() != Some(&b'\n') {
            expected.extend_from_slice(b"\r\n");
        }
        prop_assert_eq!(out, expected);
    }

    #[test]
    fn client_never_panics_or_overbuffers(
        wire in proptest::collection::vec(prop_oneof![Just(b'.'), Just(b'\r'), Just(b'\n'), Just(b'+'), Just(b' '), any::<u8>()], 0..600),
        prefix in prop::sample::select(vec![&b""[..], b"+OK\r\n", b"+OK 1 2\r\n", b"-ERR [SYS/TEMP] x\r\n", b"+ \r\n"]),
        which in 0u8..6,
        cuts in proptest::collection::vec(any::<usize>(), 0..6),
    ) {
        let config = SessionConfig { max_line: 128, ..SessionConfig::default() };
        let mut s = ClientSession::new(config);
        common::feed(&mut s, b"+OK <1.2@x>\r\n").unwrap();
        let one = MsgNum::new(1).unwrap();
        match which {
            0 => s.send(&Command::Capa).unwrap(),
            1 => s.authenticate(pop3_proto::sasl::SaslClient::login("u", "p")).unwrap(),
            2 => s.send(&Command::User("u")).unwrap(),
            _ => {
                s = logged_in();
                let cmd = [Command::Retr(one), Command::Uidl(None), Command::List(None), Command::Stat][usize::from(which % 4)].clone();
                s.send(&cmd).unwrap();
            }
        }
        let mut input = prefix.to_vec();
        input.extend_from_slice(&wire);
        // Errors are fine; panics and unbounded buffering are not.
        let _ = run_split(&mut s, &input, &cuts);
        let _ = s.handle_eof();
    }

    #[test]
    fn server_role_never_panics(line in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_command(&line);
        let mut server = ServerSession::new(ServerOptions::default(), vec![], "<1@x>");
        let mut out = Vec::new();
        let mut input = line.clone();
        input.extend_from_slice(b"\r\n");
        let _ = server.handle(&input, &mut out);
    }

    /// Where a body chunk lies, as `Event::Body` promises: a chunk taken
    /// from the input ends at the used count (drivers borrow it again from
    /// their buffer there); the only others are "." and ".\r".
    #[test]
    fn body_chunks_end_where_the_used_bytes_end(
        body in proptest::collection::vec(prop_oneof![Just(b'.'), Just(b'\r'), Just(b'\n'), any::<u8>()], 0..400),
        cuts in proptest::collection::vec(1usize..40, 1..40),
    ) {
        let mut wire = b"+OK hi\r\n+OK\r\n+OK\r\n+OK\r\n".to_vec();
        wire.extend_from_slice(&body);
        wire.extend_from_slice(b"\r\n.\r\n");
        let mut client = ClientSession::default();
        let mut pending = Vec::new();
        let (mut fed, mut cut, mut sent_retr) = (0, 0, false);
        let mut received = Vec::new();
        'feed: loop {
            let size = cuts[cut % cuts.len()];
            cut += 1;
            let more = &wire[fed..(fed + size).min(wire.len())];
            fed += more.len();
            pending.extend_from_slice(more);
            loop {
                let (used, event) = client.advance(&pending).unwrap();
                let mut done = false;
                match event {
                    Event::NeedInput => {
                        pending.drain(..used);
                        break;
                    }
                    Event::Greeting(_) => client.send(&Command::User("u")).unwrap(),
                    Event::Reply(r) if r.command.name() == "USER" => client.send(&Command::Pass("p")).unwrap(),
                    Event::Reply(r) if r.command.name() == "PASS" && !sent_retr => {
                        sent_retr = true;
                        client.send(&Command::Retr(MsgNum::new(1).unwrap())).unwrap();
                    }
                    Event::Body(chunk) => {
                        let len = chunk.len();
                        let ends_at_used = used >= len && &pending[used - len..used] == chunk;
                        prop_assert!(
                            ends_at_used || chunk == b"." || chunk == b".\r",
                            "chunk {:?} does not end at {} in {:?}", chunk, used, pending
                        );
                        if len > 2 {
                            prop_assert!(std::ptr::eq(chunk.as_ptr(), pending[used - len..].as_ptr()));
                        }
                        received.extend_from_slice(chunk);
                    }
                    Event::End(_) => done = true,
                    _ => {}
                }
                pending.drain(..used);
                client.clear_output();
                if done {
                    break 'feed;
                }
            }
            prop_assert!(fed < wire.len() || !pending.is_empty(), "the body never ended");
        }
        // Dot-unstuffing is the decoder's own property (tested above);
        // here only where the chunks lie matters.
        prop_assert!(received.len() <= body.len() + 2);
    }

    /// The client against the server role, in memory: every message comes
    /// back byte for byte, through pipelined RETRs.
    #[test]
    fn client_fetches_exactly_what_the_server_holds(
        bodies in proptest::collection::vec(
            proptest::collection::vec(prop_oneof![Just(b'.'), Just(b'\r'), Just(b'\n'), any::<u8>()], 0..300)
                .prop_map(|mut b| { b.extend_from_slice(b"\r\n"); b }),
            1..8),
    ) {
        let messages: Vec<ServerMessage> = bodies.iter().enumerate()
            .map(|(i, b)| ServerMessage { uid: format!("uid-{i}"), content: b.clone() })
            .collect();
        let mut server = ServerSession::new(ServerOptions::default(), messages, "<1@x>");
        let mut to_client = Vec::new();
        server.greeting(&mut to_client);
        let mut client = ClientSession::default();
        let mut fetched: Vec<Vec<u8>> = Vec::new();
        let mut next = 1u32;
        let mut step = 0;
        loop {
            step += 1;
            prop_assert!(step < 10_000);
            let mut used = 0;
            loop {
                let (n, event) = client.advance(&to_client[used..]).unwrap();
                used += n;
                match event {
                    Event::NeedInput => break,
                    Event::Greeting(_) => client.send(&Command::User("user")).unwrap(),
                    Event::Reply(r) => {
                        prop_assert!(r.is_ok(), "{:?}", r);
                        match r.command.name() {
                            "USER" => client.send(&Command::Pass("password")).unwrap(),
                            "PASS" => client.send(&Command::Capa).unwrap(),
                            "RETR" => fetched.push(Vec::new()),
                            _ => {}
                        }
                    }
                    Event::Body(c) => fetched.last_mut().unwrap().extend_from_slice(c),
                    _ => {}
                }
            }
            to_client.drain(..used);
            if client.state() == pop3_proto::State::Transaction && client.capabilities().pipelining() {
                while client.room() > 0 && (next as usize) <= bodies.len() {
                    client.send(&Command::Retr(MsgNum::new(next).unwrap())).unwrap();
                    next += 1;
                }
                if (next as usize) > bodies.len() && client.pending() == 0 {
                    client.send(&Command::Quit).unwrap();
                }
            }
            let out = client.output().to_vec();
            client.clear_output();
            let mut used = 0;
            while used < out.len() {
                let (n, action) = server.handle(&out[used..], &mut to_client).unwrap();
                prop_assert!(n > 0);
                used += n;
                if action == ServerAction::Close {
                    break;
                }
            }
            if client.state() == pop3_proto::State::Closed {
                break;
            }
        }
        prop_assert_eq!(fetched, bodies);
    }
}
