//! A small blocking JSON client for the node API. Errors carry the node's registry code and
//! message (`node refused (403 not_permitted): ...`).

use serde_json::Value;
use std::time::Duration;

pub struct Client {
    base: String,
    agent: ureq::Agent,
}

impl Client {
    pub fn new(base: &str) -> Client {
        let base = base.trim_end_matches('/').to_string();
        let base =
            if base.starts_with("http://") || base.starts_with("https://") { base } else { format!("http://{base}") };
        let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).build();
        Client { base, agent }
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
            Err(e) => Err(format!("cannot reach node at {}: {e}", self.base)),
        }
    }

    pub fn get(&self, path: &str) -> Result<Value, String> {
        self.handle(self.agent.get(&format!("{}{path}", self.base)).call())
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

    /// GET that treats 404 as `None`.
    pub fn get_opt(&self, path: &str) -> Result<Option<Value>, String> {
        match self.agent.get(&format!("{}{path}", self.base)).call() {
            Err(ureq::Error::Status(404, _)) => Ok(None),
            r => self.handle(r).map(Some),
        }
    }
}
