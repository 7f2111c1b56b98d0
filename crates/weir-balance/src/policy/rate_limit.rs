//! Token buckets per key, kept as GCRA's one number per bucket.
//!
//! The generic cell rate algorithm (ATM's policer, also what `redis-cell` and Envoy's
//! local limiter approximate) keeps a bucket as its *theoretical arrival time* (TAT):
//! the instant at which the bucket would be full again. A request at `now` is let
//! through when `max(TAT, now) + T - now <= burst × T` (`T` = one token's interval), and
//! then moves TAT on by `T`; otherwise it waits `max(TAT, now) + T - now - burst × T`,
//! the `Retry-After`. One `u64` per key and no timer: refilling is arithmetic at the
//! next request. A bucket whose TAT is past is full, the same as no bucket at all, so
//! such entries can be dropped at any time without changing an answer.
//!
//! Keys (a client address, a header's value) are hashed with a per-limiter random
//! SipHash key and only the 64-bit hash is stored: no allocation for a key already
//! known, and no way for a client to aim collisions. Two keys sharing a hash (about one
//! pair in 2^64 / n² with n keys live) share a bucket: a stricter limit for both, never
//! a way around it. The map is sharded ([`SHARDS`] mutexes, chosen by the hash's top
//! bits) and bounded ([`MAX_KEYS`]): a shard that is full first forgets its full
//! buckets, then, if the keys are all active, up to half of them, those nearer to full than
//! the average; each such key
//! starts again from a full bucket. `key: none` is one bucket in an atomic, no map.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use weir_config::{RateLimitConfig, RateLimitKey};

use crate::clock;

/// Shards of a keyed limiter's map: enough that requests on different cores rarely
/// wait on one another's lock.
pub const SHARDS: usize = 16;
/// Keys one limiter tracks at most (about 1.5 MiB at 24 bytes an entry). Only keys
/// whose bucket is not full need an entry: clients seen within the last
/// `burst / requests_per_second` seconds.
pub const MAX_KEYS: usize = 65_536;
/// A shard drops its full buckets at least this often (when a new key arrives), so
/// memory follows the load down as well as up.
const SWEEP_EVERY_NS: u64 = 10_000_000_000;
const NANOS_PER_SEC: u64 = 1_000_000_000;

/// Why a request was refused: how long until it would be let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// Nanoseconds until one token is back.
    pub wait_ns: u64,
}

impl Limited {
    /// The `Retry-After` value: whole seconds, rounded up, at least 1.
    pub fn retry_after_secs(self) -> u64 {
        self.wait_ns.div_ceil(NANOS_PER_SEC).max(1)
    }
}

/// One configured limit's buckets, shared by every table that has the limit unchanged.
#[derive(Debug)]
pub struct RateLimiter {
    config: RateLimitConfig,
    /// `T`: nanoseconds per token.
    interval_ns: u64,
    /// `burst × T`.
    tolerance_ns: u64,
    buckets: Buckets,
}

#[derive(Debug)]
enum Buckets {
    /// `key: none`: the one TAT.
    Global(AtomicU64),
    Keyed(Box<Keyed>),
}

#[derive(Debug)]
struct Keyed {
    hasher: RandomState,
    shards: [Mutex<Shard>; SHARDS],
}

#[derive(Debug, Default)]
struct Shard {
    /// Key hash -> TAT (ns on [`clock::now_ns`]'s scale).
    tats: HashMap<u64, u64, BuildHasherDefault<Premixed>>,
    last_sweep_ns: u64,
}

// === impl RateLimiter ===

impl RateLimiter {
    /// Full buckets for `config`.
    pub fn new(config: &RateLimitConfig) -> Self {
        let milli = config.millirequests_per_second.max(1);
        let interval_ns = (1_000 * NANOS_PER_SEC / milli).max(1);
        let tolerance = u128::from(interval_ns) * u128::from(config.burst.max(1));
        let tolerance_ns = u64::try_from(tolerance).unwrap_or(u64::MAX / 4);
        let buckets = match config.key {
            RateLimitKey::None => Buckets::Global(AtomicU64::new(0)),
            RateLimitKey::SourceIp | RateLimitKey::Header(_) => Buckets::Keyed(Box::new(Keyed {
                hasher: RandomState::new(),
                shards: Default::default(),
            })),
        };
        RateLimiter {
            config: config.clone(),
            interval_ns,
            tolerance_ns,
            buckets,
        }
    }

    /// The settings this limiter enforces.
    pub fn config(&self) -> &RateLimitConfig {
        &self.config
    }

    /// The (lower-case) header whose value is the key, for `key: header:NAME`.
    #[inline]
    pub fn header(&self) -> Option<&str> {
        match &self.config.key {
            RateLimitKey::Header(name) => Some(name),
            RateLimitKey::SourceIp | RateLimitKey::None => None,
        }
    }

    /// Takes a token now for the request from `ip` carrying `header` (the value of
    /// [`RateLimiter::header`], if the request has it), or says how long to wait.
    #[inline]
    pub fn check(&self, ip: IpAddr, header: Option<&[u8]>) -> Result<(), Limited> {
        self.check_at(ip, header, clock::now_ns())
    }

    /// [`RateLimiter::check`] at `now_ns` (on [`clock::now_ns`]'s scale): tests drive
    /// the clock themselves.
    pub fn check_at(&self, ip: IpAddr, header: Option<&[u8]>, now_ns: u64) -> Result<(), Limited> {
        match &self.buckets {
            Buckets::Global(tat) => self.take_global(tat, now_ns),
            Buckets::Keyed(keyed) => {
                let hash = keyed.hash(ip, header);
                let cap = MAX_KEYS / SHARDS;
                let shard = keyed.shard(hash);
                let mut shard = lock(shard);
                if let Some(tat) = shard.tats.get_mut(&hash) {
                    *tat = self.next(*tat, now_ns)?;
                    return Ok(());
                }
                // A new key's bucket is full: `burst >= 1` lets this request through.
                let tat = self.next(0, now_ns)?;
                let since = now_ns.saturating_sub(shard.last_sweep_ns);
                if shard.tats.len() >= cap || since >= SWEEP_EVERY_NS {
                    shard.make_room(now_ns, cap);
                }
                shard.tats.insert(hash, tat);
                Ok(())
            }
        }
    }

    /// Keys with a bucket that is not full (tests, `/status`).
    pub fn tracked_keys(&self) -> usize {
        match &self.buckets {
            Buckets::Global(_) => 0,
            Buckets::Keyed(keyed) => keyed.shards.iter().map(|s| lock(s).tats.len()).sum(),
        }
    }

    /// The TAT after one more request at `now`, or the wait.
    #[inline]
    fn next(&self, tat: u64, now: u64) -> Result<u64, Limited> {
        let next = tat.max(now).saturating_add(self.interval_ns);
        let ahead = next - now;
        if ahead > self.tolerance_ns {
            return Err(Limited {
                wait_ns: ahead - self.tolerance_ns,
            });
        }
        Ok(next)
    }

    fn take_global(&self, tat: &AtomicU64, now: u64) -> Result<(), Limited> {
        let mut current = tat.load(Ordering::Acquire);
        loop {
            let next = self.next(current, now)?;
            match tat.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(()),
                Err(seen) => current = seen,
            }
        }
    }
}

// === impl Keyed ===

impl Keyed {
    /// The key's hash: a tag byte keeps an address and a header value with the same
    /// bytes apart; an IPv4-mapped IPv6 address is its IPv4 address.
    #[inline]
    fn hash(&self, ip: IpAddr, header: Option<&[u8]>) -> u64 {
        let mut h = self.hasher.build_hasher();
        match (header, ip) {
            (Some(value), _) => {
                h.write_u8(1);
                h.write(value);
            }
            (None, IpAddr::V4(v4)) => {
                h.write_u8(4);
                h.write(&v4.octets());
            }
            (None, IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => {
                    h.write_u8(4);
                    h.write(&v4.octets());
                }
                None => {
                    h.write_u8(6);
                    h.write(&v6.octets());
                }
            },
        }
        h.finish()
    }

    #[inline]
    fn shard(&self, hash: u64) -> &Mutex<Shard> {
        // The top bits pick the shard; the map mixes the whole hash again (`Premixed`).
        &self.shards[(hash >> 60) as usize % SHARDS]
    }
}

// === impl Shard ===

impl Shard {
    /// Drops the full buckets; if the shard is still nearly full of active keys, also
    /// those nearer to full than the average, so a flood of new keys costs an
    /// amortised constant per key rather than a scan each.
    fn make_room(&mut self, now: u64, cap: usize) {
        self.last_sweep_ns = now;
        self.tats.retain(|_, tat| *tat > now);
        if self.tats.len() < cap - cap / 8 {
            return;
        }
        let len = self.tats.len().max(1) as u128;
        let total: u128 = self.tats.values().map(|t| u128::from(*t - now)).sum();
        let mean = u64::try_from(total / len).unwrap_or(u64::MAX);
        // The nearest-to-full entry is at most the mean, so at least one goes; at most
        // half go, even when every bucket is as full as the next.
        let mut budget = self.tats.len() / 2 + 1;
        self.tats.retain(|_, tat| {
            let drop = budget > 0 && *tat - now <= mean;
            budget -= usize::from(drop);
            !drop
        });
    }
}

fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // A panic under the lock leaves at worst a bucket one token off.
    match shard.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// The map's hasher for keys that are SipHash outputs already: one multiply
/// (Fibonacci hashing) spreads the bits the shard choice made constant.
#[derive(Debug, Default, Clone, Copy)]
struct Premixed(u64);

impl Hasher for Premixed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

#[cfg(test)]
mod tests;
