//! Service-auth tokens minted by a real PDS (`com.atproto.server.getServiceAuth`, and the PDS
//! proxying a call with `atproto-proxy`) against a running `stratos up` in production auth
//! mode: good tokens write and read, every bad one gets its 401 and writes nothing.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use support::atproto::{Account, AtprotoStack, spawn_up};
use support::{free_port, post_input, stop, stratos, wait_ready};

const CREATE: &str = "com.atproto.repo.createRecord";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn post(account: &Account, boundary: &str, text: &str) -> Value {
    post_input(account.did.as_str(), boundary, text)
}

/// The token with its payload changed by `edit` and the original signature kept.
fn with_payload(token: &str, edit: impl FnOnce(&mut Value)) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let mut payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    edit(&mut payload);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&payload).unwrap());
    format!("{}.{payload}.{}", parts[0], parts[2])
}

/// The same token with its signature's `s` replaced by `n - s` (valid ECDSA, but high-S).
fn high_s(token: &str) -> String {
    // The order of secp256k1.
    const N: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xfe, 0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36,
        0x41, 0x41,
    ];
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let mut signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
    let s = &mut signature[32..];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let difference = i16::from(N[i]) - i16::from(s[i]) - borrow;
        borrow = i16::from(difference < 0);
        s[i] = (difference + 256 * borrow) as u8;
    }
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature))
}

#[tokio::test]
async fn tokens_from_a_real_pds() {
    let stack = AtprotoStack::start().await;
    let alice = stack.create_account("alice").await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let service = format!("did:web:localhost%3A{port}");
    let boundary = format!("{service}/general");
    stratos_command::auth::install_tls_provider();
    let client = reqwest::Client::new();

    // Enroll alice: a development-mode first write, then restart in production auth mode.
    let up = spawn_up(dir.path(), port, &stack, &["--dev-auth"]);
    wait_ready(&client, &base).await;
    let response = client
        .post(format!("{base}/xrpc/{CREATE}"))
        .bearer_auth(&alice.did)
        .json(&post(&alice, &boundary, "enrolled"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status().as_u16(),
        200,
        "{}",
        response.text().await.unwrap()
    );
    stop(up);
    let up = spawn_up(dir.path(), port, &stack, &[]);
    wait_ready(&client, &base).await;

    // Minted now, expired after its lifetime and the allowed clock skew have passed.
    let short_lived = stack
        .service_auth(&alice, &service, CREATE, Some(now() + 2))
        .await;
    let expired_at = Instant::now() + Duration::from_secs(2 + 31);

    let write = |token: String, text: &'static str| {
        let request = client
            .post(format!("{base}/xrpc/{CREATE}"))
            .bearer_auth(token)
            .json(&post(&alice, &boundary, text));
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };

    // A good token writes; the same token a second time is a replay.
    let token = stack.service_auth(&alice, &service, CREATE, None).await;
    let (status, body) = write(token.clone(), "with a PDS token").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["uri"]
            .as_str()
            .unwrap()
            .starts_with(&format!("at://{}/", alice.did))
    );
    let (status, body) = write(token.clone(), "replayed").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("BadJwt")),
        "{body}"
    );

    // The audience with the service fragment, as PDS proxying mints it, is ours too.
    let fragment = stack
        .service_auth(&alice, &format!("{service}#atproto_pns"), CREATE, None)
        .await;
    let (status, body) = write(fragment, "audience with fragment").await;
    assert_eq!(status, 200, "{body}");

    let refused = [
        (
            stack
                .service_auth(&alice, "did:web:elsewhere.test", CREATE, None)
                .await,
            "BadJwtAudience",
        ),
        (
            stack
                .service_auth(&alice, &service, "com.atproto.repo.deleteRecord", None)
                .await,
            "BadJwtLexiconMethod",
        ),
        (
            with_payload(
                &stack.service_auth(&alice, &service, CREATE, None).await,
                |p| {
                    p["exp"] = json!(p["exp"].as_i64().unwrap() + 60);
                },
            ),
            "BadJwtSignature",
        ),
        (
            high_s(&stack.service_auth(&alice, &service, CREATE, None).await),
            "BadJwtSignature",
        ),
        (
            with_payload(
                &stack.service_auth(&alice, &service, CREATE, None).await,
                |p| {
                    p["iss"] = json!("did:plc:aaaaaaaaaaaaaaaaaaaaaaaa");
                },
            ),
            "AuthRequired",
        ),
    ];
    for (token, error) in refused {
        let (status, body) = write(token, "refused").await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some(error)),
            "{body}"
        );
    }

    // The PDS proxies a call to us with `atproto-proxy`, minting its own token (repository
    // writes it serves itself; queries it does not know are proxied): alice's timeline.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let response = client
            .get(format!(
                "{}/xrpc/zone.stratos.feed.getTimeline",
                stack.pds_url
            ))
            .bearer_auth(&alice.access_jwt)
            .header("atproto-proxy", format!("{service}#atproto_pns"))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, 200, "{body}");
        let posts = body["feed"].as_array().unwrap().len();
        if posts == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "{body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    tokio::time::sleep_until(expired_at.into()).await;
    let (status, body) = write(short_lived, "expired").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("JwtExpired")),
        "{body}"
    );
    stop(up);

    // Exactly the accepted writes are in the log: the enrollment, the development write, the
    // PDS token and the fragment audience.
    let audit = stratos(dir.path())
        .args(["audit", &alice.did])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&audit.stdout);
    assert!(audit.status.success(), "{audit:?}");
    assert!(report.contains("4 events"), "{report}");
}
