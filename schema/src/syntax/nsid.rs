//! Namespaced identifiers (NSIDs), which name lexicons, record collections and XRPC methods,
//! e.g. `app.bsky.feed.post`.
//!
//! This is syntax only: it does not resolve the authority or look up a lexicon. The `*`
//! wildcard some permission grammars allow is not part of NSID syntax and is refused.

use super::{SyntaxError, SyntaxKind, is_domain_label};

/// The longest NSID, in characters: room for a 253-character domain authority, a `.`, and a
/// 63-character name. Only the total is capped: the interop vectors accept an authority longer
/// than 253 characters when the whole NSID fits.
pub const MAX_NSID_LEN: usize = 253 + 1 + 63;

/// A syntactically valid NSID: a reversed domain name (the authority) followed by a name.
///
/// The syntax is at least three `.`-separated ASCII segments, at most [`MAX_NSID_LEN`]
/// characters in all. Every segment but the last is a DNS label (1–63 letters, digits and
/// hyphens, not starting or ending with a hyphen), and the first of them (the top-level
/// domain) starts with a letter. The last segment, the name, is 1–63 letters and digits
/// starting with a letter.
///
/// NSIDs compare exactly: the name is case-sensitive, and the authority is kept as written
/// (the specs ask authors to write it in lowercase but do not normalize it).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Nsid(String);

impl Nsid {
    fn parse_owned(text: String) -> Result<Self, SyntaxError> {
        check(&text).map_err(|reason| SyntaxError::new(SyntaxKind::Nsid, &text, reason))?;
        Ok(Self(text))
    }

    /// The NSID as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The domain authority as written, in reversed order: `"app.bsky.feed"` for
    /// `app.bsky.feed.post`.
    pub fn authority(&self) -> &str {
        self.split().0
    }

    /// The authority as a domain name, in DNS order: `"feed.bsky.app"` for
    /// `app.bsky.feed.post`. This is where the lexicon is published (under `_lexicon.`).
    pub fn authority_domain(&self) -> String {
        self.authority().rsplit('.').collect::<Vec<_>>().join(".")
    }

    /// The name, the last segment: `"post"` for `app.bsky.feed.post`.
    pub fn name(&self) -> &str {
        self.split().1
    }

    /// Unwraps the text.
    pub fn into_string(self) -> String {
        self.0
    }

    fn split(&self) -> (&str, &str) {
        self.0.rsplit_once('.').unwrap_or(("", &self.0))
    }
}

impl_syntax_string!(Nsid);

fn check(text: &str) -> Result<(), &'static str> {
    if text.len() > MAX_NSID_LEN {
        return Err("longer than 317 characters");
    }
    if !text.is_ascii() {
        return Err("must be ASCII");
    }
    let Some((authority, name)) = text.rsplit_once('.') else {
        return Err("must have at least three segments (authority and name)");
    };
    let mut segments = 0usize;
    for (i, label) in authority.split('.').enumerate() {
        segments += 1;
        if !is_domain_label(label) {
            return Err(
                "authority segments must be 1-63 letters, digits or hyphens, not starting or ending with '-'",
            );
        }
        if i == 0 && !label.starts_with(|c: char| c.is_ascii_alphabetic()) {
            return Err("the first segment must start with a letter");
        }
    }
    if segments < 2 {
        return Err("must have at least three segments (authority and name)");
    }
    if name.is_empty() || name.len() > 63 {
        return Err("the name segment must be 1-63 characters");
    }
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err("the name segment must start with a letter");
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err("the name segment may only contain ASCII letters and digits");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authority_and_name() {
        let nsid: Nsid = "app.bsky.feed.post".parse().unwrap();
        assert_eq!(nsid.authority(), "app.bsky.feed");
        assert_eq!(nsid.authority_domain(), "feed.bsky.app");
        assert_eq!(nsid.name(), "post");
        let nsid: Nsid = "one.two.three.four-and.FiVe".parse().unwrap();
        assert_eq!(nsid.authority(), "one.two.three.four-and");
        assert_eq!(nsid.name(), "FiVe");
    }

    #[test]
    fn name_rules() {
        assert!("com.example.fooBar".parse::<Nsid>().is_ok());
        assert!("com.example.2foo".parse::<Nsid>().is_err());
        assert!("com.example.foo-bar".parse::<Nsid>().is_err());
        assert!("com.example".parse::<Nsid>().is_err());
    }
}
