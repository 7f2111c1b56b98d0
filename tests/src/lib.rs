//! Support code for weir's end-to-end tests.
//!
//! The tests in `crates/weir/tests/` run the real `weir` binary against real HTTP servers
//! on loopback, so what they check is what an operator would see. This crate owns the
//! pieces every such test needs, and it is the one fixture layer of the other crates'
//! tests too (weir-config, weir-telemetry, weir-health, weir-proxy): it depends on no weir
//! crate, so a dev-dependency on it never makes a cycle. Configs built by hand, without
//! YAML, are `weir_config::test_util`'s (feature `test-util`).
//!
//! - [`backend`]: in-process HTTP/1.1 backends that name themselves, record what reached
//!   them, and can be slowed, failed, held or killed ([`spawn_backend`]), a raw TCP
//!   sink that only records whether any byte arrived ([`spawn_tcp_sink`]), a TCP echo
//!   server and recorder ([`spawn_tcp_echo`], [`spawn_tcp_recorder`]), and a scripted raw
//!   backend writing exact bytes ([`backend::spawn_raw_backend`]).
//! - [`process`]: a `weir` child process with its config in a temp dir, its JSON log lines
//!   collected for waiting on events ([`Weir`]), and `weir check` ([`check_config`]).
//! - [`client`]: small HTTP/1.1 (keep-alive), h2c and raw-socket clients.
//! - [`h2attack`]: hostile HTTP/2 clients (Python) and weir's resident memory.
//! - [`load`]: many clients at once, tallied, for "zero failed requests" under change.
//! - [`status`]: finding a pool or backend in weir's `/status` document.
//! - [`metrics`]: scraping `/metrics`, parsing the Prometheus text format, and the table
//!   of every family weir exports ([`metrics::FAMILIES`]).
//! - [`port`]: loopback ports a test holds, refusing until it listens on them
//!   ([`closed_port`], [`HeldPort`]); never a released port another test could take.
//! - [`discovery`]: the join-and-leave-under-load scenario of every discovery source.
//! - [`dns`]: a real DNS server (`dnsmasq`) on a loopback port, for discovery tests.
//! - [`k8s`]: a stand-in Kubernetes API server (EndpointSlice list + watch) on a loopback
//!   port, fed by the v1-shaped fixtures in `tests/fixtures/k8s/`.
//! - [`config`]: weir YAML for the usual shapes (one pool, a TCP listener, health checks).
//! - [`tls`]: a test CA, leaves it signs, PEM files, a client trusting the CA.
//! - [`eventually`], [`until`]: the bounded wait loops; tests never sleep on a guess
//!   (STYLE.md §11).
//!
//! Every wait here is bounded in count and time and panics with a message naming what it
//! waited for, so a broken build fails fast and says why instead of hanging CI.

pub mod backend;
pub mod client;
pub mod config;
pub mod discovery;
pub mod dns;
pub mod h2attack;
pub mod k8s;
pub mod load;
pub mod metrics;
pub mod port;
pub mod process;
pub mod status;
mod tempdir;
pub mod tls;

use std::future::Future;
use std::hash::Hasher;
use std::time::Duration;

pub use backend::{
    spawn_backend, spawn_backends, spawn_tcp_echo, spawn_tcp_recorder, spawn_tcp_sink,
};
pub use backend::{BackendHandle, Recorded, TcpSink};
pub use client::{H1Client, H2Client, Response};
pub use load::{Load, LoadReport};
pub use metrics::{Sample, Scrape};
pub use port::{closed_port, closed_ports, HeldPort};
pub use process::{assert_check_errors, check_config, log_str, run_weir, CheckOutput, Weir};

/// How often [`eventually`] probes.
pub const POLL_INTERVAL: Duration = Duration::from_millis(10);
/// How many probes [`eventually`] makes before giving up (5 s in all).
pub const POLL_ATTEMPTS: u32 = 500;

/// Polls `sample` every 200 ms, for 30 s at most, until it returned the same `Some`
/// value three polls in a row, and returns that value; `None` from `sample` means "not
/// ready yet". A byte counter that stops growing is how the slow-reader tests see that
/// weir stopped reading from a backend (back-pressure), without a fixed sleep.
pub async fn until_steady<T: PartialEq>(mut sample: impl FnMut() -> Option<T>) -> Option<T> {
    let (mut last, mut still) = (None, 0);
    for _ in 0..150 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = sample();
        still = if now.is_some() && now == last {
            still + 1
        } else {
            0
        };
        if still == 3 {
            return now;
        }
        last = now;
    }
    None
}

/// Polls `probe` every 10 ms, at most 500 times; returns the first `Some`.
///
/// # Panics
/// When no probe returned `Some` after 500 attempts, naming `what`.
pub async fn eventually<T, F>(what: &str, mut probe: impl FnMut() -> F) -> T
where
    F: Future<Output = Option<T>>,
{
    for _ in 0..POLL_ATTEMPTS {
        if let Some(value) = probe().await {
            return value;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    panic!(
        "gave up after {POLL_ATTEMPTS} attempts ({:?}) waiting for: {what}",
        POLL_INTERVAL * POLL_ATTEMPTS
    );
}

/// Polls `probe` every 50 ms until it gives `Some`, for at most `limit`: for waits that
/// span a server's own timeouts or backoff (a DNS lookup's, a watch's retry), longer
/// than [`eventually`]'s.
///
/// # Panics
/// When no probe returned `Some` within `limit`, naming `what`.
pub async fn eventually_within<T, F: Future<Output = Option<T>>>(
    what: &str,
    limit: Duration,
    mut probe: impl FnMut() -> F,
) -> T {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up after {limit:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `cond` every 10 ms, at most 1,000 times (10 s), until it holds: for state a
/// test reads synchronously (a backend's counters, a table's flags).
///
/// # Panics
/// When `cond` still does not hold after 10 s, naming `what`.
pub async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    until_async(what, || std::future::ready(cond())).await;
}

/// As [`until`], and asserts that `cond` took at least `min` to hold: a hysteresis of
/// several probes some interval apart never flips sooner.
///
/// # Panics
/// As [`until`], or when `cond` held sooner than `min`.
pub async fn until_no_sooner(what: &str, min: Duration, cond: impl FnMut() -> bool) {
    let start = tokio::time::Instant::now();
    until(what, cond).await;
    let took = start.elapsed();
    assert!(took >= min, "{what} after {took:?}, sooner than {min:?}");
}

/// As [`until`], for a condition that must be awaited.
///
/// # Panics
/// As [`until`].
pub async fn until_async<F: Future<Output = bool>>(what: &str, mut cond: impl FnMut() -> F) {
    for _ in 0..2 * POLL_ATTEMPTS {
        if cond().await {
            return;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    panic!(
        "gave up after {:?} waiting for: {what}",
        POLL_INTERVAL * 2 * POLL_ATTEMPTS
    );
}

/// 64-bit FNV-1a over `bytes`: a stable fingerprint to compare large bodies end to end.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h = Fnv1a::default();
    h.write(bytes);
    h.finish()
}

/// Incremental FNV-1a, for bodies hashed as they stream in.
#[derive(Debug, Clone, Copy)]
pub struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv1a {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// The `len` bytes served by a backend's `/bytes/{len}` path: deterministic but not
/// periodic over short ranges, so a dropped, duplicated or reordered chunk changes the hash.
pub fn deterministic_bytes(len: usize) -> Vec<u8> {
    let mut state: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            // xorshift32: cheap and has no short period.
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 24) as u8
        })
        .collect()
}
