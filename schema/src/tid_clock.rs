//! A clock that hands out strictly increasing TIDs, for record keys and repository revisions.
//!
//! Wall clocks step back (NTP corrections, VM migrations) and two calls can land in the same
//! microsecond; a repository's revisions must still strictly increase. [`TidClock`] keeps the
//! last TID it issued and never issues one that is not greater, and it also takes the
//! repository's current revision, so that a revision written by an earlier process (or an
//! earlier clock) is respected too.
//!
//! This module only reads the time; it does not store anything. One clock can serve any number
//! of repositories: it issues TIDs increasing across all of them, which is stronger than
//! per-repository monotonicity.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::syntax::Tid;

/// Bits of the clock-identifier field of a TID.
const CLOCK_ID_BITS: u32 = 10;
/// Mask of the clock-identifier field of a TID.
const CLOCK_ID_MASK: u64 = (1 << CLOCK_ID_BITS) - 1;
/// The largest TID value with the top bit clear, the largest a clock may issue.
const MAX_TID_VALUE: u64 = i64::MAX as u64;

/// The clock ran out of TIDs: nothing with the top bit clear is greater than what it must
/// exceed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no TID with clock id {clock_id} is greater than {floor}")]
pub struct TidClockExhausted {
    /// The TID that every new one had to exceed.
    pub floor: Tid,
    /// The clock's identifier.
    pub clock_id: u16,
}

/// A source of strictly increasing TIDs.
///
/// Every TID it returns is greater than every TID it returned before (from any thread) and
/// greater than the `previous` TID passed in. When the wall clock allows, the TID carries the
/// current time in microseconds; otherwise it is the smallest TID above those bounds that
/// carries this clock's identifier. Either way the low 10 bits are the clock identifier.
pub struct TidClock {
    clock_id: u16,
    /// The integer value of the last TID issued; 0 before the first.
    last: AtomicU64,
    now_micros: Box<dyn Fn() -> u64 + Send + Sync>,
}

impl TidClock {
    /// A clock reading the system time, with the given clock identifier (only its low 10 bits
    /// are used).
    pub fn new(clock_id: u16) -> Self {
        Self::with_time_source(clock_id, system_micros)
    }

    /// A clock reading the system time, with a random clock identifier.
    pub fn with_random_clock_id() -> Self {
        Self::new(rand::random::<u16>())
    }

    /// A clock reading the time from `now_micros` (microseconds since the UNIX epoch), with
    /// the given clock identifier (only its low 10 bits are used). For tests and replays.
    pub fn with_time_source(
        clock_id: u16,
        now_micros: impl Fn() -> u64 + Send + Sync + 'static,
    ) -> Self {
        Self {
            // The mask keeps 10 bits, so the cast cannot truncate.
            clock_id: (u64::from(clock_id) & CLOCK_ID_MASK) as u16,
            last: AtomicU64::new(0),
            now_micros: Box::new(now_micros),
        }
    }

    /// The clock identifier every TID from this clock carries, 0–1023.
    pub fn clock_id(&self) -> u16 {
        self.clock_id
    }

    /// The next TID: greater than `previous` (the repository's current revision, if any) and
    /// than everything this clock has issued.
    ///
    /// # Panics
    ///
    /// When no such TID exists, which takes a `previous` (or a time source) at the very top of
    /// the TID range, around the year 2255; see [`try_next`](Self::try_next) to handle that.
    pub fn next(&self, previous: Option<&Tid>) -> Tid {
        match self.try_next(previous) {
            Ok(tid) => tid,
            Err(exhausted) => panic!("{exhausted}"),
        }
    }

    /// The next TID, as [`next`](Self::next), or an error when the TID range is exhausted
    /// above `previous` or above what this clock already issued.
    pub fn try_next(&self, previous: Option<&Tid>) -> Result<Tid, TidClockExhausted> {
        let now = Tid::from_parts((self.now_micros)(), self.clock_id).as_u64();
        let previous = previous.map_or(0, Tid::as_u64);
        let mut last = self.last.load(Ordering::Acquire);
        loop {
            let floor = last.max(previous);
            let candidate = self
                .smallest_above(floor)
                .ok_or_else(|| TidClockExhausted {
                    floor: Tid::from_integer(floor),
                    clock_id: self.clock_id,
                })?;
            // Both are at most MAX_TID_VALUE, so the top bit stays clear.
            let value = candidate.max(now);
            match self
                .last
                .compare_exchange_weak(last, value, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok(Tid::from_integer(value)),
                Err(current) => last = current,
            }
        }
    }

    /// The smallest TID value above `floor` whose clock-identifier field is this clock's,
    /// if one fits below the top bit.
    fn smallest_above(&self, floor: u64) -> Option<u64> {
        let same_timestamp = (floor & !CLOCK_ID_MASK) | u64::from(self.clock_id);
        let value = if same_timestamp > floor {
            same_timestamp
        } else {
            same_timestamp.checked_add(1 << CLOCK_ID_BITS)?
        };
        (value <= MAX_TID_VALUE).then_some(value)
    }
}

impl fmt::Debug for TidClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TidClock")
            .field("clock_id", &self.clock_id)
            .field("last", &self.last.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Microseconds since the UNIX epoch from the system clock; 0 if it reads before 1970.
fn system_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX)
        })
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;

    use super::*;

    /// A clock whose time is whatever the returned handle says.
    fn manual_clock(clock_id: u16, start: u64) -> (TidClock, Arc<AtomicU64>) {
        let time = Arc::new(AtomicU64::new(start));
        let source = Arc::clone(&time);
        let clock = TidClock::with_time_source(clock_id, move || source.load(Ordering::SeqCst));
        (clock, time)
    }

    #[test]
    fn follows_the_wall_clock_when_it_moves_forward() {
        let (clock, time) = manual_clock(7, 1_700_000_000_000_000);
        let a = clock.next(None);
        assert_eq!(a.timestamp_micros(), 1_700_000_000_000_000);
        assert_eq!(a.clock_id(), 7);
        time.store(1_700_000_000_000_500, Ordering::SeqCst);
        let b = clock.next(Some(&a));
        assert_eq!(b.timestamp_micros(), 1_700_000_000_000_500);
        assert!(b > a);
    }

    #[test]
    fn same_microsecond_still_increases() {
        let (clock, _time) = manual_clock(3, 1_700_000_000_000_000);
        let mut previous = clock.next(None);
        for _ in 0..100 {
            let next = clock.next(None);
            assert!(next > previous, "{next:?} after {previous:?}");
            assert_eq!(next.clock_id(), 3);
            previous = next;
        }
    }

    #[test]
    fn clock_stepping_back_still_increases() {
        let (clock, time) = manual_clock(0, 1_700_000_000_000_000);
        let a = clock.next(None);
        time.store(1_600_000_000_000_000, Ordering::SeqCst);
        let b = clock.next(None);
        assert!(b > a);
        assert_eq!(b.timestamp_micros(), a.timestamp_micros() + 1);
        time.store(1_700_000_000_000_010, Ordering::SeqCst);
        let c = clock.next(None);
        assert_eq!(c.timestamp_micros(), 1_700_000_000_000_010);
        assert!(c > b);
    }

    #[test]
    fn previous_far_in_the_future_is_respected() {
        let (clock, _time) = manual_clock(9, 1_700_000_000_000_000);
        let future = Tid::from_parts(4_000_000_000_000_000, 500);
        let a = clock.next(Some(&future));
        assert!(a > future);
        assert_eq!(a.clock_id(), 9);
        assert_eq!(a.timestamp_micros(), 4_000_000_000_000_001);
        let b = clock.next(None);
        assert!(b > a, "the clock remembers what it issued");
        // Above a larger clock id, the same microsecond is taken; our id is smaller, so the
        // next microsecond.
        let future = Tid::from_parts(5_000_000_000_000_000, 10);
        assert_eq!(
            clock.next(Some(&future)).timestamp_micros(),
            5_000_000_000_000_001
        );
        // Above a smaller clock id, the same microsecond still has room for ours.
        let future = Tid::from_parts(6_000_000_000_000_000, 3);
        let c = clock.next(Some(&future));
        assert_eq!(c.timestamp_micros(), 6_000_000_000_000_000);
        assert_eq!(c.clock_id(), 9);
    }

    #[test]
    fn exhaustion_is_an_error_not_a_wrap() {
        let (clock, _time) = manual_clock(5, 0);
        let top = Tid::from_u64(MAX_TID_VALUE).unwrap();
        assert!(clock.try_next(Some(&top)).is_err());
        let high: Tid = "jzzzzzzzzzzzz".parse().unwrap();
        assert!(clock.try_next(Some(&high)).is_err());
        // The clock is still usable for lower bounds afterwards.
        assert!(clock.try_next(None).is_ok());
    }

    #[test]
    fn many_threads_get_unique_increasing_values() {
        const THREADS: usize = 8;
        const PER_THREAD: usize = 2_000;
        // A coarse clock: many calls share each microsecond, and it sometimes steps back.
        let ticks = Arc::new(AtomicU64::new(0));
        let source = Arc::clone(&ticks);
        let clock = Arc::new(TidClock::with_time_source(17, move || {
            let n = source.fetch_add(1, Ordering::SeqCst);
            1_700_000_000_000_000 + n / 64 - (n % 7)
        }));
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let clock = Arc::clone(&clock);
                std::thread::spawn(move || {
                    let mut issued = Vec::with_capacity(PER_THREAD);
                    for _ in 0..PER_THREAD {
                        issued.push(clock.next(None));
                    }
                    issued
                })
            })
            .collect();
        let mut all = HashSet::new();
        for handle in handles {
            let issued = handle.join().unwrap();
            assert!(
                issued.windows(2).all(|w| w[0] < w[1]),
                "each thread sees strictly increasing TIDs"
            );
            all.extend(issued);
        }
        assert_eq!(all.len(), THREADS * PER_THREAD, "no TID issued twice");
    }
}
