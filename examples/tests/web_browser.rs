//! The web application in a real browser: headless Chromium driven through
//! chromedriver (Debian's, `scripts/browser.sh install`) by fantoccini,
//! against the real `web` binary (`--demo`, plus Dovecot's CA), a real
//! Dovecot mailbox and Dovecot's submission service. Each step takes a
//! screenshot into `target/web-screenshots/` (CI keeps them).
//!
//! The provider sign-in runs the application over PostgreSQL when
//! `scripts/postgres.sh start` runs it (CI), the rest over SQLite.
//!
//! Skipped, saying so, without chromedriver, Dovecot or the submission
//! service, unless POP3_REQUIRE_BROWSER / POP3_REQUIRE_DOVECOT /
//! POP3_REQUIRE_SUBMISSION (CI) make that a failure.
//!
//! One test needs neither a browser nor an outside server (plain HTTP to
//! `web --demo` and its own servers), so it always runs: forms without
//! their CSRF token are refused, and no password reaches a page, the
//! debug log or the database's bytes in clear.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use pop3_client::testing::InteropServer;

/// Kills a child process when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn chromedriver() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("chromedriver"))
            .find(|p| p.exists())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("POP3_REQUIRE_BROWSER").is_none(),
            "POP3_REQUIRE_BROWSER is set but chromedriver is missing (scripts/browser.sh install)"
        );
        eprintln!("skipped: browser tests (no chromedriver; run scripts/browser.sh install)");
    }
    found
}

/// chromedriver on a free port of 127.0.0.1: the process and the port.
fn start_chromedriver(driver: &Path) -> (Running, u16) {
    let port = free_port();
    let process = Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (Running(process), port)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The web application, and what it printed at start.
struct Web {
    _process: Running,
    url: String,
    users: Vec<(String, String)>,
    /// The demo's own mailbox: (e-mail, host:port, user, password).
    demo_mailbox: (String, String, String, String),
    /// The demo's SMTP server (implicit TLS; it refuses messages over
    /// 100 KB, as a provider's limit would).
    smtp_port: String,
}

fn start_web(ca_file: &Path, extra: &[String]) -> Web {
    let mut args = vec!["--ca-file".to_owned(), ca_file.display().to_string()];
    args.extend_from_slice(extra);
    start_web_logging(&args, None)
}

/// `web --demo` with `args`; with `log`, its debug log (stderr) goes there.
fn start_web_logging(args: &[String], log: Option<std::fs::File>) -> Web {
    let mut command = Command::new(pop3_examples::example_binary("web").unwrap());
    command
        .args(["--demo", "--listen", "127.0.0.1:0", "--poll-interval", "2"])
        .args(args)
        .stdout(Stdio::piped());
    match log {
        Some(file) => command.env("RUST_LOG", "debug").stderr(file),
        None => command.stderr(Stdio::inherit()),
    };
    let mut child = command.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut web = Web {
        _process: Running(child),
        url: String::new(),
        users: Vec::new(),
        demo_mailbox: Default::default(),
        smtp_port: String::new(),
    };
    let mut stdout = BufReader::new(stdout);
    for line in (&mut stdout).lines() {
        let line = line.unwrap();
        let fields: Vec<&str> = line.split(' ').collect();
        match fields.as_slice() {
            ["url:", url] => web.url = url.trim_end_matches('/').to_owned(),
            ["user:", login, password] => web.users.push((login.to_string(), password.to_string())),
            ["mailbox:", email, addr, user, password] if email.ends_with("@demo.test") => {
                web.demo_mailbox = (
                    email.to_string(),
                    addr.to_string(),
                    user.to_string(),
                    password.to_string(),
                );
            }
            ["smtp:", addr] => {
                web.smtp_port = addr.rsplit(':').next().unwrap_or("").to_owned();
                break;
            }
            _ => {}
        }
    }
    // Whatever it prints later is read, so it never blocks on a full pipe.
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut stdout, &mut std::io::sink());
    });
    assert!(
        !web.url.is_empty() && web.users.len() == 2,
        "the web application did not start"
    );
    web
}

async fn browser(port: u16, lang: &str) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".to_owned(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1100,1500", format!("--lang={lang}")],
            "prefs": { "intl.accept_languages": lang },
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let start = Instant::now();
    loop {
        match ClientBuilder::new(connector.clone())
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(client) => return client,
            Err(e) if start.elapsed() < Duration::from_secs(20) => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("chromedriver: {e}"),
        }
    }
}

fn shots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("web-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(shots().join(format!("{name}.png")), png).unwrap();
}

async fn fill(c: &Client, id: &str, text: &str) {
    let field = c.find(Locator::Id(id)).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

async fn attr(c: &Client, css: &str, name: &str) -> Option<String> {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .attr(name)
        .await
        .unwrap()
}

async fn exists(c: &Client, css: &str) -> bool {
    !c.find_all(Locator::Css(css)).await.unwrap().is_empty()
}

async fn text(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Clicks what submits a form, and waits for the next page: the old
/// page's root gone, the new one loaded.
async fn click(c: &Client, css: &str) {
    let old = c.find(Locator::Css("html")).await.unwrap();
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let start = Instant::now();
    while old.tag_name().await.is_ok() {
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "{css}: no new page"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    loop {
        let state = c
            .execute("return document.readyState", vec![])
            .await
            .unwrap();
        if state.as_str() == Some("complete") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Ticks or unticks a checkbox (no new page).
async fn toggle(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// The add form filled for an incoming server; `outgoing` is the outgoing
/// server's host and port, with a user and password of its own (or None
/// for "same credentials"); no outgoing server when None.
#[allow(clippy::too_many_arguments)]
async fn fill_add_form(
    c: &Client,
    base: &str,
    name: &str,
    email: &str,
    server: &str,
    port: &str,
    user: &str,
    password: &str,
    outgoing: Option<(&str, &str, Option<&str>, Option<&str>)>,
    delete: &str,
) {
    c.goto(&format!("{base}/settings/email/pop3/new"))
        .await
        .unwrap();
    fill(c, "account_name", name).await;
    fill(c, "email", email).await;
    fill(c, "incoming_server", server).await;
    fill(c, "port", port).await;
    fill(c, "username", user).await;
    fill(c, "password", password).await;
    if let Some((host, port, user, password)) = outgoing {
        fill(c, "outgoing_server", host).await;
        fill(c, "outgoing_port", port).await;
        if let Some((user, password)) = user.zip(password) {
            toggle(c, "#same_outgoing").await;
            fill(c, "outgoing_username", user).await;
            fill(c, "outgoing_password", password).await;
        }
    }
    c.find(Locator::Id("delete_policy"))
        .await
        .unwrap()
        .select_by_value(delete)
        .await
        .unwrap();
}

async fn wait_health(c: &Client, base: &str, name: &str, want: &str) {
    let start = Instant::now();
    loop {
        c.goto(&format!("{base}/settings/email/pop3"))
            .await
            .unwrap();
        let css = format!("tr[data-mailbox='{name}']");
        if attr(c, &css, "data-health").await.as_deref() == Some(want) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{name} never {want}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Changes `user`'s password at the Dovecot server (its users file).
fn set_dovecot_password(dovecot: &InteropServer, user: &str, password: &str) {
    let status = Command::new("bash")
        .arg(dovecot.get("fill_script"))
        .args(["set-password", user, password])
        .env("POP3_DOVECOT_DIR", &dovecot.dir)
        .status()
        .unwrap();
    assert!(status.success());
}

/// Drops a message with `message_id` into a Dovecot Maildir.
fn drop_mail(maildir: &Path, n: usize, message_id: &str) {
    let owner = std::fs::metadata(maildir).unwrap();
    let name = format!("{}.M{n}P1Q1.web", std::process::id());
    let tmp = maildir.join("tmp").join(&name);
    std::fs::write(
        &tmp,
        format!("From: Carla Lima <carla@cliente.example>\r\nTo: web@localhost\r\nSubject: web test {n}\r\nMessage-ID: <{message_id}>\r\nDate: Tue, 1 Dec 2026 10:0{n}:00 +0000\r\n\r\nHello {n}\r\n"),
    )
    .unwrap();
    std::os::unix::fs::chown(&tmp, Some(owner.uid()), Some(owner.gid())).unwrap();
    std::fs::rename(&tmp, maildir.join("new").join(name)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pop3_screens_in_a_real_browser() {
    let Some(driver) = chromedriver() else { return };
    let Some(dovecot) = InteropServer::find(
        "POP3_DOVECOT_DIR",
        "/tmp/pop3-dovecot",
        "POP3_REQUIRE_DOVECOT",
        "browser tests; run scripts/dovecot.sh start",
    ) else {
        return;
    };
    let Some(submission) = InteropServer::find(
        "POP3_SUBMISSION_DIR",
        "/tmp/pop3-submission",
        "POP3_REQUIRE_SUBMISSION",
        "browser tests; run scripts/submission.sh start",
    ) else {
        return;
    };
    // One authority file for Dovecot's POP3 and its submission service.
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let mut pem = std::fs::read(dovecot.get("ca_file")).unwrap();
    pem.extend(std::fs::read(submission.get("ca_file")).unwrap());
    std::fs::write(&ca, pem).unwrap();
    // A Dovecot mailbox of this test's own, with three messages.
    let user = format!("{}150", dovecot.get("many_prefix"));
    let maildir = Path::new(dovecot.get("many_home"))
        .join(&user)
        .join("Maildir");
    for sub in ["new", "cur", "tmp"] {
        for entry in std::fs::read_dir(maildir.join(sub)).unwrap() {
            std::fs::remove_file(entry.unwrap().path()).unwrap();
        }
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let ids: Vec<String> = (0..3).map(|n| format!("{stamp}.{n}@web.test")).collect();
    for (n, id) in ids.iter().enumerate() {
        drop_mail(&maildir, n, id);
    }
    // And one in HTML with a script and a tracking image.
    let html_id = format!("{stamp}.html@web.test");
    {
        let owner = std::fs::metadata(&maildir).unwrap();
        let tmp = maildir.join("tmp").join("html.web");
        std::fs::write(
            &tmp,
            format!("From: News <news@example.com>\r\nTo: web@localhost\r\nSubject: html\r\nMessage-ID: <{html_id}>\r\nDate: Tue, 1 Dec 2026 09:00:00 +0000\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Hello <b id=\"bold\">there</b></p><script>document.title='pwned'</script><img src=\"http://127.0.0.1:9/track.gif\" onerror=\"document.title='pwned'\">\r\n"),
        )
        .unwrap();
        std::os::unix::fs::chown(&tmp, Some(owner.uid()), Some(owner.gid())).unwrap();
        std::fs::rename(&tmp, maildir.join("new").join("html.web")).unwrap();
    }

    let (_driver, port) = start_chromedriver(&driver);
    let web = start_web(&ca, &[]);
    let base = web.url.clone();
    let c = browser(port, "en").await;

    // Sign in.
    c.goto(&format!("{base}/login")).await.unwrap();
    fill(&c, "login", &web.users[0].0).await;
    fill(&c, "password", &web.users[0].1).await;
    shot(&c, "01-sign-in").await;
    click(&c, "#sign-in").await;
    assert_eq!(text(&c, "h1").await, "POP3 accounts");

    // A wrong password: the error at the password field, nothing saved.
    let pop3_port = dovecot.get("tls_port");
    let outgoing = (
        "127.0.0.1",
        submission.get("starttls_port"),
        Some(submission.get("user")),
        Some(submission.get("password")),
    );
    fill_add_form(
        &c,
        &base,
        "work",
        "web@localhost",
        "127.0.0.1",
        pop3_port,
        &user,
        "wrong-password",
        Some(outgoing),
        "never",
    )
    .await;
    shot(&c, "02-add-form").await;
    click(&c, "#add-account").await;
    assert_eq!(
        attr(&c, "#password", "aria-invalid").await.as_deref(),
        Some("true")
    );
    let described = attr(&c, "#password", "aria-describedby").await.unwrap();
    assert!(described.contains("password-error"), "{described}");
    let error = text(&c, "#password-error").await;
    assert!(error.contains("login"), "{error}");
    shot(&c, "03-wrong-password").await;
    c.goto(&format!("{base}/settings/email/pop3"))
        .await
        .unwrap();
    assert!(
        !exists(&c, "tr[data-mailbox='work']").await,
        "nothing saved"
    );

    // The right one: listed, active, healthy after the poller's round, its
    // mail in the inbox.
    fill_add_form(
        &c,
        &base,
        "work",
        "web@localhost",
        "127.0.0.1",
        pop3_port,
        &user,
        dovecot.get("password"),
        Some(outgoing),
        "never",
    )
    .await;
    click(&c, "#add-account").await;
    assert_eq!(
        attr(&c, "tr[data-mailbox='work']", "data-active")
            .await
            .as_deref(),
        Some("true")
    );
    wait_health(&c, &base, "work", "ok").await;
    shot(&c, "04-listed-ok").await;
    c.goto(&format!("{base}/inbox")).await.unwrap();
    for id in &ids {
        assert!(
            exists(&c, &format!("tr[data-message-id='{id}']")).await,
            "{id} in the inbox"
        );
    }
    assert!(
        text(&c, "#messages").await.contains("Carla Lima"),
        "linked to the lead"
    );
    shot(&c, "05-inbox").await;
    // A message's HTML, sanitized: its markup kept, no script, no handler.
    click(&c, &format!("tr[data-message-id='{html_id}'] td a")).await;
    assert_eq!(text(&c, "#message b").await, "there");
    assert!(!exists(&c, "#message script").await);
    assert!(!exists(&c, "#message [onerror]").await);
    assert_ne!(c.title().await.unwrap(), "pwned");
    // The lead's page: its mail by its address; a new address, other mail.
    c.goto(&format!("{base}/people")).await.unwrap();
    click(&c, "a[href^='/leads/']").await;
    assert_eq!(
        c.find_all(Locator::Css("#messages tr[data-message-id]"))
            .await
            .unwrap()
            .len(),
        3
    );
    fill(&c, "email", "carla@novo.example").await;
    click(&c, "#lead-form button").await;
    assert!(
        !exists(&c, "#messages").await,
        "no mail carries the new address"
    );
    shot(&c, "05b-lead-new-address").await;
    fill(&c, "email", "carla@cliente.example").await;
    click(&c, "#lead-form button").await;
    assert_eq!(
        c.find_all(Locator::Css("#messages tr[data-message-id]"))
            .await
            .unwrap()
            .len(),
        3
    );

    // A second mailbox (the demo's), not active until activated.
    let (email, addr, demo_user, demo_password) = web.demo_mailbox.clone();
    let (host, demo_port) = addr.split_once(':').unwrap();
    fill_add_form(
        &c,
        &base,
        "demo",
        &email,
        host,
        demo_port,
        &demo_user,
        &demo_password,
        Some(("127.0.0.1", &web.smtp_port, None, None)),
        "never",
    )
    .await;
    // The demo's outgoing server with the same credentials, over TLS.
    toggle(&c, "#outgoing_ssl").await;
    click(&c, "#add-account").await;
    assert_eq!(
        attr(&c, "tr[data-mailbox='demo']", "data-active")
            .await
            .as_deref(),
        Some("false")
    );
    click(&c, "button[data-activate='demo']").await;
    assert_eq!(
        attr(&c, "tr[data-mailbox='demo']", "data-active")
            .await
            .as_deref(),
        Some("true")
    );
    assert_eq!(
        attr(&c, "tr[data-mailbox='work']", "data-active")
            .await
            .as_deref(),
        Some("false")
    );
    shot(&c, "06-second-active").await;
    // The demo mailbox's mail shows within a poll interval or so.
    let start = Instant::now();
    loop {
        c.goto(&format!("{base}/inbox")).await.unwrap();
        if exists(&c, "tr[data-message-id='demo-1@demo.test']").await {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the demo mailbox's mail never showed"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // A message over the demo server's limit: refused, the kind and the
    // server's words shown.
    c.goto(&format!("{base}/compose")).await.unwrap();
    fill(&c, "to", "someone@example.org").await;
    fill(&c, "subject", "too big").await;
    c.execute(
        "document.getElementById('body').value = 'x'.repeat(150000);",
        vec![],
    )
    .await
    .unwrap();
    click(&c, "#send").await;
    let refusal = text(&c, ".notice.bad").await;
    assert!(
        refusal.contains("too-big") && refusal.contains("552"),
        "{refusal}"
    );
    shot(&c, "06a-send-refused").await;
    c.goto(&format!("{base}/settings/email/pop3"))
        .await
        .unwrap();
    click(&c, "button[data-activate='work']").await;
    assert_eq!(
        attr(&c, "tr[data-mailbox='work']", "data-active")
            .await
            .as_deref(),
        Some("true")
    );

    // The administrator fixes the sharing: the form then shows it, fixed.
    c.goto(&format!("{base}/admin")).await.unwrap();
    toggle(&c, "#fixed-everyone").await;
    click(&c, "#save-policy").await;
    assert!(text(&c, ".notice.ok").await.contains("Saved"));
    c.goto(&format!("{base}/settings/email/pop3/new"))
        .await
        .unwrap();
    assert!(c
        .find(Locator::Id("sharing"))
        .await
        .unwrap()
        .attr("disabled")
        .await
        .unwrap()
        .is_some());
    assert_eq!(text(&c, "#sharing").await, "Every user");
    shot(&c, "06b-sharing-fixed").await;

    // An address at a provider the library knows fills the servers from
    // its preset (asked of the application, so any preset, here Zoho's
    // data centres and Outlook); corrected, the fields the script filled
    // follow it, and a field the user typed in is left alone.
    c.goto(&format!("{base}/settings/email/pop3/new"))
        .await
        .unwrap();
    let values = |c: Client| async move {
        let mut values = Vec::new();
        for (id, property) in [
            ("incoming_server", "value"),
            ("port", "value"),
            ("ssl", "checked"),
            ("outgoing_server", "value"),
            ("outgoing_port", "value"),
            ("outgoing_ssl", "checked"),
            ("username", "value"),
        ] {
            values.push(
                c.find(Locator::Id(id))
                    .await
                    .unwrap()
                    .prop(property)
                    .await
                    .unwrap()
                    .unwrap_or_default(),
            );
        }
        values.join(" ")
    };
    for (email, typed_server, want) in [
        (
            "someone@zoho.com",
            None,
            "pop.zoho.com 995 true smtp.zoho.com 465 true someone@zoho.com",
        ),
        (
            "someone@zoho.eu",
            None,
            "pop.zoho.eu 995 true smtp.zoho.eu 465 true someone@zoho.eu",
        ),
        (
            "someone@outlook.com",
            Some("mail.example.net"),
            "mail.example.net 995 true smtp.office365.com 587 false someone@outlook.com",
        ),
    ] {
        if let Some(server) = typed_server {
            fill(&c, "incoming_server", server).await;
        }
        fill(&c, "email", email).await;
        fill(&c, "account_name", "preset").await;
        let start = Instant::now();
        loop {
            let filled = values(c.clone()).await;
            if filled == want {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the preset never filled the form: {filled:?}, not {want:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    shot(&c, "06c-preset-filled").await;

    // Gmail's recent: with deletion after retrieval: refused at the field.
    fill_add_form(
        &c,
        &base,
        "gmail",
        "someone@gmail.com",
        "",
        "",
        "recent:someone@gmail.com",
        "app-password",
        None,
        "after-retrieval",
    )
    .await;
    click(&c, "#add-account").await;
    assert_eq!(
        attr(&c, "#delete_policy", "aria-invalid").await.as_deref(),
        Some("true")
    );
    assert!(text(&c, "#delete_policy-error").await.contains("recent:"));
    shot(&c, "07-recent-refused").await;

    // The incoming password: a wrong one keeps the old, the right one is kept.
    c.goto(&format!("{base}/settings/email/pop3/work"))
        .await
        .unwrap();
    fill(&c, "password", "not-the-password").await;
    click(&c, "form[data-side='incoming'] button").await;
    assert_eq!(
        attr(
            &c,
            "form[data-side='incoming'] input[name='password']",
            "aria-invalid"
        )
        .await
        .as_deref(),
        Some("true")
    );
    assert!(text(&c, "form[data-side='incoming']")
        .await
        .contains("old one is kept"));
    shot(&c, "08-wrong-new-password").await;
    fill(&c, "password", dovecot.get("password")).await;
    click(&c, "form[data-side='incoming'] button").await;
    assert!(text(&c, ".notice.ok")
        .await
        .contains("changed and verified"));
    // The mailbox still works with what was kept.
    wait_health(&c, &base, "work", "ok").await;

    // Send through the active mailbox's outgoing server: at the sink.
    let subject = format!("sent from the browser {stamp}");
    c.goto(&format!("{base}/compose")).await.unwrap();
    fill(&c, "to", "someone@example.org").await;
    fill(&c, "subject", &subject).await;
    fill(&c, "body", "Hello from the web application.").await;
    click(&c, "#send").await;
    assert!(
        text(&c, ".notice").await.contains("Message sent"),
        "{}",
        text(&c, ".notice").await
    );
    shot(&c, "09-sent").await;
    let sink = PathBuf::from(submission.get("sink_dir")).join("new");
    let start = Instant::now();
    loop {
        let found = std::fs::read_dir(&sink).unwrap().any(|e| {
            std::fs::read_to_string(e.unwrap().path()).is_ok_and(|t| t.contains(&subject))
        });
        if found {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the message never reached the sink"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The password changed at the provider and not here (the FAQ: nothing
    // arrives until both sides agree): the poller is refused, the mailbox
    // pauses and its row says what to do; given the new password here, it
    // flows again.
    let pw_user = dovecot.get("password_change_user");
    assert!(
        !pw_user.is_empty(),
        "Dovecot was started by an older scripts/dovecot.sh: start it again"
    );
    set_dovecot_password(&dovecot, pw_user, dovecot.get("password"));
    // Whatever happens below, the server's password is put back.
    struct RestorePassword<'a>(&'a InteropServer);
    impl Drop for RestorePassword<'_> {
        fn drop(&mut self) {
            // No assertion here: a panic while unwinding would abort.
            let server = self.0;
            let _ = Command::new("bash")
                .arg(server.get("fill_script"))
                .args(["set-password", server.get("password_change_user")])
                .arg(server.get("password"))
                .env("POP3_DOVECOT_DIR", &server.dir)
                .status();
        }
    }
    let _restore = RestorePassword(&dovecot);
    fill_add_form(
        &c,
        &base,
        "changed",
        "pw@localhost",
        "127.0.0.1",
        pop3_port,
        pw_user,
        dovecot.get("password"),
        Some(outgoing),
        "never",
    )
    .await;
    click(&c, "#add-account").await;
    click(&c, "button[data-activate='changed']").await;
    wait_health(&c, &base, "changed", "ok").await;
    let new_password = format!("changed-{stamp}");
    set_dovecot_password(&dovecot, pw_user, &new_password);
    wait_health(&c, &base, "changed", "paused").await;
    let row = text(&c, "tr[data-mailbox='changed'] .health").await;
    assert!(row.contains("Paused"), "{row}");
    assert_eq!(
        text(&c, "tr[data-mailbox='changed'] .remedy").await,
        "What to do: Check the user name and password.",
        "{row}"
    );
    shot(&c, "09b-paused-with-remedy").await;
    c.goto(&format!("{base}/settings/email/pop3/changed"))
        .await
        .unwrap();
    fill(&c, "password", &new_password).await;
    click(&c, "form[data-side='incoming'] button").await;
    assert!(text(&c, ".notice.ok")
        .await
        .contains("changed and verified"));
    wait_health(&c, &base, "changed", "ok").await;
    assert!(!exists(&c, "tr[data-mailbox='changed'] .remedy").await);
    c.close().await.unwrap();

    // The same pages in Portuguese, by the browser's language.
    let pt = browser(port, "pt-BR").await;
    pt.goto(&format!("{base}/login")).await.unwrap();
    fill(&pt, "login", &web.users[0].0).await;
    fill(&pt, "password", &web.users[0].1).await;
    click(&pt, "#sign-in").await;
    assert_eq!(text(&pt, "h1").await, "Contas POP3");
    pt.goto(&format!("{base}/settings/email/pop3/new"))
        .await
        .unwrap();
    assert_eq!(text(&pt, "#add-account").await, "Adicionar conta");
    shot(&pt, "10-add-form-pt").await;
    pt.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_with_a_provider_through_the_applications_redirect() {
    use pop3_client::testing::oauth::FakeProvider;
    let Some(driver) = chromedriver() else { return };
    let Some(env) = InteropServer::find(
        "POP3_OAUTH_DIR",
        "/tmp/pop3-oauth",
        "POP3_REQUIRE_OAUTH",
        "OAuth2 browser test; run scripts/oauth.sh start",
    ) else {
        return;
    };
    // A provider whose tokens Dovecot's passdb oauth2 accepts (the same
    // signing key as the one it introspects at).
    let key = std::fs::read(env.get("key_file")).unwrap();
    let provider = FakeProvider::signed(key.trim_ascii(), env.get("user"), 300).unwrap();
    let status = Command::new("bash")
        .arg(env.get("fill_script"))
        .args(["fill", "2"])
        .env("POP3_OAUTH_DIR", &env.dir)
        .status()
        .unwrap();
    assert!(status.success());
    let (_driver, port) = start_chromedriver(&driver);
    let custom = format!(
        "{},{},web-test-client",
        provider.auth_url(),
        provider.token_url()
    );
    // This one on PostgreSQL, when it runs (scripts/postgres.sh start).
    let mut extra = vec!["--oauth-custom".to_owned(), custom];
    if let Some(url) = pop3_client::testing::postgres_database().await {
        extra.extend(["--db".to_owned(), url]);
    }
    let web = start_web(Path::new(env.get("ca_file")), &extra);
    let base = web.url.clone();
    let c = browser(port, "en").await;
    c.goto(&format!("{base}/login")).await.unwrap();
    fill(&c, "login", &web.users[1].0).await;
    fill(&c, "password", &web.users[1].1).await;
    click(&c, "#sign-in").await;
    // The form without a password; "Sign in with SSO" instead of "Add".
    let user = env.get("user");
    fill_add_form(
        &c,
        &base,
        "sso",
        &format!("{user}@localhost"),
        "127.0.0.1",
        env.get("tls_port"),
        user,
        "",
        Some(("127.0.0.1", env.get("submission_port"), None, None)),
        "never",
    )
    .await;
    shot(&c, "11-oauth-form").await;
    // To the provider (which signs in at once) and back to the callback.
    click(&c, "button[data-oauth='custom']").await;
    let start = Instant::now();
    while !exists(&c, "tr[data-mailbox='sso']").await {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "never back at the list: {}",
            c.source().await.unwrap()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        attr(&c, "tr[data-mailbox='sso']", "data-active")
            .await
            .as_deref(),
        Some("true")
    );
    // The poller logs in with the grant: healthy, its mail in the inbox.
    wait_health(&c, &base, "sso", "ok").await;
    shot(&c, "12-oauth-listed").await;
    c.goto(&format!("{base}/inbox")).await.unwrap();
    assert_eq!(
        c.find_all(Locator::Css("tr[data-message-id]"))
            .await
            .unwrap()
            .len(),
        2
    );
    // Not an administrator: the policy is shown, not changed.
    c.goto(&format!("{base}/admin")).await.unwrap();
    assert!(text(&c, "main").await.contains("Only the administrator"));
    assert!(!exists(&c, "#save-policy").await);
    c.close().await.unwrap();
}

/// One HTTP/1.1 exchange with the application (a connection each): the
/// status, the headers and the body.
fn http(
    base: &str,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    form: &[(&str, &str)],
) -> (u16, String, String) {
    use std::io::{Read, Write};
    let encode = |text: &str| -> String {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    let body = form
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let host = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    // A server that stops answering fails the test instead of hanging it.
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nAccept-Language: en\r\n"
    );
    if let Some(cookie) = cookie {
        request.push_str(&format!("Cookie: {cookie}\r\n"));
    }
    if method == "POST" {
        request.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(&body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

/// What the page's hidden CSRF field holds.
fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    page[at..].split('"').next().unwrap().to_owned()
}

/// Without a browser or an outside server (the demo's own POP3 and SMTP
/// servers): every form posted without its CSRF token, or with another
/// session's, is refused and changes nothing; and no password (the CRM
/// user's, a mailbox's right one, a wrong one tried) reaches a page, the
/// debug log or the database's bytes in clear, while the mailbox added
/// with it works.
#[test]
fn forms_without_their_csrf_token_are_refused_and_no_secret_is_kept_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("web.db");
    let log_path = dir.path().join("web.log");
    let web = start_web_logging(
        &["--db".to_owned(), format!("sqlite:{}", db.display())],
        Some(std::fs::File::create(&log_path).unwrap()),
    );
    let base = web.url.clone();
    let (login, user_password) = web.users[0].clone();
    let (email, addr, mailbox_user, mailbox_password) = web.demo_mailbox.clone();
    let (host, pop3_port) = addr.split_once(':').unwrap();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let wrong_password = format!("Wrong-Secret-{stamp}");

    let sign_in = || {
        let (status, head, _) = http(
            &base,
            "POST",
            "/login",
            None,
            &[("login", &login), ("password", &user_password)],
        );
        assert_eq!(status, 303, "{head}");
        let cookie = head
            .lines()
            .find_map(|l| l.strip_prefix("set-cookie: "))
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let (_, _, page) = http(&base, "GET", "/settings/email/pop3/new", Some(&cookie), &[]);
        (cookie.clone(), csrf_of(&page))
    };
    let (cookie, csrf) = sign_in();
    let (other_cookie, other_csrf) = sign_in();
    assert_ne!(csrf, other_csrf, "a token per session");
    let _ = other_cookie;

    let add_form = |password: &str| -> Vec<(&'static str, String)> {
        vec![
            ("account_name", "demo".to_owned()),
            ("email", email.clone()),
            ("incoming_server", host.to_owned()),
            ("port", pop3_port.to_owned()),
            ("ssl", "on".to_owned()),
            ("username", mailbox_user.clone()),
            ("password", password.to_owned()),
            ("same_outgoing", "on".to_owned()),
            ("outgoing_server", "127.0.0.1".to_owned()),
            ("outgoing_port", web.smtp_port.clone()),
            ("outgoing_ssl", "on".to_owned()),
            ("delete_policy", "never".to_owned()),
        ]
    };
    let post = |path: &str, fields: &[(&str, String)], token: Option<&str>| {
        let mut form: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        if let Some(token) = token {
            form.push(("csrf", token));
        }
        http(&base, "POST", path, Some(&cookie), &form)
    };
    let listed = || {
        let (status, _, page) = http(&base, "GET", "/settings/email/pop3", Some(&cookie), &[]);
        assert_eq!(status, 200);
        page
    };

    // Every form, without its token or with another session's: refused.
    let right = add_form(&mailbox_password);
    let password_form = vec![
        ("side", "incoming".to_owned()),
        ("password", "x".to_owned()),
    ];
    let lead_form = vec![("email", "someone@else.example".to_owned())];
    let compose_form = vec![
        ("to", "someone@example.org".to_owned()),
        ("subject", "forged".to_owned()),
        ("body", "forged".to_owned()),
    ];
    let policy_form = vec![("policy", "fixed-everyone".to_owned())];
    let forms: Vec<(&str, &[(&str, String)])> = vec![
        ("/settings/email/pop3/new", &right),
        ("/settings/email/pop3/oauth/start", &[]),
        ("/settings/email/pop3/demo/activate", &[]),
        ("/settings/email/pop3/demo/password", &password_form),
        ("/settings/email/pop3/demo/remove", &[]),
        ("/leads/1", &lead_form),
        ("/compose", &compose_form),
        ("/admin", &policy_form),
    ];
    // Every answer is kept, to look for the passwords in it at the end.
    let mut pages = Vec::new();
    for (path, fields) in &forms {
        for token in [None, Some(other_csrf.as_str()), Some("")] {
            let (status, head, body) = post(path, fields, token);
            assert_eq!(status, 403, "{path} with {token:?}: {head}");
            pages.push(format!("{head}\r\n\r\n{body}"));
        }
    }
    assert!(!listed().contains("data-mailbox=\"demo\""), "nothing added");
    // Signing out without the token is refused too (the cookie is not
    // cleared) and leaves the session as it was.
    let (status, head, _) = http(&base, "POST", "/logout", Some(&cookie), &[]);
    assert_eq!(status, 403, "{head}");
    assert!(!head.contains("set-cookie"), "{head}");
    assert!(listed().contains("POP3 accounts"), "still signed in");

    // A wrong password tried, then the right one: neither on any page.
    let (status, head, page) = post(
        "/settings/email/pop3/new",
        &add_form(&wrong_password),
        Some(&csrf),
    );
    assert_eq!(status, 422);
    assert!(page.contains("aria-invalid=\"true\""), "refused at a field");
    assert!(page.contains(&mailbox_user), "the form shown again, filled");
    pages.push(format!("{head}\r\n\r\n{page}"));
    let (status, head, page) = post("/settings/email/pop3/new", &right, Some(&csrf));
    assert_eq!(status, 303, "{head}");
    pages.push(format!("{head}\r\n\r\n{page}"));
    let start = Instant::now();
    while !listed().contains("data-health=\"ok\"") {
        assert!(start.elapsed() < Duration::from_secs(60), "never polled");
        std::thread::sleep(Duration::from_millis(300));
    }
    pages.push(listed());
    for path in [
        "/settings/email/pop3/demo",
        "/settings/email/pop3/new",
        "/inbox",
        "/people",
        "/compose",
        "/admin",
    ] {
        let (status, _, page) = http(&base, "GET", path, Some(&cookie), &[]);
        assert_eq!(status, 200, "{path}");
        pages.push(page);
    }
    assert!(
        pages.iter().any(|p| p.contains("data-message-id")),
        "the mail arrived"
    );
    drop(web);

    // In clear, and as SASL PLAIN and LOGIN would carry them (base64).
    use base64::Engine as _;
    let base64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    let needles = [
        user_password.clone(),
        mailbox_password.clone(),
        wrong_password.clone(),
        base64(&mailbox_password),
        base64(&wrong_password),
        base64(&format!("\0{mailbox_user}\0{mailbox_password}")),
        base64(&format!("\0{mailbox_user}\0{wrong_password}")),
    ];
    let log = std::fs::read(&log_path).unwrap();
    assert!(log.len() > 1000, "a debug log was written");
    let mut places: Vec<(String, Vec<u8>)> = pages
        .into_iter()
        .enumerate()
        .map(|(i, p)| (format!("page {i}"), p.into_bytes()))
        .collect();
    places.push(("the log".into(), log));
    for file in [db.clone(), db.with_extension("db-wal")] {
        places.push((
            file.display().to_string(),
            std::fs::read(&file).unwrap_or_default(),
        ));
    }
    for (place, bytes) in &places {
        for needle in &needles {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{needle:?} in {place}"
            );
        }
    }
}
