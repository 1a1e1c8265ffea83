//! Identity evaluation, side by side: Flagstone's engine (compile once, evaluate many) and
//! the `flagsmith-flag-engine` 0.7.0 crate, alternating round by round in one process so
//! their ratio holds on a noisy machine. Flagsmith's Python engine is timed by
//! `bench/bench_python.py` on the same contexts; when its report is present, the ratios
//! against it are printed too.
//!
//! Workloads:
//! - (a) every conformance case in `../shared/engine-test-data/test_cases/`;
//! - (b) the incident-sized environment of `bench/gen_incident.py` (generated on first use).
//!
//! ```text
//! cargo bench -p flagstone-engine-bench [-- --rounds N] [--quick] [--incident PATH] [--cases DIR]
//!                                      [--only-ours] [--profile-ours SECONDS [--profile-detailed | --profile-conformance]]
//!                                      [--diagnose] [--dump-results PATH]
//! ```

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use flagsmith_flag_engine::engine::get_evaluation_result as crate_evaluate;
use flagsmith_flag_engine::engine_eval::context::{
    EngineEvaluationContext, IdentityContext as CrateIdentity,
};
use flagstone_engine::{
    evaluate_context, strip_line_comments, CompiledEnvironment, EvaluationContext, IdentityContext,
};
use serde_json::Value;

struct Args {
    rounds: usize,
    incident: PathBuf,
    cases: PathBuf,
    only_ours: bool,
    profile_ours: Option<f64>,
    /// Profile `evaluate_detailed` instead of `evaluate`.
    profile_detailed: bool,
    /// Profile one-shot `evaluate_context` on the conformance cases instead.
    profile_conformance: bool,
    diagnose: bool,
    /// Write every incident identity's full result (and of variants of it) as JSON lines.
    dump_results: Option<PathBuf>,
}

fn parse_args() -> Args {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut args = Args {
        rounds: 5,
        incident: root.join("bench/data/incident.json"),
        cases: root.join("../shared/engine-test-data/test_cases"),
        only_ours: false,
        profile_ours: None,
        profile_detailed: false,
        profile_conformance: false,
        diagnose: false,
        dump_results: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            // `cargo bench` passes `--bench`; filters are not supported.
            "--bench" => {}
            "--quick" => args.rounds = 3,
            "--rounds" => args.rounds = it.next().and_then(|v| v.parse().ok()).unwrap_or(5),
            "--incident" => args.incident = it.next().expect("--incident PATH").into(),
            "--cases" => args.cases = it.next().expect("--cases DIR").into(),
            "--only-ours" => args.only_ours = true,
            "--diagnose" => args.diagnose = true,
            "--dump-results" => {
                args.dump_results = Some(it.next().expect("--dump-results PATH").into())
            }
            "--profile-detailed" => args.profile_detailed = true,
            "--profile-conformance" => args.profile_conformance = true,
            "--profile-ours" => {
                args.profile_ours = Some(it.next().and_then(|v| v.parse().ok()).unwrap_or(10.0))
            }
            other => eprintln!("ignoring argument {other:?}"),
        }
    }
    args.rounds = args.rounds.max(1);
    args
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn min(xs: &[f64]) -> f64 {
    xs.iter().copied().fold(f64::INFINITY, f64::min)
}

fn ns_per(d: Duration, n: usize) -> f64 {
    d.as_nanos() as f64 / n as f64
}

fn fmt_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

/// Per-round ns/evaluation figures of one engine on one workload.
struct Timing {
    rounds: Vec<f64>,
}

impl Timing {
    fn new() -> Self {
        Timing { rounds: Vec::new() }
    }
    fn median(&self) -> f64 {
        median(&self.rounds)
    }
    fn min(&self) -> f64 {
        min(&self.rounds)
    }
    fn line(&self, label: &str) -> String {
        format!(
            "  {label:<44} {:>10}/eval median  {:>10} min  ({} rounds)",
            fmt_ns(self.median()),
            fmt_ns(self.min()),
            self.rounds.len()
        )
    }
}

/// ns/evaluation from `bench/data/python.json`, if `bench/bench_python.py` has been run.
fn python_report(incident: &Path) -> Option<Value> {
    let path = incident.with_file_name("python.json");
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

fn ratio_line(label: &str, theirs: f64, ours: f64) -> String {
    format!("  {label:<44} {:>8.1}x", theirs / ours)
}

// ---------------------------------------------------------------------------------------
// (a) conformance cases
// ---------------------------------------------------------------------------------------

struct Case {
    name: String,
    ours: EvaluationContext,
    compiled: CompiledEnvironment,
    theirs: Option<EngineEvaluationContext>,
}

fn load_cases(dir: &Path) -> Vec<Case> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read conformance cases in {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("json" | "jsonc")
            )
        })
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| {
            let text = strip_line_comments(&std::fs::read_to_string(p).expect("read case"));
            let mut doc: Value = serde_json::from_str(&text).expect("case JSON");
            let context = doc["context"].take();
            let ours: EvaluationContext =
                serde_json::from_value(context.clone()).expect("our engine reads every case");
            let theirs = serde_json::from_value(context).ok();
            Case {
                name: p.file_name().unwrap().to_string_lossy().into_owned(),
                compiled: CompiledEnvironment::from_context(&ours),
                ours,
                theirs,
            }
        })
        .collect()
}

fn bench_conformance(args: &Args, python: Option<&Value>) {
    if !args.cases.is_dir() {
        println!(
            "(a) conformance cases: SKIPPED, {} not found",
            args.cases.display()
        );
        return;
    }
    let cases = load_cases(&args.cases);
    if let Some(secs) = args.profile_ours {
        // A plain loop of one-shot evaluations, for `perf record` / callgrind.
        let end = Instant::now() + Duration::from_secs_f64(secs);
        let mut evals = 0usize;
        while Instant::now() < end {
            for c in &cases {
                black_box(evaluate_context(black_box(&c.ours)));
            }
            evals += cases.len();
        }
        println!("  profiled {evals} one-shot evaluations of conformance cases");
        return;
    }
    let readable = cases.iter().filter(|c| c.theirs.is_some()).count();
    println!(
        "(a) conformance cases: {} cases ({} readable by flagsmith-flag-engine 0.7.0)",
        cases.len(),
        readable
    );
    for c in cases.iter().filter(|c| c.theirs.is_none()) {
        println!("    not readable by the 0.7.0 crate: {}", c.name);
    }

    // Each round: every case once per engine. Cases are tiny, so repeat them to get
    // measurable rounds.
    let reps = 50;
    let n = cases.len() * reps;
    let mut one_shot = Timing::new();
    let mut compiled = Timing::new();
    let mut theirs = Timing::new();
    let mut ours_subset = Timing::new();
    let rounds = args.rounds.max(5);
    for round in 0..=rounds {
        let t = Instant::now();
        for _ in 0..reps {
            for c in &cases {
                black_box(evaluate_context(black_box(&c.ours)));
            }
        }
        let d_one_shot = t.elapsed();

        let t = Instant::now();
        for _ in 0..reps {
            for c in &cases {
                black_box(c.compiled.evaluate(black_box(c.ours.identity.as_ref())));
            }
        }
        let d_compiled = t.elapsed();

        let t = Instant::now();
        for _ in 0..reps {
            for c in cases.iter().filter(|c| c.theirs.is_some()) {
                black_box(evaluate_context(black_box(&c.ours)));
            }
        }
        let d_ours_subset = t.elapsed();

        let d_theirs = if args.only_ours {
            Duration::ZERO
        } else {
            let t = Instant::now();
            for _ in 0..reps {
                for c in &cases {
                    if let Some(ctx) = &c.theirs {
                        black_box(crate_evaluate(black_box(ctx)));
                    }
                }
            }
            t.elapsed()
        };
        if round == 0 {
            continue; // warm-up
        }
        one_shot.rounds.push(ns_per(d_one_shot, n));
        compiled.rounds.push(ns_per(d_compiled, n));
        ours_subset
            .rounds
            .push(ns_per(d_ours_subset, readable * reps));
        theirs.rounds.push(ns_per(d_theirs, readable * reps));
    }
    println!(
        "{}",
        one_shot.line("ours, evaluate_context (compile+evaluate)")
    );
    println!("{}", compiled.line("ours, precompiled, evaluate"));
    if !args.only_ours {
        println!(
            "{}",
            ours_subset.line("ours, evaluate_context, crate-readable subset")
        );
        println!(
            "{}",
            theirs.line("flagsmith-flag-engine 0.7.0, crate-readable")
        );
        println!(
            "{}",
            ratio_line(
                "ratio crate 0.7.0 / ours (one-shot, medians)",
                theirs.median(),
                ours_subset.median()
            )
        );
    }
    if let Some(py) = python
        .and_then(|p| p["conformance"]["ns_per_eval_median"].as_f64())
        .filter(|ns| *ns > 0.0)
    {
        println!("  {:<44} {:>10}/eval median", "python engine", fmt_ns(py));
        println!(
            "{}",
            ratio_line(
                "ratio python / ours (one-shot, medians)",
                py,
                one_shot.median()
            )
        );
    }
}

// ---------------------------------------------------------------------------------------
// (b) incident-sized environment
// ---------------------------------------------------------------------------------------

fn ensure_incident(path: &Path) {
    if path.exists() {
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/gen_incident.py");
    println!("generating {} with {}", path.display(), script.display());
    let status = Command::new("python3")
        .arg(&script)
        .arg("--out")
        .arg(path)
        .status()
        .expect("run python3 bench/gen_incident.py");
    assert!(status.success(), "bench/gen_incident.py failed");
}

/// enabled + value per flag: what the agreement check compares.
type FlagDigest = BTreeMap<String, (bool, Value)>;

fn ours_digest(compiled: &CompiledEnvironment, id: &IdentityContext) -> FlagDigest {
    compiled
        .evaluate(Some(id))
        .flags
        .into_iter()
        .map(|(k, f)| (k, (f.enabled, normalise(f.value))))
        .collect()
}

/// Numbers compare by value (the crate turns every JSON float into f64).
fn normalise(v: Value) -> Value {
    match v {
        Value::Number(n) if n.is_f64() => n
            .as_f64()
            .and_then(serde_json::Number::from_f64)
            .map_or(Value::Null, Value::Number),
        other => other,
    }
}

/// Passes over all identities per round for our engine (the crate does one).
const OURS_PASSES: usize = 8;

fn bench_incident(args: &Args, python: Option<&Value>) {
    ensure_incident(&args.incident);
    let text = std::fs::read_to_string(&args.incident).expect("read incident workload");
    let data: Value = serde_json::from_str(&text).expect("incident JSON");
    let env_json = &data["environment"];
    let ids_json = data["identities"].as_array().expect("identities");

    let ours_ctx: EvaluationContext =
        serde_json::from_value(env_json.clone()).expect("our engine reads the environment");
    let ids: Vec<IdentityContext> = ids_json
        .iter()
        .map(|i| serde_json::from_value(i.clone()).expect("identity"))
        .collect();
    let n_overrides: usize = ours_ctx.segments.values().map(|s| s.overrides.len()).sum();
    println!(
        "(b) incident environment: {} features, {} segments, {} segment overrides, {} identities",
        ours_ctx.features.len(),
        ours_ctx.segments.len(),
        n_overrides,
        ids.len()
    );

    // Compile time.
    let mut compile = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        black_box(CompiledEnvironment::from_context(black_box(&ours_ctx)));
        compile.push(t.elapsed().as_nanos() as f64);
    }
    let compiled = CompiledEnvironment::from_context(&ours_ctx);
    println!(
        "  ours, compile (CompiledEnvironment::from_context): {} median, {} min; {} compile issues",
        fmt_ns(median(&compile)),
        fmt_ns(min(&compile)),
        compiled.issues().len()
    );
    let matched: usize = ids
        .iter()
        .map(|id| compiled.evaluate_detailed(Some(id)).segments.len())
        .sum();
    println!(
        "  matching segments per identity: {:.1} of {}",
        matched as f64 / ids.len() as f64,
        ours_ctx.segments.len()
    );

    if let Some(path) = &args.dump_results {
        dump_results(path, &compiled, &ids);
        return;
    }

    if let Some(secs) = args.profile_ours {
        // A plain loop for `perf record` / `valgrind --tool=callgrind`.
        let end = Instant::now() + Duration::from_secs_f64(secs);
        let mut evals = 0usize;
        while Instant::now() < end {
            if args.profile_detailed {
                for id in &ids {
                    black_box(compiled.evaluate_detailed(black_box(Some(id))));
                }
            } else {
                for id in &ids {
                    black_box(compiled.evaluate(black_box(Some(id))));
                }
            }
            evals += ids.len();
        }
        println!("  profiled {evals} evaluations");
        return;
    }

    let mut theirs_ctx: Option<EngineEvaluationContext> = if args.only_ours {
        None
    } else {
        Some(serde_json::from_value(env_json.clone()).expect("crate reads the environment"))
    };
    let mut theirs_ids: Vec<Option<CrateIdentity>> = ids_json
        .iter()
        .map(|i| Some(serde_json::from_value(i.clone()).expect("crate identity")))
        .collect();

    // Agreement check on enabled + value (the 0.7.0 crate's reasons differ: STATIC).
    if let Some(ctx) = theirs_ctx.as_mut() {
        let mut differing_ids = 0;
        let mut differing_flags = 0;
        let mut segment_lists_differ = 0;
        for (id, slot) in ids.iter().zip(theirs_ids.iter_mut()) {
            ctx.identity = slot.take();
            let r = crate_evaluate(ctx);
            *slot = ctx.identity.take();
            let theirs: FlagDigest = r
                .flags
                .into_iter()
                .map(|(k, f)| {
                    let v = normalise(serde_json::to_value(&f.value).unwrap_or(Value::Null));
                    (k, (f.enabled, v))
                })
                .collect();
            let ours = ours_digest(&compiled, id);
            let diff = ours
                .iter()
                .filter(|(k, v)| theirs.get(*k) != Some(v))
                .count()
                + theirs.keys().filter(|k| !ours.contains_key(*k)).count();
            if diff > 0 {
                if differing_ids < 3 {
                    let (k, v) = ours
                        .iter()
                        .find(|(k, v)| theirs.get(*k) != Some(v))
                        .expect("a differing flag");
                    println!(
                        "    DIFF {}: {k}: ours {v:?}, crate {:?}",
                        id.identifier,
                        theirs.get(k)
                    );
                }
                differing_ids += 1;
                differing_flags += diff;
            }
            let ours_segs: Vec<String> = compiled
                .evaluate_detailed(Some(id))
                .segments
                .iter()
                .map(|s| s.name.to_owned())
                .collect();
            let theirs_segs: Vec<String> = r.segments.into_iter().map(|s| s.name).collect();
            if ours_segs != theirs_segs {
                segment_lists_differ += 1;
            }
        }
        println!(
            "  agreement with crate 0.7.0 (enabled+value of {} flags x {} identities): {} \
             identities differ ({} flags); matched-segment lists differ for {} identities",
            ours_ctx.features.len(),
            ids.len(),
            differing_ids,
            differing_flags,
            segment_lists_differ
        );
    }
    check_python_agreement(args, &compiled, &ids);
    if args.diagnose {
        diagnose_conditions(env_json, ids_json);
    }

    // Timing: alternate engines round by round.
    let mut ours_full = Timing::new();
    let mut ours_detailed = Timing::new();
    let mut ours_detailed_cpu = Timing::new();
    let mut theirs = Timing::new();
    let mut theirs_cpu = Timing::new();
    for round in 0..=args.rounds {
        // Ours is ~100x faster than the crate: several passes per round steady its figure.
        let t = Instant::now();
        for _ in 0..OURS_PASSES {
            for id in &ids {
                black_box(compiled.evaluate(black_box(Some(id))));
            }
        }
        let d_full = t.elapsed();

        let t = Instant::now();
        let cpu = thread_cpu_ns();
        for _ in 0..OURS_PASSES {
            for id in &ids {
                black_box(compiled.evaluate_detailed(black_box(Some(id))));
            }
        }
        let d_detailed = t.elapsed();
        let d_detailed_cpu = thread_cpu_ns().zip(cpu).map(|(end, start)| end - start);

        let (d_theirs, d_theirs_cpu) = match theirs_ctx.as_mut() {
            None => (Duration::ZERO, None),
            Some(ctx) => {
                let t = Instant::now();
                let cpu = thread_cpu_ns();
                for slot in theirs_ids.iter_mut() {
                    // Moves the prepared identity in and out: no clone inside the timing.
                    ctx.identity = slot.take();
                    black_box(crate_evaluate(black_box(ctx)));
                    *slot = ctx.identity.take();
                }
                let cpu = thread_cpu_ns().zip(cpu).map(|(end, start)| end - start);
                (t.elapsed(), cpu)
            }
        };
        if round == 0 {
            continue; // warm-up
        }
        ours_full
            .rounds
            .push(ns_per(d_full, ids.len() * OURS_PASSES));
        ours_detailed
            .rounds
            .push(ns_per(d_detailed, ids.len() * OURS_PASSES));
        if let Some(ns) = d_detailed_cpu {
            ours_detailed_cpu
                .rounds
                .push(ns as f64 / (ids.len() * OURS_PASSES) as f64);
        }
        theirs.rounds.push(ns_per(d_theirs, ids.len()));
        if let Some(ns) = d_theirs_cpu {
            theirs_cpu.rounds.push(ns as f64 / ids.len() as f64);
        }
    }
    println!(
        "{}",
        ours_full.line("ours, compiled.evaluate (Flagsmith result)")
    );
    println!(
        "{}",
        ours_detailed.line("ours, compiled.evaluate_detailed (typed)")
    );
    if !ours_detailed_cpu.rounds.is_empty() {
        println!(
            "{}",
            ours_detailed_cpu.line("  same, on-CPU time (schedstat)")
        );
    }
    if theirs_ctx.is_some() {
        println!("{}", theirs.line("flagsmith-flag-engine 0.7.0"));
        let per_round: Vec<f64> = theirs
            .rounds
            .iter()
            .zip(&ours_full.rounds)
            .map(|(t, o)| t / o)
            .collect();
        println!(
            "{}  (per-round ratios: median {:.1}x, min {:.1}x)",
            ratio_line(
                "ratio crate 0.7.0 / ours evaluate (medians)",
                theirs.median(),
                ours_full.median()
            ),
            median(&per_round),
            min(&per_round)
        );
        println!(
            "{}",
            ratio_line(
                "ratio crate 0.7.0 / ours evaluate_detailed",
                theirs.median(),
                ours_detailed.median()
            )
        );
        // On-CPU time counts only this thread's own time, so on a box shared with other
        // work this ratio moves less than the wall-clock one.
        if !theirs_cpu.rounds.is_empty() && !ours_detailed_cpu.rounds.is_empty() {
            println!("{}", theirs_cpu.line("  crate, on-CPU time (schedstat)"));
            let per_round: Vec<f64> = theirs_cpu
                .rounds
                .iter()
                .zip(&ours_detailed_cpu.rounds)
                .map(|(t, o)| t / o)
                .collect();
            println!(
                "{}  (per-round ratios: median {:.1}x, min {:.1}x)",
                ratio_line(
                    "ratio crate / ours evaluate_detailed, on-CPU",
                    theirs_cpu.median(),
                    ours_detailed_cpu.median()
                ),
                median(&per_round),
                min(&per_round)
            );
        }
    }
    if let Some(py) = python
        .and_then(|p| p["incident"]["ns_per_eval_median"].as_f64())
        .filter(|ns| *ns > 0.0)
    {
        println!("  {:<44} {:>10}/eval median", "python engine", fmt_ns(py));
        println!(
            "{}",
            ratio_line(
                "ratio python / ours evaluate (medians)",
                py,
                ours_full.median()
            )
        );
        println!(
            "{}",
            ratio_line(
                "ratio python / ours evaluate_detailed",
                py,
                ours_detailed.median()
            )
        );
    }
    let target_us = 20.0;
    let verdict = |t: &Timing| {
        if t.rounds.is_empty() {
            "n/a"
        } else if t.median() <= target_us * 1e3 {
            "met"
        } else {
            "MISSED"
        }
    };
    println!(
        "  target <= {target_us} µs/identity (evaluate_detailed): wall {}, on-CPU {}",
        verdict(&ours_detailed),
        verdict(&ours_detailed_cpu)
    );
}

/// Writes `compiled.evaluate` of every identity, and of three variants of each (no hashing
/// key; traits retyped: numbers as text, text as numbers; half the traits dropped), one
/// JSON line per evaluation, so that two builds of the engine can be compared with `cmp`:
/// an optimisation must not change a single result.
fn dump_results(path: &Path, compiled: &CompiledEnvironment, ids: &[IdentityContext]) {
    use std::io::Write;
    let retyped = |v: &Value| match v {
        Value::Number(n) => Value::String(n.to_string()),
        Value::String(s) => s
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(format!("{s}.1"))),
        Value::Bool(b) => Value::String(b.to_string()),
        other => other.clone(),
    };
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("create dump"));
    let mut lines = 0;
    for (i, id) in ids.iter().enumerate() {
        let unkeyed = IdentityContext {
            key: None,
            ..id.clone()
        };
        let mut retyped_id = id.clone();
        for v in retyped_id.traits.values_mut() {
            *v = retyped(v);
        }
        let mut fewer = id.clone();
        fewer.traits.retain(|_, _| {
            lines += 1;
            (lines + i) % 2 == 0
        });
        for variant in [id, &unkeyed, &retyped_id, &fewer] {
            let result = compiled.evaluate(Some(variant));
            serde_json::to_writer(&mut out, &result).expect("write dump");
            out.write_all(b"\n").expect("write dump");
        }
    }
    let result = compiled.evaluate(None);
    serde_json::to_writer(&mut out, &result).expect("write dump");
    out.flush().expect("write dump");
    println!(
        "  wrote {} results to {}",
        ids.len() * 4 + 1,
        path.display()
    );
}

/// Nanoseconds this thread has spent on a CPU (Linux `schedstat`), so that a figure taken
/// while other processes share the cores counts only this thread's own time.
fn thread_cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// Compares enabled + value with `bench/data/python_flags.json` (written by
/// `bench/bench_python.py`) when present.
fn check_python_agreement(args: &Args, compiled: &CompiledEnvironment, ids: &[IdentityContext]) {
    let path = args.incident.with_file_name("python_flags.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return;
    };
    let Ok(Value::Object(py)) = serde_json::from_str::<Value>(&text) else {
        return;
    };
    let mut checked = 0;
    let mut differing = 0;
    for id in ids {
        let Some(Value::Object(flags)) = py.get(&id.identifier) else {
            continue;
        };
        checked += 1;
        let theirs: FlagDigest = flags
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    (v[0].as_bool().unwrap_or(false), normalise(v[1].clone())),
                )
            })
            .collect();
        if ours_digest(compiled, id) != theirs {
            differing += 1;
        }
    }
    println!(
        "  agreement with the Python engine (enabled+value, {checked} identities): {differing} differ"
    );
}

/// Splits every condition of the incident environment into a one-condition segment and
/// reports, by operator, the conditions on which our engine and the 0.7.0 crate disagree.
fn diagnose_conditions(env_json: &Value, ids_json: &[Value]) {
    let mut conditions = Vec::new();
    fn collect(rule: &Value, out: &mut Vec<Value>) {
        for c in rule["conditions"].as_array().into_iter().flatten() {
            out.push(c.clone());
        }
        for r in rule["rules"].as_array().into_iter().flatten() {
            collect(r, out);
        }
    }
    for seg in env_json["segments"].as_object().expect("segments").values() {
        for r in seg["rules"].as_array().into_iter().flatten() {
            collect(r, &mut conditions);
        }
    }
    let mut env = env_json.clone();
    let segments: serde_json::Map<String, Value> = conditions
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let key = format!("c{i}");
            let seg = serde_json::json!({
                "key": key, "name": key,
                "rules": [{"type": "ALL", "conditions": [c], "rules": []}],
                "overrides": [],
            });
            (key, seg)
        })
        .collect();
    env["segments"] = Value::Object(segments);
    let ours_ctx: EvaluationContext = serde_json::from_value(env.clone()).expect("ours");
    let compiled = CompiledEnvironment::from_context(&ours_ctx);
    let mut theirs_ctx: EngineEvaluationContext = serde_json::from_value(env).expect("crate");
    let mut by_op: BTreeMap<String, (usize, usize, Option<String>)> = BTreeMap::new();
    for id_json in ids_json.iter().take(100) {
        let id: IdentityContext = serde_json::from_value(id_json.clone()).expect("identity");
        let ours: std::collections::HashSet<String> = compiled
            .evaluate_detailed(Some(&id))
            .segments
            .iter()
            .map(|s| s.name.to_owned())
            .collect();
        theirs_ctx.identity = Some(serde_json::from_value(id_json.clone()).expect("identity"));
        let theirs: std::collections::HashSet<String> = crate_evaluate(&theirs_ctx)
            .segments
            .into_iter()
            .map(|s| s.name)
            .collect();
        for (i, c) in conditions.iter().enumerate() {
            let key = format!("c{i}");
            let value_kind = if c["value"].is_array() { " (list)" } else { "" };
            let semver = if c["value"].as_str().is_some_and(|v| v.ends_with(":semver")) {
                ":semver "
            } else {
                ""
            };
            let label = format!(
                "{semver}{}{value_kind} on {:?}",
                c["operator"].as_str().unwrap_or("?"),
                c["property"].as_str().unwrap_or("?")
            );
            let entry = by_op.entry(label).or_default();
            entry.0 += 1;
            if ours.contains(&key) != theirs.contains(&key) {
                entry.1 += 1;
                entry.2.get_or_insert_with(|| {
                    format!(
                        "e.g. traits {} value {}: ours {}, crate {}",
                        id_json["traits"],
                        c["value"],
                        ours.contains(&key),
                        theirs.contains(&key)
                    )
                });
            }
        }
    }
    println!("  per-condition agreement with crate 0.7.0 (first 100 identities):");
    for (label, (n, differ, example)) in by_op {
        if differ > 0 {
            let example = example.unwrap_or_default();
            let example: String = example.chars().take(300).collect();
            println!("    {label:<50} {differ}/{n} differ; {example}");
        }
    }
}

fn main() {
    let args = parse_args();
    println!("flagstone-engine vs flagsmith-flag-engine 0.7.0 (same process, alternating rounds)");
    let python = python_report(&args.incident);
    match &python {
        Some(p) => println!(
            "python figures from bench/data/python.json: {}",
            p["engine"].as_str().unwrap_or("?")
        ),
        None => println!(
            "no bench/data/python.json: run `python3 bench/bench_python.py` for the Python ratios"
        ),
    }
    if args.profile_ours.is_none() || args.profile_conformance {
        bench_conformance(&args, python.as_ref());
    }
    if !args.profile_conformance {
        bench_incident(&args, python.as_ref());
    }
}
