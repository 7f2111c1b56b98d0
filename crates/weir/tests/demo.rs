//! `weir demo`: what a newcomer tries first must print working `curl` lines.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use weir_e2e::{client, Weir};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");

/// The `ADDR` in the first `curl http://ADDR/...` of `line`.
fn curl_addr(line: &str) -> SocketAddr {
    let start = line.find("curl http://").expect("curl line") + "curl http://".len();
    let rest = &line[start..];
    let end = rest.find('/').unwrap_or(rest.len());
    rest[..end]
        .parse()
        .unwrap_or_else(|e| panic!("no socket address in {line:?}: {e}"))
}

#[tokio::test]
async fn demo_prints_curl_lines_that_reach_three_backends() {
    let mut weir = Weir::demo(WEIR, &["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"]).await;
    let line = weir
        .wait_for_stdout("curl http://", Duration::from_secs(5))
        .await;
    let addr = curl_addr(&line);
    assert_ne!(
        addr.port(),
        0,
        "the printed URL must carry the real port: {line}"
    );
    assert_eq!(addr, weir.listener_addr(&listener_name(&weir)), "{line}");

    let mut names = HashSet::new();
    for _ in 0..30 {
        let resp = client::get(addr, "/").await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert!(resp.text().contains("demo backend"), "{:?}", resp.text());
        names.insert(resp.text());
    }
    assert_eq!(
        names.len(),
        3,
        "the demo spreads over three backends: {names:?}"
    );

    let health = weir.healthz().await.expect("demo admin answers");
    assert_eq!(health.status, 200);

    weir.sigint().await;
    let status = weir.wait_exit(Duration::from_secs(10)).await;
    assert!(status.success(), "demo exits 0 on Ctrl-C: {status}");
}

/// The demo's one listener, whatever it is called.
fn listener_name(weir: &Weir) -> String {
    let lines = weir.logs_with("listener bound");
    assert_eq!(lines.len(), 1, "one demo listener: {lines:?}");
    lines[0]["listener"]
        .as_str()
        .expect("listener name")
        .to_owned()
}
