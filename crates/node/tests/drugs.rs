//! The drugs API on a real store: EPCIS capture as the REST binding expects it, public
//! verification without a key, the EPCIS query document, alerts by role, and bad input refused
//! before anything reaches the mempool.

mod common;

use axum::http::StatusCode;
use common::*;
use medledger_types::drugs::{epcis, DrugsOp, ProductSpec, Step};
use medledger_types::{Keypair, Operation, Role};
use serde_json::{json, Value};

const GTIN: &str = "10614141073464";

fn fixture(name: &str) -> Value {
    let p = format!("{}/tests/epcis/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

async fn ok(n: &Node, k: &Keypair, op: Operation) {
    let (s, v) = n.submit(&n.tx(k, op)).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    n.commit();
}

/// A manufacturer at h0 with prefix 0614141 and the product registered.
async fn maker(n: &Node) -> Keypair {
    let m = n.credential(41, Role::Manufacturer, T0 + 400 * 86_400_000).await;
    ok(n, &n.ca, Operation::Drugs(DrugsOp::BindPrefix { company_prefix: "0614141".into(), institution: "h0".into() }))
        .await;
    let product = ProductSpec {
        gtin: GTIN.into(),
        name: "Amoxicillin 500 mg".into(),
        form: "capsule".into(),
        strength: "500 mg".into(),
        pack_size: 21,
        national_code: String::new(),
    };
    ok(n, &m, Operation::Drugs(DrugsOp::RegisterProduct { product })).await;
    m
}

fn capture_body(n: &Node, k: &Keypair, doc: &Value) -> Value {
    let steps: Vec<Step> = epcis::parse_value(doc).unwrap();
    let tx = n.tx(k, Operation::Drugs(DrugsOp::Capture { events: steps }));
    json!({ "document": doc, "tx": hex::encode(tx.raw()) })
}

#[tokio::test]
async fn capture_verify_and_query_follow_the_standards() {
    let n = node();
    let m = maker(&n).await;
    let doc = fixture("commission.json");
    let (s, job) = n.call("POST", "/v1/drugs/capture", Some(capture_body(&n, &m, &doc))).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{job}");
    assert_eq!(job["running"], true);
    let id = job["captureID"].as_str().unwrap().to_string();
    n.commit();
    let (s, job) = n.call("GET", &format!("/v1/drugs/capture/{id}"), None).await;
    assert_eq!(
        (s, job["success"].clone(), job["running"].clone()),
        (StatusCode::OK, json!(true), json!(false)),
        "{job}"
    );

    // Anyone can verify, without a key; the public trail has no event ids.
    let link = format!("https://id.gs1.org/01/{GTIN}/10/LOTA1/21/1001?17=270630");
    let (s, v) = n.call_as(None, "GET", &format!("/v1/drugs/verify?id={}", urlencode(&link)), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["verification"]["code"], "sellable");
    assert_eq!(v["verification"]["nmvs"], "ACTIVE");
    assert_eq!(v["trail"][0]["biz_step"], "commissioning");
    assert_eq!(v["trail"][0]["institution"], "h0");
    assert!(v["trail"][0]["event_id"].is_null());
    // A scanned lot that is not the pack's: lot mismatch or batch not found, with NMVS codes.
    let (_, v) = n
        .call_as(None, "GET", &format!("/v1/drugs/verify?id={}", urlencode("(01)10614141073464(10)LOTZ(21)1001")), None)
        .await;
    assert_eq!(v["verification"]["code"], "batch_not_found");
    assert!(v["verification"]["nmvs"].as_str().unwrap().contains("NMVS_FE_LOT_03"));
    let (_, v) = n
        .call_as(
            None,
            "GET",
            &format!("/v1/drugs/verify?id={}", urlencode("urn:epc:id:sgtin:0614141.107346.9999")),
            None,
        )
        .await;
    assert_eq!(v["verification"]["code"], "unknown_serial");

    // The query answers an EPCISQueryDocument; it is kept for the schema check.
    let (s, q) = n
        .call("GET", &format!("/v1/drugs/events?epc={}", urlencode("urn:epc:id:sgtin:0614141.107346.1001")), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(q["type"], "EPCISQueryDocument");
    let evs = q["epcisBody"]["queryResults"]["resultsBody"]["eventList"].as_array().unwrap();
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0]["eventID"], doc["epcisBody"]["eventList"][0]["eventID"]);
    assert_eq!(evs[0]["epcList"][0], "urn:epc:id:sgtin:0614141.107346.1001");
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/epcis-produced");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("query-commission.json"), serde_json::to_vec_pretty(&q).unwrap()).unwrap();

    // Capturing the same document again is idempotent.
    let (s, _) = n.call("POST", "/v1/drugs/capture", Some(capture_body(&n, &m, &doc))).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    n.commit();
    let (_, t) =
        n.call("GET", &format!("/v1/drugs/trail?id={}", urlencode("urn:epc:id:sgtin:0614141.107346.1001")), None).await;
    assert_eq!(t["trail"].as_array().unwrap().len(), 1, "{t}");
    assert!(t["trail"][0]["event_id"].is_string());
}

#[tokio::test]
async fn bad_documents_and_identifiers_are_refused_before_the_mempool() {
    let n = node();
    let m = maker(&n).await;
    // A document with errors: every error with its JSON path.
    let mut doc = fixture("commission.json");
    doc["epcisBody"]["eventList"][0].as_object_mut().unwrap().remove("eventTime");
    doc["epcisBody"]["eventList"][0]["action"] = json!("MOVE");
    let tx = n.tx(&m, Operation::Drugs(DrugsOp::Capture { events: vec![] }));
    let (s, v) =
        n.call("POST", "/v1/drugs/capture", Some(json!({ "document": doc, "tx": hex::encode(tx.raw()) }))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let paths: Vec<&str> = v["errors"].as_array().unwrap().iter().map(|e| e["path"].as_str().unwrap()).collect();
    assert!(
        paths.contains(&"/epcisBody/eventList/0/eventTime") && paths.contains(&"/epcisBody/eventList/0/action"),
        "{v}"
    );
    // A transaction whose events are not the document's.
    let good = fixture("commission.json");
    let other = fixture("pack.json");
    let body = capture_body(&n, &m, &other);
    let (s, v) = n.call("POST", "/v1/drugs/capture", Some(json!({ "document": good, "tx": body["tx"] }))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v["error"]["message"].as_str().unwrap().contains("disagree"), "{v}");
    // An oversize document is refused by size.
    let big = json!({ "document": { "pad": "x".repeat(epcis::MAX_DOCUMENT_BYTES + 32 * 1024) }, "tx": "00" });
    let (s, _) = n.call("POST", "/v1/drugs/capture", Some(big)).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    // A bad identifier names the GS1 rule.
    let (s, v) =
        n.call_as(None, "GET", &format!("/v1/drugs/verify?id={}", urlencode("(01)10614141073465(21)1")), None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v["error"]["message"].as_str().unwrap().contains("check digit"), "{v}");
    let (s, v) = n
        .call_as(None, "GET", &format!("/v1/drugs/verify?id={}", urlencode("(01)10614141073464(17)271301(21)1")), None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v["error"]["message"].as_str().unwrap().contains("month"), "{v}");
    assert_eq!(n.chain.mempool_len(), 0, "nothing reached the mempool");
}

#[tokio::test]
async fn alerts_are_for_regulators_and_the_products_manufacturer() {
    let n = node();
    let m = maker(&n).await;
    let pharmacist = n.credential(42, Role::Pharmacy, T0 + 400 * 86_400_000).await;
    let doctor = n.credential(43, Role::Doctor, T0 + 400 * 86_400_000).await;
    let regulator = n.credential(44, Role::Regulator, T0 + 400 * 86_400_000).await;
    // A pharmacist scans a counterfeit: the verification records an alert.
    let epc = medledger_types::drugs::Epc::sgtin(GTIN, "FAKE-1");
    ok(&n, &pharmacist, Operation::Drugs(DrugsOp::Verify { epc, lot: None, expiry: None })).await;
    let (s, v) = n.call_as(Some(&regulator), "GET", "/v1/drugs/alerts", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["alerts"][0]["kind"], "unknown_serial");
    let (_, v) = n.call_as(Some(&m), "GET", "/v1/drugs/alerts", None).await;
    assert_eq!(v["alerts"].as_array().unwrap().len(), 1);
    let (s, _) = n.call_as(Some(&doctor), "GET", "/v1/drugs/alerts", None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Unsigned reads other than verification are refused.
    let (s, _) = n.call_as(None, "GET", "/v1/drugs/alerts", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

/// A lot's size is production volume: the product's manufacturer and regulators see how many
/// packs each lot holds; any other credential holder sees the lots without it.
#[tokio::test]
async fn a_lots_size_is_shown_to_its_manufacturer_and_regulators_only() {
    let n = node();
    let m = maker(&n).await;
    let pharmacist = n.credential(42, Role::Pharmacy, T0 + 400 * 86_400_000).await;
    let regulator = n.credential(44, Role::Regulator, T0 + 400 * 86_400_000).await;
    let serials = ["L1", "L2", "L3"].iter().map(|s| medledger_types::drugs::Serial::from(*s)).collect();
    let meta = medledger_types::drugs::EventMeta::now(T0);
    let op = DrugsOp::Commission { meta, gtin: GTIN.into(), lot: "LOTA".into(), expiry: "301231".into(), serials };
    ok(&n, &m, Operation::Drugs(op)).await;
    let path = format!("/v1/drugs/products/{GTIN}");
    for (who, packs) in [(&m, json!(3)), (&regulator, json!(3)), (&pharmacist, Value::Null)] {
        let (s, v) = n.call_as(Some(who), "GET", &path, None).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["lots"][0]["lot"], "LOTA");
        assert_eq!(v["lots"][0]["packs"], packs, "{v}");
        let (_, v) = n.call_as(Some(who), "GET", "/v1/drugs/products?institution=h0", None).await;
        assert_eq!(v["products"][0]["lots"][0]["packs"], packs, "{v}");
    }
}

/// Why and where a pack's status changed is recorded for the parties: the trail of staff in a
/// supply role names the reason, the premises and the event, while a patient's trail and the
/// public verification show only the status, the institution and the time (and a patient gets
/// no EPCIS events).
#[tokio::test]
async fn why_and_where_a_status_changed_is_shown_to_supply_staff_and_regulators_only() {
    use medledger_types::drugs::{EventMeta, Reported, Serial};
    let n = node();
    let m = maker(&n).await;
    let pharmacist = n.credential(42, Role::Pharmacy, T0 + 400 * 86_400_000).await;
    let op = DrugsOp::Commission {
        meta: EventMeta::now(T0),
        gtin: GTIN.into(),
        lot: "LOTA".into(),
        expiry: "301231".into(),
        serials: vec![Serial::from("S1"), Serial::from("S2")],
    };
    ok(&n, &m, Operation::Drugs(op)).await;
    let reason = "taken from the van of Carrier Nine";
    let premises = "urn:epc:id:sgln:0614141.00009.0";
    let mut meta = EventMeta::now(T0);
    meta.biz_location = Some(premises.into());
    let event_id = meta.event_id.clone();
    let epc = medledger_types::drugs::Epc::sgtin(GTIN, "S1");
    let report = DrugsOp::Report { meta, epcs: vec![epc], status: Reported::Stolen, reason: reason.into() };
    ok(&n, &m, Operation::Drugs(report)).await;
    let id = urlencode(&format!("(01){GTIN}(21)S1"));
    let (s, t) = n.call_as(Some(&pharmacist), "GET", &format!("/v1/drugs/trail?id={id}"), None).await;
    assert_eq!(s, StatusCode::OK, "{t}");
    let c = &t["last_change"];
    assert_eq!(c["status"], "stolen", "{t}");
    assert_eq!(c["institution"], "h0");
    assert_eq!(c["reason"], reason);
    assert_eq!(c["premises"], premises);
    assert_eq!(c["event_id"], event_id.as_str());
    // A patient (or researcher, or insurer) sees the trail as the public does: no reason,
    // premises, event ids or heights; and no EPCIS events.
    let patient = n.credential(45, Role::Patient, T0 + 400 * 86_400_000).await;
    let (s, t) = n.call_as(Some(&patient), "GET", &format!("/v1/drugs/trail?id={id}"), None).await;
    assert_eq!(s, StatusCode::OK, "{t}");
    assert_eq!(t["trail"].as_array().unwrap().len(), 2, "{t}");
    assert!(t["last_change"].is_null(), "{t}");
    assert!(t["trail"].as_array().unwrap().iter().all(|e| e["event_id"].is_null() && e["height"] == 0), "{t}");
    for secret in [reason, premises, event_id.as_str()] {
        assert!(!t.to_string().contains(secret), "the patient's trail reveals `{secret}`: {t}");
    }
    let (s, e) = n.call_as(Some(&patient), "GET", &format!("/v1/drugs/events?epc={id}"), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{e}");
    let (s, e) = n.call_as(Some(&pharmacist), "GET", &format!("/v1/drugs/events?epc={id}"), None).await;
    assert_eq!(s, StatusCode::OK, "{e}");
    assert!(e.to_string().contains(premises), "{e}");
    // A pack whose status never changed has none.
    let (_, t) = n
        .call_as(
            Some(&pharmacist),
            "GET",
            &format!("/v1/drugs/trail?id={}", urlencode(&format!("(01){GTIN}(21)S2"))),
            None,
        )
        .await;
    assert!(t["last_change"].is_null(), "{t}");
    // The public answer: who and when, never why or where. (What its proof reads is checked
    // in the state's tests: `a_verification_proof_does_not_reveal_why_or_where_a_status_changed`.)
    let (s, v) = n.call_as(None, "GET", &format!("/v1/drugs/verify?id={id}"), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["verification"]["code"], "stolen", "{v}");
    assert_eq!(v["verification"]["changed_by"], "h0", "{v}");
    let text = v.to_string();
    for secret in [reason, premises, event_id.as_str()] {
        assert!(!text.contains(secret), "the public answer reveals `{secret}`: {text}");
    }
}

/// A shipping event declared in error through EPCIS capture cancels its open shipment: the
/// pack stays with the shipper, and the query document shows the event with its declaration
/// (kept for the schema check).
#[tokio::test]
async fn a_shipping_event_declared_in_error_cancels_its_open_shipment() {
    use medledger_types::drugs::{Epc, ErrorDeclaration, EventMeta, Serial};
    let n = node();
    let m = maker(&n).await;
    let commission = DrugsOp::Commission {
        meta: EventMeta::now(T0),
        gtin: GTIN.into(),
        lot: "LOTA".into(),
        expiry: "301231".into(),
        serials: vec![Serial::from("E1")],
    };
    ok(&n, &m, Operation::Drugs(commission)).await;
    let epc = Epc::sgtin(GTIN, "E1");
    let sent = EventMeta::now(T0);
    ok(&n, &m, Operation::Drugs(DrugsOp::Ship { meta: sent.clone(), epcs: vec![epc.clone()], to: "h1".into() })).await;
    let shipment = |v: &Value| {
        v["items"].as_array().unwrap().iter().find(|i| i["epc"]["sgtin"]["serial"] == "E1").unwrap()["shipment"].clone()
    };
    let (_, inv) = n.call_as(Some(&m), "GET", "/v1/drugs/inventory", None).await;
    assert_eq!(shipment(&inv)["to"], "h1", "{inv}");
    let mut declared = sent;
    declared.error_declaration = Some(ErrorDeclaration { declared_ms: T0 + 5, reason: "incorrect_data".into() });
    let op = DrugsOp::Ship { meta: declared, epcs: vec![epc], to: "h1".into() };
    let doc = epcis::document(vec![epcis::event_json(&op, &|_| Some(7)).unwrap()], T0);
    let (s, job) = n.call("POST", "/v1/drugs/capture", Some(capture_body(&n, &m, &doc))).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{job}");
    n.commit();
    let (_, job) = n.call("GET", &format!("/v1/drugs/capture/{}", job["captureID"].as_str().unwrap()), None).await;
    assert_eq!(job["success"], true, "{job}");
    let (_, inv) = n.call_as(Some(&m), "GET", "/v1/drugs/inventory", None).await;
    assert!(shipment(&inv).is_null(), "the shipment is cancelled: {inv}");
    let id = urlencode("urn:epc:id:sgtin:0614141.107346.E1");
    let (s, q) = n.call("GET", &format!("/v1/drugs/events?epc={id}"), None).await;
    assert_eq!(s, StatusCode::OK);
    let evs = q["epcisBody"]["queryResults"]["resultsBody"]["eventList"].as_array().unwrap();
    let shipping: Vec<_> = evs.iter().filter(|e| e["bizStep"] == "shipping").collect();
    assert_eq!(shipping.len(), 1, "{q}");
    assert_eq!(shipping[0]["errorDeclaration"]["reason"], "incorrect_data", "{q}");
    // The trail shows the shipment once, marked as declared in error, then its declaration at
    // the declaration's time; the public verification shows the same steps.
    let (_, t) = n.call("GET", &format!("/v1/drugs/trail?id={id}"), None).await;
    let steps = |t: &Value| -> Vec<(String, Value, Value, Value)> {
        t["trail"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["biz_step"].as_str().unwrap().to_string(),
                    e["detail"].clone(),
                    e["declared_in_error"].clone(),
                    e["at_ms"].clone(),
                )
            })
            .collect()
    };
    let expect = vec![
        ("commissioning".to_string(), Value::Null, json!(false), json!(T0)),
        ("shipping".to_string(), Value::Null, json!(true), json!(T0)),
        ("shipping".to_string(), json!("error declaration: shipment cancelled"), json!(false), json!(T0 + 5)),
    ];
    assert_eq!(steps(&t), expect, "{t}");
    let (_, v) = n.call_as(None, "GET", &format!("/v1/drugs/verify?id={id}"), None).await;
    assert_eq!(steps(&v), expect, "{v}");
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/epcis-produced");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("query-shipping-declared.json"), serde_json::to_vec_pretty(&q).unwrap()).unwrap();
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Heavy operations are bounded per block: the proposer stops at the work budget and carries
/// the rest to the next block, a block over the budget is invalid, and one transaction over its
/// own limit is refused at the door. (Shipments of a pallet weigh what a pallet may hold; these
/// name pallets nobody packed, so executing them is quick: the budget counts declared work.)
#[tokio::test]
async fn blocks_carry_a_bounded_amount_of_work() {
    use medledger_types::block::{weight_of, Block, MAX_BLOCK_WEIGHT};
    use medledger_types::drugs::{Epc, EventMeta};
    let n = node();
    let m = maker(&n).await;
    let pallet = |i: u64| -> Operation {
        let digits = format!("10614141{i:09}");
        let sscc = format!("{digits}{}", gs1_check(&digits));
        Operation::Drugs(DrugsOp::Ship { meta: EventMeta::now(T0), epcs: vec![Epc::Sscc(sscc)], to: "h1".into() })
    };
    // As many pallet shipments as fit a block's budget, and four more.
    let fit = MAX_BLOCK_WEIGHT / pallet(0).weight();
    let total = fit + 4;
    let nonce = n.nonce(&m);
    let txs: Vec<_> = (0..total).map(|t| n.tx_n(&m, nonce + t, pallet(t))).collect();
    assert!(weight_of(&txs) > MAX_BLOCK_WEIGHT);
    for tx in &txs {
        let (s, v) = n.submit(tx).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    }
    let first = n.commit();
    assert_eq!(first.txs.len() as u64, fit, "the proposer fills the block up to its budget");
    assert!(weight_of(&first.txs) <= MAX_BLOCK_WEIGHT);
    let second = n.commit();
    assert_eq!((first.txs.len() + second.txs.len()) as u64, total, "the rest goes into the next block");
    // A proposal over the budget, otherwise valid (its state root is what executing it gives),
    // is refused by every validator; the same transactions within the budget are accepted.
    let parent = n.chain.store.block(n.chain.tip().height).unwrap().unwrap();
    let nonce = n.nonce(&m);
    let heavy: Vec<_> = (0..fit + 1).map(|t| n.tx_n(&m, nonce + t, pallet(100 + t))).collect();
    assert!(weight_of(&heavy) > MAX_BLOCK_WEIGHT);
    let (h, ts, proposer) = (parent.header.height + 1, parent.header.timestamp_ms + 1, parent.header.proposer);
    let snap = n.chain.store.snapshot().unwrap();
    let env = medledger_state::BlockEnv { chain_id: "api-test".into(), height: h, timestamp_ms: ts, proposer };
    let block_of = |txs: &[medledger_types::Tx]| {
        let root = medledger_state::execute_block(&snap, &env, txs).state_root;
        Block::new(h, parent.digest(), ts, proposer, root, txs.to_vec())
    };
    assert_eq!(n.chain.verify(&parent, &block_of(&heavy), &proposer).ok(), Some(false), "over the budget");
    assert_eq!(n.chain.verify(&parent, &block_of(&heavy[..fit as usize]), &proposer).ok(), Some(true), "within it");
    // A capture of many pallets is over one transaction's limit: refused before the mempool.
    let pallets: Vec<Step> = (0..10u64)
        .map(|i| match pallet(200 + i) {
            Operation::Drugs(op) => Step(op),
            _ => unreachable!(),
        })
        .collect();
    let (s, v) = n.submit(&n.tx(&m, Operation::Drugs(DrugsOp::Capture { events: pallets }))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("split it"), "{v}");
}

/// The GS1 mod-10 check digit of `digits`.
fn gs1_check(digits: &str) -> u8 {
    medledger_types::drugs::gs1::check_digit(digits).unwrap()
}
