//! End-to-end runs of the `medledger-analytics` binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_medledger-analytics"))
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("spawn medledger-analytics")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("mla-cli-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    fn write(&self, name: &str, body: &str) -> String {
        let p = self.path(name);
        std::fs::write(&p, body).unwrap();
        p.display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

fn fixture(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reference").join(name);
    assert!(p.is_file(), "reference fixture {} missing", p.display());
    p.display().to_string()
}

#[test]
fn dea_table_json_csv() {
    let data = fixture("coelli_deap_eg1.csv");
    let o = run(&["dea", &data, "--id", "firm", "--inputs", "x1,x2", "--outputs", "y", "--rts", "crs"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains("DEA CRS input-oriented"), "{out}");
    let row3 = out.lines().find(|l| l.starts_with("3 ")).unwrap();
    assert!(row3.contains("0.833") && row3.contains("5(0.500)") && row3.contains("2(1.000)"), "{row3}");
    // 5 DMUs < max(3*3, 2): warned on stderr, still a success.
    assert!(text(&o.stderr).contains("warning: only 5 DMUs"), "{}", text(&o.stderr));

    let o = run(&[
        "dea",
        &data,
        "--id",
        "firm",
        "--inputs",
        "x1,x2",
        "--outputs",
        "y",
        "--format",
        "json",
        "--orientation",
        "out",
    ]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["orientation"], "output");
    assert_eq!(v["dmus"].as_array().unwrap().len(), 5);
    assert!((v["dmus"][0]["crste"].as_f64().unwrap() - 0.5).abs() < 1e-7);

    let o = run(&["dea", &data, "--id", "firm", "--inputs", "x1,x2", "--outputs", "y", "--format", "csv"]);
    assert!(o.status.success());
    let out = text(&o.stdout);
    let mut lines = out.lines();
    assert!(lines.next().unwrap().starts_with("dmu,group,te,raw,crste,vrste,nirste,scale,rts,slack_in.x1"));
    assert_eq!(lines.count(), 5);
}

#[test]
fn dea_groups_and_input_errors_exit_2() {
    let dir = TempDir::new("dea");
    let csv = dir.write(
        "p.csv",
        "province,region,X1,Y1\nA,east,2,1\nB,east,4,3\nC,west,3,3\nD,west,5,4\nE,west,6,5\nF,east,5,2\nG,east,3,1\n",
    );
    let o = run(&[
        "dea",
        &csv,
        "--id",
        "province",
        "--inputs",
        "X1",
        "--outputs",
        "Y1",
        "--orientation",
        "output",
        "--rts",
        "vrs",
        "--group",
        "region",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains("group means"));
    assert!(out.lines().any(|l| l.starts_with("east") && l.contains(" 4 ")), "{out}");
    assert!(out.lines().any(|l| l.starts_with("all")));

    let o = run(&["dea", &csv, "--id", "province", "--inputs", "X1,X9", "--outputs", "Y1"]);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(err.starts_with("medledger-analytics: error: ") && err.contains("missing column 'X9'"), "{err}");

    let bad = dir.write("bad.csv", "province,X1,Y1\nA,2,1\nB,-4,3\n");
    let o = run(&["dea", &bad, "--id", "province", "--inputs", "X1", "--outputs", "Y1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("row 3, column 'X1': negative value -4"), "{}", text(&o.stderr));

    let o =
        run(&["dea", &dir.path("nope.csv").display().to_string(), "--id", "p", "--inputs", "X1", "--outputs", "Y1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("cannot open"));

    // Usage error from clap (missing --outputs) also exits 2.
    let o = run(&["dea", &csv, "--id", "province", "--inputs", "X1"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn kde_csv_json_and_plots() {
    let dir = TempDir::new("kde");
    let mut body = String::from("region,year,doctors\n");
    for (i, r) in ["north", "south"].iter().enumerate() {
        for y in ["2010", "2020"] {
            for k in 0..25 {
                body.push_str(&format!(
                    "{r},{y},{}\n",
                    10.0 + i as f64 * 5.0 + (k as f64 * 0.7).sin() * 3.0 + if y == "2020" { 2.0 } else { 0.0 }
                ));
            }
        }
    }
    let csv = dir.write("d.csv", &body);
    let png = dir.path("k.png").display().to_string();
    let o = run(&[
        "kde",
        &csv,
        "--value",
        "doctors",
        "--group",
        "region",
        "--year",
        "year",
        "--rescale",
        "mean",
        "--bandwidth",
        "silverman",
        "--grid-points",
        "64",
        "--format",
        "csv",
        "--plot",
        &png,
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert_eq!(out.lines().count(), 1 + 4 * 64);
    assert!(out.starts_with("group,year,x,density\nnorth,2010,"));
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..4], b"\x89PNG");

    let svg = dir.path("k.svg").display().to_string();
    let o = run(&[
        "kde",
        &csv,
        "--value",
        "doctors",
        "--mode",
        "binned",
        "--bandwidth",
        "0.8",
        "--format",
        "json",
        "--plot",
        &svg,
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["mode"], "binned");
    assert_eq!(v["curves"][0]["bandwidth"], 0.8);
    assert_eq!(v["curves"][0]["density"].as_array().unwrap().len(), 512);
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));

    let o = run(&["kde", &csv, "--value", "doctors", "--bandwidth", "wide"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("unknown bandwidth 'wide'"));
}

#[test]
fn severity_train_predict_and_tamper() {
    let dir = TempDir::new("sev");
    let o = run(&["cohort", "--n", "800", "--seed", "7"]);
    assert!(o.status.success());
    let again = run(&["cohort", "--n", "800", "--seed", "7"]);
    assert_eq!(o.stdout, again.stdout, "cohort must be deterministic");
    let cohort = dir.write("cohort.csv", &text(&o.stdout));
    let model = dir.path("model.json").display().to_string();
    let o = run(&["severity", "train", &cohort, "--out", &model]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains("5-fold CV") && out.contains("ROC AUC") && out.contains("sha256"), "{out}");
    let stored: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&model).unwrap()).unwrap();
    assert!(out.contains(stored["sha256"].as_str().unwrap()));

    let patients = dir.write("patients.csv", &text(&run(&["cohort", "--n", "20", "--seed", "99"]).stdout));
    let o = run(&["severity", "predict", "--model", &model, &patients]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert_eq!(out.lines().count(), 21);
    assert!(out.lines().skip(1).all(|l| l.ends_with(",mild") || l.ends_with(",moderate") || l.ends_with(",severe")));
    assert!(text(&o.stderr).contains("verified"));

    // Tamper with one coefficient: refused with exit code 2.
    let mut v = stored.clone();
    v["coef"][7] = serde_json::Value::from(v["coef"][7].as_f64().unwrap() * 0.5);
    let tampered = dir.write("tampered.json", &v.to_string());
    let o = run(&["severity", "predict", "--model", &tampered, &patients]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("SHA-256 mismatch"), "{}", text(&o.stderr));
    assert!(o.stdout.is_empty());

    let o = run(&["cohort", "--n", "0"]);
    assert_eq!(o.status.code(), Some(2));
}
