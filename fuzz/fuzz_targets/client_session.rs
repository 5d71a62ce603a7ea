//! The client session driven by arbitrary server bytes through a whole
//! session (greeting, CAPA, login, pipelined commands): no panic, and the
//! driver never buffers more than the configured line cap. Half the inputs
//! play a client that remembers the server as pipelining: CAPA and AUTH
//! go in one flight.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pop3_proto::sasl::SaslClient;
use pop3_proto::{
    ClientSession, Command, Event, MsgNum, SessionConfig, State, DEFAULT_MAX_UID_LEN,
};

fuzz_target!(|data: &[u8]| {
    let (cuts, input) = pop3_fuzz::cuts(data);
    let config = SessionConfig {
        max_line: 512,
        max_body: Some(1 << 16),
        pipeline_max: 4,
        pipeline_refill: 2,
        ..SessionConfig::default()
    };
    let mut session = ClientSession::new(config);
    let mut buffer = Vec::new();
    let mut rest = input;
    let mut sizes = cuts.iter().copied().chain(std::iter::repeat(64));
    let mut next_msg = 1u32;
    let remembered = data.first().is_some_and(|b| b & 0x80 != 0);
    while !rest.is_empty() {
        let take = sizes.next().unwrap_or(64).min(rest.len());
        buffer.extend_from_slice(&rest[..take]);
        rest = &rest[take..];
        let mut used = 0;
        loop {
            let (n, event) = match session.advance(&buffer[used..]) {
                Ok(step) => step,
                Err(_) => return,
            };
            used += n;
            let capa_done = matches!(event, Event::End(kind) if kind.name() == "CAPA");
            match event {
                Event::NeedInput => break,
                Event::Greeting(_) => {
                    if remembered {
                        session.assume_pipelining();
                    }
                    let _ = session.send(&Command::Capa);
                    if remembered {
                        let _ = session.authenticate(SaslClient::login("user", "secret"));
                    }
                }
                // A batch holds at least one entry, each within the limits.
                Event::UidlEntries(entries) => {
                    assert!(!entries.is_empty());
                    for entry in entries {
                        assert!(!entry.uid.is_empty() && entry.uid.len() <= DEFAULT_MAX_UID_LEN);
                    }
                }
                Event::ListEntries(entries) => assert!(!entries.is_empty()),
                _ => {}
            }
            if capa_done && session.state() == State::Authorization {
                let auth = SaslClient::login("user", "secret");
                let _ = session.authenticate(auth);
            }
            // Keep the window full once logged in.
            while session.state() == State::Transaction && session.room() > 0 {
                let msg = MsgNum::new(next_msg).unwrap_or_else(|| unreachable!());
                next_msg = next_msg % 5 + 1;
                let command = [
                    Command::Retr(msg),
                    Command::Uidl(None),
                    Command::List(Some(msg)),
                    Command::Stat,
                ][(next_msg % 4) as usize]
                    .clone();
                if session.send(&command).is_err() {
                    break;
                }
            }
        }
        buffer.drain(..used);
        assert!(
            buffer.len() < session.config().max_line,
            "buffered {}",
            buffer.len()
        );
        session.clear_output();
    }
    let _ = session.handle_eof();
});
