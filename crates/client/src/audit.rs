//! Audit from the user's side: signed audit queries.

use crate::session::Session;
use crate::tx::now_ms;
use medledger_types::read::AuditQuery;
use medledger_types::Canonical;
use serde_json::{json, Value};

impl Session {
    /// Signs an audit query and runs it.
    pub fn audit(&self, mut q: AuditQuery, fhir: bool) -> Result<Value, String> {
        q.chain_id = self.chain_id.clone();
        q.requester = Some(self.key.public());
        q.issued_ms = now_ms();
        q.nonce = crate::tx::request_nonce();
        let body = json!({
            "query": hex::encode(q.to_bytes()),
            "signature": hex::encode(q.sign(&self.key).0),
            "format": if fhir { "fhir" } else { "json" },
        });
        self.client.post("/v1/audit", &body)
    }

    /// Waits until the access event of read request `id` (a read answer's `access_event`) is on
    /// chain, and returns it. Events reach the chain in the holder's next batch.
    pub fn wait_access_event(&self, id: &str, timeout: std::time::Duration) -> Result<Value, String> {
        let until = std::time::Instant::now() + timeout;
        loop {
            if let Some(v) = self.client.get_opt(&format!("/v1/access-events/{id}"))? {
                return Ok(v);
            }
            if std::time::Instant::now() > until {
                return Err(format!("access event {id} is not on chain after {}s", timeout.as_secs()));
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}
