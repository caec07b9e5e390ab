//! Drug traceability end to end on the multi-process devnet, through the `medledger` CLI: the
//! demo supply chain verifies as seeded (sellable, dispensed, recalled, counterfeit with its
//! alert); a new pack goes from the manufacturer to the pharmacy and is dispensed once and
//! undone; bad input is refused with its rule; a company prefix bound in error is unbound, and
//! one with a registered product is not; an EPCIS document is captured and queried. The
//! offline commands (`drug id`, `drug epcis validate`) are checked without a node.

mod common;

use common::*;
use serde_json::{json, Value};
use std::process::Command;

const GTIN: &str = "10614141073464";

fn fixture(name: &str) -> String {
    format!("{}/../node/tests/epcis/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Runs `medledger --json ARGS` with no node, genesis or CA anywhere.
struct Offline;

impl Offline {
    fn run(&self, args: &[&str]) -> (Option<i32>, Value, String) {
        let tmp = tempfile::tempdir().unwrap();
        let out = Command::new(BIN).current_dir(tmp.path()).arg("--json").args(args).output().unwrap();
        let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        (out.status.code(), v, String::from_utf8_lossy(&out.stderr).to_string())
    }
    fn ok(&self, args: &[&str]) -> Value {
        let (code, v, err) = self.run(args);
        assert_eq!(code, Some(0), "medledger {args:?}: {err}");
        v
    }
    fn fails(&self, args: &[&str], expect: &str) {
        let (code, _, err) = self.run(args);
        assert_ne!(code, Some(0), "medledger {args:?} should fail");
        assert!(err.contains(expect), "medledger {args:?}: expected `{expect}` in: {err}");
    }
}

#[test]
fn offline_identifier_and_document_checks() {
    let cli = Offline;
    // The vector: three forms of one pack.
    let a = cli.ok(&["drug", "id", "urn:epc:id:sgtin:0614141.107346.2017"]);
    let b = cli.ok(&["drug", "id", "(01)10614141073464(21)2017", "--gcp-length", "7"]);
    let c = cli.ok(&["drug", "id", "https://id.gs1.org/01/10614141073464/21/2017", "--gcp-length", "7"]);
    assert_eq!(a, b);
    assert_eq!(b, c);
    assert_eq!(a["epc_uri"], "urn:epc:id:sgtin:0614141.107346.2017");
    assert_eq!(a["lot"], Value::Null);
    // The raw scanned form, with GS separators, in another AI order.
    let raw = "]d201095060001343522112345\u{1d}10ABC123\u{1d}17201225";
    let r = cli.ok(&["drug", "id", raw]);
    assert_eq!(
        (r["gtin"].as_str(), r["lot"].as_str(), r["expiry"].as_str()),
        (Some("09506000134352"), Some("ABC123"), Some("201225"))
    );
    // Malformed input names the field and the rule.
    cli.fails(&["drug", "id", "(01)10614141073465(21)1"], "check digit");
    cli.fails(&["drug", "id", "(01)10614141073464(17)251301(21)1"], "month 13");
    cli.fails(&["drug", "id", "(99)12345"], "99");
    cli.fails(&["drug", "id", "(01)10614141073464(21)ABCDEFGHIJKLMNOPQRSTU"], "serial");
    // Documents: 0 valid, 1 invalid with each JSON path.
    let v = cli.ok(&["drug", "epcis", "validate", &fixture("whole-chain.json")]);
    assert_eq!(v["valid"], true);
    let out = Command::new(BIN)
        .args(["--json", "drug", "epcis", "validate", &fixture("invalid/missing-event-time.json")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["errors"][0]["path"], "/epcisBody/eventList/0/eventTime");
}

#[test]
fn a_pack_is_followed_from_manufacturer_to_dispensing_across_processes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("devnet");
    let mut dn = start_devnet(&dir, free_base_port(), true);
    let apis = apis(&dn);
    let node = |i: usize| apis[i].trim_start_matches("https://").to_string();
    let cli = Cli { dir: dir.clone() };
    let drugs = dn.ready["demo"]["drugs"].clone();
    let link = |k: &str| drugs[k].as_str().unwrap().to_string();
    let (maker, dist, pharm, reg) =
        (cli.demo("maker-mia"), cli.demo("distributor-dan"), cli.demo("pharmacist-pat"), cli.demo("regulator-rita"));
    let (n0, n1, n2) = (node(0), node(1), node(2));

    // The seeded chain, verified publicly (no key) from any node.
    for (what, code) in [
        ("sellable", "sellable"),
        ("dispensed", "dispensed"),
        ("recalled", "recalled"),
        ("counterfeit", "unknown_serial"),
    ] {
        let v = cli.ok(&["drug", "verify", "--node", &n1, &link(what)]);
        assert_eq!(v["verification"]["code"], code, "{what}: {v}");
        // With the genesis file, the status was recomputed from proven state.
        assert!(v["proven"]["height"].as_u64().unwrap() > 0, "{what}: {v}");
    }
    let v = cli.ok(&["drug", "verify", "--node", &n2, &link("dispensed")]);
    // The trail too was recomputed from proven state.
    assert_eq!(v["proven"]["trail_max"], 200, "{v}");
    let steps: Vec<&str> = v["trail"].as_array().unwrap().iter().map(|t| t["biz_step"].as_str().unwrap()).collect();
    assert_eq!(
        steps,
        ["commissioning", "packing", "shipping", "receiving", "unpacking", "shipping", "receiving", "dispensing"]
    );
    assert_eq!(v["verification"]["changed_by"], drugs["pharmacy"]);
    // The counterfeit's verification left an alert for the regulator and the manufacturer.
    let alerts = cli.ok(&["drug", "alerts", "--node", &n0, "--key", &reg]);
    assert!(alerts["alerts"].as_array().unwrap().iter().any(|a| a["kind"] == "unknown_serial"), "{alerts}");
    assert_eq!(cli.ok(&["drug", "alerts", "--node", &n0, "--key", &maker])["alerts"].as_array().unwrap().len(), 1);
    cli.fails(&["drug", "alerts", "--node", &n0, "--key", &pharm], "not_permitted");

    // A new pack through the CLI.
    let expiry = link("sellable").rsplit("17=").next().unwrap().to_string();
    let pack = format!("(01){GTIN}(21)C0001");
    cli.ok(&[
        "drug",
        "commission",
        "--node",
        &n0,
        "--key",
        &maker,
        "--gtin",
        GTIN,
        "--lot",
        "LOTA1",
        "--expiry",
        &expiry,
        "--serials",
        "C0001,C0002",
    ]);
    cli.fails(
        &[
            "drug",
            "commission",
            "--node",
            &n0,
            "--key",
            &maker,
            "--gtin",
            GTIN,
            "--lot",
            "LOTA1",
            "--expiry",
            &expiry,
            "--serials",
            "C0001",
        ],
        "unique forever",
    );
    cli.fails(
        &["drug", "ship", "--node", &n0, "--key", &dist, "--to", "clinic-c", &pack],
        "possessed by `acme-pharma`",
    );
    cli.fails(&["drug", "ship", "--node", &n0, "--key", &maker, "--to", "acme-pharma", &pack], "shipping to yourself");
    cli.ok(&["drug", "ship", "--node", &n0, "--key", &maker, "--to", "medsupply", &pack]);
    cli.ok(&["drug", "receive", "--node", &n1, "--key", &dist, "--from", "acme-pharma", &pack]);
    // Receiving twice is an alert, not a silent fix.
    cli.fails(
        &["drug", "receive", "--node", &n1, "--key", &dist, "--from", "acme-pharma", &pack],
        "did not match a shipment",
    );
    // Refused before anything goes on chain: not even the verification that precedes a dispense.
    let dist_key = key(std::path::Path::new(&dist));
    let next_nonce = || {
        get_as(&apis[1], &dist_key, &format!("/v1/identities/{}", dist_key.public().to_hex())).unwrap()["next_nonce"]
            .as_u64()
            .unwrap()
    };
    let before = next_nonce();
    cli.fails(&["drug", "dispense", "--node", &n1, "--key", &dist, &pack], "may not perform `dispense`");
    assert_eq!(next_nonce(), before, "a refused dispense signed nothing");
    cli.ok(&["drug", "ship", "--node", &n1, "--key", &dist, "--to", "clinic-c", &pack]);
    cli.ok(&["drug", "receive", "--node", &n2, "--key", &pharm, "--from", "medsupply", &pack]);
    cli.ok(&["drug", "dispense", "--node", &n2, "--key", &pharm, &pack]);
    cli.fails(&["drug", "dispense", "--node", &n2, "--key", &pharm, &pack], "dispensed");
    cli.ok(&["drug", "undo", "--node", &n2, "--key", &pharm, &pack]);
    assert_eq!(cli.ok(&["drug", "verify", "--node", &n0, &pack])["verification"]["code"], "sellable");
    let trail = cli.ok(&["drug", "trail", "--node", &n0, "--key", &reg, &pack]);
    assert_eq!(trail["trail"].as_array().unwrap().len(), 7, "{trail}");

    // A company prefix bound in error is unbound by a regulator, while no product is registered
    // under it; the seeded prefix, under which the demo product is registered, stays bound.
    cli.ok(&["drug", "bind-prefix", "--node", &n0, "--key", &reg, "0614142", "acme-pharma"]);
    cli.fails(&["drug", "unbind-prefix", "--node", &n1, "--key", &pharm, "0614142"], "may not perform `unbind_prefix`");
    cli.ok(&["drug", "unbind-prefix", "--node", &n1, "--key", &reg, "0614142"]);
    cli.fails(
        &["drug", "unbind-prefix", "--node", &n2, "--key", &reg, "0614142"],
        "company prefix 0614142 is not bound",
    );
    cli.fails(&["drug", "unbind-prefix", "--node", &n0, "--key", &reg, "0614141"], "stays bound to its manufacturer");

    // An EPCIS document captured by the manufacturer, then queried.
    let doc = json!({
        "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"],
        "type": "EPCISDocument", "schemaVersion": "2.0", "creationDate": "2026-01-01T00:00:00Z",
        "epcisBody": { "eventList": [{
            "type": "ObjectEvent", "eventID": "urn:uuid:0d6f3f36-9a55-4b0e-8f41-5a4d8c1f0c01",
            "eventTime": "2026-01-01T00:00:00Z", "eventTimeZoneOffset": "+00:00", "action": "ADD",
            "bizStep": "commissioning", "disposition": "active",
            "epcList": ["urn:epc:id:sgtin:0614141.107346.D0001", "urn:epc:id:sgtin:0614141.107346.D0002"],
            "ilmd": { "cbvmda:lotNumber": "LOTD1", "cbvmda:itemExpirationDate": "2030-12-31" }
        }]}
    });
    let file = tmp.path().join("commission.json");
    std::fs::write(&file, doc.to_string()).unwrap();
    let f = file.to_str().unwrap();
    cli.ok(&["drug", "epcis", "capture", "--node", &n0, "--key", &maker, f]);
    // Capturing it again is idempotent; the pharmacist may not commission.
    cli.ok(&["drug", "epcis", "capture", "--node", &n0, "--key", &maker, f]);
    cli.fails(&["drug", "epcis", "capture", "--node", &n0, "--key", &pharm, f], "not_permitted");
    let q = cli.ok(&["drug", "epcis", "query", "--node", &n1, "--key", &reg, "urn:epc:id:sgtin:0614141.107346.D0001"]);
    assert_eq!(q["type"], "EPCISQueryDocument");
    assert_eq!(
        q["epcisBody"]["queryResults"]["resultsBody"]["eventList"][0]["eventID"],
        doc["epcisBody"]["eventList"][0]["eventID"]
    );
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/epcis-produced");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("devnet-query.json"), serde_json::to_vec_pretty(&q).unwrap()).unwrap();
    let q = cli.ok(&["drug", "epcis", "query", "--node", &n1, "--key", &reg, &pack]);
    std::fs::write(out.join("devnet-query-trail.json"), serde_json::to_vec_pretty(&q).unwrap()).unwrap();
    kill(dn.child.id(), 2);
    assert!(dn.child.wait().unwrap().success());
}
