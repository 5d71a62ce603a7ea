//! The routes: sign-in, the POP3 mailbox list, "Add POP3 account", the
//! password changes, the inbox linked to contacts and leads, a lead's page,
//! compose and send, and the administrator's sharing policy.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::{html, Markup};
use pop3_client::account::{Account, Credential, DeletePolicy, Outgoing, ServerSettings};
use pop3_client::sql::{
    AccountRecord, AccountStoreError, DbKey, HealthState, MailboxHealth, SqlStore, StoredMessage,
};
use pop3_client::verify::{verify_incoming, verify_outgoing, Stage};
use pop3_client::{Remedy, Security};

use crate::data::{Crm, Person, Policy, Sharing, User};
use crate::i18n::Lang;
use crate::oauth::{Provider, SignIns};
use crate::views::{checkbox, notice, page, Field};

/// The metadata key of a mailbox's sharing.
const SHARING: &str = "sharing";

/// What every request shares.
pub(crate) struct App {
    /// The library's tables: mailboxes, state, mail, health.
    pub store: SqlStore,
    /// The key sealing the mailboxes' secrets.
    pub key: DbKey,
    /// The CRM's tables.
    pub crm: Crm,
    /// An authority trusted for every mailbox (beside the public ones).
    pub ca_file: Option<PathBuf>,
    /// Where the application is reached (`http://ADDR:PORT`), for the
    /// OAuth2 redirect URI.
    pub(crate) base_url: String,
    /// The providers offered as "Sign in with ...".
    pub(crate) providers: Vec<Provider>,
    /// OAuth2 sign-ins under way.
    pub(crate) sign_ins: SignIns,
}

type Shared = Arc<App>;
type FormData = Form<HashMap<String, String>>;

/// The application's routes.
pub(crate) fn router(app: Shared) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/inbox") }))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/settings/email/pop3", get(mailboxes))
        .route("/settings/email/pop3/new", get(new_form).post(add))
        .route("/presets", get(preset))
        .route("/settings/email/pop3/oauth/start", post(oauth_start))
        .route("/oauth/callback", get(oauth_callback))
        .route("/settings/email/pop3/{name}", get(edit_page))
        .route("/settings/email/pop3/{name}/activate", post(activate))
        .route(
            "/settings/email/pop3/{name}/password",
            post(change_password),
        )
        .route("/settings/email/pop3/{name}/remove", post(remove))
        .route("/inbox", get(inbox))
        .route("/inbox/{account}/{delivery}", get(message))
        .route("/people", get(people))
        .route("/leads/{id}", get(lead).post(change_lead))
        .route("/compose", get(compose_page).post(send))
        .route("/admin", get(admin_page).post(set_policy))
        .with_state(app)
}

fn lang(headers: &HeaderMap) -> Lang {
    Lang::from_header(
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    )
}

fn session_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix("session=").map(str::to_owned))
}

/// The signed-in user, or a redirect to the sign-in page.
async fn signed_in(app: &App, headers: &HeaderMap) -> Result<User, Response> {
    let token = session_token(headers).ok_or_else(|| Redirect::to("/login").into_response())?;
    match app.crm.session(&token).await {
        Ok(Some(user)) => Ok(user),
        Ok(None) => Err(Redirect::to("/login").into_response()),
        Err(e) => Err(server_error(&e.to_string())),
    }
}

/// The signed-in user of a form, its CSRF token checked.
async fn form_user(
    app: &App,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<User, Response> {
    let user = signed_in(app, headers).await?;
    if form.get("csrf") != Some(&user.csrf) {
        return Err((StatusCode::FORBIDDEN, "the form is stale: reload the page").into_response());
    }
    Ok(user)
}

fn server_error(text: &str) -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("the server failed: {text}"),
    )
        .into_response()
}

fn html_page(markup: Markup) -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response()
}

async fn login_page(headers: HeaderMap) -> Response {
    html_page(login_markup(lang(&headers), false))
}

fn login_markup(lang: Lang, failed: bool) -> Markup {
    page(
        lang,
        lang.t("sign_in"),
        None,
        html! {
            @if failed { (notice("bad", lang.t("sign_in_failed"))) }
            form method="post" action="/login" {
                (Field { name: "login", label: lang.t("login"), kind: "text", value: "", error: None, hint: None }.render())
                (Field { name: "password", label: lang.t("password"), kind: "password", value: "", error: None, hint: None }.render())
                button type="submit" id="sign-in" { (lang.t("sign_in")) }
            }
        },
    )
}

async fn login(State(app): State<Shared>, headers: HeaderMap, Form(form): FormData) -> Response {
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    match app.crm.sign_in(get("login"), get("password")).await {
        Ok(Some(token)) => (
            [(
                header::SET_COOKIE,
                format!("session={token}; HttpOnly; SameSite=Lax; Path=/"),
            )],
            Redirect::to("/settings/email/pop3"),
        )
            .into_response(),
        Ok(None) => (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            login_markup(lang(&headers), true).into_string(),
        )
            .into_response(),
        Err(e) => server_error(&e.to_string()),
    }
}

async fn logout(State(app): State<Shared>, headers: HeaderMap, Form(form): FormData) -> Response {
    // A forged sign-out (no token) is refused like any other form, so it
    // cannot even clear the browser's cookie.
    if let Err(refused) = form_user(&app, &headers, &form).await {
        return refused;
    }
    if let Some(token) = session_token(&headers) {
        let _ = app.crm.sign_out(&token).await;
    }
    (
        [(
            header::SET_COOKIE,
            "session=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0",
        )],
        Redirect::to("/login"),
    )
        .into_response()
}

/// The owner's mailboxes and their health.
async fn owned(
    app: &App,
    user: &User,
) -> Result<Vec<(AccountRecord, Option<MailboxHealth>)>, Response> {
    let records = app
        .store
        .accounts(None)
        .await
        .map_err(|e| server_error(&e.to_string()))?;
    let health = app
        .store
        .health()
        .await
        .map_err(|e| server_error(&e.to_string()))?;
    Ok(records
        .into_iter()
        .filter(|r| r.owner == user.login)
        .map(|r| {
            let h = health.iter().find(|h| h.name == r.account.name).cloned();
            (r, h)
        })
        .collect())
}

/// A mailbox's health in words: its state, the last error's own words
/// and, apart, what to do about it (when something is); and the state's
/// name for `data-health`.
fn health_words(
    lang: Lang,
    health: Option<&MailboxHealth>,
) -> (String, Option<String>, &'static str) {
    let Some(health) = health else {
        return (lang.t("health_never").to_owned(), None, "never");
    };
    let state = health.state();
    let key = match state {
        HealthState::Ok => "health_ok",
        HealthState::Never => "health_never",
        HealthState::Failing => "health_failing",
        HealthState::Paused => "health_paused",
    };
    let mut words = lang.t(key).to_owned();
    let mut remedy = None;
    if matches!(state, HealthState::Failing | HealthState::Paused) {
        if let Some((_, text)) = &health.health.last_error {
            words.push_str(": ");
            words.push_str(text);
        }
        remedy = health
            .health
            .remedy
            .as_ref()
            .map(|r| format!("{}: {}", lang.t("remedy"), remedy_words(lang, r)));
    }
    (words, remedy, state.as_str())
}

async fn mailboxes(State(app): State<Shared>, headers: HeaderMap) -> Response {
    let lang = lang(&headers);
    let user = match signed_in(&app, &headers).await {
        Ok(user) => user,
        Err(r) => return r,
    };
    let owned = match owned(&app, &user).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    html_page(page(
        lang,
        lang.t("mailboxes"),
        Some(&user),
        html! {
            p { a href="/settings/email/pop3/new" id="new-account" { (lang.t("add_pop3")) } }
            @if owned.is_empty() { p { (lang.t("no_mailboxes")) } }
            @else {
                table {
                    thead { tr {
                        th { (lang.t("account_name")) } th { (lang.t("email")) } th { (lang.t("incoming_server")) }
                        th { (lang.t("last_sync")) } th { (lang.t("health")) } th { (lang.t("active")) } th {}
                    } }
                    tbody {
                        @for (record, health) in &owned {
                            @let (words, remedy, state) = health_words(lang, health.as_ref());
                            @let name = &record.account.name;
                            tr data-mailbox=(name) data-active=(record.active) data-health=(state) {
                                td { a href=(format!("/settings/email/pop3/{name}")) { (name) } }
                                td { (record.account.email) }
                                td { (record.account.incoming.host) ":" (record.account.incoming.port) }
                                td { (health.as_ref().and_then(|h| h.health.last_success).map(pop3_examples::utc_time).unwrap_or_else(|| "-".into())) }
                                td.health {
                                    (words)
                                    @if let Some(remedy) = remedy { p.remedy { (remedy) } }
                                }
                                td { @if record.active { (lang.t("active")) } @else {
                                    form method="post" action=(format!("/settings/email/pop3/{name}/activate")) class="inline" {
                                        input type="hidden" name="csrf" value=(user.csrf);
                                        button type="submit" data-activate=(name) { (lang.t("activate")) }
                                    }
                                } }
                                td { a href=(format!("/settings/email/pop3/{name}")) { (lang.t("edit")) } }
                            }
                        }
                    }
                }
            }
            h2 { (lang.t("faq")) }
            p { (lang.t("faq_sharing")) }
            p { (lang.t("faq_limits")) }
        },
    ))
}

/// What the form held, to show again.
#[derive(Default)]
struct AddForm {
    values: HashMap<String, String>,
    errors: HashMap<&'static str, String>,
    failure: Option<String>,
    /// Shown for the first time: the values are the form's defaults, not
    /// the user's (the script may replace them from a preset).
    fresh: bool,
}

impl AddForm {
    fn get(&self, key: &str) -> &str {
        self.values.get(key).map(String::as_str).unwrap_or("")
    }

    fn checked(&self, key: &str) -> bool {
        self.values.get(key).is_some_and(|v| v == "on")
    }

    fn error(&mut self, field: &'static str, text: impl Into<String>) {
        self.errors.entry(field).or_insert_with(|| text.into());
    }
}

async fn new_form(State(app): State<Shared>, headers: HeaderMap) -> Response {
    let lang = lang(&headers);
    let user = match signed_in(&app, &headers).await {
        Ok(user) => user,
        Err(r) => return r,
    };
    let policy = app.crm.policy().await.unwrap_or(Policy::UserChooses);
    let mut form = AddForm {
        fresh: true,
        ..AddForm::default()
    };
    for (k, v) in [
        ("ssl", "on"),
        ("same_outgoing", "on"),
        ("port", "995"),
        ("delete_policy", "never"),
    ] {
        form.values.insert(k.to_owned(), v.to_owned());
    }
    html_page(add_markup(lang, &user, &form, policy, &app.providers))
}

fn add_markup(
    lang: Lang,
    user: &User,
    form: &AddForm,
    policy: Policy,
    providers: &[Provider],
) -> Markup {
    let field = |name: &'static str, kind: &'static str, hint: Option<&'static str>| {
        Field {
            name,
            label: lang.t(name),
            kind,
            value: if kind == "password" {
                ""
            } else {
                form.get(name)
            },
            error: form.errors.get(name).map(String::as_str),
            hint: hint.map(|h| lang.t(h)),
        }
        .render()
    };
    let policy_value = form.get("delete_policy");
    let same = form.checked("same_outgoing");
    page(
        lang,
        lang.t("add_pop3"),
        Some(user),
        html! {
            @if let Some(failure) = &form.failure { (notice("bad", failure)) }
            form method="post" action="/settings/email/pop3/new" id="add-form" data-fresh[form.fresh] {
                input type="hidden" name="csrf" value=(user.csrf);
                (field("account_name", "text", None))
                (field("email", "email", None))
                (field("incoming_server", "text", None))
                (field("port", "number", None))
                (checkbox("ssl", lang.t("ssl"), form.checked("ssl")))
                (field("username", "text", None))
                (field("password", "password", Some("password_hint")))
                p.gmail id="gmail-note" { (lang.t("gmail_note")) }
                (checkbox("same_outgoing", lang.t("same_outgoing"), same))
                fieldset id="outgoing" {
                    legend { (lang.t("outgoing")) }
                    small { (lang.t("outgoing_note")) }
                    (field("outgoing_server", "text", None))
                    (field("outgoing_port", "number", None))
                    (checkbox("outgoing_ssl", lang.t("outgoing_ssl"), form.checked("outgoing_ssl")))
                    div id="outgoing-credentials" {
                        (field("outgoing_username", "text", None))
                        (field("outgoing_password", "password", None))
                    }
                }
                div.field {
                    label for="delete_policy" { (lang.t("delete_policy")) }
                    @let error = form.errors.get("delete_policy");
                    select id="delete_policy" name="delete_policy"
                        aria-invalid=[error.map(|_| "true")]
                        aria-describedby=[error.map(|_| "delete_policy-error")] {
                        @for choice in ["never", "after-retrieval", "after-days", "when-deleted-locally"] {
                            option value=(choice) selected[policy_value == choice] { (lang.t(choice)) }
                        }
                    }
                    @if let Some(error) = error { p.error id="delete_policy-error" { (error) } }
                }
                (field("delete_after_days", "number", None))
                div.field {
                    label for="sharing" { (lang.t("sharing")) }
                    @match policy {
                        Policy::Fixed(sharing) => {
                            select id="sharing" name="sharing" disabled aria-describedby="sharing-hint" {
                                option value=(sharing.as_str()) selected { (lang.t(sharing.as_str())) }
                            }
                            small id="sharing-hint" { (lang.t("sharing_fixed")) }
                        }
                        Policy::UserChooses => {
                            select id="sharing" name="sharing" {
                                @for s in [Sharing::Private, Sharing::Everyone] {
                                    option value=(s.as_str()) selected[form.get("sharing") == s.as_str()] { (lang.t(s.as_str())) }
                                }
                            }
                        }
                    }
                }
                button type="submit" id="add-account" { (lang.t("add_account")) }
                @for p in providers {
                    " "
                    button type="submit" formaction="/settings/email/pop3/oauth/start" name="provider" value=(p.key) data-oauth=(p.key) {
                        (lang.t("sign_in_with")) " " (p.label)
                    }
                }
            }
            // Without JavaScript every field shows; with it, the outgoing
            // fields hide while "same credentials" is ticked, and a known
            // address fills the servers when they are empty.
            script { (maud::PreEscaped(FORM_SCRIPT)) }
        },
    )
}

/// The form's behaviour with JavaScript on. The presets come from the
/// library (`/presets`), so the browser knows every provider it knows. A
/// field the script filled follows the address as it is corrected; one
/// the user typed in is never touched; only the answer to the latest
/// address counts.
const FORM_SCRIPT: &str = r#"
(function(){
  function byId(id){ return document.getElementById(id); }
  var same=byId('same_outgoing'),out=byId('outgoing-credentials');
  function sync(){ out.style.display = same.checked ? 'none' : ''; }
  same.addEventListener('change', sync); sync();
  // A field is the script's while it holds what the script (or, on a fresh
  // form, the form's default) put there.
  function ours(el){ return el && (el.type==='checkbox' ? el.dataset.preset===String(el.checked) : (!el.value || el.value===el.dataset.preset)); }
  function put(id, value){ var el=byId(id); if(!ours(el)) return; if(el.type==='checkbox'){ el.checked=value; el.dataset.preset=String(value); } else { el.value=value; el.dataset.preset=value; } }
  if(byId('add-form').hasAttribute('data-fresh')){
    ['port','outgoing_port'].forEach(function(id){ var el=byId(id); if(el) el.dataset.preset=el.value; });
    ['ssl','outgoing_ssl'].forEach(function(id){ var el=byId(id); if(el) el.dataset.preset=String(el.checked); });
  }
  // A preset's servers where the script may write; without one, only a
  // server name the script filled is taken back.
  function servers(p, host, port, ssl, values){
    if(!ours(byId(host))) return;
    if(!p){ put(host, ''); return; }
    put(host, values[0]); put(port, String(values[1])); put(ssl, values[2]);
  }
  var asked=0;
  byId('email').addEventListener('change', function(e){
    var email=e.target.value, mine=++asked;
    fetch('/presets?email='+encodeURIComponent(email)).then(function(r){ return r.ok ? r.json() : null; }).then(function(p){
      if(mine!==asked) return;
      servers(p, 'incoming_server', 'port', 'ssl', p ? [p.incoming_server, p.port, p.ssl] : []);
      servers(p, 'outgoing_server', 'outgoing_port', 'outgoing_ssl', p ? [p.outgoing_server, p.outgoing_port, p.outgoing_ssl] : []);
      put('username', email);
    }).catch(function(){});
  });
})();
"#;

/// The library's preset for an address's provider as JSON (the form's
/// script fills the servers from it); 404 when it has none or refuses the
/// provider (the form's own check then says why), 401 without a session.
async fn preset(
    State(app): State<Shared>,
    headers: HeaderMap,
    axum::extract::Query(query): axum::extract::Query<HashMap<String, String>>,
) -> Response {
    if signed_in(&app, &headers).await.is_err() {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let email = query.get("email").map(String::as_str).unwrap_or("");
    let Ok(Some(preset)) = pop3_client::account::Preset::for_email(email) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let json = serde_json::json!({
        "provider": preset.provider,
        "incoming_server": preset.pop.0,
        "port": preset.pop.1,
        "ssl": preset.pop.2 == Security::Tls,
        "outgoing_server": preset.smtp.0,
        "outgoing_port": preset.smtp.1,
        "outgoing_ssl": preset.smtp.2 == Security::Tls,
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        json.to_string(),
    )
        .into_response()
}

/// The form's field for a library settings field (`incoming.port`).
fn form_field(setting: &str) -> &'static str {
    match setting {
        "name" => "account_name",
        "email" => "email",
        "incoming.host" => "incoming_server",
        "incoming.port" => "port",
        "incoming.security" => "ssl",
        "incoming.user" => "username",
        "incoming.credential" => "password",
        s if s.starts_with("outgoing.host") => "outgoing_server",
        s if s.starts_with("outgoing.port") => "outgoing_port",
        s if s.starts_with("outgoing.user") => "outgoing_username",
        s if s.starts_with("outgoing.credential") => "outgoing_password",
        "delete_policy" => "delete_policy",
        _ => "account_name",
    }
}

/// The field a failed verification step concerns.
fn step_field(stage: Stage, outgoing: bool, same: bool) -> &'static str {
    match (stage, outgoing) {
        (Stage::Resolve | Stage::Connect | Stage::Greeting | Stage::Capabilities, false) => {
            "incoming_server"
        }
        (Stage::Tls, false) => "ssl",
        (Stage::Login | Stage::Auth | Stage::Mailbox, false) => "password",
        (
            Stage::Resolve | Stage::Connect | Stage::Greeting | Stage::Ehlo | Stage::Capabilities,
            true,
        ) => "outgoing_server",
        (Stage::Tls, true) => "outgoing_ssl",
        (_, true) if same => "password",
        (_, true) => "outgoing_password",
        _ => "account_name",
    }
}

/// A remedy in the user's words.
fn remedy_words(lang: Lang, remedy: &Remedy) -> String {
    let pt = lang == Lang::Pt;
    match remedy {
        Remedy::CheckPassword => if pt {
            "Confira o usuário e a senha."
        } else {
            "Check the user name and password."
        }
        .into(),
        Remedy::CreateAppPassword => if pt {
            "Crie uma senha de app no provedor e use-a aqui."
        } else {
            "Create an app-specific password at the provider and use it here."
        }
        .into(),
        Remedy::EnablePop => if pt {
            "Ative o POP nas configurações do provedor."
        } else {
            "Enable POP in the provider's settings."
        }
        .into(),
        Remedy::SignInWithOAuth2 => if pt {
            "Este provedor exige entrar com a conta (OAuth2)."
        } else {
            "This provider needs a sign-in with the account (OAuth2)."
        }
        .into(),
        Remedy::SignInAgain => if pt {
            "Entre novamente com a conta."
        } else {
            "Sign in with the account again."
        }
        .into(),
        Remedy::ChooseRegion { hosts } => format!(
            "{}: {}",
            if pt {
                "Escolha o servidor da sua região"
            } else {
                "Choose your region's server"
            },
            hosts.join(", ")
        ),
        Remedy::TrustCertificate { fingerprint } => format!(
            "{} {fingerprint}",
            if pt {
                "O certificado do servidor não é confiável; confira com o administrador a impressão digital"
            } else {
                "The server's certificate is not trusted; check with the administrator the fingerprint"
            }
        ),
        Remedy::WaitUntil { seconds } => format!(
            "{}{}",
            if pt {
                "Aguarde antes de tentar de novo"
            } else {
                "Wait before trying again"
            },
            seconds.map(|s| format!(" ({s} s)")).unwrap_or_default()
        ),
        Remedy::UseSecurity { security } => format!(
            "{} {}",
            if pt {
                "Esta porta usa outra segurança:"
            } else {
                "This port speaks another security:"
            },
            security.as_str()
        ),
        Remedy::AskAdminToEnableSmtpAuth => if pt {
            "Peça ao administrador para habilitar o SMTP AUTH desta caixa."
        } else {
            "Ask the administrator to enable SMTP AUTH for this mailbox."
        }
        .into(),
        _ => String::new(),
    }
}

fn port_of(text: &str) -> Option<u16> {
    text.trim().parse::<u16>().ok().filter(|p| *p > 0)
}

/// The account the form describes, or the form with its errors.
fn account_of(
    lang: Lang,
    form: &mut AddForm,
    policy: Policy,
    signed_in: Option<Credential>,
) -> Option<Account> {
    let required: &[&'static str] = if signed_in.is_some() {
        &["account_name", "email"]
    } else {
        &["account_name", "email", "password"]
    };
    for required in required {
        if form.get(required).trim().is_empty() {
            form.error(required, lang.t("required"));
        }
    }
    if !form.errors.is_empty() {
        return None;
    }
    let name = form.get("account_name").trim().to_owned();
    let email = form.get("email").trim().to_owned();
    let password = form.get("password").to_owned();
    let credential = signed_in.unwrap_or_else(|| Credential::password(password.clone()));
    let mut account = match Account::for_email(&name, &email, credential) {
        Ok(account) => account,
        Err(e) => {
            form.error(form_field(&e.field), e.problem.clone());
            return None;
        }
    };
    let preset_outgoing = account.outgoing.clone();
    let server = form.get("incoming_server").trim().to_owned();
    if !server.is_empty() {
        account.incoming.host = server;
    } else if account.incoming.host.is_empty() {
        form.error("incoming_server", lang.t("required"));
    }
    let ssl = form.checked("ssl");
    account.incoming.security = if ssl {
        Security::Tls
    } else {
        Security::StartTls
    };
    match form.get("port").trim() {
        "" => account.incoming.port = if ssl { 995 } else { 110 },
        text => match port_of(text) {
            Some(port) => account.incoming.port = port,
            None => form.error("port", lang.t("bad_port")),
        },
    }
    let user = form.get("username").trim().to_owned();
    account.incoming.user = if user.is_empty() { email.clone() } else { user };
    let (preset_host, preset_port, preset_security) = match &preset_outgoing {
        Outgoing::SameCredentials {
            host,
            port,
            security,
        } => (Some(host.clone()), Some(*port), Some(*security)),
        _ => (None, None, None),
    };
    let out_ssl = form.checked("outgoing_ssl");
    let out_host = Some(form.get("outgoing_server").trim().to_owned())
        .filter(|h| !h.is_empty())
        .or(preset_host);
    let out_security = if form.values.contains_key("outgoing_ssl") || preset_security.is_none() {
        if out_ssl {
            Security::Tls
        } else {
            Security::StartTls
        }
    } else {
        preset_security.unwrap_or(Security::StartTls)
    };
    let out_port = match form.get("outgoing_port").trim() {
        "" => Some(
            preset_port
                .filter(|_| preset_security == Some(out_security))
                .unwrap_or(if out_security == Security::Tls {
                    465
                } else {
                    587
                }),
        ),
        text => {
            let port = port_of(text);
            if port.is_none() {
                form.error("outgoing_port", lang.t("bad_port"));
            }
            port
        }
    };
    account.outgoing = match (form.checked("same_outgoing"), out_host, out_port) {
        (true, Some(host), Some(port)) => Outgoing::SameCredentials {
            host,
            port,
            security: out_security,
        },
        (true, None, _) => Outgoing::None,
        (false, Some(host), Some(port)) => {
            let user = form.get("outgoing_username").trim().to_owned();
            let password = form.get("outgoing_password").to_owned();
            if user.is_empty() {
                form.error("outgoing_username", lang.t("required"));
            }
            if password.is_empty() {
                form.error("outgoing_password", lang.t("required"));
            }
            Outgoing::Separate(ServerSettings {
                host,
                port,
                security: out_security,
                user,
                credential: Credential::password(password),
                allow_plaintext_auth: false,
            })
        }
        (false, None, _) => {
            form.error("outgoing_server", lang.t("required"));
            Outgoing::None
        }
        (_, _, None) => Outgoing::None,
    };
    let policy_name = match form.get("delete_policy") {
        "after-days" => {
            let days = form
                .get("delete_after_days")
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|d| (1..=3650).contains(d));
            match days {
                Some(days) => format!("after-days={days}"),
                None => {
                    form.error("delete_after_days", lang.t("bad_days"));
                    "never".to_owned()
                }
            }
        }
        other => other.to_owned(),
    };
    match DeletePolicy::from_name(&policy_name) {
        Ok(policy) => account.delete_policy = policy,
        Err(e) => form.error("delete_policy", e.problem),
    }
    // Gmail's recent: lists the same mail every time: deleting is refused
    // at the field (the library refuses it too).
    if account
        .incoming
        .user
        .to_ascii_lowercase()
        .starts_with("recent:")
        && account.delete_policy != DeletePolicy::KeepOnServer
    {
        form.error("delete_policy", lang.t("recent_delete"));
    }
    let sharing = match policy {
        Policy::Fixed(s) => s,
        Policy::UserChooses => Sharing::from_name(form.get("sharing")).unwrap_or(Sharing::Private),
    };
    account
        .metadata
        .insert(SHARING.to_owned(), sharing.as_str().to_owned());
    if let Err(e) = account.validate() {
        form.error(form_field(&e.field), e.problem.clone());
    }
    form.errors.is_empty().then_some(account)
}

/// Verifies the incoming and the outgoing login (blocking, off the
/// runtime). With the application's CA file, a certificate the public
/// authorities do not know is tried against it too, and kept if it is
/// trusted there.
async fn verify(
    app: &App,
    account: Account,
) -> Result<Account, (Stage, bool, String, Option<Remedy>)> {
    let ca = app.ca_file.clone();
    tokio::task::spawn_blocking(move || {
        let mut account = account;
        let incoming = match verify_incoming(&account) {
            Err(failure)
                if failure.failed == Stage::Tls
                    && ca.is_some()
                    && account.trust.ca_file.is_none() =>
            {
                account.trust.ca_file = ca;
                verify_incoming(&account)
            }
            other => other,
        };
        if let Err(failure) = incoming {
            let remedy = account.remedy(&failure.error);
            return Err((failure.failed, false, failure.error.to_string(), remedy));
        }
        if account.outgoing != Outgoing::None {
            if let Err(failure) = verify_outgoing(&account) {
                let remedy = failure.error.remedy();
                return Err((failure.failed, true, failure.error.to_string(), remedy));
            }
        }
        Ok(account)
    })
    .await
    .unwrap_or_else(|e| Err((Stage::Settings, false, e.to_string(), None)))
}

async fn add(State(app): State<Shared>, headers: HeaderMap, Form(values): FormData) -> Response {
    let lang = lang(&headers);
    let user = match form_user(&app, &headers, &values).await {
        Ok(user) => user,
        Err(r) => return r,
    };
    let policy = app.crm.policy().await.unwrap_or(Policy::UserChooses);
    let mut form = AddForm {
        values,
        ..AddForm::default()
    };
    let Some(account) = account_of(lang, &mut form, policy, None) else {
        return form_again(&app, lang, &user, &mut form, policy);
    };
    if app.store.account(&account.name, None).await.is_ok() {
        form.error("account_name", lang.t("exists"));
        return form_again(&app, lang, &user, &mut form, policy);
    }
    verify_and_save(&app, lang, &user, form, policy, account, None).await
}

/// The owner's mailbox `name`, with its secrets.
async fn own_account(app: &App, user: &User, name: &str) -> Result<AccountRecord, Response> {
    match app.store.account(name, Some(&app.key)).await {
        Ok(record) if record.owner == user.login => Ok(record),
        Ok(_) | Err(_) => Err((StatusCode::NOT_FOUND, "no such mailbox").into_response()),
    }
}

async fn edit_page(
    State(app): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let lang = lang(&headers);
    let user = match signed_in(&app, &headers).await {
        Ok(user) => user,
        Err(r) => return r,
    };
    let record = match own_account(&app, &user, &name).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    html_page(edit_markup(lang, &user, &record, None, None))
}

fn edit_markup(
    lang: Lang,
    user: &User,
    record: &AccountRecord,
    side_error: Option<(&str, &str)>,
    done: Option<&str>,
) -> Markup {
    let name = &record.account.name;
    let separate = matches!(record.account.outgoing, Outgoing::Separate(_));
    let password_form = |side: &'static str, title: &'static str| {
        let error = side_error.filter(|(s, _)| *s == side).map(|(_, e)| e);
        html! {
            form method="post" action=(format!("/settings/email/pop3/{name}/password")) data-side=(side) {
                h2 { (lang.t(title)) }
                input type="hidden" name="csrf" value=(user.csrf);
                input type="hidden" name="side" value=(side);
                (Field { name: "password", label: lang.t("password"), kind: "password", value: "", error, hint: None }.render())
                button type="submit" { (lang.t("save")) }
            }
        }
    };
    page(
        lang,
        name,
        Some(user),
        html! {
            @if let Some(done) = done { (notice("ok", done)) }
            p { (record.account.email) " — " (record.account.incoming.host) ":" (record.account.incoming.port) }
            (password_form("incoming", "change_incoming"))
            @if separate { (password_form("outgoing", "change_outgoing")) }
            form method="post" action=(format!("/settings/email/pop3/{name}/remove")) {
                input type="hidden" name="csrf" value=(user.csrf);
                button type="submit" id="remove-account" { (lang.t("remove")) }
            }
        },
    )
}

async fn change_password(
    State(app): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): FormData,
) -> Response {
    let lang = lang(&headers);
    let user = match form_user(&app, &headers, &form).await {
        Ok(user) => user,
        Err(r) => return r,
    };
    let record = match own_account(&app, &user, &name).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let side = if form.get("side").map(String::as_str) == Some("outgoing") {
        "outgoing"
    } else {
        "incoming"
    };
    let password = form.get("password").cloned().unwrap_or_default();
    if password.is_empty() {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            html_page(edit_markup(
                lang,
                &user,
                &record,
                Some((side, lang.t("required"))),
                None,
            )),
        )
            .into_response();
    }
    let mut changed = record.account.clone();
    if side == "incoming" {
        changed.incoming.credential = changed.incoming.credential.with_secret(password);
    } else if let Outgoing::Separate(server) = &mut changed.outgoing {
        server.credential = server.credential.with_secret(password);
    }
    // The old password stays unless the new one logs in.
    let checked = tokio::task::spawn_blocking(move || {
        let result = if side == "incoming" {
            verify_incoming(&changed)
                .map(drop)
                .map_err(|f| (f.failed, f.error.to_string(), changed.remedy(&f.error)))
        } else {
            verify_outgoing(&changed)
                .map(drop)
                .map_err(|f| (f.failed, f.error.to_string(), f.error.remedy()))
        };
        result.map(|()| changed)
    })
    .await;
    // The verify took seconds: the new secret goes onto the settings as
    // they are now, written only if they are still so (a refresh token the
    // provider rotated meanwhile is kept), unless they changed otherwise.
    let checked = match checked {
        Ok(Ok(verified)) => {
            let mut saved = None;
            for _ in 0..3 {
                let now = match own_account(&app, &user, &name).await {
                    Ok(now) => now,
                    Err(r) => return r,
                };
                if now.version != record.version {
                    break;
                }
                let mut changed = now.account.clone();
                if side == "incoming" {
                    changed.incoming.credential = verified.incoming.credential.clone();
                } else {
                    changed.outgoing = verified.outgoing.clone();
                }
                match app
                    .store
                    .update_account_if_unchanged(&now, &changed, Some(&app.key))
                    .await
                {
                    Ok(()) => {
                        saved = Some(changed);
                        break;
                    }
                    Err(AccountStoreError::Changed(_)) => continue,
                    Err(e) => return server_error(&e.to_string()),
                }
            }
            let Some(changed) = saved else {
                let now = own_account(&app, &user, &name).await.unwrap_or(record);
                return (
                    StatusCode::CONFLICT,
                    html_page(edit_markup(
                        lang,
                        &user,
                        &now,
                        Some((side, lang.t("changed_meanwhile"))),
                        None,
                    )),
                )
                    .into_response();
            };
            Ok(Ok(changed))
        }
        other => other,
    };
    match checked {
        Ok(Ok(changed)) => {
            let mut record = record;
            record.account = changed;
            html_page(edit_markup(
                lang,
                &user,
                &record,
                None,
                Some(lang.t("changed")),
            ))
        }
        Ok(Err((stage, text, remedy))) => {
            let mut words = format!(
                "{} {} {}: {text}",
                lang.t("kept_old"),
                lang.t("step"),
                stage.name()
            );
            if let Some(remedy) = remedy
                .map(|r| remedy_words(lang, &r))
                .filter(|w| !w.is_empty())
            {
                words.push_str(&format!(" {}: {remedy}", lang.t("remedy")));
            }
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                html_page(edit_markup(
                    lang,
                    &user,
                    &record,
                    Some((side, &words)),
                    None,
                )),
            )
                .into_response()
        }
        Err(e) => server_error(&e.to_string()),
    }
}

async fn activate(
    State(app): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): FormData,
) -> Response {
    let user = match form_user(&app, &headers, &form).await {
        Ok(user) => user,
        Err(r) => return r,
    };
    if let Err(r) = own_account(&app, &user, &name).await {
        return r;
    }
    match app.store.activate(&name).await {
        Ok(()) => Redirect::to("/settings/email/pop3").into_response(),
        Err(e) => server_error(&e.to_string()),
    }
}

async fn remove(
    State(app): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): FormData,
) -> Response {
    let user = match form_user(&app, &headers, &form).await {
        Ok(user) => user,
        Err(r) => return r,
    };
    if let Err(r) = own_account(&app, &user, &name).await {
        return r;
    }
    match app.store.remove_account(&name).await {
        Ok(()) => Redirect::to("/settings/email/pop3").into_response(),
        Err(e) => server_error(&e.to_string()),
    }
}

/// Whether `list` (comma-separated addresses) holds `email`.
fn carries(list: Option<&str>, email: &str) -> bool {
    list.is_some_and(|l| l.split(',').any(|a| a.trim().eq_ignore_ascii_case(email)))
}

fn linked<'a>(message: &StoredMessage, people: &'a [Person]) -> Vec<&'a Person> {
    people
        .iter()
        .filter(|p| !p.email.is_empty())
        .filter(|p| {
            [
                message.from.as_deref(),
                message.to.as_deref(),
                message.cc.as_deref(),
            ]
            .iter()
            .any(|l| carries(*l, &p.email))
        })
        .collect()
}

/// The messages this user sees: their active mailbox's, and those of
/// mailboxes shared with everyone. Newest first.
async fn visible_mail(
    app: &App,
    user: &User,
) -> Result<Vec<(String, String, StoredMessage)>, Response> {
    let records = app
        .store
        .accounts(None)
        .await
        .map_err(|e| server_error(&e.to_string()))?;
    let mut mail = Vec::new();
    for record in records {
        let own = record.owner == user.login && record.active;
        let shared = record.owner != user.login
            && record.account.metadata.get(SHARING).map(String::as_str) == Some("everyone");
        if !(own || shared) {
            continue;
        }
        let messages = app
            .store
            .messages(&record.account.name)
            .await
            .map_err(|e| server_error(&e.to_string()))?;
        for m in messages {
            mail.push((record.account.name.clone(), record.owner.clone(), m));
        }
    }
    mail.sort_by(|a, b| {
        (b.2.date.unwrap_or(0), b.2.stored_at).cmp(&(a.2.date.unwrap_or(0), a.2.stored_at))
    });
    Ok(mail)
}

fn mail_table(
    lang: Lang,
    user: &User,
    mail: &[(String, String, StoredMessage)],
    people: &[Person],
) -> Markup {
    html! {
        @if mail.is_empty() { p { (lang.t("no_mail")) } }
        @else {
            table id="messages" {
                thead { tr { th { (lang.t("date")) } th { (lang.t("from")) } th { (lang.t("subject")) } th { (lang.t("linked")) } } }
                tbody {
                    @for (account, owner, m) in mail {
                        tr data-message-id=(m.message_id.as_deref().unwrap_or("")) {
                            td { (m.date.and_then(|d| u64::try_from(d).ok()).map(|d| pop3_examples::utc_time(std::time::UNIX_EPOCH + std::time::Duration::from_secs(d))).unwrap_or_default()) }
                            td { (m.from.as_deref().unwrap_or("")) }
                            td {
                                a href=(format!("/inbox/{account}/{}", m.delivery)) { (m.subject.as_deref().unwrap_or("(no subject)")) }
                                @if *owner != user.login { " " small { "(" (lang.t("shared_from")) " " (owner) ")" } }
                            }
                            td { @for p in linked(m, people) {
                                a href=(format!("/leads/{}", p.id)) data-person=(p.id) { (p.name) } " "
                            } }
                        }
                    }
                }
            }
        }
    }
}

async fn inbox(State(app): State<Shared>, headers: HeaderMap) -> Response {
    let lang = lang(&headers);
    let user = match signed_in(&app, &headers).await {
        Ok(user) => user,
        Err(r) => return r,
    };
    let mail = match visible_mail(&app, &user).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    let people = app.crm.people().await.unwrap_or_default();
    html_page(page(
        lang,
        lang.t("inbox"),
        Some(&user),
        mail_table(lang, &user, &mail, &people),
    ))
}

async fn message(
    State(app): State<Shared>,
    headers: HeaderMap,
    Path((account, delivery)): Path<(String, String)>,
) -> Response {
    let lang = lang(&headers);
    let user = match signed_in(&app, &headers).await {
        Ok(user) => user,
        Err(r) => return r,
    };
    let mail = match visible_mail(&app, &user).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    if !mail
        .iter()
        .any(|(a, _, m)| *a == account && m.delivery == delivery)
    {
        return (StatusCode::NOT_FOUND, "no such message").into_response();
    }
    let raw = app
        .store
        .raw(&account, &delivery)
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
    let parsed = mail_parser::MessageParser::default().parse(&raw);
    let subject = parsed
        .as_ref()
        .and_then(|m| m.subject())
        .unwrap_or("")
        .to_owned();
    // A message's HTML is never shown as it came: sanitized by ammonia
    // (no script, no handlers, no remote loads it could use to track),
    // or its text part as text.
    let body = parsed.as_ref().map(|m| {
        if let Some(html_body) = m.body_html(0) {
            maud::PreEscaped(
                ammonia::Builder::default()
                    .url_schemes(["mailto"].into())
                    .clean(&html_body)
                    .to_string(),
            )
        } else {
            maud::PreEscaped(
                maud::html! { pre { (m.body_text(0).unwrap_or_default()) } }.into_string(),
            )
        }
    });
    html_page(page(
        lang,
        &subject,
        Some(&user),
        html! {
            article id="message" { @if let Some(body) = body { (body) } }
        },
    ))
}

async fn people(State(app): State<Shared>, headers: HeaderMap) -> Response {
    let lang = lang(&headers);
    let user = match signed_in(&app, &headers).await {
        Ok(user) => user,
        Err(r) => return r,
    };
    let people = app.crm.people().await.unwrap_or_default();
    html_page(page(
        lang,
        lang.t("people"),
        Some(&user),
        html! {
            table { tbody { @for p in &people {
                tr { td { a href=(format!("/leads/{}", p.id)) { (p.name) } } td { (lang.t(if p.kind == "lead" { "lead" } else { "contact" })) } td { (p.email) } }
            } } }
        },
    ))
}

async fn lead_page(app: &App, lang: Lang, user: &User, id: &str, done: Option<&str>) -> Response {
    let people = app.crm.people().await.unwrap_or_default();
    let Some(person) = people.iter().find(|p| p.id == id) else {
        return (StatusCode::NOT_FOUND, "no such lead").into_response();
    };
    let mail = match visible_mail(app, user).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    let theirs: Vec<_> = mail
        .into_iter()
        .filter(|(_, _, m)| linked(m, std::slice::from_ref(person)).len() == 1)
        .collect();
    html_page(page(
        lang,
        &person.name,
        Some(user),
        html! {
            @if let Some(done) = done { (notice("ok", done)) }
            form method="post" action=(format!("/leads/{id}")) id="lead-form" {
                input type="hidden" name="csrf" value=(user.csrf);
                (Field { name: "email", label: lang.t("change_email"), kind: "email", value: &person.email, error: None, hint: Some(lang.t("lead_faq")) }.render())
                button type="submit" { (lang.t("save")) }
            }
            h2 { (lang.t("lead_mail")) }
            (mail_table(lang, user, &theirs, &people))
        },
    ))
}

async fn lead(State(app): State<Shared>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let lang = lang(&headers);
    match signed_in(&app, &headers).await {
        Ok(user) => lead_page(&app, lang, &user, &id, None).await,
        Err(r) => r,
    }
}

async fn change_lead(
    State(app): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): FormData,
) -> Response {
    let lang = lang(&headers);
    let user = match form_user(&app, &headers, &form).await {
        Ok(user) => user,
        Err(r) => return r,
    };
    let email = form
        .get("email")
        .map(|e| e.trim().to_owned())
        .unwrap_or_default();
    if let Err(e) = app.crm.set_email(&id, &email).await {
        return server_error(&e.to_string());
    }
    lead_page(&app, lang, &user, &id, Some(lang.t("saved"))).await
}

/// The user's active mailbox, with its secrets.
async fn active_account(app: &App, user: &User) -> Option<Account> {
    let records = app.store.accounts(None).await.ok()?;
    let name = records
        .into_iter()
        .find(|r| r.owner == user.login && r.active)?
        .account
        .name;
    app.store
        .account(&name, Some(&app.key))
        .await
        .ok()
        .map(|r| r.account)
}

fn compose_markup(
    lang: Lang,
    user: &User,
    from: Option<&str>,
    result: Option<(bool, String)>,
) -> Markup {
    page(
        lang,
        lang.t("compose"),
        Some(user),
        html! {
            @if let Some((ok, text)) = &result { (notice(if *ok { "ok" } else { "bad" }, text)) }
            @match from {
                None => p { (lang.t("no_active")) },
                Some(from) => form method="post" action="/compose" {
                    input type="hidden" name="csrf" value=(user.csrf);
                    p { (lang.t("from")) ": " (from) }
                    (Field { name: "to", label: lang.t("to"), kind: "email", value: "", error: None, hint: None }.render())
                    (Field { name: "subject", label: lang.t("subject"), kind: "text", value: "", error: None, hint: None }.render())
                    div.field { label for="body" { (lang.t("body")) } textarea id="body" name="body" rows="8" {} }
                    button type="submit" id="send" { (lang.t("send")) }
                },
            }
        },
    )
}

async fn compose_page(State(app): State<Shared>, headers: HeaderMap) -> Response {
    let lang = lang(&headers);
    let user = match signed_in(&app, &headers).await {
        Ok(user) => user,
        Err(r) => return r,
    };
    let from = active_account(&app, &user).await.map(|a| a.email);
    html_page(compose_markup(lang, &user, from.as_deref(), None))
}

async fn send(State(app): State<Shared>, headers: HeaderMap, Form(form): FormData) -> Response {
    let lang = lang(&headers);
    let user = match form_user(&app, &headers, &form).await {
        Ok(user) => user,
        Err(r) => return r,
    };
    let Some(account) = active_account(&app, &user).await else {
        return html_page(compose_markup(lang, &user, None, None));
    };
    let get = |k: &str| form.get(k).cloned().unwrap_or_default();
    let (to, subject, body) = (get("to"), get("subject"), get("body"));
    let from = account.email.clone();
    let result =
        tokio::task::spawn_blocking(move || crate::send::send(&account, &to, &subject, &body))
            .await;
    let shown = match result {
        Ok(Ok(())) => (true, lang.t("sent").to_owned()),
        Ok(Err((kind, words))) => (
            false,
            format!("{} ({kind}): {words}", lang.t("send_failed")),
        ),
        Err(e) => (false, format!("{}: {e}", lang.t("send_failed"))),
    };
    html_page(compose_markup(lang, &user, Some(&from), Some(shown)))
}

async fn admin_page(State(app): State<Shared>, headers: HeaderMap) -> Response {
    let lang = lang(&headers);
    let user = match signed_in(&app, &headers).await {
        Ok(user) => user,
        Err(r) => return r,
    };
    let policy = app.crm.policy().await.unwrap_or(Policy::UserChooses);
    html_page(admin_markup(lang, &user, policy, None))
}

fn admin_markup(lang: Lang, user: &User, policy: Policy, done: Option<&str>) -> Markup {
    page(
        lang,
        lang.t("policy"),
        Some(user),
        html! {
            @if let Some(done) = done { (notice("ok", done)) }
            @if !user.admin { p { (lang.t("not_admin")) } }
            form method="post" action="/admin" {
                input type="hidden" name="csrf" value=(user.csrf);
                @for choice in [Policy::Fixed(Sharing::Private), Policy::Fixed(Sharing::Everyone), Policy::UserChooses] {
                    div.field.check {
                        input type="radio" id=(choice.as_str()) name="policy" value=(choice.as_str()) checked[choice == policy] disabled[!user.admin];
                        label for=(choice.as_str()) { (lang.t(choice.as_str())) }
                    }
                }
                @if user.admin { button type="submit" id="save-policy" { (lang.t("save")) } }
            }
        },
    )
}

async fn set_policy(
    State(app): State<Shared>,
    headers: HeaderMap,
    Form(form): FormData,
) -> Response {
    let lang = lang(&headers);
    let user = match form_user(&app, &headers, &form).await {
        Ok(user) => user,
        Err(r) => return r,
    };
    if !user.admin {
        return (StatusCode::FORBIDDEN, lang.t("not_admin")).into_response();
    }
    let Some(policy) = form.get("policy").and_then(|p| Policy::from_name(p)) else {
        return (StatusCode::UNPROCESSABLE_ENTITY, "choose a policy").into_response();
    };
    if let Err(e) = app.crm.set_policy(policy).await {
        return server_error(&e.to_string());
    }
    html_page(admin_markup(lang, &user, policy, Some(lang.t("saved"))))
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").finish_non_exhaustive()
    }
}

/// "Sign in with ...": the form's fields kept, the browser sent to the
/// provider.
async fn oauth_start(
    State(app): State<Shared>,
    headers: HeaderMap,
    Form(values): FormData,
) -> Response {
    let lang = lang(&headers);
    let user = match form_user(&app, &headers, &values).await {
        Ok(user) => user,
        Err(r) => return r,
    };
    let policy = app.crm.policy().await.unwrap_or(Policy::UserChooses);
    let provider = values
        .get("provider")
        .and_then(|k| app.providers.iter().find(|p| p.key == **k))
        .cloned();
    let mut form = AddForm {
        values,
        ..AddForm::default()
    };
    for required in ["account_name", "email"] {
        if form.get(required).trim().is_empty() {
            form.error(required, lang.t("required"));
        }
    }
    let Some(provider) = provider else {
        form.failure = Some("no such provider".to_owned());
        return form_again(&app, lang, &user, &mut form, policy);
    };
    if !form.errors.is_empty() {
        return form_again(&app, lang, &user, &mut form, policy);
    }
    let redirect = format!("{}/oauth/callback", app.base_url);
    let mut kept = form.values.clone();
    kept.remove("csrf");
    kept.remove("password");
    match app.sign_ins.begin(&user.login, kept, provider, &redirect) {
        Ok(url) => Redirect::to(&url).into_response(),
        Err(e) => {
            form.failure = Some(e);
            form_again(&app, lang, &user, &mut form, policy)
        }
    }
}

/// The provider's redirect: the code exchanged, the account built with
/// the grant, both logins verified, then saved; or the form again with
/// what failed.
async fn oauth_callback(
    State(app): State<Shared>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    let lang = lang(&headers);
    let user = match signed_in(&app, &headers).await {
        Ok(user) => user,
        Err(r) => return r,
    };
    let query = uri.query().unwrap_or("").to_owned();
    let Some(pending) = app.sign_ins.take(&query) else {
        return (
            StatusCode::BAD_REQUEST,
            "this sign-in is unknown or too old: start it again",
        )
            .into_response();
    };
    if pending.login != user.login {
        return (
            StatusCode::FORBIDDEN,
            "this sign-in was begun by another user",
        )
            .into_response();
    }
    let policy = app.crm.policy().await.unwrap_or(Policy::UserChooses);
    let crate::oauth::Pending {
        form: values,
        provider,
        sign_in,
        pending,
        ..
    } = pending;
    let mut form = AddForm {
        values,
        ..AddForm::default()
    };
    let exchanged = tokio::task::spawn_blocking(move || sign_in.finish(pending, &query)).await;
    let answer = match exchanged {
        Ok(Ok(answer)) => answer,
        Ok(Err(e)) => {
            form.failure = Some(format!("{} {}", lang.t("nothing_saved"), e));
            return form_again(&app, lang, &user, &mut form, policy);
        }
        Err(e) => return server_error(&e.to_string()),
    };
    let Some(refresh) = answer.refresh_token.clone() else {
        form.failure = Some(format!(
            "{} the provider gave no refresh token (offline access)",
            lang.t("nothing_saved")
        ));
        return form_again(&app, lang, &user, &mut form, policy);
    };
    let grant = pop3_client::account::OAuth2Grant::new(
        provider.provider.clone(),
        provider.client_id.clone(),
        refresh,
    );
    let Some(mut account) = account_of(lang, &mut form, policy, Some(Credential::OAuth2(grant)))
    else {
        return form_again(&app, lang, &user, &mut form, policy);
    };
    if let Some(var) = &provider.secret_env {
        account.metadata.insert(
            pop3_examples::settings::CLIENT_SECRET_ENV.to_owned(),
            var.clone(),
        );
    }
    // The sign-in's own access token serves the verification; a token the
    // provider rotates meanwhile is kept here until the account is saved.
    let latest = Arc::new(std::sync::Mutex::new(None));
    if let Err(e) = pop3_examples::settings::attach_tokens(
        &mut account,
        pop3_examples::settings::AccountTokens::Unsaved(Arc::clone(&latest)),
        Some(&answer),
    ) {
        form.failure = Some(e.to_string());
        return form_again(&app, lang, &user, &mut form, policy);
    }
    verify_and_save(&app, lang, &user, form, policy, account, Some(latest)).await
}

/// The form shown again, nothing saved, with what failed.
fn form_again(app: &App, lang: Lang, user: &User, form: &mut AddForm, policy: Policy) -> Response {
    form.failure
        .get_or_insert_with(|| lang.t("nothing_saved").to_owned());
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        html_page(add_markup(lang, user, form, policy, &app.providers)),
    )
        .into_response()
}

/// Verifies the incoming and the outgoing login of `account`, then saves
/// it for `user` (with the refresh token the provider rotated meanwhile,
/// if any); or shows the form again with the failed step and its remedy
/// at the field it concerns.
async fn verify_and_save(
    app: &App,
    lang: Lang,
    user: &User,
    mut form: AddForm,
    policy: Policy,
    account: Account,
    rotated: Option<Arc<std::sync::Mutex<Option<pop3_client::Secret>>>>,
) -> Response {
    let same = form.checked("same_outgoing");
    match verify(app, account).await {
        Ok(mut account) => {
            let token =
                rotated.and_then(|latest| latest.lock().unwrap_or_else(|p| p.into_inner()).take());
            if let Some(token) = token {
                account.incoming.credential = account.incoming.credential.with_secret(token);
            }
            match app
                .store
                .add_account(&account, &user.login, Some(&app.key))
                .await
            {
                Ok(_) => Redirect::to("/settings/email/pop3?added=1").into_response(),
                Err(e) => {
                    form.error("account_name", e.to_string());
                    form_again(app, lang, user, &mut form, policy)
                }
            }
        }
        Err((stage, outgoing, text, remedy)) => {
            let mut words = format!("{} {}: {text}", lang.t("step"), stage.name());
            if let Some(remedy) = remedy
                .map(|r| remedy_words(lang, &r))
                .filter(|w| !w.is_empty())
            {
                words.push_str(&format!(" {}: {remedy}", lang.t("remedy")));
            }
            form.error(step_field(stage, outgoing, same), words);
            form_again(app, lang, user, &mut form, policy)
        }
    }
}
