//! `com.atproto.repo.getRecord`, `listRecords` and `describeRepo`: the records a viewer may
//! see, in ATProto JSON. A record the viewer may not see answers exactly like a missing one.

use serde_json::{Value, json};
use stratos_schema::data::{decode_ipld, ipld_to_json};
use stratos_schema::syntax::{Did, Nsid, RecordKey};
use stratos_store::{KeyOrder, RecordRow};
use stratos_xrpc::XrpcError;

use crate::Queries;
use crate::viewer::{Reader, Viewer, bad_request, internal};

/// The largest `listRecords` page.
pub const MAX_LIST_LIMIT: u32 = 100;
/// The `listRecords` page size when none is asked for.
pub const DEFAULT_LIST_LIMIT: u32 = 50;

/// A parsed DID parameter.
pub fn did_param(name: &str, value: Option<&str>) -> Result<Did, XrpcError> {
    let value = value.ok_or_else(|| XrpcError::invalid_request(format!("{name} is required")))?;
    value
        .parse()
        .map_err(|e| XrpcError::invalid_request(format!("{name}: {e}")))
}

/// A parsed collection parameter.
pub fn collection_param(value: Option<&str>) -> Result<Nsid, XrpcError> {
    let value = value.ok_or_else(|| XrpcError::invalid_request("collection is required"))?;
    value
        .parse()
        .map_err(|e| XrpcError::invalid_request(format!("collection: {e}")))
}

/// A parsed record key parameter.
pub fn rkey_param(value: Option<&str>) -> Result<RecordKey, XrpcError> {
    let value = value.ok_or_else(|| XrpcError::invalid_request("rkey is required"))?;
    value
        .parse()
        .map_err(|e| XrpcError::invalid_request(format!("rkey: {e}")))
}

/// `{"uri", "cid", "value"}` of a record row, or `None` when its content is gone (purged).
pub fn record_view(did: &str, row: &RecordRow) -> Option<Value> {
    let block = row.block.as_deref()?;
    let value = decode_ipld(block).ok()?;
    Some(json!({
        "uri": format!("at://{did}/{}/{}", row.collection, row.rkey),
        "cid": row.cid.to_string(),
        "value": ipld_to_json(&value),
    }))
}

fn not_found() -> XrpcError {
    bad_request("RecordNotFound", "Could not locate record")
}

impl Queries {
    /// `com.atproto.repo.getRecord`: the record and the reader's boundaries in one statement.
    pub async fn get_record(
        &self,
        reader: Reader,
        repo: &Did,
        collection: &Nsid,
        rkey: &RecordKey,
        cid: Option<&str>,
    ) -> Result<Value, XrpcError> {
        let actor = match &reader {
            Reader::Actor(did) => Some(did.as_str()),
            Reader::Anonymous | Reader::Service => None,
        };
        let (row, boundaries) = self
            .store()
            .readable_record(repo.as_str(), collection.as_str(), rkey.as_str(), actor)
            .await
            .map_err(internal)?
            .ok_or_else(not_found)?;
        let viewer = match reader {
            Reader::Anonymous => Viewer::Anonymous,
            Reader::Service => Viewer::Service,
            Reader::Actor(did) => Viewer::Actor { did, boundaries },
        };
        if cid.is_some_and(|cid| cid != row.cid.to_string())
            || !viewer.can_see(repo.as_str(), &row.boundaries)
        {
            return Err(not_found());
        }
        record_view(repo.as_str(), &row).ok_or_else(not_found)
    }

    /// `com.atproto.repo.listRecords`: keyset pages by record key; records the viewer may not
    /// see are skipped before the page is cut, so a page is short only at the end.
    pub async fn list_records(
        &self,
        viewer: &Viewer,
        repo: &Did,
        collection: &Nsid,
        limit: u32,
        cursor: Option<&str>,
        reverse: bool,
    ) -> Result<Value, XrpcError> {
        let order = match reverse {
            true => KeyOrder::Ascending,
            false => KeyOrder::Descending,
        };
        let mut records = Vec::new();
        let mut after = cursor.map(str::to_string);
        // An actor who left shows an empty collection.
        let mut exhausted = self.active_owners([repo.as_str()]).await?.is_empty();
        while records.len() < limit as usize && !exhausted {
            let rows = self
                .store()
                .record_page(
                    repo.as_str(),
                    collection.as_str(),
                    after.as_deref(),
                    order,
                    limit,
                )
                .await
                .map_err(internal)?;
            exhausted = rows.len() < limit as usize;
            for row in &rows {
                after = Some(row.rkey.clone());
                if records.len() == limit as usize {
                    exhausted = false;
                    break;
                }
                if viewer.can_see(repo.as_str(), &row.boundaries)
                    && let Some(view) = record_view(repo.as_str(), row)
                {
                    records.push((row.rkey.clone(), view));
                }
            }
        }
        let cursor = match records.len() == limit as usize {
            true => records.last().map(|(rkey, _)| rkey.clone()),
            false => None,
        };
        let mut output = json!({
            "records": records.into_iter().map(|(_, view)| view).collect::<Vec<_>>(),
        });
        if let Some(cursor) = cursor {
            output["cursor"] = json!(cursor);
        }
        Ok(output)
    }

    /// `com.atproto.repo.describeRepo`.
    pub async fn describe_repo(&self, repo: &Did) -> Result<Value, XrpcError> {
        let did = repo.as_str();
        let known = self
            .store()
            .enrollment(did)
            .await
            .map_err(internal)?
            .is_some()
            || self.store().head(did).await.map_err(internal)?.is_some();
        if !known {
            return Err(bad_request("RepoNotFound", "Could not find repo"));
        }
        let collections = self.store().collections(did).await.map_err(internal)?;
        let document = self.inner.resolver.document(did).await.ok();
        let handle = document
            .as_ref()
            .and_then(|d| d.get("alsoKnownAs"))
            .and_then(Value::as_array)
            .and_then(|aka| {
                aka.iter()
                    .filter_map(Value::as_str)
                    .find_map(|a| a.strip_prefix("at://"))
            })
            .map(str::to_string);
        let handle_is_correct = match &handle {
            Some(handle) => self.inner.resolver.handle_did(handle).await.as_deref() == Some(did),
            None => false,
        };
        let mut output = json!({
            "handle": handle.as_deref().unwrap_or(did),
            "did": did,
            "collections": collections,
            "handleIsCorrect": handle_is_correct,
        });
        if let Some(document) = document {
            output["didDoc"] = document;
        }
        Ok(output)
    }
}
