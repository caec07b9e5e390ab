//! DEA behaviour beyond the published fixtures: edge cases, error paths,
#![allow(clippy::needless_range_loop)]
//! scaling, duplicates and the certified acceleration.

use medledger_analytics::dea::{self, synthetic, DeaData, DeaOptions, Orientation, Rts, RtsLabel};
use medledger_analytics::table::Table;
use medledger_analytics::AnalyticsError;

fn data(rows: &[(&str, &[f64], &[f64])]) -> medledger_analytics::Result<DeaData> {
    let m = rows[0].1.len();
    let s = rows[0].2.len();
    DeaData::validated(
        "test",
        rows.iter().map(|r| r.0.to_string()).collect(),
        (1..=m).map(|i| format!("x{i}")).collect(),
        (1..=s).map(|r| format!("y{r}")).collect(),
        rows.iter().map(|r| r.1.to_vec()).collect(),
        rows.iter().map(|r| r.2.to_vec()).collect(),
        None,
    )
}

fn table(text: &str) -> Table {
    Table::from_reader("t.csv", text.as_bytes()).unwrap()
}

fn cols(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn zero_output_dmu_in_output_orientation_is_unbounded_with_te_zero() {
    let d =
        data(&[("A", &[2.0], &[2.0]), ("B", &[4.0], &[3.0]), ("Z", &[3.0], &[0.0]), ("C", &[5.0], &[5.0])]).unwrap();
    for rts in [Rts::Crs, Rts::Vrs] {
        let rep = dea::run(&d, &DeaOptions::new(Orientation::Output, rts)).unwrap();
        let z = &rep.dmus[2];
        assert_eq!(z.te, 0.0);
        assert_eq!(z.raw, None);
        assert!(z.note.as_deref().unwrap().contains("unbounded"), "{:?}", z.note);
        assert!(z.slack_in.is_empty() && z.peers.is_empty());
        // The others are unaffected: C is efficient under both.
        assert!((rep.dmus[3].te - 1.0).abs() < 1e-9);
        assert!(rep.dmus[0].note.is_none());
    }
    // Input orientation: the zero-output DMU has theta determined by the cheapest
    // DMU under VRS (2/3) and 0 under CRS.
    let rep = dea::run(&d, &DeaOptions::new(Orientation::Input, Rts::Vrs)).unwrap();
    assert!((rep.dmus[2].vrste.unwrap() - 2.0 / 3.0).abs() < 1e-7);
    assert!(rep.dmus[2].crste.unwrap().abs() < 1e-7);
}

#[test]
fn duplicated_dmus_get_identical_results() {
    let rows: Vec<(&str, &[f64], &[f64])> = vec![
        ("A", &[2.0, 5.0], &[1.0]),
        ("B", &[2.0, 4.0], &[2.0]),
        ("B2", &[2.0, 4.0], &[2.0]),
        ("C", &[6.0, 6.0], &[3.0]),
        ("D", &[3.0, 2.0], &[1.0]),
        ("D2", &[3.0, 2.0], &[1.0]),
        ("E", &[6.0, 2.0], &[2.0]),
    ];
    let d = data(&rows).unwrap();
    for orientation in [Orientation::Input, Orientation::Output] {
        let rep = dea::run(&d, &DeaOptions::new(orientation, Rts::Vrs)).unwrap();
        for (a, b) in [(1, 2), (4, 5)] {
            let (x, y) = (&rep.dmus[a], &rep.dmus[b]);
            assert!((x.te - y.te).abs() < 1e-9);
            assert!((x.crste.unwrap() - y.crste.unwrap()).abs() < 1e-9);
            assert_eq!(x.rts, y.rts);
            let sx: f64 = x.slack_in.iter().chain(&x.slack_out).sum();
            let sy: f64 = y.slack_in.iter().chain(&y.slack_out).sum();
            assert!((sx - sy).abs() < 1e-7);
        }
        // Duplicating DMUs does not change anyone's score (DEAP eg1 without copies).
        let base = data(&[rows[0], rows[1], rows[3], rows[4], rows[6]]).unwrap();
        let rb = dea::run(&base, &DeaOptions::new(orientation, Rts::Vrs)).unwrap();
        for (i, j) in [(0, 0), (1, 1), (2, 3), (3, 4), (4, 6)] {
            assert!((rb.dmus[i].te - rep.dmus[j].te).abs() < 1e-9);
            assert!((rb.dmus[i].crste.unwrap() - rep.dmus[j].crste.unwrap()).abs() < 1e-9);
        }
    }
}

#[test]
fn scale_1e8_matches_unscaled() {
    let text = synthetic::generate_csv(120, 3);
    let t = table(&text);
    let (ins, outs) = (cols(&["X1", "X2", "X3"]), cols(&["Y1", "Y2"]));
    let d = DeaData::from_table(&t, "id", &ins, &outs, None).unwrap();
    let mut big = d.clone();
    for r in big.x.iter_mut() {
        r[0] *= 1e8;
        r[2] *= 1e8;
    }
    for r in big.y.iter_mut() {
        r[1] *= 1e8;
    }
    for orientation in [Orientation::Input, Orientation::Output] {
        let a = dea::run(&d, &DeaOptions::new(orientation, Rts::Vrs)).unwrap();
        let b = dea::run(&big, &DeaOptions::new(orientation, Rts::Vrs)).unwrap();
        for (p, q) in a.dmus.iter().zip(&b.dmus) {
            assert!((p.te - q.te).abs() < 1e-8, "{} {} {}", p.id, p.te, q.te);
            assert!((p.crste.unwrap() - q.crste.unwrap()).abs() < 1e-8);
            assert!((p.nirste.unwrap() - q.nirste.unwrap()).abs() < 1e-8);
            assert_eq!(p.rts, q.rts, "{}", p.id);
            let fx = [1e8, 1.0, 1e8];
            for i in 0..3 {
                assert!((p.target_in[i] * fx[i] - q.target_in[i]).abs() <= 1e-6 * (1.0 + q.target_in[i].abs()));
            }
            let fy = [1.0, 1e8];
            for r in 0..2 {
                assert!((p.target_out[r] * fy[r] - q.target_out[r]).abs() <= 1e-6 * (1.0 + q.target_out[r].abs()));
            }
        }
    }
}

/// The reduced (Pareto + frontier + dual-certified) solve equals the plain
/// full-set solve for every model and orientation.
#[test]
fn accelerated_solve_matches_full_solve() {
    let text = synthetic::generate_csv(250, 99);
    let t = table(&text);
    let d = DeaData::from_table(&t, "id", &cols(&["X1", "X2", "X3"]), &cols(&["Y1", "Y2"]), Some("region")).unwrap();
    for orientation in [Orientation::Input, Orientation::Output] {
        for rts in [Rts::Crs, Rts::Vrs, Rts::Nirs] {
            let fast = dea::run(&d, &DeaOptions::new(orientation, rts)).unwrap();
            let mut o = DeaOptions::new(orientation, rts);
            o.accelerate = false;
            let full = dea::run(&d, &o).unwrap();
            assert!(fast.stats.non_dominated < 250);
            for (a, b) in fast.dmus.iter().zip(&full.dmus) {
                assert!((a.te - b.te).abs() < 1e-7, "{orientation:?} {rts:?} {}: {} vs {}", a.id, a.te, b.te);
                assert_eq!(a.rts, b.rts);
                let sa: f64 = a.slack_in.iter().chain(&a.slack_out).sum();
                let sb: f64 = b.slack_in.iter().chain(&b.slack_out).sum();
                assert!(
                    (sa - sb).abs() <= 1e-5 * (1.0 + sb),
                    "{orientation:?} {rts:?} {}: slack sum {sa} vs {sb}",
                    a.id
                );
            }
            // Scale and RTS bookkeeping: CRS <= NIRS <= VRS scores.
            if rts == Rts::Vrs {
                for a in &fast.dmus {
                    let (c, v, n) = (a.crste.unwrap(), a.vrste.unwrap(), a.nirste.unwrap());
                    assert!(c <= n + 1e-9 && n <= v + 1e-9, "{}: {c} {n} {v}", a.id);
                    assert!((a.scale.unwrap() - c / v).abs() < 1e-12);
                    match a.rts.unwrap() {
                        RtsLabel::Constant => assert!((c - v).abs() < 1e-5),
                        RtsLabel::Decreasing => assert!((n - v).abs() < 1e-5 && (c - v).abs() > 1e-7),
                        RtsLabel::Increasing => assert!((n - v).abs() > 1e-7),
                    }
                }
                // Group means: 8 regions + "all", consistent with the DMUs.
                assert_eq!(fast.group_means.len(), 9);
                let all = fast.group_means.last().unwrap();
                let mean = fast.dmus.iter().map(|d| d.vrste.unwrap()).sum::<f64>() / 250.0;
                assert!((all.vrste.unwrap() - mean).abs() < 1e-12);
                let g = &fast.group_means[0];
                let members: Vec<_> = fast.dmus.iter().filter(|d| d.group.as_deref() == Some(&g.group)).collect();
                assert_eq!(g.n, members.len());
                let m = members.iter().map(|d| d.scale.unwrap()).sum::<f64>() / members.len() as f64;
                assert!((g.scale.unwrap() - m).abs() < 1e-12);
            }
            // Targets are feasible projections: the peers' combination reproduces them.
            for a in fast.dmus.iter().take(40) {
                for i in 0..3 {
                    let comb: f64 =
                        a.peers.iter().map(|(p, l)| l * d.x[d.ids.iter().position(|x| x == p).unwrap()][i]).sum();
                    assert!(
                        (comb - a.target_in[i]).abs() <= 1e-5 * (1.0 + comb),
                        "{} input {i}: {comb} vs {}",
                        a.id,
                        a.target_in[i]
                    );
                }
            }
        }
    }
}

#[test]
fn error_missing_column() {
    let t = table("id,x,y\nA,1,2\nB,2,3\n");
    let e = DeaData::from_table(&t, "id", &cols(&["x", "beds"]), &cols(&["y"]), None).unwrap_err();
    assert!(matches!(e, AnalyticsError::MissingColumn { ref column, .. } if column == "beds"), "{e}");
    assert!(e.to_string().contains("'beds'") && e.to_string().contains("id, x, y"), "{e}");
    let e = DeaData::from_table(&t, "province", &cols(&["x"]), &cols(&["y"]), None).unwrap_err();
    assert!(e.to_string().contains("'province'"));
    let e = DeaData::from_table(&t, "id", &cols(&["x"]), &cols(&["y"]), Some("region")).unwrap_err();
    assert!(e.to_string().contains("'region'"));
}

#[test]
fn error_non_numeric_nan_negative() {
    let t = table("id,x,y\nA,1,2\nB,two,3\n");
    let e = DeaData::from_table(&t, "id", &cols(&["x"]), &cols(&["y"]), None).unwrap_err();
    assert!(matches!(e, AnalyticsError::NonNumeric { row: 3, .. }), "{e}");
    assert!(e.to_string().contains("row 3, column 'x': 'two' is not a number"), "{e}");

    let t = table("id,x,y\nA,1,2\nB,2,NaN\n");
    let e = DeaData::from_table(&t, "id", &cols(&["x"]), &cols(&["y"]), None).unwrap_err();
    assert!(matches!(e, AnalyticsError::NotFinite { row: 3, .. }), "{e}");
    assert!(e.to_string().contains("column 'y'"));

    let t = table("id,x,y\nA,1,2\nB,2,3\nC,-4,1\n");
    let e = DeaData::from_table(&t, "id", &cols(&["x"]), &cols(&["y"]), None).unwrap_err();
    assert!(matches!(e, AnalyticsError::Negative { row: 4, .. }), "{e}");
    assert!(e.to_string().contains("negative value -4"));

    let t = table("id,x,y\nA,1,2\nB,,3\n");
    assert!(matches!(
        DeaData::from_table(&t, "id", &cols(&["x"]), &cols(&["y"]), None),
        Err(AnalyticsError::NonNumeric { .. })
    ));
}

#[test]
fn error_all_zero_inputs_and_zero_columns() {
    let t = table("id,x1,x2,y\nA,1,2,2\nB,0,0,3\n");
    let e = DeaData::from_table(&t, "id", &cols(&["x1", "x2"]), &cols(&["y"]), None).unwrap_err();
    assert!(matches!(e, AnalyticsError::AllZeroInputs { row: 3, ref id, .. } if id == "B"), "{e}");
    let t = table("id,x1,x2,y\nA,1,0,2\nB,3,0,3\n");
    let e = DeaData::from_table(&t, "id", &cols(&["x1", "x2"]), &cols(&["y"]), None).unwrap_err();
    assert!(matches!(e, AnalyticsError::ZeroColumn { ref column, .. } if column == "x2"), "{e}");
    let t = table("id,x,y\nA,1,0\nB,3,0\n");
    let e = DeaData::from_table(&t, "id", &cols(&["x"]), &cols(&["y"]), None).unwrap_err();
    assert!(matches!(e, AnalyticsError::ZeroColumn { .. }), "{e}");
}

#[test]
fn error_usage_and_empty() {
    let t = table("id,x,y\nA,1,2\n");
    assert!(matches!(DeaData::from_table(&t, "id", &[], &cols(&["y"]), None), Err(AnalyticsError::Usage(_))));
    assert!(matches!(
        DeaData::from_table(&t, "id", &cols(&["x"]), &cols(&["x"]), None),
        Err(AnalyticsError::DuplicateColumn { .. })
    ));
    assert!(matches!(Table::from_reader("e.csv", "id,x,y\n".as_bytes()), Err(AnalyticsError::Empty { .. })));
    assert!(matches!(Table::from_reader("r.csv", "id,x,y\nA,1\n".as_bytes()), Err(AnalyticsError::Csv { .. })));
}

#[test]
fn few_dmus_is_a_warning_not_an_error() {
    // 5 DMUs, 2 inputs + 1 output: max(3*3, 2) = 9 > 5.
    let d = data(&[
        ("1", &[2.0, 5.0], &[1.0]),
        ("2", &[2.0, 4.0], &[2.0]),
        ("3", &[6.0, 6.0], &[3.0]),
        ("4", &[3.0, 2.0], &[1.0]),
        ("5", &[6.0, 2.0], &[2.0]),
    ])
    .unwrap();
    assert_eq!(d.warnings.len(), 1);
    assert!(d.warnings[0].contains("max(3(m+s), m*s) = 9"), "{}", d.warnings[0]);
    let rep = dea::run(&d, &DeaOptions::new(Orientation::Input, Rts::Crs)).unwrap();
    assert_eq!(rep.warnings, d.warnings);
    // Enough DMUs: no warning.
    let text = synthetic::generate_csv(20, 1);
    let t = table(&text);
    let d = DeaData::from_table(&t, "id", &cols(&["X1", "X2", "X3"]), &cols(&["Y1", "Y2"]), None).unwrap();
    assert!(d.warnings.is_empty());
}

#[test]
fn synthetic_generator_is_deterministic() {
    assert_eq!(synthetic::generate_csv(50, 5), synthetic::generate_csv(50, 5));
    assert_ne!(synthetic::generate_csv(50, 5), synthetic::generate_csv(50, 6));
}
