//! The one error every syntax type returns: which kind of string was refused, what it was, and
//! why.

use std::fmt;

/// The longest prefix of a refused value that a [`SyntaxError`] keeps, in characters.
const MAX_SHOWN_CHARS: usize = 80;

/// The kinds of string the atproto specs give a syntax to, as named in error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SyntaxKind {
    /// A [`Did`](super::Did).
    Did,
    /// A [`Handle`](super::Handle).
    Handle,
    /// An [`AtIdentifier`](super::AtIdentifier): a DID or a handle.
    AtIdentifier,
    /// An [`Nsid`](super::Nsid).
    Nsid,
    /// An [`AtUri`](super::AtUri).
    AtUri,
    /// A [`Tid`](super::Tid).
    Tid,
    /// A [`RecordKey`](super::RecordKey).
    RecordKey,
    /// A [`Datetime`](super::Datetime).
    Datetime,
    /// A [`Language`](super::Language) tag.
    Language,
    /// A generic URI, the lexicon `uri` format (see [`is_valid_uri`](super::is_valid_uri)).
    Uri,
    /// A CID string, the lexicon `cid` format (see
    /// [`is_valid_cid_string`](super::is_valid_cid_string)).
    Cid,
}

impl SyntaxKind {
    /// The name used in messages, e.g. `"DID"` or `"record key"`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Did => "DID",
            Self::Handle => "handle",
            Self::AtIdentifier => "AT identifier",
            Self::Nsid => "NSID",
            Self::AtUri => "AT-URI",
            Self::Tid => "TID",
            Self::RecordKey => "record key",
            Self::Datetime => "datetime",
            Self::Language => "language tag",
            Self::Uri => "URI",
            Self::Cid => "CID",
        }
    }
}

impl fmt::Display for SyntaxKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A string that does not follow the atproto syntax of the kind it was parsed as.
///
/// The message names the kind, quotes the value (cut to its first 80 characters, with `…`
/// appended when cut) and says what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} {value:?}: {reason}")]
pub struct SyntaxError {
    kind: SyntaxKind,
    value: String,
    reason: String,
}

impl SyntaxError {
    /// An error for `value`, refused as a `kind` because of `reason`. `value` is truncated.
    pub fn new(kind: SyntaxKind, value: &str, reason: impl Into<String>) -> Self {
        let value = match value.char_indices().nth(MAX_SHOWN_CHARS) {
            Some((cut, _)) => format!("{}…", &value[..cut]),
            None => value.to_owned(),
        };
        Self {
            kind,
            value,
            reason: reason.into(),
        }
    }

    /// Which kind of string was refused.
    pub fn kind(&self) -> SyntaxKind {
        self.kind
    }

    /// The refused value, truncated to its first 80 characters (then ending in `…`).
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Why the value was refused.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_names_kind_value_and_reason() {
        let err = SyntaxError::new(SyntaxKind::Did, "did:x", "too short");
        assert_eq!(err.to_string(), r#"invalid DID "did:x": too short"#);
        assert_eq!(err.kind(), SyntaxKind::Did);
        assert_eq!(err.reason(), "too short");
    }

    #[test]
    fn long_values_are_truncated_on_a_char_boundary() {
        let long = "é".repeat(200);
        let err = SyntaxError::new(SyntaxKind::Handle, &long, "nope");
        assert_eq!(err.value().chars().count(), MAX_SHOWN_CHARS + 1);
        assert!(err.value().ends_with('…'));
    }
}
