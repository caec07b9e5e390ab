//! Stand-alone front end of the analytics subcommands (the same commands
//! the `medledger` binary mounts under `medledger analytics`).

use clap::Parser;
use medledger_analytics::cli::{run, AnalyticsCommand};
use std::io::Write;

/// MedLedger regional-equity and clinical analytics.
#[derive(Parser)]
#[command(name = "medledger-analytics", version, about)]
struct Cli {
    #[command(subcommand)]
    command: AnalyticsCommand,
}

fn main() {
    let cli = Cli::parse();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut err = std::io::stderr();
    let result = run(cli.command, &mut out, &mut err);
    let flushed = out.flush();
    match result {
        Ok(()) => {
            if let Err(e) = flushed {
                if e.kind() != std::io::ErrorKind::BrokenPipe {
                    eprintln!("medledger-analytics: error: writing output: {e}");
                    std::process::exit(1);
                }
            }
        }
        Err(e) => {
            eprintln!("medledger-analytics: error: {e}");
            std::process::exit(if e.is_input_error() { 2 } else { 1 });
        }
    }
}
