//! MST keys: their syntax, their height in the tree, and prefix compression.

use sha2::{Digest, Sha256};

use super::MstError;

/// The longest key the tree accepts, in bytes.
pub const MAX_KEY_LEN: usize = 1024;

/// Checks that a key is `collection/rkey`: one `/`, both sides non-empty, at most 1024 bytes,
/// only `A-Za-z0-9 _ ~ - : .` besides the slash.
pub fn validate_key(key: &str) -> Result<(), MstError> {
    let fail = |reason| {
        Err(MstError::InvalidKey {
            key: key.chars().take(80).collect(),
            reason,
        })
    };
    if key.len() > MAX_KEY_LEN {
        return fail("longer than 1024 bytes");
    }
    let Some((collection, rkey)) = key.split_once('/') else {
        return fail("must be collection/rkey");
    };
    if collection.is_empty() || rkey.is_empty() {
        return fail("collection and rkey must not be empty");
    }
    if rkey.contains('/') {
        return fail("must contain exactly one '/'");
    }
    let allowed =
        |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'~' | b'-' | b':' | b'.');
    if !collection.bytes().chain(rkey.bytes()).all(allowed) {
        return fail("contains a character outside A-Za-z0-9_~-:.");
    }
    Ok(())
}

/// The layer a key sits on: leading zero bits of SHA-256(key), counted in pairs (fanout 4).
pub fn key_height(key: &str) -> u32 {
    let digest = Sha256::digest(key.as_bytes());
    let mut zeros = 0;
    for byte in digest {
        if byte == 0 {
            zeros += 8;
            continue;
        }
        zeros += byte.leading_zeros();
        break;
    }
    zeros / 2
}

/// The length in bytes of the common prefix of two keys.
pub fn common_prefix_len(left: &str, right: &str) -> usize {
    left.bytes()
        .zip(right.bytes())
        .take_while(|(a, b)| a == b)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_must_be_collection_slash_rkey() {
        assert!(validate_key("zone.stratos.feed.post/3l2ij3k4k5s22").is_ok());
        for bad in ["", "nocollection", "/rkey", "col/", "a/b/c", "a/b c", "a/é"] {
            assert!(validate_key(bad).is_err(), "{bad:?}");
        }
        assert!(validate_key(&format!("a/{}", "b".repeat(1022))).is_ok());
        assert!(validate_key(&format!("a/{}", "b".repeat(1023))).is_err());
    }
}
