//! Every subcommand answers `--help`.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::process::Command;

#[test]
fn every_subcommand_has_help() {
    let commands: &[&[&str]] = &[
        &[],
        &["up"],
        &["command-service"],
        &["query-service"],
        &["debug"],
        &["debug", "mst-root"],
        &["debug", "car"],
        &["projector"],
        &["replay"],
        &["verify-projections"],
        &["audit"],
        &["purge"],
        &["status"],
        &["bench"],
        &["bench", "log"],
        &["bench", "fill"],
        &["bench", "project"],
        &["bench", "write"],
        &["bench", "read"],
        &["bench", "timeline"],
    ];
    for command in commands {
        let output = Command::new(env!("CARGO_BIN_EXE_stratos"))
            .args(*command)
            .arg("--help")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{command:?}: {text}");
        assert!(text.contains("Usage: stratos"), "{command:?}: {text}");
    }
}

#[test]
fn a_missing_master_key_is_a_clear_error() {
    let dir = std::env::temp_dir().join(format!("stratos-no-key-{}", std::process::id()));
    let output = Command::new(env!("CARGO_BIN_EXE_stratos"))
        .args(["projector", "--log-file"])
        .arg(dir.join("log.sqlite"))
        .arg("--database-url")
        .arg(format!("sqlite://{}", dir.join("db.sqlite").display()))
        .env_remove("STRATOS_MASTER_KEY")
        .env_remove("STRATOS_MASTER_KEY_FILE")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("no master key"),
        "{output:?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn unknown_subcommands_fail_with_usage() {
    let output = Command::new(env!("CARGO_BIN_EXE_stratos"))
        .arg("frobnicate")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("Usage:"));
}
