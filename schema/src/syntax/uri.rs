//! The lexicon `uri` format: any URI with a scheme, as RFC 3986 shapes it, up to 8 KiB.
//!
//! This is a deliberately loose check, as the spec asks: a scheme, a `:`, and something after
//! it, with no whitespace. It does not validate scheme-specific syntax (an `https` URI with a
//! bad host passes) and it does not know which schemes exist.

/// The longest URI the lexicon `uri` format accepts, in bytes (8 KiB).
pub const MAX_URI_LEN: usize = 8 * 1024;

/// Whether `text` is a valid lexicon `uri`: at most [`MAX_URI_LEN`] bytes, a scheme (an ASCII
/// letter, then letters, digits, `+`, `-` or `.`), a `:`, then a non-empty remainder with no
/// whitespace or control characters. When the remainder starts with `//` (an authority), it
/// must not be only that: `http://` alone is refused.
///
/// ```
/// use stratos_schema::syntax::is_valid_uri;
/// assert!(is_valid_uri("https://example.com/path?q=1#frag"));
/// assert!(is_valid_uri("did:plc:7iza6de2dwap2sbkpav7c6c6"));
/// assert!(!is_valid_uri("example.com"));
/// ```
pub fn is_valid_uri(text: &str) -> bool {
    if text.len() > MAX_URI_LEN {
        return false;
    }
    let Some((scheme, rest)) = text.split_once(':') else {
        return false;
    };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if !scheme_ok {
        return false;
    }
    let after_authority_marker = rest.strip_prefix("//").unwrap_or(rest);
    !after_authority_marker.is_empty() && !rest.chars().any(|c| c.is_whitespace() || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes() {
        assert!(is_valid_uri("microsoft.windows.camera:thing"));
        assert!(is_valid_uri("go://?Mercedes%20Benz"));
        assert!(is_valid_uri("file:///etc/hosts"));
        assert!(!is_valid_uri("http:"));
        assert!(!is_valid_uri("http://"));
        assert!(!is_valid_uri("1http://example.com"));
        assert!(!is_valid_uri("https://example.com/a\tb"));
    }
}
