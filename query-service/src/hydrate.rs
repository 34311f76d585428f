//! `zone.stratos.repo.hydrateRecord` and `hydrateRecords` (spec §8): records by AT-URI for a
//! viewer, telling "not found" from "blocked". Batches read each owner's records in one query.

use std::collections::HashMap;

use serde_json::{Value, json};
use stratos_schema::syntax::{AtIdentifier, AtUri};
use stratos_store::RecordRow;
use stratos_xrpc::XrpcError;

use crate::Queries;
use crate::records::record_view;
use crate::viewer::{Viewer, bad_request, internal};

/// The most URIs one `hydrateRecords` call takes.
pub const MAX_HYDRATE_URIS: usize = 100;

/// What became of one URI.
#[derive(Debug, Clone, PartialEq)]
pub enum Hydrated {
    /// The record, as `{"uri", "cid", "value"}`.
    Record(Value),
    /// No such record (or another CID than asked for).
    NotFound,
    /// The record exists but the viewer may not see it.
    Blocked,
}

/// A record URI split into owner DID, collection and record key.
fn record_path(uri: &str) -> Option<(String, String, String)> {
    let parsed: AtUri = uri.parse().ok()?;
    let AtIdentifier::Did(did) = parsed.authority() else {
        return None;
    };
    Some((
        did.to_string(),
        parsed.collection()?.to_string(),
        parsed.rkey()?.to_string(),
    ))
}

impl Queries {
    /// `zone.stratos.repo.hydrateRecord`.
    pub async fn hydrate_record(
        &self,
        viewer: &Viewer,
        uri: Option<&str>,
        cid: Option<&str>,
    ) -> Result<Value, XrpcError> {
        let uri = uri
            .filter(|u| !u.is_empty())
            .ok_or_else(|| bad_request("InvalidInput", "URI required"))?;
        if record_path(uri).is_none() {
            return Err(bad_request("HydrationError", "Invalid AT-URI"));
        }
        let mut results = self
            .hydrate(viewer, &[(uri.to_string(), cid.map(str::to_string))])
            .await?;
        match results.pop() {
            Some(Hydrated::Record(view)) => Ok(view),
            Some(Hydrated::Blocked) => Err(bad_request(
                "RecordBlocked",
                "Record blocked due to boundary restrictions",
            )),
            _ => Err(bad_request("RecordNotFound", "Could not locate record")),
        }
    }

    /// `zone.stratos.repo.hydrateRecords`: `{"records", "notFound", "blocked"}`; URIs that
    /// do not parse are not found.
    pub async fn hydrate_records(
        &self,
        viewer: &Viewer,
        input: &Value,
    ) -> Result<Value, XrpcError> {
        let uris = input
            .get("uris")
            .and_then(Value::as_array)
            .ok_or_else(|| bad_request("InvalidInput", "URIs array required"))?;
        if uris.len() > MAX_HYDRATE_URIS {
            return Err(bad_request(
                "TooManyUris",
                format!("Maximum of {MAX_HYDRATE_URIS} URIs per request"),
            ));
        }
        let uris: Vec<(String, Option<String>)> = uris
            .iter()
            .map(|uri| {
                uri.as_str()
                    .map(|u| (u.to_string(), None))
                    .ok_or_else(|| bad_request("InvalidInput", "URIs must be strings"))
            })
            .collect::<Result<_, _>>()?;
        let results = self.hydrate(viewer, &uris).await?;
        let (mut records, mut not_found, mut blocked) = (Vec::new(), Vec::new(), Vec::new());
        for ((uri, _), result) in uris.into_iter().zip(results) {
            match result {
                Hydrated::Record(view) => records.push(view),
                Hydrated::NotFound => not_found.push(uri),
                Hydrated::Blocked => blocked.push(uri),
            }
        }
        Ok(json!({"records": records, "notFound": not_found, "blocked": blocked}))
    }

    /// Hydrates `(uri, expected CID)` pairs for `viewer`, in input order.
    pub async fn hydrate(
        &self,
        viewer: &Viewer,
        uris: &[(String, Option<String>)],
    ) -> Result<Vec<Hydrated>, XrpcError> {
        let paths: Vec<Option<(String, String, String)>> =
            uris.iter().map(|(uri, _)| record_path(uri)).collect();
        let keys: Vec<(&str, &str, &str)> = paths
            .iter()
            .flatten()
            .map(|(did, collection, rkey)| (did.as_str(), collection.as_str(), rkey.as_str()))
            .collect();
        let found: HashMap<(String, String, String), RecordRow> = self
            .store()
            .records_at(&keys)
            .await
            .map_err(internal)?
            .into_iter()
            .map(|(did, row)| ((did, row.collection.clone(), row.rkey.clone()), row))
            .collect();
        let active = self
            .active_owners(found.keys().map(|(did, _, _)| did.as_str()))
            .await?;
        Ok(paths
            .iter()
            .zip(uris)
            .map(|(path, (_, cid))| {
                let Some(key) = path else {
                    return Hydrated::NotFound;
                };
                let Some(row) = found.get(key).filter(|_| active.contains(&key.0)) else {
                    return Hydrated::NotFound;
                };
                let did = &key.0;
                if cid.as_ref().is_some_and(|cid| *cid != row.cid.to_string()) {
                    return Hydrated::NotFound;
                }
                if !viewer.can_see(did, &row.boundaries) {
                    return Hydrated::Blocked;
                }
                record_view(did, row).map_or(Hydrated::NotFound, Hydrated::Record)
            })
            .collect())
    }
}
