//! The async SMTP client against a real submission server (Dovecot's,
//! `scripts/submission.sh start`, relaying to `smtp-sink`): STARTTLS and
//! implicit TLS, a message with dot-led lines and 8-bit text arriving byte
//! for byte after Dovecot's `Received:` header, a wrong password as kind
//! auth. Skipped without `$POP3_SUBMISSION_DIR/env` unless
//! `POP3_REQUIRE_SUBMISSION=1`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::path::Path;

use futures_util::io::Cursor;
use pop3_client::smtp::{AsyncSmtpClient, SmtpConfig};
use pop3_client::{Credentials, Security, TlsRoots};

fn env() -> Option<HashMap<String, String>> {
    let dir =
        std::env::var("POP3_SUBMISSION_DIR").unwrap_or_else(|_| "/tmp/pop3-submission".into());
    let path = Path::new(&dir).join("env");
    let Ok(text) = std::fs::read_to_string(&path) else {
        if std::env::var("POP3_REQUIRE_SUBMISSION").as_deref() == Ok("1") {
            panic!(
                "POP3_REQUIRE_SUBMISSION=1 but {} is missing",
                path.display()
            );
        }
        eprintln!("skipped: no submission server ({} missing)", path.display());
        return None;
    };
    Some(
        text.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
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
        let mut config = SmtpConfig::new(env["host"].clone());
        config.port = Some(env[port].parse().unwrap());
        config.security = security;
        config.roots = TlsRoots::CaFile(env["ca_file"].clone().into());
        let e = AsyncSmtpClient::verify_tokio(&config, &Credentials::new(&env["user"], "wrong"))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), "auth", "{e}");
        let mut client = AsyncSmtpClient::connect_tokio(&config).await.unwrap();
        assert!(client.is_tls());
        client
            .login(&Credentials::new(&env["user"], env["password"].as_str()))
            .await
            .unwrap();
        let recipient = format!("async-{security:?}-{}@example.net", std::process::id());
        let report = client
            .send("smtptest@example.org", &[&recipient], Cursor::new(message))
            .await
            .unwrap();
        assert_eq!(report.code, 250);
        client.quit().await.unwrap();
        // The sink answers with the file's name: "Ok: queued as NAME".
        let name = report.text.rsplit(' ').next().unwrap();
        let data = std::fs::read(
            Path::new(&env["sink_dir"])
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
