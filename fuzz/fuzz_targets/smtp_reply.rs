//! The SMTP reply parser: any bytes, fed whole and cut into arbitrary reads,
//! give the same replies and the same outcome; the driver never buffers a
//! line cap's worth; classifying and reading EHLO capabilities never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtp_auth::reply::MAX_LINE;
use smtp_auth::{Capabilities, Refusal, Reply, ReplyParser, Step};

/// Parses `input` in reads of the given sizes; returns the replies and
/// whether it ended in an error.
fn parse(input: &[u8], cuts: &[usize]) -> (Vec<Reply>, bool) {
    let mut parser = ReplyParser::new();
    let mut replies = Vec::new();
    let mut buffer = Vec::new();
    let mut rest = input;
    let mut sizes = cuts.iter().copied().chain(std::iter::once(usize::MAX));
    while !rest.is_empty() {
        let take = sizes.next().unwrap_or(usize::MAX).min(rest.len());
        buffer.extend_from_slice(&rest[..take]);
        rest = &rest[take..];
        loop {
            match parser.parse(&buffer) {
                Ok((used, reply)) => {
                    buffer.drain(..used);
                    match reply {
                        Some(reply) => replies.push(reply),
                        None => break,
                    }
                }
                Err(_) => return (replies, true),
            }
        }
        assert!(buffer.len() < MAX_LINE, "buffered {}", buffer.len());
    }
    (replies, false)
}

fuzz_target!(|data: &[u8]| {
    let (cuts, input) = pop3_fuzz::cuts(data);
    let whole = parse(input, &[]);
    let split = parse(input, &cuts);
    assert_eq!(whole, split);
    for reply in &whole.0 {
        let _ = Capabilities::from_ehlo(reply);
        for step in [Step::Greeting, Step::Auth, Step::Rcpt, Step::Message] {
            let refusal = Refusal::classify(step, reply, Some(1000));
            let _ = refusal.to_string();
        }
        // Encoding a parsed reply and parsing it again gives it back (unless
        // CRLF and the separator push a line sent with a bare LF over the cap).
        if reply.lines().iter().all(|l| l.len() + 6 <= MAX_LINE) {
            let mut wire = Vec::new();
            reply.encode(&mut wire);
            let again = ReplyParser::new().parse(&wire);
            assert_eq!(again, Ok((wire.len(), Some(reply.clone()))));
        }
    }
});
