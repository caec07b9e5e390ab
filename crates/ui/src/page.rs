//! The page shell every view shares: the identity menu, the navigation for the current role,
//! the vendored scripts and the stylesheet; plus small shared pieces (error and notice boxes,
//! short hashes, times).

use crate::{App, Me};
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use maud::{html, Markup, PreEscaped, DOCTYPE};
use medledger_types::Role;

const HTMX: &str = include_str!("assets/htmx.min.js");
const HTMX_SSE: &str = include_str!("assets/htmx-sse.min.js");
const CSS: &str = include_str!("assets/ui.css");

pub(crate) fn routes() -> Router<App> {
    Router::new()
        .route("/assets/htmx.min.js", get(|| async { asset("text/javascript", HTMX) }))
        .route("/assets/htmx-sse.min.js", get(|| async { asset("text/javascript", HTMX_SSE) }))
        .route("/assets/ui.css", get(|| async { asset("text/css", CSS) }))
        .merge(crate::switch_route())
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "max-age=3600")], body).into_response()
}

/// The navigation entries for a role: (path, label).
pub fn nav(role: Option<Role>) -> Vec<(&'static str, &'static str)> {
    let mut n = vec![("/", "Home")];
    n.extend_from_slice(match role {
        Some(Role::Patient) => &[
            ("/records", "My records"),
            ("/consents", "Consents"),
            ("/requests", "Access requests"),
            ("/access-log", "Access log"),
            ("/referrals", "My referrals"),
            ("/monitoring", "My monitoring"),
        ][..],
        Some(Role::Doctor) => &[
            ("/patients", "Patients"),
            ("/write", "Write a record"),
            ("/requests", "My requests"),
            ("/referrals", "Referrals"),
            ("/monitoring", "Monitoring"),
        ][..],
        Some(Role::Regulator) => {
            &[("/audit", "Audit"), ("/audit/break-glass", "Break-glass review"), ("/referrals", "Referral statistics")]
                [..]
        }
        Some(Role::Researcher | Role::Insurer) => {
            &[("/requests", "Request access"), ("/patients", "Granted records")][..]
        }
        Some(Role::InstitutionAdmin) => {
            &[("/staff", "Staff"), ("/health", "Node health"), ("/referrals", "Referral board")][..]
        }
        Some(Role::Manufacturer | Role::Distributor | Role::Pharmacy) => &[("/drugs", "Medicines")][..],
        _ => &[][..],
    });
    if matches!(role, Some(Role::Regulator | Role::Doctor)) {
        n.push(("/drugs", "Medicines"));
    }
    n.push(("/verify", "Verify a pack"));
    n.push(("/explorer", "Explorer"));
    n
}

/// A whole page for `me`.
pub fn shell(me: &Me, title: &str, body: Markup) -> Html<String> {
    let id = me.id();
    let role = id.role();
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    // Swap error answers too: they carry the API's code and message.
                    meta name="htmx-config" content=r#"{"responseHandling":[{"code":"204","swap":false},{"code":".*","swap":true}]}"#;
                    title { (title) " · MedLedger" }
                    link rel="stylesheet" href="/assets/ui.css";
                    script src="/assets/htmx.min.js" {}
                    script src="/assets/htmx-sse.min.js" {}
                }
                body {
                    a.skip href="#main" { "Skip to content" }
                    header.top {
                        span.brand { "MedLedger" }
                        nav aria-label="Main" {
                            ul {
                                @for (path, label) in nav(role) {
                                    li { a href=(path) { (label) } }
                                }
                            }
                        }
                        form.who method="post" action="/who" {
                            label for="who" { "Acting as" }
                            select #who name="who" onchange="this.form.submit()" {
                                @for (i, other) in me.ui.identities.iter().enumerate() {
                                    option value=(other.name) selected[i == me.index] {
                                        (other.name) " (" (other.role().map_or("no credential", |r| r.name())) ")"
                                    }
                                }
                            }
                            noscript { button type="submit" { "Switch" } }
                        }
                    }
                    main #main {
                        h1 { (title) }
                        (body)
                    }
                    footer {
                        "Keys stay in this server; every answer it shows was verified against the genesis validators."
                    }
                }
            }
        }
        .into_string(),
    )
}

/// A fragment (an htmx swap target's new content).
pub fn fragment(m: Markup) -> Html<String> {
    Html(m.into_string())
}

/// The API's error code and message, or any other error, shown plainly.
pub fn error_box(message: &str) -> Markup {
    let (code, text) = split_code(message);
    html! {
        div.error role="alert" {
            strong { "Refused" @if let Some(c) = code { " · " code { (c) } } }
            p { (text) }
        }
    }
}

/// `node refused (403 not_permitted): message` → (`not_permitted`, `message`).
pub fn split_code(message: &str) -> (Option<&str>, &str) {
    if let Some((_, rest)) = message.split_once("refused (") {
        if let Some((inside, text)) = rest.split_once("): ") {
            let code = inside.split_whitespace().nth(1);
            return (code, text);
        }
    }
    (None, message)
}

pub fn notice(text: &str) -> Markup {
    html! { p.notice role="status" { (text) } }
}

/// The first 12 hex characters of a hash or key, with the whole in a tooltip.
pub fn short(hex: &str) -> Markup {
    let s: String = hex.chars().take(12).collect();
    html! { code title=(hex) { (s) "…" } }
}

/// Who a key is, among the identities this server holds: `name (role, institution)`, else
/// the key's first hex characters.
pub fn who(me: &Me, key: &medledger_types::PublicKey) -> String {
    me.ui
        .identities
        .iter()
        .find(|i| i.session.key.public() == *key)
        .map(|i| match &i.credential {
            Some(c) => format!("{} ({}, {})", i.name, c.role.name(), c.institution),
            None => i.name.clone(),
        })
        .unwrap_or_else(|| format!("key {}…", &key.to_hex()[..12]))
}

/// [`who`] for a key in hex (as JSON answers carry it).
pub fn who_hex(me: &Me, hex: &str) -> String {
    match medledger_types::PublicKey::from_hex(hex) {
        Ok(k) => who(me, &k),
        Err(_) => format!("key {}…", hex.chars().take(12).collect::<String>()),
    }
}

pub fn time(ms: u64) -> String {
    medledger_types::time::rfc3339_ms(ms)
}

/// Raw JSON in a closed disclosure.
pub fn raw_json(v: &serde_json::Value) -> Markup {
    html! {
        details.raw {
            summary { "Raw JSON" }
            pre { (serde_json::to_string_pretty(v).unwrap_or_default()) }
        }
    }
}

/// Inline script-free marker for pages that want nothing else.
pub fn nothing() -> Markup {
    PreEscaped(String::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_refusal_keeps_its_code_and_message() {
        assert_eq!(
            split_code("node refused (403 not_permitted): no active consent"),
            (Some("not_permitted"), "no active consent")
        );
        assert_eq!(split_code("cannot reach node"), (None, "cannot reach node"));
        let html = error_box("node refused (404 not_found): no such record <b>").into_string();
        assert!(html.contains("<code>not_found</code>"));
        assert!(html.contains("no such record &lt;b&gt;"), "the message is escaped: {html}");
    }
}
