//! The lexicon `cid` format: the syntax of a CID string, without decoding it.
//!
//! Lexicons only constrain how a CID string looks; [`crate::data::parse_cid`] decodes one and
//! checks that it is a CID repositories use.

/// The shortest CID string the format accepts.
const MIN_CID_LEN: usize = 8;
/// The longest CID string the format accepts.
const MAX_CID_LEN: usize = 256;

/// Whether `text` has the syntax of a lexicon `cid` string: 8–256 ASCII letters, digits, `+`
/// and `=` (which covers the multibase encodings CIDv1 strings use, base32 `b…` first among
/// them), and not a legacy CIDv0 (a bare base58 multihash, `Qm…`).
///
/// This does not decode the string: a string that passes may still not be a CID.
///
/// ```
/// use stratos_schema::syntax::is_valid_cid_string;
/// assert!(is_valid_cid_string("bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm"));
/// assert!(!is_valid_cid_string("QmbWqxBEKC3P8tqsKc98xmWNzrzDtRLMiMPL8wBuTGsMnR"));
/// ```
pub fn is_valid_cid_string(text: &str) -> bool {
    (MIN_CID_LEN..=MAX_CID_LEN).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'=')
        && !text.starts_with("Qm")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths() {
        assert!(!is_valid_cid_string("bafy"));
        assert!(is_valid_cid_string(&format!("b{}", "a".repeat(255))));
        assert!(!is_valid_cid_string(&format!("b{}", "a".repeat(256))));
    }
}
