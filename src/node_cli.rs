//! Operator commands: keygen, testnet, node, demo, inspect (owned by the node work).

use anyhow::Result;
use clap::Subcommand;

/// Operator subcommands.
#[derive(Subcommand)]
pub enum NodeCmd {
    /// Prints the data directory summary (placeholder until the node lands).
    Inspect {
        /// Data directory.
        datadir: std::path::PathBuf,
    },
}

/// Runs an operator subcommand.
pub fn run(cmd: NodeCmd) -> Result<()> {
    match cmd {
        NodeCmd::Inspect { datadir } => {
            println!("{}", pala_storage::inspect(&datadir)?);
            Ok(())
        }
    }
}
