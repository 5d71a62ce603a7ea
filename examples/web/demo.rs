//! `--demo`: with no outside server, in-process POP3 servers (TLS) holding
//! sample mail (one Gmail-like), an SMTP server, two CRM users and a few
//! contacts and leads.

use pop3_client::pop3_proto::server::{ServerMessage, ServerOptions};
use pop3_client::testing::smtp::{SmtpFault, SmtpTestServer, SmtpTestServerConfig};
use pop3_client::testing::{GmailMode, TestServer, TestServerConfig};

use crate::data::{random_hex, Crm};

/// The demo's servers, alive while it is held.
pub(crate) struct Demo {
    /// The POP3 servers: (e-mail address, user, password, server).
    pub mailboxes: Vec<(String, String, String, TestServer)>,
    /// The SMTP server.
    pub smtp: SmtpTestServer,
    /// Every demo server's certificate, in one PEM file to trust.
    pub ca_file: std::path::PathBuf,
    /// The CRM users: (login, password).
    pub users: Vec<(String, String)>,
    _dir: tempfile::TempDir,
}

fn sample(i: usize, from: &str, to: &str, subject: &str, body: &str, html: bool) -> ServerMessage {
    let content_type = if html {
        "text/html; charset=utf-8"
    } else {
        "text/plain; charset=utf-8"
    };
    ServerMessage {
        uid: format!("demo-{i}"),
        content: format!(
            "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Tue, 1 Dec 2026 {:02}:00:00 +0000\r\nMessage-ID: <demo-{i}@demo.test>\r\nContent-Type: {content_type}\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{body}\r\n",
            8 + i
        )
        .into_bytes(),
    }
}

/// Starts the servers and seeds the CRM.
pub(crate) async fn start(crm: &Crm) -> std::io::Result<Demo> {
    let dir = tempfile::tempdir()?;
    let password = "demo-pass";
    let mut mailboxes = Vec::new();
    let plans = [
        ("ana@demo.test", "ana@demo.test", false, vec![
            sample(1, "Carla Lima <carla@cliente.example>", "ana@demo.test", "Proposta comercial", "Olá Ana, segue a proposta revisada.", false),
            sample(2, "Diego Souza <diego@fornecedor.example>", "ana@demo.test", "Entrega de material", "A entrega chega na quinta-feira.", false),
            sample(3, "Newsletter <news@exemplo.example>", "ana@demo.test", "Novidades", "<p>Novidades <b>da semana</b></p><script>alert('x')</script><img src=\"http://tracker.example/p.gif\">", true),
        ]),
        ("bruno@gmail.com", "recent:bruno@gmail.com", true, vec![
            sample(4, "Carla Lima <carla@cliente.example>", "bruno@gmail.com", "Reunião amanhã", "Podemos falar às 10h?", false),
        ]),
    ];
    for (email, user, gmail, messages) in plans {
        let server = TestServer::start(TestServerConfig {
            implicit_tls: true,
            options: ServerOptions {
                user: user.to_owned(),
                password: password.to_owned(),
                ..ServerOptions::default()
            },
            messages,
            gmail: gmail.then(GmailMode::default),
            ..TestServerConfig::default()
        })?;
        mailboxes.push((
            email.to_owned(),
            user.to_owned(),
            password.to_owned(),
            server,
        ));
    }
    // A provider's sending limit, to show what a refusal looks like.
    let smtp = SmtpTestServer::start(SmtpTestServerConfig {
        user: "ana@demo.test".to_owned(),
        password: password.to_owned(),
        implicit_tls: true,
        fault: SmtpFault::SizeLimit(100_000),
        ..SmtpTestServerConfig::default()
    })?;
    let mut pem = String::new();
    for (_, _, _, server) in &mailboxes {
        pem.push_str(server.ca_pem());
    }
    pem.push_str(smtp.ca_pem());
    let ca_file = dir.path().join("demo-ca.pem");
    std::fs::write(&ca_file, pem)?;
    let io = |e: sqlx::Error| std::io::Error::other(e.to_string());
    let mut users = Vec::new();
    for (login, name, admin) in [("ana", "Ana Costa", true), ("bruno", "Bruno Reis", false)] {
        let secret = random_hex(6);
        crm.add_user(login, name, &secret, admin)
            .await
            .map_err(io)?;
        users.push((login.to_owned(), secret));
    }
    crm.add_person("lead", "Carla Lima", "carla@cliente.example", "ana")
        .await
        .map_err(io)?;
    crm.add_person("contact", "Diego Souza", "diego@fornecedor.example", "ana")
        .await
        .map_err(io)?;
    Ok(Demo {
        mailboxes,
        smtp,
        ca_file,
        users,
        _dir: dir,
    })
}
