//! Conformance fixtures: frozen encodings of one value of every wire type, with their hashes.
//!
//! `tests/fixtures/conformance.json` holds, for every operation of every domain, a signed
//! transaction carrying it, a receipt and a block header: the canonical bytes (hex), the
//! transaction id and a domain-separated hash of the bytes. The test re-encodes the same values
//! and compares byte for byte, so every change to the wire format is deliberate: regenerate the
//! file with `MEDLEDGER_BLESS=1 cargo test -p medledger-types conformance` and review the diff.

#[cfg(test)]
mod tests {
    use crate::block::BlockHeader;
    use crate::codec::Canonical;
    use crate::hash::{tagged, Hash};
    use crate::keys::Keypair;
    use crate::receipt::{Event, Outcome, Receipt, RejectCode};
    use crate::tx::{Transaction, Tx};
    use serde_json::{json, Value};

    const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/conformance.json");
    const TAG: &[u8] = crate::hash::domain::CONFORMANCE_FIXTURE;

    fn entry(name: &str, bytes: &[u8], id: Option<Hash>) -> Value {
        let mut v = json!({ "name": name, "hex": hex::encode(bytes), "hash": tagged(TAG, &[bytes]).to_hex() });
        if let Some(id) = id {
            v["id"] = json!(id.to_hex());
        }
        v
    }

    fn current() -> Value {
        let k = Keypair::from_seed(7);
        let mut entries = Vec::new();
        for op in crate::tx::tests::all_ops() {
            let name = op.kind().name();
            // The nonce derives from the operation's name, not its position: a new operation
            // adds an entry and leaves every other one as it was.
            let h = tagged(TAG, &[name.as_bytes()]);
            let nonce = u64::from_be_bytes(h.0[..8].try_into().expect("8 bytes")) >> 1;
            let tx = Tx::sign(Transaction { chain_id: "conformance".into(), signer: k.public(), nonce, op }, &k);
            entries.push(entry(&format!("tx/{name}"), tx.raw(), Some(tx.id())));
        }
        let receipts = [
            Receipt {
                tx_id: Hash([1; 32]),
                height: 9,
                index: 2,
                outcome: Outcome::Applied { events: vec![Event::new("attested").with("digest", "ab")] },
            },
            Receipt {
                tx_id: Hash([2; 32]),
                height: 9,
                index: 3,
                outcome: Outcome::Rejected { code: RejectCode::NotPermitted, reason: "no".into() },
            },
        ];
        for (i, r) in receipts.iter().enumerate() {
            entries.push(entry(&format!("receipt/{i}"), &r.to_bytes(), None));
        }
        let header = BlockHeader {
            height: 5,
            parent: Hash([3; 32]),
            timestamp_ms: 1_700_000_000_000,
            proposer: k.public(),
            tx_root: Hash([4; 32]),
            state_root: Hash([5; 32]),
            tx_count: 7,
        };
        entries.push(entry("block_header", &header.to_bytes(), Some(header.digest())));
        json!({ "format": "medledger conformance fixtures v1", "entries": entries })
    }

    #[test]
    fn conformance_fixtures_are_unchanged() {
        let now = current();
        if std::env::var_os("MEDLEDGER_BLESS").is_some() {
            std::fs::write(FIXTURE, serde_json::to_string_pretty(&now).unwrap() + "\n").unwrap();
            return;
        }
        let text = std::fs::read_to_string(FIXTURE).expect("conformance fixture missing");
        let frozen: Value = serde_json::from_str(&text).unwrap();
        let (a, b) = (frozen["entries"].as_array().unwrap(), now["entries"].as_array().unwrap());
        for (f, n) in a.iter().zip(b) {
            assert_eq!(
                f, n,
                "the encoding of {} changed; if deliberate, re-bless the fixtures (see the module docs)",
                f["name"]
            );
        }
        assert_eq!(a.len(), b.len(), "a wire type was added or removed; re-bless the fixtures deliberately");
        // Every frozen encoding still decodes to a value that re-encodes to the same bytes.
        for f in a.iter().filter(|f| f["name"].as_str().unwrap().starts_with("tx/")) {
            let raw = hex::decode(f["hex"].as_str().unwrap()).unwrap();
            let tx = Tx::decode(&raw).unwrap();
            assert!(tx.verify_signature());
            assert_eq!(tx.id().to_hex(), f["id"].as_str().unwrap());
        }
    }
}
