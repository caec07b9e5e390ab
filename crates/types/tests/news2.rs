//! NEWS2 against the Royal College of Physicians' chart (NEWS2, 2017, chart 1): every band
//! boundary on both sides of each parameter, SpO₂ scale 2 with and without oxygen, the risk
//! levels, and impossible values. The expected scores are read off the chart, value by value;
//! they are not computed.

use medledger_types::care::news2::{Consciousness, Observations, Risk};

/// A set that scores 0 everywhere: a well adult on air.
fn well() -> Observations {
    Observations {
        respiratory_rate: 16.0,
        spo2: 97.0,
        spo2_scale: 1,
        on_oxygen: false,
        systolic_bp: 120.0,
        pulse: 70.0,
        consciousness: Consciousness::A,
        temperature: 37.0,
    }
}

fn sub(o: &Observations) -> [u8; 7] {
    o.score().unwrap().subscores.all()
}

#[test]
fn a_well_patient_scores_zero_and_low() {
    let s = well().score().unwrap();
    assert_eq!(s.total, 0);
    assert_eq!(s.risk, Risk::Low);
}

#[test]
fn respiration_rate_bands() {
    // Chart: ≤8 → 3 | 9–11 → 1 | 12–20 → 0 | 21–24 → 2 | ≥25 → 3
    for (rr, want) in [(0, 3), (8, 3), (9, 1), (11, 1), (12, 0), (20, 0), (21, 2), (24, 2), (25, 3), (60, 3)] {
        let o = Observations { respiratory_rate: rr as f64, ..well() };
        assert_eq!(sub(&o)[0], want, "respiratory rate {rr}");
    }
}

#[test]
fn spo2_scale_1_bands() {
    // Chart: ≤91 → 3 | 92–93 → 2 | 94–95 → 1 | ≥96 → 0
    for (s, want) in [(70, 3), (91, 3), (92, 2), (93, 2), (94, 1), (95, 1), (96, 0), (100, 0)] {
        for on_oxygen in [false, true] {
            let o = Observations { spo2: s as f64, on_oxygen, ..well() };
            assert_eq!(sub(&o)[1], want, "SpO2 {s} scale 1, oxygen {on_oxygen}");
        }
    }
}

#[test]
fn spo2_scale_2_on_air() {
    // Chart: ≤83 → 3 | 84–85 → 2 | 86–87 → 1 | 88–92 → 0 | ≥93 on air → 0
    for (s, want) in
        [(80, 3), (83, 3), (84, 2), (85, 2), (86, 1), (87, 1), (88, 0), (92, 0), (93, 0), (97, 0), (100, 0)]
    {
        let o = Observations { spo2: s as f64, spo2_scale: 2, on_oxygen: false, ..well() };
        assert_eq!(sub(&o)[1], want, "SpO2 {s} scale 2 on air");
        assert_eq!(sub(&o)[2], 0, "air scores 0");
    }
}

#[test]
fn spo2_scale_2_on_oxygen() {
    // Chart: ≤83 → 3 | 84–85 → 2 | 86–87 → 1 | 88–92 → 0 | 93–94 → 1 | 95–96 → 2 | ≥97 → 3
    for (s, want) in [
        (83, 3),
        (84, 2),
        (85, 2),
        (86, 1),
        (87, 1),
        (88, 0),
        (92, 0),
        (93, 1),
        (94, 1),
        (95, 2),
        (96, 2),
        (97, 3),
        (100, 3),
    ] {
        let o = Observations { spo2: s as f64, spo2_scale: 2, on_oxygen: true, ..well() };
        assert_eq!(sub(&o)[1], want, "SpO2 {s} scale 2 on oxygen");
        assert_eq!(sub(&o)[2], 2, "oxygen scores 2");
    }
}

#[test]
fn air_or_oxygen() {
    // Chart: oxygen → 2 | air → 0
    assert_eq!(sub(&Observations { on_oxygen: true, ..well() })[2], 2);
    assert_eq!(sub(&Observations { on_oxygen: false, ..well() })[2], 0);
}

#[test]
fn systolic_bp_bands() {
    // Chart: ≤90 → 3 | 91–100 → 2 | 101–110 → 1 | 111–219 → 0 | ≥220 → 3
    for (bp, want) in [(60, 3), (90, 3), (91, 2), (100, 2), (101, 1), (110, 1), (111, 0), (219, 0), (220, 3), (250, 3)]
    {
        let o = Observations { systolic_bp: bp as f64, ..well() };
        assert_eq!(sub(&o)[3], want, "systolic {bp}");
    }
}

#[test]
fn pulse_bands() {
    // Chart: ≤40 → 3 | 41–50 → 1 | 51–90 → 0 | 91–110 → 1 | 111–130 → 2 | ≥131 → 3
    for (p, want) in [
        (30, 3),
        (40, 3),
        (41, 1),
        (50, 1),
        (51, 0),
        (90, 0),
        (91, 1),
        (110, 1),
        (111, 2),
        (130, 2),
        (131, 3),
        (180, 3),
    ] {
        let o = Observations { pulse: p as f64, ..well() };
        assert_eq!(sub(&o)[4], want, "pulse {p}");
    }
}

#[test]
fn consciousness_acvpu() {
    // Chart: Alert → 0 | CVPU → 3
    for (c, want) in [
        (Consciousness::A, 0),
        (Consciousness::C, 3),
        (Consciousness::V, 3),
        (Consciousness::P, 3),
        (Consciousness::U, 3),
    ] {
        assert_eq!(sub(&Observations { consciousness: c, ..well() })[5], want, "{c:?}");
    }
}

#[test]
fn temperature_bands() {
    // Chart: ≤35.0 → 3 | 35.1–36.0 → 1 | 36.1–38.0 → 0 | 38.1–39.0 → 1 | ≥39.1 → 2
    for (t, want) in
        [(33.0, 3), (35.0, 3), (35.1, 1), (36.0, 1), (36.1, 0), (38.0, 0), (38.1, 1), (39.0, 1), (39.1, 2), (41.0, 2)]
    {
        let o = Observations { temperature: t, ..well() };
        assert_eq!(sub(&o)[6], want, "temperature {t}");
    }
}

#[test]
fn risk_levels() {
    // Chart 2: 0–4 low; a single 3 (red score) low–medium; 5–6 medium; ≥7 high.
    let total_4 = Observations { respiratory_rate: 22.0, pulse: 115.0, ..well() }; // 2 + 2
    let s = total_4.score().unwrap();
    assert_eq!((s.total, s.risk), (4, Risk::Low));
    let red = Observations { consciousness: Consciousness::V, ..well() }; // 3
    let s = red.score().unwrap();
    assert_eq!((s.total, s.risk), (3, Risk::LowMedium));
    let five = Observations { respiratory_rate: 22.0, pulse: 115.0, temperature: 38.5, ..well() }; // 2+2+1
    let s = five.score().unwrap();
    assert_eq!((s.total, s.risk), (5, Risk::Medium));
    let six_with_red = Observations { consciousness: Consciousness::C, pulse: 115.0, temperature: 38.5, ..well() }; // 3+2+1
    let s = six_with_red.score().unwrap();
    assert_eq!((s.total, s.risk), (6, Risk::Medium), "5–6 is medium even with a red score");
    let seven = Observations { respiratory_rate: 26.0, pulse: 115.0, systolic_bp: 105.0, temperature: 38.5, ..well() }; // 3+2+1+1
    let s = seven.score().unwrap();
    assert_eq!((s.total, s.risk), (7, Risk::High));
    let worst = Observations {
        respiratory_rate: 30.0,
        spo2: 85.0,
        spo2_scale: 1,
        on_oxygen: true,
        systolic_bp: 85.0,
        pulse: 140.0,
        consciousness: Consciousness::U,
        temperature: 34.0,
    };
    let s = worst.score().unwrap();
    assert_eq!((s.total, s.risk), (20, Risk::High), "3+3+2+3+3+3+3");
}

#[test]
fn impossible_values_are_refused_naming_the_field() {
    let cases: [(Observations, &str); 7] = [
        (Observations { spo2: 140.0, ..well() }, "spo2"),
        (Observations { pulse: -5.0, ..well() }, "pulse"),
        (Observations { respiratory_rate: -1.0, ..well() }, "respiratory_rate"),
        (Observations { systolic_bp: 900.0, ..well() }, "systolic_bp"),
        (Observations { temperature: 60.0, ..well() }, "temperature"),
        (Observations { temperature: f64::NAN, ..well() }, "temperature"),
        (Observations { spo2_scale: 3, ..well() }, "spo2_scale"),
    ];
    for (o, field) in cases {
        let e = o.score().unwrap_err();
        assert_eq!(e.field, field, "{e}");
        assert!(e.to_string().starts_with(field), "{e}");
    }
    let e = Observations { pulse: 70.5, ..well() }.score().unwrap_err();
    assert_eq!(e.field, "pulse");
    assert!(e.rule.contains("whole number"), "{e}");
}
