//! Issue 8, defect 1: a reload is applied whole or not at all. A failure at any step that
//! can fail (binding an address in use; duplicating or binding sockets past the
//! descriptor limit, for new addresses and for listeners restarted on their own socket
//! with another protocol)
//! rejects the reload, and afterwards the old configuration serves unchanged, through the
//! old listeners to the old pool, and `/status` and `/metrics` say so; a later valid
//! reload is applied.
//!
//! The descriptor limit is lowered on the running weir with `prlimit --pid` (util-linux),
//! to just above what it holds: enough to read the file and bind the new sockets, not
//! enough for every socket the new listeners need.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use weir_e2e::client;
use weir_e2e::{eventually, spawn_backends, Weir};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");
const LOG_WAIT: Duration = Duration::from_secs(5);
/// New sockets a reload asks for in the descriptor tests.
const NEW: usize = 16;
/// Descriptors left free beyond `NEW` (fewer than `NEW`, see [`limit_descriptors`]).
const SLACK: usize = 3;

/// Admin and one pool `web` with backend `backend`; one listener to it per `(name,
/// listen)`: HTTP, or TCP when the name starts with `tcp` (an HTTP client gets the
/// backend's own answer through it all the same).
fn yaml(listeners: &[(String, String)], backend: SocketAddr) -> String {
    let mut out =
        String::from("admin:\n  listen: 127.0.0.1:0\nshutdown_timeout: 10s\nlisteners:\n");
    for (name, listen) in listeners {
        let to_pool = if name.starts_with("tcp") {
            "    protocol: tcp\n    pool: web\n"
        } else {
            "    routes:\n      - pool: web\n"
        };
        out.push_str(&format!(
            "  - name: {name}\n    listen: {listen}\n{to_pool}"
        ));
    }
    out.push_str(&format!(
        "pools:\n  web:\n    backends:\n      - {{ address: {backend} }}\n"
    ));
    out
}

/// `prefix0`, `prefix1`, ... on `127.0.0.1:0`.
fn port_zero(prefix: &str, n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| (format!("{prefix}{i}"), "127.0.0.1:0".to_owned()))
        .collect()
}

/// `(name, bound)` of every listener in a `/status` document, sorted.
fn listeners(status: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = status["listeners"]
        .as_array()
        .unwrap_or_else(|| panic!("no listeners in /status: {status}"))
        .iter()
        .map(|l| (l["name"].to_string(), l["bound"].to_string()))
        .collect();
    out.sort();
    out
}

/// Sends SIGHUP and returns the `config reload rejected` line.
async fn rejected_reload(weir: &mut Weir, yaml: &str) -> Value {
    let mark = weir.log_mark();
    let line = weir.reload_rejected(yaml, LOG_WAIT).await;
    assert_eq!(line["level"], "WARN", "{line}");
    assert!(
        weir.logs_after(mark, "config reloaded").is_empty(),
        "a reload was both rejected and applied:\n{}",
        weir.log_tail(40)
    );
    line
}

/// Sends SIGHUP and waits for `config reloaded`.
async fn applied_reload(weir: &mut Weir, yaml: &str) -> Value {
    weir.reload(yaml, LOG_WAIT).await.0
}

/// After `failures` rejected reloads: everything `before` (a `/status` taken before them)
/// said still holds, every old listener answers from backend `a`, and the backend of
/// the rejected file, `rejected`, is nowhere.
async fn assert_old_config_serves(
    weir: &Weir,
    before: &Value,
    old: &[SocketAddr],
    rejected: SocketAddr,
    failures: f64,
) {
    for addr in old {
        for _ in 0..3 {
            let resp = client::get(*addr, "/").await;
            assert_eq!(
                (resp.status.as_u16(), resp.text()),
                (200, "a".to_owned()),
                "old listener {addr} after a rejected reload"
            );
        }
    }
    // A backend's in-flight count drops just after its response reached the client, so
    // `/status` may still count the last request: wait for the pools to read as before.
    let status = eventually("/status pools as before the rejected reload", || async {
        let status = weir.status().await;
        (status["pools"] == before["pools"]).then_some(status)
    })
    .await;
    for field in [
        "generation",
        "config_hash",
        "config_loaded_unix_ms",
        "pools",
    ] {
        assert_eq!(
            status[field], before[field],
            "/status {field} changed by a rejected reload: {status}"
        );
    }
    assert_eq!(
        listeners(&status),
        listeners(before),
        "/status listeners changed by a rejected reload"
    );
    let metrics = weir.metrics().await;
    let counted = |result| {
        metrics
            .value("weir_config_reloads_total", &[("result", result)])
            .unwrap_or(0.0)
    };
    assert_eq!((counted("failure"), counted("success")), (failures, 0.0));
    let hash = before["config_hash"].as_str().unwrap_or_default();
    assert_eq!(
        metrics.value("weir_config_info", &[("hash", hash)]),
        Some(1.0),
        "weir_config_info names the configuration that serves"
    );
    assert_eq!(
        metrics.value("weir_config_last_reload_successful", &[]),
        Some(0.0)
    );
    let rejected = rejected.to_string();
    assert_eq!(
        metrics.value("weir_backend_up", &[("backend", &rejected)]),
        None,
        "/metrics shows a backend of the rejected file"
    );
}

fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/fd: {e}"))
        .count()
}

/// The soft `RLIMIT_NOFILE` of `pid`, from `/proc/PID/limits`.
fn soft_nofile(pid: u32) -> String {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/limits: {e}"));
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .unwrap_or_else(|| panic!("no open-files limit in {limits}"))
        .to_owned()
}

async fn set_soft_nofile(pid: u32, soft: &str) {
    let status = tokio::process::Command::new("prlimit")
        .args(["--pid", &pid.to_string(), &format!("--nofile={soft}:")])
        .status()
        .await
        .expect("run prlimit (util-linux)");
    assert!(
        status.success(),
        "prlimit --pid {pid} --nofile={soft}: failed"
    );
    assert_eq!(soft_nofile(pid), soft);
}

/// Lowers weir's soft descriptor limit to what it holds now plus `NEW + SLACK`: a reload
/// that makes `NEW` sockets, and needs a second descriptor for each (weir keeps a
/// duplicate of every listening socket), runs out halfway. The slack absorbs a
/// descriptor or two closing late (a finished admin request) without giving room for
/// all `2 × NEW`. Returns the old limit.
async fn limit_descriptors(pid: u32) -> String {
    let old = soft_nofile(pid);
    let limit = open_descriptors(pid) + NEW + SLACK;
    set_soft_nofile(pid, &limit.to_string()).await;
    old
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_on_an_address_in_use_rejects_the_whole_reload() {
    let ([a, b], [_ha, _hb]) = spawn_backends(["a", "b"]).await;
    let web = vec![("web".to_owned(), "127.0.0.1:0".to_owned())];
    let mut weir = Weir::start(WEIR, &yaml(&web, a)).await;
    let web_addr = weir.listener_addr("web");
    let before = weir.status().await;

    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port to occupy");
    let busy_addr = busy.local_addr().expect("occupied address");
    let mut wanted = web.clone();
    wanted.push(("taken".to_owned(), busy_addr.to_string()));
    let new = yaml(&wanted, b);
    let line = rejected_reload(&mut weir, &new).await;
    let error = line["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("taken") && error.contains(&busy_addr.to_string()),
        "the rejection names the listener and address: {line}"
    );
    assert_old_config_serves(&weir, &before, &[web_addr], b, 1.0).await;

    // Once the address is free, the same file applies.
    drop(busy);
    let taken = reload_onto_a_freed_port(&mut weir, &web, busy_addr, b).await;
    assert_eq!(weir.listener_addr("taken"), taken);
    for addr in [web_addr, taken] {
        assert_eq!(client::get(addr, "/").await.text(), "b");
    }
    assert_eq!(weir.status().await["generation"], 2);
}

/// Reloads `web` plus listener `taken` on `freed`, a port just released, and returns
/// where `taken` listens. A test running in parallel may bind the same ephemeral port
/// first: then the reload is rightly rejected, and it is tried again on another freshly
/// released port (a few times at most).
async fn reload_onto_a_freed_port(
    weir: &mut Weir,
    web: &[(String, String)],
    freed: SocketAddr,
    backend: SocketAddr,
) -> SocketAddr {
    let mut port = freed;
    for _ in 0..5 {
        let mut wanted = web.to_vec();
        wanted.push(("taken".to_owned(), port.to_string()));
        let mark = weir.log_mark();
        weir.rewrite_config(&yaml(&wanted, backend));
        weir.sighup().await;
        let w = &*weir;
        let (applied, line) = eventually("the reload applied or rejected", || {
            let applied = w
                .logs_after(mark, "config reloaded")
                .pop()
                .map(|l| (true, l));
            let outcome = applied.or_else(|| {
                w.logs_after(mark, "config reload rejected")
                    .pop()
                    .map(|l| (false, l))
            });
            async move { outcome }
        })
        .await;
        if applied {
            assert_eq!(line["generation"], 2, "{line}");
            return port;
        }
        let error = line["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(&port.to_string()) && error.contains("in use"),
            "a reload onto a free port was rejected for another reason: {line}"
        );
        eprintln!("{port} was taken by someone else in between; trying another port");
        let next = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port to free");
        port = next.local_addr().expect("a freed address");
    }
    panic!("five freshly freed ports were all taken before weir could bind them");
}

/// Starts weir on `old`, lowers its descriptor limit, reloads `new` (rejected), restores
/// the limit and reloads `new` again (applied). Returns weir for checks on the result.
async fn reload_past_the_descriptor_limit(
    old: &[(String, String)],
    new: &[(String, String)],
) -> (Weir, Vec<SocketAddr>) {
    let ([a, b], [_ha, hb]) = spawn_backends(["a", "b"]).await;
    let mut weir = Weir::start(WEIR, &yaml(old, a)).await;
    let old_addrs: Vec<SocketAddr> = old.iter().map(|(n, _)| weir.listener_addr(n)).collect();
    let before = weir.status().await;

    let pid = weir.pid();
    let saved = limit_descriptors(pid).await;
    let new_yaml = yaml(new, b);
    let line = rejected_reload(&mut weir, &new_yaml).await;
    let error = line["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("Too many open files"),
        "the rejection says why: {line}"
    );
    set_soft_nofile(pid, &saved).await;
    assert_old_config_serves(&weir, &before, &old_addrs, b, 1.0).await;
    assert_eq!(hb.hits(), 0, "the pool of the rejected file got traffic");

    let line = applied_reload(&mut weir, &new_yaml).await;
    assert_eq!(line["generation"], 2, "{line}");
    for (name, _) in new {
        let addr = weir.listener_addr(name);
        assert_eq!(client::get(addr, "/").await.text(), "b", "listener {name}");
    }
    let status = weir.status().await;
    assert_eq!(status["generation"], 2);
    assert_eq!(
        status["listeners"].as_array().map(Vec::len),
        Some(new.len()),
        "{status}"
    );
    (weir, old_addrs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_out_of_descriptors_for_new_listeners_rejects_the_whole_reload() {
    let web = port_zero("web", 1);
    let mut new = web.clone();
    new.extend(port_zero("new", NEW));
    let (weir, old_addrs) = reload_past_the_descriptor_limit(&web, &new).await;
    assert_eq!(
        weir.listener_addr("web0"),
        old_addrs[0],
        "the kept listener kept its socket"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_out_of_descriptors_restarting_listeners_rejects_the_whole_reload() {
    // HTTP listeners turned TCP on the same configured address: each new task would
    // take over a duplicate of its predecessor's socket. (A rename alone keeps the task.)
    let (weir, old_addrs) =
        reload_past_the_descriptor_limit(&port_zero("old", NEW), &port_zero("tcp", NEW)).await;
    let mut took_over: Vec<SocketAddr> = (0..NEW)
        .map(|i| weir.listener_addr(&format!("tcp{i}")))
        .collect();
    took_over.sort();
    let mut old_addrs = old_addrs;
    old_addrs.sort();
    assert_eq!(
        took_over, old_addrs,
        "restarted listeners keep the old sockets"
    );
    for addr in old_addrs {
        eventually(
            "the old socket serving the new configuration",
            || async move { (client::get(addr, "/").await.text() == "b").then_some(()) },
        )
        .await;
    }
}
