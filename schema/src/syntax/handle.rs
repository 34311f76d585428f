//! Handles: DNS names that act as human-readable account names, e.g. `alice.bsky.social`.
//!
//! This is syntax only. Reserved top-level domains (`.local`, `.onion`, `.invalid`, …) are
//! syntactically valid handles; refusing them for registration is policy, not syntax, and
//! nothing here resolves a handle to a DID.

use super::{SyntaxError, SyntaxKind, is_domain_label};

/// The longest handle, in characters (the DNS limit).
pub const MAX_HANDLE_LEN: usize = 253;

/// A syntactically valid handle, normalized to lowercase.
///
/// The syntax is two or more DNS labels joined by `.`: each 1–63 ASCII letters, digits and
/// hyphens, not starting or ending with a hyphen, and the last (the top-level domain) starting
/// with a letter. At most [`MAX_HANDLE_LEN`] characters. Non-ASCII names must be given in
/// punycode (`xn--…`).
///
/// Handles are case-insensitive: parsing lowercases them, so `Alice.Test` and `alice.test` are
/// equal and [`as_str`](Self::as_str) returns `alice.test`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Handle(String);

impl Handle {
    fn parse_owned(mut text: String) -> Result<Self, SyntaxError> {
        check(&text).map_err(|reason| SyntaxError::new(SyntaxKind::Handle, &text, reason))?;
        text.make_ascii_lowercase();
        Ok(Self(text))
    }

    /// The handle as text, in lowercase.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The top-level domain, e.g. `"social"` for `alice.bsky.social`.
    pub fn tld(&self) -> &str {
        self.0.rsplit('.').next().unwrap_or_default()
    }

    /// Unwraps the (lowercase) text.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl_syntax_string!(Handle);

pub(super) fn check(text: &str) -> Result<(), &'static str> {
    if text.len() > MAX_HANDLE_LEN {
        return Err("longer than 253 characters");
    }
    if !text.is_ascii() {
        return Err("must be ASCII (use punycode for international names)");
    }
    let mut labels = text.split('.').peekable();
    let mut count = 0usize;
    while let Some(label) = labels.next() {
        count += 1;
        if !is_domain_label(label) {
            return Err(
                "each label must be 1-63 letters, digits or hyphens, not starting or ending with '-'",
            );
        }
        if labels.peek().is_none() && !label.starts_with(|c: char| c.is_ascii_alphabetic()) {
            return Err("the top-level domain must start with a letter");
        }
    }
    if count < 2 {
        return Err("must have at least two labels (name.tld)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_to_lowercase() {
        let handle: Handle = "XX.LCS.MIT.EDU".parse().unwrap();
        assert_eq!(handle.as_str(), "xx.lcs.mit.edu");
        assert_eq!(handle, "xx.lcs.mit.edu".parse::<Handle>().unwrap());
        assert_eq!(handle.tld(), "edu");
        assert_eq!(handle.to_string(), "xx.lcs.mit.edu");
    }

    #[test]
    fn top_level_domain_must_start_with_a_letter() {
        assert!("thing.a01".parse::<Handle>().is_ok());
        assert!("thing.0aa".parse::<Handle>().is_err());
    }
}
