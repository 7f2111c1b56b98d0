//! Issue 13 (1): the admin dashboard at `/`, loaded in a real browser (headless
//! Chromium) against the real binary: every backend of the pool shows up, and when one
//! dies the page says so. A screenshot is kept under `target/test-artifacts/`.
//!
//! Chromium is driven without chromedriver: `--dump-dom` prints the DOM after the page's
//! script ran (`--virtual-time-budget` lets its timers and fetches settle first), so the
//! test reads the rendered rows' `data-backend`/`data-state` attributes. Each run uses a
//! fresh, empty profile and is killed (its whole process group) if it overruns.
//!
//! Without Chromium the test fails when `CI` is set (`.ci/run` installs it and sets `CI`)
//! and is skipped with a loud line otherwise.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use weir_e2e::config::{backends, health_check, one_pool};
use weir_e2e::{client, eventually, spawn_backends, status, Load, Weir};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");
const CHROMIUM: &str = "chromium";
/// One browser run: a cold start on a loaded 2-core machine can take a while.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(90);
/// The pool's name is markup: the page must show it as text (if it were parsed, the
/// `<img>` would load and the CSP refusal would fail the test).
const POOL: &str = "<img src=x onerror=alert(1)>";
/// Page loads until the rendered DOM shows what is expected.
const DOM_ATTEMPTS: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_chromium_lists_every_backend_and_shows_one_going_down() {
    if !chromium_available().await {
        assert!(
            std::env::var_os("CI").is_none(),
            "`{CHROMIUM}` is not installed: the dashboard browser test needs it in CI \
             (.ci/run installs it with `apt-get install -y chromium`)"
        );
        // Straight to stderr, past the test harness's capture, so it shows in a passing run.
        let _ = writeln!(
            std::io::stderr(),
            "\n!!!!! SKIPPED dashboard browser test: `{CHROMIUM}` is not installed \
             (apt-get install -y chromium); set CI=1 to make this a failure !!!!!\n"
        );
        return;
    }
    let ([a, b, c], [_ha, _hb, hc]) = spawn_backends(["a", "b", "c"]).await;
    // A refused probe takes c out at once; a slow probe while Chromium loads the machine
    // must not flap a or b (a 2 s timeout, two failures in a row).
    let yaml = one_pool(
        "round_robin",
        &backends(&[a, b, c]),
        &health_check(100, 2000, 1, 2),
    )
    .replace("- pool: web\n", &format!("- pool: \"{POOL}\"\n"))
    .replace("\n  web:\n", &format!("\n  \"{POOL}\":\n"));
    let mut weir = Weir::start(WEIR, &yaml).await;
    let url = format!("http://{}/", weir.admin_addr());
    let addrs = [a, b, c];
    eventually("all three backends up in /status", || async {
        let s = weir.status().await;
        addrs
            .iter()
            .all(|addr| status::is_up(&s, POOL, *addr))
            .then_some(())
    })
    .await;
    // Some traffic, so the request and latency series exist for every backend.
    let web = weir.listener_addr("web");
    for _ in 0..9 {
        assert_eq!(client::get(web, "/").await.status, 200);
    }

    let dom = dom_until(&url, "every backend rendered as up", |dom| {
        addrs.iter().all(|addr| row_state(dom, *addr) == Some("up"))
    })
    .await;
    assert!(
        dom.contains("pool &lt;img src=x onerror=alert(1)&gt;"),
        "the pool's name as text"
    );
    assert!(dom.contains(r#"data-listener="web""#), "the listener's row");
    assert_eq!(text_of(&dom, "generation"), "1", "the reload generation");
    assert_eq!(text_of(&dom, "reload"), "ok", "the last reload's result");
    assert_eq!(text_of(&dom, "banner"), "", "no error banner");
    let drawn = dom
        .split(r#"<polyline points=""#)
        .skip(1)
        .any(|rest| rest.starts_with(|c: char| c.is_ascii_digit()));
    assert!(drawn, "a sparkline with points");

    hc.kill().await;
    eventually("the killed backend down in /status", || async {
        (!status::is_up(&weir.status().await, POOL, c)).then_some(())
    })
    .await;
    // Live traffic while the page loads, so the screenshot has rates and latencies.
    let load = Load::start(web, 1);
    // The p50/p99 of the live backends come from histogram deltas between two polls, so
    // they are part of what the page is waited for, not checked once after.
    let dom = dom_until(
        &url,
        "the killed backend down, the others up with p50/p99 under load",
        |dom| {
            row_state(dom, c) == Some("down")
                && [a, b].into_iter().all(|up| {
                    row_state(dom, up) == Some("up") && {
                        let r = row(dom, up);
                        r.contains(" µs</td>") || r.contains(" ms</td>")
                    }
                })
        },
    )
    .await;
    assert!(
        row(&dom, c).contains("connect"),
        "the down backend's reason: {}",
        row(&dom, c)
    );
    // The filter matches address, state and reason, not the sparkline's title.
    let search = row(&dom, c)
        .split_once(r#"data-search=""#)
        .and_then(|(_, rest)| rest.split_once('"'))
        .map_or("", |(value, _)| value);
    assert!(
        search.starts_with(&format!("{c} down ")) && search.contains("connect"),
        "what the filter searches: {}",
        row(&dom, c)
    );

    // A rejected reload: the old configuration keeps serving, the page says the reload failed.
    let mark = weir.log_mark();
    weir.rewrite_config("listeners: [\n");
    weir.sighup().await;
    weir.wait_for_log_after(mark, "config reload rejected", Duration::from_secs(5))
        .await;
    let dom = dom_until(&url, "the rejected reload", |dom| {
        text_of(dom, "reload").starts_with("FAILED")
    })
    .await;
    assert_eq!(text_of(&dom, "generation"), "1", "still generation 1");
    assert_eq!(text_of(&dom, "reloads"), "0 ok, 1 failed");
    let shot = screenshot(&url).await;
    load.stop().await;
    println!("dashboard screenshot: {}", shot.display());
}

/// Two scrapes around a reload that removed listener `b` (its series of the pool are gone)
/// and recreated listener `a`'s 503 series: the page's own functions, run in Chromium,
/// must see 11 requests and 1 5xx, not the whole remaining count as new.
const RELOAD_DELTAS: &str = r#"
const then = parseMetrics(`weir_http_requests_total{listener="a",pool="p",backend="x",code="200"} 100
weir_http_requests_total{listener="a",pool="p",backend="x",code="503"} 7
weir_http_requests_total{listener="b",pool="p",backend="x",code="200"} 50
weir_http_requests_total{listener="b",pool="p",backend="x",code="503"} 10
weir_backend_response_duration_seconds_bucket{pool="p",backend="x",le="0.1"} 100
weir_backend_response_duration_seconds_bucket{pool="p",backend="x",le="+Inf"} 167
`);
const now = parseMetrics(`weir_http_requests_total{listener="a",pool="p",backend="x",code="200"} 110
weir_http_requests_total{listener="a",pool="p",backend="x",code="503"} 1
weir_backend_response_duration_seconds_bucket{pool="p",backend="x",le="0.1"} 105
weir_backend_response_duration_seconds_bucket{pool="p",backend="x",le="+Inf"} 116
`);
const r = reqDeltas(now, then).get(key("p", "x"));
const h = histDeltas(now, then).get(key("p", "x"));
document.body.textContent = "RESULT " + JSON.stringify([r.req, r.five, h.map(b => b[1])]) + " END";
"#;

#[tokio::test]
async fn dashboard_deltas_ignore_series_a_reload_deleted() {
    if !chromium_available().await {
        assert!(
            std::env::var_os("CI").is_none(),
            "`{CHROMIUM}` is not installed"
        );
        return;
    }
    let html = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../weir-admin/src/dashboard.html"
    ))
    .expect("read dashboard.html");
    // The page's pure functions: from `function key(` up to the formatting helpers.
    let start = html.find("function key(").expect("key()");
    let end = html.find("function fmtSecs(").expect("fmtSecs()");
    let page = format!(
        "<!DOCTYPE html><html><body><script>{}{RELOAD_DELTAS}</script></body></html>",
        &html[start..end]
    );
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-deltas.html");
    std::fs::write(&path, page).expect("write the test page");
    let dom = chromium(&format!("file://{}", path.display()), &["--dump-dom"]).await;
    // 10 more 200s on a; a's 503 recreated (1, counted from 0); b's series gone (0).
    // Buckets: 5 more at le=0.1; +Inf went down (recreated): 116 from 0.
    assert!(
        dom.contains("RESULT [11,1,[5,116]] END"),
        "per-series deltas: {dom}"
    );
}

/// The `data-state` of the row whose `data-backend` is `addr`, from the dumped DOM.
fn row_state(dom: &str, addr: SocketAddr) -> Option<&str> {
    let start = dom.find(&format!(r#"data-backend="{addr}""#))?;
    let tag = &dom[start..start + dom[start..].find('>')?];
    let value = tag.split(r#"data-state=""#).nth(1)?;
    value.split('"').next()
}

/// The rendered `<tr>` of backend `addr`.
fn row(dom: &str, addr: SocketAddr) -> &str {
    let at = dom
        .find(&format!(r#"data-backend="{addr}""#))
        .unwrap_or_else(|| panic!("no row for {addr}"));
    let start = dom[..at].rfind("<tr").unwrap_or(at);
    let end = dom[at..].find("</tr>").map_or(dom.len(), |e| at + e);
    &dom[start..end]
}

/// The text of the element with `id` (up to its first child tag or end tag).
fn text_of<'a>(dom: &'a str, id: &str) -> &'a str {
    dom.split(&format!(r#"id="{id}""#))
        .nth(1)
        .and_then(|rest| rest.split_once('>'))
        .and_then(|(_, rest)| rest.split('<').next())
        .unwrap_or_else(|| panic!("no element #{id} in the DOM:\n{dom}"))
}

/// Loads the page until `done` holds for its rendered DOM, at most [`DOM_ATTEMPTS`] times.
///
/// # Panics
/// When it never does, showing the last DOM.
async fn dom_until(url: &str, what: &str, done: impl Fn(&str) -> bool) -> String {
    let mut last = String::new();
    for _ in 0..DOM_ATTEMPTS {
        last = chromium(url, &["--dump-dom"]).await;
        if done(&last) {
            return last;
        }
    }
    panic!("the dashboard never showed {what} in {DOM_ATTEMPTS} loads; last DOM:\n{last}");
}

/// Takes a 1280×900 screenshot into `target/test-artifacts/dashboard.png`.
async fn screenshot(url: &str) -> PathBuf {
    let dir = target_dir().join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    let path = dir.join("dashboard.png");
    // A stale screenshot from an earlier run must not pass for this one.
    let _ = std::fs::remove_file(&path);
    let arg = format!("--screenshot={}", path.display());
    chromium(url, &[&arg, "--window-size=1280,900", "--hide-scrollbars"]).await;
    let size = std::fs::metadata(&path)
        .unwrap_or_else(|e| panic!("no screenshot at {}: {e}", path.display()))
        .len();
    assert!(size > 1000, "screenshot is only {size} bytes");
    path
}

/// `target/` (the parent of Cargo's per-target scratch directory).
fn target_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).to_path_buf()
}

async fn chromium_available() -> bool {
    tokio::process::Command::new(CHROMIUM)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}

/// Runs headless Chromium on `url` with a fresh profile; returns its stdout.
///
/// # Panics
/// When it cannot start, fails, or overruns [`BROWSER_TIMEOUT`] (then its process group,
/// which this run created, is killed).
async fn chromium(url: &str, extra: &[&str]) -> String {
    static RUN: AtomicU64 = AtomicU64::new(0);
    let profile = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "chromium-profile-{}-{}",
        std::process::id(),
        RUN.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&profile);
    std::fs::create_dir_all(&profile).unwrap_or_else(|e| panic!("create profile dir: {e}"));
    let mut cmd = tokio::process::Command::new(CHROMIUM);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        "--virtual-time-budget=5000",
        // The page's console on stderr: script errors and CSP refusals fail the test.
        "--enable-logging=stderr",
        "--v=0",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(extra)
    .arg(url)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .process_group(0)
    .kill_on_drop(true);
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {CHROMIUM}: {e}"));
    let pid = child.id().expect("a just-spawned child has a pid");
    let output = tokio::time::timeout(BROWSER_TIMEOUT, child.wait_with_output()).await;
    let output = match output {
        Ok(result) => result.unwrap_or_else(|e| panic!("wait for {CHROMIUM}: {e}")),
        Err(_) => {
            // The group id is the browser's pid (process_group(0)); renderers are in it.
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status();
            panic!("{CHROMIUM} did not finish within {BROWSER_TIMEOUT:?} on {url}");
        }
    };
    let _ = std::fs::remove_dir_all(&profile);
    assert!(
        output.status.success(),
        "{CHROMIUM} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    let console: Vec<&str> = stderr.lines().filter(|l| l.contains(":CONSOLE")).collect();
    let bad_lines = [
        "Uncaught",
        "Refused to",
        "Content Security Policy",
        "Failed to load",
        "dashboard error",
    ];
    for bad in bad_lines {
        assert!(
            !console.iter().any(|l| l.contains(bad)),
            "the page logged {bad:?}:\n{}",
            console.join("\n")
        );
    }
    String::from_utf8_lossy(&output.stdout).into_owned()
}
