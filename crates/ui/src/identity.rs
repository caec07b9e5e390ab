//! Identity: the home page (who am I, as proven on chain), the institution admin's staff view
//! (look up and revoke credentials) and the health of the nodes and vaults.

use crate::{blocking, jobs, page, App, Me, UiError};
use axum::response::Html;
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::html;
use medledger_client::session::hash_arg;
use medledger_state::identity::Credential;
use medledger_state::queries;
use medledger_types::{IdentityOp, Operation, PublicKey, Role};
use serde::Deserialize;

pub(crate) fn routes() -> Router<App> {
    Router::new()
        .route("/", get(home))
        .route("/staff", get(staff))
        .route("/staff/lookup", post(lookup))
        .route("/staff/revoke", post(revoke))
        .route("/health", get(health))
}

fn what_you_can_do(role: Option<Role>) -> &'static str {
    match role {
        Some(Role::Patient) => "See your records, decide who may read them, answer access requests, read your access log, export or erase your data.",
        Some(Role::Doctor) => "Read your patients' records under their consent, write and amend records, use break-glass in an emergency.",
        Some(Role::Regulator) => "Search the access audit, review break-glass events, export FHIR AuditEvents.",
        Some(Role::Researcher | Role::Insurer) => "Ask patients for access and read what they grant.",
        Some(Role::InstitutionAdmin) => "Look up and revoke your staff's credentials; check the node and its vault.",
        Some(_) => "Browse the explorer.",
        None => "This key holds no credential on chain: only the explorer is open to it.",
    }
}

pub(crate) fn credential_list(c: &Credential) -> maud::Markup {
    html! {
        dl.kv {
            dt { "Role" } dd { (c.role.name()) }
            dt { "Institution" } dd { (c.institution) }
            @if !c.display_name.is_empty() { dt { "Name" } dd { (c.display_name) } }
            @if let Some(p) = &c.pseudonym { dt { "Pseudonym" } dd { code.pseudonym { (p.to_hex()) } } }
            dt { "Key" } dd { (page::short(&c.subject.to_hex())) }
            dt { "Valid" } dd { (page::time(c.valid_from_ms)) " to " (page::time(c.valid_until_ms)) }
            dt { "Status" } dd {
                @match &c.revoked {
                    Some(r) => { span.tag.bad { "revoked" } " at height " (r.at_height) }
                    None => { span.tag.ok { "valid" } }
                }
            }
        }
    }
}

async fn home(me: Me) -> Html<String> {
    let id = me.id();
    let body = html! {
        p { (what_you_can_do(id.role())) }
        @if let Some(c) = &id.credential {
            h2 { "Your credential (proven on chain when this server started)" }
            (credential_list(c))
        }
        h2 { "Where to go" }
        ul {
            @for (path, label) in page::nav(id.role()).into_iter().skip(1) {
                li { a href=(path) { (label) } }
            }
        }
    };
    page::shell(&me, &format!("Welcome, {}", id.name), body)
}

async fn staff(me: Me) -> Result<Html<String>, UiError> {
    me.require(&[Role::InstitutionAdmin], "The staff view")?;
    let inst = me.id().credential.as_ref().map(|c| c.institution.clone()).unwrap_or_default();
    let s = me.session();
    let path = format!("/v1/institutions/{inst}/staff");
    let v = blocking(move || s.client.get(&path)).await??;
    let staff: Vec<Credential> = serde_json::from_value(v["staff"].clone())
        .map_err(|e| UiError::client(format!("the node sent a malformed staff list: {e}")))?;
    let body = html! {
        p { "The node's staff directory for " (inst) ". Look a key up to have its credential proven on chain before you act on it." }
        table #staff tabindex="0" {
            thead { tr { th { "Name" } th { "Role" } th { "Key" } th { "Valid until" } th { "Status" } th {} } }
            tbody {
                @for c in &staff {
                    tr {
                        td { (c.display_name) } td { (c.role.name()) } td { (page::short(&c.subject.to_hex())) }
                        td { (page::time(c.valid_until_ms)) }
                        td { @if c.revoked.is_some() { span.tag.bad { "revoked" } } @else { span.tag.ok { "valid" } } }
                        td {
                            @if c.revoked.is_none() && !matches!(c.role, Role::InstitutionAdmin | Role::NodeService) {
                                form.inline hx-post="/staff/revoke" hx-target="#revoke-result" {
                                    input type="hidden" name="key" value=(c.subject.to_hex());
                                    label.inline { "Reason " input name="reason" required maxlength="512"; }
                                    " "
                                    button.danger type="submit" aria-label=(format!("Revoke {}", c.display_name)) { "Revoke" }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if v["truncated"] == true { p { "The directory is longer than one answer; look keys up below." } }
        div #revoke-result {}
        h2 { "Look up a credential" }
        form.stack hx-post="/staff/lookup" hx-target="#lookup" {
            label for="key" { "Public key (hex)" }
            input #key name="key" required size="66";
            button type="submit" { "Look up and prove" }
        }
        div #lookup {}
    };
    Ok(page::shell(&me, &format!("Staff of {inst}"), body))
}

#[derive(Deserialize)]
struct KeyForm {
    key: String,
    #[serde(default)]
    reason: String,
}

fn parse_key(s: &str) -> Result<PublicKey, UiError> {
    PublicKey::from_hex(s.trim()).map_err(|e| UiError::bad_input(format!("key: {e}")))
}

async fn lookup(me: Me, Form(f): Form<KeyForm>) -> Result<Html<String>, UiError> {
    me.require(&[Role::InstitutionAdmin, Role::Regulator], "Credential lookup")?;
    let key = parse_key(&f.key)?;
    let s = me.session();
    let (cred, height) = blocking(move || -> Result<_, String> {
        let a = s.proven(&format!("/v1/proofs/identities/{}", key.to_hex()))?;
        Ok((a.replay(|st, at| queries::identity(st, &key, at))?.credential, a.height))
    })
    .await??;
    Ok(page::fragment(html! {
        p.verified { "Proven at height " (height) }
        @match cred {
            Some(c) => { (credential_list(&c)) }
            None => { p { "No credential for this key (proven absent)." } }
        }
    }))
}

async fn revoke(me: Me, Form(f): Form<KeyForm>) -> Result<Html<String>, UiError> {
    me.require(&[Role::InstitutionAdmin], "Revoking a credential")?;
    let subject = parse_key(&f.key)?;
    if f.reason.trim().is_empty() {
        return Err(UiError::bad_input("reason: say why the credential is revoked"));
    }
    let op = Operation::Identity(IdentityOp::RevokeCredential { subject, reason: f.reason.trim().to_string() });
    op.check_limits().map_err(UiError::bad_input)?;
    let s = me.session();
    jobs::start(&me, "Revoking the credential", move || {
        let (tx, v) = s.transact(op)?;
        Ok(
            html! { p.notice { "Credential revoked by " (page::short(&tx.id().to_hex())) " at height " (v["height"]) "." } },
        )
    })
}

async fn health(me: Me) -> Result<Html<String>, UiError> {
    me.require(&[Role::InstitutionAdmin, Role::Regulator], "Node health")?;
    let ui = me.ui.clone();
    let rows = blocking(move || crate::ledger::liveness(&ui)).await?;
    let inst = me.id().credential.as_ref().map(|c| c.institution.clone()).unwrap_or_default();
    let api = me
        .id()
        .credential
        .as_ref()
        .and_then(|c| me.ui.light.genesis().institutions.iter().find(|i| i.id == c.institution))
        .map(|i| i.api_address.clone());
    let metrics = match api {
        Some(api) => blocking(move || medledger_client::Client::new(&api).get_text("/metrics")).await?,
        None => Err("this institution runs no validator node".into()),
    };
    let body = html! {
        h2 { "Validators" }
        (crate::ledger::liveness_table(&rows))
        h2 { "The node of " (inst) }
        @match &metrics {
            Ok(text) => {
                @let vault = text.lines().find_map(|l| l.strip_prefix("medledger_vault_up ")).map(str::trim);
                p #vault-health {
                    "Vault: "
                    @match vault {
                        Some("1") => { span.tag.ok { "up" } " (a probe blob written and read back within the last 5 s)" }
                        Some(_) => { span.tag.bad { "down" } " (the probe blob could not be written or read back)" }
                        None => { "this node holds no records" }
                    }
                }
                table #metrics tabindex="0" {
                    thead { tr { th { "Metric" } th { "Value" } } }
                    tbody {
                        @for line in text.lines().filter(|l| l.starts_with("medledger_")) {
                            @if let Some((name, value)) = line.rsplit_once(' ') { tr { td { code { (name) } } td { (value) } } }
                        }
                    }
                }
            }
            Err(e) => { (page::error_box(e)) }
        }
    };
    Ok(page::shell(&me, "Node health", body))
}

/// A patient pseudonym from a form field.
pub(crate) fn pseudonym(s: &str) -> Result<medledger_types::Hash, UiError> {
    hash_arg(s, "patient pseudonym").map_err(UiError::bad_input)
}
