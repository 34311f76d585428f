//! The command line without a running service: every subcommand answers `--help`, the
//! configuration file and `config check`, `migrate`, and the compose settings.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::process::Command;
use support::stratos;

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
        &["debug", "subscribe"],
        &["config"],
        &["config", "check"],
        &["migrate"],
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
    let dir = tempfile::tempdir().unwrap();
    let output = stratos(dir.path()).arg("projector").output().unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("no master key"),
        "{output:?}"
    );
    assert!(!dir.path().join("data").exists(), "nothing was created");
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

fn json_of(output: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|_| panic!("not JSON: {output:?}"))
}

fn setting<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no setting {name}: {report}"))
}

#[test]
fn config_check_shows_each_settings_source_and_masks_secrets() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("stratos.toml"),
        "public-url = \"https://stratos.example\"\nadmin_password = \"hunter2-admin\"\n\
         allowed-domains = [\"friends\", \"family\"]\nlisten = \"0.0.0.0:1\"\n\
         database-url = \"postgres://stratos:db-pass-9@db/stratos\"\n\
         master-key = \"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\"\n",
    )
    .unwrap();
    let output = stratos(dir.path())
        .args(["--config", "stratos.toml", "config", "check", "--role"])
        .args(["command-service", "--json"])
        .env("STRATOS_LISTEN", "127.0.0.1:4000")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    for secret in ["hunter2-admin", "db-pass-9", "00112233445566778899"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    let report = json_of(&output);
    assert_eq!(report["valid"], true);
    assert_eq!(setting(&report, "admin-password")["value"], "********");
    assert_eq!(setting(&report, "admin-password")["source"], "file");
    assert_eq!(
        setting(&report, "public-url")["value"],
        "https://stratos.example"
    );
    assert_eq!(
        setting(&report, "allowed-domains")["value"],
        "friends,family"
    );
    // The environment wins over the file.
    assert_eq!(setting(&report, "listen")["value"], "127.0.0.1:4000");
    assert_eq!(setting(&report, "listen")["source"], "env");
    assert_eq!(setting(&report, "max-body")["source"], "default");
    assert_eq!(
        setting(&report, "database-url")["value"],
        "postgres://stratos:***@db/stratos"
    );
    assert_eq!(
        setting(&report, "admin-password")["env"],
        "STRATOS_ADMIN_PASSWORD"
    );
}

/// Comma-separated settings are split, each entry trimmed, and empty entries dropped.
#[test]
fn comma_separated_settings_are_trimmed_and_empties_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let output = stratos(dir.path())
        .args(["config", "check", "--json"])
        .env("STRATOS_ALLOWED_DOMAINS", "general, friends,")
        .env("STRATOS_AUTO_ENROLL_DOMAINS", " friends ")
        .env("STRATOS_ALLOWED_APPVIEWS", "did:web:appview.example, ")
        .env("STRATOS_HANDLE_RESOLVERS", "https://bsky.social, ")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(json_of(&output)["valid"], true, "{output:?}");
    // A list with no entry at all is still refused.
    let output = stratos(dir.path())
        .args(["config", "check", "--json"])
        .env("STRATOS_ALLOWED_DOMAINS", " , ")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let report = json_of(&output);
    assert!(
        report["problems"][0]
            .as_str()
            .unwrap()
            .contains("names no boundary"),
        "{report}"
    );
}

#[test]
fn config_check_refuses_what_the_service_would_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let check = |args: &[&str]| {
        stratos(dir.path())
            .args(["config", "check", "--json"])
            .args(args)
            .output()
            .unwrap()
    };
    assert!(check(&[]).status.success(), "{:?}", check(&[]));
    for (env, value, complaint) in [
        ("STRATOS_PUBLIC_URL", "stratos.example", "--public-url"),
        (
            "STRATOS_AUTO_ENROLL_DOMAINS",
            "elsewhere",
            "not an allowed boundary",
        ),
        ("STRATOS_SERVICE_DID", "web:nope", "not a DID"),
        ("STRATOS_OAUTH_CLIENT_SECRET", "not-a-key", "key"),
        ("DATABASE_URL", "mysql://db/x", "neither postgres"),
        ("STRATOS_BLOB_STORAGE", "s3", "needs --s3-bucket"),
    ] {
        let output = stratos(dir.path())
            .args(["config", "check", "--json"])
            .env(env, value)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{env}={value} passed");
        let report = json_of(&output);
        assert_eq!(report["valid"], false);
        let problem = report["problems"][0].as_str().unwrap();
        assert!(problem.contains(complaint), "{env}: {problem}");
        // The service itself refuses to start with the same message.
        let started = stratos(dir.path())
            .args(["up", "--listen", "127.0.0.1:0"])
            .env(env, value)
            .output()
            .unwrap();
        assert!(!started.status.success());
        assert!(
            String::from_utf8_lossy(&started.stderr).contains(complaint),
            "{started:?}"
        );
    }
    // A projector needs its master key.
    let output = check(&["--role", "projector"]);
    assert!(!output.status.success());
    assert!(
        json_of(&output)["problems"][0]
            .as_str()
            .unwrap()
            .contains("no master key")
    );
}

#[test]
fn an_unknown_setting_in_the_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.toml"), "pubilc-url = \"https://x\"\n").unwrap();
    let output = stratos(dir.path())
        .args(["up", "--config", "bad.toml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown setting `pubilc-url`"));
}

#[test]
fn migrate_creates_the_tables_once() {
    let dir = tempfile::tempdir().unwrap();
    let migrate = || {
        let output = stratos(dir.path())
            .args(["migrate", "--json"])
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        json_of(&output)
    };
    let first = migrate();
    assert!(dir.path().join("data/stratos.sqlite").exists());
    assert!(
        dir.path().join("data/stratos-views.sqlite").exists(),
        "the views have a file of their own beside the projections"
    );
    assert!(
        !first["projections"]["applied"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(!first["views"]["applied"].as_array().unwrap().is_empty());
    let again = migrate();
    assert_eq!(again["projections"]["applied"], serde_json::json!([]));
    assert_eq!(again["views"]["applied"], serde_json::json!([]));
    assert_eq!(
        again["projections"]["version"],
        first["projections"]["version"]
    );
}

/// The settings compose gives every Stratos container pass `config check` for each role it runs.
#[test]
fn the_compose_settings_pass_config_check() {
    let compose = include_str!("../../compose/docker-compose.yml");
    let env_file = include_str!("../../compose/stratos.env");
    let settings: Vec<(&str, &str)> = env_file
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .map(|line| line.split_once('=').unwrap())
        .collect();
    let roles: Vec<&str> = compose
        .lines()
        .filter_map(|line| line.trim().strip_prefix("command: [\""))
        .map(|rest| rest.split('"').next().unwrap())
        .collect();
    assert_eq!(
        roles,
        ["migrate", "projector", "command-service", "query-service"]
    );
    let dir = tempfile::tempdir().unwrap();
    for role in &roles[1..] {
        let output = stratos(dir.path())
            .args(["config", "check", "--json", "--role", role])
            .envs(settings.iter().copied())
            .env(
                "STRATOS_MASTER_KEY",
                "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
            )
            .output()
            .unwrap();
        assert!(output.status.success(), "{role}: {output:?}");
        if *role != "query-service" {
            let report = json_of(&output);
            assert_eq!(setting(&report, "kafka-bootstrap")["value"], "kafka:9092");
        }
    }
}

/// On/off settings read `false`, `0`, `no` and empty as off (spec §12: the reference read any
/// non-empty text as on), and refuse what they cannot read.
#[test]
fn switches_from_the_environment_mean_what_they_say() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    for (value, on) in [
        ("false", false),
        ("0", false),
        ("no", false),
        ("", false),
        ("1", true),
        ("yes", true),
    ] {
        let mut up = stratos(dir.path())
            .args(["up", "--listen", "127.0.0.1:0"])
            .env("STRATOS_DEV_AUTH", value)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stdout = std::io::BufReader::new(up.stdout.take().unwrap());
        let announced = stdout
            .lines()
            .map(Result::unwrap)
            .find(|line| {
                line.contains("development authentication is ON")
                    || line.contains("users enroll at")
            })
            .unwrap();
        let _ = up.kill();
        let _ = up.wait();
        assert_eq!(
            announced.contains("is ON"),
            on,
            "STRATOS_DEV_AUTH={value:?}: {announced}"
        );
    }
    let refused = stratos(dir.path())
        .args(["up", "--listen", "127.0.0.1:0"])
        .env("STRATOS_DEV_AUTH", "disabled")
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("neither true"));
}

/// The compose proxy sends exactly the query service's methods to the query service.
#[test]
fn the_compose_proxy_routes_every_query_method_to_the_query_service() {
    let config = include_str!("../../compose/nginx.conf");
    let pattern = config
        .split("location ~ ^/xrpc/(")
        .nth(1)
        .and_then(|rest| rest.split(")$").next())
        .unwrap();
    let mut routed: Vec<String> = pattern.split('|').map(|m| m.replace("\\.", ".")).collect();
    let mut served: Vec<String> = stratos_query::http::METHODS
        .iter()
        .map(|(nsid, _)| nsid.to_string())
        .collect();
    routed.sort();
    served.sort();
    assert_eq!(routed, served);
}
