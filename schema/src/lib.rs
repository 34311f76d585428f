//! The Stratos domain core: everything that speaks the ATProto repository format, with no I/O.
//!
//! One module per concept, each with its interop vectors beside it:
//!
//! * [`syntax`] — DID, handle, NSID, AT-URI, TID, record key, datetime, language and CID strings;
//! * [`blocks`] — content-addressed blocks and the source the MST reads through;
//! * [`data`] — the ATProto data model: DAG-CBOR, CIDs, and the JSON ⇄ data-model mapping;
//! * [`tid_clock`] — a per-repository clock that hands out strictly increasing TIDs;
//! * [`keys`] — P-256 and secp256k1 keypairs, `did:key`, low-S signatures;
//! * [`mst`] — the Merkle Search Tree: edits, ordered reads, diffs and proofs;
//! * [`commit`] — signed v3 repository commits;
//! * [`car`] — streaming CAR v1 writer and a bounded reader;
//! * [`repo`] — a repository read back from blocks: commit, MST and records, checked;
//! * [`attestation`] — the service's signature over an actor's enrollment;
//! * [`boundary`] — boundary qualification (`{serviceDid}/{name}`);
//! * [`events`] — the commit log's event schema and the sealing of private blocks;
//! * [`lexicon`] — the `zone.stratos.*` lexicons, typed records and record validation;
//! * [`service_auth`] — ATProto inter-service tokens (ES256/ES256K JWTs): parse, check, sign.
//!
//! Nothing here knows about HTTP, SQL or Kafka.

pub mod attestation;
pub mod blocks;
pub mod boundary;
pub mod car;
pub mod commit;
pub mod data;
pub mod events;
pub mod keys;
pub mod lexicon;
pub mod mst;
pub mod repo;
pub mod service_auth;
pub mod syntax;
pub mod tid_clock;

pub use cid::Cid;
pub use ipld_core::ipld::Ipld;
