//! Guards in front of the signed-request services (record reads, audit queries): a bounded
//! replay cache of request ids and a per-requester rate limit.
//!
//! Both are consulted only after a request's signature verifies and its requester holds a valid
//! credential, so a stranger can neither fill the cache nor spend anyone's allowance. Both are
//! bounded: when the replay cache is full of live entries, or the limiter tracks too many
//! requesters, new requests are refused with `rate_limited` rather than remembered loosely
//! (failing closed: a full cache never lets a replay through).

use crate::error::ServiceError;
use medledger_types::read::MAX_READ_SKEW_MS;
use medledger_types::{ErrorCode, Hash, PublicKey};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet, VecDeque};

/// Most request ids remembered at once: two skew windows of traffic at about 1,000 requests/s.
pub const MAX_REPLAY_ENTRIES: usize = 262_144;
/// Most requesters the rate limiter tracks at once.
pub const MAX_RATE_ENTRIES: usize = 65_536;

/// A requester's allowance of signed requests (reads and audit queries together).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Sustained requests per second per requester.
    pub per_second: u32,
    /// Requests a requester may make at once after being idle.
    pub burst: u32,
}

impl Default for RateLimit {
    /// 50 requests/s sustained, bursts of 200 (a patient's consent grant reads every covered
    /// version at once to re-wrap its key).
    fn default() -> Self {
        RateLimit { per_second: 50, burst: 200 }
    }
}

/// Remembers the ids of answered requests until they are too old to be accepted anyway.
#[derive(Default)]
struct Replay {
    seen: HashSet<Hash>,
    /// (forget after, id), in insertion order; the clock only moves forward here.
    order: VecDeque<(u64, Hash)>,
}

impl Replay {
    fn admit(&mut self, id: Hash, now_ms: u64) -> Result<(), ServiceError> {
        while self.order.front().is_some_and(|(t, _)| *t <= now_ms) {
            if let Some((_, old)) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        if self.seen.contains(&id) {
            return Err(ServiceError::new(
                ErrorCode::ReplayedRequest,
                "this signed request was already answered; sign a new one (each carries a fresh nonce)",
            ));
        }
        if self.seen.len() >= MAX_REPLAY_ENTRIES {
            return Err(ServiceError::new(
                ErrorCode::RateLimited,
                "too many signed requests within the replay window; retry in a few seconds",
            ));
        }
        // A request is accepted while |now - issued| <= skew, and issued <= now + skew, so it
        // is stale for sure two skews from now.
        let forget_at = now_ms.saturating_add(2 * MAX_READ_SKEW_MS);
        let forget_at = self.order.back().map_or(forget_at, |(t, _)| forget_at.max(*t));
        self.seen.insert(id);
        self.order.push_back((forget_at, id));
        debug_assert_eq!(self.seen.len(), self.order.len());
        Ok(())
    }
}

/// A token bucket per requester.
struct Buckets {
    limit: RateLimit,
    /// requester → (tokens in thousandths, last refill in ms)
    tokens: HashMap<PublicKey, (u64, u64)>,
}

impl Buckets {
    fn take(&mut self, who: &PublicKey, now_ms: u64) -> Result<(), ServiceError> {
        let full = u64::from(self.limit.burst) * 1000;
        let rate = u64::from(self.limit.per_second); // thousandths of a token per ms
        let refill = |(t, last): (u64, u64)| {
            (t.saturating_add(now_ms.saturating_sub(last).saturating_mul(rate)).min(full), now_ms.max(last))
        };
        if !self.tokens.contains_key(who) && self.tokens.len() >= MAX_RATE_ENTRIES {
            // Forget requesters whose bucket has refilled: they are indistinguishable from new.
            self.tokens.retain(|_, b| refill(*b).0 < full);
            if self.tokens.len() >= MAX_RATE_ENTRIES {
                return Err(ServiceError::new(ErrorCode::RateLimited, "this node is busy; retry in a few seconds"));
            }
        }
        let b = self.tokens.entry(*who).or_insert((full, now_ms));
        *b = refill(*b);
        if b.0 < 1000 {
            return Err(ServiceError::new(
                ErrorCode::RateLimited,
                format!(
                    "requester {} is over its limit of {} requests/s (bursts of {}); retry shortly",
                    who.short(),
                    self.limit.per_second,
                    self.limit.burst
                ),
            ));
        }
        b.0 -= 1000;
        Ok(())
    }
}

/// The replay cache and the rate limiter a node shares between its read and audit services.
pub struct Guard {
    replay: Mutex<Replay>,
    buckets: Mutex<Buckets>,
}

impl Default for Guard {
    fn default() -> Self {
        Guard::new(RateLimit::default())
    }
}

impl Guard {
    pub fn new(limit: RateLimit) -> Guard {
        Guard {
            replay: Mutex::new(Replay::default()),
            buckets: Mutex::new(Buckets { limit: limit.normalized(), tokens: HashMap::new() }),
        }
    }

    /// Admits a verified request `id` of credentialed `requester` at `now_ms`: refuses it if its
    /// requester is over the limit (`rate_limited`) or if it was seen before
    /// (`replayed_request`). A rate-limited request is not remembered.
    pub fn admit(&self, requester: &PublicKey, id: Hash, now_ms: u64) -> Result<(), ServiceError> {
        self.buckets.lock().take(requester, now_ms)?;
        self.replay.lock().admit(id, now_ms)
    }
}

impl RateLimit {
    /// At least one request per second and a burst of at least one.
    fn normalized(self) -> RateLimit {
        RateLimit { per_second: self.per_second.max(1), burst: self.burst.max(1) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u8) -> PublicKey {
        PublicKey([i; 32])
    }

    #[test]
    fn a_request_is_answered_once_and_forgotten_after_two_skews() {
        let g = Guard::new(RateLimit { per_second: 1000, burst: 1000 });
        let id = Hash([7; 32]);
        g.admit(&key(1), id, 1_000).unwrap();
        assert_eq!(g.admit(&key(1), id, 1_001).unwrap_err().code(), ErrorCode::ReplayedRequest);
        // Another signer replaying the same bytes is the same request.
        assert_eq!(g.admit(&key(2), id, 2_000).unwrap_err().code(), ErrorCode::ReplayedRequest);
        g.admit(&key(1), Hash([8; 32]), 2_000).unwrap();
        // Two skew windows later the id is forgotten (the request would be stale anyway).
        g.admit(&key(1), id, 1_000 + 2 * MAX_READ_SKEW_MS).unwrap();
    }

    #[test]
    fn requesters_get_their_burst_then_their_rate() {
        let g = Guard::new(RateLimit { per_second: 10, burst: 5 });
        let mut n = 0u8;
        let mut next = || {
            n = n.wrapping_add(1);
            Hash([n; 32])
        };
        for _ in 0..5 {
            g.admit(&key(1), next(), 0).unwrap();
        }
        let e = g.admit(&key(1), next(), 0).unwrap_err();
        assert_eq!(e.code(), ErrorCode::RateLimited);
        assert!(e.to_string().contains("limit of 10 requests/s"), "{e}");
        // Someone else is not affected.
        g.admit(&key(2), next(), 0).unwrap();
        // 100 ms at 10/s refills one request.
        g.admit(&key(1), next(), 100).unwrap();
        assert_eq!(g.admit(&key(1), next(), 100).unwrap_err().code(), ErrorCode::RateLimited);
        // A clock that steps back does not mint tokens.
        assert_eq!(g.admit(&key(1), next(), 50).unwrap_err().code(), ErrorCode::RateLimited);
    }

    #[test]
    fn the_replay_cache_is_bounded_and_fails_closed() {
        let mut r = Replay::default();
        for i in 0..MAX_REPLAY_ENTRIES as u64 {
            let mut h = [0u8; 32];
            h[..8].copy_from_slice(&i.to_be_bytes());
            r.admit(Hash(h), 5).unwrap();
        }
        assert_eq!(r.admit(Hash([0xFF; 32]), 6).unwrap_err().code(), ErrorCode::RateLimited);
        // Still refuses the replay of a remembered id as a replay.
        assert_eq!(r.admit(Hash([0; 32]), 6).unwrap_err().code(), ErrorCode::ReplayedRequest);
        // Once they age out there is room again.
        r.admit(Hash([0xFF; 32]), 5 + 2 * MAX_READ_SKEW_MS).unwrap();
        assert_eq!(r.seen.len(), 1);
    }
}
