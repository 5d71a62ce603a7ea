//! The form's checks against the in-process servers: every step of the
//! incoming and outgoing logins as data, a failing step named with its
//! error, and a password changed only once the new one logs in; blocking
//! and async alike.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use pop3_client::account::{Account, Credential, Outgoing, ServerSettings};
use pop3_client::pop3_proto::server::{ServerMessage, ServerOptions};
use pop3_client::testing::smtp::{SmtpTestServer, SmtpTestServerConfig};
use pop3_client::testing::{TestServer, TestServerConfig};
use pop3_client::verify::{
    change_password, change_password_async, verify_incoming, verify_incoming_async,
    verify_outgoing, verify_outgoing_async, PasswordChangeError, Side, Stage,
};
use pop3_client::Security;

struct Servers {
    pop3: TestServer,
    smtp: SmtpTestServer,
    _dir: tempfile::TempDir,
    account: Account,
}

fn servers() -> Servers {
    let pop3 = TestServer::start(TestServerConfig {
        options: ServerOptions::default(),
        messages: vec![ServerMessage {
            uid: "u1".into(),
            content: b"Subject: hi\r\n\r\nHello\r\n".to_vec(),
        }],
        implicit_tls: true,
        ..TestServerConfig::default()
    })
    .unwrap();
    let smtp = SmtpTestServer::start(SmtpTestServerConfig {
        implicit_tls: true,
        ..SmtpTestServerConfig::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Both servers' certificates in one trust file.
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, format!("{}{}", pop3.ca_pem(), smtp.ca_pem())).unwrap();
    let mut account =
        Account::for_email("test", "user@example.org", Credential::password("password")).unwrap();
    account.incoming = ServerSettings {
        host: "127.0.0.1".into(),
        port: pop3.addr().port(),
        security: Security::Tls,
        user: "user".into(),
        credential: Credential::password("password"),
        allow_plaintext_auth: false,
    };
    account.outgoing = Outgoing::Separate(ServerSettings {
        host: "127.0.0.1".into(),
        port: smtp.addr().port(),
        security: Security::Tls,
        user: "user".into(),
        credential: Credential::password("password"),
        allow_plaintext_auth: false,
    });
    account.trust.ca_file = Some(ca);
    Servers {
        pop3,
        smtp,
        _dir: dir,
        account,
    }
}

fn stages(steps: &[pop3_client::verify::Step]) -> Vec<Stage> {
    steps.iter().map(|s| s.stage).collect()
}

#[test]
fn both_logins_verified_step_by_step() {
    let s = servers();
    let steps = verify_incoming(&s.account).unwrap();
    assert_eq!(
        stages(&steps),
        [
            Stage::Resolve,
            Stage::Connect,
            Stage::Tls,
            Stage::Greeting,
            Stage::Capabilities,
            Stage::Login,
            Stage::Mailbox
        ]
    );
    let tls = &steps[2];
    assert_eq!(
        tls.certificate.as_ref().unwrap().fingerprint(),
        s.pop3.fingerprint()
    );
    assert_eq!(steps[6].detail, "1 messages, 22 bytes");
    let steps = verify_outgoing(&s.account).unwrap();
    assert_eq!(
        stages(&steps),
        [
            Stage::Resolve,
            Stage::Connect,
            Stage::Tls,
            Stage::Ehlo,
            Stage::Auth
        ]
    );
    assert!(s.smtp.messages().is_empty(), "nothing sent");
}

#[test]
fn a_failing_step_is_named_with_its_error_and_the_old_password_stays() {
    let s = servers();
    let mut wrong = s.account.clone();
    wrong.incoming.credential = Credential::password("wrong");
    let failure = verify_incoming(&wrong).unwrap_err();
    assert_eq!(failure.failed, Stage::Login);
    assert_eq!(failure.error.kind(), "auth");
    assert_eq!(stages(&failure.passed).last(), Some(&Stage::Capabilities));
    // A wrong new password: refused, the account unchanged.
    match change_password(&s.account, Side::Incoming, "wrong") {
        Err(PasswordChangeError::Incoming(f)) => assert_eq!(f.failed, Stage::Login),
        other => panic!("{other:?}"),
    }
    // The right one: the changed account comes back.
    let changed = change_password(&s.account, Side::Outgoing, "password").unwrap();
    assert_eq!(changed, s.account);
    // No settings step passes for a server that is not there.
    let mut nowhere = s.account.clone();
    nowhere.incoming.port = 1;
    let failure = verify_incoming(&nowhere).unwrap_err();
    assert_eq!(failure.failed, Stage::Connect, "{failure}");
}

#[test]
fn the_async_checks_take_the_same_steps() {
    let s = servers();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let blocking = stages(&verify_incoming(&s.account).unwrap());
        let asynchronous = stages(&verify_incoming_async(&s.account).await.unwrap());
        assert_eq!(blocking, asynchronous);
        let out = stages(&verify_outgoing_async(&s.account).await.unwrap());
        assert_eq!(out, stages(&verify_outgoing(&s.account).unwrap()));
        match change_password_async(&s.account, Side::Outgoing, "wrong").await {
            Err(PasswordChangeError::Outgoing(f)) => {
                assert_eq!(f.failed, Stage::Auth);
                assert!(f.error.is_auth_failure());
            }
            other => panic!("{other:?}"),
        }
    });
}
