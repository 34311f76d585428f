//! Repository export as CAR files: `com.atproto.sync.getRecord` (the commit, the MST path to
//! the key and the record: a proof of presence, or for the owner of absence) and
//! `zone.stratos.sync.getRepo` (the current commit, its tree and its records, streamed in
//! pages so memory stays flat however large the repository is).

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use stratos_schema::Cid;
use stratos_schema::blocks::BlockSource;
use stratos_schema::car::CarWriter;
use stratos_schema::events::SequencedCommit;
use stratos_schema::mst::Mst;
use stratos_schema::syntax::{Did, Nsid, RecordKey, Tid};
use stratos_store::{Head, RecordBlocks};
use stratos_xrpc::XrpcError;
use tokio::sync::mpsc;
use warp::http::{HeaderValue, header};
use warp::reply::{Reply, Response};

use crate::Queries;
use crate::viewer::{Viewer, bad_request, internal};

/// The media type of CAR files.
pub const CAR_MEDIA_TYPE: &str = "application/vnd.ipld.car";
/// Chunks buffered between the reader and a slow client.
const EXPORT_CHUNKS: usize = 8;

fn repo_not_found() -> XrpcError {
    bad_request("RepoNotFound", "Could not find repo")
}

fn car_response(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(CAR_MEDIA_TYPE),
    );
    response
}

/// A `Write` whose bytes are taken out in chunks.
#[derive(Clone, Default)]
struct Chunks(Arc<Mutex<Vec<u8>>>);

impl Chunks {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Write for Chunks {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Queries {
    async fn head_of(&self, did: &Did) -> Result<Head, XrpcError> {
        self.store()
            .head(did.as_str())
            .await
            .map_err(internal)?
            .ok_or_else(repo_not_found)
    }

    /// `com.atproto.sync.getRecord`.
    pub async fn sync_record(
        &self,
        viewer: &Viewer,
        did: &Did,
        collection: &Nsid,
        rkey: &RecordKey,
    ) -> Result<Response, XrpcError> {
        let head = self.head_of(did).await?;
        let record = self
            .store()
            .record(did.as_str(), collection.as_str(), rkey.as_str())
            .await
            .map_err(internal)?;
        let active = !self.active_owners([did.as_str()]).await?.is_empty();
        let visible = match &record {
            Some(row) => active && viewer.can_see(did.as_str(), &row.boundaries),
            None => viewer.is_owner_or_service(did.as_str()),
        };
        if !visible {
            return Err(bad_request("RecordNotFound", "Could not locate record"));
        }
        let blocks = self.store().blocks(did.as_str()).await.map_err(internal)?;
        let commit = blocks
            .get_block(&head.commit)
            .ok_or_else(|| internal("the head commit block is missing"))?;
        let tree = Mst::load(&blocks, head.data).map_err(internal)?;
        let proof = tree
            .proof(&blocks, &format!("{collection}/{rkey}"))
            .map_err(internal)?;
        let mut car = CarWriter::new(Vec::new(), &[head.commit]).map_err(internal)?;
        car.write_block(&head.commit, commit).map_err(internal)?;
        for (cid, bytes) in proof.iter() {
            car.write_block(cid, bytes).map_err(internal)?;
        }
        if let Some(row) = &record
            && let Some(block) = &row.block
        {
            car.write_block(&row.cid, block).map_err(internal)?;
        }
        Ok(car_response(warp::reply::Response::new(
            car.finish().map_err(internal)?.into(),
        )))
    }

    /// `com.atproto.sync.listBlobs`: the blobs the records of `did` refer to, for the owner or a
    /// trusted service, in CID order after `cursor`; with `since`, only those referred to by
    /// records written after that revision.
    pub async fn list_blobs(
        &self,
        viewer: &Viewer,
        did: &Did,
        since: Option<&Tid>,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<serde_json::Value, XrpcError> {
        if !viewer.is_owner_or_service(did.as_str()) {
            return Err(XrpcError::auth_required(
                "the repository's owner or an allow-listed service is required",
            ));
        }
        self.head_of(did).await?;
        let cids = self
            .store()
            .list_blobs(did.as_str(), since.map(Tid::as_str), cursor, limit)
            .await
            .map_err(internal)?;
        let mut page = serde_json::json!({ "cids": cids });
        if cids.len() == limit as usize
            && let Some(last) = cids.last()
        {
            page["cursor"] = serde_json::json!(last);
        }
        Ok(page)
    }

    /// `zone.stratos.sync.getRepo`: the owner's or a trusted service's export. With `since`,
    /// the records are those created or changed after that revision (the commit and the whole
    /// current tree always come along, so the CAR verifies on its own).
    pub async fn get_repo(
        &self,
        viewer: &Viewer,
        did: &Did,
        since: Option<&Tid>,
    ) -> Result<Response, XrpcError> {
        if !viewer.is_owner_or_service(did.as_str()) {
            return Err(XrpcError::auth_required(
                "the repository's owner or an allow-listed service is required",
            ));
        }
        let head = self.head_of(did).await?;
        // The record pages start reading now, while the tree is read.
        let pages = self.store().record_blocks(did.as_str());
        let changed = match since {
            Some(since) => Some(self.changed_since(did, since).await?),
            None => None,
        };
        let tree_blocks = self.store().blocks(did.as_str()).await.map_err(internal)?;
        let (sender, receiver) = mpsc::channel::<Result<Bytes, std::io::Error>>(EXPORT_CHUNKS);
        let did = did.to_string();
        tokio::spawn(async move {
            if let Err(error) = Self::export(head, tree_blocks, pages, changed, &sender).await {
                tracing::warn!(%did, %error, "repository export ended early");
                let _ = sender.send(Err(std::io::Error::other(error))).await;
            }
        });
        let stream = tokio_stream::wrappers::ReceiverStream::new(receiver);
        Ok(car_response(warp::reply::stream(stream).into_response()))
    }

    /// The paths created or updated after `since`, with the CIDs they got.
    async fn changed_since(
        &self,
        did: &Did,
        since: &Tid,
    ) -> Result<std::collections::HashSet<(String, Cid)>, XrpcError> {
        let mut changed = std::collections::HashSet::new();
        let mut after = 0;
        loop {
            let events = self
                .store()
                .actor_events(did.as_str(), after, 1_000)
                .await
                .map_err(internal)?;
            let Some(last) = events.last() else {
                return Ok(changed);
            };
            after = last.seq;
            for event in &events {
                if event.rev.as_deref().is_none_or(|rev| rev <= since.as_str()) {
                    continue;
                }
                let Ok(commit) = SequencedCommit::decode(&event.body) else {
                    continue;
                };
                for op in commit.ops {
                    if let Some(cid) = op.cid {
                        changed.insert((op.path, cid));
                    }
                }
            }
        }
    }

    async fn export(
        head: Head,
        tree_blocks: stratos_schema::blocks::BlockMap,
        mut pages: RecordBlocks,
        changed: Option<std::collections::HashSet<(String, Cid)>>,
        sender: &mpsc::Sender<Result<Bytes, std::io::Error>>,
    ) -> Result<(), String> {
        let chunks = Chunks::default();
        let mut car = CarWriter::new(chunks.clone(), &[head.commit]).map_err(|e| e.to_string())?;
        // The commit first, then the tree, then the records.
        let commit = tree_blocks
            .get_block(&head.commit)
            .ok_or("the head commit block is missing")?;
        car.write_block(&head.commit, commit)
            .map_err(|e| e.to_string())?;
        for (cid, bytes) in tree_blocks.iter().filter(|(cid, _)| **cid != head.commit) {
            car.write_block(cid, bytes).map_err(|e| e.to_string())?;
        }
        drop(tree_blocks);
        send(sender, &chunks).await?;
        while let Some(page) = pages.next().await.map_err(|e| e.to_string())? {
            for record in page {
                let wanted = changed.as_ref().is_none_or(|changed| {
                    let path = format!("{}/{}", record.collection, record.rkey);
                    changed.contains(&(path, record.cid))
                });
                if wanted {
                    car.write_block(&record.cid, &record.block)
                        .map_err(|e| e.to_string())?;
                }
            }
            send(sender, &chunks).await?;
        }
        car.finish().map_err(|e| e.to_string())?;
        send(sender, &chunks).await
    }
}

/// Sends what was written since the last send; fails when the client went away.
async fn send(
    sender: &mpsc::Sender<Result<Bytes, std::io::Error>>,
    chunks: &Chunks,
) -> Result<(), String> {
    let bytes = chunks.take();
    if bytes.is_empty() {
        return Ok(());
    }
    sender
        .send(Ok(Bytes::from(bytes)))
        .await
        .map_err(|_| "the client went away".to_string())
}
