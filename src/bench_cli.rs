//! `pala bench ...` (owned by the benchmark work).

use anyhow::Result;
use clap::Subcommand;

/// Benchmark subcommands.
#[derive(Subcommand)]
pub enum BenchCmd {
    /// Placeholder until the benchmark scenarios land.
    List,
}

/// Runs a benchmark subcommand.
pub fn run(cmd: BenchCmd) -> Result<()> {
    match cmd {
        BenchCmd::List => {
            println!("no benchmark scenarios yet");
            Ok(())
        }
    }
}
