//! The MedLedger web UI: a personal server on loopback.
//!
//! The server is a Rust process that holds the user's keys (one, or a directory of them to
//! switch between) and does all signing, sealing, unwrapping and verification through
//! `medledger-client` and its light client. The browser gets HTML only: neither a private key
//! nor a plaintext data key ever reaches JavaScript or a node. Pages are rendered on the server
//! ([maud] templates); the vendored htmx and its SSE extension add in-place updates (a pending
//! transaction's progress, the live block feed). No npm at build or run time.
//!
//! One module per domain, as in every layer: [`identity`] (who am I, staff, node health),
//! [`consent`] (grants, revocations, access requests), [`records`] (my records, reading,
//! writing, amending, erasure, export), [`audit`] (the access log, the regulator's search) and
//! [`ledger`] (the explorer). [`page`] is the shell every view shares, [`jobs`] the progress
//! of long operations.
//!
//! No PHI in URLs: anything naming a patient (a pseudonym) travels in a POST body; URLs carry
//! only random record, consent and transaction ids. The server logs nothing about requests.

pub mod audit;
pub mod care;
pub mod consent;
pub mod drugs;
pub mod identity;
pub mod jobs;
pub mod ledger;
pub mod page;
pub mod records;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use medledger_client::light::Light;
use medledger_client::Session;
use medledger_state::identity::Credential;
use medledger_types::{Keypair, Role};
use std::net::SocketAddr;
use std::sync::Arc;

/// What the UI server needs: the identities it may act as, the nodes and the light client.
pub struct Config {
    /// Named keys, in the order the identity menu lists them.
    pub keys: Vec<(String, Keypair)>,
    /// Node API addresses, in order of preference.
    pub nodes: Vec<String>,
    pub light: Arc<Light>,
    /// Where to listen; loopback only.
    pub listen: SocketAddr,
}

/// One identity the server may act as.
pub struct Identity {
    pub name: String,
    pub session: Arc<Session>,
    /// The credential proven on chain when the server started (`None`: the key holds none).
    pub credential: Option<Credential>,
}

impl Identity {
    pub fn role(&self) -> Option<Role> {
        self.credential.as_ref().map(|c| c.role)
    }
}

/// The server's state: identities, jobs and the live block feed.
pub struct Ui {
    pub identities: Vec<Identity>,
    pub jobs: jobs::Jobs,
    pub light: Arc<Light>,
    pub nodes: Vec<String>,
    pub feed: tokio::sync::broadcast::Sender<String>,
    /// Access requests sent through this server: (identity index, request id, patient), newest
    /// last, at most [`consent::MAX_SENT`]; their status is looked up on chain when shown.
    pub sent: parking_lot::Mutex<Vec<(usize, medledger_types::Hash, medledger_types::Hash)>>,
}

pub type App = Arc<Ui>;

/// The identity a request acts as: the `who` cookie's, else the first.
pub struct Me {
    pub ui: App,
    pub index: usize,
}

impl Me {
    pub fn id(&self) -> &Identity {
        &self.ui.identities[self.index]
    }

    pub fn session(&self) -> Arc<Session> {
        self.id().session.clone()
    }

    /// Fails unless the current identity holds one of `roles`.
    pub fn require(&self, roles: &[Role], what: &str) -> Result<(), UiError> {
        match self.id().role() {
            Some(r) if roles.contains(&r) => Ok(()),
            r => Err(UiError::forbidden(format!(
                "{what} is for {}; {} is {}",
                roles.iter().map(|r| r.name()).collect::<Vec<_>>().join(" or "),
                self.id().name,
                r.map_or("without a credential", |r| r.name())
            ))),
        }
    }
}

impl FromRequestParts<App> for Me {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, ui: &App) -> Result<Me, Self::Rejection> {
        let wanted = parts
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().strip_prefix("who="))
            .next_back()
            .map(str::to_string);
        let index = wanted.and_then(|w| ui.identities.iter().position(|i| i.name == w)).unwrap_or(0);
        Ok(Me { ui: ui.clone(), index })
    }
}

/// An error shown to the user as a page (or a fragment, for htmx requests) with its status.
#[derive(Debug)]
pub struct UiError {
    pub status: StatusCode,
    pub message: String,
}

impl UiError {
    pub fn bad_input(m: impl Into<String>) -> UiError {
        UiError { status: StatusCode::BAD_REQUEST, message: m.into() }
    }
    pub fn forbidden(m: impl Into<String>) -> UiError {
        UiError { status: StatusCode::FORBIDDEN, message: m.into() }
    }
    pub fn not_found(m: impl Into<String>) -> UiError {
        UiError { status: StatusCode::NOT_FOUND, message: m.into() }
    }
    /// An error from the client: a node's refusal keeps its code and message; the status
    /// follows the node's where one is given.
    pub fn client(m: String) -> UiError {
        let status = m
            .split_once("refused (")
            .and_then(|(_, rest)| rest.get(..3))
            .and_then(|c| c.parse::<u16>().ok())
            .and_then(|c| StatusCode::from_u16(c).ok())
            .filter(|s| s.is_client_error())
            .unwrap_or(StatusCode::BAD_GATEWAY);
        UiError { status, message: m }
    }
}

impl From<String> for UiError {
    fn from(m: String) -> UiError {
        UiError::client(m)
    }
}

/// Marks an error response, so that [`whole_pages`] can give it the page shell when the
/// browser asked for a whole page rather than an htmx fragment.
#[derive(Clone)]
struct ErrorMessage(String);

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, page::fragment(page::error_box(&self.message))).into_response();
        r.extensions_mut().insert(ErrorMessage(self.message));
        r
    }
}

/// An error answered to a whole-page request (not htmx's) becomes a whole page. Every answer
/// says how long the server took (`Server-Timing: app;dur=<ms>`), which the page benchmark reads.
async fn whole_pages(me: Me, req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let start = std::time::Instant::now();
    let htmx = req.headers().contains_key("hx-request");
    let r = next.run(req).await;
    let mut r = match r.extensions().get::<ErrorMessage>() {
        Some(ErrorMessage(m)) if !htmx => {
            let status = r.status();
            (status, page::shell(&me, "Refused", page::error_box(m))).into_response()
        }
        _ => r,
    };
    let dur = format!("app;dur={:.2}", start.elapsed().as_secs_f64() * 1000.0);
    if let Ok(v) = header::HeaderValue::from_str(&dur) {
        r.headers_mut().insert("server-timing", v);
    }
    r
}

/// Runs blocking client work (signing, proofs, HTTP to the nodes) off the async threads.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, UiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| UiError { status: StatusCode::INTERNAL_SERVER_ERROR, message: format!("internal error: {e}") })
}

/// Opens a session for each key and proves its credential. Keys without a credential are
/// kept (they can still browse the explorer) and shown as such.
pub fn identities(config: &Config) -> Vec<Identity> {
    config
        .keys
        .iter()
        .map(|(name, key)| {
            let probe = Session::open_with(&config.nodes, key.clone(), config.light.clone());
            let credential = probe.my_credential().ok();
            // Staff talk to their own institution's node first: reads allowed by a consent to
            // the institution are served through its node, which holds the institution's key.
            let own = credential
                .as_ref()
                .and_then(|c| config.light.genesis().institutions.iter().find(|i| i.id == c.institution))
                .map(|i| i.api_address.clone());
            let session = match own {
                Some(api) => {
                    let mut nodes = vec![api.clone()];
                    nodes.extend(config.nodes.iter().filter(|n| **n != api).cloned());
                    Session::open_with(&nodes, key.clone(), config.light.clone())
                }
                None => probe,
            };
            Identity { name: name.clone(), session: Arc::new(session), credential }
        })
        .collect()
}

/// Is `host` (a `Host` header or an `Origin`'s authority) this loopback server?
fn loopback_host(host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        Some((n, port)) if port.chars().all(|c| c.is_ascii_digit()) => n,
        _ => host,
    };
    matches!(name, "127.0.0.1" | "localhost" | "[::1]")
}

/// The UI acts with the user's keys, so another site must not make the browser act for it:
/// every request must name a loopback host (no DNS rebinding), and a request that changes
/// anything must come from this origin (no cross-site form posts). Checked before any handler.
async fn same_origin_only(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let h = req.headers();
    let host = h.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !loopback_host(host) {
        return UiError::forbidden(format!("the UI answers on loopback only, not for host `{host}`")).into_response();
    }
    // Another site may link to a page (a top-level navigation), not load one as a subresource
    // (an image or a script would act, and log reads, as the user).
    let site = h.get("sec-fetch-site").and_then(|v| v.to_str().ok()).unwrap_or("none");
    let mode = h.get("sec-fetch-mode").and_then(|v| v.to_str().ok()).unwrap_or("navigate");
    if matches!(site, "cross-site" | "same-site") && mode != "navigate" {
        return UiError::forbidden("refused: this request did not come from the UI's own pages").into_response();
    }
    if req.method() != axum::http::Method::GET && req.method() != axum::http::Method::HEAD {
        let cross_site =
            h.get("sec-fetch-site").and_then(|v| v.to_str().ok()).is_some_and(|s| s != "same-origin" && s != "none");
        let origin = h.get(header::ORIGIN).and_then(|v| v.to_str().ok());
        let foreign_origin = origin.is_some_and(|o| {
            o.strip_prefix("http://").is_none_or(|authority| authority != host || !loopback_host(authority))
        });
        if cross_site || foreign_origin {
            return UiError::forbidden("refused: this request did not come from the UI's own pages").into_response();
        }
    }
    let mut res = next.run(req).await;
    // No other site may frame a page (and have the user click its buttons, which act as them).
    let h = res.headers_mut();
    h.insert(header::X_FRAME_OPTIONS, header::HeaderValue::from_static("DENY"));
    h.insert(header::CONTENT_SECURITY_POLICY, header::HeaderValue::from_static("frame-ancestors 'none'"));
    res
}

/// Every route of the UI.
pub fn router(ui: App) -> Router {
    Router::new()
        .merge(page::routes())
        .merge(identity::routes())
        .merge(consent::routes())
        .merge(records::routes())
        .merge(audit::routes())
        .merge(drugs::routes())
        .merge(care::routes())
        .merge(ledger::routes())
        .merge(jobs::routes())
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(ui.clone(), whole_pages))
        .layer(axum::middleware::from_fn(same_origin_only))
        .with_state(ui)
}

async fn not_found(me: Me) -> Response {
    (StatusCode::NOT_FOUND, page::shell(&me, "Not found", page::error_box("There is no such page."))).into_response()
}

/// Serves the UI on `config.listen` until the process ends. `ready` is called with the bound
/// address once the server accepts connections.
pub async fn serve(config: Config, ready: impl FnOnce(SocketAddr)) -> Result<(), String> {
    if !config.listen.ip().is_loopback() {
        return Err(format!(
            "the UI holds your keys and listens on loopback only; {} is not a loopback address",
            config.listen
        ));
    }
    if config.keys.is_empty() {
        return Err("no keys: give --key FILE or --keys DIR".into());
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let identities = {
        let c = Config {
            keys: config.keys.clone(),
            nodes: config.nodes.clone(),
            light: config.light.clone(),
            listen: addr,
        };
        tokio::task::spawn_blocking(move || identities(&c)).await.map_err(|e| e.to_string())?
    };
    let (feed, _) = tokio::sync::broadcast::channel(64);
    let ui = Arc::new(Ui {
        identities,
        jobs: jobs::Jobs::default(),
        light: config.light,
        nodes: config.nodes,
        feed,
        sent: Default::default(),
    });
    ledger::start_feed(ui.clone());
    ready(addr);
    axum::serve(listener, router(ui)).await.map_err(|e| format!("UI server stopped: {e}"))
}

/// `POST /who`: switch identity (a cookie naming it; the keys stay in this process).
pub(crate) async fn switch(State(ui): State<App>, axum::Form(f): axum::Form<WhoForm>) -> Response {
    if !ui.identities.iter().any(|i| i.name == f.who) {
        return UiError::bad_input(format!("no identity named `{}`", f.who)).into_response();
    }
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, format!("who={}; Path=/; HttpOnly; SameSite=Strict", f.who)),
            (header::LOCATION, "/".to_string()),
        ],
    )
        .into_response()
}

#[derive(serde::Deserialize)]
pub(crate) struct WhoForm {
    who: String,
}

pub(crate) fn switch_route() -> Router<App> {
    Router::new().route("/who", post(switch)).route("/healthz", get(|| async { "ok" }))
}

/// Runs the UI server on its own small runtime until the process ends (for the CLI).
pub fn run(config: Config, ready: impl FnOnce(SocketAddr)) -> Result<(), String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the UI runtime: {e}"))?
        .block_on(serve(config, ready))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use medledger_types::genesis::GenesisInstitution;
    use medledger_types::Genesis;
    use tower::ServiceExt;

    /// A UI with one identity and no reachable node: enough to see what is refused before any
    /// handler runs.
    fn ui() -> App {
        test_ui(&[("me", None)])
    }

    /// A UI acting as the named identities (with a credential of the role given, as if proven
    /// on chain) and no reachable node: whatever a form refuses, it refuses before a job starts
    /// or anything is sent.
    pub(crate) fn test_ui(who: &[(&str, Option<Role>)]) -> App {
        let genesis = Genesis {
            chain_id: "ui-test".into(),
            genesis_time_ms: 1,
            ca_key: Keypair::from_seed(1).public(),
            institutions: (0..4)
                .map(|i| GenesisInstitution {
                    id: format!("h{i}"),
                    name: format!("H{i}"),
                    validator_key: Keypair::from_seed(20 + i).public(),
                    admin_key: Keypair::from_seed(30 + i).public(),
                    p2p_address: "127.0.0.1:9".into(),
                    api_address: "127.0.0.1:9".into(),
                })
                .collect(),
        };
        let light = Arc::new(Light::new(genesis));
        let (feed, _) = tokio::sync::broadcast::channel(1);
        let identities = who
            .iter()
            .enumerate()
            .map(|(i, (name, role))| {
                let key = Keypair::from_seed(5 + i as u64);
                let credential = role.map(|role| Credential {
                    subject: key.public(),
                    role,
                    institution: "h1".into(),
                    display_name: name.to_string(),
                    valid_from_ms: 0,
                    valid_until_ms: u64::MAX,
                    issued_at_height: 1,
                    issuer: Keypair::from_seed(1).public(),
                    pseudonym: None,
                    revoked: None,
                });
                let session = Session::open_with(&["127.0.0.1:9".into()], key, light.clone());
                Identity { name: name.to_string(), session: Arc::new(session), credential }
            })
            .collect();
        Arc::new(Ui { identities, jobs: jobs::Jobs::default(), light, nodes: vec![], feed, sent: Default::default() })
    }

    pub(crate) async fn send(ui: &App, req: Request<Body>) -> (StatusCode, String) {
        let r = router(ui.clone()).oneshot(req).await.unwrap();
        let status = r.status();
        let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    fn post(path: &str, host: &str, extra: &[(&str, &str)]) -> Request<Body> {
        let mut b =
            Request::post(path).header("host", host).header("content-type", "application/x-www-form-urlencoded");
        for (k, v) in extra {
            b = b.header(*k, *v);
        }
        b.body(Body::from("grantee=institution%3Ah1&read=1&purpose=treatment")).unwrap()
    }

    #[tokio::test]
    async fn cross_site_and_rebound_requests_are_refused_before_any_handler_or_job() {
        let ui = ui();
        for (host, extra) in [
            ("127.0.0.1:7790", vec![("origin", "http://evil.example")]),
            ("127.0.0.1:7790", vec![("sec-fetch-site", "cross-site")]),
            ("127.0.0.1:7790", vec![("origin", "http://127.0.0.1:9999")]),
            ("evil.example:7790", vec![]),
        ] {
            let (status, body) = send(&ui, post("/consents", host, &extra)).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{host} {extra:?}: {body}");
            // Refused by the guard, not by the handler's own role check.
            assert!(
                body.contains("did not come from the UI's own pages") || body.contains("loopback only"),
                "{host} {extra:?}: {body}"
            );
            assert!(ui.jobs.is_empty(), "no job was started");
        }
        // No page may be framed by another site.
        let r = router(ui.clone())
            .oneshot(Request::get("/consents").header("host", "127.0.0.1:7790").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(r.headers().get("x-frame-options").unwrap(), "DENY");
        assert_eq!(r.headers().get("content-security-policy").unwrap(), "frame-ancestors 'none'");
        let (status, body) =
            send(&ui, Request::get("/").header("host", "evil.example").body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(body.contains("loopback only"), "{body}");
        // Another site may not load a page as an image (a read would be logged as the user).
        let img = Request::get("/records/00")
            .header("host", "127.0.0.1:7790")
            .header("sec-fetch-site", "cross-site")
            .header("sec-fetch-mode", "no-cors")
            .body(Body::empty())
            .unwrap();
        let (status, body) = send(&ui, img).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(body.contains("did not come from the UI's own pages"), "{body}");
        // From its own pages the request reaches the handler, which refuses a key without a
        // credential for its own reason (and starts no job either).
        let own = [("origin", "http://127.0.0.1:7790"), ("sec-fetch-site", "same-origin")];
        let (status, body) = send(&ui, post("/consents", "127.0.0.1:7790", &own)).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(body.contains("without a credential"), "{body}");
        assert!(ui.jobs.is_empty());
    }

    #[tokio::test]
    async fn a_failing_whole_page_keeps_the_shell_and_a_fragment_does_not() {
        let ui = ui();
        let get = |hx: bool| {
            let mut b = Request::get("/consents").header("host", "localhost:7790");
            if hx {
                b = b.header("hx-request", "true");
            }
            b.body(Body::empty()).unwrap()
        };
        let (status, page) = send(&ui, get(false)).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(page.starts_with("<!DOCTYPE html>") && page.contains("role=\"alert\""), "{page}");
        let (_, fragment) = send(&ui, get(true)).await;
        assert!(fragment.starts_with("<div class=\"error\""), "{fragment}");
    }
}
