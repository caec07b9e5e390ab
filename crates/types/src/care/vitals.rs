//! Remote-monitoring readings as FHIR R4 `Observation`s: the vital signs NEWS2 needs, each with
//! its LOINC code and UCUM unit, checked before anything else sees them.
//!
//! | vital | code | unit (UCUM) |
//! |---|---|---|
//! | heart rate | LOINC 8867-4 | `/min` |
//! | respiratory rate | LOINC 9279-1 | `/min` |
//! | SpO₂ | LOINC 59408-5 | `%` |
//! | body temperature | LOINC 8310-5 | `Cel` |
//! | blood pressure | LOINC 85354-9, components 8480-6 (systolic), 8462-4 (diastolic) | `mm[Hg]` |
//! | consciousness (ACVPU) | `urn:medledger:news2` `consciousness`, `valueCodeableConcept` A, C, V, P or U | — |
//! | supplemental oxygen | `urn:medledger:news2` `supplemental-oxygen`, `valueBoolean` | — |
//!
//! Every error names the JSON path and the rule it breaks: an unknown code, a wrong unit, a
//! physiologically impossible value, a missing or malformed time.

use super::news2::{self, Consciousness};
use crate::time::parse_rfc3339_ms;
use serde_json::Value;
use std::fmt;

pub const LOINC: &str = "http://loinc.org";
pub const UCUM: &str = "http://unitsofmeasure.org";
/// The project's code system for the two NEWS2 parameters LOINC does not name one way.
pub const NEWS2_SYSTEM: &str = "urn:medledger:news2";

/// One reading's value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Vital {
    HeartRate(f64),
    RespiratoryRate(f64),
    SpO2(f64),
    Temperature(f64),
    BloodPressure { systolic: f64, diastolic: f64 },
    Consciousness(Consciousness),
    SupplementalOxygen(bool),
}

impl Vital {
    /// Which NEWS2 parameter it fills (blood pressure fills the systolic one).
    pub fn kind(&self) -> &'static str {
        match self {
            Vital::HeartRate(_) => "pulse",
            Vital::RespiratoryRate(_) => "respiratory_rate",
            Vital::SpO2(_) => "spo2",
            Vital::Temperature(_) => "temperature",
            Vital::BloodPressure { .. } => "systolic_bp",
            Vital::Consciousness(_) => "consciousness",
            Vital::SupplementalOxygen(_) => "on_oxygen",
        }
    }
}

impl Vital {
    /// The value with its UCUM unit, as charted: `112 /min`, `124/78 mm[Hg]`, `37.2 Cel`,
    /// `97 %`, `A`, `on oxygen` or `on air`.
    pub fn text(&self) -> String {
        match self {
            Vital::HeartRate(v) | Vital::RespiratoryRate(v) => format!("{v} /min"),
            Vital::SpO2(v) => format!("{v} %"),
            Vital::Temperature(v) => format!("{v} Cel"),
            Vital::BloodPressure { systolic, diastolic } => format!("{systolic}/{diastolic} mm[Hg]"),
            Vital::Consciousness(c) => format!("{c:?}"),
            Vital::SupplementalOxygen(true) => "on oxygen".into(),
            Vital::SupplementalOxygen(false) => "on air".into(),
        }
    }
}

/// A checked reading: its value and when it was taken.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Reading {
    pub vital: Vital,
    pub effective_ms: u64,
}

/// Why a resource is not an acceptable reading: where, and which rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadingError {
    pub path: String,
    pub rule: String,
}

impl fmt::Display for ReadingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.rule)
    }
}

impl std::error::Error for ReadingError {}

fn err(path: impl Into<String>, rule: impl Into<String>) -> ReadingError {
    ReadingError { path: path.into(), rule: rule.into() }
}

/// A quantity vital: (LOINC code, name, UCUM unit, accepted range, whole numbers only).
type QuantityRow = (&'static str, &'static str, &'static str, (f64, f64), bool);
const QUANTITIES: [QuantityRow; 4] = [
    ("8867-4", "heart rate", "/min", news2::RANGE_PULSE, true),
    ("9279-1", "respiratory rate", "/min", news2::RANGE_RESPIRATORY_RATE, true),
    ("59408-5", "SpO2", "%", news2::RANGE_SPO2, true),
    ("8310-5", "body temperature", "Cel", news2::RANGE_TEMPERATURE, false),
];
const BLOOD_PRESSURE: &str = "85354-9";
const SYSTOLIC: &str = "8480-6";
const DIASTOLIC: &str = "8462-4";
/// Diastolic pressure a living patient can show, mm Hg.
pub const RANGE_DIASTOLIC_BP: (f64, f64) = (10.0, 200.0);

/// The codes of `concept` at `path` (a `CodeableConcept`), as (system, code).
fn codings<'a>(concept: &'a Value, path: &str) -> Result<Vec<(&'a str, &'a str)>, ReadingError> {
    let list = concept
        .get("coding")
        .and_then(Value::as_array)
        .ok_or_else(|| err(format!("{path}.coding"), "a CodeableConcept with a coding list is required"))?;
    Ok(list.iter().filter_map(|c| Some((c.get("system")?.as_str()?, c.get("code")?.as_str()?))).collect())
}

/// The value of a UCUM `Quantity` at `path`, in `unit`, within `range`.
fn quantity(
    q: Option<&Value>,
    path: &str,
    name: &str,
    unit: &str,
    range: (f64, f64),
    whole: bool,
) -> Result<f64, ReadingError> {
    let q = q.ok_or_else(|| err(path, format!("{name} needs a valueQuantity")))?;
    let system = q.get("system").and_then(Value::as_str);
    let code = q.get("code").and_then(Value::as_str);
    if system != Some(UCUM) || code != Some(unit) {
        return Err(err(
            format!("{path}.code"),
            format!(
                "{name} is measured in UCUM `{unit}`, not {}{}",
                code.map_or("no unit".to_string(), |c| format!("`{c}`")),
                if system.is_some_and(|s| s != UCUM) { " (not a UCUM code)" } else { "" }
            ),
        ));
    }
    let value = q
        .get("value")
        .and_then(Value::as_f64)
        .ok_or_else(|| err(format!("{path}.value"), format!("{name} needs a numeric value")))?;
    news2::check("value", value, range, whole)
        .map_err(|e| err(format!("{path}.value"), format!("{name} {}", e.rule)))?;
    Ok(value)
}

/// Reads one FHIR R4 `Observation` as a monitoring reading.
pub fn parse_observation(obs: &Value) -> Result<Reading, ReadingError> {
    if obs.get("resourceType").and_then(Value::as_str) != Some("Observation") {
        return Err(err("$.resourceType", "must be `Observation`"));
    }
    match obs.get("status").and_then(Value::as_str) {
        Some("final" | "amended" | "corrected" | "preliminary") => {}
        Some(s) => {
            return Err(err(
                "$.status",
                format!("`{s}` is not a reading's status (final, amended, corrected, preliminary)"),
            ))
        }
        None => return Err(err("$.status", "is required")),
    }
    let effective = obs
        .get("effectiveDateTime")
        .or_else(|| obs.get("effectiveInstant"))
        .and_then(Value::as_str)
        .ok_or_else(|| err("$.effectiveDateTime", "a reading needs the time it was taken"))?;
    let effective_ms = parse_rfc3339_ms(effective).map_err(|e| {
        err("$.effectiveDateTime", format!("{e} (a reading needs a date-time with its time zone, not a date)"))
    })?;
    let code = obs.get("code").ok_or_else(|| err("$.code", "is required"))?;
    let codes = codings(code, "$.code")?;
    let has = |system: &str, c: &str| codes.iter().any(|(s, k)| *s == system && *k == c);
    let vital = if let Some((_, name, unit, range, whole)) = QUANTITIES.iter().find(|q| has(LOINC, q.0)) {
        let v = quantity(obs.get("valueQuantity"), "$.valueQuantity", name, unit, *range, *whole)?;
        match *name {
            "heart rate" => Vital::HeartRate(v),
            "respiratory rate" => Vital::RespiratoryRate(v),
            "SpO2" => Vital::SpO2(v),
            _ => Vital::Temperature(v),
        }
    } else if has(LOINC, BLOOD_PRESSURE) {
        let comps = obs
            .get("component")
            .and_then(Value::as_array)
            .ok_or_else(|| err("$.component", "blood pressure needs systolic and diastolic components"))?;
        let mut found = (None, None);
        for (i, c) in comps.iter().enumerate() {
            let path = format!("$.component[{i}]");
            let cc = codings(c.get("code").unwrap_or(&Value::Null), &format!("{path}.code"))?;
            let is = |code: &str| cc.iter().any(|(s, k)| *s == LOINC && *k == code);
            let q = c.get("valueQuantity");
            if is(SYSTOLIC) {
                let p = format!("{path}.valueQuantity");
                found.0 = Some(quantity(q, &p, "systolic blood pressure", "mm[Hg]", news2::RANGE_SYSTOLIC_BP, true)?);
            } else if is(DIASTOLIC) {
                let p = format!("{path}.valueQuantity");
                found.1 = Some(quantity(q, &p, "diastolic blood pressure", "mm[Hg]", RANGE_DIASTOLIC_BP, true)?);
            }
        }
        match found {
            (Some(systolic), Some(diastolic)) if diastolic < systolic => Vital::BloodPressure { systolic, diastolic },
            (Some(s), Some(d)) => {
                return Err(err("$.component", format!("diastolic {d} is not below systolic {s}: impossible")))
            }
            (None, _) => return Err(err("$.component", format!("no systolic component (LOINC {SYSTOLIC})"))),
            (_, None) => return Err(err("$.component", format!("no diastolic component (LOINC {DIASTOLIC})"))),
        }
    } else if has(NEWS2_SYSTEM, "consciousness") {
        let cc = codings(obs.get("valueCodeableConcept").unwrap_or(&Value::Null), "$.valueCodeableConcept")?;
        let level = cc.iter().find(|(s, _)| *s == NEWS2_SYSTEM).map(|(_, c)| *c);
        Vital::Consciousness(match level {
            Some("A") => Consciousness::A,
            Some("C") => Consciousness::C,
            Some("V") => Consciousness::V,
            Some("P") => Consciousness::P,
            Some("U") => Consciousness::U,
            other => {
                return Err(err(
                    "$.valueCodeableConcept.coding",
                    format!("{} is not an ACVPU level (A, C, V, P or U)", other.unwrap_or("no code")),
                ))
            }
        })
    } else if has(NEWS2_SYSTEM, "supplemental-oxygen") {
        Vital::SupplementalOxygen(
            obs.get("valueBoolean")
                .and_then(Value::as_bool)
                .ok_or_else(|| err("$.valueBoolean", "supplemental oxygen is true or false"))?,
        )
    } else {
        let list: Vec<String> = codes.iter().map(|(s, c)| format!("{s}|{c}")).collect();
        return Err(err(
            "$.code.coding",
            format!(
                "no monitored vital sign among [{}]: expected LOINC 8867-4, 9279-1, 59408-5, 8310-5 or 85354-9, or {NEWS2_SYSTEM} consciousness or supplemental-oxygen",
                list.join(", ")
            ),
        ));
    };
    Ok(Reading { vital, effective_ms })
}

/// Refuses readings from the future (beyond `skew_ms` of clock difference).
pub fn check_not_future(r: &Reading, now_ms: u64, skew_ms: u64) -> Result<(), ReadingError> {
    if r.effective_ms > now_ms.saturating_add(skew_ms) {
        return Err(err(
            "$.effectiveDateTime",
            format!("{} is in the future", crate::time::rfc3339_ms(r.effective_ms)),
        ));
    }
    Ok(())
}

/// The NEWS2 observation set the latest readings make, if every parameter is present.
/// `readings` are in any order; the latest of each kind wins. `spo2_scale` is the patient's.
pub fn observation_set(readings: &[Reading], spo2_scale: u8) -> Option<news2::Observations> {
    let latest = |kind: &str| readings.iter().filter(|r| r.vital.kind() == kind).max_by_key(|r| r.effective_ms);
    let num = |kind: &str| match latest(kind)?.vital {
        Vital::HeartRate(v) | Vital::RespiratoryRate(v) | Vital::SpO2(v) | Vital::Temperature(v) => Some(v),
        Vital::BloodPressure { systolic, .. } => Some(systolic),
        _ => None,
    };
    let consciousness = match latest("consciousness")?.vital {
        Vital::Consciousness(c) => c,
        _ => return None,
    };
    let on_oxygen = match latest("on_oxygen")?.vital {
        Vital::SupplementalOxygen(b) => b,
        _ => return None,
    };
    Some(news2::Observations {
        respiratory_rate: num("respiratory_rate")?,
        spo2: num("spo2")?,
        spo2_scale,
        on_oxygen,
        systolic_bp: num("systolic_bp")?,
        pulse: num("pulse")?,
        consciousness,
        temperature: num("temperature")?,
    })
}

/// Most bytes of one reading as a device sends it (one FHIR Observation, JSON).
pub const MAX_READING_BYTES: usize = 8 * 1024;

/// What a device signs for one reading: the chain id, then the Observation's exact bytes.
pub fn reading_message(chain_id: &str, observation: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(chain_id.len() + 1 + observation.len());
    m.extend_from_slice(chain_id.as_bytes());
    m.push(0);
    m.extend_from_slice(observation);
    m
}

/// A reading's digest: what the batched anchors commit to (the device, then the exact bytes).
pub fn reading_digest(device: &crate::Hash, observation: &[u8]) -> crate::Hash {
    crate::hash::tagged(crate::hash::domain::READING_DIGEST, &[&device.0, observation])
}

/// A reading as a FHIR R4 Observation (what a device sends; [`parse_observation`] reads it back
/// unchanged).
pub fn observation_json(vital: &Vital, effective_ms: u64) -> Value {
    use serde_json::json;
    let when = crate::time::rfc3339_ms(effective_ms);
    let coded = |system: &str, code: &str, display: &str| json!({ "coding": [{ "system": system, "code": code, "display": display }] });
    let q = |v: f64, unit: &str| json!({ "value": v, "unit": unit, "system": UCUM, "code": unit });
    let base = |code: Value| {
        json!({
            "resourceType": "Observation",
            "status": "final",
            "category": [{ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs" }] }],
            "code": code,
            "effectiveDateTime": when,
        })
    };
    match *vital {
        Vital::HeartRate(v) | Vital::RespiratoryRate(v) | Vital::SpO2(v) | Vital::Temperature(v) => {
            let (code, name, unit, _, _) = QUANTITIES
                .iter()
                .find(|row| {
                    row.1
                        == match vital {
                            Vital::HeartRate(_) => "heart rate",
                            Vital::RespiratoryRate(_) => "respiratory rate",
                            Vital::SpO2(_) => "SpO2",
                            _ => "body temperature",
                        }
                })
                .copied()
                .unwrap_or(QUANTITIES[0]);
            let mut o = base(coded(LOINC, code, name));
            o["valueQuantity"] = q(v, unit);
            o
        }
        Vital::BloodPressure { systolic, diastolic } => {
            let mut o = base(coded(LOINC, BLOOD_PRESSURE, "Blood pressure panel"));
            o["component"] = json!([
                { "code": coded(LOINC, SYSTOLIC, "Systolic blood pressure"), "valueQuantity": q(systolic, "mm[Hg]") },
                { "code": coded(LOINC, DIASTOLIC, "Diastolic blood pressure"), "valueQuantity": q(diastolic, "mm[Hg]") },
            ]);
            o
        }
        Vital::Consciousness(c) => {
            let mut o = base(coded(NEWS2_SYSTEM, "consciousness", "Level of consciousness (ACVPU)"));
            let level = match c {
                Consciousness::A => "A",
                Consciousness::C => "C",
                Consciousness::V => "V",
                Consciousness::P => "P",
                Consciousness::U => "U",
            };
            o["valueCodeableConcept"] = coded(NEWS2_SYSTEM, level, level);
            o
        }
        Vital::SupplementalOxygen(b) => {
            let mut o = base(coded(NEWS2_SYSTEM, "supplemental-oxygen", "Supplemental oxygen"));
            o["valueBoolean"] = json!(b);
            o
        }
    }
}
