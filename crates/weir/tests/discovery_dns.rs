//! Issue 11, item 1: DNS discovery against a real DNS server on loopback (`dnsmasq`,
//! restarted on the same port to change its answers).
//!
//! - SRV backends join and leave under load with zero failed requests; a backend that
//!   stays is the same object (its `/status` history carries over) and a new one is
//!   health-checked.
//! - The DNS server stopped: the pool keeps serving its last answer, the failures are
//!   counted and `/status` shows the error and the time of the last good answer.
//! - A TTL shorter than `refresh` brings the next lookup sooner (lookup counter).
//! - SRV priorities give backups, SRV weights backend weights; A records the port.
//! - SIGHUP keeps the discovered backends and restarts a changed block; `weir check`
//!   reports a bad block at its path.
//!
//! Without dnsmasq the tests fail when `CI` is set (`.ci/run` installs `dnsmasq-base`)
//! and skip, loudly, elsewhere.

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde_json::Value;
use weir_e2e::config::{web_pool, FAST_HEALTH_CHECK};
use weir_e2e::discovery;
use weir_e2e::dns::{self, Dnsmasq, Records};
use weir_e2e::metrics::FAMILIES;
use weir_e2e::{eventually_within, log_str, spawn_backends, until, Load, Weir};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");
const LOG_WAIT: Duration = Duration::from_secs(20);
const SRV_NAME: &str = "_http._tcp.web.test";
const LOCALHOST: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// Whether dnsmasq is there; without it, fails in CI and says so loudly elsewhere.
async fn dnsmasq_or_skip() -> bool {
    if dns::available().await {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "`dnsmasq` is not installed: the DNS discovery tests need it in CI \
         (.ci/run installs it with `apt-get install -y dnsmasq-base`)"
    );
    let _ = writeln!(
        std::io::stderr(),
        "\n!!!!! SKIPPED DNS discovery test: `dnsmasq` is not installed \
         (apt-get install -y dnsmasq-base); set CI=1 to make this a failure !!!!!\n"
    );
    false
}

/// SRV records under [`SRV_NAME`]: for each `(backend, priority, weight)`, a target
/// `bN.web.test` at 127.0.0.1 on the backend's port.
fn srv_records(ttl: u32, targets: &[(SocketAddr, u16, u16)]) -> Records {
    let mut r = Records::with_ttl(ttl);
    for (i, (addr, priority, weight)) in targets.iter().enumerate() {
        let target = format!("b{i}.web.test");
        r = r
            .host(&target, addr.ip())
            .srv(SRV_NAME, &target, addr.port(), *priority, *weight);
    }
    r
}

/// One HTTP listener `web` to pool `web`, discovered by `dns` (a flow mapping's body),
/// with `pool_extra` lines.
fn config(dns: &str, pool_extra: &str) -> String {
    weir_e2e::config::discovered_web("dns", dns, pool_extra)
}

fn srv_dns(resolver: SocketAddr, refresh: &str) -> String {
    format!("name: {SRV_NAME}, type: srv, resolver: {resolver}, refresh: {refresh}")
}

/// The pool's backends in `/status`, by address.
fn addresses(status: &Value) -> Vec<String> {
    let mut v: Vec<String> = weir_e2e::status::backends(status, "web")
        .iter()
        .map(|b| b["address"].as_str().unwrap_or_default().to_owned())
        .collect();
    v.sort();
    v
}

fn sorted(addrs: &[SocketAddr]) -> Vec<String> {
    let mut v: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srv_backends_join_and_leave_under_load_with_zero_failed_requests() {
    if !dnsmasq_or_skip().await {
        return;
    }
    let ([a, b, c], [ha, hb, hc]) = spawn_backends(["a", "b", "c"]).await;
    let mut dns = Dnsmasq::start(&srv_records(1, &[(a, 10, 1), (b, 10, 1)])).await;
    let weir = Weir::start(WEIR, &config(&srv_dns(dns.addr(), "1s"), FAST_HEALTH_CHECK)).await;
    let web = weir.listener_addr("web");
    let status = weir.status().await;
    assert_eq!(
        addresses(&status),
        sorted(&[a, b]),
        "the first table has the first answer"
    );
    let b_since = weir_e2e::status::backend(&status, "web", b)["since_unix_ms"].clone();

    let load = Load::start(web, 8);
    load.wait_for_more(200, "before any change").await;

    // c joins.
    let all = srv_records(1, &[(a, 10, 1), (b, 10, 1), (c, 10, 1)]);
    let line = discovery::join(&weir, &hc, dns.restart(&all)).await;
    assert_eq!(log_str(&line, "pool"), "web", "{line}");

    // a leaves; it still runs, so its in-flight requests finish on it. Slowed down, it
    // has requests in flight when the table that drops it is swapped in.
    let b_c = srv_records(1, &[(b, 10, 1), (c, 10, 1)]);
    let line = discovery::leave(&weir, &ha, dns.restart(&b_c)).await;
    assert_eq!(log_str(&line, "added"), "", "{line}");
    let status = weir.status().await;
    assert_eq!(addresses(&status), sorted(&[b, c]));
    // Once out of the table, a can go away without costing a request.
    discovery::assert_left_cleanly(&weir, &status, (b, &b_since), load, [&ha, &hb, &hc]).await;

    let scrape = weir.metrics().await;
    for (family, kind, labels) in FAMILIES
        .iter()
        .filter(|(f, _, _)| f.starts_with("weir_discovery_"))
    {
        assert_eq!(scrape.types.get(*family).map(String::as_str), Some(*kind));
        let s = scrape
            .samples
            .iter()
            .find(|s| s.name == *family)
            .unwrap_or_else(|| panic!("no {family} series"));
        let mut want = labels.to_vec();
        want.sort_unstable();
        assert_eq!(
            s.labels.keys().map(String::as_str).collect::<Vec<_>>(),
            want
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_server_stopped_keeps_the_last_answer_serving_and_status_shows_the_error() {
    if !dnsmasq_or_skip().await {
        return;
    }
    let ([a, b], [ha, hb]) = spawn_backends(["a", "b"]).await;
    let records = srv_records(1, &[(a, 10, 1), (b, 10, 1)]);
    let mut dns = Dnsmasq::start(&records).await;
    let weir = Weir::start(WEIR, &config(&srv_dns(dns.addr(), "1s"), "")).await;
    let load = Load::start(weir.listener_addr("web"), 4);
    load.wait_for_more(100, "before the DNS server stops").await;

    dns.stop().await;
    let failed_before = weir.discovery_lookups("web", "failure").await;
    eventually_within("two failed lookups", LOG_WAIT, || async {
        (weir.discovery_lookups("web", "failure").await >= failed_before + 2.0).then_some(())
    })
    .await;
    let status = weir.status().await;
    let d = &weir_e2e::status::pool(&status, "web")["discovery"];
    assert!(d["last_error"].is_string(), "the error is shown: {d}");
    assert!(d["last_success_unix_ms"].as_u64() > Some(0), "{d}");
    assert!(
        d["last_lookup_unix_ms"].as_u64() >= d["last_success_unix_ms"].as_u64(),
        "{d}"
    );
    assert_eq!(d["backends"], 2, "{d}");
    assert_eq!(d["source"], format!("dns srv {SRV_NAME}"), "{d}");
    assert_eq!(
        addresses(&status),
        sorted(&[a, b]),
        "the last answer serves"
    );
    discovery::assert_still_served(&load, "while the DNS server is down", &[&ha, &hb]).await;
    weir.metrics()
        .await
        .assert_value("weir_discovery_backends", &[("pool", "web")], 2.0);

    dns.restart(&records).await;
    eventually_within("a good lookup again", LOG_WAIT, || async {
        let status = weir.status().await;
        weir_e2e::status::pool(&status, "web")["discovery"]["last_error"]
            .is_null()
            .then_some(())
    })
    .await;
    let report = load.stop().await;
    report.assert_no_failures("the DNS server down and back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ttl_shorter_than_refresh_brings_the_next_lookup_sooner() {
    if !dnsmasq_or_skip().await {
        return;
    }
    let ([a], [_ha]) = spawn_backends(["a"]).await;
    let dns = Dnsmasq::start(&srv_records(1, &[(a, 1, 1)])).await;
    // With refresh at an hour, only the 1 s TTL can bring further lookups.
    let weir = Weir::start(WEIR, &config(&srv_dns(dns.addr(), "1h"), "")).await;
    let first = weir.discovery_lookups("web", "success").await;
    assert!(first >= 1.0, "the first lookup was made at start");
    eventually_within("three more lookups, one per TTL", LOG_WAIT, || async {
        (weir.discovery_lookups("web", "success").await >= first + 3.0).then_some(())
    })
    .await;
    assert_eq!(weir.discovery_lookups("web", "failure").await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srv_priorities_make_backups_and_weights_become_backend_weights() {
    if !dnsmasq_or_skip().await {
        return;
    }
    let ([a, b, c], [ha, hb, hc]) = spawn_backends(["a", "b", "c"]).await;
    let dns = Dnsmasq::start(&srv_records(60, &[(a, 10, 30), (b, 10, 10), (c, 20, 5)])).await;
    let weir = Weir::start(WEIR, &config(&srv_dns(dns.addr(), "30s"), "")).await;
    let status = weir.status().await;
    let entry = |addr| weir_e2e::status::backend(&status, "web", addr).clone();
    assert_eq!(
        (entry(a)["weight"].clone(), entry(a)["backup"].clone()),
        (30.into(), false.into())
    );
    assert_eq!(
        (entry(b)["weight"].clone(), entry(b)["backup"].clone()),
        (10.into(), false.into())
    );
    assert_eq!(
        (entry(c)["weight"].clone(), entry(c)["backup"].clone()),
        (5.into(), true.into())
    );
    let mut client = weir.h1_client("web").await;
    for _ in 0..20 {
        assert_eq!(client.get("/").await.expect("request").status, 200);
    }
    assert_eq!(
        hc.hits(),
        0,
        "the backup gets nothing while primaries are up"
    );
    assert_eq!(ha.hits() + hb.hits(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_records_give_backends_on_the_configured_port() {
    if !dnsmasq_or_skip().await {
        return;
    }
    let ([a], [ha]) = spawn_backends(["a"]).await;
    let dns = Dnsmasq::start(&Records::with_ttl(30).host("web.test", LOCALHOST)).await;
    let yaml = config(
        &format!(
            "name: web.test, port: {}, resolver: {}",
            a.port(),
            dns.addr()
        ),
        "",
    );
    let weir = Weir::start(WEIR, &yaml).await;
    assert_eq!(addresses(&weir.status().await), [a.to_string()]);
    let mut client = weir.h1_client("web").await;
    client.assert_gets(3, "/", "a").await;
    assert_eq!(ha.hits(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_keeps_discovered_backends_and_restarts_a_changed_block() {
    if !dnsmasq_or_skip().await {
        return;
    }
    let ([s, a, b, c], [_hs, _ha, _hb, hc]) = spawn_backends(["s", "a", "b", "c"]).await;
    // Two names served from the start: the reload switches from one to the other.
    let records = srv_records(60, &[(a, 1, 1), (b, 1, 1)])
        .host("c.web.test", c.ip())
        .srv("_other._tcp.web.test", "c.web.test", c.port(), 1, 1);
    let dns = Dnsmasq::start(&records).await;
    let statics = format!("    backends: [{{ address: {s} }}]\n");
    let yaml = config(&srv_dns(dns.addr(), "30s"), &statics);
    let mut weir = Weir::start(WEIR, &yaml).await;
    assert_eq!(
        addresses(&weir.status().await),
        sorted(&[s, a, b]),
        "static and discovered"
    );

    let load = Load::start(weir.listener_addr("web"), 4);
    let line = weir.sighup_reloaded(LOG_WAIT).await;
    // The reloaded table was built with the discovered set: nothing flapped.
    assert_eq!(
        addresses(&weir.status().await),
        sorted(&[s, a, b]),
        "{line}"
    );

    let other = yaml.replace(SRV_NAME, "_other._tcp.web.test");
    let mark = weir.log_mark();
    weir.reload(&other, LOG_WAIT).await;
    let line = weir
        .wait_for_log_after(mark, "discovery updated", LOG_WAIT)
        .await;
    assert_eq!(log_str(&line, "added"), c.to_string(), "{line}");
    assert_eq!(
        log_str(&line, "removed"),
        sorted(&[a, b]).join(", "),
        "{line}"
    );
    assert_eq!(addresses(&weir.status().await), sorted(&[s, c]));
    let hits = hc.hits();
    until("c taking traffic", || hc.hits() > hits).await;
    load.wait_for_more(100, "after the reloads").await;
    load.stop()
        .await
        .assert_no_failures("reloads of a discovered pool");
}

#[tokio::test]
async fn weir_check_reports_a_bad_discovery_block_at_its_path() {
    let yaml = web_pool(
        "    discovery:
      dns:
        name: _http._tcp.web.test
        type: txt
        port: 99999
        refresh: 10ms
",
    );
    weir_e2e::assert_check_errors(
        WEIR,
        &yaml,
        &[
            "weir.yaml:11:9: pools.web.discovery.dns.type: unknown DNS record type \"txt\" (expected a, aaaa or srv)",
            "weir.yaml:12:9: pools.web.discovery.dns.port: port must be between 1 and 65535, got 99999",
            "weir.yaml:13:9: pools.web.discovery.dns.refresh: refresh must be at least 1s, got \"10ms\"",
            "weir.yaml: 3 errors",
        ],
    )
    .await;
}
