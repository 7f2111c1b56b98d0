//! `X-Request-Id`: one id per request, shared by the backend, the client and the logs.
//!
//! An operator handed a client's error needs to find its log line, and a backend's logs
//! need to match weir's. So every proxied request carries an id: the client's own when it
//! sent exactly one that is valid (1–128 characters of `A-Z a-z 0-9 - _ . :`, which keeps
//! it safe to log and to echo), else one weir makes. A made id is 32 hex digits (128
//! bits): the first half is a per-process counter passed through splitmix64's finalizer,
//! a bijection, so two requests of one process never share an id; the second half mixes
//! the same counter with a second seed so ids from different processes do not line up.
//! The seeds come from std's `RandomState` (OS randomness, once per process). Making one
//! costs an atomic add, a few multiplications and a slice of a per-worker block that
//! holds 64 ids (one allocation per 64 requests), which its copies (to the backend, the
//! client, the access log) share.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use http::header::{HeaderMap, HeaderName, HeaderValue};

/// The header's name.
pub(crate) static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client id kept; longer ones are replaced.
const MAX_LEN: usize = 128;

const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// The request's id: the client's single valid `X-Request-Id`, else a new one.
pub(crate) fn of(headers: &HeaderMap) -> HeaderValue {
    let mut sent = headers.get_all(&X_REQUEST_ID).iter();
    match (sent.next(), sent.next()) {
        (Some(id), None) if is_valid(id.as_bytes()) => id.clone(),
        _ => generate(),
    }
}

/// 1–128 characters of `A-Z a-z 0-9 - _ . :`.
pub(crate) fn is_valid(id: &[u8]) -> bool {
    (1..=MAX_LEN).contains(&id.len())
        && id
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// A fresh 128-bit id as 32 lowercase hex digits, on the stack (the HTTP/1 engine
/// writes it into heads without a header value).
pub(crate) fn fresh() -> [u8; 32] {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let (seed_hi, seed_lo) = seeds();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let hi = splitmix64(seed_hi.wrapping_add(n.wrapping_mul(GOLDEN)));
    let lo = splitmix64(seed_lo ^ n.wrapping_mul(GOLDEN));
    let mut buf = [0u8; 32];
    hex(hi, &mut buf[..16]);
    hex(lo, &mut buf[16..]);
    buf
}

/// Ids one shared allocation holds (see [`generate`]).
const IDS_PER_BLOCK: usize = 64;

thread_local! {
    /// This worker's current block of id bytes, filled 32 at a time.
    static BLOCK: std::cell::RefCell<bytes::BytesMut> =
        std::cell::RefCell::new(bytes::BytesMut::new());
}

/// A fresh 128-bit id as 32 lowercase hex digits.
fn generate() -> HeaderValue {
    let buf = fresh();
    // The ids of one worker are cut from a shared block of 64: one allocation per 64
    // requests instead of one per request, and every copy of an id (to the backend, the
    // client, the access log) is a reference count on it. A block is freed when the last
    // id cut from it is dropped.
    let id = BLOCK.with(|block| {
        let mut block = block.borrow_mut();
        if block.capacity() < buf.len() {
            *block = bytes::BytesMut::with_capacity(buf.len() * IDS_PER_BLOCK);
        }
        block.extend_from_slice(&buf);
        block.split().freeze()
    });
    match HeaderValue::from_maybe_shared(id) {
        Ok(v) => v,
        // Unreachable: hex digits are valid header bytes. An empty-looking id beats a panic.
        Err(_) => HeaderValue::from_static("0"),
    }
}

/// Two per-process random seeds, drawn once.
fn seeds() -> (u64, u64) {
    static SEEDS: OnceLock<(u64, u64)> = OnceLock::new();
    *SEEDS.get_or_init(|| {
        let draw = |salt: u64| {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(salt);
            h.write_u32(std::process::id());
            h.finish()
        };
        (draw(1), draw(2))
    })
}

/// splitmix64's output function: a bijection on `u64` that spreads every input bit.
fn splitmix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn hex(mut v: u64, out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[(v & 0xf) as usize];
        v >>= 4;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(ids: &[&str]) -> HeaderMap {
        crate::http::repeated(X_REQUEST_ID.clone(), ids)
    }

    #[test]
    fn a_valid_client_id_is_kept() {
        for id in ["a", "req-1_2.3:4", &"x".repeat(128)] {
            assert_eq!(of(&with(&[id])), id);
        }
    }

    #[test]
    fn invalid_or_repeated_ids_are_replaced() {
        let long = "x".repeat(129);
        for ids in [
            &[][..],
            &[""],
            &[long.as_str()],
            &["a b"],
            &["a/b"],
            &["a\"b"],
            &["one", "two"],
        ] {
            let id = of(&with(ids));
            assert_eq!(id.len(), 32, "{ids:?} -> {id:?}");
            assert!(id.as_bytes().iter().all(u8::is_ascii_hexdigit), "{id:?}");
        }
    }

    #[test]
    fn generated_ids_are_unique_and_valid() {
        let ids: std::collections::HashSet<_> = (0..10_000).map(|_| generate()).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(ids.iter().all(|id| is_valid(id.as_bytes())));
    }

    #[test]
    fn hex_is_fixed_width() {
        let mut buf = [0u8; 16];
        hex(0xab, &mut buf);
        assert_eq!(&buf, b"00000000000000ab");
    }
}
