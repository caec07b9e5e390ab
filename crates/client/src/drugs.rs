//! Drug traceability from the user's side: custody operations, EPCIS capture, verification at
//! dispense (FMD: verify, then decommission), and the public scan.

use crate::http::Client;
use crate::session::{Session, COMMIT_TIMEOUT};
use crate::tx::{applied, wait_committed};
use medledger_types::drugs::{epcis, parse_scanned, DrugsOp, Epc, EventMeta, Step};
use medledger_types::{Hash, Operation};
use serde_json::{json, Value};

/// Percent-encodes a query value (RFC 3986 unreserved characters stay).
pub fn query_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Reads identifiers given in any GS1 form.
pub fn epcs(inputs: &[String]) -> Result<Vec<Epc>, String> {
    inputs.iter().map(|s| parse_scanned(s).map(|(e, _)| e).map_err(|e| format!("`{s}`: {e}"))).collect()
}

/// The public verification of a scanned pack (no key needed).
pub fn verify_public(client: &Client, scanned: &str) -> Result<Value, String> {
    client.get(&format!("/v1/drugs/verify?id={}", query_escape(scanned)))
}

/// A pack's verification and public custody trail computed from proven state only: the node
/// proves what they read (product, pack, lot; the trail's slots and its events' public records)
/// against a certified block, and this process recomputes both, as of the block after it. Needs
/// the genesis file (the light client); no key.
pub fn verify_proven(client: &Client, scanned: &str) -> Result<Value, String> {
    let light = crate::light::configured()?;
    let (epc, id) = parse_scanned(scanned)?;
    let Epc::Sgtin { gtin, serial } = epc else {
        return Err("verification is per pack (GTIN + serial), not per case".into());
    };
    let a =
        crate::light::proven_from(client, &light, &format!("/v1/proofs/drugs/verify?id={}", query_escape(scanned)))?;
    let v = a.replay(|s, at| {
        medledger_state::queries::drug_verify(s, &gtin, &serial, id.lot.as_deref(), id.expiry.as_deref(), at)
    })?;
    let trail = a.replay(|s, _| medledger_state::queries::drug_trail(s, &gtin, &serial))?;
    let at = a.at();
    Ok(serde_json::json!({
        "verification": v,
        "trail": trail,
        "proven": { "height": at.height - 1, "as_of_ms": at.now_ms, "trail_max": medledger_state::queries::PROVEN_TRAIL_MAX },
    }))
}

/// The node's public answer `v` (from [`verify_public`]) with the status and trail recomputed
/// from proven state (`p`, from [`verify_proven`]). A trail as long as a proof covers may go on:
/// the node's further steps follow, marked in `proven.trail_cut`. Otherwise the proven trail is
/// the whole trail (steps the node shows beyond it are newer than the certified block, and are
/// left out).
pub fn with_proven(mut v: Value, p: &Value) -> Value {
    let proven = p["trail"].as_array().cloned().unwrap_or_default();
    let node = v["trail"].as_array().cloned().unwrap_or_default();
    let full = p["proven"]["trail_max"].as_u64().is_some_and(|max| proven.len() as u64 >= max);
    let cut = full && node.len() > proven.len();
    let mut trail = proven.clone();
    if cut {
        trail.extend(node.into_iter().skip(proven.len()));
    }
    v["verification"] = p["verification"].clone();
    v["trail"] = Value::Array(trail);
    v["proven"] = p["proven"].clone();
    v["proven"]["trail_cut"] = Value::Bool(cut);
    v
}

/// The events of a committed drug transaction.
pub fn events(status: &Value) -> Vec<Value> {
    status["receipt"]["outcome"]["events"].as_array().cloned().unwrap_or_default()
}

/// Alerts a committed transaction raised.
/// The capture operation of an EPCIS 2.0 document (its events, in order), checked against the
/// limits; an error lists every problem with its JSON Pointer. Signs nothing.
pub fn capture_operation(document: &Value) -> Result<Operation, String> {
    let steps: Vec<Step> = epcis::parse_value(document).map_err(|errs| {
        let lines: Vec<String> = errs.iter().map(|e| format!("  {e}")).collect();
        format!("the document is not valid EPCIS 2.0 for this ledger:\n{}", lines.join("\n"))
    })?;
    let op = Operation::Drugs(DrugsOp::Capture { events: steps });
    op.check_limits()?;
    Ok(op)
}

pub fn alerts(status: &Value) -> Vec<Value> {
    events(status).into_iter().filter(|e| e["kind"] == "drug_alert").collect()
}

impl Session {
    /// A custody event at this moment, with a fresh id.
    pub fn event_meta(&self, location: Option<&str>) -> EventMeta {
        let mut m = EventMeta::now(crate::tx::now_ms());
        m.biz_location = location.map(str::to_string);
        m
    }

    /// Signs and commits one drugs operation; a refusal is an error with the chain's reason.
    pub fn drug(&self, op: DrugsOp) -> Result<Value, String> {
        self.transact(Operation::Drugs(op)).map(|(_, v)| v)
    }

    /// Verifies a pack with a signed verification (an anomaly is recorded as an alert on chain),
    /// then decommissions it as dispensed if it is sellable. Returns the verification and the
    /// dispensing transaction's status.
    pub fn dispense(&self, scanned: &str, location: Option<&str>) -> Result<Value, String> {
        let (epc, id) = parse_scanned(scanned)?;
        // Nothing goes on chain (not even the verification) for a signer who may not dispense.
        let role = self.my_credential()?.role;
        let principal = medledger_state::Principal::Role(role);
        if !medledger_state::allowed(principal, medledger_types::OpKind::Dispense) {
            return Err(format!("role `{}` may not perform `dispense`", role.name()));
        }
        crate::progress::report(crate::progress::Step::Note("verifying the pack on chain".into()));
        let v = self.drug(DrugsOp::Verify { epc: epc.clone(), lot: id.lot.clone(), expiry: id.expiry.clone() })?;
        let verified = events(&v).into_iter().find(|e| e["kind"] == "drug_verified").unwrap_or(Value::Null);
        let status = attr(&verified, "status").unwrap_or_default();
        if status != "sellable" {
            let alert = attr(&verified, "alert")
                .map(|a| format!("; alert {a} recorded for the regulator and manufacturer"))
                .unwrap_or_default();
            return Err(format!(
                "not dispensed: the pack verifies as `{status}` ({}){alert}",
                attr(&verified, "nmvs").unwrap_or_default()
            ));
        }
        crate::progress::report(crate::progress::Step::Note("decommissioning as dispensed".into()));
        let d = self.drug(DrugsOp::Dispense { meta: self.event_meta(location), epc })?;
        Ok(json!({ "verification": status, "dispense": d }))
    }

    /// Captures an EPCIS 2.0 document: its events are signed as one capture transaction and
    /// sent with the document, as the node checks they match. Waits for the commit.
    pub fn capture(&self, document: &Value) -> Result<(Hash, Value), String> {
        self.capture_checked(document, capture_operation(document)?)
    }

    /// [`Session::capture`] of a document whose operation [`capture_operation`] already made.
    pub fn capture_checked(&self, document: &Value, op: Operation) -> Result<(Hash, Value), String> {
        let nonce = self.me()?["next_nonce"].as_u64().ok_or("node identity has no next_nonce")?;
        let tx = medledger_types::Tx::sign(
            medledger_types::Transaction { chain_id: self.chain_id.clone(), signer: self.key.public(), nonce, op },
            &self.key,
        );
        let job =
            self.client.post("/v1/drugs/capture", &json!({ "document": document, "tx": hex::encode(tx.raw()) }))?;
        let v = applied(wait_committed(&self.client, &tx.id(), COMMIT_TIMEOUT)?)?;
        Ok((tx.id(), json!({ "job": job, "status": v })))
    }

    /// The EPCIS query document of an identifier's events.
    pub fn epcis_events(&self, scanned: &str) -> Result<Value, String> {
        self.client.get(&format!("/v1/drugs/events?epc={}", query_escape(scanned.trim())))
    }

    /// The custody trail with event ids.
    pub fn trail(&self, scanned: &str) -> Result<Value, String> {
        self.client.get(&format!("/v1/drugs/trail?id={}", query_escape(scanned.trim())))
    }
}

fn attr(event: &Value, key: &str) -> Option<String> {
    event["attrs"].as_array()?.iter().find(|a| a[0] == key).and_then(|a| a[1].as_str()).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_escaped() {
        assert_eq!(query_escape("(01)1(21)a b/%"), "%2801%291%2821%29a%20b%2F%25");
        assert_eq!(
            query_escape("urn:epc:id:sgtin:0614141.107346.2017"),
            "urn%3Aepc%3Aid%3Asgtin%3A0614141.107346.2017"
        );
    }

    #[test]
    fn identifiers_in_every_form_name_the_same_pack() {
        let v = epcs(&[
            "urn:epc:id:sgtin:0614141.107346.2017".into(),
            "(01)10614141073464(21)2017".into(),
            "https://id.gs1.org/01/10614141073464/21/2017".into(),
        ])
        .unwrap();
        assert!(v.iter().all(|e| *e == v[0]));
        assert!(epcs(&["(01)10614141073465(21)2017".into()]).unwrap_err().contains("check digit"));
    }

    fn steps(n: usize) -> Value {
        Value::Array((0..n).map(|i| json!({ "biz_step": format!("s{i}") })).collect())
    }

    /// A node ahead of the certified block shows newer steps: they are left out, and the trail
    /// is not said to be cut.
    #[test]
    fn steps_newer_than_the_proof_are_left_out() {
        let v =
            with_proven(json!({ "trail": steps(5) }), &json!({ "trail": steps(3), "proven": { "trail_max": 200 } }));
        assert_eq!(v["trail"], steps(3));
        assert_eq!(v["proven"]["trail_cut"], false);
    }

    /// A trail longer than a proof covers: the proven steps, then the node's, marked.
    #[test]
    fn a_trail_past_the_proven_length_is_marked() {
        let v = with_proven(json!({ "trail": steps(5) }), &json!({ "trail": steps(3), "proven": { "trail_max": 3 } }));
        assert_eq!(v["trail"], steps(5));
        assert_eq!(v["proven"]["trail_cut"], true);
    }
}
