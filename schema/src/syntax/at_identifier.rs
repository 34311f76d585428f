//! AT identifiers: the account part of an AT-URI or an XRPC parameter, either a DID or a handle.

use super::{Did, Handle, SyntaxError, SyntaxKind};

/// A DID or a handle (the lexicon `at-identifier` format).
///
/// Text starting with `did:` is parsed as a DID, anything else as a handle (which is then
/// lowercased, see [`Handle`]). Values order DIDs first, then handles.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AtIdentifier {
    /// A DID, e.g. `did:plc:7iza6de2dwap2sbkpav7c6c6`.
    Did(Did),
    /// A handle, e.g. `alice.bsky.social`.
    Handle(Handle),
}

impl AtIdentifier {
    fn parse_owned(text: String) -> Result<Self, SyntaxError> {
        let parsed = if text.starts_with("did:") {
            Did::try_from(text).map(Self::Did)
        } else {
            Handle::try_from(text).map(Self::Handle)
        };
        parsed.map_err(|inner| {
            SyntaxError::new(
                SyntaxKind::AtIdentifier,
                inner.value(),
                format!("not a valid {}: {}", inner.kind(), inner.reason()),
            )
        })
    }

    /// The identifier as text (a handle in lowercase).
    pub fn as_str(&self) -> &str {
        match self {
            Self::Did(did) => did.as_str(),
            Self::Handle(handle) => handle.as_str(),
        }
    }

    /// The DID, if this is one.
    pub fn as_did(&self) -> Option<&Did> {
        match self {
            Self::Did(did) => Some(did),
            Self::Handle(_) => None,
        }
    }

    /// The handle, if this is one.
    pub fn as_handle(&self) -> Option<&Handle> {
        match self {
            Self::Did(_) => None,
            Self::Handle(handle) => Some(handle),
        }
    }
}

impl_syntax_string!(AtIdentifier);

impl From<Did> for AtIdentifier {
    fn from(did: Did) -> Self {
        Self::Did(did)
    }
}

impl From<Handle> for AtIdentifier {
    fn from(handle: Handle) -> Self {
        Self::Handle(handle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_did_or_handle() {
        let id: AtIdentifier = "did:plc:abc".parse().unwrap();
        assert_eq!(id.as_did().map(Did::method), Some("plc"));
        let id: AtIdentifier = "Alice.Test".parse().unwrap();
        assert_eq!(id.as_handle().map(Handle::as_str), Some("alice.test"));
        assert_eq!(id.as_str(), "alice.test");
        let err = "did:thing".parse::<AtIdentifier>().unwrap_err();
        assert_eq!(err.kind(), SyntaxKind::AtIdentifier);
        assert!(err.reason().contains("DID"), "{err}");
    }
}
