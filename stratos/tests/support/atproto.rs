//! A real ATProto stack for tests: the PDS and PLC directory of `tests/atproto-stack/`, run by
//! the Node that `scripts/install-atproto-stack` installs (once, into a cache).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::KillOnDrop;

/// A running PDS + PLC directory; stopped when dropped (killed), its data removed after it.
pub struct AtprotoStack {
    /// The PDS, e.g. `http://localhost:41234`.
    pub pds_url: String,
    /// The PLC directory, e.g. `http://localhost:41235`.
    pub plc_url: String,
    client: reqwest::Client,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    _process: Child,
    /// Declared after the process, so it is removed once the process is gone.
    _data: tempfile::TempDir,
}

/// An account on the PDS, signed in.
pub struct Account {
    /// Its DID (`did:plc:…`).
    pub did: String,
    /// Its handle (`<name>.test`).
    pub handle: String,
    /// Its password.
    pub password: String,
    /// Its session's access token.
    pub access_jwt: String,
}

fn checkout() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

impl AtprotoStack {
    /// Installs the stack if needed, starts it and waits until it answers.
    pub async fn start() -> Self {
        stratos_command::auth::install_tls_provider();
        let root = checkout();
        let install = std::process::Command::new(root.join("scripts/install-atproto-stack"))
            .stderr(Stdio::inherit())
            .output()
            .expect("running scripts/install-atproto-stack");
        assert!(
            install.status.success(),
            "installing the ATProto stack failed"
        );
        let node = String::from_utf8(install.stdout)
            .unwrap()
            .trim()
            .to_string();
        // The harness cannot clean up after a kill: its data lives in a directory of ours.
        let data = tempfile::Builder::new()
            .prefix("stratos-atproto-")
            .tempdir()
            .expect("a data directory for the PDS");
        let mut process = Command::new(node)
            .arg(root.join("tests/atproto-stack/pds-harness.mjs"))
            .env("ATPROTO_DATA_DIR", data.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("starting the PDS harness");
        let mut lines = BufReader::new(process.stdout.take().unwrap()).lines();
        let ready = tokio::time::timeout(Duration::from_secs(90), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(json) = line.strip_prefix("READY ") {
                    return serde_json::from_str::<Value>(json).unwrap();
                }
            }
            panic!("the PDS harness stopped before it was ready");
        })
        .await
        .expect("the PDS harness did not start within 90 s");
        Self {
            pds_url: ready["pdsUrl"].as_str().unwrap().to_string(),
            plc_url: ready["plcUrl"].as_str().unwrap().to_string(),
            client: reqwest::Client::new(),
            stdin: process.stdin.take().unwrap(),
            lines,
            _process: process,
            _data: data,
        }
    }

    /// Makes the PDS unreachable (it drops every connection) until [`resume`](Self::resume).
    pub async fn pause(&mut self) {
        self.command("pause", "PAUSED").await;
    }

    /// Makes the authorization server fetch OAuth client documents under `public` (an https
    /// prefix) from `local` instead (a confidential client on loopback).
    pub async fn serve_client(&mut self, public: &str, local: &str) {
        self.command(&format!("client {public} {local}"), "CLIENT")
            .await;
    }

    /// Brings the PDS back after [`pause`](Self::pause).
    pub async fn resume(&mut self) {
        self.command("resume", "RESUMED").await;
    }

    async fn command(&mut self, command: &str, answer: &str) {
        use tokio::io::AsyncWriteExt;
        self.stdin
            .write_all(format!("{command}\n").as_bytes())
            .await
            .unwrap();
        self.stdin.flush().await.unwrap();
        while let Some(line) = self.lines.next_line().await.unwrap() {
            if line == answer {
                return;
            }
        }
        panic!("the PDS harness stopped");
    }

    /// Creates the account `<name>.test` and signs it in.
    pub async fn create_account(&self, name: &str) -> Account {
        let handle = format!("{name}.test");
        let password = format!("{name}-password");
        let created = self
            .xrpc_post(
                "com.atproto.server.createAccount",
                None,
                &json!({"handle": handle, "email": format!("{name}@example.test"), "password": password}),
            )
            .await;
        Account {
            did: created["did"].as_str().unwrap().to_string(),
            handle,
            password,
            access_jwt: created["accessJwt"].as_str().unwrap().to_string(),
        }
    }

    /// A service-auth token minted by the PDS for `account` (`getServiceAuth`).
    pub async fn service_auth(
        &self,
        account: &Account,
        aud: &str,
        lxm: &str,
        exp: Option<i64>,
    ) -> String {
        let mut query = vec![("aud", aud.to_string()), ("lxm", lxm.to_string())];
        if let Some(exp) = exp {
            query.push(("exp", exp.to_string()));
        }
        let response = self
            .client
            .get(format!(
                "{}/xrpc/com.atproto.server.getServiceAuth",
                self.pds_url
            ))
            .query(&query)
            .bearer_auth(&account.access_jwt)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert!(status.is_success(), "getServiceAuth: {status} {body}");
        body["token"].as_str().unwrap().to_string()
    }

    /// A procedure call on the PDS, optionally as `account`; panics unless it succeeds.
    pub async fn xrpc_post(&self, method: &str, account: Option<&Account>, body: &Value) -> Value {
        let mut request = self
            .client
            .post(format!("{}/xrpc/{method}", self.pds_url))
            .json(body);
        if let Some(account) = account {
            request = request.bearer_auth(&account.access_jwt);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert!(status.is_success(), "{method}: {status} {body}");
        body
    }
}

impl AtprotoStack {
    /// Signs `account` in on the PDS's authorization page at `authorize_url` and consents, as
    /// the page's script would in a browser (PDS 0.5 private API); the query of the redirect
    /// back to the client (`code`, `state`, `iss`).
    pub async fn approve(&self, authorize_url: &str, account: &Account) -> String {
        let browser = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let mut cookies = std::collections::BTreeMap::new();
        let absorb =
            |response: &reqwest::Response,
             cookies: &mut std::collections::BTreeMap<String, String>| {
                for value in response.headers().get_all("set-cookie") {
                    let pair = value.to_str().unwrap().split(';').next().unwrap();
                    if let Some((name, value)) = pair.split_once('=') {
                        cookies.insert(name.trim().to_string(), value.trim().to_string());
                    }
                }
            };
        let page = browser
            .get(authorize_url)
            .header("sec-fetch-mode", "navigate")
            .header("sec-fetch-dest", "document")
            .header("sec-fetch-site", "cross-site")
            .header("user-agent", "stratos-test")
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        let status = page.status();
        absorb(&page, &mut cookies);
        assert!(status.is_success(), "the authorization page: {status}");
        let api =
            async |endpoint: &str,
                   body: Value,
                   cookies: &mut std::collections::BTreeMap<String, String>| {
                let cookie = cookies
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join("; ");
                let response = browser
                    .post(format!(
                        "{}/@atproto/oauth-provider/~api{endpoint}",
                        self.pds_url
                    ))
                    .header("origin", &self.pds_url)
                    .header("referer", authorize_url)
                    .header("sec-fetch-mode", "same-origin")
                    .header("sec-fetch-site", "same-origin")
                    .header("sec-fetch-dest", "empty")
                    .header(
                        "x-csrf-token",
                        cookies.get("csrf-token").cloned().unwrap_or_default(),
                    )
                    .header("cookie", cookie)
                    .header("user-agent", "stratos-test")
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                absorb(&response, cookies);
                let status = response.status();
                let body: Value = response.json().await.unwrap();
                assert!(status.is_success(), "{endpoint}: {status} {body}");
                body
            };
        let signed_in = api(
            "/sign-in",
            json!({"locale": "en", "username": account.handle, "password": account.password, "remember": true}),
            &mut cookies,
        )
        .await;
        let did = signed_in["account"]["sub"]
            .as_str()
            .or(signed_in["account"]["did"].as_str())
            .unwrap()
            .to_string();
        let consent = api("/consent", json!({"did": did}), &mut cookies).await;
        let url = consent["url"].as_str().unwrap();
        url.split_once('?').unwrap().1.to_string()
    }
}

/// `stratos up` (killed if dropped unstopped) on `port` as `did:web:localhost%3A<port>` in
/// `dir`, resolving DIDs through the stack's PLC directory and handles through its PDS, with
/// `extra` arguments.
pub fn spawn_up(dir: &Path, port: u16, stack: &AtprotoStack, extra: &[&str]) -> KillOnDrop {
    let public_url = format!("http://localhost:{port}");
    let service_did = format!("did:web:localhost%3A{port}");
    spawn_up_at(dir, port, stack, (&public_url, &service_did), extra)
}

/// [`spawn_up`] with its own public URL and service DID.
pub fn spawn_up_at(
    dir: &Path,
    port: u16,
    stack: &AtprotoStack,
    (public_url, service_did): (&str, &str),
    extra: &[&str],
) -> KillOnDrop {
    let child = super::stratos(dir)
        .args(["up", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--public-url", public_url, "--service-did", service_did])
        .args(["--plc-url", &stack.plc_url, "--allow-private-did-hosts"])
        .args(["--handle-resolvers", &stack.pds_url])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    KillOnDrop::new(child)
}
