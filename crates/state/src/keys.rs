//! The registry of state key prefixes: every key in the state starts with exactly one of these.
//!
//! Prefixes are unique and prefix-free (no prefix starts another), which the tests check, so two
//! domains can never write each other's keys. A new domain adds its prefixes here, under its
//! own name, and builds keys with [`compose`].

/// The CA's key (fixed at genesis).
pub const CA: &[u8] = b"meta/ca";
/// The chain id (fixed at genesis).
pub const CHAIN_ID: &[u8] = b"meta/chain-id";
/// Length of the chain-wide access log.
pub const ACCESS_LOG_LEN: &[u8] = b"meta/access-log-len";
/// Keys that hold (or held) a regulator credential: the readers of every sealed reason.
pub const REGULATORS: &[u8] = b"meta/regulators";
/// The height of the block that wrote the state last (every block writes it).
pub const HEIGHT: &[u8] = b"meta/height";
/// The genesis validators: institution id and validator key of each (fixed at genesis).
pub const VALIDATORS: &[u8] = b"meta/validators";
/// The state tree's nodes, its version and its stale-node index ([`crate::commitment`]); no
/// domain key starts with 0xff.
pub const TREE: &[u8] = b"\xfftree/";

// identity
pub const NONCE: &[u8] = b"n/";
pub const CREDENTIAL: &[u8] = b"c/";
pub const INSTITUTION: &[u8] = b"i/";
pub const REGION: &[u8] = b"ir/";
pub const PATIENT: &[u8] = b"p/";
pub const ATTESTATION: &[u8] = b"a/";
// consent
pub const CONSENT: &[u8] = b"k/";
pub const PATIENT_CONSENTS: &[u8] = b"kl/";
pub const PATIENT_PAST_CONSENTS: &[u8] = b"kp/";
pub const ACCESS_REQUEST: &[u8] = b"q/";
pub const PATIENT_REQUESTS: &[u8] = b"ql/";
// records
pub const RECORD_HEAD: &[u8] = b"r/";
pub const RECORD_VERSION: &[u8] = b"rv/";
pub const PATIENT_RECORDS: &[u8] = b"rp/";
pub const ERASURE_HOLDERS: &[u8] = b"re/";
pub const RECORD_HOLDERS: &[u8] = b"rh/";
pub const ERASURE_QUEUE: &[u8] = b"rq/";
// audit
pub const ACCESS_EVENT: &[u8] = b"ra/";
pub const ACCESS_LOG: &[u8] = b"al/";
pub const ACCESS_BY_REQUEST: &[u8] = b"ar/";
// drugs
pub const DRUG_PREFIXES: &[u8] = b"meta/drug-prefixes";
pub const DRUG_ALERTS_LEN: &[u8] = b"meta/drug-alerts";
pub const DRUG_RECALLS_LEN: &[u8] = b"meta/drug-recalls";
pub const DRUG_PREFIX: &[u8] = b"dp/";
pub const DRUG_PRODUCT: &[u8] = b"dg/";
pub const DRUG_PRODUCTS_OF: &[u8] = b"dq/";
pub const DRUG_LOT: &[u8] = b"dl/";
pub const DRUG_LOTS_OF: &[u8] = b"dls/";
/// Packs commissioned in a lot: apart from the lot record, which every public verification
/// proves, and kept off the state tree ([`OFF_TREE`]), so no proof reveals a lot's size.
pub const DRUG_LOT_PACKS: &[u8] = b"dlc/";
pub const DRUG_ITEM: &[u8] = b"dk/";
pub const DRUG_CHANGE: &[u8] = b"dkc/";
pub const DRUG_EVENT: &[u8] = b"de/";
pub const DRUG_EVENT_BODY: &[u8] = b"dev/";
pub const DRUG_TRAIL: &[u8] = b"dx/";
pub const DRUG_ALERT: &[u8] = b"da/";
pub const DRUG_MAKER_ALERT: &[u8] = b"dm/";
pub const DRUG_MAKER_ALERTS_LEN: &[u8] = b"dmn/";
pub const DRUG_RECALL: &[u8] = b"dr/";
// care
pub const CARE_PAIRS: &[u8] = b"meta/referral-pairs";
pub const CARE_REFERRAL: &[u8] = b"cr/";
pub const CARE_PATIENT: &[u8] = b"crp/";
pub const CARE_INBOX: &[u8] = b"cri/";
pub const CARE_OUTBOX: &[u8] = b"cro/";
pub const CARE_DOCTOR: &[u8] = b"crd/";
pub const CARE_STATS: &[u8] = b"crs/";
pub const CARE_DEVICE: &[u8] = b"cd/";
pub const CARE_DEVICE_KEY: &[u8] = b"cdk/";
pub const CARE_PATIENT_DEVICES: &[u8] = b"cdp/";
pub const CARE_MONITORING: &[u8] = b"cm/";
pub const CARE_DOCTOR_PATIENTS: &[u8] = b"cmd/";
pub const CARE_ON_CALL: &[u8] = b"co/";
pub const CARE_ANCHOR: &[u8] = b"cn/";
pub const CARE_ALARM: &[u8] = b"cx/";
pub const CARE_PATIENT_ALARMS: &[u8] = b"cxp/";
pub const CARE_DOCTOR_ALARMS: &[u8] = b"cxd/";
pub const DRUG_INVENTORY: &[u8] = b"do/";

/// Keys kept outside the state tree: stored, layered and written by every validator in the same
/// block like any key, but not leaves (so not in the state root, and never proven). Each is
/// determined by leaves, as stated here and checked by the tests, so it adds no fact of its own:
/// either a function of leaves (a node lying about it can only misreport what proven keys
/// already say) or the preimage of a digest a leaf holds (checkable by hashing). Keeping a key
/// out is a choice of cost or privacy over a proof of its own: a leaf costs every validator a
/// tree update and its stored nodes on every write, and proving a leaf reveals its whole value.
///
/// - [`DRUG_INVENTORY`]: `(institution, identifier)` is present exactly when the item under
///   [`DRUG_ITEM`] is active and that institution is its owner.
/// - [`DRUG_EVENT_BODY`]: a custody event whole (identifiers, partners, the signer); the
///   public record under [`DRUG_EVENT`] holds its digest, so a trail can be proven to the
///   public without revealing volumes or partner details.
/// - [`DRUG_LOT_PACKS`]: the number of packs under [`DRUG_ITEM`] whose lot is that lot (a
///   commissioned pack stays an item forever). Kept out for privacy: as a leaf, its value's
///   hash would travel in any proof that ends at or passes its leaf, and a count is quickly
///   found from its hash.
pub const OFF_TREE: &[&[u8]] = &[DRUG_INVENTORY, DRUG_EVENT_BODY, DRUG_LOT_PACKS];

/// Is `key` kept outside the state tree ([`OFF_TREE`])?
pub fn is_off_tree(key: &[u8]) -> bool {
    OFF_TREE.iter().any(|p| key.starts_with(p))
}

/// One registered prefix: its bytes, the domain that owns it and what it holds.
pub struct Prefix {
    pub bytes: &'static [u8],
    pub domain: &'static str,
    pub holds: &'static str,
}

/// Every prefix, with its owner. Whole keys (`meta/…`) are listed too.
pub const REGISTRY: &[Prefix] = &[
    Prefix { bytes: CA, domain: "identity", holds: "the CA key" },
    Prefix { bytes: CHAIN_ID, domain: "identity", holds: "the chain id" },
    Prefix { bytes: ACCESS_LOG_LEN, domain: "audit", holds: "length of the chain-wide access log" },
    Prefix { bytes: REGULATORS, domain: "identity", holds: "regulator keys (readers of sealed reasons)" },
    Prefix { bytes: HEIGHT, domain: "state", holds: "height of the latest block" },
    Prefix { bytes: VALIDATORS, domain: "identity", holds: "the genesis validators" },
    Prefix { bytes: TREE, domain: "state", holds: "nodes of the state tree (the authenticated state)" },
    Prefix { bytes: NONCE, domain: "identity", holds: "next nonce of a signer" },
    Prefix { bytes: CREDENTIAL, domain: "identity", holds: "credential of a key" },
    Prefix { bytes: INSTITUTION, domain: "identity", holds: "member institution" },
    Prefix { bytes: REGION, domain: "identity", holds: "the region an institution is in" },
    Prefix { bytes: PATIENT, domain: "identity", holds: "patient key by pseudonym" },
    Prefix { bytes: ATTESTATION, domain: "identity", holds: "attested digest" },
    Prefix { bytes: CONSENT, domain: "consent", holds: "consent by id" },
    Prefix { bytes: PATIENT_CONSENTS, domain: "consent", holds: "live consent ids of a patient" },
    Prefix {
        bytes: PATIENT_PAST_CONSENTS,
        domain: "consent",
        holds: "latest revoked or expired consent ids of a patient",
    },
    Prefix { bytes: ACCESS_REQUEST, domain: "consent", holds: "access request by id" },
    Prefix { bytes: PATIENT_REQUESTS, domain: "consent", holds: "pending request ids of a patient" },
    Prefix { bytes: RECORD_HEAD, domain: "records", holds: "record head" },
    Prefix { bytes: ERASURE_HOLDERS, domain: "records", holds: "institutions yet to confirm a record's erasure" },
    Prefix { bytes: RECORD_HOLDERS, domain: "records", holds: "institutions holding a version of a record" },
    Prefix { bytes: ERASURE_QUEUE, domain: "records", holds: "records an institution has yet to erase" },
    Prefix { bytes: RECORD_VERSION, domain: "records", holds: "record version" },
    Prefix { bytes: PATIENT_RECORDS, domain: "records", holds: "record ids of a patient" },
    Prefix { bytes: ACCESS_EVENT, domain: "audit", holds: "access event of a record" },
    Prefix { bytes: ACCESS_LOG, domain: "audit", holds: "chain-wide access log entry" },
    Prefix { bytes: ACCESS_BY_REQUEST, domain: "audit", holds: "access event of a signed read request" },
    Prefix { bytes: DRUG_PREFIXES, domain: "drugs", holds: "every bound GS1 company prefix" },
    Prefix { bytes: DRUG_ALERTS_LEN, domain: "drugs", holds: "number of drug alerts" },
    Prefix { bytes: DRUG_RECALLS_LEN, domain: "drugs", holds: "number of lot recalls" },
    Prefix { bytes: DRUG_PREFIX, domain: "drugs", holds: "institution a GS1 company prefix is bound to" },
    Prefix { bytes: DRUG_PRODUCT, domain: "drugs", holds: "product master data by GTIN" },
    Prefix { bytes: DRUG_PRODUCTS_OF, domain: "drugs", holds: "GTINs a manufacturer registered" },
    Prefix { bytes: DRUG_LOT, domain: "drugs", holds: "lot (expiry, recall) by GTIN and lot" },
    Prefix {
        bytes: DRUG_LOT_PACKS,
        domain: "drugs",
        holds: "packs commissioned in a lot, by GTIN and lot (not in the state tree)",
    },
    Prefix { bytes: DRUG_LOTS_OF, domain: "drugs", holds: "lots of a GTIN" },
    Prefix { bytes: DRUG_ITEM, domain: "drugs", holds: "pack, case or pallet: possessor, status, container" },
    Prefix {
        bytes: DRUG_CHANGE,
        domain: "drugs",
        holds: "why and where an item's last status change was made, and its event",
    },
    Prefix {
        bytes: DRUG_EVENT,
        domain: "drugs",
        holds: "custody event's public record (step, institutions, time) and its body's digest",
    },
    Prefix { bytes: DRUG_EVENT_BODY, domain: "drugs", holds: "custody event whole (not in the state tree)" },
    Prefix {
        bytes: DRUG_TRAIL,
        domain: "drugs",
        holds: "custody events of an identifier after its first (kept in the item), in order",
    },
    Prefix { bytes: DRUG_ALERT, domain: "drugs", holds: "alert by sequence number" },
    Prefix { bytes: DRUG_MAKER_ALERT, domain: "drugs", holds: "alerts about a manufacturer's products, in order" },
    Prefix { bytes: DRUG_MAKER_ALERTS_LEN, domain: "drugs", holds: "number of alerts about a manufacturer's products" },
    Prefix { bytes: DRUG_RECALL, domain: "drugs", holds: "lot recall by sequence number" },
    Prefix {
        bytes: DRUG_INVENTORY,
        domain: "drugs",
        holds: "identifiers an institution possesses (not in the state tree)",
    },
    Prefix { bytes: CARE_PAIRS, domain: "care", holds: "institution pairs the referral statistics follow" },
    Prefix { bytes: CARE_REFERRAL, domain: "care", holds: "referral by id" },
    Prefix { bytes: CARE_PATIENT, domain: "care", holds: "referrals of a patient" },
    Prefix { bytes: CARE_INBOX, domain: "care", holds: "referrals that reached an institution" },
    Prefix { bytes: CARE_OUTBOX, domain: "care", holds: "referrals an institution's doctors made" },
    Prefix { bytes: CARE_DOCTOR, domain: "care", holds: "referrals naming a doctor" },
    Prefix { bytes: CARE_STATS, domain: "care", holds: "referral counts and turnaround per institution pair" },
    Prefix { bytes: CARE_DEVICE, domain: "care", holds: "monitoring device by id" },
    Prefix { bytes: CARE_DEVICE_KEY, domain: "care", holds: "the device a key signs for" },
    Prefix { bytes: CARE_PATIENT_DEVICES, domain: "care", holds: "devices of a patient" },
    Prefix { bytes: CARE_MONITORING, domain: "care", holds: "a patient's monitoring settings and responsible doctor" },
    Prefix { bytes: CARE_DOCTOR_PATIENTS, domain: "care", holds: "patients a doctor is responsible for monitoring" },
    Prefix { bytes: CARE_ON_CALL, domain: "care", holds: "an institution's on-call doctor" },
    Prefix { bytes: CARE_ANCHOR, domain: "care", holds: "batched reading anchors by device and sequence" },
    Prefix { bytes: CARE_ALARM, domain: "care", holds: "alarm by id" },
    Prefix { bytes: CARE_PATIENT_ALARMS, domain: "care", holds: "alarms of a patient" },
    Prefix { bytes: CARE_DOCTOR_ALARMS, domain: "care", holds: "alarms a doctor is responsible for or was escalated" },
];

/// A key: the prefix, then the parts.
pub fn compose(prefix: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + parts.iter().map(|p| p.len()).sum::<usize>());
    k.extend_from_slice(prefix);
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

/// The registered prefix a key starts with, if any.
pub fn prefix_of(key: &[u8]) -> Option<&'static Prefix> {
    REGISTRY.iter().find(|p| key.starts_with(p.bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_off_tree_prefix_is_registered() {
        for p in OFF_TREE {
            assert!(REGISTRY.iter().any(|r| r.bytes == *p), "{:?} is not registered", String::from_utf8_lossy(p));
            assert!(!p.starts_with(TREE), "tree nodes are not off the tree");
        }
    }

    #[test]
    fn prefixes_are_unique_and_prefix_free() {
        for (i, a) in REGISTRY.iter().enumerate() {
            for (j, b) in REGISTRY.iter().enumerate() {
                if i != j {
                    assert!(
                        !b.bytes.starts_with(a.bytes),
                        "{:?} ({}) starts {:?} ({})",
                        String::from_utf8_lossy(a.bytes),
                        a.holds,
                        String::from_utf8_lossy(b.bytes),
                        b.holds
                    );
                }
            }
            // `state` owns what the state machine itself keeps: the height and the state tree.
            assert!(
                a.domain == "state" || medledger_types::Domain::ALL.iter().any(|d| d.name() == a.domain),
                "unknown domain {}",
                a.domain
            );
        }
    }
}
