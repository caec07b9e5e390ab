//! A connected user: the node client, the chain id and the user's key. Each domain adds its
//! operations to [`Session`] in its own module ([`crate::records`], [`crate::consent`],
//! [`crate::audit`]).

use crate::http::Client;
use crate::light::Light;
use crate::tx::{applied, submit_with_nonce, wait_committed};
use medledger_state::identity::Credential;
use medledger_state::queries;
use medledger_state::records::{RecordHead, RecordVersion};
use medledger_types::{Hash, Keypair, Operation, PublicKey, Tx};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// How long multi-step operations wait for a commit.
pub const COMMIT_TIMEOUT: Duration = Duration::from_secs(60);

/// A connected user: the nodes, the light client that checks them, the chain id and the
/// user's key.
pub struct Session {
    pub client: Client,
    pub chain_id: String,
    pub key: Keypair,
    pub light: Arc<Light>,
}

impl Session {
    /// A session with `node` first and every other node of the genesis file after it, checked
    /// by this process's light client ([`crate::light::configure`]).
    pub fn open(node: &str, key: Keypair) -> Result<Session, String> {
        let light = crate::light::configured()?;
        let mut nodes = vec![node.to_string()];
        nodes.extend(light.nodes());
        Ok(Session::open_with(&nodes, key, light))
    }

    /// A session checked against `genesis` (rather than this process's configuration), with
    /// `node` first and every other node of the genesis after it.
    pub fn for_genesis(node: &str, key: Keypair, genesis: &medledger_types::Genesis) -> Session {
        let light = Arc::new(Light::new(genesis.clone()));
        let mut nodes = vec![node.to_string()];
        nodes.extend(light.nodes());
        Session::open_with(&nodes, key, light)
    }

    /// A session with exactly `nodes`, in this order of preference.
    pub fn open_with(nodes: &[String], key: Keypair, light: Arc<Light>) -> Session {
        let chain_id = light.genesis().chain_id.clone();
        let client = Client::with_nodes(nodes).with_key(key.clone()).with_chain_id(&chain_id);
        Session { client, chain_id, key, light }
    }

    /// The credential of this session's key, as proven on chain.
    pub fn my_credential(&self) -> Result<Credential, String> {
        let me = self.key.public();
        let a = self.proven(&format!("/v1/proofs/identities/{}", me.to_hex()))?;
        a.replay(|s, at| queries::identity(s, &me, at))?.credential.ok_or_else(|| "your key holds no credential".into())
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

    /// The key bound to a patient pseudonym, as proven on chain.
    pub fn patient_key(&self, pseudonym: &Hash) -> Result<PublicKey, String> {
        let a = self.proven(&format!("/v1/proofs/patients/{}", pseudonym.to_hex()))?;
        a.replay(|s, _| queries::patient_key(s, pseudonym))?
            .ok_or_else(|| format!("no patient with pseudonym {pseudonym} (proven absent at height {})", a.height))
    }

    /// A record's head and anchored versions, as proven on chain.
    pub fn record(&self, id: &Hash) -> Result<(RecordHead, Vec<RecordVersion>), String> {
        let a = self.proven(&format!("/v1/proofs/records/{}", id.to_hex()))?;
        a.replay(|s, _| queries::record(s, id))?
            .ok_or_else(|| format!("no record {id} (proven absent at height {})", a.height))
    }

    /// The vault recipient key of `institution` (its genesis admin key, from the genesis file).
    pub fn holder_key(&self, institution: &str) -> Result<PublicKey, String> {
        self.light.holder_key(institution)
    }
}

pub fn hash_arg(s: &str, what: &str) -> Result<Hash, String> {
    Hash::from_hex(s.trim()).map_err(|e| format!("{what}: {e}"))
}
