//! The consortium's genesis file: chain id, the CA key and the validator institutions.

use crate::hash::{domain, tagged, Hash};
use crate::keys::PublicKey;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenesisInstitution {
    /// Short stable id, e.g. `hospital-a`.
    pub id: String,
    pub name: String,
    /// The institution's validator (consensus and p2p) key.
    pub validator_key: PublicKey,
    /// The institution admin key, credentialed at genesis.
    pub admin_key: PublicKey,
    /// Where its validator accepts peer connections (`ip:port`).
    pub p2p_address: String,
    /// Where its REST API listens (`ip:port`), for clients and request forwarding.
    pub api_address: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Genesis {
    pub chain_id: String,
    pub genesis_time_ms: u64,
    /// The consortium certification authority.
    pub ca_key: PublicKey,
    pub institutions: Vec<GenesisInstitution>,
}

impl Genesis {
    pub fn parse(json: &str) -> Result<Genesis, String> {
        let g: Genesis = serde_json::from_str(json).map_err(|e| format!("genesis file is not valid: {e}"))?;
        g.validate()?;
        Ok(g)
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.chain_id.is_empty() || self.chain_id.len() > crate::tx::limits::MAX_CHAIN_ID {
            return Err(format!("chain_id must be 1..={} bytes", crate::tx::limits::MAX_CHAIN_ID));
        }
        if self.institutions.len() < 4 {
            return Err(format!(
                "a consortium needs at least 4 validator institutions to tolerate one fault, genesis has {}",
                self.institutions.len()
            ));
        }
        let mut ids = BTreeSet::new();
        let mut keys = BTreeSet::new();
        for i in &self.institutions {
            if i.id.is_empty() || i.id.len() > crate::tx::limits::MAX_INSTITUTION_ID {
                return Err(format!("institution id `{}` must be 1..=64 bytes", i.id));
            }
            if !ids.insert(i.id.clone()) {
                return Err(format!("institution id `{}` appears twice", i.id));
            }
            if !keys.insert(i.validator_key) {
                return Err(format!("validator key of `{}` appears twice", i.id));
            }
            if i.validator_key.to_ed25519().is_none() {
                return Err(format!("validator key of `{}` is not a valid ed25519 key", i.id));
            }
            i.p2p_address
                .parse::<std::net::SocketAddr>()
                .map_err(|e| format!("p2p_address of `{}` ({}): {e}", i.id, i.p2p_address))?;
            i.api_address
                .parse::<std::net::SocketAddr>()
                .map_err(|e| format!("api_address of `{}` ({}): {e}", i.id, i.api_address))?;
        }
        Ok(())
    }

    /// Tolerated faulty validators: ⌊(n−1)/3⌋.
    pub fn max_faults(&self) -> usize {
        (self.institutions.len() - 1) / 3
    }

    /// Hash of the canonical JSON form; seeds the genesis block's parent.
    pub fn hash(&self) -> Hash {
        let json = serde_json::to_vec(self).expect("genesis serialises");
        tagged(domain::GENESIS, &[&json])
    }

    pub fn institution_of_validator(&self, key: &PublicKey) -> Option<&GenesisInstitution> {
        self.institutions.iter().find(|i| &i.validator_key == key)
    }
}

/// A patient's pseudonymous on-chain id: keyed BLAKE3 of national id and medical id under the
/// consortium secret held by the CA. Inputs are length-prefixed so that `("ab","c")` and
/// `("a","bc")` differ. Neither input is ever written to chain or storage.
pub fn patient_pseudonym(consortium_secret: &[u8; 32], national_id: &str, medical_id: &str) -> Hash {
    let mut h = blake3::Hasher::new_keyed(consortium_secret);
    h.update(domain::PATIENT_ID);
    for part in [national_id.trim(), medical_id.trim()] {
        h.update(&(part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    Hash(*h.finalize().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_are_keyed_and_unambiguous() {
        let s = [7u8; 32];
        let a = patient_pseudonym(&s, "ab", "c");
        assert_ne!(a, patient_pseudonym(&s, "a", "bc"));
        assert_ne!(a, patient_pseudonym(&[8u8; 32], "ab", "c"));
        assert_eq!(a, patient_pseudonym(&s, " ab ", "c"));
    }
}
