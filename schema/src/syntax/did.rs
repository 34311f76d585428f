//! Decentralized identifiers (`did:method:identifier`), with the syntax atproto accepts.
//!
//! This is syntax only: any method name is accepted, not just `plc` and `web`, and nothing is
//! resolved. DID URLs (with a path, query or fragment) are not DIDs and are refused.

use super::{SyntaxError, SyntaxKind};

/// The longest DID atproto accepts, in bytes (2 KiB).
pub const MAX_DID_LEN: usize = 2048;

/// A syntactically valid DID, e.g. `did:plc:7iza6de2dwap2sbkpav7c6c6`.
///
/// The syntax is `did:` then a method of lowercase letters, `:`, and an identifier of ASCII
/// letters, digits and `._:%-`, which does not end in `:` or `%` and whose `%` are always
/// followed by two hex digits. At most [`MAX_DID_LEN`] bytes. DIDs are case-sensitive and
/// compare exactly.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Did(String);

impl Did {
    fn parse_owned(text: String) -> Result<Self, SyntaxError> {
        check(&text).map_err(|reason| SyntaxError::new(SyntaxKind::Did, &text, reason))?;
        Ok(Self(text))
    }

    /// The DID as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The method, e.g. `"plc"` for `did:plc:…`.
    pub fn method(&self) -> &str {
        self.split().0
    }

    /// The method-specific identifier, everything after the second `:`.
    pub fn identifier(&self) -> &str {
        self.split().1
    }

    /// Unwraps the text.
    pub fn into_string(self) -> String {
        self.0
    }

    fn split(&self) -> (&str, &str) {
        let rest = self.0.get(4..).unwrap_or_default();
        rest.split_once(':').unwrap_or((rest, ""))
    }
}

impl_syntax_string!(Did);

fn check(text: &str) -> Result<(), &'static str> {
    if text.len() > MAX_DID_LEN {
        return Err("longer than 2048 bytes");
    }
    let Some(rest) = text.strip_prefix("did:") else {
        return Err("must start with lowercase \"did:\"");
    };
    let Some((method, identifier)) = rest.split_once(':') else {
        return Err("must be did:<method>:<identifier>");
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_lowercase()) {
        return Err("method must be one or more lowercase ASCII letters");
    }
    if identifier.is_empty() {
        return Err("method-specific identifier is empty");
    }
    let bytes = identifier.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'_' | b':' | b'-' => {}
            b'%' => {
                let hex = |j: usize| bytes.get(j).is_some_and(u8::is_ascii_hexdigit);
                if !(hex(i + 1) && hex(i + 2)) {
                    return Err("'%' must be followed by two hex digits");
                }
            }
            _ => return Err("identifier may only contain ASCII letters, digits and ._:%-"),
        }
    }
    if identifier.ends_with(':') {
        return Err("must not end with ':'");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_and_identifier() {
        let did: Did = "did:web:localhost%3A1234".parse().unwrap();
        assert_eq!(did.method(), "web");
        assert_eq!(did.identifier(), "localhost%3A1234");
        let did: Did = "did:method:val:two".parse().unwrap();
        assert_eq!(did.method(), "method");
        assert_eq!(did.identifier(), "val:two");
    }

    #[test]
    fn percent_needs_two_hex_digits() {
        assert!("did:method:a%2Fb".parse::<Did>().is_ok());
        assert!("did:method:a%2".parse::<Did>().is_err());
        assert!("did:method:a%zzb".parse::<Did>().is_err());
    }

    #[test]
    fn length_limit() {
        let ok = format!("did:plc:{}", "a".repeat(MAX_DID_LEN - 8));
        assert!(ok.parse::<Did>().is_ok());
        let too_long = format!("{ok}a");
        let err = too_long.parse::<Did>().unwrap_err();
        assert_eq!(err.kind(), SyntaxKind::Did);
    }
}
