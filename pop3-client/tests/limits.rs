//! Limits: every timeout accepts "no limit" (`Duration::MAX`) without a
//! panic, in both clients, over TLS, STLS and plaintext; settings that cannot
//! work are refused with a config error naming the setting, before a byte is
//! exchanged, by every way of starting a client.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Cursor;
use std::time::Duration;

use pop3_client::pop3_proto::server::{ServerMessage, ServerOptions};
use pop3_client::testing::{Fault, TestServer, TestServerConfig};
use pop3_client::transport::Unbounded;
use pop3_client::{
    async_client, blocking, ClientConfig, Credentials, Error, ErrorKind, MsgNum, Timeouts,
};

fn server(implicit_tls: bool, fault: Fault) -> TestServer {
    TestServer::start(TestServerConfig {
        options: ServerOptions {
            stls: !implicit_tls,
            ..ServerOptions::default()
        },
        messages: (0..5)
            .map(|i| ServerMessage {
                uid: format!("l{i}"),
                content: format!("Subject: {i}\r\n\r\n{}\r\n", "z".repeat(i * 3000)).into_bytes(),
            })
            .collect(),
        implicit_tls,
        fault,
        gmail: None,
        ..TestServerConfig::default()
    })
    .unwrap()
}

fn creds() -> Credentials {
    Credentials::new("user", "password")
}

fn unlimited(mut config: ClientConfig) -> ClientConfig {
    config.timeouts = Timeouts {
        min_body_rate: u64::MAX,
        ..Timeouts::all(Duration::MAX)
    };
    config
}

#[test]
fn no_limit_timeouts_work_in_the_blocking_client() {
    for implicit_tls in [true, false] {
        // A delay makes every read wait, so each deadline is computed.
        let server = server(implicit_tls, Fault::Delay(Duration::from_millis(5)));
        let config = unlimited(server.client_config());
        let mut client = blocking::Client::connect(&config, &creds()).unwrap();
        let msgs: Vec<MsgNum> = client.list().unwrap().iter().map(|e| e.msg).collect();
        let bodies = client.retr_many_vec(&msgs).unwrap();
        assert_eq!(bodies.len(), 5);
        assert!(bodies.iter().all(Result::is_ok));
        client.quit().unwrap();
    }
    // Only some of them unlimited, with a slow body rate too.
    let server = server(true, Fault::None);
    let mut config = server.client_config();
    config.timeouts.response = Duration::MAX;
    config.timeouts.min_body_rate = 0;
    let mut client = blocking::Client::connect(&config, &creds()).unwrap();
    assert_eq!(
        client.retr_vec(MsgNum::new(5).unwrap()).unwrap().len(),
        12016
    );
    client.quit().unwrap();
}

#[tokio::test]
async fn no_limit_timeouts_work_in_the_async_client() {
    for implicit_tls in [true, false] {
        let server = server(implicit_tls, Fault::Delay(Duration::from_millis(5)));
        let config = unlimited(server.client_config());
        let mut client = async_client::Client::connect(&config, &creds())
            .await
            .unwrap();
        let msgs: Vec<MsgNum> = client.list().await.unwrap().iter().map(|e| e.msg).collect();
        let bodies = client.retr_many_vec(&msgs).await.unwrap();
        assert!(bodies.iter().all(Result::is_ok));
        client.quit().await.unwrap();
    }
}

/// Makes one setting nonsensical.
type Breaker = Box<dyn Fn(&mut ClientConfig)>;

/// Every setting that cannot work, with the name its error must carry.
fn nonsense() -> Vec<(&'static str, Breaker)> {
    vec![
        (
            "timeouts.idle",
            Box::new(|c| c.timeouts.idle = Duration::ZERO),
        ),
        (
            "timeouts.connect",
            Box::new(|c| c.timeouts.connect = Duration::ZERO),
        ),
        (
            "timeouts.tls_handshake",
            Box::new(|c| c.timeouts.tls_handshake = Duration::ZERO),
        ),
        (
            "timeouts.response",
            Box::new(|c| c.timeouts.response = Duration::ZERO),
        ),
        (
            "session.pipeline_max",
            Box::new(|c| c.session.pipeline_max = 0),
        ),
        (
            "session.pipeline_refill",
            Box::new(|c| c.session.pipeline_refill = 0),
        ),
        (
            "session.pipeline_refill",
            Box::new(|c| c.session.pipeline_refill = c.session.pipeline_max + 1),
        ),
        ("session.max_line", Box::new(|c| c.session.max_line = 100)),
        (
            "session.max_line",
            Box::new(|c| c.session.max_line = usize::MAX),
        ),
        ("session.max_uid", Box::new(|c| c.session.max_uid = 0)),
        // A UID a sync's state could not record.
        ("session.max_uid", Box::new(|c| c.session.max_uid = 513)),
        ("host", Box::new(|c| c.host.clear())),
        ("port", Box::new(|c| c.port = Some(0))),
    ]
}

fn assert_names(err: Error, setting: &str) {
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(err.to_string().starts_with(setting), "{setting}: {err}");
}

#[test]
fn nonsensical_settings_are_refused_naming_the_setting() {
    let server = server(true, Fault::None);
    for (setting, break_it) in nonsense() {
        let mut config = server.client_config();
        break_it(&mut config);
        assert_names(config.validate().unwrap_err(), setting);
        assert_names(
            blocking::Client::connect(&config, &creds()).err().unwrap(),
            setting,
        );
        // A stream given by the caller: refused before the greeting is read.
        let stream = Unbounded(Cursor::new(b"+OK ready\r\n".to_vec()));
        assert_names(
            blocking::Client::from_stream(stream, &config, true)
                .err()
                .unwrap(),
            setting,
        );
        let stream = futures_util::io::Cursor::new(b"+OK ready\r\n".to_vec());
        let err =
            futures_executor::block_on(async_client::Client::from_stream(stream, &config, true))
                .err()
                .unwrap();
        assert_names(err, setting);
    }
    assert!(server.client_config().validate().is_ok());
    assert!(ClientConfig::new("pop.example.com").validate().is_ok());
}

#[tokio::test]
async fn the_async_connect_refuses_them_too() {
    let server = server(true, Fault::None);
    for (setting, break_it) in nonsense() {
        let mut config = server.client_config();
        break_it(&mut config);
        let err = async_client::Client::connect(&config, &creds())
            .await
            .err()
            .unwrap();
        assert_names(err, setting);
    }
}
