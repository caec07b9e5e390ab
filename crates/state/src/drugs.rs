//! Drug traceability: GS1 company prefixes, products, lots, and the custody of every serialised
//! pack, case and pallet, with verification answers and alerts.
//!
//! Custody is per institution: an item's possessor (`owner`) is the institution whose staff
//! commissioned or last received it. Only the possessor ships, packs, dispenses or reports; only
//! the named destination receives. Operations on a case or pallet reach its contents (at most
//! [`MAX_REACHED`] items). Verification is three reads (product, pack, lot), whatever the size of
//! the ledger.
//!
//! ## Permissions
//!
//! | principal          | bind_prefix | register_product | commission | aggregate | disaggregate | ship | receive | dispense | undo_dispense | recall | report | verify | capture | unbind_prefix |
//! |--------------------|:---:|:---:|:---:|:---:|:---:|:---:|:---:|:---:|:---:|:---:|:---:|:---:|:---:|:---:|
//! | ca                 |  ✓  |     |     |     |     |     |     |     |     |     |     |     |     |  ✓  |
//! | patient            |     |     |     |     |     |     |     |     |     |     |     |  ✓  |     |     |
//! | doctor             |     |     |     |  ✓  |  ✓  |  ✓  |  ✓  |  ✓  |  ✓  |     |  ✓  |  ✓  |  ✓  |     |
//! | institution_admin  |     |     |     |     |     |     |     |     |     |     |     |  ✓  |     |     |
//! | regulator          |  ✓  |     |     |     |     |     |     |     |     |  ✓  |     |  ✓  |     |  ✓  |
//! | researcher         |     |     |     |     |     |     |     |     |     |     |     |     |     |     |
//! | insurer            |     |     |     |     |     |     |     |     |     |     |     |     |     |     |
//! | manufacturer       |     |  ✓  |  ✓  |  ✓  |  ✓  |  ✓  |  ✓  |     |     |  ✓  |  ✓  |  ✓  |  ✓  |     |
//! | distributor        |     |     |     |  ✓  |  ✓  |  ✓  |  ✓  |     |     |     |  ✓  |  ✓  |  ✓  |     |
//! | pharmacy           |     |     |     |  ✓  |  ✓  |  ✓  |  ✓  |  ✓  |  ✓  |     |  ✓  |  ✓  |  ✓  |     |
//! | node_service       |     |     |     |     |     |     |     |     |     |     |     |     |     |     |
//!
//! A doctor stands for a hospital's dispensary. Scope rules on top of the table: a manufacturer
//! registers GTINs only under prefixes bound to its institution, commissions only its own
//! products and recalls only their lots; a prefix is unbound only while no product is
//! registered under it; every custody event needs possession; a capture's events are each
//! checked against their own column.

use crate::identity;
use crate::principal::Principal;
use crate::principal::{Rows, N, Y};
use crate::store::{Overlay, StateRead};
use crate::{decode_stored, decode_with, read_stored, BlockEnv, Rejection};
use medledger_types::codec::{Canonical, Writer};
use medledger_types::drugs::limits::{
    MAX_CONTAINER_ITEMS, MAX_FUTURE_SKEW_MS, MAX_NESTING, MAX_REACHED, UNDO_WINDOW_MS,
};
use medledger_types::drugs::{
    expiry_end_ms, step, DrugsOp, Epc, ErrorDeclaration, EventMeta, ProductSpec, Reported, Serial, Step,
};
use medledger_types::hash::{domain, tagged};
use medledger_types::{Event, Hash, PublicKey, RejectCode};
use serde::{Deserialize, Serialize};

/// Most custody events one identifier keeps (a pack's life has a handful).
pub const MAX_TRAIL: u32 = 1024;
/// Most products one manufacturer registers, and lots per product.
pub const MAX_PRODUCTS_PER_MAKER: usize = 4096;
pub const MAX_LOTS_PER_PRODUCT: usize = 4096;
/// Most company prefixes bound in the consortium.
pub const MAX_PREFIXES: usize = 4096;

/// This domain's rows of the permission table (see the module docs).
pub const PERMISSIONS: Rows<14> = [
    // bnd reg com agg dis shp rcv dsp und rcl rep ver cap unb
    [Y, N, N, N, N, N, N, N, N, N, N, N, N, Y], // ca
    [N, N, N, N, N, N, N, N, N, N, N, Y, N, N], // patient
    [N, N, N, Y, Y, Y, Y, Y, Y, N, Y, Y, Y, N], // doctor
    [N, N, N, N, N, N, N, N, N, N, N, Y, N, N], // institution_admin
    [Y, N, N, N, N, N, N, N, N, Y, N, Y, N, Y], // regulator
    [N, N, N, N, N, N, N, N, N, N, N, N, N, N], // researcher
    [N, N, N, N, N, N, N, N, N, N, N, N, N, N], // insurer
    [N, Y, Y, Y, Y, Y, Y, N, N, Y, Y, Y, Y, N], // manufacturer
    [N, N, N, Y, Y, Y, Y, N, N, N, Y, Y, Y, N], // distributor
    [N, N, N, Y, Y, Y, Y, Y, Y, N, Y, Y, Y, N], // pharmacy
    [N, N, N, N, N, N, N, N, N, N, N, N, N, N], // node_service
];

pub mod key {
    use crate::keys::*;
    use medledger_types::drugs::Epc;
    use medledger_types::Hash;

    /// An identifier's key part, length-prefixed so keys of different identifiers never
    /// prefix each other.
    fn epc_part(epc: &Epc) -> Vec<u8> {
        let k = epc.key();
        let mut v = Vec::with_capacity(k.len() + 1);
        v.push(k.len() as u8);
        v.extend_from_slice(&k);
        v
    }
    fn str_part(s: &str) -> Vec<u8> {
        let mut v = Vec::with_capacity(s.len() + 1);
        v.push(s.len() as u8);
        v.extend_from_slice(s.as_bytes());
        v
    }
    pub fn prefix(company_prefix: &str) -> Vec<u8> {
        compose(DRUG_PREFIX, &[company_prefix.as_bytes()])
    }
    pub fn product(gtin: &str) -> Vec<u8> {
        compose(DRUG_PRODUCT, &[gtin.as_bytes()])
    }
    pub fn products_of(institution: &str) -> Vec<u8> {
        compose(DRUG_PRODUCTS_OF, &[institution.as_bytes()])
    }
    pub fn lot(gtin: &str, lot: &str) -> Vec<u8> {
        compose(DRUG_LOT, &[gtin.as_bytes(), lot.as_bytes()])
    }
    pub fn lots_of(gtin: &str) -> Vec<u8> {
        compose(DRUG_LOTS_OF, &[gtin.as_bytes()])
    }
    pub fn lot_packs(gtin: &str, lot: &str) -> Vec<u8> {
        compose(DRUG_LOT_PACKS, &[gtin.as_bytes(), lot.as_bytes()])
    }
    pub fn item(epc: &Epc) -> Vec<u8> {
        compose(DRUG_ITEM, &[&epc.key()])
    }
    pub fn change(epc: &Epc) -> Vec<u8> {
        compose(DRUG_CHANGE, &[&epc.key()])
    }
    pub fn event(id: &Hash) -> Vec<u8> {
        compose(DRUG_EVENT, &[&id.0])
    }
    pub fn event_body(id: &Hash) -> Vec<u8> {
        compose(DRUG_EVENT_BODY, &[&id.0])
    }
    pub fn trail(epc: &Epc, n: u32) -> Vec<u8> {
        compose(DRUG_TRAIL, &[&epc_part(epc), &n.to_be_bytes()])
    }
    pub fn alert(seq: u64) -> Vec<u8> {
        compose(DRUG_ALERT, &[&seq.to_be_bytes()])
    }
    pub fn maker_alert(institution: &str, n: u64) -> Vec<u8> {
        compose(DRUG_MAKER_ALERT, &[&str_part(institution), &n.to_be_bytes()])
    }
    pub fn maker_alerts_len(institution: &str) -> Vec<u8> {
        compose(DRUG_MAKER_ALERTS_LEN, &[institution.as_bytes()])
    }
    pub fn recall(seq: u64) -> Vec<u8> {
        compose(DRUG_RECALL, &[&seq.to_be_bytes()])
    }
    /// The inventory entries of an institution start with this.
    pub fn inventory_of(institution: &str) -> Vec<u8> {
        compose(DRUG_INVENTORY, &[&str_part(institution)])
    }
    pub fn inventory(institution: &str, epc: &Epc) -> Vec<u8> {
        compose(DRUG_INVENTORY, &[&str_part(institution), &epc.key()])
    }
}

/// The status of a pack, case or pallet (recall and expiry come from its lot and the clock).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Active,
    Dispensed,
    Stolen,
    Destroyed,
    Damaged,
    Returned,
}

impl Status {
    const ALL: [Status; 6] =
        [Status::Active, Status::Dispensed, Status::Stolen, Status::Destroyed, Status::Damaged, Status::Returned];
    pub fn name(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Dispensed => "dispensed",
            Status::Stolen => "stolen",
            Status::Destroyed => "destroyed",
            Status::Damaged => "damaged",
            Status::Returned => "returned",
        }
    }
    fn reported(r: Reported) -> Status {
        match r {
            Reported::Stolen => Status::Stolen,
            Reported::Destroyed => Status::Destroyed,
            Reported::Damaged => Status::Damaged,
            Reported::Returned => Status::Returned,
        }
    }
}

medledger_types::canonical_enum!(Status, "pack status");

medledger_types::canonical_struct! {
    /// A GS1 company prefix bound to a member institution.
    pub struct Binding {
        company_prefix: String = "company prefix" max 12,
        institution: String = "institution" max 64,
        bound_by: PublicKey = "bound by",
        height: u64 = "bound at",
    }
}

medledger_types::canonical_struct! {
    /// A registered product.
    pub struct Product {
        spec: ProductSpec = "product",
        manufacturer: String = "manufacturer" max 64,
        /// Length of the company prefix inside the GTIN (for EPC URIs).
        prefix_len: u32 = "prefix length",
        registered_height: u64 = "registered at",
    }
}

medledger_types::canonical_struct! {
    /// Who recalled a lot (at institution level: the recall transaction at `height` names
    /// its signer), when and why.
    pub struct LotRecall {
        institution: String = "institution" max 64,
        reason: String = "reason" max 256,
        at_ms: u64 = "recalled at",
        height: u64 = "recalled at height",
    }
}

medledger_types::canonical_struct! {
    /// A lot of a product, as every verification of one of its packs reads (and a public
    /// verification proves) it. Its pack count is kept apart ([`key::lot_packs`]): a proof must
    /// not reveal how many packs a lot holds.
    pub struct Lot {
        gtin: String = "gtin" max 14,
        lot: String = "lot" max 20,
        expiry: String = "expiry" max 6,
        recall: Option<LotRecall> = "recall",
    }
}

/// A lot with its pack count.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LotView {
    pub gtin: String,
    pub lot: String,
    pub expiry: String,
    /// Packs commissioned in it: production volume, so the API shows it only to the product's
    /// manufacturer and to regulators (null for anyone else).
    pub packs: Option<u64>,
    pub recall: Option<LotRecall>,
}

medledger_types::canonical_struct! {
    /// A status change at institution level: what, who and when. The item is proven to the
    /// public with its status, so it holds no key, no reason and no premises: those are in the
    /// change's [`ChangeDetail`], under its own key, which no public answer reads.
    pub struct Change {
        status: Status = "status",
        institution: String = "institution" max 64,
        at_ms: u64 = "changed at",
    }
}

medledger_types::canonical_struct! {
    /// Why and where an item's last status change was made, and the custody event that made it
    /// (its body, off the state tree, names the signer): for the state's own checks (an undo at
    /// the same premises; an error declaration undoes only the standing dispense), on the state
    /// tree since they depend on it, and never in a public proof.
    pub struct ChangeDetail {
        /// Key hash of the event ([`event_key`] of its id).
        event: Hash = "event",
        reason: String = "reason" max 256,
        premises: Option<String> = "premises" max 64,
    }
}

medledger_types::canonical_struct! {
    /// A shipment on its way.
    pub struct Shipment {
        from: String = "from" max 64,
        to: String = "to" max 64,
        at_ms: u64 = "shipped at",
    }
}

medledger_types::canonical_struct! {
    /// A pack (SGTIN) or a case or pallet (SSCC) and its custody.
    pub struct Item {
        epc: Epc = "epc",
        /// The lot and expiry of a pack; empty for containers.
        lot: String = "lot" max 20,
        expiry: String = "expiry" max 6,
        /// The possessing institution.
        owner: String = "owner" max 64,
        status: Status = "status",
        /// The case or pallet it is in.
        parent: Option<String> = "parent" max 18,
        /// What a case or pallet holds.
        children: Vec<Epc> = "children" max MAX_CONTAINER_ITEMS,
        shipment: Option<Shipment> = "shipment",
        last_change: Option<Change> = "last change",
        commissioned_ms: u64 = "commissioned at",
        /// Custody events on its trail so far.
        trail_len: u32 = "trail length",
        /// The trail's first event (its commissioning or packing), kept here rather than under
        /// its own key: commissioning a pack then writes two state keys, not four.
        first_event: Option<Hash> = "first event",
    }
}

medledger_types::canonical_struct! {
    /// A custody event as the state tree holds it: the public projection anyone verifying a
    /// pack may see (no keys, event ids, heights, other identifiers or volumes), the hash that
    /// makes re-capture idempotent, and the digest of the event whole ([`StoredEvent`], kept
    /// off the tree). Proving a trail reveals these fields only.
    pub struct EventRecord {
        biz_step: String = "business step" max 32,
        institution: String = "institution" max 64,
        /// For shipping, the destination; for receiving, the source.
        counterparty: Option<String> = "counterparty" max 64,
        at_ms: u64 = "event time",
        /// For an undo or a report: what it set.
        detail: Option<String> = "detail" max 64,
        /// When it was declared in error (the declaration's time), if it was.
        declared_ms: Option<u64> = "declared in error at",
        content: Hash = "content hash",
        /// `H(DRUG_EVENT_BODY, StoredEvent)` of the body under `dev/`.
        body: Hash = "body digest",
    }
}

medledger_types::canonical_struct! {
    /// A captured custody event, kept whole for queries (off the state tree; its
    /// [`EventRecord`] commits to it).
    pub struct StoredEvent {
        op: Step = "event",
        institution: String = "institution" max 64,
        signer: PublicKey = "signer",
        height: u64 = "height",
        /// Hash of the event's encoding, for idempotent re-capture.
        content: Hash = "content hash",
        error_declaration: Option<ErrorDeclaration> = "error declaration",
        /// The height of the block that applied its error declaration.
        declared_height: Option<u64> = "declaration height",
    }
}

/// Kinds of alert; each has a stable code and the EMVS/NMVS return code it corresponds to.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    UnknownProduct,
    UnknownSerial,
    BatchNotFound,
    LotMismatch,
    ExpiryMismatch,
    AlreadyInactive,
    ReceiptWithoutShipment,
}

impl AlertKind {
    const ALL: [AlertKind; 7] = [
        AlertKind::UnknownProduct,
        AlertKind::UnknownSerial,
        AlertKind::BatchNotFound,
        AlertKind::LotMismatch,
        AlertKind::ExpiryMismatch,
        AlertKind::AlreadyInactive,
        AlertKind::ReceiptWithoutShipment,
    ];
    pub fn code(self) -> &'static str {
        match self {
            AlertKind::UnknownProduct => "unknown_product",
            AlertKind::UnknownSerial => "unknown_serial",
            AlertKind::BatchNotFound => "batch_not_found",
            AlertKind::LotMismatch => "lot_mismatch",
            AlertKind::ExpiryMismatch => "expiry_mismatch",
            AlertKind::AlreadyInactive => "already_inactive",
            AlertKind::ReceiptWithoutShipment => "receipt_without_shipment",
        }
    }
}

medledger_types::canonical_enum!(AlertKind, "alert kind");

medledger_types::canonical_struct! {
    /// An anomaly found on chain, for the regulator and the product's manufacturer.
    pub struct Alert {
        seq: u64 = "alert number",
        kind: AlertKind = "kind",
        epc: Epc = "epc",
        /// The manufacturer of the product, when the GTIN is known.
        manufacturer: Option<String> = "manufacturer" max 64,
        /// The institution whose verification or receipt found it.
        reporter: String = "reporter" max 64,
        by: PublicKey = "reported by",
        detail: String = "detail" max 256,
        at_ms: u64 = "raised at",
        height: u64 = "height",
    }
}

/// The answer to "is this pack genuine and sellable?", with a stable code.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifyStatus {
    /// Genuine, active, not expired, lot not recalled.
    Sellable,
    Dispensed,
    Recalled,
    Expired,
    Stolen,
    /// Destroyed, damaged or returned.
    Inactive,
    UnknownProduct,
    /// Suspected counterfeit.
    UnknownSerial,
    BatchNotFound,
    LotMismatch,
    ExpiryMismatch,
}

impl VerifyStatus {
    pub const ALL: [VerifyStatus; 11] = [
        VerifyStatus::Sellable,
        VerifyStatus::Dispensed,
        VerifyStatus::Recalled,
        VerifyStatus::Expired,
        VerifyStatus::Stolen,
        VerifyStatus::Inactive,
        VerifyStatus::UnknownProduct,
        VerifyStatus::UnknownSerial,
        VerifyStatus::BatchNotFound,
        VerifyStatus::LotMismatch,
        VerifyStatus::ExpiryMismatch,
    ];
    /// The stable code.
    pub fn code(self) -> &'static str {
        match self {
            VerifyStatus::Sellable => "sellable",
            VerifyStatus::Dispensed => "dispensed",
            VerifyStatus::Recalled => "recalled",
            VerifyStatus::Expired => "expired",
            VerifyStatus::Stolen => "stolen",
            VerifyStatus::Inactive => "inactive",
            VerifyStatus::UnknownProduct => "unknown_product",
            VerifyStatus::UnknownSerial => "unknown_serial",
            VerifyStatus::BatchNotFound => "batch_not_found",
            VerifyStatus::LotMismatch => "lot_mismatch",
            VerifyStatus::ExpiryMismatch => "expiry_mismatch",
        }
    }
    /// The EMVS/NMVS semantics: pack state or return code.
    pub fn nmvs(self) -> &'static str {
        match self {
            VerifyStatus::Sellable => "ACTIVE",
            VerifyStatus::Dispensed => "NMVS_NC_PCK_22 (pack already inactive: supplied)",
            VerifyStatus::Recalled => "INACTIVE: RECALLED",
            VerifyStatus::Expired => "INACTIVE: EXPIRED",
            VerifyStatus::Stolen => "INACTIVE: STOLEN",
            VerifyStatus::Inactive => "INACTIVE: DESTROYED / DAMAGED / RETURNED",
            VerifyStatus::UnknownProduct => "NMVS_NC_PC_01 (unknown product code)",
            VerifyStatus::UnknownSerial => "NMVS_NC_PC_02 (unknown pack serial number)",
            VerifyStatus::BatchNotFound => "NMVS_FE_LOT_03 (batch not found)",
            VerifyStatus::LotMismatch => "NMVS_FE_LOT_13 (batch does not match serial)",
            VerifyStatus::ExpiryMismatch => "NMVS_FE_LOT_12 (expiry date mismatch)",
        }
    }
    /// The alert this answer raises when a credentialed party verifies, if any. Recalled,
    /// expired and reported packs are known states, not anomalies (as in the NMVS).
    pub fn alert(self) -> Option<AlertKind> {
        match self {
            VerifyStatus::Dispensed => Some(AlertKind::AlreadyInactive),
            VerifyStatus::UnknownProduct => Some(AlertKind::UnknownProduct),
            VerifyStatus::UnknownSerial => Some(AlertKind::UnknownSerial),
            VerifyStatus::BatchNotFound => Some(AlertKind::BatchNotFound),
            VerifyStatus::LotMismatch => Some(AlertKind::LotMismatch),
            VerifyStatus::ExpiryMismatch => Some(AlertKind::ExpiryMismatch),
            VerifyStatus::Sellable
            | VerifyStatus::Recalled
            | VerifyStatus::Expired
            | VerifyStatus::Stolen
            | VerifyStatus::Inactive => None,
        }
    }
}

/// A verification answer.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    pub status: VerifyStatus,
    /// [`VerifyStatus::code`].
    pub code: String,
    /// [`VerifyStatus::nmvs`].
    pub nmvs: String,
    pub sellable: bool,
    pub gtin: String,
    pub serial: String,
    pub product_name: Option<String>,
    pub manufacturer: Option<String>,
    /// On chain, for a known pack.
    pub lot: Option<String>,
    pub expiry: Option<String>,
    /// Who decommissioned the pack and when (institution level), if it is not active.
    pub changed_by: Option<String>,
    pub changed_at_ms: Option<u64>,
    pub recall_reason: Option<String>,
}

/// One step of a custody trail, at institution level.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrailEntry {
    /// CBV business step: commissioning, packing, shipping, receiving, dispensing, …
    pub biz_step: String,
    pub institution: String,
    /// For shipping, the destination; for receiving, the source.
    pub counterparty: Option<String>,
    pub at_ms: u64,
    pub height: u64,
    /// For an undo or a report, what it set; for an error declaration's own entry (one that
    /// cancelled a shipment or undid a dispense), `error declaration: …` and what it did.
    pub detail: Option<String>,
    /// The event was declared in error (its declaration, if it changed custody, is a later
    /// entry of its own).
    pub declared_in_error: bool,
    /// Event id (omitted in public answers).
    pub event_id: Option<String>,
}

fn invalid(msg: impl Into<String>) -> Rejection {
    Rejection::new(RejectCode::InvalidArgument, msg)
}
fn not_found(msg: impl Into<String>) -> Rejection {
    Rejection::new(RejectCode::NotFound, msg)
}
fn denied(msg: impl Into<String>) -> Rejection {
    Rejection::new(RejectCode::NotPermitted, msg)
}

fn get<T: Canonical>(s: &dyn StateRead, k: &[u8], what: &str) -> Option<T> {
    read_stored(s, k, what)
}
fn put<T: Canonical>(o: &mut Overlay<'_>, k: Vec<u8>, v: &T) {
    o.put(k, v.to_bytes());
}
fn get_u64(s: &dyn StateRead, k: &[u8]) -> u64 {
    crate::read_u64(s, k, "drug count").unwrap_or(0)
}
fn get_strings(s: &dyn StateRead, k: &[u8], what: &'static str, limit: usize) -> Vec<String> {
    s.get(k)
        .and_then(|b| {
            decode_with(s, &b, what, |r| {
                let n = r.len(what, limit)?;
                (0..n).map(|_| r.string(what, 64)).collect()
            })
        })
        .unwrap_or_default()
}
fn put_strings(o: &mut Overlay<'_>, k: Vec<u8>, v: &[String]) {
    let mut w = Writer::new();
    w.u32(v.len() as u32);
    for s in v {
        w.str(s);
    }
    o.put(k, w.finish());
}

pub fn binding(s: &dyn StateRead, company_prefix: &str) -> Option<Binding> {
    get(s, &key::prefix(company_prefix), "prefix binding")
}
pub fn product(s: &dyn StateRead, gtin: &str) -> Option<Product> {
    get(s, &key::product(gtin), "product")
}
pub fn lot(s: &dyn StateRead, gtin: &str, lot: &str) -> Option<Lot> {
    get(s, &key::lot(gtin, lot), "lot")
}
pub fn item(s: &dyn StateRead, epc: &Epc) -> Option<Item> {
    get(s, &key::item(epc), "drug item")
}
pub fn alert(s: &dyn StateRead, seq: u64) -> Option<Alert> {
    get(s, &key::alert(seq), "drug alert")
}
pub fn products_of(s: &dyn StateRead, institution: &str) -> Vec<Product> {
    get_strings(s, &key::products_of(institution), "product list", MAX_PRODUCTS_PER_MAKER)
        .iter()
        .filter_map(|g| product(s, g))
        .collect()
}
/// Packs commissioned in a lot.
pub fn lot_packs(s: &dyn StateRead, gtin: &str, lot: &str) -> u64 {
    get_u64(s, &key::lot_packs(gtin, lot))
}
/// A lot for a view, with its pack count when `counted` (the caller decides who may see it; the
/// count is read only then).
pub fn lot_view(s: &dyn StateRead, l: Lot, counted: bool) -> LotView {
    let packs = counted.then(|| lot_packs(s, &l.gtin, &l.lot));
    LotView { packs, gtin: l.gtin, lot: l.lot, expiry: l.expiry, recall: l.recall }
}
pub fn lots_of(s: &dyn StateRead, gtin: &str) -> Vec<Lot> {
    get_strings(s, &key::lots_of(gtin), "lot list", MAX_LOTS_PER_PRODUCT)
        .iter()
        .filter_map(|l| lot(s, gtin, l))
        .collect()
}
/// The event id's key hash.
pub fn event_key(event_id: &str) -> Hash {
    tagged(domain::DRUG_EVENT_ID, &[event_id.as_bytes()])
}
pub fn event(s: &dyn StateRead, event_id: &str) -> Option<StoredEvent> {
    event_parts(s, &event_key(event_id)).map(|(_, e)| e)
}

/// The newest alerts first: all of them (`maker` = `None`, for regulators) or those about one
/// manufacturer's products; at most `limit`.
pub fn alerts(s: &dyn StateRead, maker: Option<&str>, limit: usize) -> Vec<Alert> {
    match maker {
        None => {
            let n = get_u64(s, crate::keys::DRUG_ALERTS_LEN);
            (0..n).rev().take(limit).filter_map(|i| alert(s, i)).collect()
        }
        Some(m) => {
            let n = get_u64(s, &key::maker_alerts_len(m));
            (0..n)
                .rev()
                .take(limit)
                .filter_map(|i| crate::read_u64(s, &key::maker_alert(m, i), "alert number"))
                .filter_map(|seq| alert(s, seq))
                .collect()
        }
    }
}

/// The newest recalls first, at most `limit`: (gtin, lot).
pub fn recalls(s: &dyn StateRead, limit: usize) -> Vec<Lot> {
    let n = get_u64(s, crate::keys::DRUG_RECALLS_LEN);
    (0..n)
        .rev()
        .take(limit)
        .filter_map(|i| s.get(&key::recall(i)))
        .filter_map(|b| decode_with(s, &b, "recall", |r| Ok((r.string("gtin", 14)?, r.string("lot", 20)?))))
        .filter_map(|(gtin, l)| lot(s, &gtin, &l))
        .collect()
}

/// The company prefix length of a run of digits (a GTIN-14 or SSCC without its first digit),
/// from the bound prefixes.
pub fn prefix_len(s: &dyn StateRead, digits: &str) -> Option<usize> {
    (6..=12).find(|l| digits.get(..*l).is_some_and(|p| binding(s, p).is_some()))
}

/// Verifies a pack at `now_ms`: three reads, whatever the size of the ledger.
pub fn verify(
    s: &dyn StateRead,
    gtin: &str,
    serial: &str,
    lot_seen: Option<&str>,
    expiry_seen: Option<&str>,
    now_ms: u64,
) -> Verification {
    verify_item(s, gtin, serial, item(s, &Epc::sgtin(gtin, serial)).as_ref(), lot_seen, expiry_seen, now_ms)
}

/// [`verify`] with the pack already read (`None`: never commissioned), for a caller that also
/// renders its trail ([`public_trail_of`]) and so reads it once.
pub fn verify_item(
    s: &dyn StateRead,
    gtin: &str,
    serial: &str,
    it: Option<&Item>,
    lot_seen: Option<&str>,
    expiry_seen: Option<&str>,
    now_ms: u64,
) -> Verification {
    debug_assert!(it.is_none_or(|it| it.epc == Epc::sgtin(gtin, serial)), "the item is the pack verified");
    let mut v = Verification {
        status: VerifyStatus::Sellable,
        code: String::new(),
        nmvs: String::new(),
        sellable: false,
        gtin: gtin.to_string(),
        serial: serial.to_string(),
        product_name: None,
        manufacturer: None,
        lot: None,
        expiry: None,
        changed_by: None,
        changed_at_ms: None,
        recall_reason: None,
    };
    let status = (|| {
        let Some(p) = product(s, gtin) else { return VerifyStatus::UnknownProduct };
        v.product_name = Some(p.spec.name.clone());
        v.manufacturer = Some(p.manufacturer.clone());
        let Some(it) = it else { return VerifyStatus::UnknownSerial };
        v.lot = Some(it.lot.clone());
        v.expiry = Some(it.expiry.clone());
        let l = lot(s, gtin, &it.lot);
        if let Some(seen) = lot_seen {
            if seen != it.lot {
                return if lot(s, gtin, seen).is_some() {
                    VerifyStatus::LotMismatch
                } else {
                    VerifyStatus::BatchNotFound
                };
            }
        }
        if expiry_seen.is_some_and(|e| e != it.expiry) {
            return VerifyStatus::ExpiryMismatch;
        }
        if let Some(c) = &it.last_change {
            if it.status != Status::Active {
                v.changed_by = Some(c.institution.clone());
                v.changed_at_ms = Some(c.at_ms);
            }
        }
        match it.status {
            Status::Dispensed => return VerifyStatus::Dispensed,
            Status::Stolen => return VerifyStatus::Stolen,
            Status::Destroyed | Status::Damaged | Status::Returned => return VerifyStatus::Inactive,
            Status::Active => {}
        }
        if let Some(r) = l.as_ref().and_then(|l| l.recall.as_ref()) {
            v.recall_reason = Some(r.reason.clone());
            v.changed_by = Some(r.institution.clone());
            v.changed_at_ms = Some(r.at_ms);
            return VerifyStatus::Recalled;
        }
        if expiry_end_ms(&it.expiry).is_none_or(|end| now_ms >= end) {
            return VerifyStatus::Expired;
        }
        VerifyStatus::Sellable
    })();
    v.status = status;
    v.code = status.code().to_string();
    v.nmvs = status.nmvs().to_string();
    v.sellable = status == VerifyStatus::Sellable;
    v
}

/// The event keys on an item's trail, oldest first, at most `limit`: the first one is kept in
/// the item, the others under their own keys.
fn trail_events(s: &dyn StateRead, it: &Item, limit: usize) -> Vec<Hash> {
    let n = it.trail_len.min(MAX_TRAIL);
    (0..n).filter_map(|i| trail_slot(s, it, i)).take(limit.min(n as usize)).collect()
}

/// The event in slot `i` of an item's trail: the first one is kept in the item, the others
/// under their own keys.
fn trail_slot(s: &dyn StateRead, it: &Item, i: u32) -> Option<Hash> {
    match i {
        0 => it.first_event,
        i => s
            .get(&key::trail(&it.epc, i))
            .and_then(|b| decode_with(s, &b, "trail entry", |r| r.array("trail entry")))
            .map(Hash),
    }
}

/// The custody trail of an identifier, oldest first, at most `limit` entries, with each
/// event's id and height (for credentialed readers; the bodies are off the tree).
pub fn trail(s: &dyn StateRead, epc: &Epc, limit: usize) -> Vec<TrailEntry> {
    item(s, epc).map(|it| trail_of(s, &it, limit)).unwrap_or_default()
}

/// [`trail`] of an item already read.
pub fn trail_of(s: &dyn StateRead, it: &Item, limit: usize) -> Vec<TrailEntry> {
    let mut seen = std::collections::BTreeSet::new();
    trail_events(s, it, limit)
        .into_iter()
        .filter_map(|h| event_parts(s, &h).map(|p| (h, p)))
        .map(|(h, (r, e))| {
            let (t, declaration) = trail_entry(&mut seen, h, &r);
            // A declaration's own entry is at the declaration's height.
            let height = if declaration { e.declared_height.unwrap_or(e.height) } else { e.height };
            TrailEntry { height, event_id: e.op.0.meta().map(|m| m.event_id.clone()), ..t }
        })
        .collect()
}

/// The public custody trail of an identifier, oldest first, at most `limit` entries: what
/// anyone verifying the pack sees (no event ids, heights or volumes). It reads leaves of the
/// state tree only (the item, its trail keys, the events' public records), so it can be
/// proven and recomputed by a client ([`crate::queries::drug_trail`]).
pub fn public_trail(s: &dyn StateRead, epc: &Epc, limit: usize) -> Vec<TrailEntry> {
    item(s, epc).map(|it| public_trail_of(s, &it, limit)).unwrap_or_default()
}

/// [`public_trail`] of an item already read.
pub fn public_trail_of(s: &dyn StateRead, it: &Item, limit: usize) -> Vec<TrailEntry> {
    let mut seen = std::collections::BTreeSet::new();
    trail_events(s, it, limit)
        .into_iter()
        .filter_map(|h| get::<EventRecord>(s, &key::event(&h), "drug event record").map(|r| (h, r)))
        .map(|(h, r)| trail_entry(&mut seen, h, &r).0)
        .collect()
}

fn public_entry(r: &EventRecord) -> TrailEntry {
    TrailEntry {
        biz_step: r.biz_step.clone(),
        institution: r.institution.clone(),
        counterparty: r.counterparty.clone(),
        at_ms: r.at_ms,
        height: 0,
        detail: r.detail.clone(),
        declared_in_error: r.declared_ms.is_some(),
        event_id: None,
    }
}

/// A trail entry from its event's record. An event met a second time on a trail is its error
/// declaration (which cancelled the event's shipment or undid its dispense): it is shown as
/// that, at the declaration's time, not as the event again (the event itself is marked
/// `declared_in_error` where it stands). Also says whether the entry is such a declaration.
fn trail_entry(seen: &mut std::collections::BTreeSet<Hash>, h: Hash, r: &EventRecord) -> (TrailEntry, bool) {
    let mut t = public_entry(r);
    let declaration = !seen.insert(h);
    if declaration {
        t.at_ms = r.declared_ms.unwrap_or(t.at_ms);
        t.declared_in_error = false;
        t.counterparty = None;
        let what = match r.biz_step.as_str() {
            step::SHIPPING => ": shipment cancelled",
            step::DISPENSING => ": dispense undone",
            _ => "",
        };
        t.detail = Some(format!("error declaration{what}"));
    }
    (t, declaration)
}

/// The public record of a stored event whose encoding hashes to `body`.
fn record_of(e: &StoredEvent, body: Hash) -> EventRecord {
    let op = &e.op.0;
    let (counterparty, detail) = match op {
        DrugsOp::Ship { to, .. } => (Some(to.clone()), None),
        DrugsOp::Receive { from, .. } => (Some(from.clone()), None),
        DrugsOp::UndoDispense { .. } => (None, Some("dispense undone".to_string())),
        DrugsOp::Report { status, .. } => (None, Some(format!("reported {}", status.name()))),
        _ => (None, None),
    };
    EventRecord {
        biz_step: op.biz_step().unwrap_or("").to_string(),
        institution: e.institution.clone(),
        counterparty,
        at_ms: op.meta().map_or(0, |m| m.event_time_ms),
        detail,
        declared_ms: e.error_declaration.as_ref().map(|d| d.declared_ms),
        content: e.content,
        body,
    }
}

/// Writes an event: its public record (a leaf) and its body (off the tree), encoded once.
fn store_event(o: &mut Overlay<'_>, ekey: &Hash, e: &StoredEvent) {
    let body = e.to_bytes();
    put(o, key::event(ekey), &record_of(e, tagged(domain::DRUG_EVENT_BODY, &[&body])));
    o.put(key::event_body(ekey), body);
}

/// An event's public record and its body, by the event's key hash. A missing body, or one that
/// does not match the record's digest, is corrupt storage: it is reported
/// ([`StateRead::corrupt`]), and the node neither serves nor acts on it.
fn event_parts(s: &dyn StateRead, ekey: &Hash) -> Option<(EventRecord, StoredEvent)> {
    let record = get::<EventRecord>(s, &key::event(ekey), "drug event record")?;
    let Some(raw) = s.get(&key::event_body(ekey)) else {
        s.corrupt(&format!("drug event {ekey} has a record but no body"));
        return None;
    };
    if record.body != tagged(domain::DRUG_EVENT_BODY, &[&raw]) {
        s.corrupt(&format!("the body of drug event {ekey} does not match its record"));
        return None;
    }
    Some((record, decode_stored(s, &raw, "drug event")?))
}

/// The stored events on an identifier's trail, oldest first (for EPCIS queries).
pub fn events_of(s: &dyn StateRead, epc: &Epc, limit: usize) -> Vec<StoredEvent> {
    let Some(it) = item(s, epc) else { return Vec::new() };
    let mut seen = std::collections::BTreeSet::new();
    trail_events(s, &it, limit)
        .into_iter()
        .filter(|h| seen.insert(*h))
        .filter_map(|h| event_parts(s, &h).map(|(_, e)| e))
        .collect()
}

/// What applying a custody event needs besides the operation.
struct Ctx<'e> {
    env: &'e BlockEnv,
    signer: &'e PublicKey,
    institution: String,
    events: Vec<Event>,
    alerts: u32,
    /// The last lot commissioned into by this operation, as (GTIN, lot, expiry), once its
    /// product and lot checks passed: a capture's events commission the same lot over and over,
    /// and nothing a capture does changes a product, a lot's expiry or its recall.
    commissioning: Option<(String, String, String)>,
}

pub(crate) fn apply(
    o: &mut Overlay<'_>,
    env: &BlockEnv,
    signer: &PublicKey,
    principal: Principal,
    op: &DrugsOp,
) -> Result<Vec<Event>, Rejection> {
    let institution = identity::credential(o, signer).map(|c| c.institution).unwrap_or_default();
    let mut cx = Ctx { env, signer, institution, events: Vec::new(), alerts: 0, commissioning: None };
    match op {
        DrugsOp::Capture { events } => {
            for (i, Step(step)) in events.iter().enumerate() {
                if !crate::allowed(principal, step.kind()) {
                    return Err(denied(format!(
                        "event {i}: role `{}` may not perform `{}`",
                        principal.name(),
                        step.kind().name()
                    )));
                }
                custody(o, &mut cx, step).map_err(|r| Rejection::new(r.code, format!("event {i}: {}", r.reason)))?;
            }
            let mut summary = Event::new("drug_captured").with("events", events.len());
            if cx.alerts > 0 {
                summary = summary.with("alerts", cx.alerts);
            }
            // Receipts keep at most a few dozen events; a capture reports a summary and its alerts.
            let mut out = vec![summary];
            out.extend(cx.events.into_iter().filter(|e| e.kind == "drug_alert").take(32));
            Ok(out)
        }
        DrugsOp::BindPrefix { company_prefix, institution } => {
            if identity::institution(o, institution).is_none() {
                return Err(not_found(format!("no member institution `{institution}`")));
            }
            let mut all = get_strings(o, crate::keys::DRUG_PREFIXES, "prefix list", MAX_PREFIXES);
            if let Some(p) =
                all.iter().find(|p| p.starts_with(company_prefix.as_str()) || company_prefix.starts_with(p.as_str()))
            {
                let owner = binding(o, p).map(|b| b.institution).unwrap_or_default();
                return Err(Rejection::new(
                    RejectCode::AlreadyExists,
                    format!("company prefix {p} is already bound (to `{owner}`); GS1 prefixes never overlap"),
                ));
            }
            if all.len() >= MAX_PREFIXES {
                return Err(invalid(format!("{MAX_PREFIXES} prefixes are bound, the most the ledger keeps")));
            }
            all.push(company_prefix.clone());
            put_strings(o, crate::keys::DRUG_PREFIXES.to_vec(), &all);
            let b = Binding {
                company_prefix: company_prefix.clone(),
                institution: institution.clone(),
                bound_by: *signer,
                height: env.height,
            };
            put(o, key::prefix(company_prefix), &b);
            Ok(vec![Event::new("prefix_bound").with("prefix", company_prefix).with("institution", institution)])
        }
        DrugsOp::UnbindPrefix { company_prefix } => {
            let Some(b) = binding(o, company_prefix) else {
                return Err(not_found(format!("company prefix {company_prefix} is not bound")));
            };
            // A product's GTIN starts with its indicator digit, then the prefix.
            // (Bound prefixes never overlap, so a GTIN that starts with this one is under it.)
            let minted = get_strings(o, &key::products_of(&b.institution), "product list", MAX_PRODUCTS_PER_MAKER)
                .into_iter()
                .filter(|g| g.get(1..1 + company_prefix.len()) == Some(company_prefix.as_str()))
                .count();
            if minted > 0 {
                return Err(invalid(format!(
                    "{minted} product(s) of `{}` are registered under company prefix {company_prefix}; a prefix whose \
                     GTINs were registered stays bound to its manufacturer",
                    b.institution
                )));
            }
            let mut all = get_strings(o, crate::keys::DRUG_PREFIXES, "prefix list", MAX_PREFIXES);
            all.retain(|p| p != company_prefix);
            put_strings(o, crate::keys::DRUG_PREFIXES.to_vec(), &all);
            o.delete(key::prefix(company_prefix));
            Ok(vec![Event::new("prefix_unbound").with("prefix", company_prefix).with("institution", &b.institution)])
        }
        DrugsOp::RegisterProduct { product: spec } => {
            let digits = spec.gtin.get(1..).unwrap_or("");
            let Some(len) = prefix_len(o, digits) else {
                return Err(denied(format!(
                    "no company prefix of GTIN {} is bound to any institution; a CA or regulator binds it first",
                    spec.gtin
                )));
            };
            // (Found by `prefix_len`; absent now only if storage failed, and then the block is
            // never committed.)
            let Some(b) = binding(o, &digits[..len]) else {
                return Err(denied(format!("company prefix {} could not be read", &digits[..len])));
            };
            if b.institution != cx.institution {
                return Err(denied(format!(
                    "company prefix {} is bound to `{}`, not to your institution `{}`",
                    b.company_prefix, b.institution, cx.institution
                )));
            }
            if product(o, &spec.gtin).is_some() {
                return Err(Rejection::new(
                    RejectCode::AlreadyExists,
                    format!("GTIN {} is already registered", spec.gtin),
                ));
            }
            let mut mine = get_strings(o, &key::products_of(&cx.institution), "product list", MAX_PRODUCTS_PER_MAKER);
            if mine.len() >= MAX_PRODUCTS_PER_MAKER {
                return Err(invalid(format!("{MAX_PRODUCTS_PER_MAKER} products, the most one manufacturer registers")));
            }
            mine.push(spec.gtin.clone());
            put_strings(o, key::products_of(&cx.institution), &mine);
            let p = Product {
                spec: spec.clone(),
                manufacturer: cx.institution.clone(),
                prefix_len: len as u32,
                registered_height: env.height,
            };
            put(o, key::product(&spec.gtin), &p);
            Ok(vec![Event::new("product_registered").with("gtin", &spec.gtin)])
        }
        DrugsOp::Recall { gtin, lot: lot_id, reason } => {
            let p = product(o, gtin).ok_or_else(|| not_found(format!("unknown product {gtin} (NMVS_NC_PC_01)")))?;
            if principal != Principal::Role(medledger_types::Role::Regulator) && p.manufacturer != cx.institution {
                return Err(denied(format!(
                    "{gtin} is `{}`'s product; only its manufacturer or a regulator recalls it",
                    p.manufacturer
                )));
            }
            let mut l = lot(o, gtin, lot_id)
                .ok_or_else(|| not_found(format!("batch {lot_id} of {gtin} not found (NMVS_FE_LOT_03)")))?;
            if let Some(r) = &l.recall {
                return Err(Rejection::new(
                    RejectCode::AlreadyExists,
                    format!(
                        "lot {lot_id} was recalled at height {} by `{}`; a recall is irreversible",
                        r.height, r.institution
                    ),
                ));
            }
            l.recall = Some(LotRecall {
                institution: cx.institution.clone(),
                reason: reason.clone(),
                at_ms: env.timestamp_ms,
                height: env.height,
            });
            put(o, key::lot(gtin, lot_id), &l);
            let n = get_u64(o, crate::keys::DRUG_RECALLS_LEN);
            let mut w = Writer::new();
            w.str(gtin).str(lot_id);
            o.put(key::recall(n), w.finish());
            o.put(crate::keys::DRUG_RECALLS_LEN.to_vec(), (n + 1).to_be_bytes().to_vec());
            Ok(vec![Event::new("lot_recalled")
                .with("gtin", gtin)
                .with("lot", lot_id)
                .with("packs", lot_packs(o, gtin, lot_id))])
        }
        DrugsOp::Verify { epc, lot, expiry } => {
            let Epc::Sgtin { gtin, serial } = epc else { return Err(invalid("verification is per pack (SGTIN)")) };
            let v = verify(o, gtin, serial, lot.as_deref(), expiry.as_deref(), env.timestamp_ms);
            let mut ev = Event::new("drug_verified").with("status", v.status.code()).with("nmvs", v.status.nmvs());
            if let Some(kind) = v.status.alert() {
                let detail = format!("verification answered {}", v.status.code());
                let seq = raise(o, &mut cx, kind, epc, v.manufacturer.clone(), detail);
                ev = ev.with("alert", seq);
            }
            Ok(vec![ev])
        }
        DrugsOp::Commission { .. }
        | DrugsOp::Aggregate { .. }
        | DrugsOp::Disaggregate { .. }
        | DrugsOp::Ship { .. }
        | DrugsOp::Receive { .. }
        | DrugsOp::Dispense { .. }
        | DrugsOp::UndoDispense { .. }
        | DrugsOp::Report { .. } => {
            custody(o, &mut cx, op)?;
            Ok(capped(cx.events))
        }
    }
}

/// Receipts keep at most a few dozen events: the first ones, and a count of the rest.
fn capped(mut events: Vec<Event>) -> Vec<Event> {
    const KEEP: usize = 40;
    if events.len() > KEEP {
        let more = events.len() - KEEP;
        events.truncate(KEEP);
        events.push(Event::new("events_truncated").with("more", more));
    }
    events
}

/// Records an alert and returns its sequence number.
fn raise(
    o: &mut Overlay<'_>,
    cx: &mut Ctx<'_>,
    kind: AlertKind,
    epc: &Epc,
    manufacturer: Option<String>,
    detail: String,
) -> u64 {
    let seq = get_u64(o, crate::keys::DRUG_ALERTS_LEN);
    let a = Alert {
        seq,
        kind,
        epc: epc.clone(),
        manufacturer: manufacturer.clone(),
        reporter: cx.institution.clone(),
        by: *cx.signer,
        detail: truncate(&detail, 256),
        at_ms: cx.env.timestamp_ms,
        height: cx.env.height,
    };
    put(o, key::alert(seq), &a);
    o.put(crate::keys::DRUG_ALERTS_LEN.to_vec(), (seq + 1).to_be_bytes().to_vec());
    if let Some(m) = manufacturer {
        let n = get_u64(o, &key::maker_alerts_len(&m));
        o.put(key::maker_alert(&m, n), seq.to_be_bytes().to_vec());
        o.put(key::maker_alerts_len(&m), (n + 1).to_be_bytes().to_vec());
    }
    cx.alerts += 1;
    cx.events.push(Event::new("drug_alert").with("kind", kind.code()).with("epc", epc).with("alert", seq));
    seq
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

fn manufacturer_of(o: &Overlay<'_>, epc: &Epc) -> Option<String> {
    match epc {
        Epc::Sgtin { gtin, .. } => product(o, gtin).map(|p| p.manufacturer),
        Epc::Sscc(_) => None,
    }
}

/// Applies one custody event: the event checks (time, id), then the operation.
fn custody(o: &mut Overlay<'_>, cx: &mut Ctx<'_>, op: &DrugsOp) -> Result<(), Rejection> {
    let meta = op.meta().expect("custody operations carry an event");
    if meta.event_time_ms > cx.env.timestamp_ms.saturating_add(MAX_FUTURE_SKEW_MS) {
        return Err(invalid(format!(
            "event time {} is in the future (block time {}, at most {} s ahead allowed)",
            medledger_types::time::rfc3339_ms(meta.event_time_ms),
            medledger_types::time::rfc3339_ms(cx.env.timestamp_ms),
            MAX_FUTURE_SKEW_MS / 1000
        )));
    }
    let content = tagged(domain::DRUG_EVENT_CONTENT, &[&op.to_bytes()]);
    let ekey = event_key(&meta.event_id);
    if let Some((record, mut existing)) = event_parts(o, &ekey) {
        if record.content == content {
            // Re-capturing the same event is idempotent.
            cx.events.push(Event::new("drug_event_duplicate").with("event_id", &meta.event_id));
            return Ok(());
        }
        let Some(decl) = &meta.error_declaration else {
            return Err(Rejection::new(
                RejectCode::AlreadyExists,
                format!(
                    "event id `{}` was captured with other content; only an error declaration may reuse it",
                    meta.event_id
                ),
            ));
        };
        // A declaration repeats the event it declares, unchanged but for its declaration.
        if as_declared(op) != as_declared(&existing.op.0) {
            return Err(invalid(format!(
                "event `{}` was a `{}` event with other content; an error declaration repeats the event it declares, \
                 unchanged, and adds its errorDeclaration",
                meta.event_id,
                existing.op.0.biz_step().unwrap_or("custody")
            )));
        }
        if record.declared_ms.is_some() {
            if existing.error_declaration.as_ref() == Some(decl) {
                // Re-capturing the same declaration is idempotent, like re-capturing any event.
                cx.events.push(Event::new("drug_event_duplicate").with("event_id", &meta.event_id));
                return Ok(());
            }
            return Err(Rejection::new(
                RejectCode::AlreadyExists,
                format!("event `{}` was already declared in error", meta.event_id),
            ));
        }
        if record.institution != cx.institution {
            return Err(denied(format!(
                "event `{}` was captured by `{}`; only it may declare it in error",
                meta.event_id, record.institution
            )));
        }
        // Its declaration time is shown on the trail: after the event, and not in the future.
        if decl.declared_ms < meta.event_time_ms
            || decl.declared_ms > cx.env.timestamp_ms.saturating_add(MAX_FUTURE_SKEW_MS)
        {
            return Err(invalid(format!(
                "declaration time {} of event `{}` is before the event ({}) or in the future (block time {}, at most {} s \
                 ahead allowed)",
                medledger_types::time::rfc3339_ms(decl.declared_ms),
                meta.event_id,
                medledger_types::time::rfc3339_ms(meta.event_time_ms),
                medledger_types::time::rfc3339_ms(cx.env.timestamp_ms),
                MAX_FUTURE_SKEW_MS / 1000
            )));
        }
        // An error declaration of a dispensing event undoes it, and one of a shipping event
        // cancels the shipment while it is still open; of any other event it is recorded on the
        // event (custody is corrected by the events that follow).
        if let (DrugsOp::Ship { epcs, to, .. }, DrugsOp::Ship { .. }) = (op, &existing.op.0) {
            cancel_shipment(o, cx, &ekey, epcs, to, &meta.event_id)?;
        }
        if let (DrugsOp::UndoDispense { epc, .. } | DrugsOp::Dispense { epc, .. }, DrugsOp::Dispense { .. }) =
            (op, &existing.op.0)
        {
            // Only the pack's standing dispense: one undone (and perhaps dispensed again) since
            // is not this event's to undo. (After a declaration's own undo the detail names this
            // event again; the `declared_ms` check above refuses a second declaration.)
            if change_detail(o, epc).map(|d| d.event) != Some(ekey) {
                return Err(invalid(format!(
                    "undo_status_mismatch: refused: {epc} was changed after event `{}` (its dispense was undone), so \
                     this declaration would undo a later change; declare the later events in error instead (NMVS_NC_PCK_06)",
                    meta.event_id
                )));
            }
            undo(o, cx, &ekey, meta, epc)?;
        }
        existing.error_declaration = Some(decl.clone());
        existing.declared_height = Some(cx.env.height);
        store_event(o, &ekey, &existing);
        cx.events.push(Event::new("drug_error_declared").with("event_id", &meta.event_id).with("reason", &decl.reason));
        return Ok(());
    }
    if meta.error_declaration.is_some() {
        return Err(not_found(format!("error declaration of event `{}`, which was never captured", meta.event_id)));
    }
    // An item an event makes starts its trail with the event; the event is appended to the
    // trails of the items that existed before it, by the operation, as it writes each of them
    // (once). The count is of the items the event made or touched.
    let items = match op {
        DrugsOp::Commission { gtin, lot: lot_id, expiry, serials, .. } => {
            commission(o, cx, &ekey, gtin, lot_id, expiry, serials)?
        }
        DrugsOp::Aggregate { parent, children, .. } => aggregate(o, cx, &ekey, parent, children)?,
        DrugsOp::Disaggregate { parent, children, .. } => disaggregate(o, cx, &ekey, parent, children)?,
        DrugsOp::Ship { epcs, to, .. } => ship(o, cx, &ekey, epcs, to)?,
        DrugsOp::Receive { epcs, from, .. } => receive(o, cx, &ekey, epcs, from)?,
        DrugsOp::Dispense { epc, .. } => {
            dispense(o, cx, &ekey, meta, epc)?;
            1
        }
        DrugsOp::UndoDispense { epc, .. } => {
            undo(o, cx, &ekey, meta, epc)?;
            1
        }
        DrugsOp::Report { epcs, status, reason, .. } => report(o, cx, &ekey, meta, epcs, *status, reason)?,
        _ => unreachable!("custody is called with custody events only"),
    };
    let stored = StoredEvent {
        op: Step(op.clone()),
        institution: cx.institution.clone(),
        signer: *cx.signer,
        height: cx.env.height,
        content,
        error_declaration: None,
        declared_height: None,
    };
    store_event(o, &ekey, &stored);
    if items > 0 {
        cx.events.push(
            Event::new("drug_event")
                .with("step", op.biz_step().unwrap_or(""))
                .with("items", items)
                .with("event_id", &meta.event_id),
        );
    }
    Ok(())
}

/// An identifier `event` makes, held by the event's institution, with the event first on its
/// trail (a pack with its lot and expiry; a case or pallet with neither).
fn made(cx: &Ctx<'_>, event: &Hash, epc: Epc, lot: &str, expiry: &str) -> Item {
    Item {
        epc,
        lot: lot.to_string(),
        expiry: expiry.to_string(),
        owner: cx.institution.clone(),
        status: Status::Active,
        parent: None,
        children: Vec::new(),
        shipment: None,
        last_change: None,
        commissioned_ms: cx.env.timestamp_ms,
        trail_len: 1,
        first_event: Some(*event),
    }
}

/// Appends `event` to the trail of `it` (an identifier that exists, in its state after the
/// event), counting it on the item, and stores the item: every custody operation writes each
/// item it touches through here, once. Its first event is in the item since it was [`made`].
///
/// A trail keeps room for the events that close what is open on its item: a shipment in
/// transit (its receipt or cancel), a container it is packed in (its unpacking), contents it
/// holds (their unpacking, which is on the container's trail too), a dispense (its undo). An
/// event that would leave fewer free slots than that is refused, so no item is ever left in
/// transit, packed, holding packs or dispensed for good because a trail is full. (A closing
/// event frees one obligation for the slot it takes, so it always fits; unpacking everything
/// closes the container's too. Dispensing a pack out of its case only lowers the case's.) A
/// reported item has nothing open: no event follows a report.
fn trail_push(o: &mut Overlay<'_>, it: &mut Item, event: &Hash) -> Result<(), Rejection> {
    let epc = &it.epc;
    if it.trail_len >= MAX_TRAIL {
        return Err(invalid(format!("{epc} has {MAX_TRAIL} custody events, the most one identifier keeps")));
    }
    let open = match it.status {
        Status::Active => {
            u32::from(it.shipment.is_some()) + u32::from(it.parent.is_some()) + u32::from(!it.children.is_empty())
        }
        // Out of its container (dispensing takes it out), not in transit: only the undo.
        Status::Dispensed => 1,
        // A reported item takes no further event (nothing ships, unpacks or dispenses it), so
        // nothing is open on it: its container's unpacking and its contents' never come.
        Status::Stolen | Status::Destroyed | Status::Damaged | Status::Returned => 0,
    };
    if it.trail_len + 1 + open > MAX_TRAIL {
        return Err(invalid(format!(
            "{epc} has {} of its {MAX_TRAIL} custody events, and the rest are kept for the events that close what \
             this one would leave open on it (a receipt, an unpacking, a dispense's undo)",
            it.trail_len
        )));
    }
    o.put(key::trail(epc, it.trail_len), event.0.to_vec());
    it.trail_len += 1;
    put(o, key::item(&it.epc), it);
    Ok(())
}

fn need_item(o: &Overlay<'_>, epc: &Epc) -> Result<Item, Rejection> {
    item(o, epc).ok_or_else(|| match epc {
        Epc::Sgtin { .. } => not_found(format!("unknown pack {epc} (NMVS_NC_PC_02): never commissioned")),
        Epc::Sscc(_) => not_found(format!("unknown case or pallet {epc}")),
    })
}

/// The item, possessed by the signer's institution, at rest (not in transit) and active.
fn possessed(o: &Overlay<'_>, cx: &Ctx<'_>, epc: &Epc) -> Result<Item, Rejection> {
    let it = need_item(o, epc)?;
    if it.owner != cx.institution {
        return Err(denied(format!(
            "{epc} is possessed by `{}`, not by your institution `{}`",
            it.owner, cx.institution
        )));
    }
    if let Some(s) = &it.shipment {
        return Err(invalid(format!("{epc} is in transit from `{}` to `{}`", s.from, s.to)));
    }
    if it.status != Status::Active {
        return Err(invalid(format!("pack_already_inactive: {epc} is {} (NMVS_NC_PCK_22)", it.status.name())));
    }
    Ok(it)
}

/// An item and everything inside it, item first (bounded by [`MAX_REACHED`]).
fn reach(o: &Overlay<'_>, root: Item) -> Result<Vec<Item>, Rejection> {
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        let children = out[i].children.clone();
        for c in &children {
            if out.len() >= MAX_REACHED {
                return Err(invalid(format!("the operation reaches more than {MAX_REACHED} items")));
            }
            out.push(need_item(o, c)?);
        }
        i += 1;
    }
    Ok(out)
}

/// Whether an item is on its owner's inventory: the rule the inventory index (off the tree)
/// follows, so that `do/{owner}{epc}` is present exactly when this holds.
pub fn held(it: &Item) -> bool {
    it.status == Status::Active
}

/// Keeps the inventory index equal to [`held`] items by owner: given the item's owner and
/// whether it was held before a change (`None` for a new item) and the item after it. Every
/// change of an item's owner or status goes through here.
fn reindex(o: &mut Overlay<'_>, before: Option<(String, bool)>, after: &Item) {
    let was = before.and_then(|(owner, held)| held.then_some(owner));
    let now = held(after).then_some(after.owner.as_str());
    if was.as_deref() == now {
        return;
    }
    if let Some(owner) = &was {
        o.delete(key::inventory(owner, &after.epc));
    }
    if let Some(owner) = now {
        o.put(key::inventory(owner, &after.epc), vec![1]);
    }
}

fn set_owner(o: &mut Overlay<'_>, it: &mut Item, owner: &str) {
    let before = (it.owner.clone(), held(it));
    it.owner = owner.to_string();
    reindex(o, Some(before), it);
}

fn commission(
    o: &mut Overlay<'_>,
    cx: &mut Ctx<'_>,
    event: &Hash,
    gtin: &str,
    lot_id: &str,
    expiry: &str,
    serials: &[Serial],
) -> Result<usize, Rejection> {
    let checked = cx.commissioning.as_ref().is_some_and(|(g, l, e)| g == gtin && l == lot_id && e == expiry);
    if !checked {
        commission_checks(o, cx, gtin, lot_id, expiry)?;
        cx.commissioning = Some((gtin.to_string(), lot_id.to_string(), expiry.to_string()));
    }
    for Serial(s) in serials {
        let epc = Epc::sgtin(gtin, s);
        if item(o, &epc).is_some() {
            return Err(Rejection::new(
                RejectCode::AlreadyExists,
                format!("serial {s} of GTIN {gtin} was commissioned before; serials are unique forever"),
            ));
        }
        let it = made(cx, event, epc.clone(), lot_id, expiry);
        put(o, key::item(&epc), &it);
        reindex(o, None, &it);
    }
    let packs = lot_packs(o, gtin, lot_id) + serials.len() as u64;
    o.put(key::lot_packs(gtin, lot_id), packs.to_be_bytes().to_vec());
    Ok(serials.len())
}

/// What commissioning into a lot checks once per operation: the product is the signer
/// institution's, and the lot exists with this expiry and is not recalled, or is made.
fn commission_checks(
    o: &mut Overlay<'_>,
    cx: &Ctx<'_>,
    gtin: &str,
    lot_id: &str,
    expiry: &str,
) -> Result<(), Rejection> {
    let p = product(o, gtin).ok_or_else(|| not_found(format!("unknown product {gtin}: register it first")))?;
    if p.manufacturer != cx.institution {
        return Err(denied(format!("{gtin} is `{}`'s product; only its manufacturer commissions it", p.manufacturer)));
    }
    match lot(o, gtin, lot_id) {
        Some(l) => {
            if l.expiry != expiry {
                return Err(invalid(format!("lot {lot_id} of {gtin} expires {}, not {expiry}", l.expiry)));
            }
            if l.recall.is_some() {
                return Err(invalid(format!(
                    "lot {lot_id} of {gtin} is recalled; no more packs are commissioned in it"
                )));
            }
        }
        None => {
            let mut lots = get_strings(o, &key::lots_of(gtin), "lot list", MAX_LOTS_PER_PRODUCT);
            if lots.len() >= MAX_LOTS_PER_PRODUCT {
                return Err(invalid(format!("{MAX_LOTS_PER_PRODUCT} lots, the most one product keeps")));
            }
            lots.push(lot_id.to_string());
            put_strings(o, key::lots_of(gtin), &lots);
            let l = Lot { gtin: gtin.to_string(), lot: lot_id.to_string(), expiry: expiry.to_string(), recall: None };
            put(o, key::lot(gtin, lot_id), &l);
        }
    }
    Ok(())
}

/// Levels from `it` down to its deepest pack (a pack is one level).
fn height(o: &Overlay<'_>, it: &Item, budget: &mut usize) -> Result<usize, Rejection> {
    let mut h = 0;
    for c in &it.children {
        if *budget == 0 {
            return Err(invalid(format!("the operation reaches more than {MAX_REACHED} items")));
        }
        *budget -= 1;
        h = h.max(height(o, &need_item(o, c)?, budget)?);
        if h >= MAX_NESTING {
            break;
        }
    }
    Ok(h + 1)
}

/// Levels from the top container down to `sscc` (a top-level container is one level).
fn depth(o: &Overlay<'_>, sscc: &str) -> usize {
    let mut d = 1;
    let mut cur = item(o, &Epc::Sscc(sscc.to_string())).and_then(|i| i.parent);
    while let Some(p) = cur {
        d += 1;
        if d > MAX_NESTING {
            break;
        }
        cur = item(o, &Epc::Sscc(p)).and_then(|i| i.parent);
    }
    d
}

/// Packs `children` into `parent`, making the container (with `event` first on its trail) if
/// it does not exist. Returns how many identifiers it made or touched.
fn aggregate(
    o: &mut Overlay<'_>,
    cx: &mut Ctx<'_>,
    event: &Hash,
    parent: &str,
    children: &[Epc],
) -> Result<usize, Rejection> {
    let pe = Epc::Sscc(parent.to_string());
    let existed = item(o, &pe).is_some();
    let mut container = if existed {
        possessed(o, cx, &pe)?
    } else {
        let it = made(cx, event, pe.clone(), "", "");
        reindex(o, None, &it);
        it
    };
    if container.children.len() + children.len() > MAX_CONTAINER_ITEMS {
        return Err(invalid(format!("{pe} would hold more than {MAX_CONTAINER_ITEMS} items")));
    }
    let above = depth(o, parent);
    let mut budget = MAX_REACHED;
    for c in children {
        if *c == pe {
            return Err(invalid(format!("{pe} cannot contain itself")));
        }
        let mut it = possessed(o, cx, c)?;
        if let Some(p) = &it.parent {
            return Err(invalid(format!("{c} is already in {}; unpack it first", Epc::Sscc(p.clone()))));
        }
        if above + height(o, &it, &mut budget)? > MAX_NESTING {
            return Err(invalid(format!("containers nest at most {MAX_NESTING} levels (pallet, case, pack)")));
        }
        if c.is_container() && reach(o, it.clone())?.iter().any(|x| x.epc == pe) {
            return Err(invalid(format!("{c} contains {pe}; packing it would make a cycle")));
        }
        it.parent = Some(parent.to_string());
        trail_push(o, &mut it, event)?;
        container.children.push(c.clone());
    }
    if existed {
        trail_push(o, &mut container, event)?;
    } else {
        put(o, key::item(&pe), &container);
    }
    Ok(children.len() + 1)
}

fn disaggregate(
    o: &mut Overlay<'_>,
    cx: &mut Ctx<'_>,
    event: &Hash,
    parent: &str,
    children: &[Epc],
) -> Result<usize, Rejection> {
    let pe = Epc::Sscc(parent.to_string());
    let mut container = possessed(o, cx, &pe)?;
    let out: Vec<Epc> = if children.is_empty() { container.children.clone() } else { children.to_vec() };
    for c in &out {
        let Some(pos) = container.children.iter().position(|x| x == c) else {
            return Err(invalid(format!("{c} is not in {pe}")));
        };
        container.children.remove(pos);
        let mut it = need_item(o, c)?;
        it.parent = None;
        trail_push(o, &mut it, event)?;
    }
    trail_push(o, &mut container, event)?;
    Ok(out.len() + 1)
}

fn top_level(it: &Item) -> Result<(), Rejection> {
    match &it.parent {
        Some(p) => Err(invalid(format!(
            "{} is inside {}; name the container or unpack it first",
            it.epc,
            Epc::Sscc(p.clone())
        ))),
        None => Ok(()),
    }
}

fn ship(o: &mut Overlay<'_>, cx: &mut Ctx<'_>, event: &Hash, epcs: &[Epc], to: &str) -> Result<usize, Rejection> {
    if to == cx.institution {
        return Err(invalid(format!("shipping to yourself (`{to}`): a shipment names another party")));
    }
    if identity::institution(o, to).is_none() {
        return Err(not_found(format!("no member institution `{to}` to ship to")));
    }
    let mut touched = 0;
    for epc in epcs {
        let it = possessed(o, cx, epc)?;
        top_level(&it)?;
        for mut x in reach(o, it)? {
            if x.status != Status::Active {
                return Err(invalid(format!("{} inside {epc} is {}; take it out first", x.epc, x.status.name())));
            }
            x.shipment =
                Some(Shipment { from: cx.institution.clone(), to: to.to_string(), at_ms: cx.env.timestamp_ms });
            trail_push(o, &mut x, event)?;
            touched += 1;
        }
        if touched > MAX_REACHED {
            return Err(invalid(format!("the shipment reaches more than {MAX_REACHED} items")));
        }
    }
    Ok(touched)
}

/// What an error declaration and the event it declares are compared by: the event without its
/// declaration (one of a dispensing event may arrive as an undo of the same pack), its
/// identifier lists as sets (EPCIS lists are), and a report without its free-text reason (no
/// standard EPCIS field carries it, so a declaration made from an exported event has another).
fn as_declared(op: &DrugsOp) -> DrugsOp {
    let mut out = match op {
        DrugsOp::UndoDispense { meta, epc } => DrugsOp::Dispense { meta: meta.clone(), epc: epc.clone() },
        other => other.clone(),
    };
    if let Some(m) = out.meta_mut() {
        m.error_declaration = None;
    }
    match &mut out {
        DrugsOp::Report { epcs, reason, .. } => {
            epcs.sort();
            reason.clear();
        }
        DrugsOp::Ship { epcs, .. } | DrugsOp::Receive { epcs, .. } => epcs.sort(),
        DrugsOp::Aggregate { children, .. } | DrugsOp::Disaggregate { children, .. } => children.sort(),
        DrugsOp::Commission { serials, .. } => serials.sort(),
        _ => {}
    }
    out
}

/// The last custody event on an item's trail.
fn last_event(o: &Overlay<'_>, it: &Item) -> Option<Hash> {
    it.trail_len.checked_sub(1).and_then(|i| trail_slot(o, it, i))
}

/// Cancels the shipment that shipping event `event` opened (its error declaration), if it is
/// still open and nothing happened to the shipped identifiers since: they stay with the
/// shipper, no longer in transit. Once the destination received them (or anything else
/// happened to them), the declaration is refused: custody is then corrected by shipping back.
fn cancel_shipment(
    o: &mut Overlay<'_>,
    cx: &Ctx<'_>,
    event: &Hash,
    epcs: &[Epc],
    to: &str,
    event_id: &str,
) -> Result<(), Rejection> {
    for epc in epcs {
        let it = need_item(o, epc)?;
        let open = it.shipment.as_ref().is_some_and(|s| s.from == cx.institution && s.to == to);
        if !open || last_event(o, &it) != Some(*event) {
            return Err(invalid(format!(
                "shipment_not_open: refused: {epc} changed after event `{event_id}` (it was received, or moved \
                 again), so the shipment is no longer open to cancel; its holder ships it back instead"
            )));
        }
        for mut x in reach(o, it)? {
            x.shipment = None;
            trail_push(o, &mut x, event)?;
        }
    }
    Ok(())
}

fn receive(o: &mut Overlay<'_>, cx: &mut Ctx<'_>, event: &Hash, epcs: &[Epc], from: &str) -> Result<usize, Rejection> {
    if from == cx.institution {
        return Err(invalid(format!("receiving from yourself (`{from}`)")));
    }
    if identity::institution(o, from).is_none() {
        return Err(not_found(format!("no member institution `{from}` to receive from")));
    }
    let mut touched = 0;
    for epc in epcs {
        let it = match item(o, epc) {
            None => {
                let m = manufacturer_of(o, epc);
                raise(
                    o,
                    cx,
                    AlertKind::ReceiptWithoutShipment,
                    epc,
                    m,
                    format!("received {epc} from `{from}`: never commissioned"),
                );
                continue;
            }
            Some(it) => it,
        };
        let matches =
            it.shipment.as_ref().is_some_and(|s| s.to == cx.institution && s.from == from) && it.parent.is_none();
        if !matches {
            let why = match (&it.shipment, &it.parent) {
                (_, Some(p)) if it.shipment.is_some() => {
                    format!("{epc} travels inside {}; receive the container", Epc::Sscc(p.clone()))
                }
                (Some(s), _) => {
                    format!("{epc} was shipped by `{}` to `{}`, not by `{from}` to `{}`", s.from, s.to, cx.institution)
                }
                (None, _) => format!("no shipment of {epc} is open (possessed by `{}`)", it.owner),
            };
            let m = manufacturer_of(o, epc);
            raise(o, cx, AlertKind::ReceiptWithoutShipment, epc, m, why);
            continue;
        }
        for mut x in reach(o, it)? {
            x.shipment = None;
            set_owner(o, &mut x, &cx.institution.clone());
            trail_push(o, &mut x, event)?;
            touched += 1;
        }
    }
    Ok(touched)
}

fn not_sellable_lot(o: &Overlay<'_>, cx: &Ctx<'_>, it: &Item) -> Result<(), Rejection> {
    let Epc::Sgtin { gtin, .. } = &it.epc else { return Ok(()) };
    if let Some(r) = lot(o, gtin, &it.lot).and_then(|l| l.recall) {
        return Err(invalid(format!("recalled: lot {} of {gtin} was recalled ({})", it.lot, r.reason)));
    }
    if expiry_end_ms(&it.expiry).is_none_or(|end| cx.env.timestamp_ms >= end) {
        return Err(invalid(format!("expired: {} expired (expiry {})", it.epc, it.expiry)));
    }
    Ok(())
}

fn dispense(o: &mut Overlay<'_>, cx: &mut Ctx<'_>, event: &Hash, meta: &EventMeta, epc: &Epc) -> Result<(), Rejection> {
    let mut it = match possessed(o, cx, epc) {
        Ok(it) => it,
        Err(r) => {
            if let Some(it) = item(o, epc) {
                if it.status == Status::Dispensed {
                    let c = it.last_change.as_ref();
                    return Err(invalid(format!(
                        "pack_already_inactive: {epc} was dispensed by `{}` at {} (NMVS_NC_PCK_22)",
                        c.map_or("", |c| c.institution.as_str()),
                        medledger_types::time::rfc3339_ms(c.map_or(0, |c| c.at_ms))
                    )));
                }
            }
            return Err(r);
        }
    };
    not_sellable_lot(o, cx, &it)?;
    if let Some(p) = it.parent.take() {
        let pe = Epc::Sscc(p);
        if let Some(mut c) = item(o, &pe) {
            c.children.retain(|x| x != epc);
            put(o, key::item(&pe), &c);
        }
    }
    let before = (it.owner.clone(), held(&it));
    changed(o, cx, &mut it, Status::Dispensed, meta, "dispensed");
    reindex(o, Some(before), &it);
    trail_push(o, &mut it, event)?;
    Ok(())
}

/// Records a status change of `it` by the signer's institution: the change on the item, its
/// reason, premises and event under [`key::change`].
fn changed(o: &mut Overlay<'_>, cx: &Ctx<'_>, it: &mut Item, status: Status, meta: &EventMeta, reason: &str) {
    it.status = status;
    it.last_change = Some(Change { status, institution: cx.institution.clone(), at_ms: cx.env.timestamp_ms });
    let detail = ChangeDetail {
        event: event_key(&meta.event_id),
        reason: reason.to_string(),
        premises: meta.premises().map(str::to_string),
    };
    put(o, key::change(&it.epc), &detail);
}

/// Why and where the last status change of `epc` was made, and its event.
pub fn change_detail(s: &dyn StateRead, epc: &Epc) -> Option<ChangeDetail> {
    get(s, &key::change(epc), "drug change detail")
}

/// An item's last status change as its credentialed readers see it: what, who and when (as the
/// public sees it), and why, where and by which event (which the public does not).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastChange {
    /// The status the change set (`active` after an undone dispense).
    pub status: Status,
    /// The institution whose staff made it.
    pub institution: String,
    /// The block time of the change, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The reason recorded with it: a report's reason, `dispensed`, `dispense undone`.
    pub reason: String,
    /// The premises (SGLN) where it was made, if the event named them.
    pub premises: Option<String>,
    /// The id of the custody event that made it.
    pub event_id: Option<String>,
}

/// The last status change of `epc` with its detail, if it ever changed status.
pub fn last_change(s: &dyn StateRead, epc: &Epc) -> Option<LastChange> {
    last_change_of(s, &item(s, epc)?)
}

/// [`last_change`] of an item already read.
pub fn last_change_of(s: &dyn StateRead, it: &Item) -> Option<LastChange> {
    let c = it.last_change.clone()?;
    let d = change_detail(s, &it.epc)?;
    let event_id = event_parts(s, &d.event).and_then(|(_, e)| e.op.0.meta().map(|m| m.event_id.clone()));
    Some(LastChange {
        status: c.status,
        institution: c.institution,
        at_ms: c.at_ms,
        reason: d.reason,
        premises: d.premises,
        event_id,
    })
}

fn undo(o: &mut Overlay<'_>, cx: &mut Ctx<'_>, event: &Hash, meta: &EventMeta, epc: &Epc) -> Result<(), Rejection> {
    let mut it = need_item(o, epc)?;
    let Some(c) = it.last_change.clone().filter(|_| it.status == Status::Dispensed) else {
        return Err(invalid(format!(
            "undo_status_mismatch: {epc} is {}, not dispensed (NMVS_NC_PCK_06)",
            it.status.name()
        )));
    };
    if c.institution != cx.institution {
        return Err(denied(format!(
            "undo_user_mismatch: {epc} was dispensed by `{}`; only it may undo (NMVS_NC_PCK_21)",
            c.institution
        )));
    }
    let premises = change_detail(o, epc).and_then(|d| d.premises);
    if premises.is_some() && premises.as_deref() != meta.premises() {
        return Err(denied(format!(
            "undo_premises_mismatch: {epc} was dispensed at {}; undo at the same premises",
            premises.as_deref().unwrap_or("")
        )));
    }
    if cx.env.timestamp_ms.saturating_sub(c.at_ms) > UNDO_WINDOW_MS {
        return Err(invalid(format!(
            "undo_window_passed: {epc} was dispensed at {}, more than 10 days ago (NMVS_NC_PCK_20)",
            medledger_types::time::rfc3339_ms(c.at_ms)
        )));
    }
    not_sellable_lot(o, cx, &it)?;
    let before = (it.owner.clone(), held(&it));
    changed(o, cx, &mut it, Status::Active, meta, "dispense undone");
    reindex(o, Some(before), &it);
    trail_push(o, &mut it, event)?;
    Ok(())
}

fn report(
    o: &mut Overlay<'_>,
    cx: &mut Ctx<'_>,
    event: &Hash,
    meta: &EventMeta,
    epcs: &[Epc],
    status: Reported,
    reason: &str,
) -> Result<usize, Rejection> {
    let mut touched = 0;
    for epc in epcs {
        let it = possessed(o, cx, epc)?;
        top_level(&it)?;
        for mut x in reach(o, it)? {
            if x.status != Status::Active {
                continue;
            }
            let before = (x.owner.clone(), held(&x));
            changed(o, cx, &mut x, Status::reported(status), meta, reason);
            reindex(o, Some(before), &x);
            trail_push(o, &mut x, event)?;
            touched += 1;
        }
    }
    Ok(touched)
}

#[cfg(test)]
mod tests {
    #[test]
    fn doc_table_matches_code() {
        crate::permissions::check_doc_table(include_str!("drugs.rs"), medledger_types::Domain::Drugs);
    }
}
