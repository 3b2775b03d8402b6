//! Operator commands: keygen, testnet, node, demo (from `pala-node`), inspect.

use anyhow::Result;
use clap::Subcommand;

/// Operator subcommands.
#[derive(Subcommand)]
pub enum NodeCmd {
    /// Prints a summary of a node's data directory (segments, heads, epoch, recovery).
    Inspect {
        /// Data directory.
        datadir: std::path::PathBuf,
    },
    #[command(flatten)]
    Operator(pala_node::cli::OperatorCmd),
}

/// Runs an operator subcommand.
pub fn run(cmd: NodeCmd) -> Result<()> {
    match cmd {
        NodeCmd::Inspect { datadir } => {
            println!("{}", pala_storage::inspect(&datadir)?);
            Ok(())
        }
        NodeCmd::Operator(cmd) => pala_node::cli::run(cmd),
    }
}
