//! The configuration file through the real binary: `--config` and `FLAGSTONE_CONFIG` reach the
//! command (here `migrate`, which creates the database the file names); a bad file stops the
//! process with status 2 and a message naming the key and the file, before anything is opened.

use std::process::Command;

fn flagstone() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_flagstone"));
    c.env_remove("FLAGSTONE_CONFIG")
        .env_remove("FLAGSTONE_DATABASE_URL");
    c
}

#[test]
fn the_file_named_by_the_flag_or_the_variable_configures_the_command() {
    let dir = tempfile::tempdir().unwrap();
    for (i, by_variable) in [false, true].into_iter().enumerate() {
        let db = dir.path().join(format!("from-file-{i}.db"));
        let file = dir.path().join(format!("flagstone-{i}.toml"));
        std::fs::write(
            &file,
            format!(
                "database_url = \"sqlite://{}\"\nlog_format = \"json\"\n\n[serve]\nbind = \"127.0.0.1:0\"\n",
                db.display()
            ),
        )
        .unwrap();
        let mut cmd = flagstone();
        if by_variable {
            cmd.env("FLAGSTONE_CONFIG", &file).arg("migrate");
        } else {
            cmd.args(["migrate", "--config"]).arg(&file);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        assert!(db.exists(), "the file's database_url was not used");
        // log_format from the file: the log line naming the file is JSON.
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(
            log.lines()
                .any(|l| l.starts_with('{') && l.contains("configuration file")),
            "{log}"
        );
    }
}

#[test]
fn a_bad_file_stops_the_process_naming_the_key_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("never.db");
    for (text, named) in [
        ("databse_url = \"sqlite://x.db\"\n", "`databse_url`"),
        (
            "database_max_connections = \"ten\"\n",
            "`database_max_connections`",
        ),
    ] {
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, text).unwrap();
        let out = flagstone()
            .args(["migrate", "--config"])
            .arg(&file)
            .arg("--database-url")
            .arg(format!("sqlite://{}", db.display()))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(named) && err.contains(&file.display().to_string()),
            "{err}"
        );
        assert!(!db.exists(), "nothing is opened with a bad file");
    }
    let out = flagstone()
        .args(["migrate", "--config", "/nonexistent/flagstone.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/flagstone.toml"));
}
