//! The light client: state answers are believed only once proven against a block that a quorum
//! of the genesis validators finalized.
//!
//! [`Light`] holds the genesis file (the validator set), and a floor under the heights it
//! accepts: `--min-height` at first, then the highest height it has verified, so no node can
//! take it back to an older state. With a maximum staleness it also refuses a state whose block
//! is older than that. [`Session::proven`] asks the session's nodes in turn for a proof; an
//! answer that does not verify is refused with the name of the node that sent it, and the next
//! node is asked.
//!
//! The answers are computed by replaying the very query the node ran
//! ([`medledger_state::queries`]) over the verified values only.

use crate::session::Session;
use medledger_state::commitment::Proven;
use medledger_state::queries::At;
use medledger_state::store::StateRead;
use medledger_types::{Genesis, PublicKey, StateProof};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// What a light client trusts: the genesis file, and how fresh an answer must be.
pub struct Light {
    genesis: Genesis,
    /// No answer below this height is accepted; raised to every height verified.
    floor: AtomicU64,
    max_staleness: Option<Duration>,
}

/// A verified answer: which node sent it, the finalized block it is proven at, and the proven
/// values (queries over anything else fail).
pub struct Answer {
    pub node: String,
    pub height: u64,
    pub timestamp_ms: u64,
    /// The proof as the node sent it (for `medledger verify --state-proof`).
    pub proof: StateProof,
    proven: Proven,
}

impl Answer {
    /// Runs `query` over the verified values; fails if it reads a key the proof did not cover.
    pub fn replay<T>(&self, query: impl FnOnce(&dyn StateRead, At) -> T) -> Result<T, String> {
        let at = self.at();
        self.proven.replay(|s| query(s, at)).map_err(|e| format!("refused the answer of {}: {e}", self.node))
    }

    /// The time of the answer: as of the block after the proven one.
    pub fn at(&self) -> At {
        At::after(self.height, self.timestamp_ms)
    }
}

impl Light {
    pub fn new(genesis: Genesis) -> Light {
        Light { genesis, floor: AtomicU64::new(0), max_staleness: None }
    }

    /// Refuses states below `height`.
    pub fn with_min_height(self, height: u64) -> Light {
        self.floor.fetch_max(height, Ordering::Relaxed);
        self
    }

    /// Refuses states whose block is older than `age` (by this machine's clock).
    pub fn with_max_staleness(mut self, age: Duration) -> Light {
        self.max_staleness = Some(age);
        self
    }

    pub fn genesis(&self) -> &Genesis {
        &self.genesis
    }

    /// The lowest height an answer may have now.
    pub fn floor(&self) -> u64 {
        self.floor.load(Ordering::Relaxed)
    }

    /// Every node of the consortium's API, in genesis order.
    pub fn nodes(&self) -> Vec<String> {
        self.genesis.institutions.iter().map(|i| i.api_address.clone()).collect()
    }

    /// The record-vault key of `institution` (its genesis admin key), from the genesis file.
    pub fn holder_key(&self, institution: &str) -> Result<PublicKey, String> {
        self.genesis
            .institutions
            .iter()
            .find(|i| i.id == institution)
            .map(|i| i.admin_key)
            .ok_or_else(|| format!("institution `{institution}` runs no validator, so it has no record vault"))
    }

    /// Verifies `proof` (sent by `node`): certificate, header chain, every Merkle proof, and
    /// freshness.
    pub fn check(&self, node: &str, proof: &StateProof) -> Result<Answer, String> {
        let v = proof.verify(&self.genesis)?;
        let floor = self.floor();
        if v.height < floor {
            return Err(format!(
                "stale state: height {} is below {floor}, a height already verified or required (--min-height)",
                v.height
            ));
        }
        if let Some(max) = self.max_staleness {
            let age = crate::tx::now_ms().saturating_sub(v.timestamp_ms);
            if age > max.as_millis() as u64 {
                return Err(format!(
                    "stale state: block {} is {:.1} s old, more than the {:.1} s allowed (--max-staleness)",
                    v.height,
                    age as f64 / 1000.0,
                    max.as_secs_f64()
                ));
            }
        }
        self.floor.fetch_max(v.height, Ordering::Relaxed);
        Ok(Answer {
            node: node.to_string(),
            height: v.height,
            timestamp_ms: v.timestamp_ms,
            proof: proof.clone(),
            proven: Proven::new(v.entries),
        })
    }
}

/// The light client configuration of this process (the CLI sets it from `--genesis`,
/// `--min-height` and `--max-staleness`).
static CONFIGURED: OnceLock<Arc<Light>> = OnceLock::new();

/// Trusts the genesis file at `path` for every session opened from now on.
pub fn configure(path: &Path, min_height: u64, max_staleness: Option<Duration>) -> Result<(), String> {
    let g = crate::keys::read_genesis(path)?;
    let mut light = Light::new(g).with_min_height(min_height);
    if let Some(age) = max_staleness {
        light = light.with_max_staleness(age);
    }
    let _ = CONFIGURED.set(Arc::new(light));
    Ok(())
}

/// The configured light client, or an error that says how to configure it.
pub fn configured() -> Result<Arc<Light>, String> {
    CONFIGURED.get().cloned().ok_or_else(|| {
        "the light client needs the consortium's genesis file to verify what nodes say: give --genesis FILE \
         (a devnet's is DIR/genesis.json; .devnet/genesis.json is used when present) or set MEDLEDGER_GENESIS"
            .to_string()
    })
}

/// How often a round over every node is retried while the newest state is not yet certified.
const CERTIFICATION_RETRIES: usize = 20;

impl Session {
    /// Asks the session's nodes, current first, for the proof at `path` and returns the first
    /// answer that verifies. Each failure names its node; when every node fails, so does this.
    pub fn proven(&self, path: &str) -> Result<Answer, String> {
        proven_from(&self.client, &self.light, path)
    }
}

/// [`Session::proven`] without a key: for the proofs anyone may ask for (a pack's verification).
pub fn proven_from(client: &crate::Client, light: &Light, path: &str) -> Result<Answer, String> {
    let n = client.nodes().len();
    for round in 0..CERTIFICATION_RETRIES {
        let mut failures = Vec::new();
        let mut uncertified = false;
        let start = client.current();
        for step in 0..n {
            let i = (start + step) % n;
            let node = client.nodes()[i].clone();
            let answer = client
                .get_from(i, path)
                .and_then(|v| serde_json::from_value::<StateProof>(v).map_err(|e| format!("not a state proof: {e}")))
                .and_then(|p| light.check(&node, &p));
            match answer {
                Ok(a) => {
                    for f in &failures {
                        eprintln!("warning: {f}; used {node} instead");
                    }
                    client.set_current(i);
                    return Ok(a);
                }
                Err(e) => {
                    uncertified |= e.contains("not_yet_certified");
                    failures.push(format!("refused the answer of {node}: {e}"));
                }
            }
        }
        if !uncertified || round + 1 == CERTIFICATION_RETRIES {
            return Err(failures.join("; "));
        }
        std::thread::sleep(Duration::from_millis(150));
    }
    unreachable!("the last round returns")
}
