//! The server role's command parser and session: any client bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pop3_proto::server::{parse_command, ServerMessage, ServerOptions, ServerSession};

fuzz_target!(|data: &[u8]| {
    for line in data.split(|&b| b == b'\n') {
        let _ = parse_command(line.strip_suffix(b"\r").unwrap_or(line));
    }
    let options = ServerOptions {
        stls: true,
        apop: true,
        sasl: ["PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2", "OAUTHBEARER"]
            .map(String::from)
            .to_vec(),
        ..ServerOptions::default()
    };
    let messages = vec![ServerMessage {
        uid: "a".into(),
        content: b"Subject: x\r\n\r\n.body\r\n".to_vec(),
    }];
    let mut server = ServerSession::new(options, messages, "<1.2@host>");
    let mut out = Vec::new();
    let mut input = data;
    while let Ok((used, _)) = server.handle(input, &mut out) {
        if used == 0 {
            break;
        }
        input = &input[used..];
        out.clear();
    }
});
