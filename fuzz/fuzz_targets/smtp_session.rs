//! The SMTP session driven by arbitrary server bytes through a whole
//! submission (greeting, EHLO, STARTTLS when offered, AUTH, pipelined
//! MAIL/RCPT/DATA, the message, QUIT) in arbitrary reads: errors, never
//! panics, and the driver never buffers a line cap's worth.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pop3_proto::sasl::{Mechanism, SaslClient};
use smtp_auth::reply::MAX_LINE;
use smtp_auth::{Config, Envelope, Event, SmtpSession};

fuzz_target!(|data: &[u8]| {
    let (cuts, input) = pop3_fuzz::cuts(data);
    let Ok(mut session) = SmtpSession::new(Config::default()) else {
        return;
    };
    let envelope = Envelope::new("a@example.org", ["b@example.net", "c@example.net"]).with_size(40);
    let mut buffer = Vec::new();
    let mut rest = input;
    let mut sizes = cuts.iter().copied().chain(std::iter::repeat(64));
    let mut sent = 0;
    while !rest.is_empty() {
        let take = sizes.next().unwrap_or(64).min(rest.len());
        buffer.extend_from_slice(&rest[..take]);
        rest = &rest[take..];
        loop {
            let Ok((used, event)) = session.advance(&buffer) else {
                return;
            };
            buffer.drain(..used);
            let caps = session.capabilities().cloned().unwrap_or_default();
            let _ = match event {
                Event::NeedInput => break,
                Event::Ready if caps.starttls && !session.is_tls() => session.starttls(),
                Event::StartTls => session.tls_established(),
                Event::Ready if !session.is_authenticated() && !caps.auth.is_empty() => {
                    let sasl = match caps.offers_auth(Mechanism::CramMd5) {
                        true => SaslClient::cram_md5("user", "secret"),
                        false => SaslClient::login("user", "secret"),
                    };
                    session.authenticate(sasl)
                }
                Event::Ready | Event::Authenticated | Event::Failed(_) | Event::Sent(_)
                    if sent < 2 =>
                {
                    sent += 1;
                    session.send_mail(&envelope)
                }
                Event::SendData => session
                    .write_data(b"Subject: x\n\n.dot\r")
                    .and_then(|()| session.finish_data()),
                Event::Closed => return,
                _ => session.quit(),
            };
            session.clear_output();
        }
        assert!(buffer.len() < MAX_LINE, "buffered {}", buffer.len());
    }
    let _ = session.handle_eof();
});
