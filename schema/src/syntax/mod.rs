//! The atproto string syntaxes: DIDs, handles, NSIDs, AT-URIs, TIDs, record keys, datetimes,
//! language tags, and the lexicon `uri` and `cid` string formats.
//!
//! Each type is a validated newtype around its string: once you hold a [`Did`] it is a
//! syntactically valid DID. All of them parse with [`FromStr`](std::str::FromStr) or `TryFrom`
//! (`&str` or `String`), print with [`Display`](std::fmt::Display), expose `as_str()`, and
//! (de)serialize with serde as a plain string that is validated when deserialized. Every
//! refusal is a [`SyntaxError`] naming the kind, the value and the reason.
//!
//! This module checks syntax only, as the atproto specs define it (and as the interop test
//! vectors pin it down). It does not resolve anything: a valid [`Handle`] may point nowhere, a
//! valid [`Did`] may use a method nobody supports, and a string that passes
//! [`is_valid_cid_string`] may not decode (see [`crate::data::parse_cid`] for that).

/// Implements the string plumbing every syntax type shares: `FromStr`, `TryFrom<&str>`,
/// `TryFrom<String>`, `Display`, `AsRef<str>`, and serde as a validated plain string.
///
/// The type must have `fn parse_owned(String) -> Result<Self, SyntaxError>` and
/// `fn as_str(&self) -> &str`.
macro_rules! impl_syntax_string {
    ($ty:ident) => {
        impl ::std::str::FromStr for $ty {
            type Err = $crate::syntax::SyntaxError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse_owned(s.to_owned())
            }
        }

        impl TryFrom<&str> for $ty {
            type Error = $crate::syntax::SyntaxError;

            fn try_from(s: &str) -> Result<Self, Self::Error> {
                Self::parse_owned(s.to_owned())
            }
        }

        impl TryFrom<String> for $ty {
            type Error = $crate::syntax::SyntaxError;

            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse_owned(s)
            }
        }

        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }

        impl ::serde::Serialize for $ty {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $ty {
            fn deserialize<D: ::serde::Deserializer<'de>>(
                deserializer: D,
            ) -> Result<Self, D::Error> {
                let text = <String as ::serde::Deserialize>::deserialize(deserializer)?;
                Self::parse_owned(text).map_err(<D::Error as ::serde::de::Error>::custom)
            }
        }
    };
}

mod at_identifier;
mod at_uri;
mod cid;
mod datetime;
mod did;
mod error;
mod handle;
mod language;
mod nsid;
mod record_key;
mod tid;
mod uri;

pub use self::at_identifier::AtIdentifier;
pub use self::at_uri::{AtUri, MAX_AT_URI_LEN};
pub use self::cid::is_valid_cid_string;
pub use self::datetime::Datetime;
pub use self::did::{Did, MAX_DID_LEN};
pub use self::error::{SyntaxError, SyntaxKind};
pub use self::handle::{Handle, MAX_HANDLE_LEN};
pub use self::language::Language;
pub use self::nsid::{MAX_NSID_LEN, Nsid};
pub use self::record_key::{MAX_RECORD_KEY_LEN, RecordKey};
pub use self::tid::{TID_LEN, Tid};
pub use self::uri::{MAX_URI_LEN, is_valid_uri};

/// Whether `label` is a DNS label as handles and NSID authorities use it: 1–63 ASCII letters,
/// digits and hyphens, not starting or ending with a hyphen.
fn is_domain_label(label: &str) -> bool {
    let bytes = label.as_bytes();
    matches!(bytes.len(), 1..=63)
        && bytes
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'-')
        && bytes.first() != Some(&b'-')
        && bytes.last() != Some(&b'-')
}
