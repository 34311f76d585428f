//! The command side's shared state: the log, the key store and projections, the service
//! identity, the per-actor write state, and the outcomes of appended events.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use stratos_log::CommitLog;
use stratos_schema::Cid;
use stratos_schema::blocks::BlockMap;
use stratos_schema::boundary::{is_qualified, qualify};
use stratos_schema::commit::SignedHere;
use stratos_schema::events::seal::DataKey;
use stratos_schema::keys::{KeyAlgorithm, Keypair};
use stratos_schema::mst::{Mst, MstError};
use stratos_schema::syntax::Did;
use stratos_schema::tid_clock::TidClock;
use stratos_store::{Head, KeyKind, Store};

use zeroize::Zeroizing;

use crate::blobs::BlobStore;
use crate::error::CommandError;
use crate::outcomes::Outcomes;

/// Who the service is: its DID, public URL and secp256k1 signing key (attestations).
#[derive(Clone)]
pub struct ServiceIdentity {
    /// The service DID, e.g. `did:web:stratos.example.com`.
    pub did: String,
    /// The public URL, e.g. `https://stratos.example.com`.
    pub endpoint: String,
    /// The service's signing key.
    pub key: Keypair,
}

impl ServiceIdentity {
    /// The identity of `did`, with its key from the key store (created on first use).
    pub async fn load_or_create(
        store: &Store,
        did: &str,
        endpoint: &str,
    ) -> Result<Self, CommandError> {
        // Instances starting together on an empty store all use the first one's key.
        let stored = store
            .key_or_create(did, KeyKind::Signing, || {
                private_bytes(&Keypair::generate(KeyAlgorithm::Secp256k1))
            })
            .await?
            .ok_or_else(|| CommandError::Internal("the service key was removed".into()))?;
        let key = Keypair::from_private_bytes(KeyAlgorithm::Secp256k1, &stored)
            .map_err(|e| CommandError::Internal(format!("service key: {e}")))?;
        Ok(Self {
            did: did.to_string(),
            endpoint: endpoint.to_string(),
            key,
        })
    }

    /// The identity of `did` with the key the operator configured; it replaces the one in the
    /// key store, so that every instance and tool reading the store agrees.
    pub async fn with_key(
        store: &Store,
        did: &str,
        endpoint: &str,
        key: Keypair,
    ) -> Result<Self, CommandError> {
        let stored = store.key(did, KeyKind::Signing).await?;
        if stored.as_deref().map(Vec::as_slice) != Some(key.private_bytes().as_slice()) {
            store
                .put_key(did, KeyKind::Signing, key.private_bytes().as_slice())
                .await?;
            tracing::info!(key = %key.did_key(), "the service signs with the configured key");
        }
        Ok(Self {
            did: did.to_string(),
            endpoint: endpoint.to_string(),
            key,
        })
    }
}

/// The settings of the command side.
#[derive(Clone)]
pub struct CommandConfig {
    /// The service identity.
    pub service: ServiceIdentity,
    /// The boundaries actors may be enrolled in (bare names are qualified with the service DID).
    pub allowed_domains: Vec<String>,
    /// How many times a write rejected because another write won is rebuilt and appended again.
    pub max_attempts: u32,
    /// Where uploaded blobs are kept (sealed).
    pub blob_store: BlobStore,
}

/// A key's private bytes as the key store takes them.
pub(crate) fn private_bytes(key: &Keypair) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(key.private_bytes().to_vec())
}

/// An actor's repository as the writer sees it: the last commit appended by this instance (or
/// the projected head), its tree with the node blocks read or built so far, and the actor's
/// keys.
pub(crate) struct ActorRepo {
    pub(crate) head: Head,
    pub(crate) tree: Mst,
    pub(crate) blocks: BlockMap,
    pub(crate) signing: Keypair,
    pub(crate) data_key: DataKey,
    pub(crate) boundaries: Vec<String>,
    /// The CID and boundaries of each record this instance wrote on this state, by path: what
    /// the projection may not have yet while writes are in flight.
    pub(crate) written: HashMap<String, (Cid, Vec<String>)>,
}

/// How often loading an actor's repository starts over when the projector moves its head
/// meanwhile.
const MAX_LOAD_ATTEMPTS: u32 = 8;

/// How many actors' write slots the command side keeps before it drops the idle ones (their
/// repositories are loaded again from the projection on their next write).
const KEPT_SLOTS: usize = 1_024;

/// How many tree nodes an actor's repository keeps before it is loaded again from the
/// projection, starting over from the root. Its tree holds every node it has read or built
/// (decoded, and the built ones encoded as well), so without this it would grow with the
/// repository.
pub(crate) const KEPT_NODES: usize = 256;

/// An actor's write slot: holding its lock orders the actor's commits in this instance.
pub(crate) type ActorSlot = Arc<tokio::sync::Mutex<Option<ActorRepo>>>;

/// The command side: enrollment and writes.
#[derive(Clone)]
pub struct Commands {
    pub(crate) store: Store,
    pub(crate) log: Arc<dyn CommitLog>,
    pub(crate) outcomes: Outcomes,
    pub(crate) config: Arc<CommandConfig>,
    pub(crate) clock: Arc<TidClock>,
    pub(crate) blobs: BlobStore,
    /// The configured boundaries, qualified once.
    allowed: Arc<Vec<String>>,
    actors: Arc<Mutex<HashMap<String, ActorSlot>>>,
    /// Where the commits this side signs are remembered for a repo projector in this process.
    signed_here: Option<SignedHere>,
}

impl Commands {
    /// The command side over a log and a store; `outcomes` must follow the repo projector.
    pub fn new(
        store: Store,
        log: Arc<dyn CommitLog>,
        outcomes: Outcomes,
        config: CommandConfig,
    ) -> Self {
        let allowed = config
            .allowed_domains
            .iter()
            .map(|d| match is_qualified(d) {
                true => d.clone(),
                false => qualify(&config.service.did, d),
            })
            .collect();
        Self {
            store,
            log,
            outcomes,
            blobs: config.blob_store.clone(),
            allowed: Arc::new(allowed),
            config: Arc::new(config),
            clock: Arc::new(TidClock::with_random_clock_id()),
            actors: Arc::default(),
            signed_here: None,
        }
    }

    /// Remembers every commit this side signs in `signed_here`, shared with the repo projector
    /// of this process ([`Projectors::signed_here`](stratos_projector::service::Projectors::signed_here)).
    pub fn with_signed_here(mut self, signed_here: SignedHere) -> Self {
        self.signed_here = Some(signed_here);
        self
    }

    /// Notes that this side signed the commit whose block has CID `commit` with `key` (and,
    /// when given, which nodes of the head's tree it removed), for a repo projector in this
    /// process that shares the signatures.
    pub(crate) fn signed(&self, commit: Cid, key: &Keypair, removed_nodes: Option<&[Cid]>) {
        if let Some(signed_here) = &self.signed_here {
            signed_here.remember(commit, key.public_key(), removed_nodes.map(<[Cid]>::to_vec));
        }
    }

    /// The service identity.
    pub fn service(&self) -> &ServiceIdentity {
        &self.config.service
    }

    /// The allowed boundaries, qualified with the service DID.
    pub fn allowed_boundaries(&self) -> &[String] {
        &self.allowed
    }

    /// The write slot of `did`.
    pub(crate) fn slot(&self, did: &Did) -> ActorSlot {
        let mut actors = self.actors.lock().unwrap_or_else(PoisonError::into_inner);
        if actors.len() >= KEPT_SLOTS && !actors.contains_key(did.as_str()) {
            // A slot only the map refers to is idle: no write holds it or waits for it.
            actors.retain(|_, slot| Arc::strong_count(slot) > 1);
        }
        actors.entry(did.to_string()).or_default().clone()
    }

    /// How many tree nodes this instance holds for `did` (none while its slot is empty).
    #[cfg(feature = "testing")]
    pub async fn cached_nodes(&self, did: &Did) -> usize {
        let slot = self.slot(did);
        let guard = slot.lock().await;
        guard.as_ref().map_or(0, |repo| repo.blocks.len())
    }

    /// The actor's active enrollment, or `NotEnrolled`.
    pub(crate) async fn active_enrollment(
        &self,
        did: &Did,
    ) -> Result<stratos_store::Enrollment, CommandError> {
        self.store
            .enrollment(did.as_str())
            .await?
            .filter(|e| e.active)
            .ok_or(CommandError::NotEnrolled)
    }

    /// Loads an actor's repository from the projection (enrolled actors only): its head and
    /// the root of its tree; the other nodes are read as writes reach them
    /// ([`Store::read_block_into`](stratos_store::Store::read_block_into)), so memory follows the paths written, not the repository.
    pub(crate) async fn load(&self, did: &Did) -> Result<ActorRepo, CommandError> {
        let enrollment = self.active_enrollment(did).await?;
        let empty = Mst::new();
        let mut attempts = 0;
        let (head, tree, blocks) = loop {
            attempts += 1;
            let head = self
                .store
                .head(did.as_str())
                .await?
                .ok_or(CommandError::NotEnrolled)?;
            let mut blocks = BlockMap::new();
            if head.data == empty.root_cid() {
                break (head, empty, blocks);
            }
            let loaded = loop {
                match Mst::load(&blocks, head.data) {
                    Ok(tree) => break Some(tree),
                    Err(MstError::MissingBlock(cid)) => {
                        if !self
                            .store
                            .read_block_into(did.as_str(), &cid, &mut blocks)
                            .await?
                        {
                            break None;
                        }
                    }
                    Err(error) => return Err(error.into()),
                }
            };
            match loaded {
                Some(tree) => break (head, tree, blocks),
                // The projector moved the head (and removed the old root) meanwhile.
                None if attempts < MAX_LOAD_ATTEMPTS => continue,
                None => {
                    return Err(CommandError::Internal(format!(
                        "the tree of {did}'s head {} is not in the projection",
                        head.commit
                    )));
                }
            }
        };
        let signing = match self.store.key(did.as_str(), KeyKind::Signing).await? {
            Some(bytes) => Keypair::from_private_bytes(KeyAlgorithm::P256, &bytes)
                .map_err(|e| CommandError::Internal(format!("signing key of {did}: {e}")))?,
            None => return Err(CommandError::Internal(format!("no signing key for {did}"))),
        };
        let data_key = self
            .store
            .data_key(did.as_str())
            .await?
            .ok_or_else(|| CommandError::Internal(format!("no data key for {did}")))?;
        Ok(ActorRepo {
            head,
            tree,
            blocks,
            signing,
            data_key,
            boundaries: enrollment.boundaries,
            written: HashMap::new(),
        })
    }

    /// The boundaries of the record at `path` whose current version is `current`: as this
    /// instance wrote it, or else as the projection has it.
    pub(crate) async fn boundaries_of(
        &self,
        did: &Did,
        repo: &ActorRepo,
        path: &str,
        current: Cid,
    ) -> Result<Vec<String>, CommandError> {
        if let Some((cid, boundaries)) = repo.written.get(path)
            && *cid == current
        {
            return Ok(boundaries.clone());
        }
        let (collection, rkey) = path.split_once('/').unwrap_or((path, ""));
        Ok(self
            .store
            .record(did.as_str(), collection, rkey)
            .await?
            .map(|row| row.boundaries)
            .unwrap_or_default())
    }
}

/// A commit's identity, as write answers carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitRef {
    /// The commit CID.
    pub cid: Cid,
    /// The commit revision.
    pub rev: String,
}
