//! Who is reading, and the access rule every read applies (spec §8.2, used everywhere):
//! the owner sees everything of theirs; an anonymous reader sees nothing private; a record
//! without boundaries is visible to any authenticated viewer; otherwise the viewer must share
//! one of the record's boundaries. An allow-listed service reads everything, or exactly what a
//! viewer it names may see.

use std::collections::HashSet;

use stratos_xrpc::XrpcError;
use warp::http::StatusCode;

use crate::Queries;

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// No credentials.
    Anonymous,
    /// An actor, by DID.
    Actor(String),
    /// An allow-listed service (an AppView), by DID.
    Service(String),
}

/// Whose eyes a read is done with, before an actor's boundaries are looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reader {
    /// Nobody in particular.
    Anonymous,
    /// A trusted service reading for itself.
    Service,
    /// An actor, by DID.
    Actor(String),
}

/// Whose eyes a read is done with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Viewer {
    /// Nobody in particular: sees no private records.
    Anonymous,
    /// An actor with their current boundaries.
    Actor {
        /// The actor.
        did: String,
        /// Their qualified boundaries (empty unless enrolled).
        boundaries: Vec<String>,
    },
    /// A trusted service reading for itself: sees every record.
    Service,
}

impl Viewer {
    /// The actor, if the viewer is one.
    pub fn did(&self) -> Option<&str> {
        match self {
            Self::Actor { did, .. } => Some(did),
            _ => None,
        }
    }

    /// Whether this viewer may see a record of `owner` with these `boundaries`.
    pub fn can_see(&self, owner: &str, boundaries: &[String]) -> bool {
        match self {
            Self::Anonymous => false,
            Self::Service => true,
            Self::Actor {
                did,
                boundaries: own,
            } => stratos_schema::boundary::may_see(did, own, owner, boundaries),
        }
    }

    /// Whether this viewer is `owner` or a trusted service (may see absent records' proofs and
    /// whole repositories).
    pub fn is_owner_or_service(&self, owner: &str) -> bool {
        match self {
            Self::Service => true,
            Self::Actor { did, .. } => did == owner,
            Self::Anonymous => false,
        }
    }
}

impl Queries {
    /// The caller of `method` from the `Authorization` header: anonymous without one; a bad
    /// credential is refused rather than read as anonymous.
    pub async fn caller(
        &self,
        authorization: Option<&str>,
        method: &str,
    ) -> Result<Caller, XrpcError> {
        let Some(authorization) = authorization.filter(|h| !h.trim().is_empty()) else {
            return Ok(Caller::Anonymous);
        };
        let did = self
            .inner
            .auth
            .caller(Some(authorization), method)
            .await
            .map_err(XrpcError::from)?
            .to_string();
        Ok(self.classify(did))
    }

    /// An authenticated DID as a caller: allow-listed services are services.
    pub fn classify(&self, did: String) -> Caller {
        match self.config().trusted_services.contains(&did) {
            true => Caller::Service(did),
            false => Caller::Actor(did),
        }
    }

    /// Who a read by `caller` is for; a service may name the viewer it reads for.
    pub fn reader(&self, caller: &Caller, acting_for: Option<&str>) -> Result<Reader, XrpcError> {
        match (caller, acting_for) {
            (Caller::Anonymous, None) => Ok(Reader::Anonymous),
            (Caller::Service(_), None) => Ok(Reader::Service),
            (Caller::Actor(did), None) => Ok(Reader::Actor(did.clone())),
            (Caller::Service(_), Some(viewer)) => {
                if !viewer.starts_with("did:") {
                    return Err(XrpcError::invalid_request("viewer must be a DID"));
                }
                Ok(Reader::Actor(viewer.to_string()))
            }
            (_, Some(_)) => Err(XrpcError::new(
                StatusCode::FORBIDDEN,
                "Forbidden",
                "only allow-listed services may read for a viewer",
            )),
        }
    }

    /// The viewer of a read by `caller`, with their boundaries; a service may name the viewer it
    /// reads for.
    pub async fn viewer(
        &self,
        caller: &Caller,
        acting_for: Option<&str>,
    ) -> Result<Viewer, XrpcError> {
        match self.reader(caller, acting_for)? {
            Reader::Anonymous => Ok(Viewer::Anonymous),
            Reader::Service => Ok(Viewer::Service),
            Reader::Actor(did) => self.actor_viewer(&did).await,
        }
    }

    /// Those of `owners` whose enrollment is active. The records of an actor who left are
    /// served to nobody, as if its repository were gone (a re-enrollment brings them back
    /// unless they were purged).
    pub async fn active_owners<'a>(
        &self,
        owners: impl IntoIterator<Item = &'a str>,
    ) -> Result<HashSet<String>, XrpcError> {
        let mut active = HashSet::new();
        let distinct: HashSet<&str> = owners.into_iter().collect();
        for owner in distinct {
            let enrollment = self.store().enrollment(owner).await.map_err(internal)?;
            if enrollment.is_some_and(|e| e.active) {
                active.insert(owner.to_string());
            }
        }
        Ok(active)
    }

    /// An actor with the boundaries of their active enrollment.
    pub async fn actor_viewer(&self, did: &str) -> Result<Viewer, XrpcError> {
        let boundaries = match self.store().enrollment(did).await.map_err(internal)? {
            Some(enrollment) if enrollment.active => enrollment.boundaries,
            _ => Vec::new(),
        };
        Ok(Viewer::Actor {
            did: did.to_string(),
            boundaries,
        })
    }
}

/// `500 InternalServerError`, with the detail in the log only.
pub fn internal(error: impl std::fmt::Display) -> XrpcError {
    tracing::error!(%error, "query failed");
    XrpcError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "InternalServerError",
        "Internal server error",
    )
}

/// `400` with a named error.
pub fn bad_request(error: &'static str, message: impl Into<String>) -> XrpcError {
    XrpcError::new(StatusCode::BAD_REQUEST, error, message)
}
