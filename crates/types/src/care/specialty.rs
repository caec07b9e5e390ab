//! The specialty a referral asks for: a code of HL7's Practice Setting Code Value Set
//! (`http://hl7.org/fhir/ValueSet/c80-practice-codes`, SNOMED CT), never free text. A referral
//! carries the code on chain; people type the code or the display name, and read the display.
//!
//! The table is the value set's enumeration as FHIR R4 (4.0.1) ships it, each code once (the
//! value set names two codes twice, under two displays; the first is kept).

/// The code system of every code in [`ALL`].
pub const SYSTEM: &str = "http://snomed.info/sct";

/// The value set's canonical URL.
pub const VALUE_SET: &str = "http://hl7.org/fhir/ValueSet/c80-practice-codes";

/// Every specialty: (SNOMED CT code, display), in the value set's order.
pub const ALL: &[(&str, &str)] = &[
    ("408467006", "Adult mental illness"),
    ("394577000", "Anesthetics"),
    ("394578005", "Audiological medicine"),
    ("421661004", "Blood banking and transfusion medicine"),
    ("408462000", "Burns care"),
    ("394579002", "Cardiology"),
    ("394804000", "Clinical cytogenetics and molecular genetics"),
    ("394580004", "Clinical genetics"),
    ("394803006", "Clinical hematology"),
    ("408480009", "Clinical immunology"),
    ("408454008", "Clinical microbiology"),
    ("394809005", "Clinical neuro-physiology"),
    ("394592004", "Clinical oncology"),
    ("394600006", "Clinical pharmacology"),
    ("394601005", "Clinical physiology"),
    ("394581000", "Community medicine"),
    ("408478003", "Critical care medicine"),
    ("394812008", "Dental medicine specialties"),
    ("408444009", "Dental-General dental practice"),
    ("394582007", "Dermatology"),
    ("408475000", "Diabetic medicine"),
    ("410005002", "Dive medicine"),
    ("394583002", "Endocrinology"),
    ("419772000", "Family practice"),
    ("394584008", "Gastroenterology"),
    ("408443003", "General medical practice"),
    ("394802001", "General medicine"),
    ("394915009", "General pathology"),
    ("394814009", "General practice"),
    ("394808002", "Genito-urinary medicine"),
    ("394811001", "Geriatric medicine"),
    ("408446006", "Gynecological oncology"),
    ("394586005", "Gynecology"),
    ("394916005", "Hematopathology"),
    ("408472002", "Hepatology"),
    ("394597005", "Histopathology"),
    ("394598000", "Immunopathology"),
    ("394807007", "Infectious diseases"),
    ("419192003", "Internal medicine"),
    ("408468001", "Learning disability"),
    ("394593009", "Medical oncology"),
    ("394813003", "Medical ophthalmology"),
    ("410001006", "Military medicine"),
    ("394589003", "Nephrology"),
    ("394591006", "Neurology"),
    ("394599008", "Neuropathology"),
    ("394649004", "Nuclear medicine"),
    ("408470005", "Obstetrics"),
    ("394585009", "Obstetrics and gynecology"),
    ("394821009", "Occupational medicine"),
    ("422191005", "Ophthalmic surgery"),
    ("394594003", "Ophthalmology"),
    ("416304004", "Osteopathic manipulative medicine"),
    ("418960008", "Otolaryngology"),
    ("394882004", "Pain management"),
    ("394806003", "Palliative medicine"),
    ("394588006", "Pediatric (Child and adolescent) psychiatry"),
    ("408459003", "Pediatric cardiology"),
    ("394607009", "Pediatric dentistry"),
    ("419610006", "Pediatric endocrinology"),
    ("418058008", "Pediatric gastroenterology"),
    ("420208008", "Pediatric genetics"),
    ("418652005", "Pediatric hematology"),
    ("418535003", "Pediatric immunology"),
    ("418862001", "Pediatric infectious diseases"),
    ("419365004", "Pediatric nephrology"),
    ("418002000", "Pediatric oncology"),
    ("419983000", "Pediatric ophthalmology"),
    ("419170002", "Pediatric pulmonology"),
    ("419472004", "Pediatric rheumatology"),
    ("394539006", "Pediatric surgery"),
    ("420112009", "Pediatric surgery-bone marrow transplantation"),
    ("409968004", "Preventive medicine"),
    ("394587001", "Psychiatry"),
    ("394913002", "Psychotherapy"),
    ("408440000", "Public health medicine"),
    ("418112009", "Pulmonary medicine"),
    ("419815003", "Radiation oncology"),
    ("394914008", "Radiology"),
    ("408455009", "Radiology-Interventional radiology"),
    ("394602003", "Rehabilitation"),
    ("408447002", "Respite care"),
    ("394810000", "Rheumatology"),
    ("408450004", "Sleep studies"),
    ("408476004", "Surgery-Bone and marrow transplantation"),
    ("408469009", "Surgery-Breast surgery"),
    ("408466002", "Surgery-Cardiac surgery"),
    ("408471009", "Surgery-Cardiothoracic transplantation"),
    ("408464004", "Surgery-Colorectal surgery"),
    ("408441001", "Surgery-Dental-Endodontics"),
    ("408465003", "Surgery-Dental-Oral and maxillofacial surgery"),
    ("394605001", "Surgery-Dental-Oral surgery"),
    ("394608004", "Surgery-Dental-Orthodontics"),
    ("408461007", "Surgery-Dental-Periodontal surgery"),
    ("408460008", "Surgery-Dental-Prosthetic dentistry (Prosthodontics)"),
    ("394606000", "Surgery-Dentistry-Restorative dentistry"),
    ("408449004", "Surgery-Dentistry--surgical"),
    ("418018006", "Surgery-Dermatologic surgery"),
    ("394604002", "Surgery-Ear, nose and throat surgery"),
    ("394609007", "Surgery-general"),
    ("408474001", "Surgery-Hepatobiliary and pancreatic surgery"),
    ("394610002", "Surgery-Neurosurgery"),
    ("394611003", "Surgery-Plastic surgery"),
    ("408477008", "Surgery-Transplantation surgery"),
    ("394801008", "Surgery-Trauma and orthopedics"),
    ("408463005", "Surgery-Vascular"),
    ("419321007", "Surgical oncology"),
    ("394576009", "Surgical-Accident & emergency"),
    ("394590007", "Thoracic medicine"),
    ("409967009", "Toxicology"),
    ("408448007", "Tropical medicine"),
    ("419043006", "Urological oncology"),
    ("394612005", "Urology"),
    ("394733009", "Medical specialty--OTHER--NOT LISTED"),
    ("394732004", "Surgical specialty--OTHER-NOT LISTED"),
];

/// The display of `code`, if it is in the value set.
pub fn display(code: &str) -> Option<&'static str> {
    ALL.iter().find(|(c, _)| *c == code).map(|(_, d)| *d)
}

/// How a stored specialty reads: its display, or the text itself if it is not a code of the
/// value set.
pub fn name(code: &str) -> &str {
    display(code).unwrap_or(code)
}

/// The code a person means by `input`: a code of the value set, or a display name in any case
/// (`cardiology`, `Cardiology`). Anything else is refused, naming the value set.
pub fn parse(input: &str) -> Result<&'static str, String> {
    let t = input.trim();
    ALL.iter().find(|(c, d)| *c == t || d.eq_ignore_ascii_case(t)).map(|(c, _)| *c).ok_or_else(|| {
        format!(
            "unknown specialty {:?}: give a code or display name of the practice setting value set \
                 (for example 394579002 or Cardiology; {} in all)",
            t.chars().take(40).collect::<String>(),
            ALL.len()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snomed_identifiers_and_names_resolve_to_them() {
        for (i, (code, d)) in ALL.iter().enumerate() {
            assert!(code.len() >= 6 && code.len() <= 18 && code.bytes().all(|b| b.is_ascii_digit()), "{code}");
            assert!(ALL[..i].iter().all(|(c, _)| c != code), "{code} twice");
            assert_eq!(parse(code), Ok(*code));
            assert_eq!(display(code), Some(*d));
        }
        assert_eq!(parse(" cardiology "), Ok("394579002"));
        assert_eq!(parse("NEPHROLOGY"), Ok("394589003"));
        assert_eq!(display("394579002"), Some("Cardiology"));
        for bad in ["", "cardio", "394579003", "chest pain, suspected MI"] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains("unknown specialty") && e.contains("practice setting"), "{e}");
        }
    }
}
