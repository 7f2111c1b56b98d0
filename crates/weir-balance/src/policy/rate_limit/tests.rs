use std::net::{IpAddr, Ipv4Addr};

use weir_config::{RateLimitConfig, RateLimitKey};

use super::*;

const SEC: u64 = 1_000_000_000;
/// Any instant well after the clock's zero.
const T0: u64 = 1_000 * SEC;

fn limiter(rps_milli: u64, burst: u32, key: RateLimitKey) -> RateLimiter {
    RateLimiter::new(&RateLimitConfig {
        millirequests_per_second: rps_milli,
        burst,
        key,
    })
}

fn ip(n: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n))
}

/// How many of `n` requests at `now` from `from` get through.
fn passed(l: &RateLimiter, from: IpAddr, header: Option<&[u8]>, now: u64, n: usize) -> usize {
    (0..n)
        .filter(|_| l.check_at(from, header, now).is_ok())
        .count()
}

#[test]
fn a_full_bucket_lets_the_burst_through_then_refills_one_token_per_interval() {
    // 10 per second: one token every 100 ms.
    let l = limiter(10_000, 5, RateLimitKey::SourceIp);
    assert_eq!(
        passed(&l, ip(1), None, T0, 8),
        5,
        "the burst, then refusals"
    );
    let refused = l.check_at(ip(1), None, T0).expect_err("empty bucket");
    assert_eq!(
        refused.wait_ns,
        SEC / 10,
        "one interval until a token is back"
    );
    assert_eq!(
        refused.retry_after_secs(),
        1,
        "rounded up to a whole second"
    );
    assert!(l.check_at(ip(1), None, T0 + SEC / 10 - 1).is_err());
    assert!(
        l.check_at(ip(1), None, T0 + SEC / 10).is_ok(),
        "one token back"
    );
    assert!(l.check_at(ip(1), None, T0 + SEC / 10).is_err());
    // After a quiet half second, five tokens are back; never more than the burst.
    assert_eq!(passed(&l, ip(1), None, T0 + SEC / 10 + SEC / 2, 9), 5);
    assert_eq!(passed(&l, ip(1), None, T0 + 100 * SEC, 9), 5);
}

#[test]
fn retry_after_rounds_up_whole_seconds() {
    // One request every 2.5 s, burst 1.
    let l = limiter(400, 1, RateLimitKey::None);
    assert!(l.check_at(ip(1), None, T0).is_ok());
    let wait = l.check_at(ip(1), None, T0 + SEC).expect_err("limited");
    assert_eq!(wait.wait_ns, 3 * SEC / 2);
    assert_eq!(wait.retry_after_secs(), 2);
    assert_eq!(Limited { wait_ns: 1 }.retry_after_secs(), 1);
    assert_eq!(Limited { wait_ns: 0 }.retry_after_secs(), 1, "never 0");
}

#[test]
fn refused_requests_take_no_token() {
    let l = limiter(1_000, 2, RateLimitKey::SourceIp);
    assert_eq!(passed(&l, ip(1), None, T0, 100), 2);
    // One second later exactly one token is back, however many were refused.
    assert_eq!(passed(&l, ip(1), None, T0 + SEC, 100), 1);
}

#[test]
fn keys_have_buckets_of_their_own() {
    let l = limiter(1_000, 3, RateLimitKey::Header("x-api-key".into()));
    assert_eq!(passed(&l, ip(1), Some(b"alice"), T0, 5), 3);
    assert_eq!(passed(&l, ip(1), Some(b"bob"), T0, 5), 3, "another value");
    assert_eq!(
        passed(&l, ip(2), Some(b"alice"), T0, 5),
        0,
        "same value, any address"
    );
    // Without the header, the client address is the key (apart from any value).
    assert_eq!(passed(&l, ip(1), None, T0, 5), 3);
    assert_eq!(passed(&l, ip(2), None, T0, 5), 3);
    assert_eq!(l.tracked_keys(), 4);
}

#[test]
fn an_ipv4_mapped_address_is_its_ipv4_address() {
    let l = limiter(1_000, 1, RateLimitKey::SourceIp);
    assert!(l.check_at(ip(7), None, T0).is_ok());
    let mapped = match ip(7) {
        IpAddr::V4(v4) => IpAddr::V6(v4.to_ipv6_mapped()),
        IpAddr::V6(_) => unreachable!(),
    };
    assert!(l.check_at(mapped, None, T0).is_err(), "the same client");
}

#[test]
fn a_global_limit_is_one_bucket_for_everyone() {
    let l = limiter(2_000, 4, RateLimitKey::None);
    let through = (0..20)
        .filter(|i| l.check_at(ip(*i), None, T0).is_ok())
        .count();
    assert_eq!(through, 4);
    assert_eq!(l.tracked_keys(), 0, "no map");
    assert_eq!(passed(&l, ip(99), None, T0 + SEC, 10), 2, "two per second");
}

#[test]
fn fractional_rates_space_tokens_exactly() {
    // 0.5 per second: one token every 2 s.
    let l = limiter(500, 1, RateLimitKey::SourceIp);
    assert!(l.check_at(ip(1), None, T0).is_ok());
    assert!(l.check_at(ip(1), None, T0 + 2 * SEC - 1).is_err());
    assert!(l.check_at(ip(1), None, T0 + 2 * SEC).is_ok());
    // A million per second: one every microsecond.
    let fast = limiter(1_000_000_000, 1, RateLimitKey::None);
    assert!(fast.check_at(ip(1), None, T0).is_ok());
    assert!(fast.check_at(ip(1), None, T0 + 999).is_err());
    assert!(fast.check_at(ip(1), None, T0 + 1_000).is_ok());
}

#[test]
fn the_map_stays_bounded_under_a_flood_of_new_keys() {
    // Slow refill: every key stays active (not full) for the whole test.
    let l = limiter(1, 1_000, RateLimitKey::SourceIp);
    for n in 0..(3 * MAX_KEYS as u32) {
        assert!(
            l.check_at(ip(n), None, T0).is_ok(),
            "a new key has a full bucket"
        );
    }
    let tracked = l.tracked_keys();
    assert!(
        tracked <= MAX_KEYS,
        "{tracked} keys tracked, cap {MAX_KEYS}"
    );
    assert!(
        tracked >= MAX_KEYS / 4,
        "{tracked}: eviction forgot far too many"
    );
}

#[test]
fn full_buckets_are_forgotten_first() {
    // 1000 per second, burst 1: a key's bucket is full again 1 ms after its request.
    let l = limiter(1_000_000, 1, RateLimitKey::SourceIp);
    let mut now = T0;
    for n in 0..(2 * MAX_KEYS as u32) {
        assert!(l.check_at(ip(n), None, now).is_ok());
        now += 1_000;
    }
    // Only keys of the last millisecond are active; the rest were dropped as full.
    assert!(l.tracked_keys() <= MAX_KEYS);
    // A key just seen is still tracked (and limited).
    assert!(l.check_at(ip(2 * MAX_KEYS as u32 - 1), None, now).is_err());
}

#[test]
fn an_idle_shard_sweeps_its_full_buckets_when_a_new_key_comes() {
    let l = limiter(1_000_000, 1, RateLimitKey::SourceIp);
    for n in 0..1_000 {
        assert!(l.check_at(ip(n), None, T0).is_ok());
    }
    assert_eq!(l.tracked_keys(), 1_000);
    // Long after every bucket refilled, new keys arriving sweep their shards.
    let later = T0 + 60 * SEC;
    for n in 10_000..10_000 + 4 * SHARDS as u32 * 8 {
        assert!(l.check_at(ip(n), None, later).is_ok());
    }
    assert!(
        l.tracked_keys() < 1_000,
        "full buckets swept: {} left",
        l.tracked_keys()
    );
}
