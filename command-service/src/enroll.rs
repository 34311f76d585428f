//! Enrolling an actor: keys into the key store, the service's attestation, and an `#enrollment`
//! (with the genesis commit of an empty repository on a first enrollment), applied before the
//! call returns. The OAuth flow and the development mode both end here. And unenrolling, with
//! or without a purge of the actor's content.

use stratos_schema::attestation::sign_attestation;
use stratos_schema::commit::UnsignedCommit;
use stratos_schema::events::seal::DataKey;
use stratos_schema::events::{BoundariesEvent, CommitSlice, EnrollmentEvent, Event, UnenrollEvent};
use stratos_schema::keys::{KeyAlgorithm, Keypair};
use stratos_schema::mst::Mst;
use stratos_schema::syntax::{Datetime, Did};
use stratos_store::KeyKind;

use zeroize::Zeroizing;

use crate::error::CommandError;
use crate::outcomes::Decision;
use crate::service::{Commands, private_bytes};

impl Commands {
    /// Enrolls `did` in `boundaries` (bare names are qualified with the service DID; each must
    /// be an allowed boundary). A re-enrollment keeps the repository and the keys.
    pub async fn enroll(&self, did: &Did, boundaries: &[String]) -> Result<(), CommandError> {
        let allowed = self.allowed_boundaries();
        let boundaries =
            stratos_schema::boundary::ensure_qualified(&self.config.service.did, boundaries)
                .map_err(|e| CommandError::InvalidRequest(e.to_string()))?;
        if let Some(unknown) = boundaries.iter().find(|b| !allowed.contains(b)) {
            return Err(CommandError::InvalidRequest(format!(
                "{unknown} is not a boundary of this service"
            )));
        }
        let slot = self.slot(did);
        let mut repo = slot.lock().await;
        let signing = self.signing_key(did).await?;
        // Kept if the actor has one: records sealed with it stay readable.
        self.store
            .key_or_create(did.as_str(), KeyKind::Data, || {
                Zeroizing::new(DataKey::generate().as_bytes().to_vec())
            })
            .await?
            .ok_or_else(|| CommandError::Internal(format!("{did}'s data key was removed")))?;
        let genesis = match self.store.head(did.as_str()).await? {
            Some(_) => None,
            None => {
                let empty = Mst::new();
                let rev = self.clock.next(None);
                let commit = UnsignedCommit::new(did.clone(), empty.root_cid(), rev).sign(&signing);
                Some(CommitSlice::new(&commit, &empty.new_nodes()))
            }
        };
        let signing_key = signing.did_key();
        let event = Event::Enrollment(EnrollmentEvent {
            did: did.clone(),
            time: Datetime::now(),
            attestation: sign_attestation(
                &self.config.service.key,
                did.as_str(),
                &boundaries,
                &signing_key,
            ),
            signing_key,
            boundaries,
            service_endpoint: self.config.service.endpoint.clone(),
            genesis,
        });
        // The projection is the source of the actor's state from now on.
        *repo = None;
        self.append_applied(&event).await
    }

    /// Unenrolls `did`: appends `#unenroll` and waits until it is applied. The actor's OAuth
    /// session is retired, for the PDS publisher to delete the enrollment record with and then
    /// revoke. With `purge`, the actor's data key and signing key are destroyed too: its
    /// private records become unreadable everywhere, old copies of the log included, and its
    /// blobs are deleted from the blob store.
    pub async fn unenroll(&self, did: &Did, purge: bool) -> Result<(), CommandError> {
        let slot = self.slot(did);
        let mut repo = slot.lock().await;
        self.active_enrollment(did).await?;
        if let Some(session) = self.store.key(did.as_str(), KeyKind::OAuthSession).await? {
            self.store
                .put_key(did.as_str(), KeyKind::OAuthRetired, &session)
                .await?;
            self.store
                .destroy_key(did.as_str(), KeyKind::OAuthSession)
                .await?;
        }
        let event = Event::Unenroll(UnenrollEvent {
            did: did.clone(),
            time: Datetime::now(),
            purge,
        });
        *repo = None;
        self.append_applied(&event).await?;
        if purge {
            for kind in [KeyKind::Data, KeyKind::Signing] {
                self.store.destroy_key(did.as_str(), kind).await?;
            }
            // The keys are gone, so the blobs are unreadable already: their deletion is
            // best-effort and does not fail the unenrollment.
            match self.delete_blobs(did).await {
                Ok(deleted) => tracing::info!(%did, deleted, "deleted the purged actor's blobs"),
                Err(error) => tracing::warn!(%did, %error, "deleting the purged actor's blobs"),
            }
        }
        Ok(())
    }

    /// Replaces an enrolled actor's boundaries (qualified, allowed) with a `#boundaries` event
    /// carrying a fresh attestation, applied before the call returns.
    pub async fn set_boundaries(
        &self,
        did: &Did,
        boundaries: &[String],
    ) -> Result<(), CommandError> {
        let slot = self.slot(did);
        let mut repo = slot.lock().await;
        let enrollment = self.active_enrollment(did).await?;
        let event = Event::Boundaries(BoundariesEvent {
            did: did.clone(),
            time: Datetime::now(),
            attestation: sign_attestation(
                &self.config.service.key,
                did.as_str(),
                boundaries,
                &enrollment.signing_key,
            ),
            boundaries: boundaries.to_vec(),
        });
        // The cached repository holds the old boundaries.
        *repo = None;
        self.append_applied(&event).await
    }

    /// Appends `event` and waits until the repo projector has applied it (or says why not).
    async fn append_applied(&self, event: &Event) -> Result<(), CommandError> {
        let position = self.log.append_event(event).await?;
        match self.outcomes.wait(position).await? {
            Decision::Applied => Ok(()),
            Decision::Rejected(reason) => Err(CommandError::Rejected(reason)),
        }
    }

    /// The actor's P-256 repository key, created on first use (once, whichever instance
    /// creates it).
    async fn signing_key(&self, did: &Did) -> Result<Keypair, CommandError> {
        let stored = self
            .store
            .key_or_create(did.as_str(), KeyKind::Signing, || {
                private_bytes(&Keypair::generate(KeyAlgorithm::P256))
            })
            .await?
            .ok_or_else(|| CommandError::Internal(format!("{did}'s key was removed")))?;
        Keypair::from_private_bytes(KeyAlgorithm::P256, &stored)
            .map_err(|e| CommandError::Internal(format!("signing key of {did}: {e}")))
    }
}
