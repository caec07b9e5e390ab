//! Audit from the user's side: signed audit queries.

use crate::session::{hash_arg, Session};
use crate::tx::now_ms;
use medledger_state::audit::AccessEvent;
use medledger_state::queries;
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
    /// chain, as proven against a finalized state root, and returns it. Events reach the chain
    /// in the holder's next batch; until then each answer proves the event absent.
    pub fn wait_access_event(&self, id: &str, timeout: std::time::Duration) -> Result<AccessEvent, String> {
        let rid = hash_arg(id, "access event id")?;
        let until = std::time::Instant::now() + timeout;
        loop {
            let a = self.proven(&format!("/v1/proofs/access-events/{}", rid.to_hex()))?;
            if let Some(e) = a.replay(|s, _| queries::access_event(s, &rid))? {
                return Ok(e);
            }
            if std::time::Instant::now() > until {
                return Err(format!("access event {id} is not on chain after {}s", timeout.as_secs()));
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}
