//! Property tests: replies survive encode -> parse across any split of the
//! input; DATA encoding survives stuff -> unstuff (pop3-proto's body
//! decoder) across any split, with line endings normalised to CRLF.

use pop3_proto::frame::BodyDecoder;
use proptest::prelude::*;
use smtp_auth::{reply::MAX_LINES, DataEncoder, Reply, ReplyParser};

fn reply_strategy() -> impl Strategy<Value = Reply> {
    let code = (2u16..=5, 0u16..=5, 0u16..=9).prop_map(|(a, b, c)| a * 100 + b * 10 + c);
    let text = proptest::collection::vec(
        prop_oneof![
            Just(b' '),
            Just(b'-'),
            Just(b'.'),
            Just(b'5'),
            any::<u8>().prop_filter("no line ending", |b| *b != b'\r' && *b != b'\n'),
        ],
        0..40,
    );
    let enhanced = prop_oneof![Just(None), (0u16..1000, 0u16..1000).prop_map(Some)];
    let lines = proptest::collection::vec((enhanced, text), 1..12);
    (code, lines).prop_map(|(code, lines)| {
        let lines = lines
            .into_iter()
            .map(|(e, mut text)| {
                if let Some((s, d)) = e {
                    let mut with = format!("{}.{s}.{d} ", code / 100).into_bytes();
                    with.append(&mut text);
                    with
                } else {
                    text
                }
            })
            .collect();
        Reply::new(code, lines).unwrap_or_else(|| unreachable!("valid by construction"))
    })
}

/// Splits `0..len` at the given points (any order, any values).
fn pieces(len: usize, cuts: &[usize]) -> Vec<(usize, usize)> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (len + 1)).collect();
    points.sort_unstable();
    points.push(len);
    let mut from = 0;
    points
        .into_iter()
        .map(|to| {
            let piece = (from, to);
            from = to;
            piece
        })
        .collect()
}

/// The reference normalisation: CRLF, bare CR and bare LF all become CRLF;
/// a final CRLF is added if the message does not end with one.
fn normalized(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'\r' if body.get(i + 1) == Some(&b'\n') => {
                out.extend_from_slice(b"\r\n");
                i += 1;
            }
            b'\r' | b'\n' => out.extend_from_slice(b"\r\n"),
            b => out.push(b),
        }
        i += 1;
    }
    if !out.is_empty() && !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

proptest! {
    #[test]
    fn replies_round_trip_across_any_split(
        replies in proptest::collection::vec(reply_strategy(), 1..6),
        cuts in proptest::collection::vec(any::<usize>(), 0..10),
    ) {
        let mut wire = Vec::new();
        for reply in &replies {
            reply.encode(&mut wire);
        }
        let mut parser = ReplyParser::new();
        let mut got = Vec::new();
        let mut buffer = Vec::new();
        for (from, to) in pieces(wire.len(), &cuts) {
            buffer.extend_from_slice(&wire[from..to]);
            loop {
                let (used, reply) = parser.parse(&buffer).unwrap();
                buffer.drain(..used);
                match reply {
                    Some(reply) => got.push(reply),
                    None => break,
                }
            }
            // Only an incomplete line is ever kept.
            prop_assert!(!buffer.contains(&b'\n'));
        }
        prop_assert!(buffer.is_empty());
        prop_assert_eq!(got, replies);
    }

    #[test]
    fn reply_parser_never_panics(input in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut parser = ReplyParser::new();
        let mut rest = &input[..];
        while let Ok((used, Some(_))) = parser.parse(rest) {
            rest = &rest[used..];
        }
    }

    #[test]
    fn data_survives_stuffing_any_split_and_is_normalized(
        body in proptest::collection::vec(
            prop_oneof![Just(b'.'), Just(b'\r'), Just(b'\n'), Just(b'a'), any::<u8>()], 0..400),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
        read_cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut wire = Vec::new();
        let mut encoder = DataEncoder::new();
        for (from, to) in pieces(body.len(), &cuts) {
            let before = wire.len();
            encoder.push(&body[from..to], &mut wire);
            prop_assert!(wire.len() - before <= 2 * (to - from));
        }
        prop_assert_eq!(encoder.bytes_in(), body.len() as u64);
        encoder.finish(&mut wire);
        // No bare CR or LF on the wire.
        for (i, &b) in wire.iter().enumerate() {
            if b == b'\r' {
                prop_assert_eq!(wire.get(i + 1), Some(&b'\n'));
            }
            if b == b'\n' {
                prop_assert!(i > 0 && wire[i - 1] == b'\r');
            }
        }
        wire.extend_from_slice(b"250 Ok\r\n");
        let mut decoder = BodyDecoder::new();
        let mut out = Vec::new();
        let mut pending = Vec::new();
        let mut done = false;
        for (from, to) in pieces(wire.len(), &read_cuts) {
            if done {
                break;
            }
            pending.extend_from_slice(&wire[from..to]);
            let (used, end) = decoder.decode_into(&pending, &mut out).unwrap();
            pending.drain(..used);
            done = end;
        }
        prop_assert!(done);
        prop_assert_eq!(out, normalized(&body));
    }
}

#[test]
fn reply_line_cap_is_the_most_lines() {
    let lines = vec![b"x".to_vec(); MAX_LINES];
    assert!(Reply::new(250, lines.clone()).is_some());
    let mut more = lines;
    more.push(b"x".to_vec());
    assert!(Reply::new(250, more).is_none());
}

/// Server replies a session may meet, and junk, for the session property.
fn server_piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"220 mx ESMTP\r\n".to_vec()),
        Just(
            b"250-mx\r\n250-PIPELINING\r\n250-STARTTLS\r\n250-SIZE 100\r\n250 AUTH LOGIN\r\n"
                .to_vec()
        ),
        Just(b"250 mx\r\n".to_vec()),
        Just(b"220 go ahead\r\n".to_vec()),
        Just(b"334 VXNlcm5hbWU6\r\n".to_vec()),
        Just(b"334 !!\r\n".to_vec()),
        Just(b"235 ok\r\n".to_vec()),
        Just(b"535 5.7.8 no\r\n".to_vec()),
        Just(b"250 Ok\r\n".to_vec()),
        Just(b"550 5.1.1 no\r\n".to_vec()),
        Just(b"354 go\r\n".to_vec()),
        Just(b"421 4.7.0 bye\r\n".to_vec()),
        Just(b"221 bye\r\n".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..12),
    ]
}

proptest! {
    #[test]
    fn session_survives_any_server_bytes(
        pieces in proptest::collection::vec(server_piece(), 0..24),
        read in 1usize..40,
    ) {
        use pop3_proto::sasl::SaslClient;
        use smtp_auth::{reply::MAX_LINE, Config, Envelope, Event, SmtpSession};
        let input = pieces.concat();
        let mut session = SmtpSession::new(Config::default()).unwrap();
        let envelope = Envelope::new("a@x", ["b@y", "c@z"]).with_size(10);
        let mut buffer = Vec::new();
        'reads: for piece in input.chunks(read) {
            buffer.extend_from_slice(piece);
            loop {
                let Ok((used, event)) = session.advance(&buffer) else { break 'reads };
                buffer.drain(..used);
                let _ = match event {
                    Event::NeedInput => break,
                    Event::Ready if !session.is_tls() => session.starttls(),
                    Event::StartTls => session.tls_established(),
                    Event::Ready => session.authenticate(SaslClient::login("u", "p")),
                    Event::Authenticated | Event::Failed(_) => session.send_mail(&envelope),
                    Event::SendData => session.write_data(b".x\n").and_then(|()| session.finish_data()),
                    Event::Sent(_) => session.quit(),
                    Event::Closed => break 'reads,
                };
                session.clear_output();
            }
            prop_assert!(buffer.len() < MAX_LINE);
        }
        let _ = session.handle_eof();
    }
}
