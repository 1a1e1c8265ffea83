//! The `flagstone` binary: one command per role (serve, migrate, eval…). Each subcommand lives in
//! its own module; this file only parses arguments and dispatches.

mod auth_args;
mod bench;
mod config;
mod db_args;
mod documents_nats;
mod edge;
mod edge_nats;
mod edge_remote;
mod edge_upstream;
mod eval;
mod invite_args;
mod observability;
mod operate;
mod serve;
mod table;
mod transfer;
mod transport;
mod users;
mod webhooks;
mod worker;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "flagstone",
    version,
    about = "A Flagsmith-compatible feature-flag platform"
)]
struct Cli {
    /// Log lines as `text` (coloured only on a terminal) or `json` (one object per line).
    #[arg(
        long,
        global = true,
        env = "FLAGSTONE_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: flagstone_observe::logging::LogFormat,
    /// Read options from this TOML file: keys are the options' names in snake case
    /// (`database_url = "…"`), a `[serve]`, `[edge]` or `[worker]` table applies to that command
    /// only. Flags and `FLAGSTONE_*` variables win over the file (docs/configuration.md).
    #[arg(long, global = true, env = "FLAGSTONE_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run everything in one process: admin API, task processor and SDK API, on one port.
    Serve(Box<serve::ServeArgs>),
    /// Run an SDK API node alone (follows the store's publishes; any number can run).
    Edge(edge::EdgeArgs),
    /// Apply pending database migrations and exit.
    Migrate(db_args::DbArgs),
    /// Evaluate flags offline: an evaluation context, or an environment document for one identity.
    Eval(eval::EvalArgs),
    /// Import a Flagsmith environment document: create or replace that environment.
    Import(transfer::ImportArgs),
    /// Export an environment as a Flagsmith environment document (identity overrides included).
    Export(transfer::ExportArgs),
    /// Run the task processor alone: claim publish jobs, build and publish documents.
    Worker(worker::WorkerArgs),
    /// Queue every environment whose published document is behind its revision.
    Reconcile(db_args::DbArgs),
    /// Show health and the publish queue: checks, parked jobs, stale environments.
    Status(operate::StatusArgs),
    /// List publish jobs, or retry or discard a parked one.
    #[command(subcommand)]
    Tasks(operate::TasksCommand),
    /// Manage user accounts from the shell (e.g. the first organisation admin).
    #[command(subcommand)]
    Users(users::UsersCommand),
    /// Measure the publishing pipeline (see BENCHMARKS.md).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// The configuration reference (docs/configuration.md).
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the reference table of every option (flag, variable, TOML key, default, meaning),
    /// generated from the definitions, or replace it in a copy of docs/configuration.md.
    Reference {
        /// Replace the generated part of this file (between its markers) instead of printing.
        #[arg(long, value_name = "FILE")]
        update: Option<PathBuf>,
    },
}

/// `flagstone config reference`.
fn config_command(cmd: ConfigCommand) -> ExitCode {
    let ConfigCommand::Reference { update } = cmd;
    let generated = config::reference(&Cli::command());
    let Some(path) = update else {
        print!("{generated}");
        return ExitCode::SUCCESS;
    };
    let result = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
        .and_then(|doc| {
            config::splice(&doc, &generated).ok_or_else(|| {
                format!(
                    "{} has no generated part (the line {:?} … {:?})",
                    path.display(),
                    config::BEGIN,
                    config::END
                )
            })
        })
        .and_then(|doc| {
            std::fs::write(&path, doc).map_err(|e| format!("cannot write {}: {e}", path.display()))
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let mut cmd = Cli::command();
    // The file becomes the options' defaults before parsing (flag > variable > file > default).
    let file = config::config_path(&args);
    if let Some(path) = &file {
        cmd = match config::apply_file(cmd, path) {
            Ok(cmd) => cmd,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        };
    }
    let cli = match Cli::from_arg_matches(&cmd.get_matches_from(args)) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    flagstone_observe::logging::init(cli.log_format);
    if let Some(path) = &cli.config {
        tracing::info!(path = %path.display(), "options read from the configuration file");
    }
    match cli.command {
        Command::Config(cmd) => config_command(cmd),
        Command::Eval(args) => eval::run(args),
        Command::Import(args) => run_async(transfer::import(args)),
        Command::Export(args) => run_async(transfer::export(args)),
        Command::Serve(args) => run_async(serve::run(*args)),
        Command::Edge(args) => run_async(edge::run(args)),
        Command::Worker(args) => run_async(worker::run(args)),
        Command::Reconcile(db) => run_async(worker::reconcile(db)),
        Command::Status(args) => run_async(operate::status(args)),
        Command::Tasks(cmd) => run_async(operate::tasks(cmd)),
        Command::Users(cmd) => run_async(users::run(cmd)),
        Command::Bench(cmd) => run_async(bench::run(cmd)),
        Command::Migrate(db) => run_async(async move {
            db.open().await?;
            println!("migrations applied");
            Ok(())
        }),
    }
}

fn run_async(fut: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(fut) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
