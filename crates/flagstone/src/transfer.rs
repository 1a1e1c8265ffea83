//! `flagstone import FILE` and `flagstone export --environment KEY`: moving environments from
//! Flagsmith (its `/api/v1/environment-document/` JSON) into Flagstone and back out. The
//! semantics of "create or replace" are `flagstone_store::transfer`'s. Unlike the admin API, the
//! CLI has no request-size limit: the file is parsed as it is read; the project limits still
//! apply.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use flagstone_store::{transfer, Actor};

use crate::db_args::DbArgs;

#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// A Flagsmith environment document (JSON); `-` reads standard input.
    pub file: PathBuf,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// The environment's client-side key (`api_key`).
    #[arg(long, short = 'e')]
    pub environment: String,
    /// Write to this file instead of standard output.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub db: DbArgs,
}

/// Imports the document and prints the report (JSON) on standard output.
pub async fn import(args: ImportArgs) -> anyhow::Result<()> {
    let doc = if args.file.as_os_str() == "-" {
        transfer::read_document(std::io::stdin().lock())
    } else {
        let f = File::open(&args.file)
            .with_context(|| format!("cannot open {}", args.file.display()))?;
        transfer::read_document(f)
    }
    .with_context(|| {
        format!(
            "{} is not a Flagsmith environment document",
            args.file.display()
        )
    })?;
    let store = args.db.open().await?;
    let report = transfer::import(&store, &Actor::system("flagstone import"), &doc)
        .await
        .context("import refused; nothing was written")?;
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    writeln!(
        std::io::stdout(),
        "{}",
        serde_json::to_string_pretty(&report)?
    )?;
    Ok(())
}

/// Writes the environment document to the output file or standard output.
pub async fn export(args: ExportArgs) -> anyhow::Result<()> {
    let store = args.db.open().await?;
    let summary = match &args.output {
        Some(path) => {
            // Write next to the target and rename, so a failed export never leaves half a file.
            let tmp = path.with_extension("partial");
            let mut f = std::io::BufWriter::new(
                File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?,
            );
            let summary = transfer::export(&store, &args.environment, &mut f).await;
            let summary = summary.and_then(|s| {
                f.flush()
                    .map_err(|e| flagstone_store::StoreError::Config(e.to_string()))?;
                Ok(s)
            });
            match summary {
                Ok(s) => {
                    std::fs::rename(&tmp, path)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    s
                }
                Err(e) => {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(e).context("export failed");
                }
            }
        }
        None => {
            // Buffered, and not the lock: the export future must be Send.
            let mut out = std::io::BufWriter::new(std::io::stdout());
            let s = transfer::export(&store, &args.environment, &mut out)
                .await
                .context("export failed")?;
            writeln!(out)?;
            out.flush()?;
            s
        }
    };
    eprintln!(
        "exported environment {} (revision {}, {} identities with overrides, {} bytes)",
        args.environment, summary.revision, summary.identities, summary.bytes
    );
    Ok(())
}
