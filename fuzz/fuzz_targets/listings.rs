//! UIDL and LIST listings (parsed in batches): fed whole or cut into
//! arbitrary reads, the session yields the same entries and the same outcome.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pop3_proto::{ClientSession, Command, SessionConfig};

fn session(config: &SessionConfig, uidl: bool) -> ClientSession {
    let mut session = ClientSession::new(config.clone());
    let steps: [(&[u8], Option<Command<'_>>); 3] = [
        (b"+OK\r\n", Some(Command::User("u"))),
        (b"+OK\r\n", Some(Command::Pass("p"))),
        (
            b"+OK\r\n",
            Some(if uidl {
                Command::Uidl(None)
            } else {
                Command::List(None)
            }),
        ),
    ];
    for (input, command) in steps {
        let _ = session.advance(input);
        if let Some(command) = command {
            let _ = session.send(&command);
        }
    }
    session
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, data)) = data.split_first() else {
        return;
    };
    let (cuts, listing) = pop3_fuzz::cuts(data);
    let config = SessionConfig {
        max_line: 64 + usize::from(mode >> 2),
        max_uid: 1 + usize::from(mode >> 3),
        ..SessionConfig::default()
    };
    let mut wire = b"+OK listing follows\r\n".to_vec();
    wire.extend_from_slice(listing);
    let uidl = mode & 1 == 0;
    let whole = pop3_fuzz::drive(&mut session(&config, uidl), &wire, &[]);
    let pieces = pop3_fuzz::drive(&mut session(&config, uidl), &wire, &cuts);
    match (whole, pieces) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(_), Err(_)) => {}
        (a, b) => panic!("whole: {a:?}\npieces: {b:?}"),
    }
});
