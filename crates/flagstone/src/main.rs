//! The `flagstone` binary: one command per role (serve, eval, migrate, import, export).
//! Each subcommand lives in its own module; this file only parses arguments and dispatches.

mod eval;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "flagstone", version, about = "A Flagsmith-compatible feature-flag platform")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Evaluate flags offline: an evaluation context, or an environment document for one identity.
    Eval(eval::EvalArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Eval(args) => eval::run(args),
    }
}
