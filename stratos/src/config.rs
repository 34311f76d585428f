//! The configuration file, and `stratos config check`.
//!
//! A TOML file of top-level keys, each the long name of an option (`public-url`, or
//! `public_url`): `--config FILE` or `STRATOS_CONFIG`. One file can serve every role; a key that
//! the running subcommand does not take is ignored, a key no subcommand takes is an error. A flag
//! on the command line wins over the environment, which wins over the file, which wins over the
//! default.

use anyhow::{Context, Result, bail};
use clap::{ArgAction, ArgMatches, Args, CommandFactory, FromArgMatches, parser::ValueSource};
use serde_json::json;
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::Cli;

/// The command line with the file's settings added, and which settings came from the file.
#[derive(Debug)]
pub struct Layered {
    /// The arguments to parse.
    pub argv: Vec<OsString>,
    /// The file read, if any.
    pub file: Option<PathBuf>,
    /// The long names of the options whose value came from the file.
    pub from_file: BTreeSet<String>,
}

/// Adds the settings of the configuration file named on the command line (or in
/// `STRATOS_CONFIG`) to `argv`, for the options that neither a flag nor the environment sets.
pub fn layer(argv: Vec<OsString>) -> Result<Layered> {
    let file = config_path(&argv);
    let Some(path) = file.clone() else {
        return Ok(Layered {
            argv,
            file,
            from_file: BTreeSet::new(),
        });
    };
    let settings = read(&path)?;
    let root = Cli::command();
    let command = invoked(&root, &argv);
    let mut extra = Vec::new();
    let mut from_file = BTreeSet::new();
    for (key, value) in &settings {
        let name = key.replace('_', "-");
        let Some(arg) = command
            .get_arguments()
            .chain(root.get_arguments())
            .find(|arg| arg.get_long() == Some(name.as_str()) && !is_reserved(&name))
        else {
            if !is_reserved(&name) && takes_option(&root, &name) {
                continue; // another role's setting
            }
            bail!(
                "{}: unknown setting `{key}` (settings are the long option names of `stratos \
                 <command> --help`)",
                path.display()
            );
        };
        let on_command_line = argv.iter().any(|word| {
            let word = word.to_string_lossy();
            word == format!("--{name}") || word.starts_with(&format!("--{name}="))
        });
        let in_environment = arg
            .get_env()
            .is_some_and(|env| std::env::var_os(env).is_some());
        if on_command_line || in_environment {
            continue;
        }
        let values =
            scalars(value).with_context(|| format!("{}: setting `{key}`", path.display()))?;
        match arg.get_action() {
            ArgAction::SetTrue => match value.as_bool() {
                Some(true) => extra.push(OsString::from(format!("--{name}"))),
                Some(false) => {}
                None => bail!("{}: setting `{key}` is true or false", path.display()),
            },
            ArgAction::Append => {
                for value in values {
                    extra.push(OsString::from(format!("--{name}={value}")));
                }
            }
            _ if arg.get_value_delimiter().is_some() => {
                extra.push(OsString::from(format!("--{name}={}", values.join(","))));
            }
            _ => {
                let [value] = values.as_slice() else {
                    bail!("{}: setting `{key}` takes one value", path.display());
                };
                extra.push(OsString::from(format!("--{name}={value}")));
            }
        }
        from_file.insert(name);
    }
    let mut argv = argv;
    let at = argv
        .iter()
        .position(|word| word == "--")
        .unwrap_or(argv.len());
    argv.splice(at..at, extra);
    Ok(Layered {
        argv,
        file,
        from_file,
    })
}

/// Options the file cannot set.
fn is_reserved(name: &str) -> bool {
    matches!(name, "help" | "version" | "config")
}

/// `--config FILE`, `--config=FILE`, or `STRATOS_CONFIG`.
fn config_path(argv: &[OsString]) -> Option<PathBuf> {
    let mut words = argv.iter().skip(1);
    while let Some(word) = words.next() {
        if word == "--" {
            break;
        }
        if word == "--config" {
            return words.next().map(PathBuf::from);
        }
        if let Some(path) = word.to_str().and_then(|w| w.strip_prefix("--config=")) {
            return Some(PathBuf::from(path));
        }
    }
    std::env::var_os("STRATOS_CONFIG")
        .filter(|path| !path.is_empty())
        .map(PathBuf::from)
}

/// The file's settings.
fn read(path: &Path) -> Result<toml::Table> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the configuration file {}", path.display()))?;
    text.parse::<toml::Table>()
        .with_context(|| format!("{} is not valid TOML", path.display()))
}

/// The (sub)command that `argv` invokes: the deepest one named by its leading words.
fn invoked<'a>(root: &'a clap::Command, argv: &[OsString]) -> &'a clap::Command {
    // Global options that take a value (`--config FILE`) come before the subcommand's name.
    let takes_value = |word: &str| {
        root.get_arguments().any(|arg| {
            arg.is_global_set()
                && arg.get_action().takes_values()
                && word.strip_prefix("--") == arg.get_long()
        })
    };
    let mut command = root;
    let mut words = argv.iter().skip(1);
    while let Some(word) = words.next() {
        let word = word.to_string_lossy();
        if takes_value(&word) {
            words.next();
        } else if let Some(sub) = command.find_subcommand(word.as_ref()) {
            command = sub;
        } else if !word.starts_with('-') {
            break;
        }
    }
    command
}

/// Whether any subcommand takes `--name`.
fn takes_option(command: &clap::Command, name: &str) -> bool {
    command
        .get_arguments()
        .any(|arg| arg.get_long() == Some(name))
        || command.get_subcommands().any(|sub| takes_option(sub, name))
}

/// A setting's values as text: a string, number or boolean, or an array of them.
fn scalars(value: &toml::Value) -> Result<Vec<String>> {
    match value {
        toml::Value::String(text) => Ok(vec![text.clone()]),
        toml::Value::Integer(n) => Ok(vec![n.to_string()]),
        toml::Value::Float(n) => Ok(vec![n.to_string()]),
        toml::Value::Boolean(b) => Ok(vec![b.to_string()]),
        toml::Value::Array(items) => items
            .iter()
            .map(|item| match item {
                toml::Value::Array(_) | toml::Value::Table(_) => {
                    bail!("an array holds strings, numbers or booleans")
                }
                item => Ok(scalars(item)?.remove(0)),
            })
            .collect(),
        toml::Value::Table(_) => bail!("settings are top-level keys, not tables"),
        toml::Value::Datetime(_) => bail!("a date is not a setting's value"),
    }
}

/// `stratos config …`.
#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration of a role (secrets masked) and check it.
    Check(CheckArgs),
}

/// Arguments of `stratos config check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The role whose configuration to check.
    #[arg(long, value_enum, default_value = "up")]
    role: Role,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// The long-running roles.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Role {
    /// `stratos up`.
    Up,
    /// `stratos command-service`.
    CommandService,
    /// `stratos query-service`.
    QueryService,
    /// `stratos projector`.
    Projector,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Up => "up",
            Role::CommandService => "command-service",
            Role::QueryService => "query-service",
            Role::Projector => "projector",
        }
    }
}

/// One setting's effective value and where it came from.
struct Setting {
    name: String,
    env: Option<String>,
    value: Option<String>,
    source: &'static str,
}

/// Runs `stratos config check`: exits 0 when the role would start with this configuration.
pub fn run(args: CheckArgs, config: Option<PathBuf>) -> Result<ExitCode> {
    let mut argv = vec![OsString::from("stratos"), OsString::from(args.role.name())];
    if let Some(path) = &config {
        argv.push("--config".into());
        argv.push(path.into());
    }
    let layered = layer(argv)?;
    let root = Cli::command();
    let matches = root
        .clone()
        .try_get_matches_from(&layered.argv)
        .unwrap_or_else(|error| error.exit());
    let (_, role_matches) = matches
        .subcommand()
        .context("the role's subcommand is missing")?;
    let command = root
        .find_subcommand(args.role.name())
        .context("unknown role")?;
    let settings = effective(command, role_matches, &layered.from_file);
    let problems = match validate(args.role, role_matches) {
        Ok(()) => Vec::new(),
        Err(error) => vec![format!("{error:#}")],
    };
    let file = layered.file.as_ref().map(|path| path.display().to_string());
    if args.json {
        let settings: Vec<_> = settings
            .iter()
            .map(|s| json!({"name": s.name, "env": s.env, "value": s.value, "source": s.source}))
            .collect();
        let report = json!({
            "role": args.role.name(),
            "file": file,
            "settings": settings,
            "valid": problems.is_empty(),
            "problems": problems,
        });
        println!("{report:#}");
    } else {
        println!(
            "stratos {} (configuration file: {})",
            args.role.name(),
            file.as_deref().unwrap_or("none")
        );
        let width = settings.iter().map(|s| s.name.len()).max().unwrap_or(0);
        let values = settings
            .iter()
            .filter_map(|s| s.value.as_ref().map(String::len))
            .max()
            .unwrap_or(0)
            .min(40);
        for setting in &settings {
            println!(
                "  {:width$}  {:8} {:values$}{}",
                setting.name,
                setting.source,
                setting.value.as_deref().unwrap_or("-"),
                setting
                    .env
                    .as_deref()
                    .map(|env| format!("  {env}"))
                    .unwrap_or_default(),
            );
        }
        match problems.first() {
            None => println!("ok: `stratos {}` would start with this", args.role.name()),
            Some(problem) => println!("invalid: {problem}"),
        }
    }
    Ok(if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Every option of `command` with its value (secrets masked, URL passwords redacted).
fn effective(
    command: &clap::Command,
    matches: &ArgMatches,
    from_file: &BTreeSet<String>,
) -> Vec<Setting> {
    command
        .get_arguments()
        .filter_map(|arg| {
            let name = arg.get_long()?;
            if is_reserved(name) {
                return None;
            }
            let id = arg.get_id().as_str();
            let raw: Option<Vec<String>> = matches
                .get_raw(id)
                .map(|values| values.map(|v| v.to_string_lossy().into_owned()).collect());
            let value = raw.filter(|values| !values.is_empty()).map(|values| {
                if arg.is_hide_env_values_set() {
                    "********".to_string()
                } else {
                    crate::options::redact(&values.join(","))
                }
            });
            let source = match matches.value_source(id) {
                _ if from_file.contains(name) => "file",
                Some(ValueSource::CommandLine) => "flag",
                Some(ValueSource::EnvVariable) => "env",
                Some(ValueSource::DefaultValue) => "default",
                _ => "unset",
            };
            Some(Setting {
                name: name.to_string(),
                env: arg.get_env().map(|env| env.to_string_lossy().into_owned()),
                value,
                source,
            })
        })
        .collect()
}

/// The same checks the role makes before it starts, without connecting to anything.
fn validate(role: Role, matches: &ArgMatches) -> Result<()> {
    match role {
        Role::Up => crate::serve::UpArgs::from_arg_matches(matches)?.validate(),
        Role::CommandService => {
            crate::serve::CommandServiceArgs::from_arg_matches(matches)?.validate()
        }
        Role::QueryService => crate::serve::QueryServiceArgs::from_arg_matches(matches)?.validate(),
        Role::Projector => crate::projections::ProjectorArgs::from_arg_matches(matches)?.validate(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    fn argv(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_file_fills_what_no_flag_sets() {
        let config = file(
            "public_url = \"https://stratos.example\"\nallowed-domains = [\"a\", \"b\"]\n\
             dev-auth = true\nmax-body = 2048\nkafka-property = [\"acks=all\", \"linger.ms=5\"]\n\
             listen = \"0.0.0.0:9\"\n",
        );
        let path = config.path().to_str().unwrap();
        let layered = layer(argv(&[
            "stratos",
            "--config",
            path,
            "up",
            "--listen",
            "127.0.0.1:1",
        ]))
        .unwrap();
        let words: Vec<_> = layered
            .argv
            .iter()
            .map(|w| w.to_string_lossy().into_owned())
            .collect();
        assert!(words.contains(&"--public-url=https://stratos.example".into()));
        assert!(words.contains(&"--allowed-domains=a".into()));
        assert!(words.contains(&"--allowed-domains=b".into()));
        assert!(words.contains(&"--dev-auth".into()));
        assert!(words.contains(&"--max-body=2048".into()));
        assert!(words.contains(&"--kafka-property=acks=all".into()));
        assert!(words.contains(&"--kafka-property=linger.ms=5".into()));
        assert!(
            !words.iter().any(|w| w.starts_with("--listen=")),
            "{words:?}"
        );
        assert!(!layered.from_file.contains("listen"));
        <Cli as clap::Parser>::try_parse_from(&layered.argv).unwrap();
    }

    #[test]
    fn another_roles_setting_is_ignored_and_an_unknown_one_refused() {
        let shared = file("admin-password = \"x\"\nbatch-size = 10\n");
        let path = shared.path().to_str().unwrap();
        let layered = layer(argv(&["stratos", "--config", path, "query-service"])).unwrap();
        assert_eq!(
            layered.from_file,
            BTreeSet::from(["admin-password".to_string()])
        );
        let wrong = file("pubilc-url = \"https://x\"\n");
        let path = wrong.path().to_str().unwrap();
        let error = layer(argv(&["stratos", "--config", path, "up"])).unwrap_err();
        assert!(error.to_string().contains("unknown setting `pubilc-url`"));
    }

    #[test]
    fn tables_and_bad_toml_are_refused() {
        let nested = file("[service]\nlisten = \"127.0.0.1:1\"\n");
        let path = nested.path().to_str().unwrap();
        let error = layer(argv(&["stratos", "--config", path, "up"])).unwrap_err();
        assert!(format!("{error:#}").contains("unknown setting `service`"));
        let broken = file("listen = \n");
        let path = broken.path().to_str().unwrap();
        let error = layer(argv(&["stratos", "--config", path, "up"])).unwrap_err();
        assert!(format!("{error:#}").contains("not valid TOML"));
    }

    /// The settings table of the operator's guide names every environment variable.
    #[test]
    fn the_operators_guide_documents_every_setting() {
        let guide = include_str!("../../docs/operator.md");
        let mut missing = Vec::new();
        let root = Cli::command();
        for role in ["up", "command-service", "query-service", "projector"] {
            for arg in root.find_subcommand(role).unwrap().get_arguments() {
                if let Some(env) = arg.get_env().and_then(|env| env.to_str()) {
                    let short = env.trim_start_matches("STRATOS_WRITE_RATE");
                    if !guide.contains(env) && !guide.contains(&format!("`…{short}`")) {
                        missing.push(env.to_string());
                    }
                }
            }
        }
        assert!(missing.is_empty(), "not in docs/operator.md: {missing:?}");
    }
}
