//! `flagstone eval`: answers "why does this user get this flag?" offline.
//!
//! Two forms: `--context ctx.json` evaluates a Flagsmith evaluation context and prints the
//! result JSON; `--document env.json [--identity ID --trait k=v ...]` evaluates an
//! environment document the way SDKs do in local evaluation and explains each flag.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use flagstone_engine::{
    CompiledEnvironment, EnvironmentDocument, Evaluation, EvaluationContext, IdentityContext,
    Reason, VariantChoice,
};
use indexmap::IndexMap;
use serde_json::Value;

/// Exit code for unreadable or malformed input files.
const EXIT_BAD_INPUT: u8 = 2;

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  flagstone eval --context case.jsonc\n  flagstone eval --document env.json --identity user-1 --trait plan=premium --trait age=42"
)]
pub struct EvalArgs {
    /// Evaluation context JSON (Flagsmith engine contract) to evaluate; lines starting
    /// with `//` are ignored, so engine test cases (.jsonc, with a top-level "context")
    /// work too. Prints the result JSON.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "document",
        required_unless_present = "document"
    )]
    context: Option<PathBuf>,

    /// Environment document JSON (as served by GET /api/v1/environment-document/).
    #[arg(long, value_name = "FILE")]
    document: Option<PathBuf>,

    /// Identifier of the identity to evaluate the document for; without it, the
    /// environment's default flags are shown.
    #[arg(long, value_name = "ID", requires = "document")]
    identity: Option<String>,

    /// A trait of the identity, as KEY=VALUE (repeatable). VALUE is read as JSON when it
    /// is a JSON scalar (42, 1.5, true, null, "quoted text"), otherwise as plain text.
    #[arg(long = "trait", value_name = "KEY=VALUE", requires = "identity", value_parser = parse_trait)]
    traits: Vec<(String, Value)>,

    /// With --document: print the result JSON instead of the explanation.
    #[arg(long)]
    json: bool,
}

/// Parses `KEY=VALUE`; the value is a JSON scalar if it parses as one, else a string.
fn parse_trait(arg: &str) -> Result<(String, Value), String> {
    let (key, raw) = arg
        .split_once('=')
        .ok_or_else(|| format!("expected KEY=VALUE, got {arg:?}"))?;
    if key.is_empty() {
        return Err(format!("empty trait key in {arg:?}"));
    }
    let value = match serde_json::from_str::<Value>(raw) {
        Ok(v) if !v.is_array() && !v.is_object() => v,
        _ => Value::String(raw.to_owned()),
    };
    Ok((key.to_owned(), value))
}

/// Runs the subcommand: 0 on success, 2 when an input file cannot be read or parsed.
pub fn run(args: EvalArgs) -> ExitCode {
    match execute(&args) {
        Ok(output) => {
            // A closed pipe (`| head`) is not an error worth a panic.
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "{output}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}

fn execute(args: &EvalArgs) -> Result<String, String> {
    if let Some(path) = &args.context {
        let ctx = read_context(path)?;
        let result = flagstone_engine::evaluate_context(&ctx);
        return serde_json::to_string_pretty(&result).map_err(|e| e.to_string());
    }
    let Some(path) = &args.document else {
        return Err("one of --context or --document is required".to_owned());
    };
    let text = read(path)?;
    let doc =
        EnvironmentDocument::from_json(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let compiled = CompiledEnvironment::from_document(&doc);
    let identity = args.identity.as_ref().map(|id| {
        let traits: IndexMap<String, Value> = args.traits.iter().cloned().collect();
        IdentityContext::new(id.clone(), traits)
    });
    let evaluation = compiled.evaluate_detailed(identity.as_ref());
    if args.json {
        return serde_json::to_string_pretty(&evaluation.to_result()).map_err(|e| e.to_string());
    }
    Ok(explain(&compiled, identity.as_ref(), &evaluation))
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Reads a context file; a test-case file (`{"context": ..., "result": ...}`) also works.
fn read_context(path: &Path) -> Result<EvaluationContext, String> {
    let text = read(path)?;
    let value: Value = flagstone_engine::parse_jsonc(&text, "evaluation context")
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let value = match value {
        Value::Object(mut map)
            if map.contains_key("context") && !map.contains_key("environment") =>
        {
            map.remove("context").unwrap_or(Value::Null)
        }
        other => other,
    };
    serde_json::from_value(value)
        .map_err(|e| format!("{}: invalid evaluation context: {e}", path.display()))
}

/// The human-readable explanation: who was evaluated, matched segments, one line per flag.
fn explain(
    compiled: &CompiledEnvironment,
    identity: Option<&IdentityContext>,
    evaluation: &Evaluation<'_>,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Environment {:?} (key {})",
        compiled.environment_name(),
        compiled.environment_key()
    );
    match identity {
        Some(identity) => {
            let _ = writeln!(
                out,
                "Identity {:?} (hash key {}_{}), {} trait(s)",
                identity.identifier,
                compiled.environment_key(),
                identity.identifier,
                identity.traits.len()
            );
            for (k, v) in &identity.traits {
                let _ = writeln!(out, "  {k} = {v}");
            }
        }
        None => out.push_str("No identity: environment default flags\n"),
    }

    let _ = writeln!(out, "\nSegments matched: {}", evaluation.segments.len());
    for s in &evaluation.segments {
        let id = s
            .metadata
            .and_then(|m| m.get("id"))
            .map(|id| format!(" (id {id})"))
            .unwrap_or_default();
        let _ = writeln!(out, "  {}{id}", s.name);
    }

    let _ = writeln!(out, "\nFlags: {}", evaluation.flags.len());
    let rows: Vec<[String; 5]> = evaluation
        .flags
        .iter()
        .map(|f| {
            [
                f.name.to_owned(),
                if f.enabled { "on" } else { "off" }.to_owned(),
                f.value.to_string(),
                match f.variant {
                    VariantChoice::NotApplicable => "-".to_owned(),
                    VariantChoice::Control => "control".to_owned(),
                    VariantChoice::Picked { key: Some(k) } => k.to_owned(),
                    VariantChoice::Picked { key: None } => "(unkeyed)".to_owned(),
                },
                match f.reason {
                    Reason::Default => "DEFAULT: environment default".to_owned(),
                    Reason::TargetingMatch { segment, .. } => {
                        format!("TARGETING_MATCH: override from segment {segment:?}")
                    }
                    Reason::Split { text } => format!("{text}: multivariate bucket"),
                },
            ]
        })
        .collect();
    let header = ["FLAG", "ENABLED", "VALUE", "VARIANT", "REASON"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count()).min(40);
        }
    }
    let mut line = |cells: [&str; 5]| {
        let mut l = String::from("  ");
        for (i, cell) in cells.iter().enumerate() {
            if i == 4 {
                l.push_str(cell);
            } else {
                let _ = write!(l, "{cell:<w$}  ", w = widths[i]);
            }
        }
        let _ = writeln!(out, "{}", l.trim_end());
    };
    line(header);
    for row in &rows {
        line([&row[0], &row[1], &row[2], &row[3], &row[4]]);
    }

    if !compiled.issues().is_empty() {
        let _ = writeln!(out, "\nWarnings (these conditions never match):");
        for issue in compiled.issues() {
            let _ = writeln!(out, "  {issue}");
        }
    }
    out.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trait_values_are_json_scalars_or_text() {
        assert_eq!(
            parse_trait("age=42").unwrap(),
            ("age".into(), Value::from(42))
        );
        assert_eq!(
            parse_trait("ok=true").unwrap(),
            ("ok".into(), Value::Bool(true))
        );
        assert_eq!(
            parse_trait("plan=premium").unwrap(),
            ("plan".into(), Value::from("premium"))
        );
        assert_eq!(
            parse_trait("s=\"42\"").unwrap(),
            ("s".into(), Value::from("42"))
        );
        assert_eq!(
            parse_trait("l=[1]").unwrap(),
            ("l".into(), Value::from("[1]"))
        );
        assert_eq!(parse_trait("e=").unwrap(), ("e".into(), Value::from("")));
        assert!(parse_trait("novalue").is_err());
        assert!(parse_trait("=x").is_err());
    }
}
