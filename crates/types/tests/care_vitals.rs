//! Monitoring readings (`care::vitals`) from HL7's own FHIR R4 vital-signs examples, and the
//! bad-input suite: unknown codes, wrong units, impossible values, missing or future times.

use medledger_types::care::news2::{Consciousness, Risk};
use medledger_types::care::vitals::{check_not_future, observation_set, parse_observation, Reading, Vital};
use serde_json::{json, Value};

fn example(name: &str) -> Value {
    let p = format!("{}/tests/fixtures/fhir-vitals/Observation-{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// HL7's examples date most readings by day only; a monitoring reading needs its time.
fn timed(mut v: Value) -> Value {
    v["effectiveDateTime"] = json!("2026-12-04T08:30:00Z");
    v
}

#[test]
fn hl7_vital_sign_examples_are_read_with_their_values() {
    let sat = parse_observation(&example("satO2")).unwrap();
    assert_eq!(sat.vital, Vital::SpO2(95.0));
    assert_eq!(sat.effective_ms, 1_417_768_210_000, "2014-12-05T09:30:10+01:00");
    for (name, want) in [
        ("heart-rate", Vital::HeartRate(44.0)),
        ("respiratory-rate", Vital::RespiratoryRate(26.0)),
        ("body-temperature", Vital::Temperature(36.5)),
        ("blood-pressure", Vital::BloodPressure { systolic: 107.0, diastolic: 60.0 }),
    ] {
        let e = parse_observation(&example(name)).unwrap_err();
        assert_eq!(e.path, "$.effectiveDateTime", "{name}: {e}");
        assert!(e.rule.contains("not a date"), "{name}: {e}");
        assert_eq!(parse_observation(&timed(example(name))).unwrap().vital, want, "{name}");
    }
}

fn reading(vital: Vital, at: u64) -> Reading {
    Reading { vital, effective_ms: at }
}

#[test]
fn bad_readings_name_the_path_and_the_rule() {
    let hr = || timed(example("heart-rate"));
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            {
                let mut v = hr();
                v["valueQuantity"]["code"] = json!("/s");
                v
            },
            "$.valueQuantity.code",
            "heart rate is measured in UCUM `/min`, not `/s`",
        ),
        (
            {
                let mut v = hr();
                v["valueQuantity"]["value"] = json!(-5);
                v
            },
            "$.valueQuantity.value",
            "heart rate -5 is physiologically impossible",
        ),
        (
            {
                let mut v = timed(example("satO2"));
                v["valueQuantity"]["value"] = json!(140);
                v
            },
            "$.valueQuantity.value",
            "SpO2 140 is physiologically impossible",
        ),
        (
            {
                let mut v = hr();
                v["code"]["coding"][0]["code"] = json!("1234-5");
                v
            },
            "$.code.coding",
            "no monitored vital sign",
        ),
        (
            {
                let mut v = hr();
                v["resourceType"] = json!("Patient");
                v
            },
            "$.resourceType",
            "must be `Observation`",
        ),
        (
            {
                let mut v = hr();
                v["status"] = json!("entered-in-error");
                v
            },
            "$.status",
            "not a reading's status",
        ),
        (
            {
                let mut v = hr();
                v.as_object_mut().unwrap().remove("effectiveDateTime");
                v
            },
            "$.effectiveDateTime",
            "needs the time",
        ),
        (
            {
                let mut v = timed(example("blood-pressure"));
                v["component"][1]["valueQuantity"]["value"] = json!(150);
                v
            },
            "$.component",
            "diastolic 150 is not below systolic 107",
        ),
        (
            {
                let mut v = timed(example("blood-pressure"));
                v["component"][0]["valueQuantity"]["code"] = json!("kPa");
                v
            },
            "$.component[0].valueQuantity.code",
            "mm[Hg]",
        ),
    ];
    for (v, path, rule) in cases {
        let e = parse_observation(&v).unwrap_err();
        assert_eq!(e.path, path, "{e}");
        assert!(e.rule.contains(rule), "{e}");
    }
    let future = parse_observation(&hr()).unwrap();
    let e = check_not_future(&future, future.effective_ms - 60_000, 5_000).unwrap_err();
    assert!(e.rule.ends_with("is in the future"), "{e}");
    assert!(check_not_future(&future, future.effective_ms, 5_000).is_ok());
}

#[test]
fn the_news2_parameters_outside_loinc_use_the_project_code_system() {
    let obs = |code: &str, value: (&str, Value)| {
        let mut v = json!({ "resourceType": "Observation", "status": "final", "effectiveDateTime": "2026-12-04T08:30:00Z",
                            "code": { "coding": [{ "system": "urn:medledger:news2", "code": code }] } });
        v[value.0] = value.1;
        v
    };
    let c = obs(
        "consciousness",
        ("valueCodeableConcept", json!({ "coding": [{ "system": "urn:medledger:news2", "code": "V" }] })),
    );
    assert_eq!(parse_observation(&c).unwrap().vital, Vital::Consciousness(Consciousness::V));
    let bad = obs(
        "consciousness",
        ("valueCodeableConcept", json!({ "coding": [{ "system": "urn:medledger:news2", "code": "Z" }] })),
    );
    assert!(parse_observation(&bad).unwrap_err().rule.contains("not an ACVPU level"));
    let o = obs("supplemental-oxygen", ("valueBoolean", json!(true)));
    assert_eq!(parse_observation(&o).unwrap().vital, Vital::SupplementalOxygen(true));
}

#[test]
fn a_complete_set_of_latest_readings_is_scored() {
    let mut rs = vec![
        reading(Vital::HeartRate(70.0), 1),
        reading(Vital::RespiratoryRate(16.0), 1),
        reading(Vital::SpO2(97.0), 1),
        reading(Vital::Temperature(37.0), 1),
        reading(Vital::BloodPressure { systolic: 120.0, diastolic: 80.0 }, 1),
        reading(Vital::Consciousness(Consciousness::A), 1),
    ];
    assert_eq!(observation_set(&rs, 1), None, "no oxygen reading yet: incomplete");
    rs.push(reading(Vital::SupplementalOxygen(false), 1));
    assert_eq!(observation_set(&rs, 1).unwrap().score().unwrap().risk, Risk::Low);
    // Later readings replace earlier ones: pulse 131 (3) and respiration 25 (3) make 6, medium.
    rs.push(reading(Vital::HeartRate(131.0), 2));
    rs.push(reading(Vital::RespiratoryRate(25.0), 2));
    let s = observation_set(&rs, 1).unwrap().score().unwrap();
    assert_eq!((s.total, s.risk), (6, Risk::Medium));
}

/// What a device builds is what the node reads back, for every kind of vital.
#[test]
fn built_observations_read_back_unchanged() {
    use medledger_types::care::news2::Consciousness;
    use medledger_types::care::vitals::{observation_json, parse_observation, Vital};
    let at = 1_795_305_600_000;
    for v in [
        Vital::HeartRate(72.0),
        Vital::RespiratoryRate(16.0),
        Vital::SpO2(97.0),
        Vital::Temperature(36.8),
        Vital::BloodPressure { systolic: 124.0, diastolic: 78.0 },
        Vital::Consciousness(Consciousness::V),
        Vital::SupplementalOxygen(true),
    ] {
        let r = parse_observation(&observation_json(&v, at)).unwrap_or_else(|e| panic!("{v:?}: {e}"));
        assert_eq!((r.vital, r.effective_ms), (v, at));
    }
}
