//! Drugs: GS1-serialised medicine packs followed from commissioning to dispensing.
//!
//! The operations mirror EPCIS 2.0 events under the Core Business Vocabulary: commissioning
//! (`Commission`), packing and unpacking (`Aggregate`, `Disaggregate`), shipping and receiving
//! (`Ship`, `Receive`), dispensing and its undo (`Dispense`, `UndoDispense`), and status reports
//! (`Report`: stolen, destroyed, damaged, returned). A lot recall (`Recall`) is irreversible. A
//! signed verification (`Verify`) records an alert when it finds an anomaly. `Capture` carries
//! the events of one EPCIS document and applies them atomically ([`epcis`] converts documents).
//!
//! Identifiers are GS1 keys ([`gs1`]): a pack is an SGTIN (GTIN-14 and serial), a case or pallet
//! an SSCC, a location an SGLN.

pub mod epcis;
pub mod gs1;

use crate::codec::{Canonical, DecodeError, Field, Reader, Writer};
use serde::{Deserialize, Serialize};

/// Field limits of this domain (re-exported by [`crate::limits`]).
pub mod limits {
    /// GS1 serial (AI 21) and lot (AI 10): at most 20 characters of the AI 82 set.
    pub const MAX_SERIAL: usize = 20;
    pub const MAX_LOT: usize = 20;
    /// A GS1 company prefix has 6 to 12 digits.
    pub const MAX_COMPANY_PREFIX: usize = 12;
    pub const MAX_PRODUCT_NAME: usize = 128;
    /// Dosage form, strength.
    pub const MAX_PRODUCT_TEXT: usize = 64;
    /// National reimbursement number (AIs 710–715).
    pub const MAX_NATIONAL_CODE: usize = 20;
    /// An EPCIS `eventID` (a URI).
    pub const MAX_EVENT_ID: usize = 128;
    /// An SGLN EPC URI (read point or business location).
    pub const MAX_LOCATION: usize = 64;
    /// Serials one commissioning event may create.
    pub const MAX_COMMISSION: usize = 1024;
    /// Identifiers one event may name (packs, cases, pallets).
    pub const MAX_EVENT_EPCS: usize = 1024;
    /// Events one capture (one EPCIS document) may carry.
    pub const MAX_CAPTURE_EVENTS: usize = 256;
    /// Packs and containers an operation on containers may reach, contents included.
    pub const MAX_REACHED: usize = 1024;
    /// Identifiers one case or pallet may hold directly.
    pub const MAX_CONTAINER_ITEMS: usize = 1024;
    /// Pallet, case, pack: containers nest at most this deep.
    pub const MAX_NESTING: usize = 3;
    /// An event may not claim a time more than this far after its block's time.
    pub const MAX_FUTURE_SKEW_MS: u64 = 5 * 60 * 1000;
    /// FMD (Delegated Regulation 2016/161, art. 13): a decommissioning can be undone within
    /// ten days.
    pub const UNDO_WINDOW_MS: u64 = 10 * 24 * 60 * 60 * 1000;
}
use crate::limits::{
    MAX_CAPTURE_EVENTS, MAX_COMMISSION, MAX_COMPANY_PREFIX, MAX_EVENT_EPCS, MAX_EVENT_ID, MAX_INSTITUTION_ID,
    MAX_LOCATION, MAX_LOT, MAX_NATIONAL_CODE, MAX_PRODUCT_NAME, MAX_PRODUCT_TEXT, MAX_REASON, MAX_SERIAL,
};

/// An identifier the ledger follows: a pack (SGTIN) or a logistic unit (SSCC).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Epc {
    /// A serialised pack: GTIN-14 and serial.
    Sgtin { gtin: String, serial: String },
    /// A case or pallet: the 18-digit SSCC.
    Sscc(String),
}

impl Epc {
    pub fn sgtin(gtin: &str, serial: &str) -> Epc {
        Epc::Sgtin { gtin: gtin.to_string(), serial: serial.to_string() }
    }
    /// Checks the GS1 rules (check digits, lengths, character set).
    pub fn check(&self) -> Result<(), String> {
        match self {
            Epc::Sgtin { gtin, serial } => {
                check_gtin14(gtin)?;
                gs1::validate_serial(serial).map(|_| ()).map_err(|e| e.to_string())
            }
            Epc::Sscc(s) => gs1::validate_sscc(s).map(|_| ()).map_err(|e| e.to_string()),
        }
    }
    /// The state key part: `01` GTIN serial, or `00` SSCC (GS1 AIs, unambiguous).
    pub fn key(&self) -> Vec<u8> {
        match self {
            Epc::Sgtin { gtin, serial } => format!("01{gtin}{serial}").into_bytes(),
            Epc::Sscc(s) => format!("00{s}").into_bytes(),
        }
    }
    pub fn is_container(&self) -> bool {
        matches!(self, Epc::Sscc(_))
    }
    /// The GS1 identifier with just this key set.
    pub fn to_gs1(&self) -> gs1::Gs1Id {
        match self {
            Epc::Sgtin { gtin, serial } => {
                gs1::Gs1Id { gtin: Some(gtin.clone()), serial: Some(serial.clone()), ..Default::default() }
            }
            Epc::Sscc(s) => gs1::Gs1Id { sscc: Some(s.clone()), ..Default::default() },
        }
    }
    /// The EPC URI, given the company prefix length (from the product master data).
    pub fn epc_uri(&self, prefix_len: usize) -> Result<String, String> {
        match self.to_gs1().epc_uri(Some(prefix_len)) {
            Ok(Some(u)) => Ok(u),
            Ok(None) => Err(format!("{self} has no EPC URI")),
            Err(e) => Err(e.to_string()),
        }
    }
}

impl std::fmt::Display for Epc {
    /// The GS1 element string, human-readable form.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Epc::Sgtin { gtin, serial } => write!(f, "(01){gtin}(21){serial}"),
            Epc::Sscc(s) => write!(f, "(00){s}"),
        }
    }
}

impl Canonical for Epc {
    fn encode_to(&self, w: &mut Writer) {
        match self {
            Epc::Sgtin { gtin, serial } => w.u8(0).str(gtin).str(serial),
            Epc::Sscc(s) => w.u8(1).str(s),
        };
    }
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match r.u8("epc kind")? {
            0 => Epc::Sgtin { gtin: r.string("gtin", 14)?, serial: r.string("serial", MAX_SERIAL)? },
            1 => Epc::Sscc(r.string("sscc", 18)?),
            t => return Err(DecodeError::UnknownTag("epc kind", t)),
        })
    }
}
crate::canonical_field!(Epc);

/// A GS1 serial (AI 21), as a list item: the list's limit counts items, each serial has its own.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Serial(pub String);

impl Field for Serial {
    fn put(&self, w: &mut Writer) {
        w.str(&self.0);
    }
    fn take(r: &mut Reader<'_>, what: &'static str, _: usize) -> Result<Self, DecodeError> {
        Ok(Serial(r.string(what, MAX_SERIAL)?))
    }
}

impl From<&str> for Serial {
    fn from(s: &str) -> Self {
        Serial(s.to_string())
    }
}

/// Reads a scanned identifier in any GS1 form (element string, human-readable or raw with GS;
/// EPC URI; Digital Link) as the pack or container it names, with every field it carried.
pub fn parse_scanned(s: &str) -> Result<(Epc, gs1::Gs1Id), String> {
    let id = gs1::parse_any(s.trim()).map_err(|e| format!("identifier: {e}"))?;
    let epc = match (&id.gtin, &id.serial, &id.sscc) {
        (Some(g), Some(s), _) => Epc::sgtin(g, s),
        (_, _, Some(sscc)) => Epc::Sscc(sscc.clone()),
        (Some(_), None, _) => return Err("identifier: a GTIN without a serial (AI 21) names no pack".into()),
        _ => return Err("identifier: neither a pack (GTIN and serial) nor a case or pallet (SSCC)".into()),
    };
    Ok((epc, id))
}

/// A 14-digit GTIN with a valid check digit (the form the ledger stores).
pub fn check_gtin14(gtin: &str) -> Result<(), String> {
    if gtin.len() != 14 {
        return Err(format!("gtin `{gtin}`: {} digits, the ledger keeps GTIN-14 (pad with leading zeros)", gtin.len()));
    }
    gs1::validate_gtin(gtin).map(|_| ()).map_err(|e| e.to_string())
}

/// What a possessor may report of a pack (FMD decommissioning reasons besides dispensing).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reported {
    Stolen,
    Destroyed,
    Damaged,
    Returned,
}

impl Reported {
    pub const ALL: [Reported; 4] = [Reported::Stolen, Reported::Destroyed, Reported::Damaged, Reported::Returned];
    pub fn name(self) -> &'static str {
        match self {
            Reported::Stolen => "stolen",
            Reported::Destroyed => "destroyed",
            Reported::Damaged => "damaged",
            Reported::Returned => "returned",
        }
    }
    pub fn parse(s: &str) -> Result<Reported, String> {
        Reported::ALL
            .iter()
            .copied()
            .find(|r| r.name() == s.trim().to_ascii_lowercase())
            .ok_or_else(|| format!("unknown status `{s}` (expected stolen, destroyed, damaged or returned)"))
    }
}

crate::canonical_enum!(Reported, "reported status");

crate::canonical_struct! {
    /// An EPCIS error declaration: the event with the same `eventID` was wrong.
    pub struct ErrorDeclaration {
        declared_ms: u64 = "declaration time",
        reason: String = "error reason" max MAX_REASON,
    }
}

crate::canonical_struct! {
    /// What every custody event carries, after EPCIS: its id, when it happened, where (SGLN
    /// EPC URIs, optional) and, for a correction, its error declaration.
    pub struct EventMeta {
        event_id: String = "event id" max MAX_EVENT_ID,
        event_time_ms: u64 = "event time",
        read_point: Option<String> = "read point" max MAX_LOCATION,
        biz_location: Option<String> = "business location" max MAX_LOCATION,
        error_declaration: Option<ErrorDeclaration> = "error declaration",
    }
}

impl EventMeta {
    /// A new event at `event_time_ms` with a fresh random id.
    pub fn now(event_time_ms: u64) -> EventMeta {
        let id: [u8; 16] = rand::random();
        EventMeta {
            event_id: format!("urn:uuid:{}", uuid_v4(id)),
            event_time_ms,
            read_point: None,
            biz_location: None,
            error_declaration: None,
        }
    }
    /// Where the event happened: the business location, else the read point.
    pub fn premises(&self) -> Option<&str> {
        self.biz_location.as_deref().or(self.read_point.as_deref())
    }
    fn check(&self) -> Result<(), String> {
        if self.event_id.trim().is_empty() {
            return Err("event id must not be empty".into());
        }
        crate::limits::check_len("event id", &self.event_id, MAX_EVENT_ID)?;
        for (what, loc) in [("read point", &self.read_point), ("business location", &self.biz_location)] {
            if let Some(l) = loc {
                crate::limits::check_len(what, l, MAX_LOCATION)?;
                let id = gs1::parse_epc_uri(l).map_err(|e| format!("{what} `{l}`: {e}"))?;
                if id.gln.is_none() {
                    return Err(format!("{what} `{l}` is not an SGLN (urn:epc:id:sgln:…)"));
                }
            }
        }
        if let Some(d) = &self.error_declaration {
            crate::limits::check_len("error reason", &d.reason, MAX_REASON)?;
        }
        Ok(())
    }
}

/// Formats 16 random bytes as an RFC 9562 version-4 UUID.
fn uuid_v4(mut b: [u8; 16]) -> String {
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

crate::canonical_struct! {
    /// A product's master data.
    pub struct ProductSpec {
        gtin: String = "gtin" max 14,
        name: String = "product name" max MAX_PRODUCT_NAME,
        form: String = "dosage form" max MAX_PRODUCT_TEXT,
        strength: String = "strength" max MAX_PRODUCT_TEXT,
        pack_size: u32 = "pack size",
        /// National reimbursement number (GS1 AIs 710–715), empty when none.
        national_code: String = "national code" max MAX_NATIONAL_CODE,
    }
}

/// One event of a capture: any custody operation, never a capture itself (so decoding cannot
/// recurse).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Step(pub DrugsOp);

/// A step's schema is an object tagged by `type` (one of the custody operations); spelled out
/// here rather than derived, because the operation enum contains the step list.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Step {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};
        let names = DrugsOp::STEP_TAGS
            .iter()
            .filter_map(|t| crate::Domain::Drugs.kinds().get(*t as usize))
            .map(|k| k.name())
            .collect::<Vec<_>>();
        ObjectBuilder::new()
            .description(Some("a custody operation tagged by `type`, with that operation's fields"))
            .property("type", ObjectBuilder::new().schema_type(Type::String).enum_values(Some(names)))
            .required("type")
            .additional_properties(Some(AdditionalProperties::FreeForm(true)))
            .into()
    }
}
#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Step {}

impl Field for Step {
    fn put(&self, w: &mut Writer) {
        self.0.encode_to(w);
    }
    fn take(r: &mut Reader<'_>, what: &'static str, _: usize) -> Result<Self, DecodeError> {
        let tag = r.peek_u8(what)?;
        if !DrugsOp::STEP_TAGS.contains(&tag) {
            return Err(DecodeError::Invalid(what, format!("operation tag {tag} is not a custody event")));
        }
        Ok(Step(DrugsOp::decode_from(r)?))
    }
}

crate::operations! {
    /// Drug traceability operations.
    pub enum DrugsOp ("drugs operation") {
        /// CA or regulator: bind a GS1 company prefix to a member institution, so only it can
        /// register GTINs under the prefix.
        0 => BindPrefix {
            company_prefix: String = "company prefix" max MAX_COMPANY_PREFIX,
            institution: String = "institution id" max MAX_INSTITUTION_ID,
        },
        /// Manufacturer: register a product under one of its institution's prefixes.
        1 => RegisterProduct { product: ProductSpec = "product" },
        /// Manufacturer: commission serials of one lot (EPCIS ObjectEvent ADD, `commissioning`).
        2 => Commission {
            meta: EventMeta = "event",
            gtin: String = "gtin" max 14,
            lot: String = "lot" max MAX_LOT,
            /// YYMMDD; DD = 00 means the end of the month.
            expiry: String = "expiry" max 6,
            serials: Vec<Serial> = "serials" max MAX_COMMISSION,
        },
        /// Possessor: put packs or cases into a case or pallet (AggregationEvent ADD, `packing`).
        3 => Aggregate { meta: EventMeta = "event", parent: String = "sscc" max 18, children: Vec<Epc> = "children" max MAX_EVENT_EPCS },
        /// Possessor: take items out of a case or pallet, all of them when `children` is empty
        /// (AggregationEvent DELETE, `unpacking`).
        4 => Disaggregate { meta: EventMeta = "event", parent: String = "sscc" max 18, children: Vec<Epc> = "children" max MAX_EVENT_EPCS },
        /// Possessor: ship to another institution (ObjectEvent OBSERVE, `shipping`). Containers
        /// take their contents.
        5 => Ship { meta: EventMeta = "event", epcs: Vec<Epc> = "epcs" max MAX_EVENT_EPCS, to: String = "destination" max MAX_INSTITUTION_ID },
        /// The destination of a shipment: receive it (ObjectEvent OBSERVE, `receiving`). An item
        /// without a matching shipment raises an alert and does not move.
        6 => Receive { meta: EventMeta = "event", epcs: Vec<Epc> = "epcs" max MAX_EVENT_EPCS, from: String = "source" max MAX_INSTITUTION_ID },
        /// Pharmacy or hospital in possession: decommission a pack as dispensed
        /// (ObjectEvent OBSERVE, `dispensing`, disposition `dispensed`).
        7 => Dispense { meta: EventMeta = "event", epc: Epc = "epc" },
        /// The dispensing institution, at the same premises, within ten days: undo a dispense.
        8 => UndoDispense { meta: EventMeta = "event", epc: Epc = "epc" },
        /// Manufacturer of the product, or a regulator: recall a lot. Irreversible.
        9 => Recall { gtin: String = "gtin" max 14, lot: String = "lot" max MAX_LOT, reason: String = "reason" max MAX_REASON },
        /// Possessor: report packs stolen, destroyed, damaged or returned.
        10 => Report { meta: EventMeta = "event", epcs: Vec<Epc> = "epcs" max MAX_EVENT_EPCS, status: Reported = "status", reason: String = "reason" max MAX_REASON },
        /// Any credentialed party: verify a pack, recording an alert on chain when the answer is
        /// an anomaly (unknown serial, already dispensed, lot or expiry mismatch).
        11 => Verify {
            epc: Epc = "epc",
            /// The lot printed on the pack, if scanned.
            lot: Option<String> = "lot" max MAX_LOT,
            /// The expiry printed on the pack (YYMMDD), if scanned.
            expiry: Option<String> = "expiry" max 6,
        },
        /// The events of one EPCIS document, applied all or none.
        12 => Capture { events: Vec<Step> = "capture event" max MAX_CAPTURE_EVENTS },
        /// CA or regulator: undo a binding made in error, while no product is registered under
        /// the prefix (a prefix whose GTINs were minted stays with its manufacturer).
        13 => UnbindPrefix { company_prefix: String = "company prefix" max MAX_COMPANY_PREFIX },
    }
}

/// A GS1 company prefix: 6 to 12 digits.
fn check_company_prefix(company_prefix: &str) -> Result<(), String> {
    if !(6..=MAX_COMPANY_PREFIX).contains(&company_prefix.len()) || !company_prefix.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(format!("company prefix `{company_prefix}` must be 6 to 12 digits"));
    }
    Ok(())
}

/// The CBV 2.0 business steps of the custody events this ledger records (`bizStep`, without
/// the `cbv:BizStep-` prefix), as EPCIS documents, public trails and records name them.
pub mod step {
    pub const COMMISSIONING: &str = "commissioning";
    pub const PACKING: &str = "packing";
    pub const UNPACKING: &str = "unpacking";
    pub const SHIPPING: &str = "shipping";
    pub const RECEIVING: &str = "receiving";
    pub const DISPENSING: &str = "dispensing";
    pub const DESTROYING: &str = "destroying";
    pub const DECOMMISSIONING: &str = "decommissioning";
}

/// The event part of a custody operation (`&` or `&mut`, as the operation is borrowed).
macro_rules! custody_meta {
    ($op:expr) => {
        match $op {
            DrugsOp::Commission { meta, .. }
            | DrugsOp::Aggregate { meta, .. }
            | DrugsOp::Disaggregate { meta, .. }
            | DrugsOp::Ship { meta, .. }
            | DrugsOp::Receive { meta, .. }
            | DrugsOp::Dispense { meta, .. }
            | DrugsOp::UndoDispense { meta, .. }
            | DrugsOp::Report { meta, .. } => Some(meta),
            DrugsOp::BindPrefix { .. }
            | DrugsOp::UnbindPrefix { .. }
            | DrugsOp::RegisterProduct { .. }
            | DrugsOp::Recall { .. }
            | DrugsOp::Verify { .. }
            | DrugsOp::Capture { .. } => None,
        }
    };
}

impl DrugsOp {
    /// The work of executing this operation (see [`crate::block::MAX_BLOCK_WEIGHT`]): a pack
    /// counts 1, a case or pallet what an operation on it may reach ([`limits::MAX_REACHED`]:
    /// its contents move with it), and a custody event 1 more for its own record (the event
    /// and its body, stored under its id); a capture, the sum of its events.
    pub fn weight(&self) -> u64 {
        self.items_weight() + u64::from(self.meta().is_some())
    }

    /// [`DrugsOp::weight`] without the event's own record.
    fn items_weight(&self) -> u64 {
        let of = |v: &[Epc]| -> u64 {
            v.iter().map(|e| if e.is_container() { limits::MAX_REACHED as u64 } else { 1 }).sum::<u64>().max(1)
        };
        match self {
            DrugsOp::Commission { serials, .. } => serials.len().max(1) as u64,
            DrugsOp::Aggregate { children, .. } | DrugsOp::Disaggregate { children, .. } => {
                // Unpacking everything reaches what the container holds.
                of(children).max(if children.is_empty() { limits::MAX_CONTAINER_ITEMS as u64 } else { 1 })
            }
            DrugsOp::Ship { epcs, .. } | DrugsOp::Receive { epcs, .. } | DrugsOp::Report { epcs, .. } => of(epcs),
            DrugsOp::Capture { events } => events.iter().map(|Step(op)| op.weight()).sum::<u64>().max(1),
            DrugsOp::BindPrefix { .. }
            | DrugsOp::UnbindPrefix { .. }
            | DrugsOp::RegisterProduct { .. }
            | DrugsOp::Dispense { .. }
            | DrugsOp::UndoDispense { .. }
            | DrugsOp::Recall { .. }
            | DrugsOp::Verify { .. } => 1,
        }
    }

    /// Tags of the operations a capture may carry (custody events).
    pub const STEP_TAGS: [u8; 8] = [2, 3, 4, 5, 6, 7, 8, 10];

    /// The event part of a custody operation.
    pub fn meta(&self) -> Option<&EventMeta> {
        custody_meta!(self)
    }

    /// The event part of a custody operation, to change.
    pub fn meta_mut(&mut self) -> Option<&mut EventMeta> {
        custody_meta!(self)
    }

    /// The CBV 2.0 business step of a custody event.
    pub fn biz_step(&self) -> Option<&'static str> {
        Some(match self {
            DrugsOp::Commission { .. } => step::COMMISSIONING,
            DrugsOp::Aggregate { .. } => step::PACKING,
            DrugsOp::Disaggregate { .. } => step::UNPACKING,
            DrugsOp::Ship { .. } => step::SHIPPING,
            DrugsOp::Receive { .. } => step::RECEIVING,
            DrugsOp::Dispense { .. } => step::DISPENSING,
            DrugsOp::UndoDispense { .. } => step::DISPENSING,
            DrugsOp::Report { status: Reported::Destroyed, .. } => step::DESTROYING,
            DrugsOp::Report { .. } => step::DECOMMISSIONING,
            _ => return None,
        })
    }

    /// Field limits and GS1 rules, checked before encoding and again by the state machine.
    pub fn check_limits(&self) -> Result<(), String> {
        use crate::limits::check_len;
        if let Some(m) = self.meta() {
            m.check()?;
        }
        let epcs = |v: &[Epc]| -> Result<(), String> {
            if v.len() > MAX_EVENT_EPCS {
                return Err(format!("{} identifiers in one event, above the limit of {MAX_EVENT_EPCS}", v.len()));
            }
            v.iter().try_for_each(Epc::check)
        };
        match self {
            DrugsOp::BindPrefix { company_prefix, institution } => {
                check_company_prefix(company_prefix)?;
                if institution.trim().is_empty() {
                    return Err("institution id must not be empty".into());
                }
                check_len("institution id", institution, MAX_INSTITUTION_ID)
            }
            DrugsOp::UnbindPrefix { company_prefix } => check_company_prefix(company_prefix),
            DrugsOp::RegisterProduct { product } => {
                check_gtin14(&product.gtin)?;
                if product.name.trim().is_empty() {
                    return Err("product name must not be empty".into());
                }
                check_len("product name", &product.name, MAX_PRODUCT_NAME)?;
                check_len("dosage form", &product.form, MAX_PRODUCT_TEXT)?;
                check_len("strength", &product.strength, MAX_PRODUCT_TEXT)?;
                if product.pack_size == 0 {
                    return Err("pack size must be at least 1".into());
                }
                if !product.national_code.is_empty() {
                    check_len("national code", &product.national_code, MAX_NATIONAL_CODE)?;
                    gs1::validate_lot(&product.national_code).map_err(|e| format!("national code: {e}"))?;
                }
                Ok(())
            }
            DrugsOp::Commission { gtin, lot, expiry, serials, .. } => {
                check_gtin14(gtin)?;
                gs1::validate_lot(lot).map_err(|e| e.to_string())?;
                gs1::validate_expiry(expiry).map_err(|e| e.to_string())?;
                if serials.is_empty() {
                    return Err("commissioning needs at least one serial".into());
                }
                if serials.len() > MAX_COMMISSION {
                    return Err(format!("{} serials in one event, above the limit of {MAX_COMMISSION}", serials.len()));
                }
                serials.iter().try_for_each(|s| gs1::validate_serial(&s.0).map(|_| ()).map_err(|e| e.to_string()))
            }
            DrugsOp::Aggregate { parent, children, .. } | DrugsOp::Disaggregate { parent, children, .. } => {
                gs1::validate_sscc(parent).map_err(|e| e.to_string())?;
                if matches!(self, DrugsOp::Aggregate { .. }) && children.is_empty() {
                    return Err("packing needs at least one child".into());
                }
                epcs(children)
            }
            DrugsOp::Ship { epcs: v, to: party, .. } | DrugsOp::Receive { epcs: v, from: party, .. } => {
                if v.is_empty() {
                    return Err("the event names no identifier".into());
                }
                if party.trim().is_empty() {
                    return Err("the other party must be named".into());
                }
                check_len("institution id", party, MAX_INSTITUTION_ID)?;
                epcs(v)
            }
            DrugsOp::Dispense { epc, .. } | DrugsOp::UndoDispense { epc, .. } => {
                if epc.is_container() {
                    return Err(format!("{epc} is a case or pallet; dispensing is per pack (SGTIN)"));
                }
                epc.check()
            }
            DrugsOp::Recall { gtin, lot, reason } => {
                check_gtin14(gtin)?;
                gs1::validate_lot(lot).map_err(|e| e.to_string())?;
                if reason.trim().is_empty() {
                    return Err("a recall needs a reason".into());
                }
                check_len("reason", reason, MAX_REASON)
            }
            DrugsOp::Report { epcs: v, reason, .. } => {
                if v.is_empty() {
                    return Err("the event names no identifier".into());
                }
                if reason.trim().is_empty() {
                    return Err("a status report needs a reason".into());
                }
                check_len("reason", reason, MAX_REASON)?;
                epcs(v)
            }
            DrugsOp::Verify { epc, lot, expiry } => {
                if epc.is_container() {
                    return Err(format!("{epc} is a case or pallet; verification is per pack (SGTIN)"));
                }
                epc.check()?;
                if let Some(l) = lot {
                    gs1::validate_lot(l).map_err(|e| e.to_string())?;
                }
                if let Some(e) = expiry {
                    gs1::validate_expiry(e).map_err(|e| e.to_string())?;
                }
                Ok(())
            }
            DrugsOp::Capture { events } => {
                if events.is_empty() {
                    return Err("the document has no event".into());
                }
                if events.len() > crate::limits::MAX_CAPTURE_EVENTS {
                    return Err(format!(
                        "{} events in one capture, above the limit of {}",
                        events.len(),
                        crate::limits::MAX_CAPTURE_EVENTS
                    ));
                }
                for (i, Step(op)) in events.iter().enumerate() {
                    if op.meta().is_none() {
                        return Err(format!("event {i}: `{}` is not a custody event", op.kind().name()));
                    }
                    op.check_limits().map_err(|e| format!("event {i}: {e}"))?;
                }
                Ok(())
            }
        }
    }
}

impl DrugsOp {
    /// A well-formed operation of `kind` (`None` for another domain's kind), varied by `n`, for
    /// tests that walk the permission table: the identifiers need not exist, because the table
    /// is checked before any state.
    pub fn example(kind: crate::OpKind, n: u8, now_ms: u64) -> Option<DrugsOp> {
        use crate::OpKind as K;
        let gtin = "10614141073464".to_string();
        let pack = Epc::sgtin(&gtin, &format!("S{n}"));
        let meta = EventMeta::now(now_ms);
        Some(match kind {
            K::BindPrefix => {
                DrugsOp::BindPrefix { company_prefix: format!("06141{n:03}"), institution: "hospital-0".into() }
            }
            K::UnbindPrefix => DrugsOp::UnbindPrefix { company_prefix: format!("06141{n:03}") },
            K::RegisterProduct => DrugsOp::RegisterProduct {
                product: ProductSpec {
                    gtin,
                    name: "P".into(),
                    form: "tablet".into(),
                    strength: "1 mg".into(),
                    pack_size: 1,
                    national_code: String::new(),
                },
            },
            K::Commission => DrugsOp::Commission {
                meta,
                gtin,
                lot: "L1".into(),
                expiry: "300100".into(),
                serials: vec![Serial(format!("S{n}"))],
            },
            K::Aggregate => DrugsOp::Aggregate { meta, parent: "106141412345678908".into(), children: vec![pack] },
            K::Disaggregate => DrugsOp::Disaggregate { meta, parent: "106141412345678908".into(), children: vec![] },
            K::Ship => DrugsOp::Ship { meta, epcs: vec![pack], to: "hospital-1".into() },
            K::Receive => DrugsOp::Receive { meta, epcs: vec![pack], from: "hospital-1".into() },
            K::Dispense => DrugsOp::Dispense { meta, epc: pack },
            K::UndoDispense => DrugsOp::UndoDispense { meta, epc: pack },
            K::Recall => DrugsOp::Recall { gtin, lot: "L1".into(), reason: "r".into() },
            K::Report => DrugsOp::Report { meta, epcs: vec![pack], status: Reported::Damaged, reason: "r".into() },
            K::Verify => DrugsOp::Verify { epc: pack, lot: None, expiry: None },
            K::Capture => DrugsOp::Capture { events: vec![Step(DrugsOp::Dispense { meta, epc: pack })] },
            _ => return None,
        })
    }
}

/// YYMMDD (DD = 00: the last day of the month) to the first millisecond after that day, UTC
/// (years 20YY). A pack is expired from that instant.
pub fn expiry_end_ms(expiry: &str) -> Option<u64> {
    let n = |r: std::ops::Range<usize>| expiry.get(r).and_then(|s| s.parse::<u32>().ok());
    if expiry.len() != 6 || !expiry.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (yy, mm, dd) = (n(0..2)?, n(2..4)?, n(4..6)?);
    let year = 2000 + i64::from(yy);
    let dim = crate::time::days_in_month(year, mm)?;
    let day = if dd == 0 { dim } else { dd };
    if day > dim {
        return None;
    }
    let days = crate::time::days_from_civil(year, mm, day) + 1;
    u64::try_from(days).ok().map(|d| d * 86_400_000)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const GTIN: &str = "10614141073464";

    fn meta() -> EventMeta {
        EventMeta {
            event_id: "urn:uuid:1f0a3c1e-6a8e-4f61-9a35-3d8a7b0e2c11".into(),
            event_time_ms: 1_795_305_600_000,
            read_point: Some("urn:epc:id:sgln:0614141.00001.0".into()),
            biz_location: None,
            error_declaration: None,
        }
    }

    pub(crate) fn samples() -> Vec<DrugsOp> {
        let pack = Epc::sgtin(GTIN, "2017");
        vec![
            DrugsOp::BindPrefix { company_prefix: "0614141".into(), institution: "pharma-1".into() },
            DrugsOp::RegisterProduct {
                product: ProductSpec {
                    gtin: GTIN.into(),
                    name: "Amoxicillin 500 mg capsules".into(),
                    form: "capsule".into(),
                    strength: "500 mg".into(),
                    pack_size: 21,
                    national_code: "".into(),
                },
            },
            DrugsOp::Commission {
                meta: meta(),
                gtin: GTIN.into(),
                lot: "LOTA1".into(),
                expiry: "270600".into(),
                serials: vec!["2017".into(), "2018".into()],
            },
            DrugsOp::Aggregate { meta: meta(), parent: "106141412345678908".into(), children: vec![pack.clone()] },
            DrugsOp::Disaggregate { meta: meta(), parent: "106141412345678908".into(), children: vec![] },
            DrugsOp::Ship { meta: meta(), epcs: vec![Epc::Sscc("106141412345678908".into())], to: "dist-1".into() },
            DrugsOp::Receive {
                meta: meta(),
                epcs: vec![Epc::Sscc("106141412345678908".into())],
                from: "pharma-1".into(),
            },
            DrugsOp::Dispense { meta: meta(), epc: pack.clone() },
            DrugsOp::UndoDispense { meta: meta(), epc: pack.clone() },
            DrugsOp::Recall { gtin: GTIN.into(), lot: "LOTB1".into(), reason: "sterility".into() },
            DrugsOp::Report {
                meta: meta(),
                epcs: vec![pack.clone()],
                status: Reported::Stolen,
                reason: "break-in".into(),
            },
            DrugsOp::Verify { epc: pack.clone(), lot: Some("LOTA1".into()), expiry: None },
            DrugsOp::Capture { events: vec![Step(DrugsOp::Dispense { meta: meta(), epc: pack })] },
            DrugsOp::UnbindPrefix { company_prefix: "0614141".into() },
        ]
    }

    #[test]
    fn every_operation_round_trips_and_passes_its_limits() {
        let ops = samples();
        assert_eq!(ops.len(), DrugsOp::KINDS.len());
        for op in ops {
            op.check_limits().unwrap_or_else(|e| panic!("{}: {e}", op.kind().name()));
            assert_eq!(DrugsOp::from_bytes(&op.to_bytes()).unwrap(), op);
        }
    }

    #[test]
    fn step_tags_are_the_custody_events() {
        for op in samples() {
            assert_eq!(DrugsOp::STEP_TAGS.contains(&op.tag()), op.meta().is_some(), "{}", op.kind().name());
        }
    }

    /// A custody event weighs what it reaches and its own record; a capture, its events; the
    /// heaviest single event a shipment of two pallets: it still fits one transaction.
    #[test]
    fn an_event_weighs_its_items_and_its_own_record() {
        let weight = |op: &DrugsOp| crate::Operation::Drugs(op.clone()).weight();
        let ops = samples();
        let find = |f: fn(&DrugsOp) -> bool| ops.iter().find(|o| f(o)).unwrap();
        let (reached, unpacked) = (limits::MAX_REACHED as u64, limits::MAX_CONTAINER_ITEMS as u64);
        assert_eq!(weight(find(|o| matches!(o, DrugsOp::Commission { .. }))), 2 + 1, "two serials and the event");
        assert_eq!(weight(find(|o| matches!(o, DrugsOp::Ship { .. }))), reached + 1, "a case reaches its contents");
        assert_eq!(weight(find(|o| matches!(o, DrugsOp::Disaggregate { .. }))), unpacked + 1, "unpacking all");
        assert_eq!(weight(find(|o| matches!(o, DrugsOp::Dispense { .. }))), 2);
        assert_eq!(weight(find(|o| matches!(o, DrugsOp::Capture { .. }))), 2, "a capture adds nothing to its events");
        assert_eq!(weight(find(|o| matches!(o, DrugsOp::Aggregate { .. }))), 1 + 1, "one pack into a case");
        assert_eq!(weight(find(|o| matches!(o, DrugsOp::Receive { .. }))), reached + 1);
        assert_eq!(weight(find(|o| matches!(o, DrugsOp::UndoDispense { .. }))), 2);
        assert_eq!(weight(find(|o| matches!(o, DrugsOp::Report { .. }))), 2);
        for op in ops.iter().filter(|o| o.meta().is_none() && !matches!(o, DrugsOp::Capture { .. })) {
            assert_eq!(weight(op), 1, "{:?} is not an event", op.kind());
        }
        let sscc = |i: u64| {
            let digits = format!("10614141{i:09}");
            let check = gs1::check_digit(&digits).unwrap();
            Epc::Sscc(format!("{digits}{check}"))
        };
        let two_pallets = DrugsOp::Ship { meta: meta(), epcs: vec![sscc(1), sscc(2)], to: "dist-1".into() };
        assert_eq!(weight(&two_pallets), 2 * reached + 1);
        crate::Operation::Drugs(two_pallets).check_limits().expect("a two-pallet shipment is one transaction");
        let three = DrugsOp::Ship { meta: meta(), epcs: (1..=3).map(sscc).collect(), to: "dist-1".into() };
        let err = crate::Operation::Drugs(three).check_limits().unwrap_err();
        assert!(err.contains("split it"), "{err}");
    }

    /// A capture inside a capture is refused while decoding, before any recursion.
    #[test]
    fn nested_capture_is_refused_by_the_decoder() {
        let inner = DrugsOp::Capture { events: vec![] };
        let mut w = Writer::new();
        w.u8(12).u32(1);
        inner.encode_to(&mut w);
        let err = DrugsOp::from_bytes(&w.finish()).unwrap_err();
        assert!(matches!(err, DecodeError::Invalid("capture event", _)), "{err}");
        // Deep nesting is refused at the first level, so decoding is bounded.
        let mut deep = vec![];
        for _ in 0..10_000 {
            deep.extend_from_slice(&[12, 0, 0, 0, 1]);
        }
        assert!(DrugsOp::from_bytes(&deep).is_err());
    }

    #[test]
    fn bad_fields_name_the_field_and_the_rule() {
        let mut op = samples().remove(2);
        if let DrugsOp::Commission { gtin, .. } = &mut op {
            *gtin = "10614141073465".into();
        }
        let e = op.check_limits().unwrap_err();
        assert!(e.contains("check digit"), "{e}");
        let mut op = samples().remove(2);
        if let DrugsOp::Commission { expiry, .. } = &mut op {
            *expiry = "271301".into();
        }
        let e = op.check_limits().unwrap_err();
        assert!(e.contains("month"), "{e}");
        let mut op = samples().remove(2);
        if let DrugsOp::Commission { serials, .. } = &mut op {
            serials.push(Serial("has space".into()));
        }
        let e = op.check_limits().unwrap_err();
        assert!(e.contains("serial"), "{e}");
        let op = DrugsOp::Dispense { meta: meta(), epc: Epc::Sscc("106141412345678908".into()) };
        assert!(op.check_limits().unwrap_err().contains("per pack"));
        let mut m = meta();
        m.read_point = Some("urn:epc:id:sgtin:0614141.107346.2017".into());
        let op = DrugsOp::Dispense { meta: m, epc: Epc::sgtin(GTIN, "1") };
        assert!(op.check_limits().unwrap_err().contains("not an SGLN"));
    }

    #[test]
    fn expiry_ends_after_its_day_and_dd_00_is_the_month_end() {
        // 2027-06-30 ends at 2027-07-01T00:00Z.
        let end = expiry_end_ms("270630").unwrap();
        assert_eq!(crate::time::rfc3339_ms(end), "2027-07-01T00:00:00.000Z");
        assert_eq!(expiry_end_ms("270600"), Some(end));
        assert_eq!(crate::time::rfc3339_ms(expiry_end_ms("280200").unwrap()), "2028-03-01T00:00:00.000Z");
        assert_eq!(expiry_end_ms("271301"), None);
        assert_eq!(expiry_end_ms("270431"), None);
    }

    #[test]
    fn uuids_are_version_4() {
        let m = EventMeta::now(0);
        let u = m.event_id.trim_start_matches("urn:uuid:");
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
    }
}
