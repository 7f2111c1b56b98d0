//! Issue 8, defect 1 (review): renaming a listener on a kept address never refuses or
//! drops a connection. Reloads switch the listener's name back and forth on the same
//! socket while clients send steadily, on fresh connections and on kept-alive ones:
//! every request is answered.
//!
//! The old accept task stopping before the table swap, and the old name resolving to the
//! renamed listener for one generation, are both needed: without the first, connections
//! the old task accepts after the swap are closed unanswered; without the second, a
//! request on a connection accepted under the old name gets 503.

use std::time::Duration;

use weir_e2e::{spawn_backend, Load, Weir};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");
const LOG_WAIT: Duration = Duration::from_secs(5);
const RELOADS: u64 = 30;
const CLIENTS: usize = 8;

/// One HTTP listener called `name` on `127.0.0.1:0` (so every reload keeps its socket),
/// routing to backend `backend`.
fn yaml(name: &str, backend: std::net::SocketAddr) -> String {
    format!(
        "admin:\n  listen: 127.0.0.1:0\nshutdown_timeout: 10s\nlisteners:\n  \
         - name: {name}\n    listen: 127.0.0.1:0\n    routes:\n      - pool: web\n\
         pools:\n  web:\n    backends:\n      - {{ address: {backend} }}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renaming_a_listener_back_and_forth_under_load_fails_no_request() {
    let (a, _ha) = spawn_backend("a").await;
    let mut weir = Weir::start(WEIR, &yaml("web", a)).await;
    let addr = weir.listener_addr("web");
    let load = Load::start(addr, CLIENTS);
    load.wait_for_more(50, "before the first reload").await;

    for i in 1..=RELOADS {
        let name = if i % 2 == 1 { "www" } else { "web" };
        let mark = weir.log_mark();
        weir.rewrite_config(&yaml(name, a));
        weir.sighup().await;
        let line = weir
            .wait_for_log_after(mark, "config reloaded", LOG_WAIT)
            .await;
        assert_eq!(line["generation"], i + 1, "reload {i}: {line}");
        let status = weir.status().await;
        let listeners = &status["listeners"];
        assert_eq!(
            (&listeners[0]["name"], &listeners[0]["bound"]),
            (
                &serde_json::json!(name),
                &serde_json::json!(addr.to_string())
            ),
            "reload {i}: the listener is {name} on the same socket: {status}"
        );
        assert_eq!(listeners.as_array().map(Vec::len), Some(1), "{status}");
        load.wait_for_more(20, &format!("after reload {i}")).await;
    }
    let report = load.stop().await;
    eprintln!(
        "{RELOADS} renames: {} ok over {} connections",
        report.ok, report.connections
    );
    report.assert_no_failures("renaming the listener on its address");
    assert!(weir.logs_with("config reload rejected").is_empty());
}
