//! The response parser: any bytes, as the answer to any command.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pop3_proto::{ClientSession, Command, SessionConfig};

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let config = SessionConfig {
        max_line: 256,
        ..SessionConfig::default()
    };
    let mut session = ClientSession::new(config);
    if pop3_fuzz::drive(&mut session, b"+OK ready <1.2@host>\r\n", &[]).is_err() {
        return;
    }
    let command = match which % 6 {
        0 => Command::Capa,
        1 => Command::User("u"),
        2 => Command::Stls,
        3 => Command::Utf8,
        4 => Command::Lang(None),
        _ => Command::Apop {
            user: "u",
            digest: "0123",
        },
    };
    if session.send(&command).is_ok() {
        let _ = pop3_fuzz::drive(&mut session, rest, &[]);
        let _ = session.handle_eof();
    }
});
