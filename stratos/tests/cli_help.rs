//! Every subcommand answers `--help`.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::process::Command;

#[test]
fn every_subcommand_has_help() {
    let commands: &[&[&str]] = &[
        &[],
        &["up"],
        &["debug"],
        &["debug", "mst-root"],
        &["debug", "car"],
        &["audit"],
        &["bench"],
        &["bench", "log"],
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
fn unknown_subcommands_fail_with_usage() {
    let output = Command::new(env!("CARGO_BIN_EXE_stratos"))
        .arg("frobnicate")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("Usage:"));
}
