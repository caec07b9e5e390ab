//! A connected user: the node client, the chain id and the user's key. Each domain adds its
//! operations to [`Session`] in its own module ([`crate::records`], [`crate::consent`],
//! [`crate::audit`]).

use crate::http::Client;
use crate::tx::{applied, submit_with_nonce, wait_committed};
use medledger_types::{Hash, Keypair, Operation, PublicKey, Tx};
use serde_json::Value;
use std::time::Duration;

/// How long multi-step operations wait for a commit.
pub const COMMIT_TIMEOUT: Duration = Duration::from_secs(60);

/// A connected user: the node client, the chain id and the user's key.
pub struct Session {
    pub client: Client,
    pub chain_id: String,
    pub key: Keypair,
    pub(crate) status: Value,
}

impl Session {
    pub fn open(node: &str, key: Keypair) -> Result<Session, String> {
        // Node status is public; every later read is signed, over the chain id learnt here.
        let status = Client::new(node).get("/v1/status")?;
        let chain_id = status["chain_id"].as_str().ok_or("node status has no chain_id")?.to_string();
        let client = Client::new(node).with_key(key.clone()).with_chain_id(&chain_id);
        Ok(Session { client, chain_id, key, status })
    }

    pub fn me(&self) -> Result<Value, String> {
        self.client.get(&format!("/v1/identities/{}", self.key.public().to_hex()))
    }

    /// Signs and submits `op` at the signer's next nonce, waits for the commit and returns the
    /// committed status; a rejection is an error carrying the chain's reason.
    pub fn transact(&self, op: Operation) -> Result<(Tx, Value), String> {
        op.check_limits()?;
        let nonce = self.me()?["next_nonce"].as_u64().ok_or("node identity has no next_nonce")?;
        let (tx, _) = submit_with_nonce(&self.client, &self.key, &self.chain_id, nonce, op)?;
        let v = applied(wait_committed(&self.client, &tx.id(), COMMIT_TIMEOUT)?)?;
        Ok((tx, v))
    }

    pub fn patient_key(&self, pseudonym: &Hash) -> Result<PublicKey, String> {
        let v = self.client.get(&format!("/v1/patients/{}", pseudonym.to_hex()))?;
        PublicKey::from_hex(v["key"].as_str().unwrap_or("")).map_err(|e| format!("patient key: {e}"))
    }

    pub fn record(&self, id: &Hash) -> Result<Value, String> {
        self.client.get(&format!("/v1/records/{}", id.to_hex()))
    }

    /// The vault recipient key of `institution` (its genesis admin key).
    pub fn holder_key(&self, institution: &str) -> Result<PublicKey, String> {
        let v = self.status["validators"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| v["institution"] == institution)
            .ok_or_else(|| format!("institution `{institution}` runs no validator, so it has no record vault"))?;
        PublicKey::from_hex(v["admin_key"].as_str().unwrap_or(""))
            .map_err(|e| format!("admin key of `{institution}`: {e}"))
    }
}

pub fn hash_arg(s: &str, what: &str) -> Result<Hash, String> {
    Hash::from_hex(s.trim()).map_err(|e| format!("{what}: {e}"))
}
