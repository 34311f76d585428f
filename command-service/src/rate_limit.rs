//! Per-DID write rate limits (spec §13.1): a sliding window of write timestamps; going over the
//! limit starts a cooldown (with random jitter) during which every write is refused with
//! `429 RateLimitExceeded` and `Retry-After`. Per instance, not shared across instances.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use rand::Rng;

/// The limits.
#[derive(Debug, Clone)]
pub struct RateLimitConfig {
    /// Writes allowed per window per DID.
    pub max_writes: u32,
    /// The sliding window.
    pub window: Duration,
    /// How long writes are refused after the limit was exceeded.
    pub cooldown: Duration,
    /// A random extra cooldown in `[0, jitter)`.
    pub jitter: Duration,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            max_writes: 300,
            window: Duration::from_secs(60),
            cooldown: Duration::from_secs(10),
            jitter: Duration::from_secs(1),
        }
    }
}

#[derive(Default)]
struct DidState {
    writes: VecDeque<Instant>,
    cooldown_until: Option<Instant>,
}

/// Counts writes per DID.
pub struct WriteRateLimiter {
    config: RateLimitConfig,
    state: Mutex<HashMap<String, DidState>>,
    checks: AtomicU64,
}

/// Sweep idle DIDs every this many checks.
const SWEEP_EVERY: u64 = 4_096;

impl WriteRateLimiter {
    /// A limiter with these limits.
    pub fn new(config: RateLimitConfig) -> Self {
        Self {
            config,
            state: Mutex::default(),
            checks: AtomicU64::new(0),
        }
    }

    /// Counts `weight` writes of `did`, or says how long to wait (whole seconds, at least 1).
    pub fn check(&self, did: &str, weight: u32) -> Result<(), u64> {
        self.check_at(did, weight, Instant::now())
    }

    fn check_at(&self, did: &str, weight: u32, now: Instant) -> Result<(), u64> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if self
            .checks
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(SWEEP_EVERY)
        {
            let window = self.config.window;
            state.retain(|_, s| {
                s.cooldown_until.is_some_and(|until| until > now)
                    || s.writes.back().is_some_and(|last| now - *last < window)
            });
        }
        let entry = state.entry(did.to_string()).or_default();
        if let Some(until) = entry.cooldown_until {
            if now < until {
                return Err(seconds(until - now));
            }
            entry.cooldown_until = None;
        }
        while entry
            .writes
            .front()
            .is_some_and(|at| now.duration_since(*at) >= self.config.window)
        {
            entry.writes.pop_front();
        }
        if entry.writes.len() as u64 + u64::from(weight) > u64::from(self.config.max_writes) {
            let jitter = match self.config.jitter.as_millis() as u64 {
                0 => Duration::ZERO,
                max => Duration::from_millis(rand::thread_rng().gen_range(0..max)),
            };
            let wait = self.config.cooldown + jitter;
            entry.cooldown_until = Some(now + wait);
            return Err(seconds(wait));
        }
        entry
            .writes
            .extend(std::iter::repeat_n(now, weight as usize));
        Ok(())
    }
}

/// Whole seconds to wait, rounded up, at least 1.
fn seconds(wait: Duration) -> u64 {
    (wait.as_millis() as u64).div_ceil(1_000).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter() -> WriteRateLimiter {
        WriteRateLimiter::new(RateLimitConfig {
            max_writes: 3,
            window: Duration::from_secs(60),
            cooldown: Duration::from_secs(10),
            jitter: Duration::ZERO,
        })
    }

    #[test]
    fn writes_over_the_window_start_a_cooldown() {
        let limiter = limiter();
        let start = Instant::now();
        assert_eq!(limiter.check_at("did:plc:a", 2, start), Ok(()));
        assert_eq!(limiter.check_at("did:plc:a", 1, start), Ok(()));
        // Another DID has its own window.
        assert_eq!(limiter.check_at("did:plc:b", 3, start), Ok(()));
        assert_eq!(limiter.check_at("did:plc:a", 1, start), Err(10));
        // During the cooldown even a write that would fit is refused.
        let later = start + Duration::from_millis(9_500);
        assert_eq!(limiter.check_at("did:plc:a", 1, later), Err(1));
        // After the cooldown the window still holds the three writes.
        let after = start + Duration::from_secs(11);
        assert_eq!(limiter.check_at("did:plc:a", 1, after), Err(10));
        // Once the window has passed, writes are allowed again.
        let next = start + Duration::from_secs(80);
        assert_eq!(limiter.check_at("did:plc:a", 3, next), Ok(()));
    }

    #[test]
    fn a_batch_counts_each_write() {
        let limiter = limiter();
        let now = Instant::now();
        assert_eq!(limiter.check_at("did:plc:a", 4, now), Err(10));
    }
}
