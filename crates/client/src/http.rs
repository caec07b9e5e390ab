//! A small blocking JSON client for the node API. Errors carry the node's registry code and
//! message (`node refused (403 not_permitted): ...`).

use medledger_types::auth::ApiRequest;
use medledger_types::Keypair;
use serde_json::Value;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The consortium CA this process trusts, once [`trust_consortium_ca`] is called.
static TRUST: OnceLock<Arc<medledger_tls::rustls::ClientConfig>> = OnceLock::new();

/// Trusts the consortium CA certificate at `path` (PEM) for every client made from now on:
/// node addresses without a scheme are then reached over HTTPS, and only certificates issued
/// by that CA are accepted. The CLI calls it for `--ca-cert` (or `MEDLEDGER_CA_CERT`).
pub fn trust_consortium_ca(path: &Path) -> Result<(), String> {
    let cfg = medledger_tls::client_config(path)?;
    let _ = TRUST.set(cfg);
    Ok(())
}

/// Whether a consortium CA is trusted (addresses without a scheme mean HTTPS).
pub fn tls_enabled() -> bool {
    TRUST.get().is_some()
}

/// The URL of a node address: kept if it names its scheme, else HTTPS when a consortium CA is
/// trusted and HTTP otherwise.
pub fn base_url(addr: &str) -> String {
    let addr = addr.trim_end_matches('/');
    if addr.starts_with("http://") || addr.starts_with("https://") {
        addr.to_string()
    } else if tls_enabled() {
        format!("https://{addr}")
    } else {
        format!("http://{addr}")
    }
}

/// An agent builder that trusts the consortium CA when one is trusted.
pub fn agent_builder() -> ureq::AgentBuilder {
    let b = ureq::AgentBuilder::new().timeout(Duration::from_secs(30));
    match TRUST.get() {
        Some(cfg) => b.tls_config(cfg.clone()),
        None => b,
    }
}

/// A client of one or more nodes. Requests go to the current node; when it cannot be reached,
/// to the next (and that one becomes current). Answers that need no trust in the node are
/// checked by the caller ([`crate::light`]), which moves on the same way when one fails.
pub struct Client {
    bases: Vec<String>,
    current: std::sync::atomic::AtomicUsize,
    agent: ureq::Agent,
    /// The key that signs `GET`s (`Authorization: MedLedger …`), if any.
    key: Option<Keypair>,
    /// The node's chain id, learnt from `/v1/status` on the first signed request.
    chain_id: OnceLock<String>,
}

// `ureq::Error` is large, and it is ureq's own: the send closures return it as ureq gives it.
#[allow(clippy::result_large_err)]
impl Client {
    pub fn new(base: &str) -> Client {
        Client::with_nodes(&[base.to_string()])
    }

    /// A client of `nodes`, tried in this order (duplicates are dropped). Panics if empty.
    pub fn with_nodes(nodes: &[String]) -> Client {
        assert!(!nodes.is_empty(), "a client needs at least one node");
        let mut bases: Vec<String> = Vec::new();
        for n in nodes {
            let b = base_url(n);
            if !bases.contains(&b) {
                bases.push(b);
            }
        }
        let agent = agent_builder().build();
        Client { bases, current: 0.into(), agent, key: None, chain_id: OnceLock::new() }
    }

    /// The nodes, in order of preference.
    pub fn nodes(&self) -> &[String] {
        &self.bases
    }

    /// The index of the node requests go to now.
    pub fn current(&self) -> usize {
        self.current.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Makes node `i` the current one.
    pub fn set_current(&self, i: usize) {
        self.current.store(i % self.bases.len(), std::sync::atomic::Ordering::Relaxed)
    }

    /// The current node's base URL.
    pub fn base(&self) -> &str {
        &self.bases[self.current() % self.bases.len()]
    }

    /// Sends `req(base)` to the current node, then to each next one while the node cannot be
    /// reached (an HTTP answer, even an error, ends the search).
    fn failover(
        &self,
        req: impl Fn(&str) -> Result<ureq::Request, String>,
        send: impl Fn(ureq::Request) -> Result<ureq::Response, ureq::Error>,
    ) -> Result<Result<ureq::Response, ureq::Error>, String> {
        let n = self.bases.len();
        let start = self.current();
        let mut last = None;
        for step in 0..n {
            let i = (start + step) % n;
            let r = send(req(&self.bases[i])?);
            match r {
                Err(ureq::Error::Transport(t)) => last = Some((i, Err(ureq::Error::Transport(t)))),
                r => {
                    self.set_current(i);
                    return Ok(r);
                }
            }
        }
        let (i, r) = last.expect("at least one node was tried");
        self.set_current(i);
        Ok(r)
    }

    /// This client, signing every `GET` with `key` (the node answers with what that key's
    /// holder may see). Node status and the API document need no signature.
    pub fn with_key(mut self, key: Keypair) -> Client {
        self.key = Some(key);
        self
    }

    /// Tells this client the node's chain id (which signed requests cover), so it need not ask
    /// the node for it.
    pub fn with_chain_id(self, chain_id: &str) -> Client {
        let _ = self.chain_id.set(chain_id.to_string());
        self
    }

    /// A `GET` request for `path` at `base`, signed by `key` (or this client's key) if there is
    /// one. Each call signs afresh (a new nonce), so a retry on another node is not a replay.
    fn get_request(&self, base: &str, path: &str, key: Option<&Keypair>) -> Result<ureq::Request, String> {
        let req = self.agent.get(&format!("{base}{path}"));
        let Some(key) = key.or(self.key.as_ref()) else { return Ok(req) };
        let chain_id = match self.chain_id.get() {
            Some(c) => c.clone(),
            None => {
                let status = self.handle(self.agent.get(&format!("{base}/v1/status")).call())?;
                let c = status["chain_id"].as_str().ok_or("node status has no chain_id")?.to_string();
                self.chain_id.get_or_init(|| c).clone()
            }
        };
        let signed = ApiRequest {
            chain_id,
            method: "GET".into(),
            path: path.to_string(),
            issued_ms: crate::tx::now_ms(),
            nonce: crate::tx::request_nonce(),
        };
        Ok(req.set("authorization", &signed.authorization(key)))
    }

    fn handle(&self, r: Result<ureq::Response, ureq::Error>) -> Result<Value, String> {
        match r {
            Ok(resp) => resp.into_json::<Value>().map_err(|e| format!("bad response from {}: {e}", self.base())),
            Err(ureq::Error::Status(code, resp)) => {
                let body: Value = resp.into_json().unwrap_or(Value::Null);
                let c = body["error"]["code"].as_str().unwrap_or("http_error");
                let m = body["error"]["message"].as_str().unwrap_or("");
                Err(format!("node refused ({code} {c}): {m}"))
            }
            Err(e) if self.base().starts_with("http://") => Err(format!(
                "cannot reach node at {}: {e} (if it serves HTTPS, as a devnet does, give --ca-cert with the \
                 consortium CA certificate, e.g. .devnet/tls/ca.pem, or set MEDLEDGER_CA_CERT)",
                self.base()
            )),
            Err(e) => Err(format!("cannot reach node at {}: {e}", self.base())),
        }
    }

    pub fn get(&self, path: &str) -> Result<Value, String> {
        let r = self.failover(|b| self.get_request(b, path, None), |r| r.call())?;
        self.handle(r)
    }

    /// `GET` signed by `key` (whatever key this client has).
    pub fn get_as(&self, key: &Keypair, path: &str) -> Result<Value, String> {
        let r = self.failover(|b| self.get_request(b, path, Some(key)), |r| r.call())?;
        self.handle(r)
    }

    /// A signed `GET` of node `i` only (no failover): for answers the caller verifies itself
    /// and, if they fail, asks the next node for.
    pub fn get_from(&self, i: usize, path: &str) -> Result<Value, String> {
        let base = &self.bases[i % self.bases.len()];
        let r = self.get_request(base, path, None)?.call();
        match r {
            Ok(resp) => resp.into_json::<Value>().map_err(|e| format!("bad response: {e}")),
            Err(ureq::Error::Status(code, resp)) => {
                let body: Value = resp.into_json().unwrap_or(Value::Null);
                let c = body["error"]["code"].as_str().unwrap_or("http_error");
                let m = body["error"]["message"].as_str().unwrap_or("");
                Err(format!("refused ({code} {c}): {m}"))
            }
            Err(e) => Err(format!("unreachable: {e}")),
        }
    }

    pub fn post(&self, path: &str, body: &Value) -> Result<Value, String> {
        let r = self.failover(|b| Ok(self.agent.post(&format!("{b}{path}"))), |r| r.send_json(body.clone()))?;
        self.handle(r)
    }

    /// POST whose success has no body (204).
    pub fn post_empty(&self, path: &str, body: &Value) -> Result<(), String> {
        match self.failover(|b| Ok(self.agent.post(&format!("{b}{path}"))), |r| r.send_json(body.clone()))? {
            Ok(_) => Ok(()),
            r => self.handle(r).map(|_| ()),
        }
    }

    /// A signed `GET` whose answer is read as a stream (Server-Sent Events).
    pub fn get_stream(&self, path: &str) -> Result<ureq::Response, String> {
        let long = Duration::from_secs(24 * 3600);
        match self.failover(|b| Ok(self.get_request(b, path, None)?.timeout(long)), |r| r.call())? {
            Ok(resp) => Ok(resp),
            Err(e) => Err(self.handle(Err(e)).err().unwrap_or_default()),
        }
    }

    /// An unsigned `GET` of a plain-text answer (`/metrics`), from this client's nodes in turn.
    pub fn get_text(&self, path: &str) -> Result<String, String> {
        match self.failover(|b| Ok(self.agent.get(&format!("{b}{path}"))), |r| r.call())? {
            Ok(resp) => resp.into_string().map_err(|e| format!("bad response from {}: {e}", self.base())),
            r => self.handle(r).map(|v| v.to_string()),
        }
    }

    /// GET that treats 404 as `None`.
    pub fn get_opt(&self, path: &str) -> Result<Option<Value>, String> {
        match self.failover(|b| self.get_request(b, path, None), |r| r.call())? {
            Err(ureq::Error::Status(404, _)) => Ok(None),
            r => self.handle(r).map(Some),
        }
    }
}
