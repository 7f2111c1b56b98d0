//! SIGHUP reloads (DESIGN.md §4 "Reload without errors"): under concurrent load the pool
//! changes with zero failed requests and zero refused connections, and an invalid file is
//! rejected with its position while the old configuration keeps serving.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use weir_e2e::client::{self, H1Client};
use weir_e2e::config::{backends, one_pool};
use weir_e2e::{spawn_backends, until, BackendHandle, Weir};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");
const LOG_WAIT: Duration = Duration::from_secs(5);

/// What the load clients saw.
#[derive(Default)]
struct Tally {
    ok: AtomicUsize,
    connections: AtomicUsize,
    failures: Mutex<Vec<String>>,
}

impl Tally {
    fn fail(&self, what: String) {
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if f.len() < 50 {
            f.push(what);
        }
    }
}

/// One client: requests in a loop, a new connection every 10 requests (so the listening
/// socket is exercised throughout), until `stop`.
async fn load_client(id: usize, addr: SocketAddr, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    while !stop.load(Ordering::SeqCst) {
        let mut client = match H1Client::connect(addr).await {
            Ok(c) => c,
            Err(e) => {
                tally.fail(format!("client {id}: connect: {e}"));
                // Back off so a dead weir does not turn this loop into a busy spin.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        tally.connections.fetch_add(1, Ordering::SeqCst);
        for _ in 0..10 {
            match client.get("/").await {
                Ok(r) if r.status == 200 => {
                    tally.ok.fetch_add(1, Ordering::SeqCst);
                }
                Ok(r) => tally.fail(format!("client {id}: status {}: {}", r.status, r.text())),
                Err(e) => {
                    tally.fail(format!("client {id}: request: {e}"));
                    break;
                }
            }
            if client.is_closed() {
                break;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_sighups_under_load_change_the_pool_with_zero_failed_requests() {
    let ([a, b, c], [ha, hb, hc]) = spawn_backends(["a", "b", "c"]).await;
    let config_ab = one_pool("round_robin", &backends(&[a, b]), "");
    let config_bc = one_pool("round_robin", &backends(&[b, c]), "");
    let mut weir = Weir::start(WEIR, &config_ab).await;
    let addr = weir.listener_addr("web");

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let clients: Vec<_> = (0..8)
        .map(|id| tokio::spawn(load_client(id, addr, Arc::clone(&stop), Arc::clone(&tally))))
        .collect();
    until("load reaching both backends", || {
        ha.hits() > 0 && hb.hits() > 0
    })
    .await;
    assert_eq!(hc.hits(), 0, "c is not in the first config");

    for i in 1..=30u64 {
        // Odd reloads swap a out for c, even ones swap c out for a.
        let (yaml, added, removed): (&str, &BackendHandle, &BackendHandle) = if i % 2 == 1 {
            (&config_bc, &hc, &ha)
        } else {
            (&config_ab, &ha, &hc)
        };
        let added_before = added.hits();
        let (line, generation) = weir.reload(yaml, LOG_WAIT).await;
        assert_eq!(generation, i + 1, "reload {i}: {line}");
        assert_eq!(
            weir.listener_addr("web"),
            addr,
            "the listener kept its port"
        );

        until(
            &format!("reload {i}: {} receiving traffic", added.name()),
            || added.hits() > added_before,
        )
        .await;
        // Once the new table serves, the removed backend only finishes what was in flight
        // (at most one request per client), while the added one keeps getting traffic.
        let removed_then = removed.hits();
        let added_then = added.hits();
        until(
            &format!("reload {i}: traffic flowing after the swap"),
            || added.hits() >= added_then + 16,
        )
        .await;
        assert!(
            removed.hits() <= removed_then + 8,
            "reload {i}: removed backend {} still receives traffic ({} -> {})",
            removed.name(),
            removed_then,
            removed.hits()
        );
    }

    stop.store(true, Ordering::SeqCst);
    for t in clients {
        t.await.expect("load client task");
    }
    let failures = tally
        .failures
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let ok = tally.ok.load(Ordering::SeqCst);
    eprintln!(
        "30 reloads: {ok} requests ok over {} connections; hits a={} b={} c={}",
        tally.connections.load(Ordering::SeqCst),
        ha.hits(),
        hb.hits(),
        hc.hits()
    );
    assert!(
        failures.is_empty(),
        "failed requests or refused connections: {failures:#?}"
    );
    assert!(
        ok >= 500,
        "too little load to prove anything: {ok} requests"
    );
    assert_eq!(weir.status().await["generation"], 31);
    assert!(weir.logs_with("config reload rejected").is_empty());
}

#[tokio::test]
async fn invalid_sighup_is_rejected_with_its_position_and_the_old_config_keeps_serving() {
    let ([a, b], [_ha, _hb]) = spawn_backends(["a", "b"]).await;
    let mut weir = Weir::start(WEIR, &one_pool("round_robin", &backends(&[a]), "")).await;
    let addr = weir.listener_addr("web");

    // Line 17 (1-based): the health check's interval is not a duration.
    let invalid = one_pool(
        "round_robin",
        &backends(&[b]),
        "    health_check:\n      type: http\n      interval: fast\n",
    );
    assert_eq!(
        invalid.lines().nth(16).map(str::trim),
        Some("interval: fast")
    );
    let mark = weir.log_mark();
    weir.rewrite_config(&invalid);
    weir.sighup().await;
    let line = weir
        .wait_for_log_after(mark, "config reload rejected", LOG_WAIT)
        .await;
    let error = line["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error text: {line}"));
    assert!(
        error.contains("weir.yaml:17:") && error.contains("pools.web.health_check.interval"),
        "the rejection should name file, line and field: {error:?}"
    );
    assert_eq!(line["level"], "WARN", "{line}");

    // A file that is not even YAML is rejected the same way.
    let line = weir
        .reload_rejected("listeners: [ { name: web\n", LOG_WAIT)
        .await;
    assert!(
        line["error"]
            .as_str()
            .is_some_and(|e| e.contains("weir.yaml:")),
        "{line}"
    );

    // Still serving the first configuration, on the same port.
    for _ in 0..5 {
        let resp = client::get(addr, "/").await;
        assert_eq!((resp.status.as_u16(), resp.text()), (200, "a".to_owned()));
    }
    assert_eq!(weir.status().await["generation"], 1);

    // A valid file afterwards is applied.
    let (line, generation) = weir
        .reload(&one_pool("round_robin", &backends(&[b]), ""), LOG_WAIT)
        .await;
    assert_eq!(generation, 2, "{line}");
    let resp = client::get(addr, "/").await;
    assert_eq!((resp.status.as_u16(), resp.text()), (200, "b".to_owned()));
}
