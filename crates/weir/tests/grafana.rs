//! The Grafana dashboard (`deploy/grafana/weir.json`) queries only metrics weir exports:
//! a real weir with an HTTP and a TCP listener serves a little traffic, the families of
//! its `/metrics` go to a file, and `deploy/grafana/check.py` checks every expression of
//! the dashboard against them. The same check on a copy with one name misspelled must fail,
//! so the check cannot pass vacuously. (That every expression parses as PromQL is checked
//! by `.ci/ops-checks.sh`, which has promtool.)

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use weir_e2e::config::web_and_tcp;
use weir_e2e::{eventually, spawn_backends, spawn_tcp_sink, Weir};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");
const CHECK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/grafana/check.py");
const DASHBOARD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../deploy/grafana/weir.json"
);
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(30);

async fn check(args: &[&str]) -> Output {
    let run = tokio::process::Command::new("python3")
        .arg(CHECK)
        .args(args)
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(SCRIPT_TIMEOUT, run)
        .await
        .expect("check.py finishes within 30 s")
        .expect("run python3 (the CI machine has it)")
}

fn path_arg(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_queries_only_metrics_a_running_weir_exports() {
    let ([a, b], [_ha, _hb]) = spawn_backends(["a", "b"]).await;
    let (db, sink) = spawn_tcp_sink().await;
    // A listener policy, a pool limit and a sticky cookie, so that the protection and
    // policy panels' families have samples too.
    let yaml = web_and_tcp(&[a, b], db)
        .replacen(
            "    listen: 127.0.0.1:0\n",
            "    listen: 127.0.0.1:0\n    rate_limit: { requests_per_second: 10000, burst: 10000, key: none }\n    deny: [192.0.2.0/24]\n",
            1,
        )
        .replacen(
            "    strategy: round_robin\n",
            "    strategy: round_robin\n    max_in_flight: 100\n    sticky: { cookie: WEIR_B }\n",
            1,
        );
    assert!(
        yaml.contains("rate_limit") && yaml.contains("max_in_flight") && yaml.contains("sticky"),
        "{yaml}"
    );
    let weir = Weir::start(WEIR, &yaml).await;

    let mut client = weir.h1_client("web").await;
    for _ in 0..4 {
        assert_eq!(client.get("/").await.expect("request").status, 200);
    }
    let mut raw = weir.connect("raw").await;
    raw.write_all(b"ping").await.expect("write to raw");
    sink.wait_bytes(4, "the sink receiving 4 bytes").await;
    let scrape = eventually("a health check of each backend", || async {
        let s = weir.metrics().await;
        (s.sum("weir_health_checks_total", &[("result", "success")]) >= 2.0).then_some(s)
    })
    .await;

    // `NAME TYPE` per family with at least one sample: what Prometheus would store.
    let mut families: Vec<String> = scrape
        .types
        .iter()
        .filter(|(name, _)| scrape.has_family(name))
        .map(|(name, kind)| format!("{name} {kind}\n"))
        .collect();
    families.sort();
    let families_file = weir.dir().join("families.txt");
    std::fs::write(&families_file, families.concat()).expect("write the family list");
    let families_arg = path_arg(&families_file);

    let ok = check(&["--metrics", &families_arg]).await;
    let (stdout, stderr) = (
        String::from_utf8_lossy(&ok.stdout),
        String::from_utf8_lossy(&ok.stderr),
    );
    assert!(
        ok.status.success() && stdout.contains("dashboard ok"),
        "check.py rejected the dashboard:\n{stdout}\n{stderr}\nfamilies:\n{}",
        families.concat()
    );

    // One metric misspelled: the check names it and fails.
    let json = std::fs::read_to_string(DASHBOARD).expect("read weir.json");
    assert!(
        json.contains("weir_retries_total"),
        "the dashboard shows retries"
    );
    let broken = weir.dir().join("misspelled.json");
    std::fs::write(
        &broken,
        json.replace("weir_retries_total", "weir_retry_total"),
    )
    .expect("write the misspelled copy");
    let bad = check(&[
        "--dashboard",
        &path_arg(&broken),
        "--metrics",
        &families_arg,
    ])
    .await;
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        !bad.status.success() && stderr.contains("weir_retry_total is not a metric weir exports"),
        "a misspelled metric passed the check: {stderr}"
    );
}
