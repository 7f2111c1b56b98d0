//! Sticky cookies: a pool's `sticky` block pins a client to the backend that served it.
//!
//! **The id.** A backend is named in the cookie by an opaque id, never its address: the
//! first 16 bytes of HMAC-SHA256 over the pool's name and the backend's address, keyed
//! by the pool's `secret_file` (or by a key made when the process starts), written as
//! 32 hex digits. A client cannot learn an address from it, nor forge the id of a
//! backend it was never sent to; two balancers with the same key and backends (a
//! keepalived pair) give the same ids, so a failover keeps sessions where they were.
//! The ids are computed when the table is built, beside the strategy's own tables, so a
//! request's lookup is one hash-map probe and a response's `Set-Cookie` a clone of a
//! prepared header value.
//!
//! **The pick.** A request whose cookie names a backend of this table that is routable
//! (up, not drained, not in maintenance) goes to it, over the strategy; one at its
//! `max_in_flight` makes the request wait for that backend's next free slot (HAProxy's
//! per-server queue) rather than move it, since moving would lose the session the
//! cookie exists for. Anything else (no cookie, an unknown or tampered id, a backend
//! gone or down) is balanced by the strategy, and the response carries a new cookie.
//! A retry after a failed attempt picks another backend as any retry does; the cookie is
//! then replaced with the one of the backend that answered.
//!
//! Every request a backend answered is counted in `weir_sticky_total{pool,result}`,
//! when its response is sent ([`Pool::sticky_answer`]), so the count says where it was
//! served, retries included: `hit` (by the cookie's backend), `new` (no cookie),
//! `rebalanced` (by another: the cookie's was down, drained, gone, or failed the
//! attempt), `invalid` (an id this table does not know).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::HeaderValue;
use weir_config::StickyConfig;
pub use weir_telemetry::StickyResult;

use super::{Pool, Refused, Reserved};
use crate::Backend;

/// Length of a backend's id in the cookie: 16 bytes in hex.
pub const STICKY_ID_LEN: usize = 32;

/// What a request's sticky cookie said, looked up in the table it was routed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presented {
    /// No such cookie.
    Absent,
    /// A value that is no id of this table's backends: tampered, from another key, or
    /// naming a backend since removed.
    Invalid,
    /// The backend at this position of [`Pool::backends`].
    Backend(u32),
}

/// One backend's cookie, ready to send.
#[derive(Debug)]
struct Line {
    id: [u8; STICKY_ID_LEN],
    plain: HeaderValue,
    /// The same with `Secure`, for clients on TLS listeners.
    secure: HeaderValue,
}

/// A pool's sticky settings and its backends' ids (see the module docs).
#[derive(Debug)]
pub struct Sticky {
    cookie: Box<str>,
    ttl: Option<Duration>,
    shared_key: bool,
    by_id: HashMap<[u8; STICKY_ID_LEN], u32>,
    /// A backend's position by the address of its `Arc`.
    by_backend: HashMap<usize, u32>,
    lines: Box<[Line]>,
}

// === impl Sticky ===

impl Sticky {
    /// The ids of `backends` (the pool's, in [`Pool::backends`] order) under `config`.
    pub(super) fn new(config: &StickyConfig, pool: &str, backends: &[&Arc<Backend>]) -> Self {
        let key = match &config.secret {
            Some(secret) => ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes()),
            None => ring::hmac::Key::new(ring::hmac::HMAC_SHA256, process_key()),
        };
        let mut by_id = HashMap::with_capacity(backends.len());
        let mut by_backend = HashMap::with_capacity(backends.len());
        let mut lines = Vec::with_capacity(backends.len());
        for (i, b) in backends.iter().enumerate() {
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            let id = id(&key, pool, b.address());
            by_id.insert(id, i);
            by_backend.insert(address_of(b), i);
            lines.push(line(config, id));
        }
        Sticky {
            cookie: config.cookie.as_str().into(),
            ttl: config.ttl,
            shared_key: config.secret.is_some(),
            by_id,
            by_backend,
            lines: lines.into_boxed_slice(),
        }
    }

    /// The cookie's name.
    #[inline]
    pub fn cookie(&self) -> &str {
        &self.cookie
    }

    /// The cookie's `Max-Age` (`None`: a session cookie), for `/status`.
    pub fn ttl(&self) -> Option<Duration> {
        self.ttl
    }

    /// Whether the ids are signed with a `secret_file` (shared by a balancer pair) or a
    /// key of this process.
    pub fn shared_key(&self) -> bool {
        self.shared_key
    }

    /// What the cookie's `value` (`None`: the request had none) names.
    #[inline]
    pub fn presented(&self, value: Option<&[u8]>) -> Presented {
        let Some(value) = value else {
            return Presented::Absent;
        };
        let id = <[u8; STICKY_ID_LEN]>::try_from(value.trim_ascii());
        match id.ok().and_then(|id| self.by_id.get(&id)) {
            Some(&i) => Presented::Backend(i),
            None => Presented::Invalid,
        }
    }

    /// The `Set-Cookie` value the response from `served` must carry, with `Secure` for
    /// a TLS client; `None` when the request's cookie already names `served`. Private:
    /// the proxy takes it through [`Pool::sticky_answer`], which also counts it.
    #[inline]
    fn set_cookie(
        &self,
        presented: Presented,
        served: &Arc<Backend>,
        secure: bool,
    ) -> Option<&HeaderValue> {
        let i = self.position(served)?;
        if presented == Presented::Backend(i) {
            return None;
        }
        let line = self.lines.get(i as usize)?;
        Some(if secure { &line.secure } else { &line.plain })
    }

    /// The id the cookie of backend `b` carries (`/status`).
    pub fn id_of(&self, b: &Backend) -> Option<&str> {
        let line = self.lines.get(self.position(b)? as usize)?;
        std::str::from_utf8(&line.id).ok()
    }

    fn position(&self, b: &Backend) -> Option<u32> {
        self.by_backend.get(&address_of(b)).copied()
    }
}

/// A backend's identity in this table: where it lives (the registry keeps one per
/// pool and address, shared by every table that lists it).
fn address_of(b: &Backend) -> usize {
    std::ptr::from_ref(b) as usize
}

/// `hex(HMAC(key, "weir-sticky-v1\0" pool "\0" address)[..16])`.
fn id(key: &ring::hmac::Key, pool: &str, address: &str) -> [u8; STICKY_ID_LEN] {
    let mut ctx = ring::hmac::Context::with_key(key);
    for part in [
        b"weir-sticky-v1\0",
        pool.as_bytes(),
        b"\0",
        address.as_bytes(),
    ] {
        ctx.update(part);
    }
    let tag = ctx.sign();
    let mut out = [0u8; STICKY_ID_LEN];
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (pair, byte) in out.chunks_exact_mut(2).zip(tag.as_ref()) {
        pair[0] = HEX[usize::from(byte >> 4)];
        pair[1] = HEX[usize::from(byte & 0xf)];
    }
    out
}

/// `NAME=ID; Path=/; Max-Age=N; HttpOnly; SameSite=Lax` and its `Secure` twin. `Path=/`
/// so that the whole site sticks; `HttpOnly` since no script needs it; `Lax` so a link
/// from another site still lands on the session's backend.
fn line(config: &StickyConfig, id: [u8; STICKY_ID_LEN]) -> Line {
    let mut text = format!(
        "{}={}; Path=/",
        config.cookie,
        std::str::from_utf8(&id).unwrap_or_default()
    );
    if let Some(ttl) = config.ttl {
        text.push_str(&format!("; Max-Age={}", ttl.as_secs().max(1)));
    }
    text.push_str("; HttpOnly; SameSite=Lax");
    let secure = format!("{text}; Secure");
    // The cookie name is a token, the id hex and the rest fixed: always a valid value.
    let value = |s: String| {
        HeaderValue::from_maybe_shared(bytes::Bytes::from(s))
            .unwrap_or(HeaderValue::from_static(""))
    };
    Line {
        id,
        plain: value(text),
        secure: value(secure),
    }
}

/// The key of pools without a `secret_file`: random, made once per process, so a
/// reload keeps every cookie valid and a restart invalidates them (they are then
/// balanced once and replaced).
fn process_key() -> &'static [u8] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    KEY.get_or_init(|| {
        use ring::rand::SecureRandom as _;
        let mut key = [0u8; 32];
        if ring::rand::SystemRandom::new().fill(&mut key).is_err() {
            // No system randomness (it never fails on Linux): std's per-process random
            // hash seeds, which are still unknown to clients.
            use std::hash::{BuildHasher as _, Hasher as _};
            for chunk in key.chunks_exact_mut(8) {
                let mut h = std::collections::hash_map::RandomState::new().build_hasher();
                h.write_u32(std::process::id());
                chunk.copy_from_slice(&h.finish().to_le_bytes());
            }
        }
        key
    })
}

impl Pool {
    /// The pool's sticky cookie, if it has one.
    #[inline]
    pub fn sticky(&self) -> Option<&Sticky> {
        self.sticky.as_deref()
    }

    /// The backend at position `i` of [`Pool::backends`].
    pub fn backend_at(&self, i: usize) -> Option<&Arc<Backend>> {
        self.primaries
            .get(i)
            .or_else(|| self.backups.get(i.checked_sub(self.primaries.len())?))
    }

    /// [`Pool::reserve_keyed`] for a pool with a sticky cookie: the backend the cookie
    /// names while it is routable, waiting for its slot if it is at its limit; else a
    /// pick as usual. For a pool without one, just `reserve_keyed`, so the proxy has one
    /// call for both.
    pub async fn reserve_sticky<G: Future<Output = ()>>(
        &self,
        presented: Presented,
        key: Option<u64>,
        gone: G,
    ) -> Result<Reserved<'_>, Refused> {
        if self.sticky.is_none() {
            return self.reserve_keyed(key, gone).await;
        }
        let pinned = match presented {
            Presented::Backend(i) => self.backend_at(i as usize),
            Presented::Absent | Presented::Invalid => None,
        };
        match pinned.filter(|b| b.is_routable()) {
            Some(b) => self.reserve_pinned(b, key, gone).await,
            None => self.reserve_keyed(key, gone).await,
        }
    }

    /// The `Set-Cookie` value for the response `served` sent to a request whose cookie
    /// said `presented` (see [`Sticky::set_cookie`]), and the request counted in
    /// `weir_sticky_total` by how it went. `None` for a pool without a sticky cookie.
    #[inline]
    pub fn sticky_answer(
        &self,
        presented: Presented,
        served: &Arc<Backend>,
        secure: bool,
    ) -> Option<&HeaderValue> {
        let sticky = self.sticky.as_deref()?;
        let line = sticky.set_cookie(presented, served, secure);
        if let Some(m) = self.metrics() {
            m.sticky(match presented {
                Presented::Absent => StickyResult::New,
                Presented::Invalid => StickyResult::Invalid,
                Presented::Backend(_) if line.is_none() => StickyResult::Hit,
                Presented::Backend(_) => StickyResult::Rebalanced,
            });
        }
        line
    }
}

#[cfg(test)]
mod tests;
