//! Drug traceability on the state machine: the bad-input suite (every refusal names its rule and
//! changes nothing but the nonce), alerts, and a property test of custody against a reference
//! model.

mod common;

use common::{Chain, DAY};
use medledger_state::drugs::{self, Status, VerifyStatus};
use medledger_state::StateRead;
use medledger_types::drugs::{DrugsOp as D, Epc, EventMeta, ProductSpec, Reported, Serial, Step};
use medledger_types::{Keypair, Operation, Outcome, RejectCode, Role};
use proptest::prelude::*;

const GTIN: &str = "10614141073464";
const MAKER: &str = "hospital-0";
const DIST: &str = "hospital-1";
const PHARM: &str = "hospital-2";
const PHARM2: &str = "hospital-3";
const CASE: &str = "106141412345678908";

struct World {
    c: Chain,
    maker: Keypair,
    dist: Keypair,
    pharm: Keypair,
    pharm2: Keypair,
    regulator: Keypair,
}

fn op(o: D) -> Operation {
    Operation::Drugs(o)
}

fn meta(c: &Chain) -> EventMeta {
    EventMeta::now(c.now)
}

/// An event with a fresh id at time 0 (any past time is accepted).
fn m0() -> EventMeta {
    EventMeta::now(0)
}

/// The keys kept off the state tree are what the items say: every item the state holds is on
/// its owner's inventory exactly when it is held (active), and the inventory lists nothing
/// else; a lot's pack count is the number of its packs. (And an item's last status change
/// has its detail under its own key, exactly when it has one.)
fn off_tree_keys_match_the_items(state: &medledger_state::MemState) {
    use medledger_state::keys::{DRUG_INVENTORY, DRUG_ITEM, DRUG_LOT_PACKS};
    use std::collections::BTreeMap;
    let mut held = 0;
    let mut packs: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
    for (k, v) in state.0.range(DRUG_ITEM.to_vec()..) {
        if !k.starts_with(DRUG_ITEM) {
            break;
        }
        let it: drugs::Item = medledger_types::Canonical::from_bytes(v).unwrap();
        let listed = state.get(&drugs::key::inventory(&it.owner, &it.epc)).is_some();
        assert_eq!(listed, drugs::held(&it), "{} of {} ({:?})", it.epc, it.owner, it.status);
        held += usize::from(drugs::held(&it));
        let detail = state.get(&drugs::key::change(&it.epc)).is_some();
        assert_eq!(detail, it.last_change.is_some(), "{}: a status change has its detail, and only a change", it.epc);
        if let Epc::Sgtin { gtin, .. } = &it.epc {
            *packs.entry(drugs::key::lot_packs(gtin, &it.lot)).or_default() += 1;
        }
    }
    let listed = state.0.keys().filter(|k| k.starts_with(DRUG_INVENTORY)).count();
    assert_eq!(listed, held, "the inventory lists exactly the held items");
    let counted: BTreeMap<Vec<u8>, u64> = state
        .0
        .iter()
        .filter(|(k, _)| k.starts_with(DRUG_LOT_PACKS))
        .map(|(k, v)| (k.clone(), u64::from_be_bytes(v.as_slice().try_into().unwrap())))
        .collect();
    assert_eq!(counted, packs, "a lot's pack count is the number of its packs");
}

fn pack(serial: &str) -> Epc {
    Epc::sgtin(GTIN, serial)
}

fn applied(o: &Outcome) -> &Vec<medledger_types::Event> {
    match o {
        Outcome::Applied { events } => events,
        Outcome::Rejected { code, reason } => panic!("rejected: {code:?} {reason}"),
    }
}

fn rejected(o: &Outcome) -> (RejectCode, String) {
    match o {
        Outcome::Rejected { code, reason } => (*code, reason.clone()),
        Outcome::Applied { events } => panic!("applied: {events:?}"),
    }
}

/// A manufacturer at hospital-0 with prefix 0614141 and product GTIN, lot A (3 packs) and lot B
/// (1 pack); a distributor, two pharmacies, a regulator.
fn world() -> World {
    let mut c = Chain::new();
    let maker = c.issue(Role::Manufacturer, 0, 10);
    let dist = c.issue(Role::Distributor, 1, 11);
    let pharm = c.issue(Role::Pharmacy, 2, 12);
    let pharm2 = c.issue(Role::Pharmacy, 3, 13);
    let regulator = c.issue(Role::Regulator, 3, 14);
    let ca = c.ca.clone();
    applied(&c.one(&ca, op(D::BindPrefix { company_prefix: "0614141".into(), institution: MAKER.into() })));
    applied(&c.one(
        &maker,
        op(D::RegisterProduct {
            product: ProductSpec {
                gtin: GTIN.into(),
                name: "Amoxicillin 500 mg".into(),
                form: "capsule".into(),
                strength: "500 mg".into(),
                pack_size: 21,
                national_code: String::new(),
            },
        }),
    ));
    let mut w = World { c, maker, dist, pharm, pharm2, regulator };
    w.commission("LOTA", "301231", &["A1", "A2", "A3"]);
    w.commission("LOTB", "301231", &["B1"]);
    w
}

impl World {
    fn commission(&mut self, lot: &str, expiry: &str, serials: &[&str]) {
        let m = meta(&self.c);
        let maker = self.maker.clone();
        applied(&self.c.one(
            &maker,
            op(D::Commission {
                meta: m,
                gtin: GTIN.into(),
                lot: lot.into(),
                expiry: expiry.into(),
                serials: serials.iter().map(|s| Serial::from(*s)).collect(),
            }),
        ));
        off_tree_keys_match_the_items(&self.c.state);
    }
    /// Runs one operation; after it, whatever its outcome, the inventory (an index kept off the
    /// state tree) must be exactly the held items by owner.
    fn run(&mut self, who: &Keypair, o: D) -> Outcome {
        let out = self.c.one(who, op(o));
        off_tree_keys_match_the_items(&self.c.state);
        out
    }
    fn ship(&mut self, who: &Keypair, epcs: Vec<Epc>, to: &str) -> Outcome {
        let m = meta(&self.c);
        self.run(who, D::Ship { meta: m, epcs, to: to.into() })
    }
    fn receive(&mut self, who: &Keypair, epcs: Vec<Epc>, from: &str) -> Outcome {
        let m = meta(&self.c);
        self.run(who, D::Receive { meta: m, epcs, from: from.into() })
    }
    fn dispense(&mut self, who: &Keypair, epc: Epc) -> Outcome {
        let m = meta(&self.c);
        self.run(who, D::Dispense { meta: m, epc })
    }
    fn undo(&mut self, who: &Keypair, epc: Epc) -> Outcome {
        let m = meta(&self.c);
        self.run(who, D::UndoDispense { meta: m, epc })
    }
    /// Moves packs maker → distributor → pharmacy.
    fn deliver_to_pharmacy(&mut self, serials: &[&str]) {
        let epcs: Vec<Epc> = serials.iter().map(|s| pack(s)).collect();
        let (maker, dist, pharm) = (self.maker.clone(), self.dist.clone(), self.pharm.clone());
        applied(&self.ship(&maker, epcs.clone(), DIST));
        applied(&self.receive(&dist, epcs.clone(), MAKER));
        applied(&self.ship(&dist, epcs.clone(), PHARM));
        applied(&self.receive(&pharm, epcs, DIST));
    }
    /// Ships `epcs` from the maker to the distributor (`i` even) or back (`i` odd), then
    /// receives them there; a refused shipment is returned as it is. (Without the off-tree
    /// check of [`World::run`]: trail tests take a thousand of these.)
    fn hop(&mut self, i: u32, epcs: Vec<Epc>) -> Outcome {
        let (maker, dist) = (self.maker.clone(), self.dist.clone());
        let (from, to, from_id, to_id) =
            if i.is_multiple_of(2) { (&maker, &dist, MAKER, DIST) } else { (&dist, &maker, DIST, MAKER) };
        let m = meta(&self.c);
        let out = self.c.one(from, op(D::Ship { meta: m, epcs: epcs.clone(), to: to_id.into() }));
        if matches!(out, Outcome::Rejected { .. }) {
            return out;
        }
        let m = meta(&self.c);
        applied(&self.c.one(to, op(D::Receive { meta: m, epcs, from: from_id.into() })));
        out
    }
    fn item(&self, serial: &str) -> drugs::Item {
        drugs::item(&self.c.state, &pack(serial)).expect("pack exists")
    }
    fn verify(&self, serial: &str) -> VerifyStatus {
        drugs::verify(&self.c.state, GTIN, serial, None, None, self.c.now).status
    }
    fn alerts(&self) -> Vec<drugs::Alert> {
        drugs::alerts(&self.c.state, None, 100)
    }
}

/// A refused operation changes nothing but the signer's nonce.
fn refused_without_effect(w: &mut World, who: &Keypair, o: D) -> (RejectCode, String) {
    let before = w.c.state.clone();
    let out = w.run(who, o);
    let r = rejected(&out);
    // Keys written or changed, and keys deleted.
    let mut changed: Vec<_> =
        w.c.state
            .0
            .iter()
            .filter(|(k, v)| before.0.get(*k) != Some(v))
            .map(|(k, _)| k)
            .chain(before.0.keys().filter(|k| !w.c.state.0.contains_key(*k)))
            .map(|k| String::from_utf8_lossy(k).to_string())
            .filter(|k| !k.starts_with("n/") && !k.starts_with("meta/height") && !k.starts_with('\u{fffd}'))
            .collect();
    changed.retain(|k| !k.starts_with("\u{fffd}tree"));
    assert!(changed.is_empty(), "a refusal wrote {changed:?}");
    r
}

#[test]
fn a_pack_moves_from_maker_to_pharmacy_and_is_dispensed_once() {
    let mut w = world();
    assert_eq!(w.verify("A1"), VerifyStatus::Sellable);
    w.deliver_to_pharmacy(&["A1"]);
    assert_eq!(w.item("A1").owner, PHARM);
    let pharm = w.pharm.clone();
    applied(&w.dispense(&pharm, pack("A1")));
    assert_eq!(w.item("A1").status, Status::Dispensed);
    let v = drugs::verify(&w.c.state, GTIN, "A1", None, None, w.c.now);
    assert_eq!((v.status, v.changed_by.as_deref()), (VerifyStatus::Dispensed, Some(PHARM)));
    // Double dispensing is refused, with the NMVS code.
    let (code, why) = refused_without_effect(&mut w, &pharm, D::Dispense { meta: EventMeta::now(0), epc: pack("A1") });
    assert_eq!(code, RejectCode::InvalidArgument);
    assert!(why.contains("pack_already_inactive") && why.contains("NMVS_NC_PCK_22"), "{why}");
    // The trail shows every step at institution level.
    let steps: Vec<(String, String)> =
        drugs::trail(&w.c.state, &pack("A1"), 100).into_iter().map(|t| (t.biz_step, t.institution)).collect();
    let expect = [
        ("commissioning", MAKER),
        ("shipping", MAKER),
        ("receiving", DIST),
        ("shipping", DIST),
        ("receiving", PHARM),
        ("dispensing", PHARM),
    ];
    assert_eq!(steps, expect.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>());
}

#[test]
fn custody_refusals_name_their_rule_and_change_nothing() {
    let mut w = world();
    let (maker, dist, pharm, pharm2) = (w.maker.clone(), w.dist.clone(), w.pharm.clone(), w.pharm2.clone());
    // Wrong possessor: the distributor ships what the maker holds.
    let (code, why) =
        refused_without_effect(&mut w, &dist, D::Ship { meta: m0(), epcs: vec![pack("A1")], to: PHARM.into() });
    assert_eq!(code, RejectCode::NotPermitted);
    assert!(why.contains("possessed by `hospital-0`"), "{why}");
    // Shipping to self.
    let (_, why) =
        refused_without_effect(&mut w, &maker, D::Ship { meta: m0(), epcs: vec![pack("A1")], to: MAKER.into() });
    assert!(why.contains("shipping to yourself"), "{why}");
    // Dispensing by a distributor is not in its row of the table.
    applied(&w.ship(&maker, vec![pack("A1")], DIST));
    applied(&w.receive(&dist, vec![pack("A1")], MAKER));
    let (code, why) = refused_without_effect(&mut w, &dist, D::Dispense { meta: m0(), epc: pack("A1") });
    assert_eq!(code, RejectCode::NotPermitted);
    assert!(why.contains("`distributor` may not perform `dispense`"), "{why}");
    // Future event times.
    let mut m = m0();
    m.event_time_ms = w.c.now + DAY;
    let (_, why) = refused_without_effect(&mut w, &dist, D::Ship { meta: m, epcs: vec![pack("A1")], to: PHARM.into() });
    assert!(why.contains("in the future"), "{why}");
    // A serial is unique forever.
    let (code, why) = refused_without_effect(
        &mut w,
        &maker,
        D::Commission {
            meta: m0(),
            gtin: GTIN.into(),
            lot: "LOTA".into(),
            expiry: "301231".into(),
            serials: vec!["A1".into()],
        },
    );
    assert_eq!(code, RejectCode::AlreadyExists);
    assert!(why.contains("unique forever"), "{why}");
    // A lot keeps its expiry.
    let (_, why) = refused_without_effect(
        &mut w,
        &maker,
        D::Commission {
            meta: m0(),
            gtin: GTIN.into(),
            lot: "LOTA".into(),
            expiry: "311231".into(),
            serials: vec!["A9".into()],
        },
    );
    assert!(why.contains("expires 301231"), "{why}");
    // Another pharmacy cannot undo; the dispensing one can, within ten days, once.
    w.deliver_to_pharmacy(&["A2"]);
    applied(&w.dispense(&pharm, pack("A2")));
    let (code, why) = refused_without_effect(&mut w, &pharm2, D::UndoDispense { meta: m0(), epc: pack("A2") });
    assert_eq!(code, RejectCode::NotPermitted);
    assert!(why.contains("undo_user_mismatch") && why.contains("NMVS_NC_PCK_21"), "{why}");
    applied(&w.undo(&pharm, pack("A2")));
    assert_eq!(w.verify("A2"), VerifyStatus::Sellable);
    let (_, why) = refused_without_effect(&mut w, &pharm, D::UndoDispense { meta: m0(), epc: pack("A2") });
    assert!(why.contains("undo_status_mismatch"), "{why}");
    // Undo after ten days.
    applied(&w.dispense(&pharm, pack("A2")));
    w.c.now += 11 * DAY;
    let (_, why) = refused_without_effect(&mut w, &pharm, D::UndoDispense { meta: m0(), epc: pack("A2") });
    assert!(why.contains("undo_window_passed") && why.contains("NMVS_NC_PCK_20"), "{why}");
}

#[test]
fn undo_needs_the_same_premises() {
    let mut w = world();
    let pharm = w.pharm.clone();
    w.deliver_to_pharmacy(&["A1"]);
    let mut m = m0();
    m.biz_location = Some("urn:epc:id:sgln:0614141.00002.0".into());
    applied(&w.run(&pharm, D::Dispense { meta: m, epc: pack("A1") }));
    let mut other = m0();
    other.biz_location = Some("urn:epc:id:sgln:0614141.00003.0".into());
    let (_, why) = refused_without_effect(&mut w, &pharm, D::UndoDispense { meta: other.clone(), epc: pack("A1") });
    assert!(why.contains("undo_premises_mismatch"), "{why}");
    // The premises are those of the standing dispense: undone where it was made, then
    // dispensed again with no premises named, it may be undone anywhere.
    let mut here = m0();
    here.biz_location = Some("urn:epc:id:sgln:0614141.00002.0".into());
    applied(&w.run(&pharm, D::UndoDispense { meta: here, epc: pack("A1") }));
    applied(&w.run(&pharm, D::Dispense { meta: m0(), epc: pack("A1") }));
    let mut elsewhere = other;
    elsewhere.event_id = m0().event_id;
    applied(&w.run(&pharm, D::UndoDispense { meta: elsewhere, epc: pack("A1") }));
}

#[test]
fn expired_and_recalled_packs_are_not_dispensed_and_a_recall_is_final() {
    let mut w = world();
    let (maker, pharm, regulator, dist) = (w.maker.clone(), w.pharm.clone(), w.regulator.clone(), w.dist.clone());
    w.commission("LOTOLD", "230100", &["E1"]);
    w.deliver_to_pharmacy(&["E1", "B1"]);
    assert_eq!(w.verify("E1"), VerifyStatus::Expired);
    let (_, why) = refused_without_effect(&mut w, &pharm, D::Dispense { meta: m0(), epc: pack("E1") });
    assert!(why.starts_with("expired"), "{why}");
    // Only the product's manufacturer or a regulator recalls.
    let (code, _) =
        refused_without_effect(&mut w, &dist, D::Recall { gtin: GTIN.into(), lot: "LOTB".into(), reason: "x".into() });
    assert_eq!(code, RejectCode::NotPermitted);
    applied(
        &w.run(&regulator, D::Recall { gtin: GTIN.into(), lot: "LOTB".into(), reason: "sterility failure".into() }),
    );
    assert_eq!(w.verify("B1"), VerifyStatus::Recalled);
    let (_, why) = refused_without_effect(&mut w, &pharm, D::Dispense { meta: m0(), epc: pack("B1") });
    assert!(why.starts_with("recalled"), "{why}");
    let (code, why) = refused_without_effect(
        &mut w,
        &maker,
        D::Recall { gtin: GTIN.into(), lot: "LOTB".into(), reason: "again".into() },
    );
    assert_eq!(code, RejectCode::AlreadyExists);
    assert!(why.contains("irreversible"), "{why}");
    let (code, why) =
        refused_without_effect(&mut w, &maker, D::Recall { gtin: GTIN.into(), lot: "NOPE".into(), reason: "x".into() });
    assert_eq!(code, RejectCode::NotFound);
    assert!(why.contains("NMVS_FE_LOT_03"), "{why}");
    assert_eq!(drugs::recalls(&w.c.state, 10).len(), 1);
}

#[test]
fn a_receipt_without_shipment_is_an_alert_not_a_move() {
    let mut w = world();
    let (maker, dist) = (w.maker.clone(), w.dist.clone());
    applied(&w.ship(&maker, vec![pack("A1")], DIST));
    applied(&w.receive(&dist, vec![pack("A1")], MAKER));
    // Receiving twice.
    let events = applied(&w.receive(&dist, vec![pack("A1")], MAKER)).clone();
    assert!(events.iter().any(|e| e.kind == "drug_alert" && e.attr("kind") == Some("receipt_without_shipment")));
    // Receiving what was never shipped (still at the maker): custody does not move.
    let events = applied(&w.receive(&dist, vec![pack("A2")], MAKER)).clone();
    assert!(events.iter().any(|e| e.attr("kind") == Some("receipt_without_shipment")));
    assert_eq!(w.item("A2").owner, MAKER);
    let alerts = w.alerts();
    assert_eq!(alerts.len(), 2);
    assert!(alerts.iter().all(|a| a.reporter == DIST && a.manufacturer.as_deref() == Some(MAKER)));
    // The manufacturer sees alerts about its products.
    assert_eq!(drugs::alerts(&w.c.state, Some(MAKER), 10).len(), 2);
    assert!(drugs::alerts(&w.c.state, Some(DIST), 10).is_empty());
}

#[test]
fn signed_verification_records_counterfeits_and_mismatches() {
    let mut w = world();
    let pharm = w.pharm.clone();
    let cases = [
        (pack("FAKE1"), None, None, "unknown_serial"),
        (Epc::sgtin("10614141073471", "X"), None, None, "unknown_product"),
        (pack("A1"), Some("LOTB"), None, "lot_mismatch"),
        (pack("A1"), Some("LOTZ"), None, "batch_not_found"),
        (pack("A1"), None, Some("291231"), "expiry_mismatch"),
    ];
    for (i, (epc, lot, expiry, code)) in cases.into_iter().enumerate() {
        let out = w.run(&pharm, D::Verify { epc, lot: lot.map(String::from), expiry: expiry.map(String::from) });
        let ev = &applied(&out)[0];
        assert_eq!(ev.attr("status"), Some(code));
        assert_eq!(ev.attr("alert"), Some(i.to_string().as_str()), "{code} raises alert {i}");
    }
    // A genuine pack raises nothing.
    let out = w.run(&pharm, D::Verify { epc: pack("A1"), lot: Some("LOTA".into()), expiry: Some("301231".into()) });
    assert_eq!(applied(&out)[0].attr("status"), Some("sellable"));
    assert_eq!(applied(&out)[0].attr("alert"), None);
    assert_eq!(w.alerts().len(), 5);
}

#[test]
fn cases_carry_their_packs_and_unpacking_releases_them() {
    let mut w = world();
    let (maker, dist) = (w.maker.clone(), w.dist.clone());
    let case = Epc::Sscc(CASE.into());
    applied(&w.run(&maker, D::Aggregate { meta: m0(), parent: CASE.into(), children: vec![pack("A1"), pack("A2")] }));
    // A pack in a case ships with its case, not alone.
    let (_, why) =
        refused_without_effect(&mut w, &maker, D::Ship { meta: m0(), epcs: vec![pack("A1")], to: DIST.into() });
    assert!(why.contains("inside (00)"), "{why}");
    applied(&w.ship(&maker, vec![case.clone()], DIST));
    assert!(w.item("A1").shipment.is_some());
    applied(&w.receive(&dist, vec![case.clone()], MAKER));
    assert_eq!((w.item("A1").owner.as_str(), w.item("A2").owner.as_str()), (DIST, DIST));
    // Packing a pack that is already in a case is refused.
    let (_, why) = refused_without_effect(
        &mut w,
        &dist,
        D::Aggregate { meta: m0(), parent: "106141412345678915".into(), children: vec![pack("A1")] },
    );
    assert!(why.contains("already in"), "{why}");
    applied(&w.run(&dist, D::Disaggregate { meta: m0(), parent: CASE.into(), children: vec![] }));
    assert_eq!(w.item("A1").parent, None);
    applied(&w.ship(&dist, vec![pack("A1")], PHARM));
    // The case's trail starts with the packing that made it, once; its packs' trails have it
    // after their commissioning.
    let steps = |e: &Epc| drugs::trail(&w.c.state, e, 100).into_iter().map(|t| t.biz_step).collect::<Vec<_>>();
    assert_eq!(steps(&case), ["packing", "shipping", "receiving", "unpacking"]);
    assert_eq!(steps(&pack("A2")), ["commissioning", "packing", "shipping", "receiving", "unpacking"]);
}

#[test]
fn reports_and_prefixes_and_foreign_products() {
    let mut w = world();
    let (maker, dist) = (w.maker.clone(), w.dist.clone());
    applied(&w.run(
        &maker,
        D::Report { meta: m0(), epcs: vec![pack("A3")], status: Reported::Stolen, reason: "warehouse break-in".into() },
    ));
    assert_eq!(w.verify("A3"), VerifyStatus::Stolen);
    let c = w.item("A3").last_change.unwrap();
    assert_eq!((c.institution.as_str(), c.status), (MAKER, Status::Stolen));
    let d = drugs::change_detail(&w.c.state, &pack("A3")).unwrap();
    assert_eq!(d.reason, "warehouse break-in");
    // A prefix is bound once, and nobody else mints its GTINs.
    let ca = w.c.ca.clone();
    let (code, _) = refused_without_effect(
        &mut w,
        &ca,
        D::BindPrefix { company_prefix: "06141410".into(), institution: DIST.into() },
    );
    assert_eq!(code, RejectCode::AlreadyExists);
    let (code, why) = refused_without_effect(
        &mut w,
        &maker,
        D::RegisterProduct {
            product: ProductSpec {
                gtin: "10712345000016".into(),
                name: "X".into(),
                form: "tablet".into(),
                strength: "1 mg".into(),
                pack_size: 1,
                national_code: String::new(),
            },
        },
    );
    assert_eq!(code, RejectCode::NotPermitted);
    assert!(why.contains("no company prefix"), "{why}");
    let _ = dist;
}

#[test]
fn a_capture_is_all_or_nothing_and_idempotent() {
    let mut w = world();
    let maker = w.maker.clone();
    let ship = D::Ship { meta: m0(), epcs: vec![pack("A1")], to: DIST.into() };
    let bad = D::Ship { meta: m0(), epcs: vec![pack("NOPE")], to: DIST.into() };
    let (_, why) = refused_without_effect(&mut w, &maker, D::Capture { events: vec![Step(ship.clone()), Step(bad)] });
    assert!(why.starts_with("event 1:"), "{why}");
    assert!(w.item("A1").shipment.is_none(), "the first event was rolled back");
    applied(&w.run(&maker, D::Capture { events: vec![Step(ship.clone())] }));
    let trail = drugs::trail(&w.c.state, &pack("A1"), 100).len();
    // The same event again is a no-op; other content under the same id is refused.
    let out = w.run(&maker, D::Capture { events: vec![Step(ship.clone())] });
    assert!(applied(&out).iter().any(|e| e.kind == "drug_captured"));
    assert_eq!(drugs::trail(&w.c.state, &pack("A1"), 100).len(), trail);
    let D::Ship { meta: m, .. } = &ship else { unreachable!() };
    let clash = D::Ship { meta: m.clone(), epcs: vec![pack("A2")], to: DIST.into() };
    let (code, _) = refused_without_effect(&mut w, &maker, D::Capture { events: vec![Step(clash)] });
    assert_eq!(code, RejectCode::AlreadyExists);
    // A pharmacy's capture cannot commission: each event is checked against its own column.
    let pharm = w.pharm.clone();
    let (code, why) = refused_without_effect(
        &mut w,
        &pharm,
        D::Capture {
            events: vec![Step(D::Commission {
                meta: m0(),
                gtin: GTIN.into(),
                lot: "LOTA".into(),
                expiry: "301231".into(),
                serials: vec!["P1".into()],
            })],
        },
    );
    assert_eq!(code, RejectCode::NotPermitted);
    assert!(why.contains("event 0"), "{why}");
}

/// A capture's commissioning events check their product and lot once per lot, not once per
/// event; an event into the same lot with another expiry, or into another lot, is checked
/// again: a new lot made by an earlier event of the capture is the one later events find.
#[test]
fn a_capture_checks_each_lot_it_commissions_into() {
    let mut w = world();
    let maker = w.maker.clone();
    let commission = |lot: &str, expiry: &str, serial: &str| {
        Step(D::Commission {
            meta: m0(),
            gtin: GTIN.into(),
            lot: lot.into(),
            expiry: expiry.into(),
            serials: vec![serial.into()],
        })
    };
    let (_, why) = refused_without_effect(
        &mut w,
        &maker,
        D::Capture {
            events: vec![
                commission("NEW", "391231", "N1"),
                commission("NEW", "391231", "N2"),
                commission("NEW", "381231", "N3"),
            ],
        },
    );
    assert!(
        why.starts_with("event 2:") && why.contains("lot NEW of") && why.contains("expires 391231, not 381231"),
        "{why}"
    );
    let recall = D::Recall { gtin: GTIN.into(), lot: "LOTB".into(), reason: "sterility".into() };
    applied(&w.run(&maker, recall));
    let (_, why) = refused_without_effect(
        &mut w,
        &maker,
        D::Capture { events: vec![commission("NEW", "391231", "N1"), commission("LOTB", "301231", "N2")] },
    );
    assert!(why.starts_with("event 1:") && why.contains("recalled"), "{why}");
    applied(&w.run(
        &maker,
        D::Capture { events: vec![commission("NEW", "391231", "N1"), commission("NEW", "391231", "N2")] },
    ));
    assert_eq!(drugs::lot_packs(&w.c.state, GTIN, "NEW"), 2);
    assert_eq!(w.item("N2").expiry, "391231");
    // From one lot to another and back: each event lands in its own lot.
    applied(&w.run(
        &maker,
        D::Capture {
            events: vec![
                commission("NEW", "391231", "N3"),
                commission("LOTA", "301231", "N4"),
                commission("NEW", "391231", "N5"),
            ],
        },
    ));
    assert_eq!([w.item("N3").lot, w.item("N4").lot, w.item("N5").lot], ["NEW", "LOTA", "NEW"]);
    assert_eq!(drugs::lot_packs(&w.c.state, GTIN, "NEW"), 4);
}

#[test]
fn an_error_declaration_of_a_dispense_undoes_it() {
    let mut w = world();
    let pharm = w.pharm.clone();
    w.deliver_to_pharmacy(&["A1"]);
    let m = m0();
    applied(&w.run(&pharm, D::Dispense { meta: m.clone(), epc: pack("A1") }));
    let mut decl = m.clone();
    decl.error_declaration =
        Some(medledger_types::drugs::ErrorDeclaration { declared_ms: w.c.now, reason: "incorrect_data".into() });
    let declaration = D::Capture { events: vec![Step(D::UndoDispense { meta: decl.clone(), epc: pack("A1") })] };
    applied(&w.run(&pharm, declaration.clone()));
    assert_eq!(w.verify("A1"), VerifyStatus::Sellable);
    // The trail shows the dispense (at its event time, marked as declared in error), then its
    // declaration (at the declaration's time, saying what it did), not the dispense twice; the
    // public trail the same, without ids.
    let trail = drugs::trail(&w.c.state, &pack("A1"), 100);
    let shown: Vec<_> = trail
        .iter()
        .rev()
        .take(2)
        .rev()
        .map(|t| (t.biz_step.as_str(), t.detail.as_deref(), t.at_ms, t.declared_in_error))
        .collect();
    let declared_ms = decl.error_declaration.as_ref().unwrap().declared_ms;
    assert_eq!(
        shown,
        [
            ("dispensing", None, m.event_time_ms, true),
            ("dispensing", Some("error declaration: dispense undone"), declared_ms, false)
        ],
        "{trail:?}"
    );
    let public = drugs::public_trail(&w.c.state, &pack("A1"), 100);
    let credentialed: Vec<_> =
        trail.iter().map(|t| drugs::TrailEntry { height: 0, event_id: None, ..t.clone() }).collect();
    assert_eq!(public, credentialed);
    // The same declaration captured again (a re-sent document) is idempotent: it is applied and
    // changes no drug state. Another declaration of the same event is refused.
    let before = w.c.state.0.clone();
    applied(&w.run(&pharm, declaration));
    let changed: Vec<_> =
        w.c.state.0.iter().filter(|(k, v)| before.get(*k) != Some(*v)).map(|(k, _)| k.clone()).collect();
    assert!(changed.iter().all(|k| !k.starts_with(b"d")), "a duplicate declaration wrote drug state: {changed:?}");
    let mut other = decl;
    other.error_declaration =
        Some(medledger_types::drugs::ErrorDeclaration { declared_ms: w.c.now, reason: "did_not_occur".into() });
    let (code, why) = refused_without_effect(
        &mut w,
        &pharm,
        D::Capture { events: vec![Step(D::UndoDispense { meta: other, epc: pack("A1") })] },
    );
    assert_eq!(code, RejectCode::AlreadyExists, "{why}");
    // A dispense that was undone is no longer the standing one: declaring it in error is
    // refused, whether the pack was dispensed again since (which it must not undo) or not.
    w.deliver_to_pharmacy(&["A2"]);
    let first = m0();
    applied(&w.run(&pharm, D::Dispense { meta: first.clone(), epc: pack("A2") }));
    applied(&w.undo(&pharm, pack("A2")));
    let mut decl = first;
    decl.error_declaration =
        Some(medledger_types::drugs::ErrorDeclaration { declared_ms: w.c.now, reason: "incorrect_data".into() });
    let declare = D::Capture { events: vec![Step(D::UndoDispense { meta: decl, epc: pack("A2") })] };
    let (_, why) = refused_without_effect(&mut w, &pharm, declare.clone());
    assert!(why.contains("refused") && why.contains("changed after event"), "{why}");
    assert_eq!(w.verify("A2"), VerifyStatus::Sellable);
    applied(&w.dispense(&pharm, pack("A2")));
    let (_, why) = refused_without_effect(&mut w, &pharm, declare);
    assert!(why.contains("changed after event"), "{why}");
    assert_eq!(w.verify("A2"), VerifyStatus::Dispensed);
    // A declaration sent as the dispensing event itself (not as an undo) undoes it the same way;
    // one of another kind under its id is refused.
    w.deliver_to_pharmacy(&["A3"]);
    let third = m0();
    applied(&w.run(&pharm, D::Dispense { meta: third.clone(), epc: pack("A3") }));
    let mut decl = third;
    decl.error_declaration =
        Some(medledger_types::drugs::ErrorDeclaration { declared_ms: w.c.now, reason: "incorrect_data".into() });
    let report =
        D::Report { meta: decl.clone(), epcs: vec![pack("A3")], status: Reported::Damaged, reason: "x".into() };
    let (_, why) = refused_without_effect(&mut w, &pharm, D::Capture { events: vec![Step(report)] });
    assert!(why.contains("repeats the event"), "{why}");
    applied(&w.run(&pharm, D::Capture { events: vec![Step(D::Dispense { meta: decl, epc: pack("A3") })] }));
    assert_eq!(w.verify("A3"), VerifyStatus::Sellable);
    // A report declared in error from its exported EPCIS event (which carries no reason) is
    // the same event: it is recorded as declared.
    let reported = m0();
    let report = |meta: EventMeta, reason: &str| D::Report {
        meta,
        epcs: vec![pack("A1")],
        status: Reported::Damaged,
        reason: reason.into(),
    };
    applied(&w.run(&pharm, report(reported.clone(), "crushed in the drawer")));
    let mut decl = reported;
    decl.error_declaration =
        Some(medledger_types::drugs::ErrorDeclaration { declared_ms: w.c.now, reason: "incorrect_data".into() });
    applied(&w.run(&pharm, D::Capture { events: vec![Step(report(decl, "reported in an EPCIS document"))] }));
    let trail = drugs::trail(&w.c.state, &pack("A1"), 100);
    assert!(trail.iter().any(|t| t.biz_step == "decommissioning" && t.declared_in_error), "{trail:?}");
}

/// A shipment sent in error (to the wrong party, say) is cancelled by declaring its shipping
/// event in error while it is still open: the identifiers, and what a case holds, stay with the
/// shipper, no longer in transit, and the destination can no longer receive them. Once they
/// were received, the declaration is refused and changes nothing.
#[test]
fn an_error_declaration_of_an_open_shipment_cancels_it() {
    use medledger_types::drugs::ErrorDeclaration;
    let mut w = world();
    let (maker, dist) = (w.maker.clone(), w.dist.clone());
    let case = Epc::Sscc(CASE.into());
    applied(&w.run(&maker, D::Aggregate { meta: m0(), parent: CASE.into(), children: vec![pack("A1"), pack("A2")] }));
    let sent = meta(&w.c);
    let shipped = vec![case.clone(), pack("A3")];
    applied(&w.run(&maker, D::Ship { meta: sent.clone(), epcs: shipped.clone(), to: DIST.into() }));
    assert!(w.item("A1").shipment.is_some());
    // A capture of shipping event `m`'s error declaration, naming `epcs`.
    let declare = |m: &EventMeta, epcs: Vec<Epc>| {
        let mut d = m.clone();
        d.error_declaration =
            Some(ErrorDeclaration { declared_ms: m.event_time_ms + 7, reason: "incorrect_data".into() });
        D::Capture { events: vec![Step(D::Ship { meta: d, epcs, to: DIST.into() })] }
    };
    // The declaration repeats the event: other identifiers, another party or another kind of
    // event under its id are refused.
    let (_, why) = refused_without_effect(&mut w, &maker, declare(&sent, vec![pack("A3")]));
    assert!(why.contains("repeats the event"), "{why}");
    let mut d = sent.clone();
    d.error_declaration =
        Some(ErrorDeclaration { declared_ms: sent.event_time_ms + 7, reason: "incorrect_data".into() });
    for other in [
        D::Ship { meta: d.clone(), epcs: shipped.clone(), to: PHARM.into() },
        D::Receive { meta: d.clone(), epcs: shipped.clone(), from: MAKER.into() },
    ] {
        let (_, why) = refused_without_effect(&mut w, &maker, D::Capture { events: vec![Step(other)] });
        assert!(why.contains("repeats the event"), "{why}");
    }
    let trail_lens: Vec<u32> = ["A1", "A2", "A3"].iter().map(|s| w.item(s).trail_len).collect();
    // Only the shipper's institution may declare it, and its declaration time (shown on the
    // trail) is after the event and not in the future.
    let (code, _) = refused_without_effect(&mut w, &dist, declare(&sent, shipped.clone()));
    assert_eq!(code, RejectCode::NotPermitted);
    for declared_ms in [sent.event_time_ms - 1, w.c.now + 3_600_000] {
        let mut d = sent.clone();
        d.error_declaration = Some(ErrorDeclaration { declared_ms, reason: "incorrect_data".into() });
        let early_or_late =
            D::Capture { events: vec![Step(D::Ship { meta: d, epcs: shipped.clone(), to: DIST.into() })] };
        let (_, why) = refused_without_effect(&mut w, &maker, early_or_late);
        assert!(why.contains("is before the event") && why.contains("or in the future"), "{why}");
    }
    let cancel = declare(&sent, shipped.clone());
    applied(&w.run(&maker, cancel));
    for serial in ["A1", "A2", "A3"] {
        let it = w.item(serial);
        assert_eq!((it.owner.as_str(), it.shipment.is_none()), (MAKER, true), "{serial} stays with the shipper");
    }
    assert!(drugs::item(&w.c.state, &case).unwrap().shipment.is_none());
    // The declaration is the last event on each shipped identifier's trail, the case's contents
    // included.
    for (serial, before) in ["A1", "A2", "A3"].iter().zip(trail_lens) {
        assert_eq!(w.item(serial).trail_len, before + 1, "{serial}");
        let trail = drugs::trail(&w.c.state, &pack(serial), 100);
        let [.., shipping, declared] = trail.as_slice() else { panic!("{serial}: {trail:?}") };
        assert_eq!(
            (shipping.biz_step.as_str(), shipping.detail.as_deref(), shipping.at_ms, shipping.declared_in_error),
            ("shipping", None, sent.event_time_ms, true),
            "{serial}: the shipment, marked as declared in error: {trail:?}"
        );
        assert_eq!(shipping.counterparty.as_deref(), Some(DIST));
        assert_eq!(
            (declared.biz_step.as_str(), declared.detail.as_deref(), declared.at_ms, declared.declared_in_error),
            ("shipping", Some("error declaration: shipment cancelled"), sent.event_time_ms + 7, false),
            "{serial}: then its declaration, at the declaration's time: {trail:?}"
        );
        assert!(declared.counterparty.is_none() && declared.height > shipping.height, "at its own height: {trail:?}");
    }
    // The destination can no longer receive them: its receipt is an alert and moves nothing.
    let out = w.receive(&dist, shipped.clone(), MAKER);
    assert!(applied(&out).iter().any(|e| e.kind == "drug_alert"), "{out:?}");
    assert_eq!(w.item("A3").owner, MAKER);
    // Shipped again with the case, and only part of it received: the declaration is refused
    // as a whole, and changes nothing (not even the part still in transit).
    let partial = meta(&w.c);
    applied(&w.run(&maker, D::Ship { meta: partial.clone(), epcs: shipped.clone(), to: DIST.into() }));
    applied(&w.receive(&dist, vec![pack("A3")], MAKER));
    let (_, why) = refused_without_effect(&mut w, &maker, declare(&partial, shipped.clone()));
    assert!(why.contains("shipment_not_open"), "{why}");
    assert!(w.item("A1").shipment.is_some(), "the case is still on its way");
    applied(&w.receive(&dist, vec![case.clone()], MAKER));
    applied(&w.ship(&dist, vec![pack("A3")], MAKER));
    applied(&w.receive(&maker, vec![pack("A3")], DIST));
    // Shipped again, and received: a declaration of that shipment is refused, and changes nothing.
    let again = meta(&w.c);
    applied(&w.run(&maker, D::Ship { meta: again.clone(), epcs: vec![pack("A3")], to: DIST.into() }));
    applied(&w.receive(&dist, vec![pack("A3")], MAKER));
    let (_, why) = refused_without_effect(&mut w, &maker, declare(&again, vec![pack("A3")]));
    assert!(why.contains("shipment_not_open") && why.contains("ships it back"), "{why}");
    assert_eq!(w.item("A3").owner, DIST);
    // Back at the shipper and shipped to the same party once more: the open shipment is the
    // later event's, which the earlier event's declaration must not cancel.
    applied(&w.ship(&dist, vec![pack("A3")], MAKER));
    applied(&w.receive(&maker, vec![pack("A3")], DIST));
    applied(&w.ship(&maker, vec![pack("A3")], DIST));
    let (_, why) = refused_without_effect(&mut w, &maker, declare(&again, vec![pack("A3")]));
    assert!(why.contains("shipment_not_open"), "{why}");
    assert!(w.item("A3").shipment.is_some(), "the later shipment stays open");
}

/// An identifier keeps at most `MAX_TRAIL` custody events, and its trail always has room for
/// the events that close what is open on it (a shipment's receipt, the unpacking of a container
/// it is in or of the contents it holds, a dispense's undo): an event that would leave less is
/// refused, so nothing is left in transit or packed for good, while an event that closes
/// something, or opens nothing, may take the last slot.
#[test]
fn a_trail_keeps_room_for_the_events_that_close_what_is_open() {
    const EMPTY: &str = "106141412345678915";
    let mut w = world();
    let (maker, dist) = (w.maker.clone(), w.dist.clone());
    let (case, empty) = (Epc::Sscc(CASE.into()), Epc::Sscc(EMPTY.into()));
    // A2 packed in the case (one event more than A1, and than the case, which its packing
    // made); another case packed and unpacked, empty (one more than A1 too).
    applied(&w.run(&maker, D::Aggregate { meta: m0(), parent: CASE.into(), children: vec![pack("A2")] }));
    applied(&w.run(&maker, D::Aggregate { meta: m0(), parent: EMPTY.into(), children: vec![pack("A3")] }));
    applied(&w.run(&maker, D::Disaggregate { meta: m0(), parent: EMPTY.into(), children: vec![] }));
    let all = vec![pack("A1"), case.clone(), empty.clone()];
    let max = drugs::MAX_TRAIL;
    let len = |w: &World, e: &Epc| drugs::item(&w.c.state, e).unwrap().trail_len;
    let hops = (max - 4) / 2;
    for i in 0..hops {
        applied(&w.hop(i, all.clone()));
    }
    let lens = |w: &World| [pack("A1"), case.clone(), pack("A2"), empty.clone()].map(|e| len(w, &e));
    assert_eq!(lens(&w), [max - 3, max - 3, max - 2, max - 2]);
    // A2, packed, has two slots left: shipping its case would leave one for the two events that
    // would then be open on it (the receipt and its unpacking).
    let (_, why) = refused_without_effect(&mut w, &maker, D::Ship { meta: m0(), epcs: all.clone(), to: DIST.into() });
    assert!(why.contains(&pack("A2").to_string()) && why.contains("kept for the events that close"), "{why}");
    // The empty case ships into the slot before its last, and its receipt takes the last.
    applied(&w.hop(0, vec![empty.clone()]));
    assert_eq!(len(&w, &empty), max);
    assert_eq!(drugs::item(&w.c.state, &empty).unwrap().owner, DIST, "received into the last slot");
    assert_eq!(drugs::trail(&w.c.state, &empty, 2 * max as usize).len(), max as usize);
    // Unpacked, A2 has one slot left (and nothing open); the case two, then one once A3 is in
    // it: packing B1 too would leave none for unpacking them, which takes the last.
    applied(&w.run(&maker, D::Disaggregate { meta: m0(), parent: CASE.into(), children: vec![pack("A2")] }));
    assert_eq!((len(&w, &case), len(&w, &pack("A2"))), (max - 2, max - 1));
    applied(&w.run(&maker, D::Aggregate { meta: m0(), parent: CASE.into(), children: vec![pack("A3")] }));
    let (_, why) = refused_without_effect(
        &mut w,
        &maker,
        D::Aggregate { meta: m0(), parent: CASE.into(), children: vec![pack("B1")] },
    );
    assert!(why.contains(CASE) && why.contains("kept for the events that close"), "{why}");
    applied(&w.run(&maker, D::Disaggregate { meta: m0(), parent: CASE.into(), children: vec![] }));
    assert_eq!(len(&w, &case), max);
    assert!(drugs::item(&w.c.state, &pack("A3")).unwrap().parent.is_none(), "unpacked into the last slot");
    // A2 has one slot: shipping it would take the one its receipt needs, but a report opens
    // nothing and takes it.
    let (_, why) =
        refused_without_effect(&mut w, &maker, D::Ship { meta: m0(), epcs: vec![pack("A2")], to: DIST.into() });
    assert!(why.contains("kept for the events that close"), "{why}");
    applied(&w.run(
        &maker,
        D::Report { meta: m0(), epcs: vec![pack("A2")], status: Reported::Damaged, reason: "crushed".into() },
    ));
    assert_eq!(len(&w, &pack("A2")), max);
    // A full trail takes nothing more.
    let (_, why) = refused_without_effect(&mut w, &dist, D::Ship { meta: m0(), epcs: vec![empty], to: MAKER.into() });
    assert!(why.contains(&format!("has {max} custody events, the most")), "{why}");
}

/// A reported item (stolen, destroyed, damaged, returned) takes no further event: it cannot be
/// shipped, unpacked or dispensed. So nothing stays open on it, and reporting a container
/// whose trail has one slot left takes that slot, though the container holds a pack (whose
/// unpacking would otherwise be kept room for).
#[test]
fn a_reported_item_keeps_no_room_for_events_it_can_no_longer_take() {
    let mut w = world();
    let maker = w.maker.clone();
    let case = Epc::Sscc(CASE.into());
    // The case is made by packing A1 and is emptied: two events on its trail.
    applied(&w.run(&maker, D::Aggregate { meta: m0(), parent: CASE.into(), children: vec![pack("A1")] }));
    applied(&w.run(&maker, D::Disaggregate { meta: m0(), parent: CASE.into(), children: vec![] }));
    let max = drugs::MAX_TRAIL;
    for i in 0..(max - 4) / 2 {
        applied(&w.hop(i, vec![case.clone()]));
    }
    // Packing A2 takes the slot before the last and keeps the last for A2's unpacking.
    applied(&w.run(&maker, D::Aggregate { meta: m0(), parent: CASE.into(), children: vec![pack("A2")] }));
    let len = |w: &World, e: &Epc| drugs::item(&w.c.state, e).unwrap().trail_len;
    assert_eq!(len(&w, &case), max - 1);
    let (_, why) = refused_without_effect(
        &mut w,
        &maker,
        D::Aggregate { meta: m0(), parent: CASE.into(), children: vec![pack("A3")] },
    );
    assert!(why.contains("kept for the events that close"), "{why}");
    // Reported, the case and A2 in it take one event each, the case its last.
    applied(&w.run(
        &maker,
        D::Report { meta: m0(), epcs: vec![case.clone()], status: Reported::Damaged, reason: "water".into() },
    ));
    assert_eq!(len(&w, &case), max);
    let a2 = drugs::item(&w.c.state, &pack("A2")).unwrap();
    assert_eq!((a2.status, a2.trail_len, a2.parent.as_deref()), (drugs::Status::Damaged, 3, Some(CASE)));
    // And nothing can be done with either of them any more.
    let (_, why) =
        refused_without_effect(&mut w, &maker, D::Disaggregate { meta: m0(), parent: CASE.into(), children: vec![] });
    assert!(why.contains("damaged"), "{why}");
    let (_, why) = refused_without_effect(&mut w, &maker, D::Ship { meta: m0(), epcs: vec![case], to: DIST.into() });
    assert!(why.contains("damaged"), "{why}");
    let (_, why) = refused_without_effect(
        &mut w,
        &maker,
        D::Aggregate { meta: m0(), parent: "106141412345678915".into(), children: vec![pack("A2")] },
    );
    assert!(why.contains("damaged"), "{why}");
}

/// A prefix bound to the wrong institution is unbound by a regulator (or the CA) and bound
/// again, as long as no product is registered under it: once its GTINs are registered, it
/// stays bound to their manufacturer. Nobody else may unbind.
#[test]
fn a_prefix_is_unbound_only_until_a_product_is_registered_under_it() {
    let mut w = world();
    let (maker, regulator, ca) = (w.maker.clone(), w.regulator.clone(), w.c.ca.clone());
    let product = |gtin: &str| D::RegisterProduct {
        product: ProductSpec {
            gtin: gtin.into(),
            name: "X".into(),
            form: "tablet".into(),
            strength: "1 mg".into(),
            pack_size: 1,
            national_code: String::new(),
        },
    };
    applied(&w.run(&regulator, D::BindPrefix { company_prefix: "0712345".into(), institution: DIST.into() }));
    let (_, why) = refused_without_effect(&mut w, &maker, product("10712345000016"));
    assert!(why.contains("bound to `"), "{why}");
    let unbind = |p: &str| D::UnbindPrefix { company_prefix: p.into() };
    let (code, _) = refused_without_effect(&mut w, &maker, unbind("0712345"));
    assert_eq!(code, RejectCode::NotPermitted);
    let (code, why) = refused_without_effect(&mut w, &regulator, unbind("0999999"));
    assert_eq!(code, RejectCode::NotFound, "{why}");
    // Only the exact prefix: a longer or shorter one is not bound.
    let (code, _) = refused_without_effect(&mut w, &regulator, unbind("07123450"));
    assert_eq!(code, RejectCode::NotFound);
    applied(&w.run(&regulator, unbind("0712345")));
    assert!(drugs::binding(&w.c.state, "0712345").is_none());
    // The CA may unbind too.
    applied(&w.run(&ca, D::BindPrefix { company_prefix: "0712346".into(), institution: DIST.into() }));
    applied(&w.run(&ca, unbind("0712346")));
    assert!(drugs::binding(&w.c.state, "0712346").is_none());
    // Bound again, to the right institution: its manufacturer registers a GTIN under it.
    applied(&w.run(&ca, D::BindPrefix { company_prefix: "0712345".into(), institution: MAKER.into() }));
    applied(&w.run(&maker, product("10712345000016")));
    for p in ["0712345", "0614141"] {
        let (_, why) = refused_without_effect(&mut w, &regulator, unbind(p));
        assert!(why.contains("registered under company prefix") && why.contains("stays bound"), "{p}: {why}");
    }
    assert_eq!(drugs::binding(&w.c.state, "0712345").unwrap().institution, MAKER);
}

// ---- custody against a reference model ----

#[derive(Clone, Debug)]
enum Act {
    Ship {
        who: usize,
        serial: usize,
        to: usize,
    },
    Receive {
        who: usize,
        serial: usize,
        from: usize,
    },
    Dispense {
        who: usize,
        serial: usize,
    },
    Undo {
        who: usize,
        serial: usize,
    },
    Report {
        who: usize,
        serial: usize,
    },
    /// Captures an error declaration of one of the pack's dispensing events (any, by index).
    Declare {
        who: usize,
        serial: usize,
        which: usize,
    },
    /// The destination of the pack's open shipment receives it (if one is open).
    Deliver {
        serial: usize,
    },
    /// Captures an error declaration of one of the pack's shipping events (any, by index).
    Cancel {
        who: usize,
        serial: usize,
        which: usize,
    },
    Recall,
    Wait,
}

/// Mostly the first pharmacy (where a pack starts), sometimes anyone.
fn dispenser() -> impl Strategy<Value = usize> {
    prop_oneof![3 => Just(2usize), 1 => 0..4usize]
}

/// Mostly the pack that starts at the first pharmacy, sometimes any.
fn dispensed() -> impl Strategy<Value = usize> {
    prop_oneof![3 => Just(2usize), 1 => 0..3usize]
}

/// Operations by any party on any pack, weighted towards those that can apply (a dispense, an
/// undo and a declaration need a pharmacy that holds the pack, or held it).
fn act() -> impl Strategy<Value = Act> {
    prop_oneof![
        3 => (0..4usize, 0..3usize, 0..4usize).prop_map(|(who, serial, to)| Act::Ship { who, serial, to }),
        3 => (0..4usize, 0..3usize, 0..4usize).prop_map(|(who, serial, from)| Act::Receive { who, serial, from }),
        3 => (dispenser(), dispensed()).prop_map(|(who, serial)| Act::Dispense { who, serial }),
        3 => (dispenser(), dispensed()).prop_map(|(who, serial)| Act::Undo { who, serial }),
        1 => (0..4usize, 0..3usize).prop_map(|(who, serial)| Act::Report { who, serial }),
        3 => (dispenser(), dispensed(), 0..4usize).prop_map(|(who, serial, which)| Act::Declare { who, serial, which }),
        3 => (0..4usize, 0..3usize, 0..4usize).prop_map(|(who, serial, which)| Act::Cancel { who, serial, which }),
        2 => (0..3usize).prop_map(|serial| Act::Deliver { serial }),
        1 => Just(Act::Recall),
        1 => Just(Act::Wait),
    ]
}

/// The reference: who holds each pack, whether it is in transit (and to whom), its status.
#[derive(Clone, Debug, PartialEq)]
struct Model {
    owner: usize,
    transit: Option<(usize, usize)>,
    status: Status,
    dispensed_by: Option<(usize, u64)>,
    /// Every dispensing event of the pack: by whom, when, the event, and whether it was
    /// declared in error.
    dispenses: Vec<(usize, u64, EventMeta, bool)>,
    /// Which of them stands (the pack's status is its dispense, not undone since).
    standing: Option<usize>,
    /// Every shipping event of the pack: by whom, to whom, the event, and whether it was
    /// declared in error.
    shipments: Vec<(usize, usize, EventMeta, bool)>,
    /// The shipping event that opened the pack's current shipment.
    last_shipment: Option<usize>,
    /// Custody events on the pack's trail (a declaration that corrects custody adds one).
    trail: u32,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Random custody operations by four parties on three packs of lot A (which start at the
    /// manufacturer, the distributor and a pharmacy), error declarations of their dispenses and
    /// shipments included: the ledger accepts exactly what the model allows and ends in the
    /// model's state (possessor, shipment, status, each trail's length). Custody never forks
    /// (one possessor), a dispensed pack is never dispensed again, a recalled lot never
    /// verifies as sellable.
    #[test]
    fn custody_follows_the_reference_model(acts in proptest::collection::vec(act(), 1..40)) {
        let mut w = world();
        let parties = [(w.maker.clone(), MAKER, true), (w.dist.clone(), DIST, false), (w.pharm.clone(), PHARM, true), (w.pharm2.clone(), PHARM2, true)];
        let serials = ["A1", "A2", "A3"];
        w.deliver_to_pharmacy(&["A3"]);
        let (maker, dist) = (w.maker.clone(), w.dist.clone());
        applied(&w.ship(&maker, vec![pack("A2")], DIST));
        applied(&w.receive(&dist, vec![pack("A2")], MAKER));
        let mut model: Vec<Model> = (0..3)
            .map(|i| Model {
                owner: i,
                transit: None,
                status: Status::Active,
                dispensed_by: None,
                dispenses: Vec::new(),
                standing: None,
                shipments: Vec::new(),
                last_shipment: None,
                // Commissioned; A2 also shipped and received, A3 twice.
                trail: [1, 3, 5][i],
            })
            .collect();
        let mut recalled = false;
        for a in acts {
            let out = match a.clone() {
                Act::Ship { who, serial, to } => {
                    let m = &mut model[serial];
                    let ok = m.owner == who && m.transit.is_none() && m.status == Status::Active && to != who;
                    let event = meta(&w.c);
                    let out = w.run(&parties[who].0.clone(), D::Ship { meta: event.clone(), epcs: vec![pack(serials[serial])], to: parties[to].1.into() });
                    if ok {
                        m.transit = Some((who, to));
                        m.trail += 1;
                        m.shipments.push((who, to, event, false));
                        m.last_shipment = Some(m.shipments.len() - 1);
                    }
                    (ok, out)
                }
                Act::Receive { who, serial, from } => {
                    let m = &mut model[serial];
                    // A mismatched receipt is applied as an alert and moves nothing.
                    let moves = m.transit == Some((from, who));
                    let out = w.receive(&parties[who].0.clone(), vec![pack(serials[serial])], parties[from].1);
                    if moves { m.owner = who; m.transit = None; m.last_shipment = None; m.trail += 1; }
                    (from != who, out)
                }
                Act::Dispense { who, serial } => {
                    let m = &mut model[serial];
                    let ok = parties[who].2 && who != 0 && m.owner == who && m.transit.is_none() && m.status == Status::Active && !recalled;
                    let event = meta(&w.c);
                    let out = w.run(&parties[who].0.clone(), D::Dispense { meta: event.clone(), epc: pack(serials[serial]) });
                    if ok {
                        m.status = Status::Dispensed;
                        m.trail += 1;
                        m.dispensed_by = Some((who, w.c.now));
                        m.dispenses.push((who, w.c.now, event, false));
                        m.standing = Some(m.dispenses.len() - 1);
                    }
                    (ok, out)
                }
                Act::Undo { who, serial } => {
                    let m = &mut model[serial];
                    let ok = parties[who].2 && who != 0 && m.status == Status::Dispensed
                        && m.dispensed_by.is_some_and(|(by, at)| by == who && w.c.now + 1000 - at <= 10 * DAY) && !recalled;
                    let out = w.undo(&parties[who].0.clone(), pack(serials[serial]));
                    if ok { m.status = Status::Active; m.standing = None; m.trail += 1; }
                    (ok, out)
                }
                Act::Report { who, serial } => {
                    let m = &mut model[serial];
                    let ok = m.owner == who && m.transit.is_none() && m.status == Status::Active;
                    let m2 = m0();
                    let out = w.run(&parties[who].0.clone(), D::Report { meta: m2, epcs: vec![pack(serials[serial])], status: Reported::Damaged, reason: "dropped".into() });
                    if ok { m.status = Status::Damaged; m.trail += 1; }
                    (ok, out)
                }
                Act::Deliver { serial } => {
                    let m = &mut model[serial];
                    let Some((from, to)) = m.transit else { continue };
                    let out = w.receive(&parties[to].0.clone(), vec![pack(serials[serial])], parties[from].1);
                    m.owner = to;
                    m.transit = None;
                    m.last_shipment = None;
                    m.trail += 1;
                    (true, out)
                }
                Act::Cancel { who, serial, which } => {
                    let m = &mut model[serial];
                    if m.shipments.is_empty() {
                        continue;
                    }
                    let i = which % m.shipments.len();
                    let (by, to, event, declared) = m.shipments[i].clone();
                    // The same declaration again is idempotent. Otherwise only the shipper may
                    // declare, and only while the event's shipment is open.
                    let ok = declared || (who == by && m.transit == Some((by, to)) && m.last_shipment == Some(i));
                    // (Declared just after the event, the same each time: a re-sent declaration.)
                    let declared_ms = event.event_time_ms + 1;
                    let mut decl = event;
                    decl.error_declaration = Some(medledger_types::drugs::ErrorDeclaration { declared_ms, reason: "incorrect_data".into() });
                    let step = Step(D::Ship { meta: decl, epcs: vec![pack(serials[serial])], to: parties[to].1.into() });
                    let out = w.run(&parties[who].0.clone(), D::Capture { events: vec![step] });
                    if ok && !declared {
                        m.transit = None;
                        m.last_shipment = None;
                        m.trail += 1;
                        m.shipments[i].3 = true;
                    }
                    (ok, out)
                }
                Act::Declare { who, serial, which } => {
                    let m = &mut model[serial];
                    if m.dispenses.is_empty() {
                        continue;
                    }
                    let i = which % m.dispenses.len();
                    let (by, at, event, declared) = m.dispenses[i].clone();
                    // The same declaration again is idempotent. Otherwise only the dispensing
                    // institution may declare, and only its standing dispense, which it undoes
                    // under the rules of an undo (within 10 days, the lot not recalled). Only
                    // pharmacies and hospitals capture undo events.
                    let ok = matches!(who, 2 | 3)
                        && (declared
                            || (who == by && m.standing == Some(i) && w.c.now + 1000 - at <= 10 * DAY && !recalled));
                    let mut decl = event;
                    decl.error_declaration = Some(medledger_types::drugs::ErrorDeclaration { declared_ms: at, reason: "incorrect_data".into() });
                    let step = Step(D::UndoDispense { meta: decl, epc: pack(serials[serial]) });
                    let out = w.run(&parties[who].0.clone(), D::Capture { events: vec![step] });
                    if ok && !declared {
                        m.status = Status::Active;
                        m.standing = None;
                        m.trail += 1;
                        m.dispenses[i].3 = true;
                    }
                    (ok, out)
                }
                Act::Recall => {
                    let ok = !recalled;
                    let maker = w.maker.clone();
                    let out = w.run(&maker, D::Recall { gtin: GTIN.into(), lot: "LOTA".into(), reason: "test".into() });
                    recalled = true;
                    (ok, out)
                }
                Act::Wait => {
                    w.c.now += 4 * DAY;
                    continue;
                }
            };
            let (expected, outcome) = out;
            prop_assert_eq!(matches!(outcome, Outcome::Applied { .. }), expected, "{:?} gave {:?}", a, outcome);
            for (i, m) in model.iter().enumerate() {
                let it = w.item(serials[i]);
                prop_assert_eq!(&it.owner, parties[m.owner].1, "owner of {}", serials[i]);
                prop_assert_eq!(it.shipment.as_ref().map(|s| (s.from.clone(), s.to.clone())), m.transit.map(|(f, t)| (parties[f].1.to_string(), parties[t].1.to_string())));
                prop_assert_eq!(it.status, m.status);
                prop_assert_eq!(it.trail_len, m.trail, "trail of {}", serials[i]);
                let v = w.verify(serials[i]);
                if recalled {
                    prop_assert_ne!(v, VerifyStatus::Sellable);
                }
                if m.status == Status::Dispensed {
                    prop_assert_eq!(v, VerifyStatus::Dispensed);
                }
            }
        }
    }
}

/// What a public verification reads can be proven, and the client's recomputation over the
/// proven values gives the node's answer; a proof that leaves a key out is refused, never read
/// as "unknown serial".
#[test]
fn a_pack_verification_is_recomputed_from_proven_state() {
    use medledger_state::commitment::{prove, Proven, Recording};
    use medledger_state::queries::{drug_verify, At};
    use medledger_types::state_proof::verify_entry;
    use std::collections::BTreeMap;

    let mut w = world();
    w.deliver_to_pharmacy(&["A1"]);
    let pharm = w.pharm.clone();
    applied(&w.dispense(&pharm, pack("A1")));
    let at = At::after(w.c.height, w.c.now);
    for (serial, lot, want) in [
        ("A1", None, VerifyStatus::Dispensed),
        ("A2", Some("LOTA"), VerifyStatus::Sellable),
        ("A2", Some("LOTB"), VerifyStatus::LotMismatch),
        ("X9", None, VerifyStatus::UnknownSerial),
    ] {
        let direct = drug_verify(&w.c.state, GTIN, serial, lot, None, at);
        assert_eq!(direct.status, want, "{serial}");
        let rec = Recording::new(&w.c.state);
        drug_verify(&rec, GTIN, serial, lot, None, at);
        let mut entries = BTreeMap::new();
        for key in rec.touched() {
            let (value, proof) = prove(&w.c.state, w.c.height, &key).unwrap();
            verify_entry(&w.c.root, &key, value.as_deref(), &proof).unwrap();
            entries.insert(key, value);
        }
        // Product, pack, its lot; and the scanned lot when it differs.
        assert!(entries.len() <= 4, "verification is a few point reads: {}", entries.len());
        let proven = Proven::new(entries.clone());
        assert_eq!(proven.replay(|s| drug_verify(s, GTIN, serial, lot, None, at)).unwrap(), direct);
        // Leave out any one key: the answer is refused.
        for k in entries.keys() {
            let mut partial = entries.clone();
            partial.remove(k);
            let err = Proven::new(partial).replay(|s| drug_verify(s, GTIN, serial, lot, None, at)).unwrap_err();
            assert!(err.contains("does not cover"), "{err}");
        }
    }
}

/// A pack's public trail is recomputed from proven values only, and the proof (with the
/// verification's) reveals no other pack that travelled in the same shipments and no signer's
/// key. A key left out refuses the answer.
#[test]
fn a_pack_trail_is_proven_without_revealing_its_shipments() {
    use medledger_state::commitment::{prove, Proven, Recording};
    use medledger_state::queries::{drug_trail, At};
    use medledger_types::state_proof::verify_entry;
    use std::collections::BTreeMap;

    let mut w = world();
    // A1 travels with A2 and A3 in every shipment.
    w.deliver_to_pharmacy(&["A1", "A2", "A3"]);
    let pharm = w.pharm.clone();
    applied(&w.dispense(&pharm, pack("A1")));
    let direct = drug_trail(&w.c.state, GTIN, "A1");
    let steps: Vec<&str> = direct.iter().map(|t| t.biz_step.as_str()).collect();
    assert_eq!(steps, ["commissioning", "shipping", "receiving", "shipping", "receiving", "dispensing"]);
    assert_eq!(direct[1].counterparty.as_deref(), Some(DIST));
    assert!(direct.iter().all(|t| t.event_id.is_none() && t.height == 0), "the public trail has no ids or heights");
    // What the node's credentialed trail shows, less ids and heights, is the public trail.
    let full = drugs::trail(&w.c.state, &pack("A1"), 100);
    assert!(full.iter().all(|t| t.event_id.is_some() && t.height > 0));
    let stripped: Vec<_> = full
        .into_iter()
        .map(|mut t| {
            t.event_id = None;
            t.height = 0;
            t
        })
        .collect();
    assert_eq!(stripped, direct);

    // What the public proof route proves: the verification's reads and the trail's.
    let rec = Recording::new(&w.c.state);
    medledger_state::queries::drug_verify(&rec, GTIN, "A1", None, None, At::after(w.c.height, w.c.now));
    drug_trail(&rec, GTIN, "A1");
    let mut entries = BTreeMap::new();
    for key in rec.touched() {
        // Every key they read is a leaf: `prove` refuses any other.
        let (value, proof) = prove(&w.c.state, w.c.height, &key).unwrap();
        verify_entry(&w.c.root, &key, value.as_deref(), &proof).unwrap();
        entries.insert(key, value);
    }
    let proven = Proven::new(entries.clone());
    assert_eq!(proven.replay(|s| drug_trail(s, GTIN, "A1")).unwrap(), direct);
    let revealed: Vec<u8> = entries.values().flatten().flatten().copied().collect();
    let contains = |needle: &[u8]| revealed.windows(needle.len()).any(|x| x == needle);
    for other in [pack("A2"), pack("A3")] {
        assert!(!contains(&other.key()), "the proof reveals {other}, which shipped with A1");
    }
    for k in [&w.maker, &w.dist, &w.pharm] {
        assert!(!contains(&k.public().0), "the proof reveals a signer's key");
    }
    let at = At::after(w.c.height, w.c.now);
    for k in entries.keys() {
        let mut partial = entries.clone();
        partial.remove(k);
        let p = Proven::new(partial);
        let verified = p.replay(|s| medledger_state::queries::drug_verify(s, GTIN, "A1", None, None, at));
        let trail = p.replay(|s| drug_trail(s, GTIN, "A1"));
        let err = verified.err().or(trail.err()).expect("an answer without one of its keys is refused");
        assert!(err.contains("does not cover"), "{err}");
    }
}

/// A status change is public at institution level (what, who, when): the reason a possessor
/// gave and the premises where it was made are not. A public verification proves the item's
/// record, which holds neither; they are kept under their own key, which the state still reads
/// for an undo at the same premises.
#[test]
fn a_verification_proof_does_not_reveal_why_or_where_a_status_changed() {
    use medledger_state::commitment::Recording;
    use medledger_state::queries::{drug_trail, drug_verify, At};

    let mut w = world();
    let (maker, pharm) = (w.maker.clone(), w.pharm.clone());
    let reason = "fell off the night van of Swift Logistics";
    let (van, counter) = ("urn:epc:id:sgln:0614141.00077.0", "urn:epc:id:sgln:0614141.00088.0");
    let mut m = m0();
    m.read_point = Some(van.into());
    applied(
        &w.run(&maker, D::Report { meta: m, epcs: vec![pack("A3")], status: Reported::Stolen, reason: reason.into() }),
    );
    w.deliver_to_pharmacy(&["A1"]);
    let mut m = m0();
    m.biz_location = Some(counter.into());
    applied(&w.run(&pharm, D::Dispense { meta: m, epc: pack("A1") }));
    let cases = [
        ("A3", VerifyStatus::Stolen, [reason, van], MAKER),
        ("A1", VerifyStatus::Dispensed, ["dispensed", counter], PHARM),
    ];
    for (serial, status, secrets, by) in cases {
        let rec = Recording::new(&w.c.state);
        let v = drug_verify(&rec, GTIN, serial, None, None, At::after(w.c.height, w.c.now));
        assert_eq!(v.status, status);
        drug_trail(&rec, GTIN, serial);
        let touched = rec.touched();
        assert!(touched.contains(&drugs::key::item(&pack(serial))), "the item's record is proven");
        assert!(!touched.contains(&drugs::key::change(&pack(serial))), "its change detail is not read");
        let revealed: Vec<u8> = touched.iter().filter_map(|k| w.c.state.get(k)).flatten().collect();
        for secret in secrets {
            let found = revealed.windows(secret.len()).any(|x| x == secret.as_bytes());
            assert!(!found, "a public proof of {serial} reveals `{secret}`");
        }
        // The state keeps them, and the institution-level change is public.
        let d = drugs::change_detail(&w.c.state, &pack(serial)).expect("the change's detail");
        assert_eq!((d.reason.as_str(), d.premises.as_deref()), (secrets[0], Some(secrets[1])));
        let c = w.item(serial).last_change.expect("a change");
        assert_eq!((c.institution.as_str(), v.changed_by.as_deref()), (by, Some(by)));
    }
}

/// A lot's size is production volume, which the public must not learn: a public verification
/// proves the lot record (expiry, recall) of the pack, and of any other lot the scan names, but
/// never a pack count, which is kept off the state tree. Commissioning more packs into both lots leaves every value such a proof
/// holds as it was, while the manufacturer's view counts them.
#[test]
fn a_verification_proof_does_not_reveal_how_many_packs_a_lot_holds() {
    use medledger_state::commitment::Recording;
    use medledger_state::queries::{drug_trail, drug_verify, At};
    use std::collections::BTreeMap;

    let proven = |w: &World| -> BTreeMap<Vec<u8>, Option<Vec<u8>>> {
        let rec = Recording::new(&w.c.state);
        let at = At::after(w.c.height, w.c.now);
        // The second scan names lot B, so the answer reads (and a proof proves) lot B too.
        drug_verify(&rec, GTIN, "A1", None, None, at);
        drug_verify(&rec, GTIN, "A1", Some("LOTB"), None, at);
        drug_trail(&rec, GTIN, "A1");
        rec.touched().into_iter().map(|k| (k.clone(), w.c.state.get(&k))).collect()
    };
    let mut w = world();
    let before = proven(&w);
    assert!(before.contains_key(&drugs::key::lot(GTIN, "LOTB")), "the mismatched lot is read");
    assert!(!before.keys().any(|k| k.starts_with(medledger_state::keys::DRUG_LOT_PACKS)));
    // Nor can a proof carry the count as a leaf it passes or ends at: it is not a leaf.
    assert!(!medledger_state::commitment::is_leaf_key(&drugs::key::lot_packs(GTIN, "LOTA")));
    w.commission("LOTA", "301231", &["A4", "A5"]);
    w.commission("LOTB", "301231", &["B2", "B3", "B4"]);
    assert_eq!(proven(&w), before, "a proven value changed with the lots' sizes");
    let sizes: Vec<(String, Option<u64>)> = drugs::lots_of(&w.c.state, GTIN)
        .into_iter()
        .map(|l| drugs::lot_view(&w.c.state, l, true))
        .map(|l| (l.lot, l.packs))
        .collect();
    assert_eq!(sizes, [("LOTA".to_string(), Some(5)), ("LOTB".to_string(), Some(4))]);
}

/// An event's body is kept off the state tree, committed by its public record: a body that
/// does not match is corrupt storage, and reading it stops the validator rather than serve it.
#[test]
#[should_panic(expected = "does not match its record")]
fn an_event_body_that_does_not_match_its_record_is_refused() {
    let mut w = world();
    let maker = w.maker.clone();
    applied(&w.ship(&maker, vec![pack("A1")], DIST));
    let id = drugs::trail(&w.c.state, &pack("A1"), 100)[1].event_id.clone().unwrap();
    // A well-formed body with other content: an error declaration that never happened.
    let mut e = drugs::event(&w.c.state, &id).unwrap();
    e.error_declaration =
        Some(medledger_types::drugs::ErrorDeclaration { declared_ms: 1, reason: "incorrect_data".into() });
    let body_key = drugs::key::event_body(&drugs::event_key(&id));
    assert!(w.c.state.0.contains_key(&body_key));
    w.c.state.0.insert(body_key, medledger_types::Canonical::to_bytes(&e));
    drugs::event(&w.c.state, &id);
}
