//! `zone.stratos.sync.subscribeRecords` (spec §7): ATProto event-stream frames over WebSocket.
//!
//! The actor stream replays an actor's numbered events after `cursor` from the repo projection
//! and then follows it live: the same keyset read continues after every wake-up, so the switch
//! from backfill to live has no gap and no duplicate. The service stream does the same over the
//! enrollment table. Nothing is queued per subscriber: each reads at its own pace (a backfill has
//! one page in flight and reads the next), and a subscriber that stops reading is closed with
//! `ConsumerTooSlow`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde::Serialize;
use stratos_schema::data::{decode_ipld, to_dag_cbor};
use stratos_schema::events::{OpAction, SequencedCommit};
use stratos_schema::syntax::Datetime;
use stratos_schema::{Cid, Ipld};
use stratos_store::{ActorEvent, Enrollment};
use stratos_xrpc::auth::same_secret;
use tokio::sync::watch;
use warp::ws::{Message, WebSocket};

use crate::Queries;
use crate::tails::Page;
use crate::viewer::Caller;

/// The method's NSID.
pub const SUBSCRIBE_RECORDS: &str = "zone.stratos.sync.subscribeRecords";

/// Timing and limits of the stream.
#[derive(Debug, Clone)]
pub struct SubscribeLimits {
    /// How often the server pings; a connection that did not answer the last ping is closed.
    pub ping_interval: Duration,
    /// How often a caught-up subscriber looks again without a wake-up.
    pub poll_interval: Duration,
    /// How long one frame may take to leave before the subscriber counts as too slow.
    pub send_timeout: Duration,
    /// Events read per query.
    pub batch: u32,
}

impl Default for SubscribeLimits {
    fn default() -> Self {
        Self {
            ping_interval: Duration::from_secs(30),
            poll_interval: Duration::from_secs(5),
            send_timeout: Duration::from_secs(10),
            batch: 500,
        }
    }
}

/// The query parameters of a subscription.
#[derive(Debug, Clone, Default)]
pub struct SubscribeParams {
    /// The actor stream's DID; none for the service stream.
    pub did: Option<String>,
    /// The last sequence number the consumer processed.
    pub cursor: Option<String>,
    /// Only events with a record in this boundary.
    pub domain: Option<String>,
    /// A service token or the shared sync token.
    pub sync_token: Option<String>,
}

#[derive(Serialize)]
struct Header {
    op: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    t: Option<&'static str>,
}

#[derive(Serialize)]
struct CommitBody<'a> {
    seq: u64,
    did: &'a str,
    time: &'a str,
    rev: &'a str,
    commit: Cid,
    ops: Vec<OpBody>,
}

#[derive(Serialize)]
struct OpBody {
    action: &'static str,
    path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    cid: Option<Cid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    record: Option<Ipld>,
    boundaries: Vec<String>,
    #[serde(rename = "prevBoundaries", skip_serializing_if = "Vec::is_empty")]
    prev_boundaries: Vec<String>,
}

#[derive(Serialize)]
struct EnrollmentBody<'a> {
    did: &'a str,
    action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    service: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    boundaries: Option<&'a [String]>,
    time: &'a str,
}

#[derive(Serialize)]
struct Named<'a> {
    #[serde(rename = "error", skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(rename = "name", skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    message: &'a str,
}

/// A message frame: header `{op: 1, t}` then the body.
fn frame<T: Serialize>(kind: &'static str, body: &T) -> Vec<u8> {
    let mut bytes = to_dag_cbor(&Header {
        op: 1,
        t: Some(kind),
    })
    .expect("frame headers encode");
    bytes.extend(to_dag_cbor(body).expect("frame bodies encode"));
    bytes
}

/// An error frame: header `{op: -1}` then `{error, message}`.
pub fn error_frame(error: &str, message: &str) -> Vec<u8> {
    let mut bytes = to_dag_cbor(&Header { op: -1, t: None }).expect("frame headers encode");
    bytes.extend(
        to_dag_cbor(&Named {
            error: Some(error),
            name: None,
            message,
        })
        .expect("frame bodies encode"),
    );
    bytes
}

fn info_frame(name: &str, message: &str) -> Vec<u8> {
    frame(
        "#info",
        &Named {
            error: None,
            name: Some(name),
            message,
        },
    )
}

/// Splits a frame into its header and body (for consumers and tests).
pub fn decode_frame(bytes: &[u8]) -> Option<(Ipld, Ipld)> {
    let mut reader = std::io::Cursor::new(bytes);
    let header: Ipld = serde_ipld_dagcbor::de::from_reader_once(&mut reader).ok()?;
    let body: Ipld = serde_ipld_dagcbor::de::from_reader_once(&mut reader).ok()?;
    (reader.position() as usize == bytes.len()).then_some((header, body))
}

/// Why a subscription ends.
enum End {
    /// The client left (or the connection broke).
    Gone,
    /// An error frame is sent, then the connection closes.
    Error(&'static str, String),
}

/// One connection: a socket with keepalive and a send deadline.
struct Connection {
    socket: WebSocket,
    ping: tokio::time::Interval,
    answered: bool,
    send_timeout: Duration,
}

impl Connection {
    async fn send(&mut self, bytes: Vec<u8>) -> Result<(), End> {
        match tokio::time::timeout(self.send_timeout, self.socket.send(Message::binary(bytes)))
            .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(End::Gone),
            Err(_) => Err(End::Error(
                "ConsumerTooSlow",
                "the subscriber fell too far behind".into(),
            )),
        }
    }

    /// Sends frames as one write: queued without flushing, then flushed together, all within
    /// the send deadline.
    async fn send_all(&mut self, frames: Vec<Vec<u8>>) -> Result<(), End> {
        let socket = &mut self.socket;
        let write = async move {
            for frame in frames {
                socket.feed(Message::binary(frame)).await?;
            }
            socket.flush().await
        };
        match tokio::time::timeout(self.send_timeout, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(End::Gone),
            Err(_) => Err(End::Error(
                "ConsumerTooSlow",
                "the subscriber fell too far behind".into(),
            )),
        }
    }

    /// Waits for `changes` (`true`) or the poll interval (`false`), answering keepalive rounds
    /// and reading what the client sends (pongs, close).
    async fn idle(
        &mut self,
        changes: &mut watch::Receiver<u64>,
        poll: Duration,
    ) -> Result<bool, End> {
        let wake = tokio::time::sleep(poll);
        tokio::pin!(wake);
        loop {
            tokio::select! {
                _ = changes.changed() => return Ok(true),
                () = &mut wake => return Ok(false),
                _ = self.ping.tick() => {
                    if !self.answered {
                        return Err(End::Gone);
                    }
                    self.answered = false;
                    self.send_raw(Message::ping(Vec::new())).await?;
                }
                incoming = self.socket.next() => match incoming {
                    Some(Ok(message)) if message.is_close() => return Err(End::Gone),
                    Some(Ok(message)) => {
                        if message.is_pong() {
                            self.answered = true;
                        }
                    }
                    _ => return Err(End::Gone),
                },
            }
        }
    }

    async fn send_raw(&mut self, message: Message) -> Result<(), End> {
        match tokio::time::timeout(self.send_timeout, self.socket.send(message)).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(End::Gone),
        }
    }
}

impl Queries {
    /// Serves one subscription on an upgraded socket until either side ends it.
    pub async fn subscribe(
        self,
        socket: WebSocket,
        params: SubscribeParams,
        authorization: Option<String>,
    ) {
        let limits = self.config().subscribe.clone();
        let mut ping = tokio::time::interval(limits.ping_interval);
        ping.tick().await;
        let mut connection = Connection {
            socket,
            ping,
            answered: true,
            send_timeout: limits.send_timeout,
        };
        metrics::gauge!("stratos_subscribers").increment(1.0);
        let result = self
            .stream(&mut connection, &params, authorization.as_deref())
            .await;
        metrics::gauge!("stratos_subscribers").decrement(1.0);
        if let Err(End::Error(error, message)) = result {
            let _ = connection.send(error_frame(error, &message)).await;
        }
        let _ = connection.socket.close().await;
    }

    async fn stream(
        &self,
        connection: &mut Connection,
        params: &SubscribeParams,
        authorization: Option<&str>,
    ) -> Result<(), End> {
        let caller = self.stream_caller(params, authorization).await?;
        match (&params.did, &caller) {
            (Some(did), Caller::Service(_)) => self.actor_stream(connection, did, params).await,
            (Some(did), Caller::Actor(actor)) if actor == did => {
                self.actor_stream(connection, did, params).await
            }
            (Some(_), _) => Err(End::Error(
                "AuthRequired",
                "Service auth or owner authentication required".into(),
            )),
            (None, Caller::Service(_)) => self.service_stream(connection, params).await,
            (None, _) => Err(End::Error(
                "AuthRequired",
                "Service auth required for service-level subscription".into(),
            )),
        }
    }

    /// Credentials in spec order: the shared sync token, a service token in `syncToken`, the
    /// `Authorization` header.
    async fn stream_caller(
        &self,
        params: &SubscribeParams,
        authorization: Option<&str>,
    ) -> Result<Caller, End> {
        let refused = |error: stratos_xrpc::auth::AuthError| {
            End::Error("AuthRequired", format!("{}: {error}", error.name()))
        };
        if let Some(token) = &params.sync_token {
            if let Some(secret) = &self.config().sync_token
                && same_secret(token, secret)
            {
                return Ok(Caller::Service("sync-token".into()));
            }
            let did = self
                .inner
                .auth
                .caller(Some(&format!("Bearer {token}")), SUBSCRIBE_RECORDS)
                .await
                .map_err(refused)?;
            return Ok(self.classify(did.to_string()));
        }
        if authorization.is_some() {
            let did = self
                .inner
                .auth
                .caller(authorization, SUBSCRIBE_RECORDS)
                .await
                .map_err(refused)?;
            return Ok(self.classify(did.to_string()));
        }
        Err(End::Error(
            "AuthRequired",
            "syncToken query param or Authorization header required".into(),
        ))
    }

    async fn actor_stream(
        &self,
        connection: &mut Connection,
        did: &str,
        params: &SubscribeParams,
    ) -> Result<(), End> {
        let internal = |error: stratos_store::StoreError| {
            tracing::error!(%error, "subscribeRecords read failed");
            End::Error("InternalServerError", "Internal server error".into())
        };
        let cursor = match &params.cursor {
            None => 0,
            Some(text) => text.parse::<u64>().map_err(|_| {
                End::Error(
                    "InvalidRequest",
                    "cursor must be a non-negative integer".into(),
                )
            })?,
        };
        // Listen before the first read, so nothing falls between backfill and live.
        let mut changes = self.inner.changes.subscribe();
        let range = self.store().seq_range(did).await.map_err(internal)?;
        if range.is_none()
            && self
                .store()
                .enrollment(did)
                .await
                .map_err(internal)?
                .is_none()
        {
            return Err(End::Error("NotFound", "Account not found".into()));
        }
        let (oldest, latest) = range.unwrap_or((0, 0));
        if cursor > latest {
            return Err(End::Error("FutureCursor", "Cursor is in the future".into()));
        }
        if cursor + 1 < oldest {
            connection
                .send(info_frame(
                    "OutdatedCursor",
                    &format!("Cursor {cursor} is too old, some events may be missed"),
                ))
                .await?;
        }
        let limits = self.config().subscribe.clone();
        let domain = params.domain.as_deref();
        let tail = self.inner.tails.tail(did, domain);
        let mut after = cursor;
        let mut live = false;
        let mut read_ahead: Option<Page> = None;
        loop {
            let page = match read_ahead.take() {
                Some(page) => Arc::new(page),
                None => {
                    // Caught-up subscribers of one stream share their reads; a backfill reads
                    // alone.
                    let tick = *changes.borrow_and_update();
                    let read = self.read_page(did, after, domain, limits.batch);
                    match live {
                        true => tail.page(after, tick, read).await,
                        false => read.await.map(Arc::new),
                    }
                    .map_err(internal)?
                }
            };
            let full = page.full;
            if let Some(last) = page.last_seq {
                after = last;
                let frames = Arc::try_unwrap(page)
                    .map_or_else(|page| page.frames.clone(), |page| page.frames);
                if full {
                    // A backfill reads the next page while this one leaves. Announcements up
                    // to here are covered by that read.
                    changes.mark_unchanged();
                    let read = async {
                        self.read_page(did, after, domain, limits.batch)
                            .await
                            .map_err(internal)
                    };
                    let ((), next) = tokio::try_join!(connection.send_all(frames), read)?;
                    read_ahead = Some(next);
                    live = false;
                    continue;
                }
                connection.send_all(frames).await?;
            }
            // After a poll without an announcement, look for yourself: the poll is the safety
            // net for a missed announcement, which a shared page would hide.
            live = !full && connection.idle(&mut changes, limits.poll_interval).await?;
        }
    }

    /// The frames of `did`'s events after `after`, at most `batch` events.
    async fn read_page(
        &self,
        did: &str,
        after: u64,
        domain: Option<&str>,
        batch: u32,
    ) -> Result<Page, stratos_store::StoreError> {
        let events = self.store().actor_events(did, after, batch).await?;
        Ok(Page {
            frames: self.commit_frames(did, &events, domain).await?,
            last_seq: events.last().map(|event| event.seq),
            full: events.len() == batch as usize,
        })
    }

    /// `#commit` frames of `events`, with each op's current record when it still has the op's
    /// CID (a record changed since carries its newer content in a later event).
    async fn commit_frames(
        &self,
        did: &str,
        events: &[ActorEvent],
        domain: Option<&str>,
    ) -> Result<Vec<Vec<u8>>, stratos_store::StoreError> {
        let commits: Vec<(u64, SequencedCommit)> = events
            .iter()
            .filter(|event| event.event_type == "#commit")
            .filter_map(|event| Some((event.seq, SequencedCommit::decode(&event.body).ok()?)))
            .filter(|(_, commit)| {
                // An op concerns a boundary it is in, or that an update took it out of.
                domain.is_none_or(|domain| {
                    commit.ops.iter().any(|op| {
                        op.boundaries
                            .iter()
                            .chain(&op.prev_boundaries)
                            .any(|b| b == domain)
                    })
                })
            })
            .collect();
        let paths: HashSet<(&str, &str, &str)> = commits
            .iter()
            .flat_map(|(_, commit)| commit.ops.iter())
            .filter(|op| op.cid.is_some())
            .map(|op| {
                let (collection, rkey) = op.path.split_once('/').unwrap_or((op.path.as_str(), ""));
                (did, collection, rkey)
            })
            .collect();
        let paths: Vec<(&str, &str, &str)> = paths.into_iter().collect();
        let current: HashMap<(String, Cid), Vec<u8>> = self
            .store()
            .records_at(&paths)
            .await?
            .into_iter()
            .filter_map(|(_, row)| {
                let block = row.block?;
                Some(((format!("{}/{}", row.collection, row.rkey), row.cid), block))
            })
            .collect();
        Ok(commits
            .iter()
            .map(|(seq, commit)| {
                let ops = commit
                    .ops
                    .iter()
                    .map(|op| OpBody {
                        action: match op.action {
                            OpAction::Create => "create",
                            OpAction::Update => "update",
                            OpAction::Delete => "delete",
                        },
                        path: op.path.clone(),
                        cid: op.cid,
                        record: op
                            .cid
                            .and_then(|cid| current.get(&(op.path.clone(), cid)))
                            .and_then(|block| decode_ipld(block).ok()),
                        boundaries: op.boundaries.clone(),
                        prev_boundaries: op.prev_boundaries.clone(),
                    })
                    .collect();
                frame(
                    "#commit",
                    &CommitBody {
                        seq: *seq,
                        did,
                        time: commit.time.as_str(),
                        rev: commit.rev.as_str(),
                        commit: commit.commit,
                        ops,
                    },
                )
            })
            .collect())
    }

    /// The service stream: every active enrollment, then every change after it (`enroll` with
    /// the new boundaries, or `unenroll`). A short look-back re-reads rows whose time arrived
    /// out of order; rows already sent are not sent again.
    async fn service_stream(
        &self,
        connection: &mut Connection,
        params: &SubscribeParams,
    ) -> Result<(), End> {
        const LOOK_BACK: Duration = Duration::from_secs(60);
        let internal = |error: stratos_store::StoreError| {
            tracing::error!(%error, "subscribeRecords read failed");
            End::Error("InternalServerError", "Internal server error".into())
        };
        let limits = self.config().subscribe.clone();
        let mut changes = self.inner.changes.subscribe();
        let mut sent: HashSet<(String, String)> = HashSet::new();
        let mut after = (String::new(), String::new());
        // The newest change time read: the look-back starts from it, so it never moves back.
        let mut newest = String::new();
        let mut replaying = true;
        loop {
            let rows = self
                .store()
                .enrollments_changed((&after.0, &after.1), limits.batch)
                .await
                .map_err(internal)?;
            let full = rows.len() == limits.batch as usize;
            for row in &rows {
                after = (row.updated_at.clone(), row.did.clone());
                if row.updated_at > newest {
                    newest.clone_from(&row.updated_at);
                }
                if !sent.insert((row.did.clone(), row.updated_at.clone()))
                    || (replaying && !row.active)
                {
                    continue;
                }
                if params
                    .domain
                    .as_deref()
                    .is_some_and(|domain| !row.boundaries.iter().any(|b| b == domain))
                {
                    continue;
                }
                connection.send(enrollment_frame(row, replaying)).await?;
            }
            if !full {
                replaying = false;
                connection.idle(&mut changes, limits.poll_interval).await?;
                after.0 = look_back(&newest, LOOK_BACK);
                after.1.clear();
                // Rows older than the look-back are not read again: forget them, so a long
                // subscription holds only the last minute's changes.
                sent.retain(|(_, time)| *time >= after.0);
            }
        }
    }
}

fn enrollment_frame(row: &Enrollment, replayed: bool) -> Vec<u8> {
    let body = match row.active {
        true => EnrollmentBody {
            did: &row.did,
            action: "enroll",
            service: (!replayed).then_some(row.service_endpoint.as_str()),
            boundaries: Some(&row.boundaries),
            time: if replayed {
                &row.enrolled_at
            } else {
                &row.updated_at
            },
        },
        false => EnrollmentBody {
            did: &row.did,
            action: "unenroll",
            service: None,
            boundaries: None,
            time: &row.updated_at,
        },
    };
    frame("#enrollment", &body)
}

/// `time` (RFC 3339) moved back by `by`, as text that sorts like the stored times.
fn look_back(time: &str, by: Duration) -> String {
    time.parse::<Datetime>()
        .ok()
        .and_then(|t| Datetime::from_timestamp_micros(t.timestamp_micros() - by.as_micros() as i64))
        .map(Datetime::into_string)
        .unwrap_or_default()
}
