//! Consent: what a patient grants (to a person or a whole institution), what others request,
//! and the patient's answers.

use crate::codec::{Canonical, DecodeError, Field, Reader, Writer};
use crate::keys::PublicKey;
use crate::Hash;
use serde::{Deserialize, Serialize};

/// Field limits of this domain (re-exported by [`crate::limits`]).
pub mod limits {
    /// Most resource types or record ids one consent scope lists.
    pub const MAX_SCOPE_ITEMS: usize = 64;
}
use crate::limits::{MAX_INSTITUTION_ID, MAX_RESOURCE_TYPE, MAX_SCOPE_ITEMS};

/// Who a consent is granted to: one person (by key) or every credential holder of an institution.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Grantee {
    Person(PublicKey),
    Institution(String),
}

/// Which of a patient's records a consent covers.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "items", rename_all = "snake_case")]
pub enum Scope {
    All,
    /// FHIR resource types, e.g. `Observation`.
    ResourceTypes(Vec<String>),
    /// Record ids.
    Records(Vec<Hash>),
}

/// Why access is granted (FHIR Consent `purpose`, simplified).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    Treatment,
    Research,
    Insurance,
    Audit,
}

impl Purpose {
    pub const ALL: [Purpose; 4] = [Purpose::Treatment, Purpose::Research, Purpose::Insurance, Purpose::Audit];
    pub fn name(self) -> &'static str {
        match self {
            Purpose::Treatment => "treatment",
            Purpose::Research => "research",
            Purpose::Insurance => "insurance",
            Purpose::Audit => "audit",
        }
    }
    /// May a holder of `role` claim this purpose? Treatment is for doctors and pharmacists,
    /// research for researchers, insurance for insurers, audit for regulators and institution
    /// admins. A purpose is a claim about who is asking: an insurer cannot claim treatment.
    pub fn fits(self, role: crate::Role) -> bool {
        use crate::Role as R;
        match self {
            Purpose::Treatment => matches!(role, R::Doctor | R::Pharmacy),
            Purpose::Research => role == R::Researcher,
            Purpose::Insurance => role == R::Insurer,
            Purpose::Audit => matches!(role, R::Regulator | R::InstitutionAdmin),
        }
    }
    /// The roles that may claim this purpose (see [`Purpose::fits`]).
    pub fn roles(self) -> Vec<crate::Role> {
        crate::Role::ALL.iter().copied().filter(|r| self.fits(*r)).collect()
    }
    pub fn parse(s: &str) -> Result<Purpose, String> {
        Purpose::ALL
            .iter()
            .copied()
            .find(|p| p.name() == s.trim().to_ascii_lowercase())
            .ok_or_else(|| format!("unknown purpose `{s}` (expected treatment, research, insurance or audit)"))
    }
}

crate::canonical_enum!(Purpose, "purpose");

/// Consent actions, as a bit set.
pub mod action {
    pub const READ: u8 = 1;
    pub const WRITE: u8 = 2;
    pub const ALL: u8 = READ | WRITE;
}

/// Terms of a consent (granted directly, or requested by a grantee and approved by the patient).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentTerms {
    pub grantee: Grantee,
    /// [`action`] bits.
    pub actions: u8,
    pub scope: Scope,
    pub purpose: Purpose,
    /// No expiry when `None`.
    pub expires_ms: Option<u64>,
    /// For an institution grantee: the roles of its staff the consent covers (FHIR Consent
    /// `provision.actor.role`); clients default to doctors. Empty for a person grantee.
    #[serde(default)]
    pub roles: Vec<crate::Role>,
}

impl ConsentTerms {
    /// The staff roles an institution consent covers when the patient names none: doctors when
    /// the purpose allows them (treatment), else every role the purpose allows.
    pub fn default_roles(purpose: Purpose) -> Vec<crate::Role> {
        if purpose.fits(crate::Role::Doctor) {
            vec![crate::Role::Doctor]
        } else {
            purpose.roles()
        }
    }
    pub fn check_limits(&self) -> Result<(), String> {
        if self.actions == 0 || self.actions & !action::ALL != 0 {
            return Err(format!(
                "actions must be a non-empty combination of read and write, got {:#04b}",
                self.actions
            ));
        }
        match &self.scope {
            Scope::All => Ok(()),
            Scope::ResourceTypes(v) => {
                if v.is_empty() || v.len() > MAX_SCOPE_ITEMS {
                    return Err(format!("scope must list 1..={MAX_SCOPE_ITEMS} resource types"));
                }
                match v.iter().find(|t| t.is_empty() || t.len() > MAX_RESOURCE_TYPE) {
                    Some(t) => Err(format!("resource type `{t}` must be 1..={MAX_RESOURCE_TYPE} bytes")),
                    None => Ok(()),
                }
            }
            Scope::Records(v) if v.is_empty() || v.len() > MAX_SCOPE_ITEMS => {
                Err(format!("scope must list 1..={MAX_SCOPE_ITEMS} records"))
            }
            Scope::Records(_) => Ok(()),
        }?;
        match (&self.grantee, self.roles.as_slice()) {
            (Grantee::Person(_), []) => Ok(()),
            (Grantee::Person(_), _) => {
                Err("a consent to a person names no roles (roles are for institution consents)".into())
            }
            (Grantee::Institution(_), []) => {
                Err("an institution consent must name the roles it covers, for example doctor".into())
            }
            (Grantee::Institution(_), roles) => {
                if roles.contains(&crate::Role::Patient) {
                    return Err("an institution consent cannot cover patients".into());
                }
                if roles.iter().enumerate().any(|(i, r)| roles[..i].contains(r)) {
                    return Err("roles must not repeat".into());
                }
                match roles.iter().find(|r| !self.purpose.fits(**r)) {
                    Some(r) => Err(format!(
                        "{} cannot act for {}: that purpose is for {}",
                        r.a(),
                        self.purpose.name(),
                        self.purpose.roles().iter().map(|r| r.name()).collect::<Vec<_>>().join(" and ")
                    )),
                    None => Ok(()),
                }
            }
        }
    }
}

impl Canonical for ConsentTerms {
    fn encode_to(&self, w: &mut Writer) {
        match &self.grantee {
            Grantee::Person(pk) => {
                w.u8(0);
                pk.encode_to(w);
            }
            Grantee::Institution(id) => {
                w.u8(1).str(id);
            }
        }
        w.u8(self.actions);
        match &self.scope {
            Scope::All => {
                w.u8(0);
            }
            Scope::ResourceTypes(v) => {
                w.u8(1).u32(v.len() as u32);
                for t in v {
                    w.str(t);
                }
            }
            Scope::Records(v) => {
                w.u8(2).u32(v.len() as u32);
                for h in v {
                    h.put(w);
                }
            }
        }
        self.purpose.encode_to(w);
        match self.expires_ms {
            Some(t) => w.u8(1).u64(t),
            None => w.u8(0),
        };
        w.u8(self.roles.len() as u8);
        for r in &self.roles {
            r.encode_to(w);
        }
    }
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let grantee = match r.u8("grantee")? {
            0 => Grantee::Person(PublicKey::decode_from(r)?),
            1 => Grantee::Institution(r.string("grantee institution", MAX_INSTITUTION_ID)?),
            t => return Err(DecodeError::UnknownTag("grantee", t)),
        };
        let actions = r.u8("actions")?;
        let scope = match r.u8("scope")? {
            0 => Scope::All,
            1 => {
                let n = r.len("scope resource types", MAX_SCOPE_ITEMS)?;
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(r.string("resource type", MAX_RESOURCE_TYPE)?);
                }
                Scope::ResourceTypes(v)
            }
            2 => {
                let n = r.len("scope records", MAX_SCOPE_ITEMS)?;
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(Hash::take(r, "record id", 0)?);
                }
                Scope::Records(v)
            }
            t => return Err(DecodeError::UnknownTag("scope", t)),
        };
        let purpose = Purpose::decode_from(r)?;
        let expires_ms = if r.bool("expiry flag")? { Some(r.u64("expiry")?) } else { None };
        let n = r.u8("role count")? as usize;
        if n > crate::Role::ALL.len() {
            return Err(DecodeError::TooLong("consent roles", n, crate::Role::ALL.len()));
        }
        let mut roles = Vec::with_capacity(n);
        for _ in 0..n {
            roles.push(crate::Role::decode_from(r)?);
        }
        Ok(ConsentTerms { grantee, actions, scope, purpose, expires_ms, roles })
    }
}

crate::canonical_field!(ConsentTerms);

crate::operations! {
    /// Consent operations.
    pub enum ConsentOp ("consent operation") {
        /// Patient: grant a consent under a client-chosen unique id.
        0 => GrantConsent { consent_id: Hash = "consent id", terms: ConsentTerms = "terms" },
        /// Patient: revoke one of their consents, effective from the next block.
        1 => RevokeConsent { consent_id: Hash = "consent id" },
        /// A would-be grantee asks a patient (by pseudonym) for access; the request id becomes
        /// the consent id if approved.
        2 => RequestAccess {
            request_id: Hash = "request id",
            patient: Hash = "patient",
            terms: ConsentTerms = "terms",
            /// Why, sealed for the patient, the requester and every regulator.
            reason: crate::SealedNote = "reason",
        },
        /// Patient: approve (creating the consent) or decline a request.
        3 => RespondAccess { request_id: Hash = "request id", approve: bool = "approve" },
    }
}

impl ConsentOp {
    /// Field limits, checked before encoding (the decoder enforces the same limits).
    pub fn check_limits(&self) -> Result<(), String> {
        match self {
            ConsentOp::GrantConsent { terms, .. } => terms.check_limits(),
            ConsentOp::RequestAccess { terms, reason, .. } => {
                terms.check_limits()?;
                reason.check_limits()
            }
            ConsentOp::RevokeConsent { .. } | ConsentOp::RespondAccess { .. } => Ok(()),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::Keypair;

    pub(crate) fn samples() -> Vec<ConsentOp> {
        let k = Keypair::from_seed(2);
        vec![
            ConsentOp::GrantConsent {
                consent_id: Hash([3; 32]),
                terms: ConsentTerms {
                    grantee: Grantee::Person(k.public()),
                    actions: action::READ,
                    scope: Scope::ResourceTypes(vec!["Observation".into(), "Condition".into()]),
                    purpose: Purpose::Treatment,
                    expires_ms: Some(99),
                    roles: vec![],
                },
            },
            ConsentOp::RevokeConsent { consent_id: Hash([3; 32]) },
            ConsentOp::RequestAccess {
                request_id: Hash([4; 32]),
                patient: Hash([5; 32]),
                terms: ConsentTerms {
                    grantee: Grantee::Institution("h1".into()),
                    actions: action::ALL,
                    scope: Scope::Records(vec![Hash([6; 32])]),
                    purpose: Purpose::Research,
                    expires_ms: None,
                    roles: vec![crate::Role::Researcher],
                },
                reason: crate::SealedNote::default(),
            },
            ConsentOp::RespondAccess { request_id: Hash([4; 32]), approve: true },
        ]
    }

    #[test]
    fn every_operation_round_trips() {
        let ops = samples();
        assert_eq!(ops.len(), ConsentOp::KINDS.len());
        for op in ops {
            assert_eq!(ConsentOp::from_bytes(&op.to_bytes()).unwrap(), op);
        }
    }

    #[test]
    fn bad_terms_are_specific_errors() {
        let mut op = samples().remove(0);
        if let ConsentOp::GrantConsent { terms, .. } = &mut op {
            terms.actions = 0;
        }
        assert!(op.check_limits().unwrap_err().contains("actions"));
        let mut bytes = samples()[1].to_bytes();
        bytes[0] = 7;
        assert_eq!(ConsentOp::from_bytes(&bytes), Err(DecodeError::UnknownTag("consent operation", 7)));
    }

    #[test]
    fn purpose_tags_follow_all() {
        for (i, p) in Purpose::ALL.iter().enumerate() {
            assert_eq!(p.to_bytes(), vec![i as u8]);
        }
        assert_eq!(Purpose::from_bytes(&[4]), Err(DecodeError::UnknownTag("purpose", 4)));
    }
}
