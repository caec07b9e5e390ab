//! Alarm causes (`care::alarm`): NEWS2 medium or high risk, and per-patient threshold rules.

use medledger_types::care::alarm::{causes, Cause, Cmp, Param, Rule};
use medledger_types::care::news2::{Consciousness, Observations, Risk};
use medledger_types::care::vitals::Vital;

fn set(pulse: f64, rr: f64) -> Observations {
    Observations {
        respiratory_rate: rr,
        spo2: 97.0,
        spo2_scale: 1,
        on_oxygen: false,
        systolic_bp: 120.0,
        pulse,
        consciousness: Consciousness::A,
        temperature: 37.0,
    }
}

#[test]
fn rules_parse_and_refuse_with_the_reason() {
    assert_eq!("pulse > 130".parse::<Rule>().unwrap(), Rule { param: Param::Pulse, cmp: Cmp::Gt, threshold: 130.0 });
    assert_eq!("heart_rate>130".parse::<Rule>().unwrap().param, Param::Pulse);
    assert_eq!("spo2 <= 90".parse::<Rule>().unwrap().cmp, Cmp::Le);
    assert_eq!("temperature>=39.5".parse::<Rule>().unwrap().to_string(), "temperature >= 39.5");
    let e = "pulse 130".parse::<Rule>().unwrap_err();
    assert!(e.contains("expected PARAMETER OP NUMBER"), "{e}");
    let e = "mood > 3".parse::<Rule>().unwrap_err();
    assert!(e.starts_with("`mood` is not a monitored parameter"), "{e}");
    let e = "pulse > lots".parse::<Rule>().unwrap_err();
    assert_eq!(e, "`lots` is not a number");
    assert!("pulse > NaN".parse::<Rule>().is_err());
}

#[test]
fn medium_and_high_risk_raise_an_alarm_low_medium_does_not() {
    let low = set(70.0, 16.0).score().unwrap();
    assert!(causes(Some(&low), &Vital::HeartRate(70.0), &[]).is_empty());
    let red = set(131.0, 16.0).score().unwrap(); // pulse 3: low-medium
    assert_eq!(red.risk, Risk::LowMedium);
    assert!(causes(Some(&red), &Vital::HeartRate(131.0), &[]).is_empty());
    let medium = set(131.0, 22.0).score().unwrap(); // 3 + 2
    assert_eq!(causes(Some(&medium), &Vital::RespiratoryRate(22.0), &[]), [Cause::Risk(Risk::Medium)]);
    let six = set(131.0, 25.0).score().unwrap(); // pulse 3 + respiration 3
    assert_eq!((six.total, six.risk), (6, Risk::Medium));
    let high = Observations { temperature: 39.5, ..set(131.0, 25.0) }.score().unwrap(); // 3 + 3 + 2 = 8
    assert_eq!(causes(Some(&high), &Vital::Temperature(39.5), &[]), [Cause::Risk(Risk::High)]);
}

#[test]
fn a_rule_fires_on_its_own_parameter_only() {
    let rules: Vec<Rule> =
        ["pulse > 130", "spo2 < 92", "diastolic_bp >= 110"].iter().map(|r| r.parse().unwrap()).collect();
    assert_eq!(causes(None, &Vital::HeartRate(131.0), &rules), [Cause::Rule(0, rules[0])]);
    assert!(causes(None, &Vital::HeartRate(130.0), &rules).is_empty(), "> is strict");
    assert!(causes(None, &Vital::RespiratoryRate(140.0), &rules).is_empty(), "another parameter");
    assert_eq!(causes(None, &Vital::SpO2(91.0), &rules), [Cause::Rule(1, rules[1])]);
    assert_eq!(
        causes(None, &Vital::BloodPressure { systolic: 180.0, diastolic: 110.0 }, &rules),
        [Cause::Rule(2, rules[2])]
    );
}
