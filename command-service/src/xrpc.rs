//! XRPC conventions: `/xrpc/<nsid>`, JSON errors `{"error", "message"}` with their status, the
//! method check, and the write procedures' input and output shapes.

use serde::Deserialize;
use serde_json::{Value, json};
use stratos_schema::Cid;
use stratos_schema::data::json_to_ipld;
use stratos_schema::syntax::{Nsid, RecordKey};
pub use stratos_xrpc::{XrpcError, json_response};
use warp::http::StatusCode;

use crate::error::CommandError;
use crate::writes::{WriteOp, WriteResult};

impl From<CommandError> for XrpcError {
    fn from(error: CommandError) -> Self {
        if let CommandError::Internal(detail) = &error {
            tracing::error!(%detail, "command failed");
        }
        let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST);
        Self::new(status, error.name(), error.public_message())
    }
}

/// The methods this service answers: its procedures, `getBlob` and the enrollment queries.
pub const PROCEDURES: &[&str] = &[
    "com.atproto.repo.createRecord",
    "com.atproto.repo.putRecord",
    "com.atproto.repo.deleteRecord",
    "com.atproto.repo.applyWrites",
    "zone.stratos.repo.importRepo",
    "com.atproto.repo.uploadBlob",
    "com.atproto.sync.getBlob",
    "zone.stratos.enrollment.status",
    "zone.stratos.identity.resolveEnrollments",
    "zone.stratos.server.listDomains",
    "zone.stratos.enrollment.unenroll",
    "zone.stratos.admin.addBoundary",
    "zone.stratos.admin.removeBoundary",
    "zone.stratos.admin.setBoundaries",
    "zone.stratos.admin.unenroll",
];

/// Decodes a JSON input body.
pub fn input<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, XrpcError> {
    serde_json::from_slice(body).map_err(|e| XrpcError::invalid_request(format!("input: {e}")))
}

fn nsid(text: &str) -> Result<Nsid, XrpcError> {
    text.parse()
        .map_err(|e| XrpcError::invalid_request(format!("collection: {e}")))
}

fn rkey(text: &str) -> Result<RecordKey, XrpcError> {
    text.parse()
        .map_err(|e| XrpcError::invalid_request(format!("rkey: {e}")))
}

fn cid(text: &str, field: &str) -> Result<Cid, XrpcError> {
    stratos_schema::data::parse_cid(text)
        .map_err(|e| XrpcError::invalid_request(format!("{field}: {e}")))
}

fn record(value: &Value) -> Result<stratos_schema::Ipld, XrpcError> {
    json_to_ipld(value).map_err(|e| {
        XrpcError::new(
            StatusCode::BAD_REQUEST,
            "InvalidRecord",
            format!("record: {e}"),
        )
    })
}

/// `com.atproto.repo.createRecord` input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateRecordInput {
    /// The repository (the caller's DID).
    pub repo: String,
    collection: String,
    rkey: Option<String>,
    record: Value,
    swap_commit: Option<String>,
}

impl CreateRecordInput {
    /// The write and its `swapCommit`.
    pub fn into_write(self) -> Result<(Vec<WriteOp>, Option<Cid>), XrpcError> {
        let op = WriteOp::Create {
            collection: nsid(&self.collection)?,
            rkey: self.rkey.as_deref().map(rkey).transpose()?,
            record: record(&self.record)?,
        };
        Ok((vec![op], swap_commit(self.swap_commit)?))
    }
}

/// `com.atproto.repo.putRecord` input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PutRecordInput {
    /// The repository (the caller's DID).
    pub repo: String,
    collection: String,
    rkey: String,
    record: Value,
    /// Absent: no check; `null`: the record must not exist; a CID: the record must have it.
    #[serde(default, deserialize_with = "present")]
    swap_record: Option<Option<String>>,
    swap_commit: Option<String>,
}

impl PutRecordInput {
    /// The write and its `swapCommit`.
    pub fn into_write(self) -> Result<(Vec<WriteOp>, Option<Cid>), XrpcError> {
        let swap_record = match self.swap_record {
            None => None,
            Some(None) => Some(None),
            Some(Some(text)) => Some(Some(cid(&text, "swapRecord")?)),
        };
        let op = WriteOp::Put {
            collection: nsid(&self.collection)?,
            rkey: rkey(&self.rkey)?,
            record: record(&self.record)?,
            swap_record,
            must_exist: false,
        };
        Ok((vec![op], swap_commit(self.swap_commit)?))
    }
}

/// `com.atproto.repo.deleteRecord` input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteRecordInput {
    /// The repository (the caller's DID).
    pub repo: String,
    collection: String,
    rkey: String,
    swap_record: Option<String>,
    swap_commit: Option<String>,
}

impl DeleteRecordInput {
    /// The write and its `swapCommit`.
    pub fn into_write(self) -> Result<(Vec<WriteOp>, Option<Cid>), XrpcError> {
        let op = WriteOp::Delete {
            collection: nsid(&self.collection)?,
            rkey: rkey(&self.rkey)?,
            swap_record: self
                .swap_record
                .as_deref()
                .map(|c| cid(c, "swapRecord"))
                .transpose()?,
            must_exist: false,
        };
        Ok((vec![op], swap_commit(self.swap_commit)?))
    }
}

/// `com.atproto.repo.applyWrites` input: the ATProto union form
/// (`{"$type": "com.atproto.repo.applyWrites#create", collection, rkey?, value}`) and the
/// reference form (`{"action": "create", collection, rkey?, record}`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyWritesInput {
    /// The repository (the caller's DID).
    pub repo: String,
    writes: Vec<Value>,
    swap_commit: Option<String>,
}

impl ApplyWritesInput {
    /// The writes and their `swapCommit`.
    pub fn into_write(self) -> Result<(Vec<WriteOp>, Option<Cid>), XrpcError> {
        let ops = self
            .writes
            .iter()
            .enumerate()
            .map(|(index, write)| {
                apply_write(write).map_err(|e| XrpcError {
                    message: format!("writes[{index}]: {}", e.message),
                    ..e
                })
            })
            .collect::<Result<_, _>>()?;
        Ok((ops, swap_commit(self.swap_commit)?))
    }
}

fn apply_write(write: &Value) -> Result<WriteOp, XrpcError> {
    let field = |name: &str| write.get(name).and_then(Value::as_str);
    let action = match (field("$type"), field("action")) {
        (Some(kind), _) => kind
            .strip_prefix("com.atproto.repo.applyWrites#")
            .unwrap_or(kind),
        (None, Some(action)) => action,
        (None, None) => return Err(XrpcError::invalid_request("missing $type")),
    };
    let collection = nsid(field("collection").unwrap_or_default())?;
    let rkey_field = field("rkey").map(rkey).transpose()?;
    let value = || {
        write
            .get("value")
            .or_else(|| write.get("record"))
            .ok_or_else(|| XrpcError::invalid_request("missing value"))
            .and_then(record)
    };
    let required =
        |rkey: Option<RecordKey>| rkey.ok_or_else(|| XrpcError::invalid_request("missing rkey"));
    Ok(match action {
        "create" => WriteOp::Create {
            collection,
            rkey: rkey_field,
            record: value()?,
        },
        "update" => WriteOp::Put {
            collection,
            rkey: required(rkey_field)?,
            record: value()?,
            swap_record: None,
            must_exist: true,
        },
        "delete" => WriteOp::Delete {
            collection,
            rkey: required(rkey_field)?,
            swap_record: None,
            must_exist: true,
        },
        other => {
            return Err(XrpcError::invalid_request(format!(
                "unknown write type {other}"
            )));
        }
    })
}

fn swap_commit(text: Option<String>) -> Result<Option<Cid>, XrpcError> {
    text.as_deref().map(|c| cid(c, "swapCommit")).transpose()
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
fn present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

/// The answer to `createRecord` and `putRecord`.
pub fn record_output(result: &WriteResult) -> Value {
    let first = result.results.first();
    json!({
        "uri": first.map(|r| r.uri.clone()),
        "cid": first.and_then(|r| r.cid).map(|c| c.to_string()),
        "commit": commit_output(result),
        "validationStatus": "valid",
    })
}

/// The answer to `deleteRecord`.
pub fn delete_output(result: &WriteResult) -> Value {
    json!({ "commit": commit_output(result) })
}

/// The answer to `applyWrites`.
pub fn apply_writes_output(result: &WriteResult, ops: &[&'static str]) -> Value {
    let results: Vec<Value> = result
        .results
        .iter()
        .zip(ops)
        .map(|(r, kind)| match r.cid {
            Some(cid) => json!({
                "$type": format!("com.atproto.repo.applyWrites#{kind}Result"),
                "uri": r.uri,
                "cid": cid.to_string(),
                "validationStatus": "valid",
            }),
            None => json!({"$type": "com.atproto.repo.applyWrites#deleteResult"}),
        })
        .collect();
    json!({ "commit": commit_output(result), "results": results })
}

fn commit_output(result: &WriteResult) -> Value {
    json!({"cid": result.commit.cid.to_string(), "rev": result.commit.rev})
}
