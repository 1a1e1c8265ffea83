//! `flagstone import FILE…` and `flagstone export --environment KEY`: moving environments from
//! Flagsmith (its `/api/v1/environment-document/` JSON) into Flagstone and back out. The
//! semantics of "create or replace" and of the target options are `flagstone_store::transfer`'s.
//! The files of one run share one source label, so environments of one Flagsmith project
//! imported together land in one project. Unlike the admin API, the CLI has no request-size
//! limit: each file is streamed (`transfer::import_file`), so memory stays bounded however
//! many identity overrides it holds; the project limits still apply. Standard input is copied
//! to a temporary file first (the import reads its file more than once).

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use flagstone_store::transfer::ImportOptions;
use flagstone_store::{transfer, Actor};

use crate::db_args::DbArgs;

#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// Flagsmith environment documents (JSON), imported in order, each as one change; `-`
    /// reads standard input.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Import into this project (by id) instead of choosing one.
    #[arg(long)]
    pub project: Option<i64>,
    /// Create new projects in this organisation (by id).
    #[arg(long)]
    pub organisation: Option<i64>,
    /// A label for the installation the documents come from (e.g. its URL). Documents with
    /// the same source and project id go into one project, across runs. Default: a label
    /// generated for this run (printed in the report).
    #[arg(long)]
    pub source: Option<String>,
    /// Check the documents and report what would change, without writing anything (each
    /// document against the store as it is: the earlier ones are not written either).
    #[arg(long)]
    pub dry_run: bool,
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

/// Standard input, copied to a temporary file (removed when dropped): the import reads the
/// document more than once.
struct Spooled(PathBuf);

impl Spooled {
    fn stdin() -> anyhow::Result<Spooled> {
        let path = std::env::temp_dir().join(format!(
            "flagstone-import-{}-{}.json",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        let spooled = Spooled(path);
        let mut out = std::io::BufWriter::new(
            File::create(&spooled.0)
                .with_context(|| format!("cannot create {}", spooled.0.display()))?,
        );
        std::io::copy(&mut std::io::stdin().lock(), &mut out)
            .context("cannot read standard input")?;
        out.flush()
            .context("cannot write the copy of standard input")?;
        Ok(spooled)
    }
}

impl Drop for Spooled {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Imports the documents in order and prints each report (JSON) on standard output. Stops at
/// the first refused document; those before it stay imported.
pub async fn import(args: ImportArgs) -> anyhow::Result<()> {
    let store = args.db.open().await?;
    let mut opts = ImportOptions {
        project: args.project,
        organisation: args.organisation,
        source: args.source.clone(),
        dry_run: args.dry_run,
    };
    for file in &args.files {
        let spooled = if file.as_os_str() == "-" {
            Some(Spooled::stdin()?)
        } else {
            None
        };
        let path = spooled.as_ref().map_or(file.as_path(), |s| s.0.as_path());
        let report = transfer::import_file(&store, &Actor::system("flagstone import"), path, &opts)
            .await
            .with_context(|| format!("import of {} refused; it wrote nothing", file.display()))?;
        for w in &report.warnings {
            eprintln!("warning: {}: {w}", file.display());
        }
        for e in &report.changed_environments {
            eprintln!(
                "{}: environment {} ({}) serves different flags for: {}",
                if opts.dry_run {
                    "would change"
                } else {
                    "changed"
                },
                e.id,
                e.name,
                e.features.join(", ")
            );
        }
        writeln!(
            std::io::stdout(),
            "{}",
            serde_json::to_string_pretty(&report)?
        )?;
        // The next files are from the same installation as this one.
        opts.source = Some(report.source);
    }
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
