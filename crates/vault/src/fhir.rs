//! Light FHIR R4 checks for records before they are sealed: valid JSON, a known `resourceType`,
//! and a subject that is the patient. Full profile validation (the `fhir` crate) costs too much
//! to build; these checks catch what matters for a ledger anchor: wrong data in the wrong record.
//!
//! Patients are referenced by their pseudonymous on-chain id: `Patient/<pseudonym hex>`.

use medledger_types::Hash;
use serde_json::Value;

/// Largest record accepted (FHIR JSON bytes).
pub use medledger_types::limits::MAX_RECORD_BYTES;

/// Every resource type of FHIR R4 (4.0.1).
pub const R4_RESOURCE_TYPES: &[&str] = &[
    "Account",
    "ActivityDefinition",
    "AdverseEvent",
    "AllergyIntolerance",
    "Appointment",
    "AppointmentResponse",
    "AuditEvent",
    "Basic",
    "Binary",
    "BiologicallyDerivedProduct",
    "BodyStructure",
    "Bundle",
    "CapabilityStatement",
    "CarePlan",
    "CareTeam",
    "CatalogEntry",
    "ChargeItem",
    "ChargeItemDefinition",
    "Claim",
    "ClaimResponse",
    "ClinicalImpression",
    "CodeSystem",
    "Communication",
    "CommunicationRequest",
    "CompartmentDefinition",
    "Composition",
    "ConceptMap",
    "Condition",
    "Consent",
    "Contract",
    "Coverage",
    "CoverageEligibilityRequest",
    "CoverageEligibilityResponse",
    "DetectedIssue",
    "Device",
    "DeviceDefinition",
    "DeviceMetric",
    "DeviceRequest",
    "DeviceUseStatement",
    "DiagnosticReport",
    "DocumentManifest",
    "DocumentReference",
    "EffectEvidenceSynthesis",
    "Encounter",
    "Endpoint",
    "EnrollmentRequest",
    "EnrollmentResponse",
    "EpisodeOfCare",
    "EventDefinition",
    "Evidence",
    "EvidenceVariable",
    "ExampleScenario",
    "ExplanationOfBenefit",
    "FamilyMemberHistory",
    "Flag",
    "Goal",
    "GraphDefinition",
    "Group",
    "GuidanceResponse",
    "HealthcareService",
    "ImagingStudy",
    "Immunization",
    "ImmunizationEvaluation",
    "ImmunizationRecommendation",
    "ImplementationGuide",
    "InsurancePlan",
    "Invoice",
    "Library",
    "Linkage",
    "List",
    "Location",
    "Measure",
    "MeasureReport",
    "Media",
    "Medication",
    "MedicationAdministration",
    "MedicationDispense",
    "MedicationKnowledge",
    "MedicationRequest",
    "MedicationStatement",
    "MedicinalProduct",
    "MedicinalProductAuthorization",
    "MedicinalProductContraindication",
    "MedicinalProductIndication",
    "MedicinalProductIngredient",
    "MedicinalProductInteraction",
    "MedicinalProductManufactured",
    "MedicinalProductPackaged",
    "MedicinalProductPharmaceutical",
    "MedicinalProductUndesirableEffect",
    "MessageDefinition",
    "MessageHeader",
    "MolecularSequence",
    "NamingSystem",
    "NutritionOrder",
    "Observation",
    "ObservationDefinition",
    "OperationDefinition",
    "OperationOutcome",
    "Organization",
    "OrganizationAffiliation",
    "Parameters",
    "Patient",
    "PaymentNotice",
    "PaymentReconciliation",
    "Person",
    "PlanDefinition",
    "Practitioner",
    "PractitionerRole",
    "Procedure",
    "Provenance",
    "Questionnaire",
    "QuestionnaireResponse",
    "RelatedPerson",
    "RequestGroup",
    "ResearchDefinition",
    "ResearchElementDefinition",
    "ResearchStudy",
    "ResearchSubject",
    "RiskAssessment",
    "RiskEvidenceSynthesis",
    "Schedule",
    "SearchParameter",
    "ServiceRequest",
    "Slot",
    "Specimen",
    "SpecimenDefinition",
    "StructureDefinition",
    "StructureMap",
    "Subscription",
    "Substance",
    "SubstanceNucleicAcid",
    "SubstancePolymer",
    "SubstanceProtein",
    "SubstanceReferenceInformation",
    "SubstanceSourceMaterial",
    "SubstanceSpecification",
    "SupplyDelivery",
    "SupplyRequest",
    "Task",
    "TerminologyCapabilities",
    "TestReport",
    "TestScript",
    "ValueSet",
    "VerificationResult",
    "VisionPrescription",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FhirError {
    #[error("record is {0} bytes, above the limit of {MAX_RECORD_BYTES}")]
    Oversize(usize),
    #[error("record is not valid JSON: {0}")]
    Json(String),
    #[error("record is not a FHIR resource: {0}")]
    NotResource(&'static str),
    #[error("unknown FHIR R4 resourceType `{0}`")]
    UnknownType(String),
    #[error("{rtype} has no subject or patient reference")]
    NoSubject { rtype: String },
    #[error("{rtype} is about `{found}`, not this patient (`{expected}`)")]
    WrongSubject { rtype: String, found: String, expected: String },
    #[error("bundle entry {0}: {1}")]
    Entry(usize, Box<FhirError>),
}

/// The reference a record must use for its patient.
pub fn patient_reference(pseudonym: &Hash) -> String {
    format!("Patient/{}", pseudonym.to_hex())
}

/// Checks a record for `patient`; returns its `resourceType`.
pub fn check(bytes: &[u8], patient: &Hash) -> Result<String, FhirError> {
    if bytes.len() > MAX_RECORD_BYTES {
        return Err(FhirError::Oversize(bytes.len()));
    }
    let v: Value = serde_json::from_slice(bytes).map_err(|e| FhirError::Json(e.to_string()))?;
    check_value(&v, &patient_reference(patient))
}

/// Checks only that `v` is a FHIR R4 resource with a known `resourceType` (no subject rule);
/// for resources that are not patient records, such as exported AuditEvents.
pub fn check_resource_type(v: &Value) -> Result<String, FhirError> {
    let obj = v.as_object().ok_or(FhirError::NotResource("top level is not a JSON object"))?;
    let rtype =
        obj.get("resourceType").and_then(Value::as_str).ok_or(FhirError::NotResource("no resourceType string"))?;
    if !R4_RESOURCE_TYPES.contains(&rtype) {
        return Err(FhirError::UnknownType(rtype.to_string()));
    }
    Ok(rtype.to_string())
}

fn check_value(v: &Value, expected: &str) -> Result<String, FhirError> {
    let rtype = check_resource_type(v)?;
    let obj = v.as_object().ok_or(FhirError::NotResource("top level is not a JSON object"))?;
    match rtype.as_str() {
        "Bundle" => {
            let entries = obj.get("entry").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
            for (i, e) in entries.iter().enumerate() {
                if let Some(r) = e.get("resource") {
                    check_value(r, expected).map_err(|err| FhirError::Entry(i, Box::new(err)))?;
                }
            }
        }
        "Patient" => {
            let id = obj.get("id").and_then(Value::as_str).unwrap_or("");
            let found = format!("Patient/{id}");
            if found != expected {
                return Err(FhirError::WrongSubject { rtype, found, expected: expected.into() });
            }
        }
        _ => {
            let reference = ["subject", "patient"]
                .iter()
                .find_map(|f| obj.get(*f))
                .and_then(|s| s.get("reference"))
                .and_then(Value::as_str)
                .ok_or_else(|| FhirError::NoSubject { rtype: rtype.clone() })?;
            if reference != expected {
                return Err(FhirError::WrongSubject { rtype, found: reference.into(), expected: expected.into() });
            }
        }
    }
    Ok(rtype)
}
