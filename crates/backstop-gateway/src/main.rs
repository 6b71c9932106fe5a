//! The `backstop` binary: parses the command line and hands over to the library.

use clap::Parser;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = backstop_gateway::cli::Cli::parse();
    backstop_gateway::cli::run(cli).await
}
