//! An actor's verified history, read straight from the log: every event with its revision, ops,
//! signature check and chain check. Runs the same arbiter as the repo projector, without any key
//! material but the actor's public key from its `#enrollment`.

use stratos_schema::blocks::BlockMap;
use stratos_schema::events::{Event, OpAction};
use stratos_schema::syntax::Did;

use crate::arbiter::{ActorState, Head, Rejection, decide_commit};

/// The outcome of one check on one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// The check passed.
    Ok,
    /// The check failed, with the reason.
    Failed(String),
    /// The check does not apply to this event type.
    NotApplicable,
}

impl Check {
    /// `ok`, `failed: …` or `-`.
    pub fn describe(&self) -> String {
        match self {
            Check::Ok => "ok".into(),
            Check::Failed(reason) => format!("FAILED: {reason}"),
            Check::NotApplicable => "-".into(),
        }
    }
}

/// One event of the actor's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// The event's offset in its partition.
    pub offset: u64,
    /// The event type, e.g. `#commit`.
    pub event_type: String,
    /// When the event was created.
    pub time: String,
    /// The commit revision, for commits and imports.
    pub rev: Option<String>,
    /// The record operations (`create zone.stratos.feed.post/…`).
    pub ops: Vec<String>,
    /// Does the commit's signature verify with the actor's key?
    pub signature: Check,
    /// Does the commit build on the previous accepted commit (and reproduce its tree)?
    pub chain: Check,
}

/// Follows one actor's events in log order and checks each.
#[derive(Debug)]
pub struct Auditor {
    did: Did,
    state: Option<ActorState>,
    blocks: BlockMap,
    /// Idempotent requests already answered, as the repo projector counts them.
    requests: std::collections::HashSet<String>,
}

impl Auditor {
    /// An auditor for `did` that has seen nothing yet.
    pub fn new(did: Did) -> Self {
        Self {
            did,
            state: None,
            blocks: BlockMap::new(),
            requests: std::collections::HashSet::new(),
        }
    }

    /// Checks the next event of the actor (events of other actors are ignored: `None`).
    pub fn observe(&mut self, offset: u64, payload: &[u8]) -> Option<AuditEntry> {
        let event = match Event::decode(payload) {
            Ok(event) => event,
            Err(error) => {
                return Some(AuditEntry {
                    offset,
                    event_type: "?".into(),
                    time: String::new(),
                    rev: None,
                    ops: Vec::new(),
                    signature: Check::NotApplicable,
                    chain: Check::Failed(format!("undecodable event: {error}")),
                });
            }
        };
        if event.did() != &self.did {
            return None;
        }
        let mut entry = AuditEntry {
            offset,
            event_type: event.event_type().as_str().into(),
            time: String::new(),
            rev: None,
            ops: Vec::new(),
            signature: Check::NotApplicable,
            chain: Check::NotApplicable,
        };
        match event {
            Event::Enrollment(enrollment) => {
                entry.time = enrollment.time.to_string();
                let key =
                    match stratos_schema::keys::PublicKey::from_did_key(&enrollment.signing_key) {
                        Ok(key) => key,
                        Err(error) => {
                            entry.signature = Check::Failed(format!("signing key: {error}"));
                            return Some(entry);
                        }
                    };
                let head = self.state.as_ref().and_then(|s| s.head.clone());
                let mut state = ActorState {
                    enrolled: true,
                    signing_key: key,
                    head,
                    data_key: None,
                };
                if let Some(genesis) = &enrollment.genesis {
                    entry.rev = Some(genesis.rev.to_string());
                    match genesis.open(&self.did) {
                        Ok((commit, blocks)) => {
                            entry.signature = match commit.verify(&state.signing_key) {
                                Ok(()) => Check::Ok,
                                Err(error) => Check::Failed(error.to_string()),
                            };
                            entry.chain = Check::Ok;
                            state.head = Some(Head {
                                commit: genesis.commit,
                                rev: commit.rev.clone(),
                                data: commit.data,
                            });
                            self.blocks.extend(blocks);
                        }
                        Err(error) => entry.chain = Check::Failed(error.to_string()),
                    }
                }
                self.state = Some(state);
            }
            Event::Commit(commit) => {
                entry.time = commit.time.to_string();
                entry.rev = Some(commit.slice.rev.to_string());
                entry.ops = commit
                    .ops
                    .iter()
                    .map(|op| format!("{} {}", action(op.action), op.path))
                    .collect();
                if let Some(request) = &commit.request
                    && self.requests.contains(&request.key)
                {
                    entry.chain = Check::Failed(format!(
                        "{} {}",
                        crate::repo::DUPLICATE_REQUEST,
                        request.key
                    ));
                    return Some(entry);
                }
                match decide_commit(self.state.as_ref(), &commit, &self.blocks) {
                    Ok(applied) => {
                        if let Some(request) = &commit.request {
                            self.requests.insert(request.key.clone());
                        }
                        entry.signature = Check::Ok;
                        entry.chain = Check::Ok;
                        for cid in &applied.removed_blocks {
                            self.blocks.remove(cid);
                        }
                        self.blocks.extend(applied.new_blocks);
                        if let Some(state) = self.state.as_mut() {
                            state.head = Some(applied.head);
                        }
                    }
                    Err(Rejection::BadSignature) => {
                        entry.signature = Check::Failed(Rejection::BadSignature.to_string());
                        entry.chain = Check::NotApplicable;
                    }
                    Err(rejection) => {
                        entry.signature = Check::NotApplicable;
                        entry.chain = Check::Failed(rejection.to_string());
                    }
                }
            }
            Event::Unenroll(unenroll) => {
                entry.time = unenroll.time.to_string();
                if let Some(state) = self.state.as_mut() {
                    state.enrolled = false;
                }
            }
            Event::Boundaries(boundaries) => entry.time = boundaries.time.to_string(),
            Event::Import(import) => {
                entry.time = import.time.to_string();
                entry.rev = Some(import.slice.rev.to_string());
                entry.ops = import
                    .entries
                    .iter()
                    .map(|op| format!("{} {}", action(op.action), op.path))
                    .collect();
                let head = self
                    .state
                    .as_ref()
                    .and_then(|s| s.head.as_ref())
                    .map(|h| h.commit);
                entry.chain = if import.prev_commit == head {
                    Check::Ok
                } else {
                    Check::Failed("does not build on the head".into())
                };
                match (import.slice.open(&self.did), self.state.as_mut()) {
                    (Ok((commit, blocks)), Some(state)) => {
                        entry.signature = match commit.verify(&state.signing_key) {
                            Ok(()) => Check::Ok,
                            Err(error) => Check::Failed(error.to_string()),
                        };
                        if entry.chain == Check::Ok && entry.signature == Check::Ok {
                            state.head = Some(Head {
                                commit: import.slice.commit,
                                rev: commit.rev.clone(),
                                data: commit.data,
                            });
                            self.blocks.extend(blocks);
                        }
                    }
                    (Err(error), _) => entry.signature = Check::Failed(error.to_string()),
                    (_, None) => entry.chain = Check::Failed("unknown actor".into()),
                }
            }
        }
        Some(entry)
    }
}

fn action(action: OpAction) -> &'static str {
    match action {
        OpAction::Create => "create",
        OpAction::Update => "update",
        OpAction::Delete => "delete",
    }
}
