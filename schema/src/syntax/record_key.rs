//! Record keys (rkeys): the name of a record within its collection, the last segment of its
//! AT-URI.
//!
//! This is the generic record-key syntax. Which key *type* a collection uses (`tid`, `nsid`,
//! `literal:self`, `any`) is a lexicon rule, checked by [`crate::lexicon`], not here.

use super::{SyntaxError, SyntaxKind};

/// The longest record key, in characters.
pub const MAX_RECORD_KEY_LEN: usize = 512;

/// A syntactically valid record key, e.g. `3jzfcijpj2z2a` or `self`.
///
/// The syntax is 1–[`MAX_RECORD_KEY_LEN`] ASCII letters, digits and `._:~-`, except that `.`
/// and `..` are not record keys. Record keys are case-sensitive and compare exactly.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordKey(String);

impl RecordKey {
    fn parse_owned(text: String) -> Result<Self, SyntaxError> {
        check(&text).map_err(|reason| SyntaxError::new(SyntaxKind::RecordKey, &text, reason))?;
        Ok(Self(text))
    }

    /// The record key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Unwraps the text.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl_syntax_string!(RecordKey);

impl From<super::Tid> for RecordKey {
    /// Every TID is a valid record key (the `tid` key type).
    fn from(tid: super::Tid) -> Self {
        Self(tid.as_str().to_owned())
    }
}

fn check(text: &str) -> Result<(), &'static str> {
    if text.is_empty() {
        return Err("empty");
    }
    if text.len() > MAX_RECORD_KEY_LEN {
        return Err("longer than 512 characters");
    }
    if text == "." || text == ".." {
        return Err("\".\" and \"..\" are not record keys");
    }
    let allowed =
        |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'~' | b'-');
    if !text.bytes().all(allowed) {
        return Err("may only contain ASCII letters, digits and ._:~-");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dots_alone_are_refused() {
        assert!(".".parse::<RecordKey>().is_err());
        assert!("..".parse::<RecordKey>().is_err());
        assert!("...".parse::<RecordKey>().is_ok());
    }

    #[test]
    fn tid_converts() {
        let tid: super::super::Tid = "3jzfcijpj2z2a".parse().unwrap();
        let rkey = RecordKey::from(tid);
        assert_eq!(rkey.as_str(), "3jzfcijpj2z2a");
    }
}
