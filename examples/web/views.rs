//! The pages, as HTML built by maud (every value escaped), with stable
//! names and attributes a browser test can rely on.

use maud::{html, Markup, PreEscaped, DOCTYPE};

use crate::data::User;
use crate::i18n::Lang;

/// The frame around every page.
pub(crate) fn page(lang: Lang, title: &str, user: Option<&User>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                @if let Some(user) = user {
                    nav {
                        a href="/inbox" { (lang.t("inbox")) }
                        a href="/settings/email/pop3" { (lang.t("mailboxes")) }
                        a href="/compose" { (lang.t("compose")) }
                        a href="/people" { (lang.t("people")) }
                        @if user.admin { a href="/admin" { (lang.t("admin")) } }
                        span.who { (user.name) }
                        form method="post" action="/logout" class="inline" {
                            input type="hidden" name="csrf" value=(user.csrf);
                            button type="submit" { (lang.t("sign_out")) }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

/// A notice at the top of a page.
pub(crate) fn notice(kind: &str, text: &str) -> Markup {
    html! { p class=(format!("notice {kind}")) role="status" { (text) } }
}

/// A form field with its label and, when in error, `aria-invalid` and its
/// message linked by `aria-describedby`.
pub(crate) struct Field<'a> {
    /// The `name` (and `id`).
    pub name: &'a str,
    /// The label.
    pub label: &'a str,
    /// `text`, `password`, `number`, `email`.
    pub kind: &'a str,
    /// The value to show again (never a password).
    pub value: &'a str,
    /// The error to show beside it.
    pub error: Option<&'a str>,
    /// A hint under it.
    pub hint: Option<&'a str>,
}

impl Field<'_> {
    /// The field's markup.
    pub(crate) fn render(&self) -> Markup {
        let error_id = format!("{}-error", self.name);
        let hint_id = format!("{}-hint", self.name);
        let described = match (self.error.is_some(), self.hint.is_some()) {
            (true, true) => Some(format!("{error_id} {hint_id}")),
            (true, false) => Some(error_id.clone()),
            (false, true) => Some(hint_id.clone()),
            (false, false) => None,
        };
        html! {
            div.field {
                label for=(self.name) { (self.label) }
                input id=(self.name) name=(self.name) type=(self.kind)
                    value=(self.value)
                    aria-invalid=[self.error.map(|_| "true")]
                    aria-describedby=[described];
                @if let Some(hint) = self.hint { small id=(hint_id) { (hint) } }
                @if let Some(error) = self.error { p.error id=(error_id) { (error) } }
            }
        }
    }
}

/// A checkbox.
pub(crate) fn checkbox(name: &str, label: &str, checked: bool) -> Markup {
    html! {
        div.field.check {
            input id=(name) name=(name) type="checkbox" value="on" checked[checked];
            label for=(name) { (label) }
        }
    }
}

const STYLE: &str = "
body{font-family:system-ui,sans-serif;margin:0;color:#1d2733;background:#f5f7fa}
nav{display:flex;gap:1em;align-items:center;padding:.6em 1.2em;background:#1d4e89}
nav a,nav .who{color:#fff;text-decoration:none}nav .who{margin-left:auto}
main{max-width:60em;margin:1.5em auto;padding:0 1.2em}
.field{margin:.7em 0;display:flex;flex-direction:column;max-width:28em}
.field.check{flex-direction:row;gap:.5em;align-items:center}
input,select,textarea{padding:.4em;font:inherit}
[aria-invalid=true]{border:2px solid #b3261e}.error{color:#b3261e;margin:.2em 0}
.notice{padding:.6em;border-radius:4px}.notice.ok{background:#e3f4e1}.notice.bad{background:#fbe4e2}
table{border-collapse:collapse;width:100%}td,th{padding:.4em;border-bottom:1px solid #d8dee6;text-align:left}
.inline{display:inline}fieldset{border:1px solid #c8d0da;margin:1em 0;max-width:30em}
.gmail{background:#fff8e1;padding:.6em;max-width:40em}
";
