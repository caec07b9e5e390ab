//! `medledger`: the MedLedger command line.

mod cmd;

use clap::{Parser, Subcommand};
use medledger_node::run::NodeConfig;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(name = "medledger", version, about = "MedLedger: a permissioned medical data and resource ledger")]
struct Cli {
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    json: bool,
    /// The consortium CA certificate (PEM): nodes are reached over HTTPS, trusting only
    /// certificates it issued (a devnet's is `DIR/tls/ca.pem`; `.devnet/tls/ca.pem` is used
    /// when present and nothing else is given).
    #[arg(long, global = true, env = "MEDLEDGER_CA_CERT")]
    ca_cert: Option<PathBuf>,
    /// The consortium's genesis file: the validator set every answer is verified against
    /// (`.devnet/genesis.json` is used when present and nothing else is given).
    #[arg(long, global = true, env = "MEDLEDGER_GENESIS")]
    genesis: Option<PathBuf>,
    /// Refuse any state older than this block height.
    #[arg(long, global = true, env = "MEDLEDGER_MIN_HEIGHT", default_value_t = 0)]
    min_height: u64,
    /// Refuse any state whose block is older than this many seconds.
    #[arg(long, global = true, env = "MEDLEDGER_MAX_STALENESS")]
    max_staleness: Option<f64>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Generate an ed25519 key file (mode 0600).
    Keygen {
        #[arg(long)]
        out: PathBuf,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// On a patient's new device: prove possession of the new key for a key rotation or a
    /// recovery (`tx rotate-patient-key --new-public … --proof …`), offline.
    RotationProof {
        /// The new key's file.
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        chain_id: String,
        #[arg(long)]
        pseudonym: String,
        /// The patient's current (lost) public key, hex.
        #[arg(long)]
        current: String,
    },
    /// Build a consortium genesis file from institution keys.
    Genesis {
        #[arg(long)]
        chain_id: String,
        /// Key file (public part is enough) of the certification authority.
        #[arg(long)]
        ca: PathBuf,
        /// `id,name,validator-key-file,admin-key-file,p2p-addr,api-addr`; repeat for each institution (at least 4).
        #[arg(long = "institution", required = true)]
        institutions: Vec<String>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Run one validator from a config file.
    Node {
        #[arg(long)]
        config: PathBuf,
    },
    /// Start a local consortium of validator processes with demo data.
    Devnet(cmd::devnet::DevnetArgs),
    /// Sign and submit an operation.
    Tx(cmd::ledger::TxArgs),
    /// Medical records: put, get, history, review amendments, export as a FHIR Bundle.
    Record {
        #[command(subcommand)]
        cmd: cmd::records::RecordCmd,
    },
    /// Patient consents: grant (re-wrapping keys for the grantee), revoke, list.
    Consent {
        #[command(subcommand)]
        cmd: cmd::consent::ConsentCmd,
    },
    /// Access requests: request, approve, decline, list.
    Access {
        #[command(subcommand)]
        cmd: cmd::consent::AccessCmd,
    },
    /// Audit the on-chain access events (patients: their own; regulators: all), as JSON or FHIR.
    Audit(cmd::audit::AuditArgs),
    /// Drug traceability: GS1 packs from commissioning to dispensing, EPCIS 2.0.
    Drug {
        #[command(subcommand)]
        cmd: cmd::drug::DrugCmd,
    },
    /// Telemedicine and remote monitoring: the NEWS2 early-warning score (offline).
    Care {
        #[command(subcommand)]
        cmd: cmd::care::CareCmd,
    },
    /// Telemedicine referrals: propose, approve, confirm, the receiving institution's workflow,
    /// lists and statistics.
    Referral {
        #[command(subcommand)]
        cmd: cmd::care::ReferralCmd,
    },
    /// Remote monitoring: devices, the patient's monitoring settings, the on-call doctor.
    Device {
        #[command(subcommand)]
        cmd: cmd::care::DeviceCmd,
    },
    /// Remote monitoring: alarms, and their acknowledgement.
    Alarm {
        #[command(subcommand)]
        cmd: cmd::care::AlarmCmd,
    },
    /// Remote monitoring: send a device's reading.
    Reading {
        #[command(subcommand)]
        cmd: cmd::care::ReadingCmd,
    },
    /// Patient: ask the holder to erase a record (the hashes stay on chain).
    Erase(cmd::records::EraseArgs),
    /// Read chain data from a node.
    Query {
        #[arg(long, default_value = "127.0.0.1:7700", env = "MEDLEDGER_NODE")]
        node: String,
        /// Key file that signs the query: every query but `status` is answered with what its
        /// holder may see.
        #[arg(long, env = "MEDLEDGER_KEY")]
        key: Option<PathBuf>,
        #[command(subcommand)]
        what: cmd::ledger::Query,
    },
    /// Check a stored chain offline (links, roots, signatures, certificates, re-execution), or one proof file.
    Verify {
        /// A node's data directory (stop the node first).
        #[arg(long, conflicts_with_all = ["proof", "state_proof"], required_unless_present_any = ["proof", "state_proof"])]
        data_dir: Option<PathBuf>,
        /// An inclusion proof file from `medledger query proof --out`.
        #[arg(long, conflicts_with = "state_proof")]
        proof: Option<PathBuf>,
        /// A state proof file from `medledger query state-proof --out` (or any proof route).
        #[arg(long)]
        state_proof: Option<PathBuf>,
    },
    /// Certification-authority tools.
    Ca {
        #[command(subcommand)]
        what: cmd::identity::Ca,
    },
    /// Load-test a running devnet and measure ed25519 verification rates.
    Bench(cmd::bench::BenchArgs),
    /// The web UI: a personal server on loopback that holds your keys and shows a view per role
    /// and the chain explorer.
    Ui(cmd::ui::UiArgs),
    /// Analytics: DEA, kernel density, severity model, synthetic cohorts.
    Analytics {
        #[command(subcommand)]
        cmd: medledger_analytics::cli::AnalyticsCommand,
    },
}

fn run(cli: Cli) -> Result<(), String> {
    let j = cli.json;
    // The default devnet's CA, like the default `--node`, when nothing else is given.
    let devnet_ca = PathBuf::from(".devnet/tls/ca.pem");
    let ca_cert = cli.ca_cert.clone().or_else(|| devnet_ca.exists().then_some(devnet_ca));
    if let Some(ca) = &ca_cert {
        medledger_client::http::trust_consortium_ca(ca).map_err(|e| format!("--ca-cert {}: {e}", ca.display()))?;
    }
    // Likewise the default devnet's genesis file: the light client verifies every answer the
    // nodes give against its validator set.
    let devnet_genesis = PathBuf::from(".devnet/genesis.json");
    let genesis = cli.genesis.clone().or_else(|| devnet_genesis.exists().then_some(devnet_genesis));
    let staleness = match cli.max_staleness {
        Some(s) if !(s.is_finite() && s > 0.0) => {
            return Err("--max-staleness must be a positive number of seconds".into())
        }
        s => s.map(std::time::Duration::from_secs_f64),
    };
    if let Some(g) = &genesis {
        medledger_client::light::configure(g, cli.min_height, staleness)
            .map_err(|e| format!("--genesis {}: {e}", g.display()))?;
    }
    match cli.cmd {
        Cmd::Keygen { out, force } => cmd::identity::keygen(out, force, j)?,
        Cmd::RotationProof { key, chain_id, pseudonym, current } => {
            cmd::ledger::print_rotation_proof(&key, &chain_id, &pseudonym, &current, j)?
        }
        Cmd::Genesis { chain_id, ca, institutions, out } => {
            let v = cmd::identity::genesis(chain_id, ca, institutions, out)?;
            cmd::print(j, &v, |v| {
                println!(
                    "wrote {} ({} validators, hash {})",
                    v["genesis"].as_str().unwrap_or(""),
                    v["validators"],
                    v["hash"].as_str().unwrap_or("")
                )
            });
        }
        Cmd::Node { config } => medledger_node::run::run(NodeConfig::load(&config)?)?,
        Cmd::Devnet(args) => cmd::devnet::run(args, j)?,
        Cmd::Ui(args) => cmd::ui::run(args, j)?,
        Cmd::Tx(args) => cmd::ledger::run(args, j)?,
        Cmd::Record { cmd } => cmd::records::record(cmd, j)?,
        Cmd::Consent { cmd } => cmd::consent::consent(cmd, j)?,
        Cmd::Access { cmd } => cmd::consent::access(cmd, j)?,
        Cmd::Audit(a) => cmd::audit::audit(a, j)?,
        Cmd::Drug { cmd } => cmd::drug::run(cmd, j)?,
        Cmd::Care { cmd } => cmd::care::run(cmd, j)?,
        Cmd::Referral { cmd } => cmd::care::referral(cmd, j)?,
        Cmd::Device { cmd } => cmd::care::device(cmd, j)?,
        Cmd::Alarm { cmd } => cmd::care::alarm(cmd, j)?,
        Cmd::Reading { cmd } => cmd::care::reading(cmd, j)?,
        Cmd::Erase(a) => cmd::records::erase(a, j)?,
        Cmd::Query { node, key, what } => cmd::ledger::query(&node, key.as_deref(), what, j)?,
        Cmd::Verify { data_dir, proof, state_proof } => {
            let genesis = genesis.ok_or("verify needs the genesis file: give --genesis FILE")?;
            cmd::ledger::verify(genesis, data_dir, proof, state_proof, j)?
        }
        Cmd::Ca { what } => cmd::identity::ca(what, j)?,
        Cmd::Bench(args) => cmd::bench::run(args, j)?,
        Cmd::Analytics { cmd } => {
            let mut out = std::io::stdout().lock();
            let mut err = std::io::stderr().lock();
            medledger_analytics::cli::run(cmd, &mut out, &mut err).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// Execution allocates and frees many small objects per state write (tree nodes, encodings); the
/// system allocator returned freed pages to the kernel and refaulted them, block after block.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Turns transparent huge pages off for this process. The allocator asks the kernel for huge
/// pages where it may; then each first touch of a 2 MiB region after the allocator returned it
/// (as it does with memory freed after every block) makes the kernel zero all 2 MiB. On the
/// 4-validator devnet that zeroing was a quarter of all CPU time under drug load (see
/// BENCHMARKS.md). Linux only; elsewhere, and if the call fails, nothing changes.
#[allow(unsafe_code)] // one libc call, with its SAFETY note
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes integers only; it sets a flag on this process.
    unsafe {
        libc::prctl(
            libc::PR_SET_THP_DISABLE,
            1 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        );
    }
}

fn main() -> ExitCode {
    no_transparent_huge_pages();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("medledger: error: {e}");
            ExitCode::from(2)
        }
    }
}
