//! `stratos debug`: tools for people debugging ATProto interop.

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde_json::json;
use std::io::{BufRead, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use stratos_schema::blocks::BlockMap;
use stratos_schema::car::{CarLimits, CarReader};
use stratos_schema::data::{parse_cid, verify_cid};
use stratos_schema::keys::PublicKey;
use stratos_schema::mst::Mst;
use stratos_schema::repo::read_repo;

/// Tools for debugging ATProto interop.
#[derive(Debug, Subcommand)]
pub enum DebugCommand {
    /// Print the MST root CID of the `<key> <cid>` lines read on stdin.
    MstRoot,
    /// Show what a CAR file holds and whether its commit, MST and CIDs verify.
    Car(CarArgs),
    /// Follow `subscribeRecords` and print each frame as a JSON line.
    Subscribe(crate::subscribe::SubscribeArgs),
}

/// Arguments of `stratos debug car`.
#[derive(Debug, Args)]
pub struct CarArgs {
    /// The CAR file to inspect.
    file: PathBuf,
    /// Also check the commit signature with this public key (`did:key:…`).
    #[arg(long, value_name = "DID_KEY")]
    key: Option<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs a debug subcommand.
pub fn run(command: DebugCommand) -> Result<ExitCode> {
    match command {
        DebugCommand::MstRoot => mst_root(std::io::stdin().lock()),
        DebugCommand::Car(args) => inspect_car(&args),
        DebugCommand::Subscribe(args) => crate::subscribe::run(args),
    }
}

fn mst_root(input: impl BufRead) -> Result<ExitCode> {
    let mut tree = Mst::new();
    for (index, line) in input.lines().enumerate() {
        let line = line.context("reading stdin")?;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, cid) = line
            .split_once(char::is_whitespace)
            .with_context(|| format!("line {}: expected `<key> <cid>`", index + 1))?;
        let cid = parse_cid(cid.trim()).with_context(|| format!("line {}", index + 1))?;
        tree = tree
            .insert(&(), key, cid)
            .with_context(|| format!("line {}", index + 1))?;
    }
    println!("{}", tree.root_cid());
    Ok(ExitCode::SUCCESS)
}

/// The outcome of one check: `Ok(detail)` or `Err(reason)`.
type Check = std::result::Result<String, String>;

fn inspect_car(args: &CarArgs) -> Result<ExitCode> {
    let mut bytes = Vec::new();
    std::fs::File::open(&args.file)
        .and_then(|mut file| file.read_to_end(&mut bytes))
        .with_context(|| format!("reading {}", args.file.display()))?;
    let key = args
        .key
        .as_deref()
        .map(PublicKey::from_did_key)
        .transpose()
        .context("--key")?;

    let mut reader = CarReader::new(bytes.as_slice(), CarLimits::default())
        .with_context(|| format!("{} is not a CAR file", args.file.display()))?;
    let roots = reader.roots().to_vec();
    let mut blocks = BlockMap::new();
    let mut mismatched = Vec::new();
    let read_error = loop {
        match reader.next_block_unverified() {
            Ok(Some((cid, data))) => {
                if verify_cid(&cid, &data).is_err() {
                    mismatched.push(cid.to_string());
                }
                blocks.insert(cid, data);
            }
            Ok(None) => break None,
            Err(error) => break Some(error.to_string()),
        }
    };

    let cids: Check = match (&read_error, mismatched.is_empty()) {
        (Some(error), _) => Err(error.clone()),
        (None, true) => Ok(format!("all {} blocks match their CIDs", blocks.len())),
        (None, false) => Err(format!(
            "blocks not matching their CIDs: {}",
            mismatched.join(", ")
        )),
    };
    let [root] = roots.as_slice() else {
        bail!("expected exactly one root, found {}", roots.len());
    };

    let repo = read_repo(&blocks, *root);
    let (commit, mst, records, signature): (Check, Check, Check, Check) = match &repo {
        Err(error) => {
            let failed = Err(error.to_string());
            let skipped = Err("not checked: no readable commit and MST".to_string());
            (failed.clone(), failed, skipped.clone(), skipped)
        }
        Ok(repo) => {
            let c = &repo.commit;
            let prev = c.prev.map_or("null".to_string(), |p| p.to_string());
            let commit = Ok(format!(
                "did={} version={} rev={} data={} prev={} sig={} bytes",
                c.did,
                c.version,
                c.rev,
                c.data,
                prev,
                c.sig.len()
            ));
            let mst = Ok(format!("{} records", repo.records.len()));
            let missing = repo.missing_records(&blocks);
            let records = if missing.is_empty() {
                Ok(format!("all {} record blocks present", repo.records.len()))
            } else {
                Err(format!(
                    "{} record blocks missing, e.g. {}",
                    missing.len(),
                    missing[0]
                ))
            };
            let signature = match &key {
                None => Ok("not checked (pass --key did:key:…)".to_string()),
                Some(key) => c
                    .verify(key)
                    .map(|()| format!("valid for {}", key.to_did_key()))
                    .map_err(|e| e.to_string()),
            };
            (commit, mst, records, signature)
        }
    };

    let checks = [
        ("cids", &cids),
        ("commit", &commit),
        ("mst", &mst),
        ("records", &records),
        ("signature", &signature),
    ];
    let failed = checks.iter().any(|(_, check)| check.is_err());
    if args.json {
        let mut report = json!({
            "root": root.to_string(),
            "blocks": blocks.len(),
            "bytes": blocks.byte_len(),
            "ok": !failed,
        });
        for (name, check) in checks {
            report[name] = match check {
                Ok(detail) => json!({"ok": true, "detail": detail}),
                Err(reason) => json!({"ok": false, "error": reason}),
            };
        }
        if let Ok(repo) = &repo {
            report["commitFields"] = json!({
                "did": repo.commit.did.as_str(),
                "version": repo.commit.version,
                "rev": repo.commit.rev.as_str(),
                "data": repo.commit.data.to_string(),
                "prev": repo.commit.prev.map(|p| p.to_string()),
            });
            report["recordCount"] = json!(repo.records.len());
        }
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("root:      {root}");
        println!("blocks:    {} ({} bytes)", blocks.len(), blocks.byte_len());
        for (name, check) in checks {
            match check {
                Ok(detail) => println!("{:<10} ok: {detail}", format!("{name}:")),
                Err(reason) => println!("{:<10} FAILED: {reason}", format!("{name}:")),
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
