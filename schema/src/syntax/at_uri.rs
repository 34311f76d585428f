//! AT-URIs in the restricted form lexicons use (the `at-uri` format):
//! `at://AUTHORITY[/COLLECTION[/RKEY]]`.
//!
//! The general AT-URI scheme also allows queries and fragments; the lexicon format does not,
//! and neither does this type. Nothing is resolved: a handle authority stays a handle.

use super::{AtIdentifier, Did, Nsid, RecordKey, SyntaxError, SyntaxKind};

/// The longest AT-URI, in bytes (8 KiB).
pub const MAX_AT_URI_LEN: usize = 8 * 1024;

/// A syntactically valid AT-URI naming a repository, a collection or a record, e.g.
/// `at://did:plc:7iza6de2dwap2sbkpav7c6c6/app.bsky.feed.post/3jzfcijpj2z2a`.
///
/// The syntax is `at://`, an [`AtIdentifier`] (DID or handle), then optionally `/` and an
/// [`Nsid`] collection, then optionally `/` and a [`RecordKey`]. No trailing slash, empty
/// segment, query or fragment; at most [`MAX_AT_URI_LEN`] bytes.
///
/// A handle authority is lowercased like every [`Handle`](super::Handle), so
/// [`as_str`](Self::as_str) may differ from the parsed text in the case of the handle only.
/// AT-URIs order as their strings do.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AtUri {
    text: String,
    authority: AtIdentifier,
    collection: Option<Nsid>,
    rkey: Option<RecordKey>,
}

impl AtUri {
    fn parse_owned(text: String) -> Result<Self, SyntaxError> {
        parse(&text).map_err(|reason| SyntaxError::new(SyntaxKind::AtUri, &text, reason))
    }

    /// The AT-URI of a record: `at://{did}/{collection}/{rkey}`.
    pub fn for_record(did: &Did, collection: &Nsid, rkey: &RecordKey) -> Self {
        Self::build(
            AtIdentifier::Did(did.clone()),
            Some(collection.clone()),
            Some(rkey.clone()),
        )
    }

    /// The AT-URI of a collection in a repository: `at://{did}/{collection}`.
    pub fn for_collection(did: &Did, collection: &Nsid) -> Self {
        Self::build(
            AtIdentifier::Did(did.clone()),
            Some(collection.clone()),
            None,
        )
    }

    /// The AT-URI of a repository: `at://{authority}`.
    pub fn for_repo(authority: AtIdentifier) -> Self {
        Self::build(authority, None, None)
    }

    fn build(authority: AtIdentifier, collection: Option<Nsid>, rkey: Option<RecordKey>) -> Self {
        let mut text = format!("at://{}", authority.as_str());
        for segment in [
            collection.as_ref().map(Nsid::as_str),
            rkey.as_ref().map(RecordKey::as_str),
        ]
        .into_iter()
        .flatten()
        {
            text.push('/');
            text.push_str(segment);
        }
        Self {
            text,
            authority,
            collection,
            rkey,
        }
    }

    /// The AT-URI as text (a handle authority in lowercase).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The repository: a DID, or a handle to be resolved to one.
    pub fn authority(&self) -> &AtIdentifier {
        &self.authority
    }

    /// The collection, if the URI names one.
    pub fn collection(&self) -> Option<&Nsid> {
        self.collection.as_ref()
    }

    /// The record key, if the URI names a record.
    pub fn rkey(&self) -> Option<&RecordKey> {
        self.rkey.as_ref()
    }

    /// Unwraps the text.
    pub fn into_string(self) -> String {
        self.text
    }
}

impl_syntax_string!(AtUri);

fn parse(text: &str) -> Result<AtUri, String> {
    if text.len() > MAX_AT_URI_LEN {
        return Err("longer than 8 KiB".to_owned());
    }
    let Some(rest) = text.strip_prefix("at://") else {
        return Err("must start with \"at://\"".to_owned());
    };
    if rest.contains(['?', '#']) {
        return Err("queries and fragments are not allowed".to_owned());
    }
    let mut segments = rest.split('/');
    let authority = segments.next().unwrap_or_default();
    let collection = segments.next();
    let rkey = segments.next();
    if segments.next().is_some() {
        return Err("at most two path segments (collection and record key)".to_owned());
    }
    let nested = |err: SyntaxError| format!("{} is not valid: {}", err.kind(), err.reason());
    let authority: AtIdentifier = authority.parse().map_err(nested)?;
    let collection = match collection {
        None => None,
        Some("") => return Err("empty path segment (trailing or doubled '/')".to_owned()),
        Some(segment) => Some(segment.parse::<Nsid>().map_err(nested)?),
    };
    let rkey = match rkey {
        None => None,
        Some("") => return Err("empty path segment (trailing or doubled '/')".to_owned()),
        Some(segment) => Some(segment.parse::<RecordKey>().map_err(nested)?),
    };
    Ok(AtUri::build(authority, collection, rkey))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accessors() {
        let uri: AtUri = "at://did:plc:asdf123/com.atproto.feed.post/record"
            .parse()
            .unwrap();
        assert_eq!(uri.authority().as_str(), "did:plc:asdf123");
        assert_eq!(
            uri.collection().map(Nsid::as_str),
            Some("com.atproto.feed.post")
        );
        assert_eq!(uri.rkey().map(RecordKey::as_str), Some("record"));

        let repo: AtUri = "at://User.Bsky.Social".parse().unwrap();
        assert_eq!(repo.as_str(), "at://user.bsky.social");
        assert!(repo.collection().is_none());
        assert!(repo.rkey().is_none());
    }

    #[test]
    fn constructors_round_trip() {
        let did: Did = "did:plc:asdf123".parse().unwrap();
        let nsid: Nsid = "app.bsky.feed.post".parse().unwrap();
        let rkey: RecordKey = "3jzfcijpj2z2a".parse().unwrap();
        let uri = AtUri::for_record(&did, &nsid, &rkey);
        assert_eq!(
            uri.as_str(),
            "at://did:plc:asdf123/app.bsky.feed.post/3jzfcijpj2z2a"
        );
        assert_eq!(uri.as_str().parse::<AtUri>().unwrap(), uri);
        let collection = AtUri::for_collection(&did, &nsid);
        assert_eq!(
            collection.as_str(),
            "at://did:plc:asdf123/app.bsky.feed.post"
        );
        let repo = AtUri::for_repo(AtIdentifier::Did(did));
        assert_eq!(repo.as_str(), "at://did:plc:asdf123");
    }

    #[test]
    fn errors_name_the_bad_part() {
        let err = "at://did:plc:asdf123/short/stuff"
            .parse::<AtUri>()
            .unwrap_err();
        assert_eq!(err.kind(), SyntaxKind::AtUri);
        assert!(err.reason().starts_with("NSID"), "{err}");
    }
}
