//! Mailboxes kept in the database and polled by workers over it, on both
//! engines (SQLite; PostgreSQL when `scripts/postgres.sh start` runs it):
//! secrets sealed with the application's key and refused without one; one
//! active mailbox per owner; two workers polling the same mailboxes at once
//! store every message once; a wrong password pauses that mailbox alone
//! ("needs user action") until its settings change.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg(all(feature = "sqlite", feature = "testing"))]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use pop3_client::account::{
    Account, Credential, DeletePolicy, OAuth2Grant, Outgoing, ServerSettings,
};
use pop3_client::oauth::OAuthProvider;
use pop3_client::pop3_proto::server::{ServerMessage, ServerOptions};
use pop3_client::sql::{
    AccountStoreError, DbKey, DbPoller, DbPollerConfig, HealthState, KeyError, SqlStore,
};
use pop3_client::sync::StoppedEarly;
use pop3_client::testing::{Fault, TestServer, TestServerConfig};
use pop3_client::{ErrorKind, Security, Timeouts};

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const OTHER_KEY: &str = "HwECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
/// A password easy to look for in the database's bytes.
const PASSWORD: &str = "password";

fn server(messages: usize) -> TestServer {
    server_with(messages, Fault::None)
}

fn server_with(messages: usize, fault: Fault) -> TestServer {
    TestServer::start(TestServerConfig {
        fault,
        options: ServerOptions {
            stls: true,
            ..ServerOptions::default()
        },
        messages: (0..messages)
            .map(|i| ServerMessage {
                uid: format!("m{i}"),
                content: format!("Subject: {i}\r\nMessage-ID: <{i}@test>\r\n\r\nbody {i}\r\n")
                    .into_bytes(),
            })
            .collect(),
        ..TestServerConfig::default()
    })
    .unwrap()
}

/// A mailbox on `server` logging in with `password`.
fn account(name: &str, server: &TestServer, password: &str, dir: &std::path::Path) -> Account {
    let mut account =
        Account::for_email(name, "user@example.org", Credential::password(password)).unwrap();
    account.incoming.host = "127.0.0.1".into();
    account.incoming.port = server.addr().port();
    account.incoming.security = Security::StartTls;
    account.incoming.user = "user".into();
    let ca = dir.join(format!("{name}.pem"));
    std::fs::write(&ca, server.ca_pem()).unwrap();
    account.trust.ca_file = Some(ca);
    account
}

fn key() -> DbKey {
    DbKey::from_base64(KEY).unwrap()
}

async fn accounts_keep_secrets_sealed_and_one_active_per_owner(store: SqlStore) {
    let dir = tempfile::tempdir().unwrap();
    let one = server(0);
    let secret = "sealed-Pa55word-never-in-clear";
    let a1 = account("a1", &one, secret, dir.path());
    // No key: no secret stored.
    match store.add_account(&a1, "alice", None).await {
        Err(AccountStoreError::Key(KeyError::Missing)) => {}
        other => panic!("{other:?}"),
    }
    assert!(store.accounts(None).await.unwrap().is_empty());
    let key = key();
    assert!(store.add_account(&a1, "alice", Some(&key)).await.unwrap());
    let a2 = account("a2", &one, secret, dir.path());
    assert!(!store.add_account(&a2, "alice", Some(&key)).await.unwrap());
    let b1 = account("b1", &one, secret, dir.path());
    assert!(store.add_account(&b1, "bob", Some(&key)).await.unwrap());
    assert!(matches!(
        store.add_account(&b1, "bob", Some(&key)).await,
        Err(AccountStoreError::Exists(_))
    ));
    let active = |records: &[pop3_client::sql::AccountRecord]| -> BTreeSet<String> {
        records
            .iter()
            .filter(|r| r.active)
            .map(|r| r.account.name.clone())
            .collect()
    };
    let records = store.accounts(Some(&key)).await.unwrap();
    assert_eq!(active(&records), ["a1", "b1"].map(String::from).into());
    assert_eq!(
        records[0].account.incoming.credential.secret().expose(),
        secret
    );
    // Without the key the settings read, with their secrets empty; with
    // another key, they are refused.
    let bare = store.account("a1", None).await.unwrap();
    assert_eq!(bare.account.incoming.credential.secret().expose(), "");
    assert_eq!(bare.account.incoming.port, one.addr().port());
    let other = DbKey::from_base64(OTHER_KEY).unwrap();
    assert!(matches!(
        store.account("a1", Some(&other)).await,
        Err(AccountStoreError::Key(KeyError::WrongKey(_)))
    ));
    // Activating one deactivates the owner's others.
    store.activate("a2").await.unwrap();
    let records = store.accounts(None).await.unwrap();
    assert_eq!(active(&records), ["a2", "b1"].map(String::from).into());
    // Removing the active one makes the owner's oldest other active.
    store.remove_account("a2").await.unwrap();
    let records = store.accounts(None).await.unwrap();
    assert_eq!(active(&records), ["a1", "b1"].map(String::from).into());
    assert!(matches!(
        store.remove_account("a2").await,
        Err(AccountStoreError::NotFound(_))
    ));
    // A new password: stored sealed, the version raised.
    let mut changed = store.account("a1", Some(&key)).await.unwrap();
    let before = changed.version;
    changed.account.incoming.credential = Credential::password("another-Secret-99");
    store
        .update_account(&changed.account, Some(&key))
        .await
        .unwrap();
    let after = store.account("a1", Some(&key)).await.unwrap();
    assert!(after.version > before);
    assert_eq!(
        after.account.incoming.credential.secret().expose(),
        "another-Secret-99"
    );
    // A refresh token rotated by the provider: written where the grant is
    // kept (incoming, and the outgoing sign-in with the same grant), not a
    // settings change; rotated from a token no longer stored (signed in
    // again meanwhile), refused, the newer sign-in kept.
    let grant = |refresh: &str| {
        Credential::OAuth2(OAuth2Grant::new(
            OAuthProvider::Google,
            "client-id",
            refresh.into(),
        ))
    };
    let mut sso = Account::for_email("sso", "someone@gmail.com", grant("r1")).unwrap();
    sso.outgoing = Outgoing::Separate(ServerSettings {
        host: "smtp.gmail.com".into(),
        port: 465,
        security: Security::Tls,
        user: "someone@gmail.com".into(),
        credential: grant("r1"),
        allow_plaintext_auth: false,
    });
    store.add_account(&sso, "carol", Some(&key)).await.unwrap();
    let refresh_tokens = |record: &pop3_client::sql::AccountRecord| {
        let token = |c: &Credential| match c {
            Credential::OAuth2(g) => g.refresh_token.expose().to_owned(),
            other => panic!("{other:?}"),
        };
        let Outgoing::Separate(out) = &record.account.outgoing else {
            panic!("{:?}", record.account.outgoing)
        };
        (
            token(&record.account.incoming.credential),
            token(&out.credential),
        )
    };
    let before = store.account("sso", Some(&key)).await.unwrap();
    store
        .rotate_refresh_token("sso", Some(&key), &"r1".into(), &"r2".into())
        .await
        .unwrap();
    let after = store.account("sso", Some(&key)).await.unwrap();
    assert_eq!(refresh_tokens(&after), ("r2".into(), "r2".into()));
    assert_eq!(after.version, before.version, "not a settings change");
    assert!(matches!(
        store
            .rotate_refresh_token("sso", Some(&key), &"r1".into(), &"r3".into())
            .await,
        Err(AccountStoreError::Changed(_))
    ));
    let mut signed_in_again = after.account.clone();
    signed_in_again.incoming.credential = grant("r9");
    store
        .update_account(&signed_in_again, Some(&key))
        .await
        .unwrap();
    assert!(matches!(
        store
            .rotate_refresh_token("sso", Some(&key), &"r2".into(), &"r4".into())
            .await,
        Err(AccountStoreError::Changed(_))
    ));
    let kept = store.account("sso", Some(&key)).await.unwrap();
    assert_eq!(refresh_tokens(&kept).0, "r9");
    // A change written only if the mailbox is still as read: a token
    // rotated since (no settings change) makes it refused, so the rotated
    // token is not written over; applied to what is there, it stands.
    let read = store.account("sso", Some(&key)).await.unwrap();
    store
        .rotate_refresh_token("sso", Some(&key), &"r9".into(), &"r10".into())
        .await
        .unwrap();
    let mut new_outgoing = read.account.clone();
    new_outgoing.outgoing = Outgoing::Separate(ServerSettings {
        host: "smtp.gmail.com".into(),
        port: 465,
        security: Security::Tls,
        user: "someone@gmail.com".into(),
        credential: Credential::app_password("outgoing-Secret-7"),
        allow_plaintext_auth: false,
    });
    assert!(matches!(
        store
            .update_account_if_unchanged(&read, &new_outgoing, Some(&key))
            .await,
        Err(AccountStoreError::Changed(_))
    ));
    let now = store.account("sso", Some(&key)).await.unwrap();
    assert_eq!(refresh_tokens(&now).0, "r10", "the rotated token kept");
    let mut applied = now.account.clone();
    applied.outgoing = new_outgoing.outgoing.clone();
    store
        .update_account_if_unchanged(&now, &applied, Some(&key))
        .await
        .unwrap();
    let after = store.account("sso", Some(&key)).await.unwrap();
    assert!(after.version > now.version);
    match (&after.account.incoming.credential, &after.account.outgoing) {
        (Credential::OAuth2(grant), Outgoing::Separate(out)) => {
            assert_eq!(grant.refresh_token.expose(), "r10");
            assert_eq!(out.credential.secret().expose(), "outgoing-Secret-7");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        store
            .rotate_refresh_token("sso", None, &"r10".into(), &"r11".into())
            .await,
        Err(AccountStoreError::Key(KeyError::Missing))
    ));
    store.remove_account("sso").await.unwrap();
    assert!(matches!(
        store
            .update_account_if_unchanged(&after, &applied, Some(&key))
            .await,
        Err(AccountStoreError::NotFound(_))
    ));
    assert!(matches!(
        store
            .rotate_refresh_token("nobody", Some(&key), &"r1".into(), &"r2".into())
            .await,
        Err(AccountStoreError::NotFound(_))
    ));
    // Settings altered in the database (its server changed behind the
    // application's back): the secrets refuse to open for them.
    sqlx::query("UPDATE accounts SET settings = REPLACE(settings, '127.0.0.1', '192.0.2.1') WHERE name = 'b1'")
        .execute(store.pool())
        .await
        .unwrap();
    assert!(matches!(
        store.account("b1", Some(&key)).await,
        Err(AccountStoreError::Key(KeyError::WrongKey(_)))
    ));
    assert!(store.account("b1", None).await.is_ok(), "listed still");
    // Removed and added again: a lease taken before cannot pass for one
    // taken after (the token keeps growing).
    let before = store
        .acquire("a1", "w", Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    let version_before = store.account("a1", None).await.unwrap().version;
    store.remove_account("a1").await.unwrap();
    store.add_account(&a1, "alice", Some(&key)).await.unwrap();
    assert!(
        store.account("a1", None).await.unwrap().version > version_before,
        "a version read before the removal cannot pass for one after"
    );
    let after = store
        .acquire("a1", "w", Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    assert!(after.token > before.token, "{before:?} {after:?}");
    if let Some(path) = store.sqlite_path().map(std::path::Path::to_path_buf) {
        // Nowhere in the file or its write-ahead log in the clear.
        for file in [path.clone(), path.with_extension("db-wal")] {
            let bytes = std::fs::read(&file).unwrap_or_default();
            for needle in [secret, "another-Secret-99"] {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                    "{needle} in {}",
                    file.display()
                );
            }
        }
    }
}

async fn two_workers_store_each_message_once_and_a_wrong_password_pauses_alone(store: SqlStore) {
    let dir = tempfile::tempdir().unwrap();
    let key = key();
    let (one, two, bad) = (server(5), server(4), server(2));
    let mut first = account("one", &one, PASSWORD, dir.path());
    first.delete_policy = DeletePolicy::AfterRetrieval;
    store.add_account(&first, "o1", Some(&key)).await.unwrap();
    let second = account("two", &two, PASSWORD, dir.path());
    store.add_account(&second, "o2", Some(&key)).await.unwrap();
    let mut wrong = account("bad", &bad, "wrong-password", dir.path());
    // At a provider with regions, where a refused login is most likely
    // the wrong region: the remedy the account gives, not the error's.
    wrong.email = "user@zoho.eu".into();
    store.add_account(&wrong, "o3", Some(&key)).await.unwrap();
    let worker = |name: &str| {
        let mut config = DbPollerConfig::new(name);
        config.lease = Duration::from_secs(10);
        Arc::new(DbPoller::new(store.clone(), Some(key.clone()), config))
    };
    let (w1, w2) = (worker("w1"), worker("w2"));
    // Both workers poll every mailbox at once: each mailbox by one at a
    // time (its lease), so twice in a row.
    let (r1, r2) = tokio::join!(
        w1.poll_once(Duration::from_secs(30)),
        w2.poll_once(Duration::from_secs(30))
    );
    let (r1, r2) = (r1.unwrap(), r2.unwrap());
    assert_eq!(r1.len() + r2.len(), 6, "{r1:?} {r2:?}");
    let new: usize = r1
        .iter()
        .chain(&r2)
        .filter_map(|p| p.outcome.as_ref().ok())
        .map(|r| r.new)
        .sum();
    assert_eq!(new, 9, "{r1:?} {r2:?}");
    for (name, count) in [("one", 5), ("two", 4)] {
        let stored = store.messages(name).await.unwrap();
        let uids: BTreeSet<&str> = stored.iter().map(|m| m.uid.as_str()).collect();
        assert_eq!((stored.len(), uids.len()), (count, count), "{name}");
    }
    assert!(one.messages().is_empty(), "after retrieval: deleted");
    assert_eq!(two.messages().len(), 4, "never: kept");
    assert!(store.messages("bad").await.unwrap().is_empty());
    let health = store.health().await.unwrap();
    let of = |name: &str| health.iter().find(|h| h.name == name).unwrap().clone();
    assert_eq!(of("one").state(), HealthState::Ok);
    assert_eq!(of("two").state(), HealthState::Ok);
    let paused = of("bad");
    assert_eq!(paused.state(), HealthState::Paused, "{paused:?}");
    assert!(paused.health.needs_user_action);
    assert_eq!(
        paused.health.last_error.as_ref().unwrap().0,
        ErrorKind::Auth
    );
    assert!(
        matches!(
            paused.health.remedy,
            Some(pop3_client::Remedy::ChooseRegion { hosts }) if hosts.contains(&"pop.zoho.eu")
        ),
        "{paused:?}"
    );
    // Paused: a continuous worker leaves it alone.
    assert!(store
        .claim_due("w3", Duration::from_secs(10), &BTreeSet::new())
        .await
        .unwrap()
        .is_none());
    // The right password: polled again at once, and it works.
    let mut mended = store.account("bad", Some(&key)).await.unwrap().account;
    mended.incoming.credential = Credential::password(PASSWORD);
    store.update_account(&mended, Some(&key)).await.unwrap();
    let (fence, host) = store
        .claim_due("w3", Duration::from_secs(10), &BTreeSet::new())
        .await
        .unwrap()
        .expect("due again after the change");
    assert_eq!(
        (fence.account.as_str(), host.as_str()),
        ("bad", "127.0.0.1")
    );
    store.release(&fence).await.unwrap();
    let again = w1.poll_once(Duration::from_secs(30)).await.unwrap();
    let bad_outcome = again.iter().find(|p| p.name == "bad").unwrap();
    assert_eq!(bad_outcome.outcome.as_ref().unwrap().new, 2);
    let health = store.health().await.unwrap();
    assert!(
        health.iter().all(|h| h.state() == HealthState::Ok),
        "{health:?}"
    );
}

async fn the_server_profile_is_kept_so_an_empty_poll_costs_five_round_trips(store: SqlStore) {
    use pop3_client::testing::proxy::DelayingProxy;
    let server = TestServer::start(TestServerConfig {
        implicit_tls: true,
        ..TestServerConfig::default()
    })
    .unwrap();
    let proxy = DelayingProxy::start(server.addr(), Duration::from_millis(50)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = key();
    let mut known = account("known", &server, PASSWORD, dir.path());
    known.incoming.port = proxy.addr().port();
    known.incoming.security = Security::Tls;
    store.add_account(&known, "o", Some(&key)).await.unwrap();
    let poller = Arc::new(DbPoller::new(
        store.clone(),
        Some(key),
        DbPollerConfig::new("w"),
    ));
    for _ in 0..2 {
        let polled = poller.poll_once(Duration::from_secs(10)).await.unwrap();
        assert!(polled[0].outcome.is_ok(), "{polled:?}");
    }
    let waits = proxy.take_finished_waits();
    assert_eq!(waits.len(), 2, "{waits:?}");
    assert!(waits[1] <= 5 && waits[1] < waits[0], "{waits:?}");
}

async fn a_server_that_stops_answering_delays_no_other_mailbox(store: SqlStore) {
    let dir = tempfile::tempdir().unwrap();
    let key = key();
    let silent = server_with(1, Fault::Delay(Duration::from_secs(30)));
    let (one, two) = (server(2), server(2));
    for (name, server) in [("silent", &silent), ("one", &one), ("two", &two)] {
        let account = account(name, server, PASSWORD, dir.path());
        store.add_account(&account, name, Some(&key)).await.unwrap();
    }
    let mut config = DbPollerConfig::new("w");
    config.timeouts = Some(Timeouts::all(Duration::from_secs(1)));
    let poller = Arc::new(DbPoller::new(store.clone(), Some(key), config));
    let polled = poller.poll_once(Duration::from_secs(10)).await.unwrap();
    let order: Vec<&str> = polled.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(order.last(), Some(&"silent"), "{order:?}");
    let last = polled.last().unwrap();
    assert_eq!(
        last.outcome.as_ref().unwrap_err().kind(),
        ErrorKind::Timeout
    );
    let health = store.health().await.unwrap();
    let silent = health.iter().find(|h| h.name == "silent").unwrap();
    // Retried after a backoff, not paused.
    assert_eq!(silent.state(), HealthState::Failing);
    assert!(silent.health.next_attempt.is_some());
    assert_eq!(
        health
            .iter()
            .filter(|h| h.state() == HealthState::Ok)
            .count(),
        2
    );
}

async fn a_settings_change_stops_the_sync_at_its_next_group(store: SqlStore) {
    let dir = tempfile::tempdir().unwrap();
    let key = key();
    // 300 messages, each answer slow: a first group of 256, then more.
    let slow = server_with(300, Fault::Delay(Duration::from_millis(4)));
    let changing = account("changing", &slow, PASSWORD, dir.path());
    store.add_account(&changing, "o", Some(&key)).await.unwrap();
    let mut config = DbPollerConfig::new("w");
    config.lease = Duration::from_millis(900);
    let poller = Arc::new(DbPoller::new(store.clone(), Some(key.clone()), config));
    let polling = tokio::spawn({
        let poller = Arc::clone(&poller);
        async move { poller.poll_once(Duration::from_secs(10)).await }
    });
    // Once the first group is under way, the user changes a setting.
    while store.message_counts("changing").await.unwrap().1 == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut changed = store.account("changing", Some(&key)).await.unwrap().account;
    changed.delete_policy = DeletePolicy::AfterRetrieval;
    store.update_account(&changed, Some(&key)).await.unwrap();
    let polled = polling.await.unwrap().unwrap();
    let report = polled[0].outcome.as_ref().unwrap();
    assert_eq!(
        report.stopped_early,
        Some(StoppedEarly::Asked),
        "{report:?}"
    );
    assert_eq!(report.new, 256, "the group in flight is finished");
    assert_eq!(report.deleted, 0, "the old settings kept mail");
    // The next poll, under the new settings, takes the rest and deletes.
    let polled = poller.poll_once(Duration::from_secs(10)).await.unwrap();
    let report = polled[0].outcome.as_ref().unwrap();
    assert_eq!((report.new, report.deleted), (44, 300), "{report:?}");
    assert_eq!(store.messages("changing").await.unwrap().len(), 300);
}

async fn a_stop_waits_for_syncs_in_flight_no_longer_than_its_grace(store: SqlStore) {
    let dir = tempfile::tempdir().unwrap();
    let key = key();
    let (silent, quick) = (
        server_with(1, Fault::Delay(Duration::from_secs(30))),
        server(1),
    );
    for (name, server) in [("silent", &silent), ("quick", &quick)] {
        let account = account(name, server, PASSWORD, dir.path());
        store.add_account(&account, name, Some(&key)).await.unwrap();
    }
    let mut config = DbPollerConfig::new("w");
    config.stop_grace = Duration::from_secs(1);
    let poller = Arc::new(DbPoller::new(store.clone(), Some(key), config));
    let mut ended = Vec::new();
    let started = std::time::Instant::now();
    poller
        .run(tokio::time::sleep(Duration::from_secs(2)), |polled| {
            ended.push(polled.name.clone());
        })
        .await
        .unwrap();
    // Told to stop at 2 s; the silent server's sync (30 s per answer) is
    // left after the 1 s grace.
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert_eq!(ended, ["quick"]);
}

/// Each scenario on both engines: a SQLite file, and a PostgreSQL database
/// of its own (skipped, saying so, without `scripts/postgres.sh start`).
macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    let store = super::SqlStore::open(&dir.path().join("mail.db")).await.unwrap();
                    super::$name(store).await;
                }
            )*
        }
        #[cfg(feature = "postgres")]
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(url) = pop3_client::testing::postgres_database().await else {
                        return;
                    };
                    let store = super::SqlStore::connect(&url).await.unwrap();
                    super::$name(store).await;
                }
            )*
        }
    };
}

on_both_engines!(
    accounts_keep_secrets_sealed_and_one_active_per_owner,
    two_workers_store_each_message_once_and_a_wrong_password_pauses_alone,
    the_server_profile_is_kept_so_an_empty_poll_costs_five_round_trips,
    a_server_that_stops_answering_delays_no_other_mailbox,
    a_settings_change_stops_the_sync_at_its_next_group,
    a_stop_waits_for_syncs_in_flight_no_longer_than_its_grace,
);
