//! Referrals from the user's side: proposing, agreeing, the receiving institution's workflow,
//! reading a referral as proven on chain, and the patient's key sharing once it is accepted.

use crate::session::Session;
use crate::tx::new_id;
use medledger_state::care::Referral;
use medledger_state::queries;
use medledger_types::care::{CareOp, Mode};
use medledger_types::{Grantee, Hash, Operation, PublicKey};
use serde_json::Value;

/// What to refer: the patient, the treating doctor, the receiving institution, the specialty
/// and the records the receiving doctor may read.
pub struct Proposal {
    pub patient: Hash,
    pub doctor: PublicKey,
    pub to: String,
    pub specialty: String,
    pub records: Vec<Hash>,
}

impl Session {
    /// Signs and commits one care operation; a refusal is an error with the chain's reason.
    pub fn care(&self, op: CareOp) -> Result<Value, String> {
        self.transact(Operation::Care(op)).map(|(_, v)| v)
    }

    /// Proposes (doctor) or applies for (patient) a referral under a fresh id.
    pub fn propose_referral(&self, p: Proposal) -> Result<(Hash, Value), String> {
        let referral_id = new_id();
        let op = CareOp::ProposeReferral {
            referral_id,
            patient: p.patient,
            doctor: p.doctor,
            to: p.to,
            specialty: p.specialty,
            records: p.records,
        };
        Ok((referral_id, self.care(op)?))
    }

    /// Accepts a referral for the receiving institution.
    pub fn accept_referral(
        &self,
        id: Hash,
        mode: Mode,
        appointment_ms: u64,
        doctor: PublicKey,
    ) -> Result<Value, String> {
        self.care(CareOp::AcceptReferral { referral_id: id, mode, appointment_ms, doctor })
    }

    /// A referral as proven on chain (no single node is trusted).
    pub fn referral(&self, id: &Hash) -> Result<Referral, String> {
        let a = self.proven(&format!("/v1/proofs/care/referrals/{}", id.to_hex()))?;
        a.replay(|s, _| queries::referral(s, id))?
            .ok_or_else(|| format!("no referral {id} (proven absent at height {})", a.height))
    }

    /// Patient: once a referral is accepted, wraps the data keys of the records it names for
    /// the receiving doctor (the consent alone grants the right; the key lets them decrypt).
    /// Returns how many record versions were shared.
    pub fn share_referral(&self, id: &Hash) -> Result<usize, String> {
        let r = self.referral(id)?;
        let Some(doctor) = r.receiving_doctor else {
            return Err(format!(
                "referral {id} is {} and not accepted yet: no receiving doctor to share with",
                r.status
            ));
        };
        if r.status.is_terminal() {
            return Err(format!("referral {id} is {}: its consent has ended", r.status));
        }
        let read = r.consents.first().ok_or("the accepted referral carries no consent")?;
        let terms = self
            .consents(&r.patient)?
            .into_iter()
            .find(|(cid, _, active)| cid == read && *active)
            .map(|(_, t, _)| t)
            .ok_or_else(|| format!("the referral's consent {read} is not in force"))?;
        debug_assert_eq!(terms.grantee, Grantee::Person(doctor));
        self.rewrap(&terms)
    }
}

/// Sends one reading (a FHIR Observation's exact JSON text), signed by the device key, to a
/// node of the monitoring institution; returns the node's receipt (digest, NEWS2, alarms).
pub fn send_reading(
    client: &crate::http::Client,
    chain_id: &str,
    device: &medledger_types::Keypair,
    observation: &str,
) -> Result<Value, String> {
    use medledger_types::care::vitals::reading_message;
    let sig = device
        .sign(medledger_types::hash::domain::READING_SIGNATURE, &reading_message(chain_id, observation.as_bytes()));
    client.post(
        "/v1/care/readings",
        &serde_json::json!({
            "device_key": device.public().to_hex(),
            "observation": observation,
            "signature": hex::encode(sig.0),
        }),
    )
}

/// One simulated NEWS2 set: normal values (total 0, low), or a deteriorating patient (respiratory
/// rate 22, SpO₂ 95 % on air, pulse 112: total 5, medium risk).
pub fn simulated_set(deteriorating: bool) -> Vec<medledger_types::care::vitals::Vital> {
    use medledger_types::care::news2::Consciousness;
    use medledger_types::care::vitals::Vital;
    let (rr, spo2, pulse) = if deteriorating { (22.0, 95.0, 112.0) } else { (16.0, 97.0, 72.0) };
    vec![
        Vital::RespiratoryRate(rr),
        Vital::SpO2(spo2),
        Vital::SupplementalOxygen(false),
        Vital::BloodPressure { systolic: 124.0, diastolic: 78.0 },
        Vital::HeartRate(pulse),
        Vital::Consciousness(Consciousness::A),
        Vital::Temperature(36.8),
    ]
}
