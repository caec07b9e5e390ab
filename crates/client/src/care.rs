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
/// (a code of the practice setting value set, or its display name: sent as the code) and the
/// records the receiving doctor may read.
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
        let specialty = medledger_types::care::specialty::parse(&p.specialty)?.to_string();
        let referral_id = new_id();
        let op = CareOp::ProposeReferral {
            referral_id,
            patient: p.patient,
            doctor: p.doctor,
            to: p.to,
            specialty,
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

/// Devices and alarms in their FHIR R4 shapes: a registered device is a `Device`, an alarm a
/// `Flag`. Built from what the chain holds (never a reading value); identifiers use the
/// project's `urn:medledger:` systems.
pub mod fhir {
    use medledger_state::care::monitoring::{Alarm, Device};
    use medledger_types::time::rfc3339_ms;
    use medledger_types::PublicKey;
    use serde_json::{json, Value};

    /// The `urn:medledger:` extension that carries an alarm's reading digest.
    pub const READING_DIGEST: &str = "urn:medledger:fhir:reading-digest";
    /// The extension naming the on-call doctor an alarm escalated to.
    pub const ESCALATED_TO: &str = "urn:medledger:fhir:escalated-to";

    fn key_ref(k: &PublicKey) -> Value {
        json!({ "identifier": { "system": "urn:medledger:key", "value": k.to_hex() } })
    }

    /// A registered device as a FHIR R4 `Device` (`inactive` once revoked).
    pub fn device(d: &Device) -> Value {
        json!({
            "resourceType": "Device",
            "id": d.id.to_hex(),
            "identifier": [{ "system": "urn:medledger:device", "value": d.id.to_hex() }],
            "status": if d.revoked_height.is_some() { "inactive" } else { "active" },
            "deviceName": [{ "name": d.model, "type": "model-name" }],
            "patient": { "reference": format!("Patient/{}", d.patient.to_hex()) },
            "owner": {
                "identifier": { "system": "urn:medledger:institution", "value": d.institution },
                "display": d.institution,
            },
        })
    }

    /// An alarm as a FHIR R4 `Flag`: clinical, authored by the device, `active` until a doctor
    /// acknowledges it (the period then ends at the acknowledgement).
    pub fn flag(a: &Alarm) -> Value {
        let mut period = json!({ "start": rfc3339_ms(a.raised_ms) });
        if let Some(t) = a.acknowledged_ms {
            period["end"] = rfc3339_ms(t).into();
        }
        let mut extension = vec![json!({ "url": READING_DIGEST, "valueString": a.reading.to_hex() })];
        if let Some(to) = &a.escalated_to {
            extension.push(json!({ "url": ESCALATED_TO, "valueReference": key_ref(to) }));
        }
        json!({
            "resourceType": "Flag",
            "id": a.id.to_hex(),
            "identifier": [{ "system": "urn:medledger:alarm", "value": a.id.to_hex() }],
            "extension": extension,
            "status": if a.acknowledged_by.is_some() { "inactive" } else { "active" },
            "category": [{ "coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/flag-category",
                "code": "clinical",
                "display": "Clinical",
            }] }],
            "code": { "text": a.cause },
            "subject": { "reference": format!("Patient/{}", a.patient.to_hex()) },
            "period": period,
            "author": { "reference": format!("Device/{}", a.device.to_hex()) },
        })
    }

    /// A FHIR `collection` Bundle of resources.
    pub fn bundle(resources: Vec<Value>) -> Value {
        json!({
            "resourceType": "Bundle",
            "type": "collection",
            "entry": resources.into_iter().map(|r| json!({ "resource": r })).collect::<Vec<_>>(),
        })
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use medledger_types::{Hash, Keypair};

        #[test]
        fn devices_and_alarms_are_fhir_resources_about_their_patient_without_values() {
            let patient = Hash([3; 32]);
            let d = Device {
                id: Hash([1; 32]),
                patient,
                key: Keypair::from_seed(9).public(),
                model: "wrist pulse oximeter".into(),
                institution: "hospital-b".into(),
                registered_by: Keypair::from_seed(8).public(),
                registered_height: 4,
                revoked_height: None,
                anchors: 0,
                last_anchor_ms: None,
            };
            let mut a = Alarm {
                id: Hash([2; 32]),
                patient,
                device: d.id,
                institution: "hospital-b".into(),
                reading: Hash([7; 32]),
                cause: "news2 medium".into(),
                raised_ms: 1_800_000_000_000,
                raised_height: 9,
                responsible: Keypair::from_seed(8).public(),
                escalate_at_ms: 1_800_000_060_000,
                acknowledged_by: None,
                acknowledged_ms: None,
                escalated_to: None,
                escalated_ms: None,
            };
            let b = bundle(vec![device(&d), flag(&a)]);
            let bytes = serde_json::to_vec(&b).unwrap();
            // The vault's FHIR check: known resource types, each about this patient.
            assert_eq!(medledger_vault::fhir::check(&bytes, &patient).unwrap(), "Bundle");
            assert!(medledger_vault::fhir::check(&bytes, &Hash([4; 32])).is_err(), "about another patient");
            assert_eq!(
                (b["entry"][0]["resource"]["status"].as_str(), b["entry"][1]["resource"]["status"].as_str()),
                (Some("active"), Some("active"))
            );
            assert_eq!(b["entry"][1]["resource"]["author"]["reference"], format!("Device/{}", d.id.to_hex()));
            assert_eq!(b["entry"][1]["resource"]["extension"][0]["valueString"], a.reading.to_hex());
            // Acknowledged: inactive, the period ends; revoked: inactive.
            a.acknowledged_by = Some(Keypair::from_seed(8).public());
            a.acknowledged_ms = Some(1_800_000_030_000);
            a.escalated_to = Some(Keypair::from_seed(7).public());
            let f = flag(&a);
            assert_eq!(
                (f["status"].as_str(), f["period"]["end"].as_str()),
                (Some("inactive"), Some("2027-01-15T08:00:30.000Z"))
            );
            assert_eq!(f["extension"][1]["url"], ESCALATED_TO);
            let mut revoked = d.clone();
            revoked.revoked_height = Some(12);
            assert_eq!(device(&revoked)["status"], "inactive");
        }
    }
}
