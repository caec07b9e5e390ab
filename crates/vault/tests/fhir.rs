//! FHIR checks on official HL7 R4 examples (tests/fixtures/fhir).

use medledger_types::Hash;
use medledger_vault::fhir::{check, patient_reference, FhirError, MAX_RECORD_BYTES};
use serde_json::{json, Value};

fn example(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/fhir/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn retarget(mut v: Value, pid: &Hash) -> Value {
    for f in ["subject", "patient"] {
        if v.get(f).is_some() {
            v[f]["reference"] = json!(patient_reference(pid));
        }
    }
    v
}

const EXAMPLES: [&str; 5] = [
    "Observation-example.json",
    "Condition-example.json",
    "MedicationRequest-medrx0301.json",
    "DiagnosticReport-102.json",
    "Encounter-example.json",
];

#[test]
fn official_examples_pass_once_they_name_the_patient() {
    let pid = Hash([0x5a; 32]);
    for name in EXAMPLES {
        let original = example(name);
        let rtype = original["resourceType"].as_str().unwrap().to_string();
        // As published they are about `Patient/example` (or another patient): refused.
        let err = check(original.to_string().as_bytes(), &pid).unwrap_err();
        assert!(matches!(err, FhirError::WrongSubject { .. }), "{name}: {err}");
        let ours = retarget(original, &pid);
        assert_eq!(check(ours.to_string().as_bytes(), &pid).unwrap(), rtype, "{name}");
        // Another patient's pseudonym is refused.
        assert!(check(ours.to_string().as_bytes(), &Hash([1; 32])).is_err());
    }
}

#[test]
fn bundles_check_every_entry() {
    let pid = Hash([0x5a; 32]);
    let entries: Vec<Value> = EXAMPLES.iter().map(|n| json!({ "resource": retarget(example(n), &pid) })).collect();
    let mut bundle = json!({ "resourceType": "Bundle", "type": "collection", "entry": entries });
    assert_eq!(check(bundle.to_string().as_bytes(), &pid).unwrap(), "Bundle");
    bundle["entry"][3]["resource"]["subject"]["reference"] = json!("Patient/someone-else");
    let err = check(bundle.to_string().as_bytes(), &pid).unwrap_err();
    assert!(matches!(err, FhirError::Entry(3, _)), "{err}");
    assert!(err.to_string().starts_with("bundle entry 3: DiagnosticReport is about `Patient/someone-else`"), "{err}");
}

#[test]
fn bad_records_get_specific_errors() {
    let pid = Hash([0x5a; 32]);
    assert!(matches!(check(b"{not json", &pid), Err(FhirError::Json(_))));
    assert!(matches!(check(b"[1,2]", &pid), Err(FhirError::NotResource(_))));
    assert!(matches!(check(br#"{"status":"final"}"#, &pid), Err(FhirError::NotResource(_))));
    assert_eq!(check(br#"{"resourceType":"Spaceship"}"#, &pid), Err(FhirError::UnknownType("Spaceship".into())));
    assert!(matches!(
        check(br#"{"resourceType":"Observation","status":"final"}"#, &pid),
        Err(FhirError::NoSubject { .. })
    ));
    let big = vec![b' '; MAX_RECORD_BYTES + 1];
    assert_eq!(check(&big, &pid), Err(FhirError::Oversize(MAX_RECORD_BYTES + 1)));
    let patient = json!({ "resourceType": "Patient", "id": pid.to_hex() });
    assert_eq!(check(patient.to_string().as_bytes(), &pid).unwrap(), "Patient");
}
