//! `zone.stratos.repo.importRepo`: a repository from a CAR file becomes the actor's repository.
//!
//! Every block's CID is checked, the commit must be the caller's, every record must be present
//! and pass the same validation as a write, and the records are re-signed with the actor's key
//! in one new commit on the actor's (empty) repository, appended as one `#import`. An actor
//! enrolled through OAuth has the empty genesis repository, which is importable (spec REF-17).

use stratos_schema::blocks::BlockSource;
use stratos_schema::car::{CarLimits, read_car};
use stratos_schema::commit::UnsignedCommit;
use stratos_schema::data::decode_ipld;
use stratos_schema::events::{CommitSlice, Event, ImportEvent, OpAction, RepoOp, SealedRecord};
use stratos_schema::mst::Mst;
use stratos_schema::repo::read_repo;
use stratos_schema::syntax::{Datetime, Did, Nsid, RecordKey};

use crate::error::CommandError;
use crate::outcomes::Decision;
use crate::service::{Commands, CommitRef};

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// How many records the repository now holds.
    pub records: usize,
    /// The commit that holds them.
    pub commit: CommitRef,
}

impl Commands {
    /// Imports the repository in `car` (at most `max_bytes`) as `did`'s repository.
    pub async fn import(
        &self,
        did: &Did,
        car: &[u8],
        max_bytes: usize,
    ) -> Result<Imported, CommandError> {
        let invalid = |message: String| CommandError::InvalidCar(message);
        if car.is_empty() {
            return Err(invalid("CAR file body required".into()));
        }
        if car.len() > max_bytes {
            return Err(invalid(format!(
                "the CAR file is larger than the limit of {max_bytes} bytes"
            )));
        }
        let (roots, blocks) =
            read_car(car, CarLimits::default()).map_err(|e| invalid(e.to_string()))?;
        let [root] = roots.as_slice() else {
            return Err(invalid(format!("expected one root, found {}", roots.len())));
        };
        let contents = read_repo(&blocks, *root).map_err(|e| invalid(e.to_string()))?;
        if contents.commit.did != *did {
            return Err(invalid(format!(
                "the repository belongs to {}, not to {did}",
                contents.commit.did
            )));
        }
        if let Some(missing) = contents.missing_records(&blocks).first() {
            return Err(invalid(format!(
                "record {missing} is missing from the CAR file"
            )));
        }

        let slot = self.slot(did);
        let mut guard = slot.lock().await;
        if guard.is_none() {
            *guard = Some(self.load(did).await?);
        }
        let Some(repo) = guard.as_mut() else {
            return Err(CommandError::NotEnrolled);
        };
        if !repo.tree.is_empty() {
            return Err(CommandError::RepoAlreadyExists);
        }

        // A fresh tree lives in memory, so building it reads no stored blocks.
        let mut tree = Mst::new();
        let no_blocks = stratos_schema::blocks::BlockMap::new();
        let mut entries = Vec::with_capacity(contents.records.len());
        let mut sealed = Vec::with_capacity(contents.records.len());
        for (path, cid) in &contents.records {
            let (collection, rkey) = path.split_once('/').unwrap_or((path, ""));
            let collection: Nsid = collection
                .parse()
                .map_err(|e| invalid(format!("{path}: {e}")))?;
            let rkey: RecordKey = rkey.parse().map_err(|e| invalid(format!("{path}: {e}")))?;
            let bytes = blocks
                .get_block(cid)
                .ok_or_else(|| invalid(format!("record {path} is missing")))?;
            let record = decode_ipld(bytes).map_err(|e| invalid(format!("{path}: {e}")))?;
            crate::writes::check_key(&collection, &rkey)?;
            self.check_record(repo, &collection, &record, &Default::default())
                .map_err(|e| match e {
                    CommandError::Record(mut error) => {
                        error.message = format!("{path}: {}", error.message);
                        CommandError::Record(error)
                    }
                    other => other,
                })?;
            sealed.push(SealedRecord::seal(&repo.data_key, did, *cid, bytes));
            entries.push(RepoOp {
                action: OpAction::Create,
                path: path.clone(),
                cid: Some(*cid),
                prev: None,
                boundaries: stratos_schema::boundary::extract_boundaries(&record),
                prev_boundaries: Vec::new(),
            });
            tree = tree.insert(&no_blocks, path, *cid)?;
        }
        let nodes = tree.new_nodes();
        let rev = self.clock.next(Some(&repo.head.rev));
        let commit =
            UnsignedCommit::new(did.clone(), tree.root_cid(), rev.clone()).sign(&repo.signing);
        let slice = CommitSlice::new(&commit, &nodes);
        self.signed(slice.commit, &repo.signing, None);
        let commit_ref = CommitRef {
            cid: slice.commit,
            rev: rev.to_string(),
        };
        let event = Event::Import(ImportEvent {
            did: did.clone(),
            time: Datetime::now(),
            slice,
            prev_commit: Some(repo.head.commit),
            entries,
            records: sealed,
        });
        let position = self.log.append_event(&event).await?;
        // The projection is the source of the imported repository.
        *guard = None;
        drop(guard);
        match self.outcomes.wait(position).await? {
            Decision::Applied => Ok(Imported {
                records: contents.records.len(),
                commit: commit_ref,
            }),
            Decision::Rejected(reason) => Err(CommandError::Rejected(reason)),
        }
    }
}
