//! Remote monitoring on chain: devices registered to patients with their own keys, each
//! patient's monitoring settings (the responsible doctor, the NEWS2 SpO₂ scale, threshold
//! rules, the escalation delay), the institution's on-call doctor, batched reading anchors
//! (one per device per interval: a Merkle root of reading digests, never a value), and alarms
//! with their acknowledgement and escalation.
//!
//! The readings themselves are checked, scored and stored encrypted by the monitoring
//! institution's node; what the chain keeps lets anyone prove a reading existed unchanged and
//! audit every alarm, acknowledgement and escalation.

use super::{invalid, not_permitted};
use crate::identity::{self, credential};
use crate::principal::Principal;
use crate::store::{Overlay, StateRead};
use crate::{read_stored, BlockEnv, Rejection};
use medledger_types::care::limits::{MAX_DEVICE_MODEL, MAX_RULES, MAX_RULE_TEXT};
use medledger_types::care::{alarm, CareOp, RuleText};
use medledger_types::codec::{Canonical, DecodeError, Reader, Writer};
use medledger_types::limits::MAX_INSTITUTION_ID;
use medledger_types::{Event, Hash, PublicKey, RejectCode, Role};
use serde::{Deserialize, Serialize};

/// Most devices one patient may have registered (revoked ones included).
pub const MAX_DEVICES_PER_PATIENT: usize = 64;
/// Most alarms one list keeps (a patient's, a doctor's); older ones stay readable by id.
pub const MAX_ALARMS_LISTED: usize = 1024;
/// Most patients one doctor is responsible for monitoring (a further one is refused).
pub const MAX_PATIENTS_PER_DOCTOR: usize = 1024;
/// An anchor may not end more than this far after its block's time.
pub const MAX_FUTURE_SKEW_MS: u64 = 5 * 60 * 1000;

pub mod key {
    use crate::keys::{
        compose, CARE_ALARM, CARE_ANCHOR, CARE_DEVICE, CARE_DEVICE_KEY, CARE_DOCTOR_ALARMS, CARE_DOCTOR_PATIENTS,
        CARE_MONITORING, CARE_ON_CALL, CARE_PATIENT_ALARMS, CARE_PATIENT_DEVICES,
    };
    use medledger_types::{Hash, PublicKey};
    pub fn device(id: &Hash) -> Vec<u8> {
        compose(CARE_DEVICE, &[&id.0])
    }
    /// The device a key belongs to.
    pub fn device_key(pk: &PublicKey) -> Vec<u8> {
        compose(CARE_DEVICE_KEY, &[&pk.0])
    }
    pub fn patient_devices(pseudonym: &Hash) -> Vec<u8> {
        compose(CARE_PATIENT_DEVICES, &[&pseudonym.0])
    }
    pub fn monitoring(pseudonym: &Hash) -> Vec<u8> {
        compose(CARE_MONITORING, &[&pseudonym.0])
    }
    /// Patients whose monitoring a doctor is responsible for.
    pub fn doctor_patients(pk: &PublicKey) -> Vec<u8> {
        compose(CARE_DOCTOR_PATIENTS, &[&pk.0])
    }
    pub fn on_call(institution: &str) -> Vec<u8> {
        compose(CARE_ON_CALL, &[institution.as_bytes()])
    }
    /// The `seq`th anchor of a device.
    pub fn anchor(device: &Hash, seq: u64) -> Vec<u8> {
        compose(CARE_ANCHOR, &[&device.0, &seq.to_be_bytes()])
    }
    pub fn alarm(id: &Hash) -> Vec<u8> {
        compose(CARE_ALARM, &[&id.0])
    }
    pub fn patient_alarms(pseudonym: &Hash) -> Vec<u8> {
        compose(CARE_PATIENT_ALARMS, &[&pseudonym.0])
    }
    /// Alarms a doctor is responsible for or was escalated.
    pub fn doctor_alarms(pk: &PublicKey) -> Vec<u8> {
        compose(CARE_DOCTOR_ALARMS, &[&pk.0])
    }
}

/// A monitoring device (FHIR `Device`), registered to a patient.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    pub id: Hash,
    /// The patient's pseudonym.
    pub patient: Hash,
    /// The key that signs the device's readings.
    pub key: PublicKey,
    pub model: String,
    /// The registering (and monitoring) institution.
    pub institution: String,
    pub registered_by: PublicKey,
    pub registered_height: u64,
    /// Height of the block that revoked it; readings are refused from the next block on.
    pub revoked_height: Option<u64>,
    /// Anchors recorded so far.
    pub anchors: u64,
    /// The last anchored reading's time.
    pub last_anchor_ms: Option<u64>,
}

impl Device {
    /// May the device's readings still be anchored in the block at `height`?
    pub fn active_at(&self, height: u64) -> bool {
        self.revoked_height.is_none_or(|h| h >= height)
    }
}

/// A patient's monitoring settings.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Monitoring {
    pub patient: Hash,
    /// The doctor alarms go to first.
    pub responsible: PublicKey,
    pub institution: String,
    /// NEWS2 SpO₂ scale: 1, or 2 for hypercapnic respiratory failure.
    pub spo2_scale: u32,
    pub rules: Vec<RuleText>,
    pub escalate_after_ms: u64,
    pub set_height: u64,
}

/// One batched anchor of a device's readings.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadingAnchor {
    pub device: Hash,
    pub seq: u64,
    pub first_ms: u64,
    pub last_ms: u64,
    pub count: u32,
    /// RFC 9162 Merkle root of the interval's reading digests, in order.
    pub root: Hash,
    pub height: u64,
}

/// An alarm (FHIR `Flag`): its cause and the reading's digest, never values.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alarm {
    pub id: Hash,
    pub patient: Hash,
    pub device: Hash,
    pub institution: String,
    pub reading: Hash,
    /// `news2 medium`, `news2 high`, or the rule that fired (`pulse > 130`).
    pub cause: String,
    pub raised_ms: u64,
    pub raised_height: u64,
    pub responsible: PublicKey,
    /// When the escalation is due unless acknowledged.
    pub escalate_at_ms: u64,
    pub acknowledged_by: Option<PublicKey>,
    pub acknowledged_ms: Option<u64>,
    pub escalated_to: Option<PublicKey>,
    pub escalated_ms: Option<u64>,
}

impl Canonical for Device {
    fn encode_to(&self, w: &mut Writer) {
        w.fixed(&self.id.0).fixed(&self.patient.0);
        self.key.encode_to(w);
        w.str(&self.model).str(&self.institution);
        self.registered_by.encode_to(w);
        w.u64(self.registered_height);
        w.opt(&self.revoked_height, |w, t| {
            w.u64(*t);
        });
        w.u64(self.anchors);
        w.opt(&self.last_anchor_ms, |w, t| {
            w.u64(*t);
        });
    }
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Device {
            id: Hash(r.array("device id")?),
            patient: Hash(r.array("patient")?),
            key: PublicKey::decode_from(r)?,
            model: r.string("device model", MAX_DEVICE_MODEL)?,
            institution: r.string("institution", MAX_INSTITUTION_ID)?,
            registered_by: PublicKey::decode_from(r)?,
            registered_height: r.u64("registered at")?,
            revoked_height: r.opt("revoked at", |r| r.u64("revoked at"))?,
            anchors: r.u64("anchors")?,
            last_anchor_ms: r.opt("last anchor", |r| r.u64("last anchor"))?,
        })
    }
}

impl Canonical for Monitoring {
    fn encode_to(&self, w: &mut Writer) {
        w.fixed(&self.patient.0);
        self.responsible.encode_to(w);
        w.str(&self.institution).u32(self.spo2_scale).u32(self.rules.len() as u32);
        for r in &self.rules {
            w.str(&r.0);
        }
        w.u64(self.escalate_after_ms).u64(self.set_height);
    }
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let patient = Hash(r.array("patient")?);
        let responsible = PublicKey::decode_from(r)?;
        let institution = r.string("institution", MAX_INSTITUTION_ID)?;
        let spo2_scale = r.u32("SpO2 scale")?;
        let n = r.len("rules", MAX_RULES)?;
        let rules = (0..n).map(|_| r.string("rule", MAX_RULE_TEXT).map(RuleText)).collect::<Result<_, _>>()?;
        Ok(Monitoring {
            patient,
            responsible,
            institution,
            spo2_scale,
            rules,
            escalate_after_ms: r.u64("escalation delay")?,
            set_height: r.u64("set at")?,
        })
    }
}

impl Canonical for ReadingAnchor {
    fn encode_to(&self, w: &mut Writer) {
        w.fixed(&self.device.0).u64(self.seq).u64(self.first_ms).u64(self.last_ms).u32(self.count);
        w.fixed(&self.root.0).u64(self.height);
    }
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(ReadingAnchor {
            device: Hash(r.array("device")?),
            seq: r.u64("seq")?,
            first_ms: r.u64("first")?,
            last_ms: r.u64("last")?,
            count: r.u32("count")?,
            root: Hash(r.array("root")?),
            height: r.u64("height")?,
        })
    }
}

impl Canonical for Alarm {
    fn encode_to(&self, w: &mut Writer) {
        w.fixed(&self.id.0).fixed(&self.patient.0).fixed(&self.device.0).str(&self.institution);
        w.fixed(&self.reading.0).str(&self.cause).u64(self.raised_ms).u64(self.raised_height);
        self.responsible.encode_to(w);
        w.u64(self.escalate_at_ms);
        w.opt(&self.acknowledged_by, |w, k| k.encode_to(w));
        w.opt(&self.acknowledged_ms, |w, t| {
            w.u64(*t);
        });
        w.opt(&self.escalated_to, |w, k| k.encode_to(w));
        w.opt(&self.escalated_ms, |w, t| {
            w.u64(*t);
        });
    }
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Alarm {
            id: Hash(r.array("alarm id")?),
            patient: Hash(r.array("patient")?),
            device: Hash(r.array("device")?),
            institution: r.string("institution", MAX_INSTITUTION_ID)?,
            reading: Hash(r.array("reading")?),
            cause: r.string("cause", MAX_RULE_TEXT)?,
            raised_ms: r.u64("raised at")?,
            raised_height: r.u64("raised height")?,
            responsible: PublicKey::decode_from(r)?,
            escalate_at_ms: r.u64("escalate at")?,
            acknowledged_by: r.opt("acknowledged by", PublicKey::decode_from)?,
            acknowledged_ms: r.opt("acknowledged at", |r| r.u64("acknowledged at"))?,
            escalated_to: r.opt("escalated to", PublicKey::decode_from)?,
            escalated_ms: r.opt("escalated at", |r| r.u64("escalated at"))?,
        })
    }
}

pub fn device(state: &dyn StateRead, id: &Hash) -> Option<Device> {
    read_stored(state, &key::device(id), "device")
}

/// The device a key signs for.
pub fn device_of_key(state: &dyn StateRead, pk: &PublicKey) -> Option<Device> {
    let id = state.get(&key::device_key(pk))?;
    let id = crate::decode_with(state, &id, "device key binding", |r| r.array("device key binding"))?;
    device(state, &Hash(id))
}

pub fn devices_of(state: &dyn StateRead, patient: &Hash) -> Vec<Device> {
    ids_at(state, &key::patient_devices(patient), MAX_DEVICES_PER_PATIENT)
        .iter()
        .filter_map(|id| device(state, id))
        .collect()
}

pub fn monitoring(state: &dyn StateRead, patient: &Hash) -> Option<Monitoring> {
    read_stored(state, &key::monitoring(patient), "monitoring")
}

/// Patients whose monitoring `doctor` is responsible for, oldest first.
pub fn patients_of_doctor(state: &dyn StateRead, doctor: &PublicKey) -> Vec<Hash> {
    ids_at(state, &key::doctor_patients(doctor), MAX_PATIENTS_PER_DOCTOR)
}

pub fn on_call(state: &dyn StateRead, institution: &str) -> Option<PublicKey> {
    read_stored(state, &key::on_call(institution), "on-call doctor")
}

pub fn anchor(state: &dyn StateRead, device: &Hash, seq: u64) -> Option<ReadingAnchor> {
    read_stored(state, &key::anchor(device, seq), "reading anchor")
}

pub fn alarm(state: &dyn StateRead, id: &Hash) -> Option<Alarm> {
    read_stored(state, &key::alarm(id), "alarm")
}

pub fn alarms_of_patient(state: &dyn StateRead, patient: &Hash) -> Vec<Alarm> {
    ids_at(state, &key::patient_alarms(patient), MAX_ALARMS_LISTED).iter().filter_map(|id| alarm(state, id)).collect()
}

pub fn alarms_of_doctor(state: &dyn StateRead, doctor: &PublicKey) -> Vec<Alarm> {
    ids_at(state, &key::doctor_alarms(doctor), MAX_ALARMS_LISTED).iter().filter_map(|id| alarm(state, id)).collect()
}

fn ids_at(state: &dyn StateRead, k: &[u8], limit: usize) -> Vec<Hash> {
    state.get(k).map(|b| crate::decode_ids(state, &b, "care list", limit)).unwrap_or_default()
}

fn push_bounded(o: &mut Overlay<'_>, k: Vec<u8>, id: Hash, limit: usize) {
    let mut ids = ids_at(o, &k, limit);
    if ids.len() >= limit {
        ids.remove(0);
    }
    ids.push(id);
    o.put(k, crate::encode_ids(&ids));
}

fn not_found(msg: impl Into<String>) -> Rejection {
    Rejection::new(RejectCode::NotFound, msg)
}

/// The institution a patient's credential names (the institution that registered them).
fn patient_institution(o: &Overlay<'_>, patient: &Hash) -> Result<String, Rejection> {
    let pk = identity::patient_key(o, patient).ok_or_else(|| not_found("no patient with this pseudonym"))?;
    Ok(credential(o, &pk).map(|c| c.institution).unwrap_or_default())
}

fn signer_institution(o: &Overlay<'_>, signer: &PublicKey) -> String {
    credential(o, signer).map(|c| c.institution).unwrap_or_default()
}

/// A device that may still report in this block, and whose institution the signer serves.
fn active_device(o: &Overlay<'_>, env: &BlockEnv, id: &Hash, signer: &PublicKey) -> Result<Device, Rejection> {
    let d = device(o, id).ok_or_else(|| not_found(format!("unknown device {id}")))?;
    if !d.active_at(env.height) {
        return Err(not_permitted(format!("device {id} was revoked at height {}", d.revoked_height.unwrap_or(0))));
    }
    if signer_institution(o, signer) != d.institution {
        return Err(not_permitted(format!(
            "device {id} is monitored by `{}`, not by the signer's institution",
            d.institution
        )));
    }
    Ok(d)
}

/// The normal form of a rule's text (`pulse>130` and `pulse > 130` are the same rule).
fn normal(rule: &str) -> Option<String> {
    rule.parse::<alarm::Rule>().ok().map(|r| r.to_string())
}

pub(super) fn apply(
    o: &mut Overlay<'_>,
    env: &BlockEnv,
    signer: &PublicKey,
    _principal: Principal,
    op: &CareOp,
) -> Result<Vec<Event>, Rejection> {
    match op {
        CareOp::RegisterDevice { device_id, patient, key, model } => {
            if device(o, device_id).is_some() {
                return Err(Rejection::new(RejectCode::AlreadyExists, format!("device {device_id} already exists")));
            }
            let inst = patient_institution(o, patient)?;
            if signer_institution(o, signer) != inst {
                return Err(not_permitted(format!(
                    "only staff of `{inst}`, the patient's institution, register the patient's devices"
                )));
            }
            if device_of_key(o, key).is_some_and(|d| d.revoked_height.is_none()) {
                return Err(Rejection::new(RejectCode::AlreadyExists, "this key already belongs to an active device"));
            }
            if credential(o, key).is_some() {
                return Err(invalid("a device key must be the device's own, not a person's credential key"));
            }
            let mut list = ids_at(o, &key::patient_devices(patient), MAX_DEVICES_PER_PATIENT);
            if list.len() >= MAX_DEVICES_PER_PATIENT {
                return Err(invalid(format!("a patient may have at most {MAX_DEVICES_PER_PATIENT} devices")));
            }
            let d = Device {
                id: *device_id,
                patient: *patient,
                key: *key,
                model: model.clone(),
                institution: inst,
                registered_by: *signer,
                registered_height: env.height,
                revoked_height: None,
                anchors: 0,
                last_anchor_ms: None,
            };
            list.push(*device_id);
            o.put(key::patient_devices(patient), crate::encode_ids(&list));
            o.put(key::device_key(key), device_id.0.to_vec());
            o.put(key::device(device_id), d.to_bytes());
            Ok(vec![Event::new("device_registered")
                .with("device", device_id)
                .with("patient", patient)
                .with("institution", &d.institution)])
        }
        CareOp::RevokeDevice { device_id } => {
            let mut d = device(o, device_id).ok_or_else(|| not_found(format!("unknown device {device_id}")))?;
            if d.revoked_height.is_some() {
                return Err(Rejection::new(RejectCode::AlreadyExists, "the device is already revoked"));
            }
            let c = credential(o, signer);
            let own_patient = c.as_ref().is_some_and(|c| c.role == Role::Patient && c.pseudonym == Some(d.patient));
            let staff = c.as_ref().is_some_and(|c| c.role != Role::Patient && c.institution == d.institution);
            if !own_patient && !staff {
                return Err(not_permitted("only the patient or staff of the monitoring institution revoke a device"));
            }
            d.revoked_height = Some(env.height);
            o.put(key::device(device_id), d.to_bytes());
            Ok(vec![Event::new("device_revoked")
                .with("device", device_id)
                .with("effective_from_height", env.height + 1)])
        }
        CareOp::SetMonitoring { patient, spo2_scale, rules, escalate_after_ms } => {
            let inst = patient_institution(o, patient)?;
            if signer_institution(o, signer) != inst {
                return Err(not_permitted(format!(
                    "only a doctor of `{inst}`, the patient's institution, sets the patient's monitoring"
                )));
            }
            let previous = monitoring(o, patient).map(|m| m.responsible);
            if previous != Some(*signer) {
                let mut mine = patients_of_doctor(o, signer);
                if mine.len() >= MAX_PATIENTS_PER_DOCTOR {
                    return Err(invalid(format!(
                        "the doctor is already responsible for monitoring {MAX_PATIENTS_PER_DOCTOR} patients, the limit"
                    )));
                }
                if let Some(before) = previous {
                    let mut theirs = patients_of_doctor(o, &before);
                    theirs.retain(|p| p != patient);
                    o.put(key::doctor_patients(&before), crate::encode_ids(&theirs));
                }
                mine.push(*patient);
                o.put(key::doctor_patients(signer), crate::encode_ids(&mine));
            }
            let m = Monitoring {
                patient: *patient,
                responsible: *signer,
                institution: inst,
                spo2_scale: *spo2_scale,
                rules: rules.iter().map(|r| RuleText(normal(&r.0).unwrap_or_else(|| r.0.clone()))).collect(),
                escalate_after_ms: *escalate_after_ms,
                set_height: env.height,
            };
            o.put(key::monitoring(patient), m.to_bytes());
            Ok(vec![Event::new("monitoring_set")
                .with("patient", patient)
                .with("rules", m.rules.len())
                .with("spo2_scale", spo2_scale)])
        }
        CareOp::SetOnCall { doctor } => {
            let inst = signer_institution(o, signer);
            let c = credential(o, doctor).ok_or_else(|| not_found("the on-call doctor holds no credential"))?;
            if let Some(p) = identity::credential_problem(&c, env.timestamp_ms, env.height) {
                return Err(invalid(format!("the on-call doctor's credential: {}", p.reason)));
            }
            if c.role != Role::Doctor || c.institution != inst {
                return Err(invalid(format!("the on-call doctor must be a doctor of `{inst}`")));
            }
            o.put(key::on_call(&inst), doctor.to_bytes());
            Ok(vec![Event::new("on_call_set").with("institution", &inst)])
        }
        CareOp::AnchorReadings { device_id, first_ms, last_ms, count, root } => {
            let mut d = active_device(o, env, device_id, signer)?;
            if let Some(prev) = d.last_anchor_ms {
                if *first_ms <= prev {
                    return Err(Rejection::new(
                        RejectCode::AlreadyExists,
                        format!("the interval starts at {first_ms} ms, not after the last anchored reading ({prev} ms): readings already anchored"),
                    ));
                }
            }
            if *last_ms > env.timestamp_ms.saturating_add(MAX_FUTURE_SKEW_MS) {
                return Err(invalid("the interval ends in the future"));
            }
            let a = ReadingAnchor {
                device: *device_id,
                seq: d.anchors,
                first_ms: *first_ms,
                last_ms: *last_ms,
                count: *count,
                root: *root,
                height: env.height,
            };
            o.put(key::anchor(device_id, d.anchors), a.to_bytes());
            d.anchors += 1;
            d.last_anchor_ms = Some(*last_ms);
            o.put(key::device(device_id), d.to_bytes());
            Ok(vec![Event::new("readings_anchored")
                .with("device", device_id)
                .with("seq", a.seq)
                .with("count", count)
                .with("root", root)])
        }
        CareOp::RaiseAlarm { alarm_id, device_id, reading, cause } => {
            let d = active_device(o, env, device_id, signer)?;
            if alarm(o, alarm_id).is_some() {
                return Err(Rejection::new(RejectCode::AlreadyExists, format!("alarm {alarm_id} already exists")));
            }
            let m = monitoring(o, &d.patient)
                .ok_or_else(|| invalid("the patient has no responsible doctor yet: set the monitoring first"))?;
            let cause = if cause.starts_with("news2 ") {
                cause.clone()
            } else {
                let n = normal(cause).ok_or_else(|| invalid(format!("alarm cause `{cause}` is not a rule")))?;
                if !m.rules.iter().any(|r| r.0 == n) {
                    return Err(invalid(format!("`{n}` is not one of the patient's rules")));
                }
                n
            };
            let a = Alarm {
                id: *alarm_id,
                patient: d.patient,
                device: *device_id,
                institution: d.institution.clone(),
                reading: *reading,
                cause,
                raised_ms: env.timestamp_ms,
                raised_height: env.height,
                responsible: m.responsible,
                escalate_at_ms: env.timestamp_ms.saturating_add(m.escalate_after_ms),
                acknowledged_by: None,
                acknowledged_ms: None,
                escalated_to: None,
                escalated_ms: None,
            };
            push_bounded(o, key::patient_alarms(&d.patient), *alarm_id, MAX_ALARMS_LISTED);
            push_bounded(o, key::doctor_alarms(&m.responsible), *alarm_id, MAX_ALARMS_LISTED);
            o.put(key::alarm(alarm_id), a.to_bytes());
            Ok(vec![Event::new("alarm_raised")
                .with("alarm", alarm_id)
                .with("device", device_id)
                .with("cause", &a.cause)
                .with("doctor", a.responsible.to_hex())])
        }
        CareOp::AcknowledgeAlarm { alarm_id } => {
            let mut a = alarm(o, alarm_id).ok_or_else(|| not_found(format!("no alarm {alarm_id}")))?;
            if a.acknowledged_by.is_some() {
                return Err(Rejection::new(RejectCode::AlreadyExists, "the alarm is already acknowledged"));
            }
            if *signer != a.responsible && Some(*signer) != a.escalated_to {
                return Err(not_permitted(
                    "only the responsible doctor, or the on-call doctor it escalated to, acknowledges an alarm",
                ));
            }
            a.acknowledged_by = Some(*signer);
            a.acknowledged_ms = Some(env.timestamp_ms);
            o.put(key::alarm(alarm_id), a.to_bytes());
            let waited = env.timestamp_ms.saturating_sub(a.raised_ms);
            Ok(vec![Event::new("alarm_acknowledged").with("alarm", alarm_id).with("after_ms", waited)])
        }
        CareOp::EscalateAlarm { alarm_id } => {
            let mut a = alarm(o, alarm_id).ok_or_else(|| not_found(format!("no alarm {alarm_id}")))?;
            if signer_institution(o, signer) != a.institution {
                return Err(not_permitted(format!("only `{}`'s node escalates its alarms", a.institution)));
            }
            if a.acknowledged_by.is_some() {
                return Err(invalid("the alarm was acknowledged; nothing to escalate"));
            }
            if a.escalated_to.is_some() {
                return Err(Rejection::new(RejectCode::AlreadyExists, "the alarm is already escalated"));
            }
            if env.timestamp_ms < a.escalate_at_ms {
                return Err(invalid(format!(
                    "the alarm escalates at {} if nobody acknowledges it; not yet",
                    medledger_types::time::rfc3339_ms(a.escalate_at_ms)
                )));
            }
            let to = on_call(o, &a.institution)
                .ok_or_else(|| invalid(format!("`{}` has no on-call doctor to escalate to", a.institution)))?;
            a.escalated_to = Some(to);
            a.escalated_ms = Some(env.timestamp_ms);
            push_bounded(o, key::doctor_alarms(&to), *alarm_id, MAX_ALARMS_LISTED);
            o.put(key::alarm(alarm_id), a.to_bytes());
            Ok(vec![Event::new("alarm_escalated").with("alarm", alarm_id).with("doctor", to.to_hex())])
        }
        _ => unreachable!("referral operations are applied by the parent module"),
    }
}
