//! Language tags in the lexicon `language` format: BCP 47 (RFC 5646), e.g. `en`, `pt-BR`,
//! `zh-Hant`.
//!
//! The full RFC 5646 grammar is checked (language, extended language, script, region,
//! variants, extensions, private use, and the grandfathered tags), together with the two
//! validity rules that need no registry: no variant and no extension singleton may appear
//! twice. Subtags are not looked up in the IANA registry, so `qq-ZZ` passes.
//!
//! Two restrictions follow the atproto syntax (and its interop vectors) rather than the RFC:
//! the primary language subtag must be two or three lowercase letters (the RFC also allows
//! uppercase, and four- to eight-letter subtags no registry uses), and the first subtag must be
//! lowercase in general, the one exception being a private-use tag's `x`, which may be `X`.

use super::{SyntaxError, SyntaxKind};

/// The grandfathered tags of RFC 5646 §2.2.8, which do not follow the general grammar.
const GRANDFATHERED: &[&str] = &[
    "en-GB-oed",
    "i-ami",
    "i-bnn",
    "i-default",
    "i-enochian",
    "i-hak",
    "i-klingon",
    "i-lux",
    "i-mingo",
    "i-navajo",
    "i-pwn",
    "i-tao",
    "i-tay",
    "i-tsu",
    "sgn-BE-FR",
    "sgn-BE-NL",
    "sgn-CH-DE",
    "art-lojban",
    "cel-gaulish",
    "no-bok",
    "no-nyn",
    "zh-guoyu",
    "zh-hakka",
    "zh-min",
    "zh-min-nan",
    "zh-xiang",
];

/// A well-formed language tag, e.g. `en-GB` or `hy-Latn-IT-arevela`.
///
/// The text is kept as written; tags compare exactly, although BCP 47 itself is
/// case-insensitive.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Language(String);

impl Language {
    fn parse_owned(text: String) -> Result<Self, SyntaxError> {
        check(&text).map_err(|reason| SyntaxError::new(SyntaxKind::Language, &text, reason))?;
        Ok(Self(text))
    }

    /// The tag as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first subtag: the primary language (`"en"` for `en-GB`), `"x"` for a private-use
    /// tag, or `"i"` for the grandfathered `i-…` tags.
    pub fn primary_subtag(&self) -> &str {
        self.0.split('-').next().unwrap_or_default()
    }

    /// Unwraps the text.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl_syntax_string!(Language);

fn is_alpha(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphabetic())
}

fn is_digit(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit())
}

/// Where a subtag may sit in a `langtag`, in order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    Language,
    Extlang1,
    Extlang2,
    Extlang3,
    Script,
    Region,
    Variant,
}

fn check(text: &str) -> Result<(), &'static str> {
    if text.is_empty() {
        return Err("empty");
    }
    let subtags: Vec<&str> = text.split('-').collect();
    for subtag in &subtags {
        if subtag.is_empty() {
            return Err("empty subtag (leading, trailing or doubled '-')");
        }
        if subtag.len() > 8 {
            return Err("subtags are at most 8 characters");
        }
        if !subtag.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err("subtags may only contain ASCII letters and digits");
        }
    }
    let first = subtags[0];
    if first == "x" || first == "X" {
        return check_private_use(&subtags[1..]);
    }
    if !first.bytes().all(|b| b.is_ascii_lowercase()) {
        return Err("the primary language subtag must be lowercase letters");
    }
    if GRANDFATHERED.iter().any(|g| g.eq_ignore_ascii_case(text)) {
        return Ok(());
    }
    if !matches!(first.len(), 2 | 3) {
        return Err("the primary language subtag must be 2 or 3 letters");
    }
    check_langtag_rest(&subtags[1..])
}

/// Checks `1*("-" (1*8alphanum))` after an `x` singleton.
fn check_private_use(rest: &[&str]) -> Result<(), &'static str> {
    if rest.is_empty() {
        return Err("a private-use section needs at least one subtag after 'x'");
    }
    // Every subtag is already known to be 1-8 alphanumerics.
    Ok(())
}

/// Checks the subtags after a 2–3 letter primary language.
fn check_langtag_rest(subtags: &[&str]) -> Result<(), &'static str> {
    let mut stage = Stage::Language;
    let mut variants: Vec<&str> = Vec::new();
    let mut i = 0;
    while let Some(&subtag) = subtags.get(i) {
        let len = subtag.len();
        let next = if len == 3 && is_alpha(subtag) && stage < Stage::Extlang3 {
            match stage {
                Stage::Language => Stage::Extlang1,
                Stage::Extlang1 => Stage::Extlang2,
                _ => Stage::Extlang3,
            }
        } else if len == 4 && is_alpha(subtag) && stage < Stage::Script {
            Stage::Script
        } else if ((len == 2 && is_alpha(subtag)) || (len == 3 && is_digit(subtag)))
            && stage < Stage::Region
        {
            Stage::Region
        } else if (5..=8).contains(&len)
            || (len == 4 && subtag.starts_with(|c: char| c.is_ascii_digit()))
        {
            if variants.iter().any(|v| v.eq_ignore_ascii_case(subtag)) {
                return Err("a variant subtag appears twice");
            }
            variants.push(subtag);
            Stage::Variant
        } else if len == 1 {
            return check_extensions(&subtags[i..]);
        } else {
            return Err("subtag does not fit the BCP 47 grammar at its position");
        };
        stage = next;
        i += 1;
    }
    Ok(())
}

/// Checks `*("-" extension) ["-" privateuse]`, starting at a singleton.
fn check_extensions(subtags: &[&str]) -> Result<(), &'static str> {
    let mut singletons: Vec<u8> = Vec::new();
    let mut i = 0;
    while let Some(&singleton) = subtags.get(i) {
        if singleton.len() != 1 {
            return Err("expected an extension singleton");
        }
        let letter = singleton.as_bytes()[0].to_ascii_lowercase();
        if letter == b'x' {
            return check_private_use(&subtags[i + 1..]);
        }
        if singletons.contains(&letter) {
            return Err("an extension singleton appears twice");
        }
        singletons.push(letter);
        i += 1;
        let start = i;
        while subtags.get(i).is_some_and(|s| s.len() >= 2) {
            i += 1;
        }
        if i == start {
            return Err("an extension needs at least one subtag of 2-8 characters");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(tag: &str) -> bool {
        tag.parse::<Language>().is_ok()
    }

    #[test]
    fn grammar_positions() {
        assert!(ok("zh-yue-HK"));
        assert!(ok("zh-cmn-Hans-CN"));
        assert!(ok("ar-aao-abc-def"));
        assert!(!ok("ar-aao-abc-def-ghi"));
        assert!(!ok("en-Latn-Latn"));
        assert!(!ok("en-US-GB"));
        assert!(ok("de-CH-1996"));
        assert!(ok("en-a-bbb-x-a-ccc"));
        assert!(!ok("en-a"));
        assert!(!ok("en-x"));
        assert!(!ok("en-US-a-x-foo"));
        assert!(!ok("en-123456789"));
        assert!(!ok("de-419-DE"));
    }

    #[test]
    fn primary_subtag() {
        let tag: Language = "hy-Latn-IT-arevela".parse().unwrap();
        assert_eq!(tag.primary_subtag(), "hy");
    }
}
