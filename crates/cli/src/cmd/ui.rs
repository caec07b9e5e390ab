//! `medledger ui`: the personal web UI on loopback, holding the user's keys.

use clap::Args;
use medledger_client::keys::read_key;
use medledger_types::Keypair;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct UiArgs {
    /// A key file to act as (repeatable; the first is the default identity).
    #[arg(long = "key")]
    pub keys: Vec<PathBuf>,
    /// A directory of key files (`*.key`), each an identity to switch to.
    #[arg(long = "keys")]
    pub dirs: Vec<PathBuf>,
    /// Where to serve the UI (loopback only).
    #[arg(long, default_value = "127.0.0.1:7800")]
    pub listen: std::net::SocketAddr,
    /// Node API address to prefer (the genesis list follows it).
    #[arg(long, env = "MEDLEDGER_NODE")]
    pub node: Option<String>,
}

/// The identity's name: the file stem, or `<parent>-<stem>` when the stem is taken.
fn named(keys: &mut Vec<(String, Keypair)>, path: &Path) -> Result<(), String> {
    let key = read_key(path)?;
    // Names travel in a cookie: keep them to letters, digits, `-`, `_` and `.`.
    let clean = |s: &str| -> String {
        s.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '-' }).collect()
    };
    let stem = path.file_stem().map(|s| clean(&s.to_string_lossy())).unwrap_or_else(|| "key".into());
    let mut name = stem.clone();
    if keys.iter().any(|(n, _)| *n == name) {
        let parent = path.parent().and_then(|p| p.file_name()).map(|p| clean(&p.to_string_lossy()));
        name = format!("{}-{stem}", parent.unwrap_or_default());
    }
    if !keys.iter().any(|(_, k)| k.public() == key.public()) {
        keys.push((name, key));
    }
    Ok(())
}

pub fn run(a: UiArgs, json_out: bool) -> Result<(), String> {
    let light = medledger_client::light::configured()?;
    let mut keys = Vec::new();
    for p in &a.keys {
        named(&mut keys, p)?;
    }
    for d in &a.dirs {
        let mut files: Vec<PathBuf> = std::fs::read_dir(d)
            .map_err(|e| format!("--keys {}: {e}", d.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "key"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(format!("--keys {}: no *.key files", d.display()));
        }
        for p in files {
            named(&mut keys, &p)?;
        }
    }
    if keys.is_empty() {
        return Err("give --key FILE or --keys DIR: the UI acts as the identities whose keys it holds".into());
    }
    let mut nodes: Vec<String> = a.node.into_iter().collect();
    for n in light.nodes() {
        if !nodes.contains(&n) {
            nodes.push(n);
        }
    }
    let n = keys.len();
    medledger_ui::run(medledger_ui::Config { keys, nodes, light, listen: a.listen }, |addr| {
        if json_out {
            println!("{}", serde_json::json!({ "event": "ready", "ui": format!("http://{addr}"), "identities": n }));
        } else {
            println!("MedLedger UI at http://{addr} ({n} identities; keys stay in this process). Ctrl-C stops it.");
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
    })
}
