//! The join-and-leave-under-load scenario every discovery source (DNS, Kubernetes) is
//! held to, so each source's test states only how it adds and removes a backend.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;

use crate::{log_str, until, BackendHandle, Load, Weir};

/// `change` adds `joined`: the update it causes names it added and nothing removed, and
/// `joined` then takes traffic (20 requests more than before) and is health-checked.
/// Returns the update's log line.
///
/// # Panics
/// When any of that does not happen.
pub async fn join(weir: &Weir, joined: &BackendHandle, change: impl Future<Output = ()>) -> Value {
    let line = weir.discovery_updated(change).await;
    assert_eq!(log_str(&line, "added"), joined.addr().to_string(), "{line}");
    assert_eq!(log_str(&line, "removed"), "", "{line}");
    let hits = joined.hits();
    until("the joined backend taking traffic", || {
        joined.hits() > hits + 20
    })
    .await;
    until("the joined backend health-checked", || {
        joined.health_probes() > 0
    })
    .await;
    line
}

/// `change` removes `leaving` while it has requests in flight (it is slowed down first,
/// so the table that drops it is swapped in under them): the update names it removed.
/// Returns the update's log line.
///
/// # Panics
/// When any of that does not happen.
pub async fn leave(
    weir: &Weir,
    leaving: &BackendHandle,
    change: impl Future<Output = ()>,
) -> Value {
    leaving.set_delay(Duration::from_millis(100));
    until("requests in flight on the leaving backend", || {
        leaving.in_progress() > 0
    })
    .await;
    let line = weir.discovery_updated(change).await;
    assert_eq!(
        log_str(&line, "removed"),
        leaving.addr().to_string(),
        "{line}"
    );
    line
}

/// While the discovery source is down (`what`), the last good set keeps serving: `load`
/// gets 200 more requests through, and each of `backends` takes some of them.
///
/// # Panics
/// When it does not.
pub async fn assert_still_served(load: &Load, what: &str, backends: &[&BackendHandle]) {
    let before: Vec<usize> = backends.iter().map(|b| b.hits()).collect();
    load.wait_for_more(200, what).await;
    assert!(
        backends.iter().zip(before).all(|(b, hits)| b.hits() > hits),
        "every backend still gets traffic"
    );
}

/// After the first of `backends` left (its removal shown in `status`): `kept` is the same
/// backend object as when its `since_unix_ms` was `since`; the one that left drains and
/// can then go away without costing a request (`load` finishes 300 more with no
/// failure); pool `web`'s discovery counts the others, after at least three successful
/// lookups.
///
/// # Panics
/// When any of that does not hold.
pub async fn assert_left_cleanly(
    weir: &Weir,
    status: &Value,
    (kept, since): (SocketAddr, &Value),
    load: Load,
    backends: [&BackendHandle; 3],
) {
    let left = backends[0];
    assert_eq!(
        &crate::status::backend(status, "web", kept)["since_unix_ms"],
        since,
        "{kept} is the same backend object through both updates"
    );
    until("the left backend drained", || left.in_progress() == 0).await;
    left.kill().await;
    load.finish_without_failures(300, "discovery join + leave under load", &backends)
        .await;
    let scrape = weir.metrics().await;
    scrape.assert_value("weir_discovery_backends", &[("pool", "web")], 2.0);
    assert!(weir.discovery_lookups("web", "success").await >= 3.0);
}
