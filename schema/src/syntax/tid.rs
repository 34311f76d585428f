//! Timestamp identifiers (TIDs): 64-bit integers in a sortable base32, used as record keys and
//! repository revisions.
//!
//! A TID is a microsecond timestamp and a clock identifier packed into one integer: the top bit
//! is zero, the next 53 bits are microseconds since the UNIX epoch, and the last 10 bits are the
//! clock identifier. Handing out increasing TIDs is [`crate::tid_clock`]'s job, not this
//! module's.

use super::{SyntaxError, SyntaxKind};

/// The length of every TID, in characters.
pub const TID_LEN: usize = 13;

/// The base32-sortable alphabet: digit `n` is the `n`th character, and the characters are in
/// ASCII order, so TIDs sort as strings the way they sort as integers.
const ALPHABET: &[u8; 32] = b"234567abcdefghijklmnopqrstuvwxyz";

/// Bits of the timestamp field.
const TIMESTAMP_BITS: u32 = 53;
/// Bits of the clock-identifier field.
const CLOCK_ID_BITS: u32 = 10;
/// Mask of the timestamp field, before shifting.
const TIMESTAMP_MASK: u64 = (1 << TIMESTAMP_BITS) - 1;
/// Mask of the clock-identifier field.
const CLOCK_ID_MASK: u64 = (1 << CLOCK_ID_BITS) - 1;

/// A syntactically valid TID, e.g. `3jzfcijpj2z2a`.
///
/// The syntax is exactly [`TID_LEN`] characters of the alphabet
/// `234567abcdefghijklmnopqrstuvwxyz`, the first being one of `234567abcdefghij` (so that the
/// value fits in 64 bits). TIDs are case-sensitive.
///
/// TIDs order the way their strings do, which is also the order of their integer values, and
/// so, for TIDs from well-behaved clocks, the order in which they were issued.
///
/// The specs say the top bit is always zero, but their syntax (and the interop vectors) accept
/// first characters `c`–`j`, which set it; such TIDs parse, and [`timestamp_micros`]
/// ignores that bit. TIDs built here ([`from_parts`]) always have it clear.
///
/// [`timestamp_micros`]: Self::timestamp_micros
/// [`from_parts`]: Self::from_parts
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tid(String);

impl Tid {
    fn parse_owned(text: String) -> Result<Self, SyntaxError> {
        check(&text).map_err(|reason| SyntaxError::new(SyntaxKind::Tid, &text, reason))?;
        Ok(Self(text))
    }

    /// Builds the TID for a timestamp (microseconds since the UNIX epoch) and a clock
    /// identifier.
    ///
    /// Only the low 53 bits of `micros` (enough until the year 2255) and the low 10 bits of
    /// `clock_id` (0–1023) fit; higher bits are dropped.
    pub fn from_parts(micros: u64, clock_id: u16) -> Self {
        let value =
            ((micros & TIMESTAMP_MASK) << CLOCK_ID_BITS) | (u64::from(clock_id) & CLOCK_ID_MASK);
        Self::from_integer(value)
    }

    /// Builds the TID whose integer value is `value`, or `None` when its top bit is set.
    pub fn from_u64(value: u64) -> Option<Self> {
        (value >> 63 == 0).then(|| Self::from_integer(value))
    }

    /// Builds the TID for any 64-bit value, top bit included (every one is valid syntax).
    pub(crate) fn from_integer(value: u64) -> Self {
        let mut text = String::with_capacity(TID_LEN);
        for i in (0..TID_LEN).rev() {
            let digit = (value >> (5 * i)) & 0x1f;
            text.push(char::from(ALPHABET[digit as usize]));
        }
        Self(text)
    }

    /// The TID as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The TID as the 64-bit integer it encodes.
    pub fn as_u64(&self) -> u64 {
        self.0.bytes().fold(0u64, |acc, c| {
            (acc << 5) | u64::from(digit_value(c).unwrap_or(0))
        })
    }

    /// The timestamp field: microseconds since the UNIX epoch, 53 bits.
    pub fn timestamp_micros(&self) -> u64 {
        (self.as_u64() >> CLOCK_ID_BITS) & TIMESTAMP_MASK
    }

    /// The clock-identifier field, 0–1023.
    pub fn clock_id(&self) -> u16 {
        // The mask keeps 10 bits, so the cast cannot truncate.
        (self.as_u64() & CLOCK_ID_MASK) as u16
    }

    /// Unwraps the text.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl_syntax_string!(Tid);

/// The value of one base32-sortable digit.
fn digit_value(c: u8) -> Option<u8> {
    match c {
        b'2'..=b'7' => Some(c - b'2'),
        b'a'..=b'z' => Some(c - b'a' + 6),
        _ => None,
    }
}

fn check(text: &str) -> Result<(), &'static str> {
    if text.len() != TID_LEN {
        return Err("must be exactly 13 characters");
    }
    if !text.bytes().all(|c| digit_value(c).is_some()) {
        return Err("may only contain 234567abcdefghijklmnopqrstuvwxyz");
    }
    // The first digit carries the top 4 bits of 64 (13 digits hold 65 bits): values 0-15.
    if text.bytes().next().and_then(digit_value).unwrap_or(0) > 15 {
        return Err("first character must be one of 234567abcdefghij (the value exceeds 64 bits)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_round_trip() {
        let tid = Tid::from_parts(1_700_000_000_123_456, 42);
        assert_eq!(tid.timestamp_micros(), 1_700_000_000_123_456);
        assert_eq!(tid.clock_id(), 42);
        assert_eq!(tid.as_str().len(), TID_LEN);
        let again: Tid = tid.as_str().parse().unwrap();
        assert_eq!(again, tid);
    }

    #[test]
    fn extreme_values() {
        assert_eq!(Tid::from_parts(0, 0).as_str(), "2222222222222");
        let max = Tid::from_parts(u64::MAX, u16::MAX);
        assert_eq!(max.as_str(), "bzzzzzzzzzzzz");
        assert_eq!(max.as_u64(), i64::MAX as u64);
        assert!(Tid::from_u64(1 << 63).is_none());
        let high: Tid = "jzzzzzzzzzzzz".parse().unwrap();
        assert_eq!(high.as_u64(), u64::MAX);
        assert_eq!(high.timestamp_micros(), TIMESTAMP_MASK);
    }

    #[test]
    fn known_value() {
        // 3jzfcijpj2z2a decodes digit by digit; check a hand-computed field split.
        let tid: Tid = "3jzfcijpj2z2a".parse().unwrap();
        let value = tid.as_u64();
        assert_eq!(Tid::from_u64(value).unwrap(), tid);
        assert_eq!(tid.timestamp_micros(), value >> 10);
        assert_eq!(u64::from(tid.clock_id()), value & 0x3ff);
    }
}
