use std::ffi::OsString;

use clap::{CommandFactory, FromArgMatches};

use super::*;
use crate::{Cli, Command as Sub};

const FILE: &str = "/etc/flagstone/test.toml";

fn parse(text: &str, args: &[&str]) -> Result<Cli, String> {
    let cmd = apply(Cli::command(), text, FILE)?;
    let mut argv = vec!["flagstone"];
    argv.extend_from_slice(args);
    let matches = cmd.try_get_matches_from(argv).map_err(|e| e.to_string())?;
    Cli::from_arg_matches(&matches).map_err(|e| e.to_string())
}

fn serve(text: &str, args: &[&str]) -> crate::serve::ServeArgs {
    let mut argv = vec!["serve"];
    argv.extend_from_slice(args);
    match parse(text, &argv).unwrap().command {
        Sub::Serve(a) => *a,
        _ => unreachable!(),
    }
}

#[test]
fn the_file_sits_between_the_variables_and_the_built_in_defaults() {
    let text = r#"
        worker_concurrency = 7
        bind = "127.0.0.1:9000"
        http_max_connections = 10
        allow_signup = true
        log_format = "json"

        [edge]
        bind = "127.0.0.1:9100"
    "#;
    // The file over the built-in defaults.
    let a = serve(text, &[]);
    assert_eq!(a.bind.to_string(), "127.0.0.1:9000");
    assert_eq!(a.worker.worker_concurrency, 7);
    assert!(a.auth.allow_signup);
    // What the file does not say keeps its default.
    assert_eq!(a.db.database_max_connections, 10);
    let cli = parse(text, &["serve"]).unwrap();
    assert_eq!(cli.log_format, flagstone_observe::logging::LogFormat::Json);
    // A command's own table wins over the top level, for that command only.
    match parse(text, &["edge"]).unwrap().command {
        Sub::Edge(e) => assert_eq!(e.bind.to_string(), "127.0.0.1:9100"),
        _ => unreachable!(),
    }
    // A top-level key the command has no option for is another command's: ignored here.
    match parse(text, &["worker"]).unwrap().command {
        Sub::Worker(w) => assert_eq!(w.worker.worker_concurrency, 7),
        _ => unreachable!(),
    }
    // A flag over the file.
    let a = serve(
        text,
        &["--bind", "127.0.0.1:1", "--worker-concurrency", "3"],
    );
    assert_eq!(a.bind.to_string(), "127.0.0.1:1");
    assert_eq!(a.worker.worker_concurrency, 3);
    // A variable over the file (this variable is read by no other test in this binary).
    std::env::set_var("FLAGSTONE_HTTP_MAX_CONNECTIONS", "20");
    let from_env = serve(text, &[]).http.http_max_connections;
    let flag_over_env = serve(text, &["--http-max-connections", "30"])
        .http
        .http_max_connections;
    std::env::remove_var("FLAGSTONE_HTTP_MAX_CONNECTIONS");
    assert_eq!((from_env, flag_over_env), (20, 30));
    assert_eq!(serve(text, &[]).http.http_max_connections, 10);
    // No file: the built-in defaults.
    let a = serve("", &[]);
    assert_eq!(
        (a.bind.to_string(), a.worker.worker_concurrency),
        ("0.0.0.0:8000".to_string(), 2)
    );
    assert!(!a.auth.allow_signup);
}

#[test]
fn unknown_keys_and_tables_are_errors_naming_the_key_and_the_file() {
    for (text, named) in [
        ("databse_url = \"sqlite://x.db\"", "`databse_url`"),
        // Per invocation, not configuration: refused like an unknown key.
        ("json = true", "`json`"),
        ("test_pause_at = \"built\"", "`test_pause_at`"),
        ("config = \"other.toml\"", "`config`"),
        // The worker has no listener of its own.
        ("[worker]\nbind = \"127.0.0.1:1\"", "`worker.bind`"),
        ("[servr]\nbind = \"127.0.0.1:1\"", "[servr]"),
    ] {
        let e = parse(text, &["serve"]).err().expect(text);
        assert!(e.contains(named) && e.contains(FILE), "{text}: {e}");
    }
    let e = parse("bind = ", &["serve"]).err().unwrap();
    assert!(e.contains(FILE), "{e}");
}

#[test]
fn a_bad_value_names_the_key_the_file_and_why() {
    for (text, named, why) in [
        (
            "worker_concurrency = \"many\"",
            "`worker_concurrency`",
            "\"many\"",
        ),
        ("worker_concurrency = -1", "`worker_concurrency`", "\"-1\""),
        ("stale_unused_days = 0", "`stale_unused_days`", "1..=3650"),
        ("bind = \"localhost\"", "`bind`", "\"localhost\""),
        ("log_format = \"xml\"", "`log_format`", "\"xml\""),
        (
            "[edge]\nedge_poll_ms = 1.5",
            "`edge.edge_poll_ms`",
            "\"1.5\"",
        ),
        ("allow_signup = \"yes\"", "`allow_signup`", "true or false"),
        ("bind = [\"127.0.0.1:1\"]", "`bind`", "a string or a number"),
    ] {
        let e = parse(text, &["serve"]).err().expect(text);
        assert!(
            e.contains(named) && e.contains(FILE) && e.contains(why),
            "{text}: {e}"
        );
    }
}

#[test]
fn secrets_from_the_file_are_not_shown_in_help() {
    let text = r#"
        admin_key = "file-admin-key-SECRET-0123456789"
        database_url = "postgres://flagstone:DBPASSWORD@db/flagstone"
        metrics_token = "METRICSTOKEN-file"
    "#;
    let a = serve(text, &[]);
    assert_eq!(
        a.admin_key.as_deref(),
        Some("file-admin-key-SECRET-0123456789")
    );
    assert!(a.db.database_url.contains("DBPASSWORD"));
    let mut cmd = apply(Cli::command(), text, FILE).unwrap();
    let help = cmd
        .find_subcommand_mut("serve")
        .unwrap()
        .render_long_help()
        .to_string();
    assert!(help.contains("--admin-key"), "{help}");
    for secret in ["SECRET", "DBPASSWORD", "METRICSTOKEN"] {
        assert!(!help.contains(secret), "{secret} in --help:\n{help}");
    }
}

#[test]
fn every_option_of_every_role_has_a_variable_and_so_a_key() {
    let cmd = Cli::command();
    let mut seen = std::collections::HashMap::new();
    for role in ["serve", "edge", "worker"] {
        let sub = cmd.find_subcommand(role).unwrap();
        for arg in sub.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if arg.is_hide_set() || long == "help" {
                continue;
            }
            let env = arg
                .get_env()
                .unwrap_or_else(|| panic!("{role} --{long} has no variable"))
                .to_string_lossy()
                .into_owned();
            let expected = format!("FLAGSTONE_{}", arg.get_id().as_str().to_uppercase());
            assert!(is_configuration(arg), "{role} --{long}");
            // One name per option everywhere: the variable is the key in capitals.
            assert!(
                env == expected || seen.get(&env).is_none_or(|id| id == arg.get_id().as_str()),
                "{role} --{long}: {env}"
            );
            seen.insert(env, arg.get_id().as_str().to_string());
        }
    }
}

#[test]
fn docs_configuration_md_is_the_generated_reference() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/configuration.md");
    let doc = std::fs::read_to_string(path).expect("docs/configuration.md");
    let generated = reference(&Cli::command());
    let expected = splice(&doc, &generated).expect("the generated markers");
    assert!(
        doc == expected,
        "docs/configuration.md differs from the definitions: run \
         `cargo run -p flagstone -- config reference --update docs/configuration.md`"
    );
    for needle in [
        "| `--database-url` | `FLAGSTONE_DATABASE_URL` | `database_url` | `sqlite://flagstone.db` |",
        "| `--config` | `FLAGSTONE_CONFIG` | — | (none) | all |",
    ] {
        assert!(generated.contains(needle), "{needle}\n{generated}");
    }
}

#[test]
fn the_path_comes_from_the_flag_then_the_variable() {
    let args = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
    assert_eq!(
        config_path(&args(&["flagstone", "--config", "a.toml", "serve"])),
        Some("a.toml".into())
    );
    assert_eq!(
        config_path(&args(&["flagstone", "serve", "--config=b.toml"])),
        Some("b.toml".into())
    );
    // After `--` nothing is an option.
    assert_eq!(
        config_path(&args(&["flagstone", "eval", "--", "--config", "c.toml"]))
            .filter(|p| p.to_str() == Some("c.toml")),
        None
    );
}
