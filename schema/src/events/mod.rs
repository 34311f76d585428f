//! The commit log's event schema: the versioned DAG-CBOR wire contract between the command
//! service, the projectors and AppView teams that consume the topic directly.
//!
//! Every event is one DAG-CBOR map `{v, t, did, time, …}`: `v` is the schema version, `t` the
//! event type (`#enrollment`, `#commit`, `#unenroll`, `#boundaries`, `#import`). A `#commit` is
//! self-verifying like a firehose commit: the signed commit and new MST nodes travel in clear in
//! a CAR slice, with the ops and CIDs, so anyone can check chains and signatures without keys.
//! Record blocks travel **sealed** with the actor's data key ([`seal`]).
//!
//! No field of any event can hold a private key, token or password: the types have no place
//! for them. Consumers must ignore fields they do not know; see `docs/events.md` for the rules
//! of schema evolution.

pub mod seal;

use cid::Cid;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::attestation::Attestation;
use crate::blocks::BlockMap;
use crate::car::{CarError, CarLimits, read_car};
use crate::commit::{Commit, CommitError};
use crate::data::{CborError, from_dag_cbor, to_dag_cbor};
use crate::syntax::{Datetime, Did, Tid};

use self::seal::{DataKey, SealError};

/// The schema version this crate writes. Readers accept this version only.
pub const SCHEMA_VERSION: u64 = 1;

/// Header carrying the event type, so consumers can route without decoding.
pub const TYPE_HEADER: &str = "stratos-event-type";
/// Header carrying the schema version.
pub const VERSION_HEADER: &str = "stratos-schema-version";

/// The kinds of events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// An actor enrolled (or re-enrolled).
    Enrollment,
    /// A signed repository commit.
    Commit,
    /// An actor left.
    Unenroll,
    /// An operator changed an actor's boundaries.
    Boundaries,
    /// A repository imported from a CAR file.
    Import,
}

impl EventType {
    /// The wire name, e.g. `#commit`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enrollment => "#enrollment",
            Self::Commit => "#commit",
            Self::Unenroll => "#unenroll",
            Self::Boundaries => "#boundaries",
            Self::Import => "#import",
        }
    }

    /// Parses a wire name.
    pub fn parse(name: &str) -> Option<Self> {
        [
            Self::Enrollment,
            Self::Commit,
            Self::Unenroll,
            Self::Boundaries,
            Self::Import,
        ]
        .into_iter()
        .find(|t| t.as_str() == name)
    }
}

/// Why an event could not be decoded or verified.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// The bytes are not an event map.
    #[error("invalid event: {0}")]
    Decode(#[from] CborError),
    /// A schema version this reader does not know.
    #[error("event schema version {0} is not supported (expected {SCHEMA_VERSION})")]
    UnsupportedVersion(u64),
    /// An event type this reader does not know.
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    /// The CAR slice of a commit or import is invalid.
    #[error("event blocks: {0}")]
    Car(#[from] CarError),
    /// The commit in the slice is missing, malformed or does not match the event.
    #[error("event commit: {0}")]
    Commit(String),
    /// The commit's signature does not verify.
    #[error(transparent)]
    Signature(#[from] CommitError),
    /// A sealed record does not open.
    #[error("sealed record {cid}: {source}")]
    Seal {
        /// The record's CID.
        cid: Box<Cid>,
        /// Why it did not open.
        source: SealError,
    },
}

/// One event of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `#enrollment`
    Enrollment(EnrollmentEvent),
    /// `#commit`
    Commit(CommitEvent),
    /// `#unenroll`
    Unenroll(UnenrollEvent),
    /// `#boundaries`
    Boundaries(BoundariesEvent),
    /// `#import`
    Import(ImportEvent),
}

/// An actor enrolled. On a first enrollment it carries the repository's genesis commit (an empty
/// MST signed with the actor's key); a re-enrollment keeps the existing repository and has none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnrollmentEvent {
    /// The actor.
    pub did: Did,
    /// When the event was created.
    pub time: Datetime,
    /// The actor's P-256 repository key, as a `did:key` (public half only).
    pub signing_key: String,
    /// The actor's qualified boundaries.
    pub boundaries: Vec<String>,
    /// The service's attestation over DID, boundaries and signing key.
    pub attestation: Attestation,
    /// The public URL of the Stratos service holding the repository.
    pub service_endpoint: String,
    /// The genesis commit, on a first enrollment.
    #[serde(default)]
    pub genesis: Option<CommitSlice>,
}

/// A signed commit with the blocks that prove it: the commit CID, its revision and a CAR slice
/// whose root is the commit and which holds the commit block and the MST nodes it created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommitSlice {
    /// The commit's CID.
    pub commit: Cid,
    /// The commit's revision.
    pub rev: Tid,
    /// CAR v1 bytes: the commit block and new MST nodes, in clear.
    pub blocks: ByteBuf,
}

/// A signed repository commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommitEvent {
    /// The actor.
    pub did: Did,
    /// When the event was created.
    pub time: Datetime,
    /// The commit, its revision and the new blocks.
    #[serde(flatten)]
    pub slice: CommitSlice,
    /// The CID of the commit this one builds on (the actor's head when it was built).
    pub prev_commit: Option<Cid>,
    /// The revision of that commit.
    pub since: Option<Tid>,
    /// The record operations, in path order.
    pub ops: Vec<RepoOp>,
    /// The new record blocks, sealed with the actor's data key.
    pub records: Vec<SealedRecord>,
    /// The client request this commit answers, when it carried an `Idempotency-Key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<RequestRef>,
}

/// An idempotent client request and its answer, carried by the commit that answers it so a
/// retried request (even to another instance, even after a crash) gets the same answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRef {
    /// SHA-256 (hex) of the caller's `Idempotency-Key`; the key itself is not logged.
    pub key: String,
    /// The answer's per-operation results, in request order.
    pub results: Vec<RequestResult>,
}

/// One operation's result in an idempotent answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestResult {
    /// `at://did/collection/rkey`.
    pub uri: String,
    /// The record CID, for creates and updates.
    pub cid: Option<Cid>,
}

/// A commit as the actor stream (`subscribeRecords`) sequences it: the body of a `#commit` frame
/// without `seq` and without record contents, which the query service adds when it sends the
/// frame (so content deleted or purged later is not kept in the stream's history). Delete ops
/// keep the boundaries the record had, so filtered consumers see deletes too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequencedCommit {
    /// The actor.
    pub did: Did,
    /// When the commit was created.
    pub time: Datetime,
    /// The commit revision.
    pub rev: Tid,
    /// The commit CID.
    pub commit: Cid,
    /// The record operations.
    pub ops: Vec<RepoOp>,
}

impl SequencedCommit {
    /// DAG-CBOR bytes.
    pub fn encode(&self) -> Vec<u8> {
        to_dag_cbor(self).expect("a sequenced commit always encodes")
    }

    /// Decodes DAG-CBOR bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, EventError> {
        Ok(from_dag_cbor(bytes)?)
    }
}

/// One record operation of a commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RepoOp {
    /// `create`, `update` or `delete`.
    pub action: OpAction,
    /// `collection/rkey`.
    pub path: String,
    /// The new record CID (`null` for a delete).
    pub cid: Option<Cid>,
    /// The previous record CID (`null` for a create).
    pub prev: Option<Cid>,
    /// The record's qualified boundaries; for a delete, the boundaries the record had, when
    /// the writer knew them.
    pub boundaries: Vec<String>,
    /// For an update that changes them, the boundaries the previous version had, so that a
    /// consumer following one boundary hears of a record leaving it; empty otherwise (and
    /// absent from the encoding).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prev_boundaries: Vec<String>,
}

/// What an operation does to its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpAction {
    /// A new record.
    Create,
    /// A changed record.
    Update,
    /// A removed record.
    Delete,
}

/// A record block sealed with the actor's data key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedRecord {
    /// The CID of the plaintext block.
    pub cid: Cid,
    /// [`seal::seal`] output.
    pub sealed: ByteBuf,
}

impl SealedRecord {
    /// Seals a record block of `did`.
    pub fn seal(key: &DataKey, did: &Did, cid: Cid, block: &[u8]) -> Self {
        Self {
            cid,
            sealed: ByteBuf::from(seal::seal(key, did, &cid, block)),
        }
    }

    /// Opens the block, checking it against its CID.
    pub fn open(&self, key: &DataKey, did: &Did) -> Result<Vec<u8>, EventError> {
        seal::open(key, did, &self.cid, &self.sealed).map_err(|source| EventError::Seal {
            cid: Box::new(self.cid),
            source,
        })
    }
}

/// An actor left. With `purge`, its data key is destroyed and its content is gone everywhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnenrollEvent {
    /// The actor.
    pub did: Did,
    /// When the event was created.
    pub time: Datetime,
    /// Whether the actor's content is purged (crypto-shredded).
    pub purge: bool,
}

/// An operator replaced an actor's boundaries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BoundariesEvent {
    /// The actor.
    pub did: Did,
    /// When the event was created.
    pub time: Datetime,
    /// The new qualified boundaries.
    pub boundaries: Vec<String>,
    /// A fresh attestation over the new set.
    pub attestation: Attestation,
}

/// A repository imported from a CAR file and re-signed with the actor's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportEvent {
    /// The actor.
    pub did: Did,
    /// When the event was created.
    pub time: Datetime,
    /// The new commit and every MST node of the imported tree.
    #[serde(flatten)]
    pub slice: CommitSlice,
    /// The commit this one replaces (the empty genesis commit).
    pub prev_commit: Option<Cid>,
    /// Every imported record: path, CID and boundaries.
    pub entries: Vec<RepoOp>,
    /// The record blocks, sealed with the actor's data key.
    pub records: Vec<SealedRecord>,
}

#[derive(Serialize)]
struct Envelope<'a, T> {
    v: u64,
    t: &'static str,
    #[serde(flatten)]
    event: &'a T,
}

#[derive(Deserialize)]
struct Header {
    v: u64,
    t: String,
}

impl Event {
    /// The event's type.
    pub fn event_type(&self) -> EventType {
        match self {
            Self::Enrollment(_) => EventType::Enrollment,
            Self::Commit(_) => EventType::Commit,
            Self::Unenroll(_) => EventType::Unenroll,
            Self::Boundaries(_) => EventType::Boundaries,
            Self::Import(_) => EventType::Import,
        }
    }

    /// The actor the event is about; also the log key.
    pub fn did(&self) -> &Did {
        match self {
            Self::Enrollment(e) => &e.did,
            Self::Commit(e) => &e.did,
            Self::Unenroll(e) => &e.did,
            Self::Boundaries(e) => &e.did,
            Self::Import(e) => &e.did,
        }
    }

    /// Encodes the event as canonical DAG-CBOR.
    pub fn encode(&self) -> Vec<u8> {
        fn envelope<T: Serialize>(t: EventType, event: &T) -> Vec<u8> {
            to_dag_cbor(&Envelope {
                v: SCHEMA_VERSION,
                t: t.as_str(),
                event,
            })
            .expect("events hold only encodable values")
        }
        let t = self.event_type();
        match self {
            Self::Enrollment(e) => envelope(t, e),
            Self::Commit(e) => envelope(t, e),
            Self::Unenroll(e) => envelope(t, e),
            Self::Boundaries(e) => envelope(t, e),
            Self::Import(e) => envelope(t, e),
        }
    }

    /// Decodes an event, refusing unknown versions and types.
    pub fn decode(bytes: &[u8]) -> Result<Self, EventError> {
        let header: Header = from_dag_cbor(bytes)?;
        if header.v != SCHEMA_VERSION {
            return Err(EventError::UnsupportedVersion(header.v));
        }
        let event_type =
            EventType::parse(&header.t).ok_or_else(|| EventError::UnknownType(header.t.clone()))?;
        Ok(match event_type {
            EventType::Enrollment => Self::Enrollment(from_dag_cbor(bytes)?),
            EventType::Commit => Self::Commit(from_dag_cbor(bytes)?),
            EventType::Unenroll => Self::Unenroll(from_dag_cbor(bytes)?),
            EventType::Boundaries => Self::Boundaries(from_dag_cbor(bytes)?),
            EventType::Import => Self::Import(from_dag_cbor(bytes)?),
        })
    }
}

/// Bounds on a commit slice read from the log.
const SLICE_LIMITS: CarLimits = CarLimits {
    max_block_bytes: 2 * 1024 * 1024,
    max_blocks: 200_000,
    max_total_bytes: 256 * 1024 * 1024,
};

impl CommitSlice {
    /// Builds a slice from a signed commit and the MST nodes it created.
    pub fn new(commit: &Commit, nodes: &BlockMap) -> Self {
        let (cid, bytes) = commit.to_block();
        let mut writer =
            crate::car::CarWriter::new(Vec::new(), &[cid]).expect("writing to memory cannot fail");
        writer
            .write_block(&cid, &bytes)
            .expect("writing to memory cannot fail");
        for (node_cid, node) in nodes.iter() {
            writer
                .write_block(node_cid, node)
                .expect("writing to memory cannot fail");
        }
        Self {
            commit: cid,
            rev: commit.rev.clone(),
            blocks: ByteBuf::from(writer.finish().expect("writing to memory cannot fail")),
        }
    }

    /// Reads the slice: checks that its root is the named commit, that the commit belongs to
    /// `did` at the named revision, and returns the commit with every block (commit included).
    pub fn open(&self, did: &Did) -> Result<(Commit, BlockMap), EventError> {
        let (roots, blocks) = read_car(&self.blocks, SLICE_LIMITS)?;
        if roots != [self.commit] {
            return Err(EventError::Commit(
                "the slice's root is not the commit".into(),
            ));
        }
        let bytes = crate::blocks::BlockSource::get_block(&blocks, &self.commit)
            .ok_or_else(|| EventError::Commit("the commit block is missing".into()))?;
        let commit = Commit::from_block(bytes)?;
        if &commit.did != did {
            return Err(EventError::Commit(format!(
                "the commit belongs to {}, not {did}",
                commit.did
            )));
        }
        if commit.rev != self.rev {
            return Err(EventError::Commit(format!(
                "the commit's rev {} is not the event's {}",
                commit.rev, self.rev
            )));
        }
        Ok((commit, blocks))
    }
}
