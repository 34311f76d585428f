//! Datetimes in the lexicon `datetime` format: the intersection of RFC 3339 and ISO 8601, with
//! a mandatory timezone, e.g. `1985-04-12T23:20:50.123Z`.
//!
//! Besides the syntax, the date and time must exist (no month 13, no April 31st, no second 60)
//! and the instant must not fall before the year 0 once normalized to UTC. This module does
//! not reformat what it parses: the text is kept as written.

use std::time::{SystemTime, UNIX_EPOCH};

use super::{SyntaxError, SyntaxKind};

/// The longest datetime accepted, in characters.
const MAX_DATETIME_LEN: usize = 64;

const MICROS_PER_SECOND: i64 = 1_000_000;
const MICROS_PER_DAY: i64 = 86_400 * MICROS_PER_SECOND;

/// A valid lexicon datetime.
///
/// The syntax is `YYYY-MM-DDTHH:MM:SS`, optionally `.` and one or more digits of fractional
/// seconds, then `Z` or a `+HH:MM`/`-HH:MM` offset (`-00:00` is refused: ISO 8601 does not
/// have it). Capital `T` and `Z` only, no spaces, four-digit years, at most 64 characters.
///
/// Values keep their text and compare by it: two spellings of the same instant are different
/// values, and ordering is lexical. Compare instants with
/// [`timestamp_micros`](Self::timestamp_micros).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Datetime {
    text: String,
    micros: i64,
}

impl Datetime {
    fn parse_owned(text: String) -> Result<Self, SyntaxError> {
        let micros =
            parse(&text).map_err(|reason| SyntaxError::new(SyntaxKind::Datetime, &text, reason))?;
        Ok(Self { text, micros })
    }

    /// The datetime for an instant, in microseconds since the UNIX epoch, written in UTC with
    /// six fractional digits (`1985-04-12T23:20:50.123000Z`). `None` outside the years
    /// 0000–9999.
    pub fn from_timestamp_micros(micros: i64) -> Option<Self> {
        let days = micros.div_euclid(MICROS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        if !(0..=9999).contains(&year) {
            return None;
        }
        let of_day = micros.rem_euclid(MICROS_PER_DAY);
        let seconds = of_day / MICROS_PER_SECOND;
        let text = format!(
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
            seconds / 3600,
            seconds / 60 % 60,
            seconds % 60,
            of_day % MICROS_PER_SECOND,
        );
        Some(Self { text, micros })
    }

    /// The current time from the system clock, in UTC with microsecond precision.
    pub fn now() -> Self {
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| {
                i64::try_from(elapsed.as_micros()).unwrap_or(i64::MAX)
            });
        // The system clock is between 1970 and 9999 in any realistic setting; clamp anyway.
        let max = days_from_civil(10_000, 1, 1) * MICROS_PER_DAY - 1;
        Self::from_timestamp_micros(micros.min(max)).unwrap_or_else(|| Self {
            text: "1970-01-01T00:00:00.000000Z".to_owned(),
            micros: 0,
        })
    }

    /// The datetime as text, exactly as parsed.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The instant, in microseconds since the UNIX epoch (negative before 1970). Fractional
    /// seconds beyond microseconds are truncated.
    pub fn timestamp_micros(&self) -> i64 {
        self.micros
    }

    /// Unwraps the text.
    pub fn into_string(self) -> String {
        self.text
    }
}

impl_syntax_string!(Datetime);

/// Days from 1970-01-01 to the given proleptic Gregorian date (negative before it).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    // Count years from March, so that the leap day is the last day of the counted year.
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The proleptic Gregorian date `days` after 1970-01-01: the inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    // Both are small and non-negative by construction.
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn is_leap_year(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// A cursor over the ASCII bytes of a datetime.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    /// Exactly `n` digits, as a number.
    fn digits(&mut self, n: usize, what: &'static str) -> Result<u32, &'static str> {
        let mut value = 0u32;
        for _ in 0..n {
            match self.bytes.get(self.pos) {
                Some(&b) if b.is_ascii_digit() => value = value * 10 + u32::from(b - b'0'),
                _ => return Err(what),
            }
            self.pos += 1;
        }
        Ok(value)
    }

    fn literal(&mut self, expected: u8, what: &'static str) -> Result<(), &'static str> {
        if self.bytes.get(self.pos) == Some(&expected) {
            self.pos += 1;
            Ok(())
        } else {
            Err(what)
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }
}

/// Checks a datetime and returns its instant in microseconds since the UNIX epoch.
fn parse(text: &str) -> Result<i64, &'static str> {
    if text.len() > MAX_DATETIME_LEN {
        return Err("longer than 64 characters");
    }
    let mut c = Cursor {
        bytes: text.as_bytes(),
        pos: 0,
    };
    let year = c.digits(4, "must start with a four-digit year")?;
    c.literal(b'-', "expected '-' after the year")?;
    let month = c.digits(2, "month must be two digits")?;
    c.literal(b'-', "expected '-' after the month")?;
    let day = c.digits(2, "day must be two digits")?;
    c.literal(b'T', "expected a capital 'T' between date and time")?;
    let hour = c.digits(2, "hour must be two digits")?;
    c.literal(b':', "expected ':' after the hour")?;
    let minute = c.digits(2, "minute must be two digits")?;
    c.literal(b':', "expected ':' after the minute (seconds are required)")?;
    let second = c.digits(2, "second must be two digits")?;

    let mut micros_of_second = 0u32;
    if c.peek() == Some(b'.') {
        c.pos += 1;
        let start = c.pos;
        while c.peek().is_some_and(|b| b.is_ascii_digit()) {
            let place = c.pos - start;
            if place < 6 {
                micros_of_second += u32::from(c.bytes[c.pos] - b'0') * 10u32.pow(5 - place as u32);
            }
            c.pos += 1;
        }
        if c.pos == start {
            return Err("fractional seconds need at least one digit");
        }
    }

    let offset_minutes: i64 = match c.peek() {
        Some(b'Z') => {
            c.pos += 1;
            0
        }
        Some(sign @ (b'+' | b'-')) => {
            c.pos += 1;
            let hours = c.digits(2, "offset must be +HH:MM or -HH:MM")?;
            c.literal(b':', "offset must be +HH:MM or -HH:MM")?;
            let minutes = c.digits(2, "offset must be +HH:MM or -HH:MM")?;
            if hours > 23 || minutes > 59 {
                return Err("offset out of range");
            }
            if sign == b'-' && hours == 0 && minutes == 0 {
                return Err("\"-00:00\" is not an ISO 8601 offset; use Z or +00:00");
            }
            let total = i64::from(hours * 60 + minutes);
            if sign == b'-' { -total } else { total }
        }
        _ => return Err("a timezone (capital 'Z' or an offset) is required"),
    };
    if c.pos != c.bytes.len() {
        return Err("unexpected characters after the timezone");
    }

    if !(1..=12).contains(&month) {
        return Err("month out of range");
    }
    let year = i64::from(year);
    if day == 0 || day > days_in_month(year, month) {
        return Err("day out of range for the month");
    }
    if hour > 23 {
        return Err("hour out of range");
    }
    if minute > 59 {
        return Err("minute out of range");
    }
    if second > 59 {
        return Err("second out of range");
    }

    let seconds_of_day = i64::from(hour * 3600 + minute * 60 + second) - offset_minutes * 60;
    let micros = days_from_civil(year, month, day) * MICROS_PER_DAY
        + seconds_of_day * MICROS_PER_SECOND
        + i64::from(micros_of_second);
    if micros < days_from_civil(0, 1, 1) * MICROS_PER_DAY {
        return Err("falls before the year 0 once normalized to UTC");
    }
    Ok(micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_conversions_agree() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        for days in [-719_528, -1, 0, 1, 59, 60, 11_016, 11_017, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
    }

    #[test]
    fn instants() {
        let dt: Datetime = "1985-04-12T23:20:50.123Z".parse().unwrap();
        assert_eq!(dt.timestamp_micros(), 482_196_050_123_000);
        let offset: Datetime = "1985-04-12T16:20:50.123-07:00".parse().unwrap();
        assert_eq!(offset.timestamp_micros(), dt.timestamp_micros());
        assert_ne!(offset, dt);
        let precise: Datetime = "1985-04-12T23:20:50.1234569Z".parse().unwrap();
        assert_eq!(precise.timestamp_micros(), 482_196_050_123_456);
        let zero: Datetime = "0000-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(zero.timestamp_micros(), -62_167_219_200 * MICROS_PER_SECOND);
    }

    #[test]
    fn leap_days() {
        assert!("2000-02-29T00:00:00Z".parse::<Datetime>().is_ok());
        assert!("2024-02-29T00:00:00Z".parse::<Datetime>().is_ok());
        assert!("1900-02-29T00:00:00Z".parse::<Datetime>().is_err());
        assert!("2023-02-29T00:00:00Z".parse::<Datetime>().is_err());
        assert!("2023-04-31T00:00:00Z".parse::<Datetime>().is_err());
    }

    #[test]
    fn formatting_round_trips() {
        let dt = Datetime::from_timestamp_micros(482_196_050_123_456).unwrap();
        assert_eq!(dt.as_str(), "1985-04-12T23:20:50.123456Z");
        assert_eq!(dt.as_str().parse::<Datetime>().unwrap(), dt);
        let before_epoch = Datetime::from_timestamp_micros(-1).unwrap();
        assert_eq!(before_epoch.as_str(), "1969-12-31T23:59:59.999999Z");
        assert!(Datetime::from_timestamp_micros(i64::MIN).is_none());
        assert!(Datetime::from_timestamp_micros(i64::MAX).is_none());
        let now = Datetime::now();
        assert_eq!(now.as_str().parse::<Datetime>().unwrap(), now);
    }
}
