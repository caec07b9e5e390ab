//! KDE against `tests/fixtures/reference/kde_cases.json` (every case, every rule) and
//! behaviour of the binned mode, rescaling, grouping and plots.

use medledger_analytics::kde::{self, Bandwidth, KdeOptions, Mode, Rescale};
use medledger_analytics::plot;
use medledger_analytics::rng::SeededRng;
use medledger_analytics::table::Table;
use medledger_analytics::AnalyticsError;
use serde_json::Value;
use std::path::PathBuf;

fn cases() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reference/kde_cases.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reference fixture {} missing ({e}); it is part of the repository", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

#[test]
fn every_case_every_rule_within_1e12() {
    let all = cases();
    let mut checked = 0;
    for case in all["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let values = floats(&case["values"]);
        let grid = floats(&case["grid"]);
        let rules = case["rules"].as_object().unwrap();
        assert_eq!(rules.len(), 5, "{name}: expected the five documented rules");
        for (rule, exp) in rules {
            let bw: Bandwidth = rule.parse().unwrap_or_else(|_| panic!("rule {rule} not supported"));
            let h = kde::bandwidth(&values, bw).unwrap();
            let want_h = exp["h"].as_f64().unwrap();
            assert!((h - want_h).abs() <= 1e-12 * want_h, "{name}/{rule}: h {h} vs {want_h}");
            let got = kde::density_exact(&values, h, &grid);
            let want = floats(&exp["density"]);
            assert_eq!(got.len(), want.len());
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!((g - w).abs() <= 1e-12, "{name}/{rule}: grid point {i}: {g} vs {w}");
                checked += 1;
            }
            // A fixed bandwidth equal to the rule's h gives the same curve.
            let fixed = kde::density_exact(&values, want_h, &grid);
            assert!(fixed.iter().zip(&want).all(|(g, w)| (g - w).abs() <= 1e-12));
        }
    }
    assert_eq!(checked, 4 * 5 * 33);
}

/// Binned mode (linear binning on an 8x finer grid + FFT) against exact, on
/// 200,000 skewed bimodal points and a 512-point grid. Documented bound:
/// max |binned − exact| ≤ 1e-4 × peak density (measured ≈ 5e-6).
#[test]
fn binned_mode_error_is_within_documented_bound() {
    let mut rng = SeededRng::new(11);
    let x: Vec<f64> = (0..200_000)
        .map(|_| if rng.bernoulli(0.7) { rng.lognormal(3f64.ln(), 0.25) } else { rng.lognormal(5f64.ln(), 0.35) })
        .collect();
    for rule in [Bandwidth::ScipyScott, Bandwidth::Nrd0] {
        let h = kde::bandwidth(&x, rule).unwrap();
        let (lo, hi) = x.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
        let (a, b) = (lo - 3.0 * h, hi + 3.0 * h);
        let grid = kde::linspace(a, b, 512);
        let exact = kde::density_exact(&x, h, &grid);
        let binned = kde::density_binned(&x, h, a, b, 512);
        let peak = exact.iter().cloned().fold(0.0, f64::max);
        let max_abs = exact.iter().zip(&binned).map(|(e, b)| (e - b).abs()).fold(0.0, f64::max);
        assert!(max_abs <= 1e-4 * peak, "{rule}: max abs error {max_abs:e}, peak {peak}");
        // Relative error where the density is not negligible.
        let max_rel = exact
            .iter()
            .zip(&binned)
            .filter(|(e, _)| **e > 1e-3 * peak)
            .map(|(e, b)| ((e - b) / e).abs())
            .fold(0.0, f64::max);
        assert!(max_rel <= 1e-3, "{rule}: max relative error {max_rel:e}");
    }
    // Data outside the requested grid still counts (the binning grid is extended).
    let x = [0.0, 0.1, 5.0];
    let exact = kde::density_exact(&x, 0.5, &kde::linspace(-1.0, 1.0, 65));
    let binned = kde::density_binned(&x, 0.5, -1.0, 1.0, 65);
    assert!(exact.iter().zip(&binned).all(|(e, b)| (e - b).abs() < 1e-3 * 0.6));
}

fn regional_table() -> Table {
    let mut text = String::from("region,year,doctors\n");
    let mut rng = SeededRng::new(5);
    for (region, base) in [("east", 30.0), ("west", 18.0)] {
        for (year, growth) in [("2015", 1.0), ("2020", 1.3)] {
            for _ in 0..60 {
                text.push_str(&format!("{region},{year},{:.3}\n", base * growth * rng.lognormal(0.0, 0.3)));
            }
        }
    }
    Table::from_reader("regional.csv", text.as_bytes()).unwrap()
}

#[test]
fn grouping_by_region_and_year_with_mean_rescaling() {
    let t = regional_table();
    let opts = KdeOptions { rescale: Rescale::Mean, grid_points: 128, ..KdeOptions::default() };
    let rep = kde::run_table(&t, "doctors", Some("region"), Some("year"), &opts).unwrap();
    assert_eq!(rep.curves.len(), 4);
    let labels: Vec<(String, String)> =
        rep.curves.iter().map(|c| (c.group.clone().unwrap(), c.year.clone().unwrap())).collect();
    assert_eq!(labels[0], ("east".to_string(), "2015".to_string()));
    assert_eq!(labels[3], ("west".to_string(), "2020".to_string()));
    // Rescaled per year: the mean over both regions of a year is exactly 1.
    for year in ["2015", "2020"] {
        let cs: Vec<_> = rep.curves.iter().filter(|c| c.year.as_deref() == Some(year)).collect();
        let total: f64 =
            cs.iter().map(|c| c.mean * c.n as f64).sum::<f64>() / cs.iter().map(|c| c.n as f64).sum::<f64>();
        assert!((total - 1.0).abs() < 1e-12, "{year}: {total}");
    }
    // East has more doctors than the mean, west fewer.
    assert!(rep.curves[0].mean > 1.0 && rep.curves[2].mean < 1.0);
    // Each curve is a density on the common grid.
    for c in &rep.curves {
        let step = c.grid[1] - c.grid[0];
        let integral: f64 = c.density.iter().sum::<f64>() * step;
        assert!((integral - 1.0).abs() < 1e-3, "{integral}");
        assert_eq!(c.grid, rep.curves[0].grid);
    }
    // Binned mode on the same data agrees closely.
    let binned =
        kde::run_table(&t, "doctors", Some("region"), Some("year"), &KdeOptions { mode: Mode::Binned, ..opts })
            .unwrap();
    for (a, b) in rep.curves.iter().zip(&binned.curves) {
        let peak = a.density.iter().cloned().fold(0.0, f64::max);
        assert!(a.density.iter().zip(&b.density).all(|(x, y)| (x - y).abs() < 1e-3 * peak));
    }
}

#[test]
fn kde_errors() {
    let t = Table::from_reader("k.csv", "region,v\na,1\na,2\nb,x\n".as_bytes()).unwrap();
    let e = kde::run_table(&t, "v", None, None, &KdeOptions::default()).unwrap_err();
    assert!(matches!(e, AnalyticsError::NonNumeric { row: 4, .. }), "{e}");
    let e = kde::run_table(&t, "beds", None, None, &KdeOptions::default()).unwrap_err();
    assert!(matches!(e, AnalyticsError::MissingColumn { .. }));
    let t = Table::from_reader("k.csv", "region,v\na,1\na,2\nb,3\n".as_bytes()).unwrap();
    // Group b has a single value: Scott's rule needs two.
    let e = kde::run_table(&t, "v", Some("region"), None, &KdeOptions::default()).unwrap_err();
    assert!(matches!(e, AnalyticsError::InsufficientData(_)) && e.to_string().contains("group b"), "{e}");
    let e = kde::run_table(&t, "v", None, None, &KdeOptions { grid_points: 1, ..KdeOptions::default() }).unwrap_err();
    assert!(matches!(e, AnalyticsError::Usage(_)));
    let t = Table::from_reader("k.csv", "v\n0\n0\n".as_bytes()).unwrap();
    let e = kde::run_table(&t, "v", None, None, &KdeOptions { rescale: Rescale::Mean, ..KdeOptions::default() })
        .unwrap_err();
    assert!(e.to_string().contains("mean"), "{e}");
}

#[test]
fn plots_have_panels_legend_and_valid_png() {
    let t = regional_table();
    let rep = kde::run_table(
        &t,
        "doctors",
        Some("region"),
        Some("year"),
        &KdeOptions { rescale: Rescale::Mean, grid_points: 128, ..KdeOptions::default() },
    )
    .unwrap();
    let svg = plot::svg_string(&rep).unwrap();
    assert!(svg.starts_with("<svg"));
    for needle in ["group east", "group west", "2015 (n=60)", "2020 (n=60)", "density", "multiple of the mean"] {
        assert!(svg.contains(needle), "SVG lacks '{needle}'");
    }
    let png = plot::png_bytes(&rep).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let dec = png::Decoder::new(std::io::Cursor::new(&png));
    let mut reader = dec.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (1040, 420));
    // Not blank: curve colours and dark text pixels are present.
    let px: Vec<&[u8]> = buf[..info.buffer_size()].chunks(3).collect();
    assert!(px.iter().any(|p| p == &[31, 119, 180]), "no first-year curve pixels");
    assert!(px.iter().filter(|p| p[0] < 60 && p[1] < 60 && p[2] < 60).count() > 500, "no text/axes pixels");
    let dir = std::env::temp_dir().join(format!("kde-plot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let e = plot::write_plot(&rep, &dir.join("x.gif")).unwrap_err();
    assert!(matches!(e, AnalyticsError::Usage(_)));
    std::fs::remove_dir_all(&dir).ok();
}
