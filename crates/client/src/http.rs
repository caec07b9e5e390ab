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

pub struct Client {
    base: String,
    agent: ureq::Agent,
    /// The key that signs `GET`s (`Authorization: MedLedger …`), if any.
    key: Option<Keypair>,
    /// The node's chain id, learnt from `/v1/status` on the first signed request.
    chain_id: OnceLock<String>,
}

impl Client {
    pub fn new(base: &str) -> Client {
        let base = base_url(base);
        let agent = agent_builder().build();
        Client { base, agent, key: None, chain_id: OnceLock::new() }
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

    /// A `GET` request for `path`, signed by `key` (or this client's key) if there is one.
    fn get_request(&self, path: &str, key: Option<&Keypair>) -> Result<ureq::Request, String> {
        let req = self.agent.get(&format!("{}{path}", self.base));
        let Some(key) = key.or(self.key.as_ref()) else { return Ok(req) };
        let chain_id = match self.chain_id.get() {
            Some(c) => c.clone(),
            None => {
                let status = self.handle(self.agent.get(&format!("{}/v1/status", self.base)).call())?;
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
            Ok(resp) => resp.into_json::<Value>().map_err(|e| format!("bad response from {}: {e}", self.base)),
            Err(ureq::Error::Status(code, resp)) => {
                let body: Value = resp.into_json().unwrap_or(Value::Null);
                let c = body["error"]["code"].as_str().unwrap_or("http_error");
                let m = body["error"]["message"].as_str().unwrap_or("");
                Err(format!("node refused ({code} {c}): {m}"))
            }
            Err(e) if self.base.starts_with("http://") => Err(format!(
                "cannot reach node at {}: {e} (if it serves HTTPS, as a devnet does, give --ca-cert with the \
                 consortium CA certificate, e.g. .devnet/tls/ca.pem, or set MEDLEDGER_CA_CERT)",
                self.base
            )),
            Err(e) => Err(format!("cannot reach node at {}: {e}", self.base)),
        }
    }

    pub fn get(&self, path: &str) -> Result<Value, String> {
        self.handle(self.get_request(path, None)?.call())
    }

    /// `GET` signed by `key` (whatever key this client has).
    pub fn get_as(&self, key: &Keypair, path: &str) -> Result<Value, String> {
        self.handle(self.get_request(path, Some(key))?.call())
    }

    pub fn post(&self, path: &str, body: &Value) -> Result<Value, String> {
        self.handle(self.agent.post(&format!("{}{path}", self.base)).send_json(body.clone()))
    }

    /// POST whose success has no body (204).
    pub fn post_empty(&self, path: &str, body: &Value) -> Result<(), String> {
        match self.agent.post(&format!("{}{path}", self.base)).send_json(body.clone()) {
            Ok(_) => Ok(()),
            r => self.handle(r).map(|_| ()),
        }
    }

    /// A signed `GET` whose answer is read as a stream (Server-Sent Events).
    pub fn get_stream(&self, path: &str) -> Result<ureq::Response, String> {
        match self.get_request(path, None)?.timeout(Duration::from_secs(24 * 3600)).call() {
            Ok(resp) => Ok(resp),
            Err(e) => Err(self.handle(Err(e)).err().unwrap_or_default()),
        }
    }

    /// GET that treats 404 as `None`.
    pub fn get_opt(&self, path: &str) -> Result<Option<Value>, String> {
        match self.get_request(path, None)?.call() {
            Err(ureq::Error::Status(404, _)) => Ok(None),
            r => self.handle(r).map(Some),
        }
    }
}
