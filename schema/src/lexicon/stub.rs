//! Stub records: the content-free copy of a private record written to the user's PDS, whose
//! `source` (`zone.stratos.defs#source`) says where the full record lives.
//!
//! A record is a stub iff it has an object `source` with a string `vary`, an object `subject`
//! and a string `service`; `service` is `{serviceDid}#{fragment}`.

use cid::Cid;
use ipld_core::ipld::Ipld;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use super::records::{POST_COLLECTION, StrongRef};
use crate::data::ipld_to_json;
use crate::syntax::AtUri;

/// The `vary` of every stub Stratos writes: the content depends on who asks.
pub const VARY_AUTHENTICATED: &str = "authenticated";
/// The other known `vary` value.
pub const VARY_UNAUTHENTICATED: &str = "unauthenticated";

/// Where a stub's full record lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// `authenticated` or `unauthenticated`.
    pub vary: String,
    /// AT-URI and CID of the full record in Stratos.
    pub subject: StrongRef,
    /// The service, `{serviceDid}#{fragment}`.
    pub service: String,
}

impl Source {
    /// The `source` of a stub record: `None` unless the record [is a stub](is_stub) whose
    /// `subject` has string `uri` and `cid`.
    pub fn from_record(record: &Ipld) -> Option<Self> {
        let source = stub_source(record)?;
        let Some(Ipld::Map(subject)) = source.get("subject") else {
            return None;
        };
        let text = |m: &BTreeMap<String, Ipld>, key: &str| match m.get(key) {
            Some(Ipld::String(s)) => Some(s.clone()),
            _ => None,
        };
        Some(Self {
            vary: text(source, "vary")?,
            subject: StrongRef {
                uri: text(subject, "uri")?,
                cid: text(subject, "cid")?,
            },
            service: text(source, "service")?,
        })
    }

    /// The service DID and fragment of [`service`](Self::service).
    pub fn service_ref(&self) -> ServiceRef {
        ServiceRef::parse(&self.service)
    }

    fn to_ipld(&self) -> Ipld {
        let text = |s: &str| Ipld::String(s.to_owned());
        Ipld::Map(BTreeMap::from([
            ("vary".to_owned(), text(&self.vary)),
            (
                "subject".to_owned(),
                Ipld::Map(BTreeMap::from([
                    ("uri".to_owned(), text(&self.subject.uri)),
                    ("cid".to_owned(), text(&self.subject.cid)),
                ])),
            ),
            ("service".to_owned(), text(&self.service)),
        ]))
    }
}

/// A stub's `service` split at its first `#`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRef {
    /// The service DID (everything before the first `#`).
    pub did: String,
    /// Everything after the first `#`, if there is one (it may itself contain `#`).
    pub fragment: Option<String>,
}

impl ServiceRef {
    /// Splits `{did}#{fragment}` at the first `#`.
    pub fn parse(service: &str) -> Self {
        match service.split_once('#') {
            Some((did, fragment)) => Self {
                did: did.to_owned(),
                fragment: Some(fragment.to_owned()),
            },
            None => Self {
                did: service.to_owned(),
                fragment: None,
            },
        }
    }
}

/// A stub record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stub {
    /// The record type: the full record's `$type`.
    pub type_: String,
    /// Where the full record lives.
    pub source: Source,
    /// The full record's `createdAt`.
    pub created_at: String,
}

impl Stub {
    /// The data-model value to write to the PDS.
    pub fn to_ipld(&self) -> Ipld {
        Ipld::Map(BTreeMap::from([
            ("$type".to_owned(), Ipld::String(self.type_.clone())),
            ("source".to_owned(), self.source.to_ipld()),
            (
                "createdAt".to_owned(),
                Ipld::String(self.created_at.clone()),
            ),
        ]))
    }

    /// The JSON form.
    pub fn to_json(&self) -> Value {
        ipld_to_json(&self.to_ipld())
    }
}

/// The `source` map of a stub record, if the record is one.
fn stub_source(record: &Ipld) -> Option<&BTreeMap<String, Ipld>> {
    let Ipld::Map(map) = record else {
        return None;
    };
    let Some(Ipld::Map(source)) = map.get("source") else {
        return None;
    };
    let complete = matches!(source.get("vary"), Some(Ipld::String(_)))
        && matches!(source.get("subject"), Some(Ipld::Map(_)))
        && matches!(source.get("service"), Some(Ipld::String(_)));
    complete.then_some(source)
}

/// Whether a record is a stub: it has an object `source` with a string `vary`, an object
/// `subject` and a string `service`.
pub fn is_stub(record: &Ipld) -> bool {
    stub_source(record).is_some()
}

/// [`is_stub`] for a record in its JSON form.
pub fn is_stub_json(record: &Value) -> bool {
    record.get("source").is_some_and(|source| {
        source.get("vary").is_some_and(Value::is_string)
            && source.get("subject").is_some_and(Value::is_object)
            && source.get("service").is_some_and(Value::is_string)
    })
}

/// The stub of a full record stored at `uri` with `cid`, for the service `{serviceDid}#{fragment}`.
///
/// `$type` is the record's `$type` if it is a string, else the URI's collection (or the post
/// collection if the URI names none); `createdAt` is the record's if it is a string, else now.
pub fn stub_for(record: &Ipld, uri: &AtUri, cid: &Cid, service: &str) -> Stub {
    stub_for_at(record, uri, cid, service, &now_datetime())
}

/// [`stub_for`] with the time to use when the record has no string `createdAt`.
pub fn stub_for_at(record: &Ipld, uri: &AtUri, cid: &Cid, service: &str, now: &str) -> Stub {
    let field = |key: &str| match record {
        Ipld::Map(map) => match map.get(key) {
            Some(Ipld::String(s)) => Some(s.clone()),
            _ => None,
        },
        _ => None,
    };
    let type_ = field("$type").unwrap_or_else(|| {
        uri.collection()
            .map_or(POST_COLLECTION, |collection| collection.as_str())
            .to_owned()
    });
    Stub {
        type_,
        source: Source {
            vary: VARY_AUTHENTICATED.to_owned(),
            subject: StrongRef {
                uri: uri.to_string(),
                cid: cid.to_string(),
            },
            service: service.to_owned(),
        },
        created_at: field("createdAt").unwrap_or_else(|| now.to_owned()),
    }
}

/// The current time as an atproto datetime with millisecond precision
/// (`2026-01-15T12:00:00.000Z`).
fn now_datetime() -> String {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = since_epoch.as_secs();
    let (days, rem) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since_epoch.subsec_millis()
    )
}

/// Gregorian (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn now_is_a_datetime() {
        let now = now_datetime();
        assert_eq!(now.len(), 24, "{now}");
        assert!(now.ends_with('Z'));
    }
}
