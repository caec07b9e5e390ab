//! The `medledger` binary's offline commands: key files, genesis building and validation,
//! pseudonyms, config and proof errors, and the analytics subcommands through the main binary.

use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_medledger");

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn keygen_writes_private_files_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let k = dir.path().join("a.key");
    let ks = k.to_str().unwrap();
    let (code, out, _) = run(&["keygen", "--out", ks]);
    assert_eq!(code, 0);
    assert_eq!(out.trim().len(), 64);
    assert_eq!(std::fs::metadata(&k).unwrap().permissions().mode() & 0o777, 0o600);
    let (code, _, err) = run(&["keygen", "--out", ks]);
    assert_eq!(code, 2);
    assert!(err.contains("exists; pass --force"), "{err}");
}

#[test]
fn genesis_needs_four_institutions_and_valid_fields() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    for n in ["ca", "v0", "v1", "v2", "v3", "a0", "a1", "a2", "a3"] {
        assert_eq!(run(&["keygen", "--out", &p(&format!("{n}.key"))]).0, 0);
    }
    let inst = |i: usize| {
        format!(
            "h{i},Hospital {i},{},{},127.0.0.1:{},127.0.0.1:{}",
            p(&format!("v{i}.key")),
            p(&format!("a{i}.key")),
            7000 + i,
            8000 + i
        )
    };
    let out = p("genesis.json");
    let mut args = vec![
        "--json".to_string(),
        "genesis".into(),
        "--chain-id".into(),
        "test".into(),
        "--ca".into(),
        p("ca.key"),
        "--out".into(),
        out.clone(),
    ];
    for i in 0..3 {
        args.push("--institution".into());
        args.push(inst(i));
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, _, err) = run(&refs);
    assert_eq!(code, 2);
    assert!(err.contains("at least 4 validator institutions"), "{err}");
    args.push("--institution".into());
    args.push(inst(3));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, stdout, err) = run(&refs);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["validators"], 4);
    let g = medledger_client::keys::read_genesis(std::path::Path::new(&out)).unwrap();
    assert_eq!(g.max_faults(), 1);
    // A malformed institution spec names the expected fields.
    let (code, _, err) = run(&[
        "genesis",
        "--chain-id",
        "x",
        "--ca",
        &p("ca.key"),
        "--out",
        &p("g2.json"),
        "--institution",
        "only,three,fields",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("expected 6 comma-separated fields"), "{err}");
}

#[test]
fn pseudonyms_are_deterministic_and_secret_dependent() {
    let dir = tempfile::tempdir().unwrap();
    let s1 = dir.path().join("s1");
    let s2 = dir.path().join("s2");
    std::fs::write(&s1, "11".repeat(32)).unwrap();
    std::fs::write(&s2, "22".repeat(32)).unwrap();
    let args = |s: &std::path::Path| {
        run(&["ca", "pseudonym", "--secret", s.to_str().unwrap(), "--national-id", "N1", "--medical-id", "M1"]).1
    };
    assert_eq!(args(&s1), args(&s1));
    assert_ne!(args(&s1), args(&s2));
    std::fs::write(&s2, "abc").unwrap();
    let (code, _, err) =
        run(&["ca", "pseudonym", "--secret", s2.to_str().unwrap(), "--national-id", "N", "--medical-id", "M"]);
    assert_eq!(code, 2);
    assert!(err.contains("not hex") || err.contains("32 bytes"), "{err}");
}

#[test]
fn bad_files_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("node.toml");
    std::fs::write(&cfg, "genesis = 1\n").unwrap();
    let (code, _, err) = run(&["node", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.starts_with("medledger: error: config"), "{err}");
    let (code, _, err) = run(&["node", "--config", dir.path().join("missing.toml").to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot read config"), "{err}");
    let proof = dir.path().join("proof.json");
    std::fs::write(&proof, "{\"not\": \"a proof\"}").unwrap();
    let genesis = dir.path().join("g.json");
    std::fs::write(&genesis, "{}").unwrap();
    let (code, _, err) = run(&["verify", "--genesis", genesis.to_str().unwrap(), "--proof", proof.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("genesis file is not valid"), "{err}");
}

#[test]
fn analytics_runs_through_the_main_binary() {
    let dir = tempfile::tempdir().unwrap();
    let (code, cohort, err) = run(&["analytics", "cohort", "--n", "400", "--seed", "7"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(cohort.lines().count(), 401);
    let csv = dir.path().join("cohort.csv");
    std::fs::write(&csv, &cohort).unwrap();
    let model = dir.path().join("model.json");
    let (code, _, err) =
        run(&["analytics", "severity", "train", csv.to_str().unwrap(), "--out", model.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) =
        run(&["analytics", "severity", "predict", "--model", model.to_str().unwrap(), csv.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().count() > 400);
}

/// `medledger care news2` with `stdin` on standard input.
fn news2(stdin: &str) -> (i32, String, String) {
    use std::io::Write as _;
    let mut child = Command::new(BIN)
        .args(["care", "news2", "--json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn care_news2_scores_one_observation_set_offline() {
    // Scale 2 on oxygen at 95 % scores 2, oxygen 2, pulse 115 scores 2, confusion 3: total 9.
    let (code, out, err) = news2(
        r#"{"respiratory_rate": 18, "spo2": 95, "spo2_scale": 2, "on_oxygen": true, "systolic_bp": 120,
            "pulse": 115, "consciousness": "C", "temperature": 37.2}"#,
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v,
        serde_json::json!({
            "subscores": { "respiratory_rate": 0, "spo2": 2, "on_oxygen": 2, "systolic_bp": 0,
                           "pulse": 2, "consciousness": 3, "temperature": 0 },
            "total": 9,
            "risk": "high"
        })
    );
    let well = r#"{"respiratory_rate": 16, "spo2": 97, "spo2_scale": 1, "on_oxygen": false, "systolic_bp": 120,
                   "pulse": 70, "consciousness": "A", "temperature": 37.0}"#;
    let (code, out, _) = news2(well);
    assert_eq!(code, 0);
    assert!(out.contains(r#""risk": "low""#), "{out}");
    // Invalid values exit non-zero naming the field and the rule.
    for (input, want) in [
        (well.replace("\"spo2\": 97", "\"spo2\": 140"), "spo2: 140 is physiologically impossible"),
        (well.replace("\"pulse\": 70", "\"pulse\": -5"), "pulse: -5 is physiologically impossible"),
        (well.replace("\"spo2_scale\": 1", "\"spo2_scale\": 3"), "spo2_scale: 3 is not a scale"),
        (well.replace("\"A\"", "\"X\""), "unknown variant `X`"),
        (well.replace(", \"temperature\": 37.0", ""), "missing field `temperature`"),
        (well.replace("\"pulse\"", "\"heart\""), "unknown field `heart`"),
        (String::new(), "no observation set"),
    ] {
        let (code, out, err) = news2(&input);
        assert_ne!(code, 0, "{input}");
        assert!(out.is_empty(), "{out}");
        assert!(err.contains(want), "{input}: {err}");
    }
}

/// `bench --drug-blocks` runs one validator's full blocks and reports each phase, and
/// `--replay-qmdb` replays the same blocks' writes into the three QMDB variants (shapes and
/// counts only: tests never assert timings).
#[test]
fn the_validator_block_bench_reports_its_phases_and_replays_the_same_blocks() {
    let (code, out, err) = run(&["--json", "bench", "--drug-blocks", "1", "--replay-qmdb"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    // Per block: 12,000 serials, each a pack and its inventory entry; 4,080 events, each two
    // packs, their inventory entries, the event's record and its body; 12,000 packs shipped or
    // received, each its record and a step on its trail.
    for (kind, replayed, units, keys) in [
        ("commissioning_serials", "commissioning", 12_000.0, 24_000.0),
        ("capture_events", "capture", 4_080.0, 24_480.0),
        ("shipping_packs", "shipping", 12_000.0, 24_000.0),
        ("receiving_packs", "receiving", 12_000.0, 24_000.0),
    ] {
        let b = &v[kind];
        assert_eq!(b["per_block"], units, "{v}");
        assert!(b["domain_mean_us"].as_f64().unwrap() > 0.0 && b["seal_mean_us"].as_f64().unwrap() > 0.0, "{b}");
        assert!(v["qmdb_replay"]["block_store_mean_us"][replayed].as_f64().unwrap() > 0.0, "{v}");
        for variant in ["ordered", "unordered", "hybrid"] {
            let r = &v["qmdb_replay"][variant][replayed];
            assert_eq!(r["blocks"], 1, "{v}");
            assert!(r["keys_per_block"].as_f64().unwrap() >= keys, "{r}");
            assert!(r["merkleize_mean_us"].as_f64().unwrap() > 0.0, "{r}");
        }
    }
    // Proofs over the final state, verified before they are counted: of packs that exist from
    // every variant and the tree; of serials never made from the tree and the ordered ones.
    let proofs = &v["qmdb_replay"]["proofs"];
    for source in ["tree", "ordered", "unordered", "hybrid"] {
        assert_eq!(proofs[source]["present"]["samples"], 1_000, "{proofs}");
        assert!(proofs[source]["present"]["max_bytes"].as_u64().unwrap() > 0, "{proofs}");
        match source {
            "unordered" => assert!(proofs[source]["absent"].is_null(), "{proofs}"),
            _ => assert_eq!(proofs[source]["absent"]["samples"], 1_000, "{proofs}"),
        }
    }
    let (code, _, err) = run(&["bench", "--replay-qmdb"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--drug-blocks"), "{err}");
}
