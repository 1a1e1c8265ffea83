//! `flagstone bench import`: what importing a Flagsmith document with many identity overrides
//! costs, in memory and time. For each size it writes a document to disk — streamed out, one
//! override at a time, never built in memory — then runs `flagstone import FILE` as a child
//! process into a fresh SQLite file and, with `--database-url postgres://…`, into a fresh
//! PostgreSQL schema, sampling the child's peak RSS (`VmHWM`) until it exits. Sizes side by
//! side show whether memory grows with the document (it must not: the import streams).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::json;

use super::{open_target, proc_status_kib, uuid_simple};

#[derive(clap::Args, Debug)]
pub struct ImportBenchArgs {
    /// Identity overrides per document (one document, and one import per store, each).
    #[arg(long, value_delimiter = ',', default_value = "100000,1000000")]
    pub identities: Vec<usize>,
    /// Also import into PostgreSQL (a fresh schema per import): `postgres://…`.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Features in the document; each identity overrides one of them.
    #[arg(long, default_value_t = 20)]
    pub features: usize,
    /// Where the documents are written (default: a temporary directory); they are removed
    /// afterwards unless `--keep`.
    #[arg(long)]
    pub dir: Option<std::path::PathBuf>,
    #[arg(long)]
    pub keep: bool,
    /// Also import each document the way `flagstone import` did before it streamed (the
    /// whole document parsed into memory, then imported), for comparison.
    #[arg(long)]
    pub compare_in_memory: bool,
    /// Internal: be that in-memory import of this file (`--hold-url` is the store).
    #[arg(long, hide = true, requires = "hold_url")]
    pub hold_file: Option<std::path::PathBuf>,
    #[arg(long, hide = true)]
    pub hold_url: Option<String>,
}

/// A distinct, well-formed uuid for the `n`th object of a kind.
fn uuid_like(kind: u32, n: usize) -> String {
    format!("{kind:08x}-0000-4000-8000-{n:012x}")
}

/// Writes a document with `identities` identity overrides to `path`, streaming.
fn write_document(
    path: &std::path::Path,
    identities: usize,
    features: usize,
) -> anyhow::Result<u64> {
    let feature =
        |f: usize| json!({"id": f + 1, "name": format!("feature_{f}"), "type": "STANDARD"});
    let states: Vec<_> = (0..features)
        .map(|f| {
            json!({"feature": feature(f), "enabled": f.is_multiple_of(2), "django_id": 1000 + f,
                   "featurestate_uuid": uuid_like(1, f),
                   "feature_state_value": format!("default-{f}"),
                   "multivariate_feature_state_values": []})
        })
        .collect();
    let header = json!({
        "id": 1, "api_key": format!("bench{}", &uuid_simple()[..12]), "name": "Bench import",
        "project": {"id": 1, "name": "Bench import", "hide_disabled_flags": false,
                    "organisation": {"id": 1, "name": "Bench", "feature_analytics": false,
                                     "stop_serving_flags": false, "persist_trait_data": true},
                    "segments": [], "server_key_only_feature_ids": []},
        "feature_states": states,
        "allow_client_traits": true, "hide_sensitive_data": false,
        "use_identity_composite_key_for_hashing": false,
        "use_identity_overrides_in_local_eval": false,
    });
    let mut text = serde_json::to_string(&header)?;
    text.pop(); // the closing brace: identity_overrides come last
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("create {}", path.display()))?,
    );
    out.write_all(text.as_bytes())?;
    out.write_all(b",\"identity_overrides\":[")?;
    for i in 0..identities {
        if i > 0 {
            out.write_all(b",")?;
        }
        let f = i % features;
        let io = json!({
            "identifier": format!("user-{i:08}"),
            "identity_uuid": uuid_like(2, i),
            "environment_api_key": header["api_key"],
            "identity_features": [{
                "feature": feature(f), "enabled": !i.is_multiple_of(3), "django_id": null,
                "featurestate_uuid": uuid_like(3, i),
                "feature_state_value": format!("value-{i}"),
                "multivariate_feature_state_values": [],
            }],
        });
        serde_json::to_writer(&mut out, &io)?;
    }
    out.write_all(b"]}")?;
    out.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

/// How a child process imports the file.
#[derive(Clone, Copy)]
enum Way {
    /// `flagstone import FILE`: streamed.
    Streamed,
    /// The document parsed whole into memory, then imported (what `flagstone import` did
    /// before it streamed).
    InMemory,
}

/// The in-memory import, in this (child) process: prints the report like `flagstone import`.
async fn hold(file: &std::path::Path, url: &str) -> anyhow::Result<()> {
    let store = flagstone_store::Store::open(&flagstone_store::ConnectOptions::new(url)).await?;
    let doc = flagstone_store::transfer::read_document(std::fs::File::open(file)?)?;
    let report = flagstone_store::transfer::import(
        &store,
        &flagstone_store::Actor::system("bench import"),
        &doc,
        &Default::default(),
    )
    .await?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// Runs an import of `file` into `url` in a child process; returns (seconds, peak RSS in MiB,
/// the report's identity_overrides).
fn run_import(file: &std::path::Path, url: &str, way: Way) -> anyhow::Result<(f64, f64, u64)> {
    let started = Instant::now();
    let mut command = Command::new(std::env::current_exe()?);
    match way {
        Way::Streamed => command.args(["import", "--database-url", url]).arg(file),
        Way::InMemory => command
            .args(["bench", "import", "--hold-url", url, "--hold-file"])
            .arg(file),
    };
    let mut child = command
        // Not sqlx's slow-statement warnings: a multi-row INSERT prints thousands of `$n`s.
        .env("RUST_LOG", "warn,sqlx::query=error")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("start flagstone import")?;
    let pid = child.id();
    let mut peak = 0;
    // VmHWM only grows: the last sample before exit is the peak up to then. Sampled often
    // so the final moments are not missed.
    let status = loop {
        if let Some(kib) = proc_status_kib(pid, "VmHWM") {
            peak = peak.max(kib);
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let elapsed = started.elapsed().as_secs_f64();
    let mut report = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().context("stdout")?, &mut report)?;
    if !status.success() {
        bail!("flagstone import failed ({status})");
    }
    let report: serde_json::Value = serde_json::from_str(&report).context("import report")?;
    let n = report["identity_overrides"].as_u64().unwrap_or(0);
    Ok((elapsed, peak as f64 / 1024.0, n))
}

pub async fn run(args: ImportBenchArgs) -> anyhow::Result<()> {
    if let (Some(file), Some(url)) = (&args.hold_file, &args.hold_url) {
        return hold(file, url).await;
    }
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => {
            std::env::temp_dir().join(format!("flagstone-bench-import-{}", &uuid_simple()[..8]))
        }
    };
    std::fs::create_dir_all(&dir)?;
    let mut stores: Vec<(&str, Option<&str>)> = vec![("sqlite", None)];
    if let Some(url) = &args.database_url {
        stores.push(("postgres", Some(url)));
    }
    let mut ways = vec![("streamed", Way::Streamed)];
    if args.compare_in_memory {
        ways.push(("in memory", Way::InMemory));
    }
    println!(
        "{:>10} {:>10} {:>9} {:>10} {:>10} {:>12} {:>14}",
        "overrides", "file MiB", "store", "import", "seconds", "peak RSS MiB", "overrides/s"
    );
    for &n in &args.identities {
        let file = dir.join(format!("document-{n}.json"));
        let bytes = write_document(&file, n, args.features.max(1))?;
        for (name, url) in &stores {
            for (way_name, way) in &ways {
                // A fresh store per import (its schema migrated here, not in the measured
                // child).
                let target = open_target(*url).await?;
                let (secs, peak, imported) = run_import(&file, &target.child_url, *way)?;
                drop(target);
                if imported != n as u64 {
                    bail!("{name}: imported {imported} identities with overrides, expected {n}");
                }
                println!(
                    "{:>10} {:>10.1} {:>9} {:>10} {:>10.1} {:>12.1} {:>14.0}",
                    n,
                    bytes as f64 / (1024.0 * 1024.0),
                    name,
                    way_name,
                    secs,
                    peak,
                    n as f64 / secs
                );
            }
        }
        if !args.keep {
            std::fs::remove_file(&file)?;
        }
    }
    if !args.keep && args.dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}
