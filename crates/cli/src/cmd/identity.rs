//! `medledger keygen`, `medledger genesis` and the CA tools (`medledger ca pseudonym`).

use super::print;
use clap::Subcommand;
use medledger_client::keys::{read_public_key, write_key};
use medledger_client::tx::now_ms;
use medledger_types::{genesis::GenesisInstitution, patient_pseudonym, Genesis, Keypair};
use serde_json::{json, Value};
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum Ca {
    /// Derive a patient's pseudonymous on-chain id from national id and medical record number.
    Pseudonym {
        /// File with the consortium secret (64 hex characters).
        #[arg(long)]
        secret: PathBuf,
        #[arg(long)]
        national_id: String,
        #[arg(long)]
        medical_id: String,
    },
}

pub fn genesis(chain_id: String, ca: PathBuf, specs: Vec<String>, out: PathBuf) -> Result<Value, String> {
    let mut institutions = Vec::new();
    for s in &specs {
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        let [id, name, vkey, akey, p2p, api] = parts.as_slice() else {
            return Err(format!("--institution `{s}`: expected 6 comma-separated fields: id,name,validator-key-file,admin-key-file,p2p-addr,api-addr"));
        };
        institutions.push(GenesisInstitution {
            id: id.to_string(),
            name: name.to_string(),
            validator_key: read_public_key(std::path::Path::new(vkey))?,
            admin_key: read_public_key(std::path::Path::new(akey))?,
            p2p_address: p2p.to_string(),
            api_address: api.to_string(),
        });
    }
    let g = Genesis { chain_id, genesis_time_ms: now_ms(), ca_key: read_public_key(&ca)?, institutions };
    g.validate()?;
    std::fs::write(&out, serde_json::to_string_pretty(&g).expect("genesis serialises"))
        .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    Ok(json!({ "genesis": out, "chain_id": g.chain_id, "validators": g.institutions.len(), "hash": g.hash().to_hex() }))
}

/// Writes a fresh key file (mode 0600).
pub fn keygen(out: PathBuf, force: bool, j: bool) -> Result<(), String> {
    if out.exists() && !force {
        return Err(format!("{} exists; pass --force to overwrite", out.display()));
    }
    let k = Keypair::generate();
    write_key(&out, &k)?;
    print(j, &json!({ "public_key": k.public().to_hex(), "file": out }), |_| println!("{}", k.public().to_hex()));
    Ok(())
}

/// The CA tools.
pub fn ca(what: Ca, j: bool) -> Result<(), String> {
    match what {
        Ca::Pseudonym { secret, national_id, medical_id } => {
            let text =
                std::fs::read_to_string(&secret).map_err(|e| format!("cannot read {}: {e}", secret.display()))?;
            let bytes: [u8; 32] = hex::decode(text.trim())
                .map_err(|e| format!("{}: not hex: {e}", secret.display()))?
                .try_into()
                .map_err(|_| format!("{}: the consortium secret must be 32 bytes", secret.display()))?;
            let p = patient_pseudonym(&bytes, &national_id, &medical_id);
            print(j, &json!({ "pseudonym": p.to_hex() }), |_| println!("{p}"));
        }
    }
    Ok(())
}
