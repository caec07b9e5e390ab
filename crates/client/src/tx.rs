//! Transactions from the user's side: sign at the next nonce, submit, wait for the commit.

use crate::http::Client;
use medledger_types::{Hash, Keypair, Operation, Transaction, Tx};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// A fresh random id for consents, requests and records.
pub fn new_id() -> Hash {
    Hash(Keypair::generate().public().0)
}

/// A fresh random nonce for a signed read or audit query, so that two requests signed in the
/// same millisecond differ (nodes refuse a request they have already seen).
pub fn request_nonce() -> u64 {
    let k = Keypair::generate().public().0;
    u64::from_be_bytes([k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7]])
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Signs `op` with the next nonce of `key` (as the node reports it) and submits it.
pub fn submit(client: &Client, key: &Keypair, op: Operation) -> Result<(Tx, Value), String> {
    op.check_limits()?;
    let status = client.get("/v1/status")?;
    let chain_id = status["chain_id"].as_str().ok_or("node status has no chain_id")?.to_string();
    let ident = client.get_as(key, &format!("/v1/identities/{}", key.public().to_hex()))?;
    let nonce = ident["next_nonce"].as_u64().ok_or("node identity has no next_nonce")?;
    submit_with_nonce(client, key, &chain_id, nonce, op)
}

pub fn submit_with_nonce(
    client: &Client,
    key: &Keypair,
    chain_id: &str,
    nonce: u64,
    op: Operation,
) -> Result<(Tx, Value), String> {
    let tx = Tx::sign(Transaction { chain_id: chain_id.to_string(), signer: key.public(), nonce, op }, key);
    let r = client.post("/v1/txs", &json!({ "tx": hex::encode(tx.raw()) }))?;
    Ok((tx, r))
}

/// Polls until `id` is committed; returns the status JSON.
pub fn wait_committed(client: &Client, id: &Hash, timeout: Duration) -> Result<Value, String> {
    let start = Instant::now();
    crate::progress::report(crate::progress::Step::Pending(*id));
    loop {
        if let Some(v) = client.get_opt(&format!("/v1/txs/{}", id.to_hex()))? {
            if v["status"] == "committed" {
                let height = v["height"].as_u64().unwrap_or(0);
                crate::progress::report(crate::progress::Step::Committed { tx: *id, height });
                return Ok(v);
            }
        }
        if start.elapsed() > timeout {
            return Err(format!("transaction {id} not committed after {}s", timeout.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Turns a committed status into an error if the transaction was rejected.
pub fn applied(v: Value) -> Result<Value, String> {
    let o = &v["receipt"]["outcome"];
    if o["status"] == "applied" {
        Ok(v)
    } else {
        Err(format!(
            "rejected on chain ({}): {}",
            o["code"].as_str().unwrap_or("?"),
            o["reason"].as_str().unwrap_or("")
        ))
    }
}
