//! `pala-node`: the operator commands of `pala` without the simulator and benchmarks
//! (used by this crate's multi-process tests).

use clap::Parser;

#[global_allocator]
static GLOBAL: pala_node::Allocator = pala_node::Allocator;

#[derive(Parser)]
#[command(name = "pala-node", version, about = "PaLa validator node")]
struct Cli {
    #[command(subcommand)]
    cmd: pala_node::cli::OperatorCmd,
}

fn main() -> anyhow::Result<()> {
    pala_node::cli::run(Cli::parse().cmd)
}
