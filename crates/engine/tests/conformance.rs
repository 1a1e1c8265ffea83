//! Runs every Flagsmith engine-test-data case (v3.9.0) through `evaluate_context` and
//! compares the result JSON exactly with the expected `result`.
//!
//! The directory comes from `FLAGSTONE_ENGINE_TEST_DATA`, or defaults to the shared copy
//! next to the repository. Missing data fails under CI and is skipped (with a warning)
//! elsewhere.

use std::path::PathBuf;

use flagstone_engine::{evaluate_context, parse_jsonc, EvaluationContext};
use serde_json::Value;

fn test_data_dir() -> PathBuf {
    match std::env::var_os("FLAGSTONE_ENGINE_TEST_DATA") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/engine-test-data/test_cases"),
    }
}

#[test]
fn every_conformance_case_matches_the_expected_result() {
    let dir = test_data_dir();
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) => {
            if std::env::var_os("CI").is_some() {
                panic!("engine test data not found at {}: {e}", dir.display());
            }
            eprintln!(
                "warning: engine test data not found at {} ({e}); skipping conformance cases",
                dir.display()
            );
            return;
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json" || x == "jsonc"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no test cases in {}", dir.display());

    let mut failures = Vec::new();
    for path in &paths {
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(path).expect("readable test case");
        let case: Value = match parse_jsonc(&text, "test case") {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        let ctx: EvaluationContext = match serde_json::from_value(case["context"].clone()) {
            Ok(c) => c,
            Err(e) => {
                failures.push(format!("{name}: context does not parse: {e}"));
                continue;
            }
        };
        let got = serde_json::to_value(evaluate_context(&ctx)).expect("result serializes");
        if got != case["result"] {
            failures.push(format!(
                "{name}:\n  expected {}\n  got      {}",
                case["result"], got
            ));
        }
    }
    println!(
        "conformance: {} passed, {} failed",
        paths.len() - failures.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        paths.len(),
        failures.join("\n")
    );
}
