//! The async SMTP client against a real submission server (Dovecot's,
//! `scripts/submission.sh start`, relaying to `smtp-sink`): STARTTLS and
//! implicit TLS, a message with dot-led lines and 8-bit text arriving byte
//! for byte after Dovecot's `Received:` header, a wrong password as kind
//! auth. Skipped without `$POP3_SUBMISSION_DIR/env` unless
//! `POP3_REQUIRE_SUBMISSION=1`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use futures_util::io::Cursor;
use pop3_client::smtp::{AsyncSmtpClient, SmtpConfig};
use pop3_client::testing::InteropServer;
use pop3_client::{Credentials, Security, TlsRoots};

fn env() -> Option<InteropServer> {
    InteropServer::find(
        "POP3_SUBMISSION_DIR",
        "/tmp/pop3-submission",
        "POP3_REQUIRE_SUBMISSION",
        "submission tests; run scripts/submission.sh start",
    )
}

#[tokio::test]
async fn async_client_sends_through_dovecot_submission() {
    let Some(env) = env() else { return };
    let message = "Subject: async\r\n\r\n.dot line\r\n..\r\nGr\u{fc}\u{df}e\r\n".as_bytes();
    for (security, port) in [
        (Security::StartTls, "starttls_port"),
        (Security::Tls, "tls_port"),
    ] {
        let mut config = SmtpConfig::new(env.get("host"));
        config.port = Some(env.get(port).parse().unwrap());
        config.security = security;
        config.roots = TlsRoots::CaFile(env.get("ca_file").into());
        let e = AsyncSmtpClient::verify(&config, &Credentials::new(env.get("user"), "wrong"))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), "auth", "{e}");
        let mut client = AsyncSmtpClient::connect(&config).await.unwrap();
        assert!(client.is_tls());
        client
            .login(&Credentials::new(env.get("user"), env.get("password")))
            .await
            .unwrap();
        let recipient = format!("async-{security:?}-{}@example.net", std::process::id());
        let report = client
            .send("smtptest@example.org", &[&recipient], Cursor::new(message))
            .await
            .unwrap();
        assert_eq!(report.delivery.code, 250);
        client.quit().await.unwrap();
        // The sink answers with the file's name: "Ok: queued as NAME".
        let name = report.delivery.text.rsplit(' ').next().unwrap();
        let data = std::fs::read(
            Path::new(env.get("sink_dir"))
                .join("new")
                .join(format!("{name}.eml")),
        )
        .unwrap();
        let text = String::from_utf8_lossy(&data);
        assert!(text.starts_with("Received: "), "{text}");
        let body_at = text.find("\r\nSubject: async").unwrap() + 2;
        assert_eq!(&data[body_at..], message);
        assert!(
            text[..body_at].contains(&format!("for <{recipient}>")),
            "{text}"
        );
    }
}
