//! Patient-controlled consent (FHIR-Consent-shaped): grants, revocations, access requests and
//! the one function that decides effective permission, [`permits`].
//!
//! ## Permissions
//!
//! | principal          | grant_consent | revoke_consent | request_access | respond_access |
//! |--------------------|:---:|:---:|:---:|:---:|
//! | ca                 |     |     |     |     |
//! | patient            |  ✓  |  ✓  |     |  ✓  |
//! | doctor             |     |     |  ✓  |     |
//! | institution_admin  |     |     |     |     |
//! | regulator          |     |     |  ✓  |     |
//! | researcher         |     |     |  ✓  |     |
//! | insurer            |     |     |  ✓  |     |
//! | manufacturer       |     |     |     |     |
//! | distributor        |     |     |     |     |
//! | pharmacy           |     |     |     |     |
//! | node_service       |     |     |     |     |

use crate::identity::{credential, institution, patient_key, principal};
use crate::principal::Principal;
use crate::principal::{Rows, N, Y};
use crate::store::{Overlay, StateRead};
use crate::{read_stored, BlockEnv, Rejection};
use medledger_types::codec::{Canonical, DecodeError, Reader, Writer};
use medledger_types::{ConsentOp, ConsentTerms, Event, Grantee, Hash, PublicKey, Purpose, RejectCode, Role, Scope};
use serde::{Deserialize, Serialize};

/// Most live consents one patient may hold; keeps [`permits`] bounded. Revoked and expired
/// consents do not count: when the list is full they move to the patient's past consents.
pub const MAX_CONSENTS_PER_PATIENT: usize = 1024;
/// Most past (revoked or expired) consents listed per patient; older ones stay readable by id.
pub const MAX_PAST_CONSENTS_PER_PATIENT: usize = 1024;
/// Most unanswered access requests waiting for one patient.
pub const MAX_PENDING_REQUESTS_PER_PATIENT: usize = 256;
/// Most unanswered access requests one requester may have waiting for one patient, so one
/// requester cannot fill a patient's queue.
pub const MAX_PENDING_REQUESTS_PER_REQUESTER: usize = 8;

/// This domain's rows of the permission table (see the module docs).
pub const PERMISSIONS: Rows<4> = [
    // grc rvc req rsp
    [N, N, N, N], // ca
    [Y, Y, N, Y], // patient
    [N, N, Y, N], // doctor
    [N, N, N, N], // institution_admin
    [N, N, Y, N], // regulator
    [N, N, Y, N], // researcher
    [N, N, Y, N], // insurer
    [N, N, N, N], // manufacturer
    [N, N, N, N], // distributor
    [N, N, N, N], // pharmacy
    [N, N, N, N], // node_service
];

pub mod key {
    use crate::keys::{compose, ACCESS_REQUEST, CONSENT, PATIENT_CONSENTS, PATIENT_PAST_CONSENTS, PATIENT_REQUESTS};
    use medledger_types::Hash;
    pub fn consent(id: &Hash) -> Vec<u8> {
        compose(CONSENT, &[&id.0])
    }
    /// Ids of a patient's live consents (active, or revoked/expired and not yet moved).
    pub fn patient_consents(pseudonym: &Hash) -> Vec<u8> {
        compose(PATIENT_CONSENTS, &[&pseudonym.0])
    }
    /// Ids of a patient's latest past consents, oldest first.
    pub fn past_consents(pseudonym: &Hash) -> Vec<u8> {
        compose(PATIENT_PAST_CONSENTS, &[&pseudonym.0])
    }
    pub fn request(id: &Hash) -> Vec<u8> {
        compose(ACCESS_REQUEST, &[&id.0])
    }
    /// Ids of the requests waiting for a patient's answer.
    pub fn pending_requests(pseudonym: &Hash) -> Vec<u8> {
        compose(PATIENT_REQUESTS, &[&pseudonym.0])
    }
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consent {
    pub id: Hash,
    /// The patient's pseudonym.
    pub patient: Hash,
    pub terms: ConsentTerms,
    pub granted_at_height: u64,
    /// Height of the block that revoked it; denies from the next block on.
    pub revoked_at_height: Option<u64>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    Pending,
    Approved,
    Declined,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRequest {
    pub id: Hash,
    pub requester: PublicKey,
    pub patient: Hash,
    pub terms: ConsentTerms,
    /// Why, sealed for the patient, the requester and the regulators.
    pub reason: medledger_types::SealedNote,
    pub requested_at_height: u64,
    pub status: RequestStatus,
}

impl Canonical for Consent {
    fn encode_to(&self, w: &mut Writer) {
        w.fixed(&self.id.0).fixed(&self.patient.0);
        self.terms.encode_to(w);
        w.u64(self.granted_at_height);
        match self.revoked_at_height {
            Some(h) => w.u8(1).u64(h),
            None => w.u8(0),
        };
    }
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Consent {
            id: Hash(r.array("consent id")?),
            patient: Hash(r.array("patient")?),
            terms: ConsentTerms::decode_from(r)?,
            granted_at_height: r.u64("granted at")?,
            revoked_at_height: if r.bool("revoked flag")? { Some(r.u64("revoked at")?) } else { None },
        })
    }
}

impl Canonical for AccessRequest {
    fn encode_to(&self, w: &mut Writer) {
        w.fixed(&self.id.0);
        self.requester.encode_to(w);
        w.fixed(&self.patient.0);
        self.terms.encode_to(w);
        self.reason.encode_to(w);
        w.u64(self.requested_at_height);
        w.u8(match self.status {
            RequestStatus::Pending => 0,
            RequestStatus::Approved => 1,
            RequestStatus::Declined => 2,
        });
    }
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(AccessRequest {
            id: Hash(r.array("request id")?),
            requester: PublicKey::decode_from(r)?,
            patient: Hash(r.array("patient")?),
            terms: ConsentTerms::decode_from(r)?,
            reason: medledger_types::SealedNote::decode_from(r)?,
            requested_at_height: r.u64("requested at")?,
            status: match r.u8("status")? {
                0 => RequestStatus::Pending,
                1 => RequestStatus::Approved,
                2 => RequestStatus::Declined,
                t => return Err(DecodeError::UnknownTag("request status", t)),
            },
        })
    }
}

fn decode_ids(s: &dyn StateRead, bytes: &[u8]) -> Vec<Hash> {
    crate::decode_ids(s, bytes, "consent list", MAX_CONSENTS_PER_PATIENT)
}

pub fn consent(state: &dyn StateRead, id: &Hash) -> Option<Consent> {
    read_stored(state, &key::consent(id), "consent")
}

pub fn request(state: &dyn StateRead, id: &Hash) -> Option<AccessRequest> {
    read_stored(state, &key::request(id), "access request")
}

/// A patient's consents: the latest past ones (revoked or expired), then the live ones.
pub fn consents_of(state: &dyn StateRead, patient: &Hash) -> Vec<Consent> {
    let past = state
        .get(&key::past_consents(patient))
        .map(|b| crate::decode_ids(state, &b, "past consent list", MAX_PAST_CONSENTS_PER_PATIENT))
        .unwrap_or_default();
    past.iter().filter_map(|id| consent(state, id)).chain(active_consents(state, patient)).collect()
}

/// A patient's live consents, oldest first: at most [`MAX_CONSENTS_PER_PATIENT`], the only
/// ones [`permits`] examines.
pub fn active_consents(state: &dyn StateRead, patient: &Hash) -> Vec<Consent> {
    let ids = state.get(&key::patient_consents(patient)).map(|b| decode_ids(state, &b)).unwrap_or_default();
    ids.iter().filter_map(|id| consent(state, id)).collect()
}

/// The access requests waiting for a patient's answer, oldest first.
pub fn pending_requests(state: &dyn StateRead, patient: &Hash) -> Vec<AccessRequest> {
    pending_ids(state, patient).iter().filter_map(|id| request(state, id)).collect()
}

fn pending_ids(state: &dyn StateRead, patient: &Hash) -> Vec<Hash> {
    state
        .get(&key::pending_requests(patient))
        .map(|b| crate::decode_ids(state, &b, "pending request list", MAX_PENDING_REQUESTS_PER_PATIENT))
        .unwrap_or_default()
}

/// Is `c` in force at (`now_ms`, `height`)?
pub fn is_active(c: &Consent, now_ms: u64, height: u64) -> bool {
    c.revoked_at_height.is_none_or(|h| h >= height) && c.terms.expires_ms.is_none_or(|e| now_ms < e)
}

/// The record a permission question is about.
#[derive(Clone, Copy, Debug)]
pub struct RecordRef<'a> {
    pub id: &'a Hash,
    pub resource_type: &'a str,
}

/// Who is asking: a key, the institution and role its credential names.
#[derive(Clone, Copy, Debug)]
pub struct Requester<'a> {
    pub key: &'a PublicKey,
    pub institution: &'a str,
    pub role: Role,
}

/// Is `who` a grantee of consent `c`: the person it names, or staff of the institution it
/// names in one of the roles it covers? Scope, purpose and activity are checked elsewhere.
pub fn names(c: &Consent, who: Requester<'_>) -> bool {
    match &c.terms.grantee {
        Grantee::Person(pk) => pk == who.key,
        Grantee::Institution(id) => id == who.institution && c.terms.roles.contains(&who.role),
    }
}

/// Does consent `c` cover `who` doing `action` on `record` for `purpose`? A consent to an
/// institution covers only its staff in the roles the consent names. Activity (expiry,
/// revocation) is checked separately.
pub fn covers(c: &Consent, who: Requester<'_>, record: RecordRef<'_>, action: u8, purpose: Purpose) -> bool {
    let grantee_ok = names(c, who);
    let scope_ok = match &c.terms.scope {
        Scope::All => true,
        Scope::ResourceTypes(v) => v.iter().any(|t| t == record.resource_type),
        Scope::Records(v) => v.contains(record.id),
    };
    grantee_ok && scope_ok && c.terms.actions & action == action && c.terms.purpose == purpose
}

/// Effective permission, computed in one place: may `requester` perform `action` on `record` of
/// `patient` for `purpose` at (`now_ms`, `height`)? Requires a valid, unexpired, unrevoked
/// credential whose role fits `purpose` ([`Purpose::fits`]: an insurer cannot claim treatment)
/// and an active consent of that patient covering the request. Returns the id of a consent that
/// grants it.
#[allow(clippy::too_many_arguments)]
pub fn permits(
    state: &dyn StateRead,
    patient: &Hash,
    requester: &PublicKey,
    record: RecordRef<'_>,
    action: u8,
    purpose: Purpose,
    now_ms: u64,
    height: u64,
) -> Result<Hash, Rejection> {
    let role = match principal(state, requester, now_ms, height)? {
        Principal::Role(r) => r,
        p => return Err(Rejection::new(RejectCode::NotPermitted, format!("the {} reads no records", p.name()))),
    };
    if !purpose.fits(role) {
        return Err(Rejection::new(
            RejectCode::NotPermitted,
            format!("{} cannot claim the purpose {}", role.a(), purpose.name()),
        ));
    }
    let inst = credential(state, requester).map(|c| c.institution).unwrap_or_default();
    let who = Requester { key: requester, institution: &inst, role };
    active_consents(state, patient)
        .into_iter()
        .find(|c| is_active(c, now_ms, height) && covers(c, who, record, action, purpose))
        .map(|c| c.id)
        .ok_or_else(|| {
            Rejection::new(
                RejectCode::NotPermitted,
                format!("no active consent covers this {} for {}", action_name(action), purpose.name()),
            )
        })
}

fn action_name(action: u8) -> &'static str {
    match action {
        medledger_types::action::READ => "read",
        medledger_types::action::WRITE => "write",
        _ => "access",
    }
}

fn invalid(msg: impl Into<String>) -> Rejection {
    Rejection::new(RejectCode::InvalidArgument, msg)
}

fn id_taken(o: &Overlay<'_>, id: &Hash) -> bool {
    consent(o, id).is_some() || request(o, id).is_some()
}

fn check_terms(o: &Overlay<'_>, env: &BlockEnv, terms: &ConsentTerms) -> Result<(), Rejection> {
    terms.check_limits().map_err(invalid)?;
    if let Grantee::Institution(id) = &terms.grantee {
        if institution(o, id).is_none() {
            return Err(Rejection::new(RejectCode::NotFound, format!("unknown institution `{id}`")));
        }
    }
    if terms.expires_ms.is_some_and(|e| e <= env.timestamp_ms) {
        return Err(invalid("consent would already be expired"));
    }
    Ok(())
}

pub(crate) fn store_consent(o: &mut Overlay<'_>, env: &BlockEnv, c: &Consent) -> Result<(), Rejection> {
    let mut ids = o.get(&key::patient_consents(&c.patient)).map(|b| decode_ids(o, &b)).unwrap_or_default();
    if ids.len() >= MAX_CONSENTS_PER_PATIENT {
        // Full: move revoked and expired consents to the past list; only active ones count.
        let (live, gone): (Vec<Hash>, Vec<Hash>) =
            ids.iter().partition(|id| consent(o, id).is_some_and(|c| is_active(&c, env.timestamp_ms, env.height)));
        if live.len() >= MAX_CONSENTS_PER_PATIENT {
            return Err(invalid(format!("a patient may hold at most {MAX_CONSENTS_PER_PATIENT} active consents")));
        }
        let mut past = o
            .get(&key::past_consents(&c.patient))
            .map(|b| crate::decode_ids(o, &b, "past consent list", MAX_PAST_CONSENTS_PER_PATIENT))
            .unwrap_or_default();
        past.extend(gone);
        let drop = past.len().saturating_sub(MAX_PAST_CONSENTS_PER_PATIENT);
        past.drain(..drop);
        o.put(key::past_consents(&c.patient), crate::encode_ids(&past));
        ids = live;
    }
    debug_assert!(ids.len() < MAX_CONSENTS_PER_PATIENT);
    ids.push(c.id);
    o.put(key::patient_consents(&c.patient), crate::encode_ids(&ids));
    o.put(key::consent(&c.id), c.to_bytes());
    Ok(())
}

fn grantee_str(g: &Grantee) -> String {
    match g {
        Grantee::Person(pk) => pk.to_hex(),
        Grantee::Institution(id) => format!("institution:{id}"),
    }
}

/// The pseudonym of a patient signer.
fn own_pseudonym(o: &Overlay<'_>, signer: &PublicKey) -> Result<Hash, Rejection> {
    credential(o, signer)
        .and_then(|c| if c.role == Role::Patient { c.pseudonym } else { None })
        .ok_or_else(|| Rejection::new(RejectCode::NotPermitted, "only a registered patient manages consents"))
}

pub(crate) fn apply(
    o: &mut Overlay<'_>,
    env: &BlockEnv,
    signer: &PublicKey,
    principal: Principal,
    op: &ConsentOp,
) -> Result<Vec<Event>, Rejection> {
    match op {
        ConsentOp::GrantConsent { consent_id, terms } => {
            let patient = own_pseudonym(o, signer)?;
            if id_taken(o, consent_id) {
                return Err(Rejection::new(RejectCode::AlreadyExists, format!("id {consent_id} is already used")));
            }
            check_terms(o, env, terms)?;
            let c = Consent {
                id: *consent_id,
                patient,
                terms: terms.clone(),
                granted_at_height: env.height,
                revoked_at_height: None,
            };
            store_consent(o, env, &c)?;
            Ok(vec![Event::new("consent_granted")
                .with("consent", consent_id)
                .with("patient", patient)
                .with("grantee", grantee_str(&terms.grantee))
                .with("purpose", terms.purpose.name())])
        }
        ConsentOp::RevokeConsent { consent_id } => {
            let patient = own_pseudonym(o, signer)?;
            let mut c = consent(o, consent_id)
                .ok_or_else(|| Rejection::new(RejectCode::NotFound, format!("no consent {consent_id}")))?;
            if c.patient != patient {
                return Err(Rejection::new(RejectCode::NotPermitted, "a patient may revoke only their own consents"));
            }
            if c.revoked_at_height.is_some() {
                return Err(Rejection::new(RejectCode::AlreadyExists, "consent is already revoked"));
            }
            c.revoked_at_height = Some(env.height);
            o.put(key::consent(consent_id), c.to_bytes());
            Ok(vec![Event::new("consent_revoked")
                .with("consent", consent_id)
                .with("effective_from_height", env.height + 1)])
        }
        ConsentOp::RequestAccess { request_id, patient, terms, reason } => {
            let Some(patient_pk) = patient_key(o, patient) else {
                return Err(Rejection::new(RejectCode::NotFound, "no patient with this pseudonym"));
            };
            // The reason is for the patient, the requester and the regulators only.
            let mut readers = crate::identity::reason_readers(o, patient_pk, env.timestamp_ms, env.height);
            readers.push(("the requester", *signer));
            crate::identity::require_readers(reason, &readers)?;
            if id_taken(o, request_id) {
                return Err(Rejection::new(RejectCode::AlreadyExists, format!("id {request_id} is already used")));
            }
            check_terms(o, env, terms)?;
            let own_inst = credential(o, signer).map(|c| c.institution).unwrap_or_default();
            let for_self = match &terms.grantee {
                Grantee::Person(pk) => pk == signer,
                Grantee::Institution(id) => *id == own_inst,
            };
            if !for_self {
                return Err(Rejection::new(
                    RejectCode::NotPermitted,
                    format!("`{}` may request access only for itself or its own institution", principal.name()),
                ));
            }
            let req = AccessRequest {
                id: *request_id,
                requester: *signer,
                patient: *patient,
                terms: terms.clone(),
                reason: reason.clone(),
                requested_at_height: env.height,
                status: RequestStatus::Pending,
            };
            if let Principal::Role(role) = principal {
                if !terms.purpose.fits(role) {
                    return Err(Rejection::new(
                        RejectCode::NotPermitted,
                        format!("{} cannot request access for {}", role.a(), terms.purpose.name()),
                    ));
                }
            }
            let mut pending = pending_ids(o, patient);
            if pending.len() >= MAX_PENDING_REQUESTS_PER_PATIENT {
                return Err(invalid(format!(
                    "the patient already has {MAX_PENDING_REQUESTS_PER_PATIENT} unanswered access requests"
                )));
            }
            let mine = pending.iter().filter(|id| request(o, id).is_some_and(|r| r.requester == *signer)).count();
            if mine >= MAX_PENDING_REQUESTS_PER_REQUESTER {
                return Err(invalid(format!(
                    "you already have {MAX_PENDING_REQUESTS_PER_REQUESTER} unanswered requests to this patient"
                )));
            }
            pending.push(*request_id);
            o.put(key::pending_requests(patient), crate::encode_ids(&pending));
            o.put(key::request(request_id), req.to_bytes());
            Ok(vec![Event::new("access_requested")
                .with("request", request_id)
                .with("patient", patient)
                .with("purpose", terms.purpose.name())])
        }
        ConsentOp::RespondAccess { request_id, approve } => {
            let patient = own_pseudonym(o, signer)?;
            let mut req = request(o, request_id)
                .ok_or_else(|| Rejection::new(RejectCode::NotFound, format!("no access request {request_id}")))?;
            if req.patient != patient {
                return Err(Rejection::new(RejectCode::NotPermitted, "this request is addressed to another patient"));
            }
            if req.status != RequestStatus::Pending {
                return Err(Rejection::new(RejectCode::AlreadyExists, "request was already answered"));
            }
            if *approve {
                check_terms(o, env, &req.terms)?;
                let c = Consent {
                    id: req.id,
                    patient,
                    terms: req.terms.clone(),
                    granted_at_height: env.height,
                    revoked_at_height: None,
                };
                store_consent(o, env, &c)?;
                req.status = RequestStatus::Approved;
            } else {
                req.status = RequestStatus::Declined;
            }
            let pending: Vec<Hash> = pending_ids(o, &patient).into_iter().filter(|id| id != request_id).collect();
            o.put(key::pending_requests(&patient), crate::encode_ids(&pending));
            o.put(key::request(request_id), req.to_bytes());
            let kind = if *approve { "access_approved" } else { "access_declined" };
            Ok(vec![Event::new(kind).with("request", request_id).with("requester", req.requester)])
        }
    }
}

#[cfg(test)]
mod permission_tests {
    /// The markdown table in this module's docs must say what the code does.
    #[test]
    fn doc_table_matches_code() {
        crate::permissions::check_doc_table(include_str!("consent.rs"), medledger_types::Domain::Consent);
    }
}
