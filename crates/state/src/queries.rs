//! The state queries a client can have proven: the contract between the node's proof routes
//! and the light client.
//!
//! A node runs a query over a [`crate::commitment::Recording`] of its committed state to learn
//! which keys the answer depends on, and proves each. The client verifies the proof and runs the
//! same query over [`crate::commitment::Proven`], so the answer it acts on is computed from
//! verified values only, and a key the node left out is an error, never an absence.
//!
//! Time-dependent answers (is a credential or a consent in force?) are evaluated as of the next
//! block after the proven one: its time is at least the proven block's timestamp.

use crate::audit::AccessEvent;
use crate::consent::{self, Consent};
use crate::drugs::{self, TrailEntry, Verification};
use crate::identity::{self, Credential};
use crate::records::{self, RecordHead, RecordVersion};
use crate::store::StateRead;
use medledger_types::{Hash, PublicKey};

/// When a time-dependent answer is evaluated: the proven block's time and the next height.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct At {
    pub now_ms: u64,
    pub height: u64,
}

impl At {
    /// As of the block after the proven one at `height`, made at `timestamp_ms`.
    pub fn after(height: u64, timestamp_ms: u64) -> At {
        At { now_ms: timestamp_ms, height: height.saturating_add(1) }
    }
}

/// The genesis validators' keys.
pub fn validators(s: &dyn StateRead) -> Vec<PublicKey> {
    identity::validators(s)
}

/// A key's credential, and its role if the credential can be used (else why not).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityAnswer {
    pub credential: Option<Credential>,
    pub principal: Result<String, String>,
}

pub fn identity(s: &dyn StateRead, key: &PublicKey, at: At) -> IdentityAnswer {
    IdentityAnswer {
        credential: identity::credential(s, key),
        principal: identity::principal(s, key, at.now_ms, at.height)
            .map(|p| p.name().to_string())
            .map_err(|r| r.to_string()),
    }
}

/// The patient key bound to a pseudonym.
pub fn patient_key(s: &dyn StateRead, pseudonym: &Hash) -> Option<PublicKey> {
    identity::patient_key(s, pseudonym)
}

/// A patient's consents, each with whether it is in force.
pub fn consents(s: &dyn StateRead, pseudonym: &Hash, at: At) -> Vec<(Consent, bool)> {
    consent::consents_of(s, pseudonym)
        .into_iter()
        .map(|c| {
            let active = consent::is_active(&c, at.now_ms, at.height);
            (c, active)
        })
        .collect()
}

/// The regulators whose credentials are in force (readers of every sealed reason).
pub fn regulators(s: &dyn StateRead, at: At) -> Vec<PublicKey> {
    identity::regulators(s, at.now_ms, at.height)
}

/// A record's head and every anchored version.
pub fn record(s: &dyn StateRead, id: &Hash) -> Option<(RecordHead, Vec<RecordVersion>)> {
    let head = records::head(s, id)?;
    Some((head, records::history(s, id)))
}

/// A referral: its request, approvals, task status and consents.
pub fn referral(s: &dyn StateRead, id: &Hash) -> Option<crate::care::Referral> {
    crate::care::referral(s, id)
}

/// The access event logged for a signed read request.
pub fn access_event(s: &dyn StateRead, request_id: &Hash) -> Option<AccessEvent> {
    crate::audit::access_event_for_request(s, request_id)
}

/// A pack's verification (its status, as a pharmacist or a patient scanning the box sees it),
/// as of the block after the proven one: three reads (product, pack, lot).
pub fn drug_verify(
    s: &dyn StateRead,
    gtin: &str,
    serial: &str,
    lot_seen: Option<&str>,
    expiry_seen: Option<&str>,
    at: At,
) -> Verification {
    drugs::verify(s, gtin, serial, lot_seen, expiry_seen, at.now_ms)
}

/// Most entries of a pack's trail a proof covers: each entry reads up to two keys (its trail
/// slot and its event's public record), and a proof carries at most
/// [`medledger_types::state_proof::MAX_ENTRIES`] keys, with room for the verification's own.
pub const PROVEN_TRAIL_MAX: usize = 200;
const _: () = assert!(2 * PROVEN_TRAIL_MAX + 8 <= medledger_types::state_proof::MAX_ENTRIES);

/// A pack's public custody trail (steps, institutions, counterparties, times; no event ids,
/// heights or volumes), oldest first, at most [`PROVEN_TRAIL_MAX`] entries.
pub fn drug_trail(s: &dyn StateRead, gtin: &str, serial: &str) -> Vec<TrailEntry> {
    drugs::public_trail(s, &medledger_types::drugs::Epc::sgtin(gtin, serial), PROVEN_TRAIL_MAX)
}
