//! Sticky ids (stable, per pool, unforgeable without the key), the cookie lines, and
//! the pinned pick: the cookie's backend while routable, its own slot waited for under
//! a limit, a newcomer not held up by such waiters, balanced once the backend leaves.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use weir_config::{StickyConfig, StrategyKind};

use super::*;
use crate::test_support::{backend_config, pool_config};
use crate::AdminMode;

fn sticky_config(secret: Option<&[u8]>, ttl: Option<Duration>) -> StickyConfig {
    StickyConfig {
        cookie: "WEIR_B".to_owned(),
        ttl,
        secret_file: None,
        secret: secret.map(weir_config::StickySecret::for_tests),
    }
}

/// Pool `name`, round robin over `n` backends `a`, `b`, … limited to `limit` (0: none),
/// sticky with `secret`.
fn sticky_pool(name: &str, n: usize, limit: u32, secret: Option<&[u8]>) -> Pool {
    let configs: Vec<_> = (0..n).map(|i| backend_config(i, 1, false)).collect();
    let mut config = pool_config(name, StrategyKind::RoundRobin, configs.clone());
    config.max_in_flight = NonZeroU32::new(limit);
    config.queue = weir_config::QueueConfig {
        max: 10,
        timeout: Duration::from_millis(500),
    };
    config.sticky = Some(sticky_config(secret, Some(Duration::from_secs(3600))));
    let backends = configs
        .iter()
        .map(|c| {
            let b = Arc::new(Backend::new(name, c));
            b.set_max_in_flight(config.max_in_flight_of(c));
            b
        })
        .collect();
    Pool::new(&config, backends)
}

fn id(pool: &Pool, i: usize) -> String {
    let b = pool.backend_at(i).expect("backend");
    pool.sticky()
        .and_then(|s| s.id_of(b))
        .expect("id")
        .to_owned()
}

fn presented(pool: &Pool, value: &str) -> Presented {
    pool.sticky()
        .expect("sticky")
        .presented(Some(value.as_bytes()))
}

#[test]
fn ids_are_hex_stable_under_one_key_and_differ_by_key_pool_and_backend() {
    let key = Some(&b"0123456789abcdef0123"[..]);
    let p = sticky_pool("web", 3, 0, key);
    let again = sticky_pool("web", 3, 0, key);
    let other_pool = sticky_pool("api", 3, 0, key);
    let other_key = sticky_pool("web", 3, 0, Some(b"fedcba9876543210fedc"));
    let ids: Vec<_> = (0..3).map(|i| id(&p, i)).collect();
    for (i, v) in ids.iter().enumerate() {
        assert_eq!(v.len(), STICKY_ID_LEN);
        assert!(v
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_eq!(
            *v,
            id(&again, i),
            "same key, same ids: a balancer pair agrees"
        );
        assert_ne!(*v, id(&other_pool, i));
        assert_ne!(*v, id(&other_key, i));
    }
    assert_ne!(ids[0], ids[1]);
    // Without a secret file: one key per process, the same for every table built.
    assert_eq!(
        id(&sticky_pool("web", 2, 0, None), 1),
        id(&sticky_pool("web", 2, 0, None), 1)
    );
}

#[test]
fn the_cookie_names_its_backend_and_anything_else_is_invalid() {
    let p = sticky_pool("web", 3, 0, None);
    let sticky = p.sticky().expect("sticky");
    let b = id(&p, 2);
    assert_eq!(sticky.presented(None), Presented::Absent);
    assert_eq!(presented(&p, &b), Presented::Backend(2));
    assert_eq!(presented(&p, &format!(" {b} ")), Presented::Backend(2));
    let mut flipped = b.clone().into_bytes();
    flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
    let flipped = String::from_utf8(flipped).expect("ascii");
    for bad in [
        &flipped[..],
        "",
        "c",
        &b[..31],
        &format!("{b}0"),
        &b.to_uppercase(),
    ] {
        assert_eq!(presented(&p, bad), Presented::Invalid, "{bad:?}");
    }
}

#[test]
fn set_cookie_names_the_backend_that_served_unless_the_cookie_already_did() {
    let p = sticky_pool("web", 2, 0, None);
    let sticky = p.sticky().expect("sticky");
    let a = p.backend_at(0).expect("a");
    let line = sticky.set_cookie(Presented::Absent, a, false).expect("set");
    let want = format!(
        "WEIR_B={}; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax",
        id(&p, 0)
    );
    assert_eq!(line.to_str().ok(), Some(want.as_str()));
    let secure = sticky.set_cookie(Presented::Invalid, a, true).expect("set");
    assert_eq!(
        secure.to_str().ok(),
        Some(format!("{want}; Secure").as_str())
    );
    assert!(sticky.set_cookie(Presented::Backend(0), a, false).is_none());
    assert!(sticky.set_cookie(Presented::Backend(1), a, false).is_some());
    // A backend of another table (another pool) has no cookie here.
    let stranger = Arc::new(Backend::new("web", &backend_config(0, 1, false)));
    assert!(sticky
        .set_cookie(Presented::Absent, &stranger, false)
        .is_none());

    let mut session = sticky_config(None, None);
    session.cookie = "s".to_owned();
    let configs = vec![backend_config(0, 1, false)];
    let mut config = pool_config("web", StrategyKind::RoundRobin, configs.clone());
    config.sticky = Some(session);
    let backends = vec![Arc::new(Backend::new("web", &configs[0]))];
    let p = Pool::new(&config, backends);
    let b = p.backend_at(0).expect("b");
    let line = p
        .sticky()
        .and_then(|s| s.set_cookie(Presented::Absent, b, false));
    let line = line.and_then(|l| l.to_str().ok()).expect("set");
    assert!(
        !line.contains("Max-Age"),
        "no ttl: a session cookie: {line}"
    );
}

#[tokio::test]
async fn a_cookie_keeps_its_backend_while_routable_and_is_rebalanced_after() {
    let p = sticky_pool("web", 3, 0, None);
    let gone = std::future::pending;
    for _ in 0..10 {
        let r = p.reserve_sticky(Presented::Backend(1), None, gone()).await;
        assert_eq!(r.expect("reserved").backend.address(), "b");
    }
    p.backend_at(1).expect("b").force(false, "test");
    for _ in 0..10 {
        let r = p.reserve_sticky(Presented::Backend(1), None, gone()).await;
        assert_ne!(
            r.expect("reserved").backend.address(),
            "b",
            "down: elsewhere"
        );
    }
    p.backend_at(1).expect("b").force(true, "test");
    p.backend_at(1)
        .expect("b")
        .set_admin(Some(AdminMode::Drain), None);
    let r = p.reserve_sticky(Presented::Backend(1), None, gone()).await;
    assert_ne!(
        r.expect("reserved").backend.address(),
        "b",
        "drained: elsewhere"
    );
    // Invalid and absent cookies are balanced over every backend.
    let mut seen = std::collections::HashSet::new();
    for _ in 0..6 {
        let r = p.reserve_sticky(Presented::Invalid, None, gone()).await;
        seen.insert(r.expect("reserved").backend.address().to_owned());
    }
    assert_eq!(seen.len(), 2, "a and c, b drained: {seen:?}");
}

#[tokio::test(start_paused = true)]
async fn a_pinned_request_waits_for_its_own_backend_and_does_not_hold_up_others() {
    let p = sticky_pool("web", 2, 1, None);
    let (a_held, mut waiter) = a_full_and_a_waiter(&p).await;
    // A request without a cookie is not queued behind it: b has room.
    let other = p.try_reserve().expect("b free");
    assert_eq!(other.backend.address(), "b");
    // b's release does not hand the pinned waiter b's slot.
    drop(other);
    assert!(poll_once(waiter.as_mut()).is_none(), "still waiting for a");
    drop(a_held);
    let got = waiter.await.expect("a's released slot");
    assert_eq!(got.backend.address(), "a");
    assert_eq!(p.shared().queue().depth(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_pinned_waiter_is_balanced_when_its_backend_goes_down() {
    let p = sticky_pool("web", 2, 1, None);
    let (_a, waiter) = a_full_and_a_waiter(&p).await;
    p.backend_at(0).expect("a").force(false, "test");
    let got = waiter.await.expect("balanced to b");
    assert_eq!(got.backend.address(), "b");
}

/// A request pinned to `a` waiting for its slot.
type Waiter<'p> = std::pin::Pin<Box<dyn Future<Output = Result<Reserved<'p>, Refused>> + 'p>>;

/// Backend `a`'s one slot, taken by a request whose cookie names it, and a second such
/// request, polled once: it waits, counted in the pool's queue.
async fn a_full_and_a_waiter(p: &Pool) -> (Reserved<'_>, Waiter<'_>) {
    let held = p.reserve_sticky(Presented::Backend(0), None, std::future::pending());
    let held = held.await.expect("a has room");
    assert_eq!(held.backend.address(), "a");
    let mut waiter: Waiter<'_> =
        Box::pin(p.reserve_sticky(Presented::Backend(0), None, std::future::pending()));
    assert!(
        poll_once(waiter.as_mut()).is_none(),
        "a is full: waits for a"
    );
    assert_eq!(p.shared().queue().depth(), 1);
    (held, waiter)
}

/// Polls `f` once: `Some` if it finished.
fn poll_once<F: std::future::Future + ?Sized>(f: std::pin::Pin<&mut F>) -> Option<F::Output> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.poll(&mut cx) {
        std::task::Poll::Ready(v) => Some(v),
        std::task::Poll::Pending => None,
    }
}
