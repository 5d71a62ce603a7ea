//! SASL challenge handling: any challenge text, base64 or not, to every
//! mechanism, for more rounds than the cap allows: errors, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pop3_proto::sasl::{decode_challenge, SaslClient};

fuzz_target!(|data: &[u8]| {
    let clients = [
        SaslClient::plain("user", "pass").ok(),
        Some(SaslClient::login("user", "pass")),
        Some(SaslClient::cram_md5("user", "pass")),
        SaslClient::xoauth2("user", "token").ok(),
        SaslClient::oauthbearer("user", "token", Some(("host", 995))).ok(),
    ];
    for mut client in clients.into_iter().flatten() {
        let _ = client.initial_response();
        for challenge in data.split(|&b| b == b'\n').take(12) {
            let decoded = decode_challenge(challenge).unwrap_or_else(|_| challenge.to_vec());
            if client.respond(&decoded).is_err() {
                break;
            }
        }
    }
});
