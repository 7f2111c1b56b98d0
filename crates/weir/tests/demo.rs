//! `weir demo`: what a newcomer tries first must print working `curl` lines, and its show
//! (a backend killed under load and brought back) must really fail no request.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;
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
async fn demo_quiet_prints_curl_lines_that_reach_three_backends() {
    let mut weir = Weir::demo(WEIR, &["--quiet"]).await;
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
    assert_dashboard_printed(&weir).await;

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
    // --quiet sends nothing of its own: weir saw exactly our 30 requests.
    let served = weir.metrics().await.sum("weir_http_requests_total", &[]);
    assert_eq!(served, 30.0, "--quiet must not run the load loop");
    assert!(
        !weir.stdout_lines().iter().any(|l| l.contains("sent=")),
        "--quiet prints no load lines: {:?}",
        weir.stdout_lines()
    );

    let health = weir.healthz().await.expect("demo admin answers");
    assert_eq!(health.status, 200);

    weir.sigint().await;
    let status = weir.wait_exit(Duration::from_secs(10)).await;
    assert!(status.success(), "demo exits 0 on Ctrl-C: {status}");
}

/// One counts line of the show: `key=value` tokens (`sent`, `ok`, `failed`, `b1`...).
fn counts(line: &str) -> HashMap<String, u64> {
    line.split_whitespace()
        .filter_map(|token| token.split_once('='))
        .map(|(k, v)| {
            let v = v
                .parse()
                .unwrap_or_else(|e| panic!("{k}={v} in {line:?}: {e}"));
            (k.to_owned(), v)
        })
        .collect()
}

/// Index of the first line at or after `from` containing `needle`, waiting up to `timeout`.
async fn wait_line(weir: &Weir, from: usize, needle: &str, timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    loop {
        let lines = weir.stdout_lines();
        if let Some(i) = (from..lines.len()).find(|&i| lines[i].contains(needle)) {
            return i;
        }
        assert!(
            Instant::now() < deadline,
            "no stdout line with {needle:?} within {timeout:?}: {lines:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn demo_kills_a_backend_under_load_and_no_request_fails() {
    let mut weir = Weir::demo(
        WEIR,
        &[
            // Every 4 s: a returned backend (rise 2 at 1 s checks) is healthy again
            // before the next kill, so two backends serve at all times.
            "--kill-every",
            "4s",
            "--down-for",
            "1s",
        ],
    )
    .await;
    assert_dashboard_printed(&weir).await;
    // The first kill (b1) after 4 s, its return 1 s later; generous bounds for a busy CI.
    let kill = wait_line(&weir, 0, "] KILL b1 ", Duration::from_secs(30)).await;
    let b1 = killed_addr(&weir.stdout_lines()[kill]);
    watch_weir_stop_sending(&weir, kill, &b1).await;
    let back = wait_line(&weir, kill, "] BACK b1 ", Duration::from_secs(30)).await;
    // Back in rotation: its count moves again once weir's health checks pass.
    let lines = weir.stdout_lines();
    let at_back = counts(&lines[back])["b1"];
    let deadline = Instant::now() + Duration::from_secs(30);
    let moved = loop {
        let lines = weir.stdout_lines();
        if let Some(i) = (back + 1..lines.len()).find(|&i| {
            lines[i].contains("sent=") && counts(&lines[i]).get("b1").is_some_and(|&n| n > at_back)
        }) {
            break i;
        }
        assert!(
            Instant::now() < deadline,
            "b1 never took traffic again: {lines:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let mark = weir.log_mark();
    weir.sigint().await;
    let status = weir.wait_exit(Duration::from_secs(15)).await;
    assert!(status.success(), "demo exits 0 on Ctrl-C: {status}");
    // The demo backends outlive weir's drain: Ctrl-C takes no backend down under the
    // requests still in flight.
    let down = weir.logs_after(mark, "backend down");
    assert!(down.is_empty(), "a backend went down at Ctrl-C: {down:?}");

    let lines = weir.stdout_lines();
    let show: Vec<(usize, HashMap<String, u64>)> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with('[') && l.contains("sent="))
        .map(|(i, l)| (i, counts(l)))
        .collect();
    assert!(show.len() >= 4, "a line a second: {lines:#?}");
    for (i, c) in &show {
        assert_eq!(c["failed"], 0, "a request failed: {:?}", lines[*i]);
        let answered: u64 = (1..=3).map(|n| c[&format!("b{n}")]).sum();
        assert_eq!(
            answered, c["ok"],
            "every ok names its backend: {:?}",
            lines[*i]
        );
        assert!(c["ok"] + c["failed"] <= c["sent"], "{:?}", lines[*i]);
    }
    // While down, b1 answered nothing: its count is the same on every line from the kill
    // (printed once b1 is gone and the requests in flight then are done) to the return
    // (printed before b1 answers again), while the others kept serving.
    let position = |line: usize| {
        show.iter()
            .position(|(i, _)| *i == line)
            .expect("a counts line")
    };
    let down = &show[position(kill)..=position(back)];
    let frozen = down[0].1["b1"];
    for (i, c) in down {
        assert_eq!(c["b1"], frozen, "b1 answered while down: {:?}", lines[*i]);
    }
    let (first, last) = (&down[0].1, &down[down.len() - 1].1);
    assert_eq!(
        first["sent"],
        first["ok"] + first["failed"],
        "the kill line waits out the requests in flight"
    );
    assert!(
        last["b2"] + last["b3"] > first["b2"] + first["b3"],
        "the others served meanwhile: {:?} .. {:?}",
        lines[kill],
        lines[back]
    );
    assert!(moved > back);
}

#[tokio::test]
async fn demo_ctrl_c_lets_a_request_in_flight_reach_a_live_backend() {
    let mut weir = Weir::demo(WEIR, &[]).await;
    wait_line(&weir, 0, "sent=", Duration::from_secs(30)).await;
    let web = weir.listener_addr(&listener_name(&weir));
    // Half a request head: weir's drain waits for this connection to finish its request.
    let mut conn = TcpStream::connect(web).await.expect("connect to the demo");
    conn.write_all(b"GET /in-flight HTTP/1.1\r\nHost: demo\r\n")
        .await
        .expect("write half a head");
    let mark = weir.log_mark();
    weir.sigint().await;
    weir.wait_for_log_after(mark, "shutting down", Duration::from_secs(10))
        .await;
    // Before the fix the show had dropped the demo backends by now: 502.
    conn.write_all(b"\r\n").await.expect("finish the head");
    let resp = client::raw::read_response(&mut conn)
        .await
        .expect("an answer while draining");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(resp.text().contains("demo backend"), "{}", resp.text());
    let status = weir.wait_exit(Duration::from_secs(15)).await;
    assert!(status.success(), "demo exits 0 on Ctrl-C: {status}");
    let down = weir.logs_after(mark, "backend down");
    assert!(down.is_empty(), "a backend went down at Ctrl-C: {down:?}");
}

/// `ADDR` in `[  4.0s] KILL b1 ADDR: ...`.
fn killed_addr(line: &str) -> String {
    let rest = &line[line.find("KILL b1 ").expect("a kill line") + "KILL b1 ".len()..];
    rest.split(':').take(2).collect::<Vec<_>>().join(":")
}

/// From the kill of b1 to its return, scrapes weir's `/metrics`: weir must mark b1 down
/// (`weir_backend_up` 0), keep it down until the return line, and stop sending to it (its
/// `weir_upstream_errors_total` no longer grows). The counts lines alone cannot show this:
/// b1 has no listener to answer while it is down.
async fn watch_weir_stop_sending(weir: &Weir, kill: usize, b1: &str) {
    let labels = [("pool", "demo"), ("backend", b1)];
    let deadline = Instant::now() + Duration::from_secs(30);
    // The upstream errors of b1 once weir had marked it down (taken one scrape after
    // the first 0, so a request picked just before the ejection may still fail).
    let mut seen_down = 0;
    let mut errors_when_down = None;
    for _ in 0..2000 {
        // BACK is printed before b1 listens again, so a scrape started before the line
        // appeared still sees b1 as it was while down.
        let back = weir.stdout_lines()[kill..]
            .iter()
            .any(|l| l.contains("] BACK b1 "));
        if back {
            break;
        }
        let scrape = weir.metrics().await;
        let up = scrape.value("weir_backend_up", &labels);
        let errors = scrape.sum("weir_upstream_errors_total", &labels);
        match up {
            Some(0.0) => seen_down += 1,
            _ => assert_eq!(
                seen_down, 0,
                "weir took b1 {b1} back while it was down: weir_backend_up={up:?}"
            ),
        }
        if seen_down == 2 {
            errors_when_down = Some(errors);
        }
        if let Some(before) = errors_when_down {
            assert_eq!(
                errors, before,
                "weir kept sending to b1 {b1} after marking it down"
            );
        }
        assert!(Instant::now() < deadline, "b1 {b1} never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        errors_when_down.is_some(),
        "weir never marked b1 {b1} down while it was killed (seen down {seen_down} times)"
    );
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

/// The demo prints the dashboard's URL, with the admin server's real address.
async fn assert_dashboard_printed(weir: &Weir) {
    let dashboard = weir
        .wait_for_stdout("Dashboard:", Duration::from_secs(5))
        .await;
    assert!(
        dashboard.contains(&format!("http://{}/", weir.admin_addr())),
        "{dashboard}"
    );
}
