//! Who may see what: the rules every authenticated read of chain data applies, in one place.
//!
//! They extend the audit rules (`audit::authorize`) to the rest of the chain:
//!
//! | caller | sees |
//! |---|---|
//! | regulator, CA | everything |
//! | patient | their own identity, consents, requests, records and every transaction about them (their own, access events on their records, requests to them, anchors of their records) |
//! | any requester | the access events recording their own reads, and consents naming them |
//! | institution admin | its institution's staff and patients, and every transaction signed by them or by the institution |
//! | the parties to a referral (patient, treating and receiving doctor, doctors and admins of both institutions once it reached the receiver) | the referral and its transactions; an institution's doctors and admins its inbox and outbox; admins the referral statistics |
//! | other staff (doctor, researcher, insurer, pharmacy, …) | their own transactions and requests; a patient's consents, record index and records while they hold an active consent from that patient (person or institution-and-role); records their own institution holds; the staff directory; doctors also patients' keys (to wrap data keys) and the head of a record whose id they know (a break-glass reader checks its hash) |
//!
//! Blocks' headers and certificates are visible to every credential holder; a block's receipts
//! only for the transactions the caller may see. Node status, liveness and the API document are
//! public.

use crate::error::ServiceError;
use medledger_state::care::monitoring::{self, Monitoring};
use medledger_state::consent::{active_consents, is_active, names, Requester};
use medledger_state::store::StateRead;
use medledger_state::{identity, records, Principal};
use medledger_types::{AuditOp, ConsentOp, IdentityOp, RecordsOp};
use medledger_types::{Grantee, Hash, Operation, PublicKey, Role, Tx};

/// An authenticated caller: its key, what it is, and where it belongs.
#[derive(Clone, Debug)]
pub struct Caller {
    pub key: PublicKey,
    pub principal: Principal,
    /// The institution its credential names (none for the CA).
    pub institution: Option<String>,
    /// A patient's own pseudonym.
    pub pseudonym: Option<Hash>,
    /// Milliseconds and next height the rules are applied at.
    pub now_ms: u64,
    pub height: u64,
}

impl Caller {
    /// The caller behind `key`: refused unless it holds a valid credential or is the CA.
    pub fn of(state: &dyn StateRead, key: &PublicKey, now_ms: u64, height: u64) -> Result<Caller, ServiceError> {
        let principal =
            identity::principal(state, key, now_ms, height).map_err(|r| ServiceError::new(r.code.code(), r.reason))?;
        let cred = identity::credential(state, key);
        Ok(Caller {
            key: *key,
            principal,
            institution: cred.as_ref().map(|c| c.institution.clone()),
            pseudonym: cred.and_then(|c| c.pseudonym),
            now_ms,
            height,
        })
    }

    fn role(&self) -> Option<Role> {
        match self.principal {
            Principal::Role(r) => Some(r),
            Principal::Ca => None,
        }
    }

    /// Regulators and the CA see everything.
    pub fn sees_everything(&self) -> bool {
        matches!(self.principal, Principal::Ca | Principal::Role(Role::Regulator))
    }

    fn is(&self, role: Role) -> bool {
        self.role() == Some(role)
    }

    /// The caller is this patient.
    pub fn is_patient(&self, patient: &Hash) -> bool {
        self.pseudonym.as_ref() == Some(patient)
    }

    /// The caller holds an active consent from `patient` (to itself, or to its institution for
    /// its role).
    pub fn holds_consent(&self, state: &dyn StateRead, patient: &Hash) -> bool {
        let (Some(role), Some(inst)) = (self.role(), self.institution.as_deref()) else { return false };
        let who = Requester { key: &self.key, institution: inst, role };
        active_consents(state, patient).iter().any(|c| is_active(c, self.now_ms, self.height) && names(c, who))
    }

    /// An institution admin of the institution `subject`'s credential names.
    fn administers(&self, state: &dyn StateRead, subject: &PublicKey) -> bool {
        self.is(Role::InstitutionAdmin)
            && identity::credential(state, subject).is_some_and(|c| Some(&c.institution) == self.institution.as_ref())
    }

    /// A patient's consents, record index and pending requests (requests are then narrowed to
    /// the caller's own unless this is true for reasons other than a consent: see
    /// [`Caller::sees_all_requests_of`]).
    pub fn may_see_patient(&self, state: &dyn StateRead, patient: &Hash) -> bool {
        self.sees_everything()
            || self.is_patient(patient)
            || self.holds_consent(state, patient)
            || identity::patient_key(state, patient).is_some_and(|k| self.administers(state, &k))
    }

    /// Every pending request to `patient`, not only the caller's own.
    pub fn sees_all_requests_of(&self, state: &dyn StateRead, patient: &Hash) -> bool {
        self.sees_everything()
            || self.is_patient(patient)
            || identity::patient_key(state, patient).is_some_and(|k| self.administers(state, &k))
    }

    /// A patient's key by pseudonym: for the patient, everyone who may see the patient, and
    /// staff (doctors wrap data keys for patients when they write; requesters seal their
    /// reasons for them). Not for other patients.
    pub fn may_see_patient_key(&self, state: &dyn StateRead, patient: &Hash) -> bool {
        // Staff who know a pseudonym may need the key: doctors wrap data keys for the patient,
        // and anyone asking for access seals the reason for them. Other patients may not.
        (self.role().is_some() && !self.is(Role::Patient)) || self.may_see_patient(state, patient)
    }

    /// An institution's staff directory: every staff credential holder (staff credentials are a
    /// directory), regulators and the CA; not patients.
    pub fn may_list_staff(&self) -> bool {
        self.sees_everything() || self.role().is_some_and(|r| r != Role::Patient)
    }

    /// A key's identity (credential, next nonce): its owner, regulators and the CA, its
    /// institution's admin; staff credentials are a directory every credential holder may read,
    /// patients' are not.
    pub fn may_see_identity(&self, state: &dyn StateRead, subject: &PublicKey) -> bool {
        if self.sees_everything() || self.key == *subject || self.administers(state, subject) {
            return true;
        }
        match identity::credential(state, subject) {
            Some(c) => c.role != Role::Patient,
            // Keys without a credential: only the owner (above) learns even that.
            None => false,
        }
    }

    /// A record's head and versions (ids, hashes, holders; no content): whoever may see its
    /// patient, staff of an institution that anchored any of its versions (one read: the
    /// holders list anchoring keeps), and doctors who know its id (a break-glass reader checks
    /// the content against these hashes).
    /// Listing a patient's records is not open to them.
    pub fn may_see_record(&self, state: &dyn StateRead, id: &Hash) -> bool {
        let Some(head) = records::head(state, id) else { return self.sees_everything() || self.is(Role::Doctor) };
        if self.is(Role::Doctor) || self.may_see_patient(state, &head.patient) {
            return true;
        }
        // Staff of an institution that anchored any of its versions (an amendment may be held
        // elsewhere). A patient registered there is not staff.
        if self.is(Role::Patient) {
            return false;
        }
        let Some(inst) = self.institution.as_deref() else { return false };
        records::holders(state, id).iter().any(|h| h == inst)
    }

    /// One access event: the requester it records, the record's patient, the admin of the
    /// institution that recorded it, regulators and the CA (the rules `/v1/audit` applies).
    pub fn may_see_access_event(&self, state: &dyn StateRead, e: &medledger_state::audit::AccessEvent) -> bool {
        self.sees_everything()
            || self.key == e.requester
            || records::head(state, &e.record_id).is_some_and(|h| self.is_patient(&h.patient))
            || (self.is(Role::InstitutionAdmin) && self.institution.as_deref() == Some(e.institution.as_str()))
    }

    /// Drug alerts: a regulator (and the CA) sees all of them, a manufacturer those about its
    /// own products (`Some(Some(institution))`), anyone else none (`None`).
    pub fn drug_alert_scope(&self) -> Option<Option<String>> {
        if self.sees_everything() {
            return Some(None);
        }
        if self.is(Role::Manufacturer) {
            return self.institution.clone().map(Some);
        }
        None
    }

    /// How many packs the lots of `manufacturer`'s products hold (production volume): that
    /// institution's manufacturing staff and admins, and regulators.
    pub fn may_see_lot_sizes_of(&self, manufacturer: &str) -> bool {
        self.sees_everything()
            || (self.institution.as_deref() == Some(manufacturer)
                && (self.is(Role::Manufacturer) || self.is(Role::InstitutionAdmin)))
    }

    /// The details of custody events: their ids, heights, read points and business locations
    /// (premises), and why and where a pack's status last changed (a report's free-text
    /// reason): staff in a supply role (who handle packs), and regulators. Patients,
    /// researchers and insurers see the trail the public sees.
    pub fn may_see_drug_event_details(&self) -> bool {
        self.sees_everything()
            || [Role::Manufacturer, Role::Distributor, Role::Pharmacy, Role::Doctor].iter().any(|r| self.is(*r))
    }

    /// An institution's drug inventory: its own staff in a supply role, and regulators.
    pub fn may_see_inventory_of(&self, institution: &str) -> bool {
        self.sees_everything()
            || (self.institution.as_deref() == Some(institution)
                && [Role::Manufacturer, Role::Distributor, Role::Pharmacy, Role::Doctor, Role::InstitutionAdmin]
                    .iter()
                    .any(|r| self.is(*r)))
    }

    /// A transaction: its signer, regulators and the CA, the admin of the signer's
    /// institution, the patient it is about and the person a consent in it names. A batch of
    /// access events is about many patients and requesters, so only the first three see it;
    /// each patient and requester sees their own events through `/v1/access-events/{id}` and
    /// `/v1/audit`.
    pub fn may_see_tx(&self, state: &dyn StateRead, tx: &Tx) -> bool {
        let signer = tx.body().signer;
        if self.sees_everything() || self.key == signer || self.administers(state, &signer) {
            return true;
        }
        if let Some(p) = patient_of(state, &tx.body().op) {
            if self.is_patient(&p) {
                return true;
            }
        }
        match &tx.body().op {
            Operation::Consent(ConsentOp::GrantConsent { terms, .. }) => terms.grantee == Grantee::Person(self.key),
            Operation::Care(op) => op
                .referral_id()
                .and_then(|id| medledger_state::care::referral(state, id))
                .is_some_and(|r| self.may_see_referral(&r)),
            _ => false,
        }
    }

    /// A referral: its patient, its treating and receiving doctors, the doctors and admins of
    /// the referring institution and (once both sides agreed) of the receiving one, regulators
    /// and the CA.
    pub fn may_see_referral(&self, r: &medledger_state::care::Referral) -> bool {
        let staff_of = |inst: &str| {
            self.institution.as_deref() == Some(inst) && (self.is(Role::Doctor) || self.is(Role::InstitutionAdmin))
        };
        self.sees_everything()
            || self.is_patient(&r.patient)
            || self.key == r.treating_doctor
            || r.receiving_doctor == Some(self.key)
            || staff_of(&r.from)
            || (r.ready() && staff_of(&r.to))
    }

    /// The referral lists of an institution (inbox, outbox): its doctors and admins, and
    /// regulators.
    pub fn may_see_referrals_of(&self, institution: &str) -> bool {
        self.sees_everything()
            || (self.institution.as_deref() == Some(institution)
                && (self.is(Role::Doctor) || self.is(Role::InstitutionAdmin)))
    }

    /// A patient's devices, monitoring settings and alarms: the patient, doctors and admins of
    /// the patient's institution (which monitors them), holders of an active consent from the
    /// patient, regulators and the CA.
    pub fn may_see_monitoring_of(&self, state: &dyn StateRead, patient: &Hash) -> bool {
        let inst =
            identity::patient_key(state, patient).and_then(|k| identity::credential(state, &k)).map(|c| c.institution);
        self.sees_everything()
            || self.is_patient(patient)
            || ((self.is(Role::Doctor) || self.is(Role::InstitutionAdmin))
                && inst.is_some()
                && self.institution == inst)
            || self.holds_consent(state, patient)
    }

    /// The alarms a doctor is responsible for or was escalated: that doctor, admins of the
    /// doctor's institution, regulators and the CA.
    pub fn may_see_alarms_of(&self, state: &dyn StateRead, doctor: &PublicKey) -> bool {
        self.sees_everything() || self.key == *doctor || self.administers(state, doctor)
    }

    /// A patient's live readings (values): the patient, the doctor responsible for the
    /// monitoring and the monitoring institution's on-call doctor. Nobody else, regulators
    /// included: the chain holds only digests and alarm causes for them.
    pub fn may_read_readings_of(&self, state: &dyn StateRead, m: &Monitoring) -> bool {
        self.is_patient(&m.patient)
            || (self.is(Role::Doctor)
                && (self.key == m.responsible
                    || monitoring::on_call(state, &m.institution).is_some_and(|d| d == self.key)))
    }

    /// Referral statistics (institution pairs only, no patient): regulators, the CA and
    /// institution admins.
    pub fn may_see_referral_stats(&self) -> bool {
        self.sees_everything() || self.is(Role::InstitutionAdmin)
    }
}

/// The patient a transaction is about, if any.
pub fn patient_of(state: &dyn StateRead, op: &Operation) -> Option<Hash> {
    let of_record = |id: &Hash| records::head(state, id).map(|h| h.patient);
    match op {
        Operation::Identity(op) => match op {
            IdentityOp::RegisterPatient { pseudonym, .. } | IdentityOp::RotatePatientKey { pseudonym, .. } => {
                Some(*pseudonym)
            }
            IdentityOp::AddInstitution { .. }
            | IdentityOp::IssueCredential { .. }
            | IdentityOp::RevokeCredential { .. }
            | IdentityOp::Attest { .. }
            | IdentityOp::SetRegion { .. } => None,
        },
        Operation::Consent(op) => match op {
            ConsentOp::RequestAccess { patient, .. } => Some(*patient),
            // Signed by the patient: the signer rule covers them.
            ConsentOp::GrantConsent { .. } | ConsentOp::RevokeConsent { .. } | ConsentOp::RespondAccess { .. } => None,
        },
        Operation::Records(op) => match op {
            RecordsOp::AnchorRecord { patient, .. } => Some(*patient),
            RecordsOp::ReviewAmendment { record_id, .. }
            | RecordsOp::RequestErasure { record_id }
            | RecordsOp::ConfirmErasure { record_id } => of_record(record_id),
        },
        Operation::Audit(op) => match op {
            // Many patients' events in one batch: none of them alone.
            AuditOp::LogAccess { .. } => None,
        },
        // Supply-chain events name no patient.
        Operation::Drugs(_) => None,
        Operation::Care(op) => {
            use medledger_state::care::{self as sc, monitoring as m};
            use medledger_types::CareOp as C;
            match op {
                C::ProposeReferral { patient, .. }
                | C::RegisterDevice { patient, .. }
                | C::SetMonitoring { patient, .. } => Some(*patient),
                C::RevokeDevice { device_id }
                | C::AnchorReadings { device_id, .. }
                | C::RaiseAlarm { device_id, .. } => m::device(state, device_id).map(|d| d.patient),
                C::AcknowledgeAlarm { alarm_id } | C::EscalateAlarm { alarm_id } => {
                    m::alarm(state, alarm_id).map(|a| a.patient)
                }
                C::SetOnCall { .. } => None,
                op => op.referral_id().and_then(|id| sc::referral(state, id)).map(|r| r.patient),
            }
        }
    }
}
