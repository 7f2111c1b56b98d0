//! Issue 8: a chaos soak. For `WEIR_SOAK_SECS` seconds (5 when unset, so the ordinary
//! suite runs it too; CI runs it for 60), clients load weir while backends are killed and
//! restarted at random, SIGHUPs alternate two valid configs and now and then an invalid
//! one, and one backend that accepts and never answers keeps weir's response timeout
//! firing. At the end: no failed request, no descriptor or memory growth beyond a bound,
//! and weir alive and answering `/healthz`. The figures go to one `soak:` line.
//!
//! What "no failed request" means, exactly:
//! - Pool `main` (every path but `/hang`) has four backends. The chaos never kills the
//!   last backend that is alive *and* reported up in `/status`, and `retries: 3` gives a
//!   request an attempt on each of the four (refused connects and resets before a
//!   response are retried, GET being idempotent; the budget is set high enough never to
//!   refuse one). Backends answer after 0-3 ms, so kills also land on requests in flight.
//!   So every `GET /` has a live backend and must be answered 200: any other
//!   answer, a reset or a timeout counts as a failure, and the test wants none.
//! - Pool `hang` (`/hang`) has only the hanging backend and a 1 s response timeout, so
//!   every `GET /hang` must be answered 504, counted apart as "expected 504s"; anything
//!   else (a 503 from an ejection, a reset, a hang) is a failure. Its passive check counts
//!   each timeout, but `max_ejected_percent: 50` never lets it eject a pool's only backend.
//!
//! The chaos picks with a seeded RNG (`WEIR_SOAK_SEED` replays a run; the seed is printed)
//! and paces itself with short random sleeps: the one deliberate sleep here. Everything
//! else waits on an event (a port accepting, a reload counter, a gauge).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;

use weir_e2e::{
    eventually, spawn_backend, spawn_tcp_sink, status, BackendHandle, Load, LoadReport, Weir,
};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");
/// The soak's length when `WEIR_SOAK_SECS` is unset: long enough for every kind of event.
const DEFAULT_SECS: u64 = 5;
const BACKENDS: usize = 4;
/// Clients on pool `main`: half keep-alive, half a connection per request (see `Load`).
const MAIN_CLIENTS: usize = 6;
/// Clients on the hanging backend; each request takes the 1 s response timeout.
const HANG_CLIENTS: usize = 2;
/// Descriptors weir may hold beyond its count after warm-up once every client is gone:
/// idle pooled connections to the backends come and go with the load's shape.
const FD_GROWTH_LIMIT: usize = 32;
/// Resident memory weir may gain over the soak (a leak of 1 KiB a request shows in 60 s).
const RSS_GROWTH_LIMIT_KIB: u64 = 32 * 1024;

/// xorshift64*: a small seeded generator, so a failing schedule can be replayed.
struct Rng(u64);

impl Rng {
    /// Mixes `seed` (splitmix64's constant) so nearby seeds start far apart; never zero.
    fn new(seed: u64) -> Rng {
        Rng((seed ^ 0x9e37_79b9_7f4a_7c15).max(1))
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// How long a backend incarnation takes to answer: 0-3 ms, so a kill often lands on
/// requests in flight (reset before any response byte, retried elsewhere).
fn answer_delay(rng: &mut Rng) -> Duration {
    Duration::from_millis(rng.below(4))
}

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|e| panic!("{name}={v:?} is not a number: {e}")),
        Err(_) => default,
    }
}

/// Valid config `variant` (0 or 1): the same backends, a different strategy and weights.
fn config(main: &[SocketAddr], hang: SocketAddr, variant: usize) -> String {
    let strategy = ["weighted", "least_connections"][variant];
    let backends: String = main
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let weight = if variant == 0 { i + 1 } else { 1 };
            format!("      - {{ address: {a}, weight: {weight} }}\n")
        })
        .collect();
    format!(
        "\
admin:
  listen: 127.0.0.1:0
shutdown_timeout: 5s
listeners:
  - name: web
    listen: 127.0.0.1:0
    protocol: http
    routes:
      - match: {{ path_prefix: /hang }}
        pool: hang
      - pool: main
pools:
  main:
    strategy: {strategy}
    backends:
{backends}    health_check: {{ type: http, path: /health, interval: 100ms, timeout: 1s, rise: 2, fall: 2 }}
    passive: {{ consecutive_failures: 3, max_ejected_percent: 50 }}
    timeouts: {{ connect: 1s, response: 10s }}
    retries: 3
    retry_on: [connect_failure, reset]
    retry_budget: {{ percent: 100, min_per_second: 10000 }}
  hang:
    backends:
      - {{ address: {hang} }}
    passive: {{ consecutive_failures: 1, max_ejected_percent: 50 }}
    timeouts: {{ connect: 1s, response: 1s }}
"
    )
}

/// Invalid config `kind` (0..3), each refused for a different reason.
fn invalid_config(valid: &str, kind: u64) -> String {
    match kind {
        0 => valid.replace("    strategy: ", "    strategy: fastest_"),
        1 => valid.replace("    retries: 3\n", "    retries: [3\n"),
        _ => valid.replace("pool: hang\n", "pool: missing\n"),
    }
}

async fn reload_counts(weir: &Weir) -> (f64, f64) {
    let m = weir.metrics().await;
    let success = m.value("weir_config_reloads_total", &[("result", "success")]);
    let failure = m.value("weir_config_reloads_total", &[("result", "failure")]);
    (success.unwrap_or(0.0), failure.unwrap_or(0.0))
}

/// Writes `yaml`, sends SIGHUP, and waits for the reload counter: whether it applied.
async fn reload(weir: &mut Weir, yaml: &str) -> bool {
    let (ok, rejected) = reload_counts(weir).await;
    weir.rewrite_config(yaml);
    weir.sighup().await;
    let (ok2, rejected2) = eventually("the reload counted in /metrics", || async {
        let now = reload_counts(weir).await;
        (now.0 + now.1 > ok + rejected).then_some(now)
    })
    .await;
    assert_eq!(
        ok2 + rejected2,
        ok + rejected + 1.0,
        "one SIGHUP, one reload"
    );
    ok2 > ok
}

/// Waits until no client connection is open on listener `web`.
async fn wait_clients_gone(weir: &Weir) {
    eventually("every client connection closed", || async {
        let m = weir.metrics().await;
        let active = m.value("weir_listener_connections_active", &[("listener", "web")]);
        (active == Some(0.0)).then_some(())
    })
    .await;
}

/// The four main backends, each either serving (`Some`) or killed (`None`).
struct Fleet {
    addrs: Vec<SocketAddr>,
    /// The first incarnation of each backend: it holds the port, so a killed backend's
    /// port refuses and no other test can take it before the restart.
    first: Vec<BackendHandle>,
    live: Vec<Option<BackendHandle>>,
    /// Hits of incarnations already killed.
    dead_hits: usize,
    kills: usize,
    restarts: usize,
}

impl Fleet {
    fn hits(&self) -> usize {
        self.dead_hits
            + self
                .live
                .iter()
                .flatten()
                .map(BackendHandle::hits)
                .sum::<usize>()
    }

    /// A random backend that is alive (`alive`) or killed (`!alive`), if there is one.
    fn pick(&self, rng: &mut Rng, alive: bool) -> Option<usize> {
        let of: Vec<usize> = (0..BACKENDS)
            .filter(|&i| self.live[i].is_some() == alive)
            .collect();
        let n = u64::try_from(of.len()).ok().filter(|&n| n > 0)?;
        of.get(usize::try_from(rng.below(n)).ok()?).copied()
    }

    /// Kills backend `i` unless that would leave no backend alive and up in `/status`.
    async fn kill(&mut self, weir: &Weir, i: usize) {
        let Some(victim) = &self.live[i] else { return };
        let st = weir.status().await;
        let other_serving = (0..BACKENDS)
            .any(|j| j != i && self.live[j].is_some() && status::is_up(&st, "main", self.addrs[j]));
        if !other_serving {
            return;
        }
        victim.kill().await;
        self.dead_hits += victim.hits();
        self.live[i] = None;
        self.kills += 1;
    }

    /// Brings backend `i` back on its old port (a restarted process).
    async fn restart(&mut self, i: usize, delay: Duration) {
        if self.live[i].is_none() {
            let name = format!("m{i}");
            let backend = self.first[i].restart(&name).await;
            backend.set_delay(delay);
            self.live[i] = Some(backend);
            self.restarts += 1;
        }
    }
}

fn add(total: &mut LoadReport, more: LoadReport) {
    total.ok += more.ok;
    total.refused += more.refused;
    total.failed += more.failed;
    total.connections += more.connections;
    total.failures.extend(more.failures);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_soak_loses_no_request_that_had_a_live_backend() {
    let secs = env_u64("WEIR_SOAK_SECS", DEFAULT_SECS);
    let seed = env_u64("WEIR_SOAK_SEED", 0x5eed_0008);
    let mut rng = Rng::new(seed);

    let mut fleet = Fleet {
        addrs: Vec::new(),
        first: Vec::new(),
        live: Vec::new(),
        dead_hits: 0,
        kills: 0,
        restarts: 0,
    };
    for i in 0..BACKENDS {
        let (addr, handle) = spawn_backend(&format!("m{i}")).await;
        handle.set_delay(answer_delay(&mut rng));
        fleet.addrs.push(addr);
        fleet.first.push(handle.clone());
        fleet.live.push(Some(handle));
    }
    let (hang, sink) = spawn_tcp_sink().await;
    let configs = [0, 1].map(|v| config(&fleet.addrs, hang, v));
    let mut weir = Weir::start(WEIR, &configs[0]).await;
    let addr = weir.listener_addr("web");

    // Warm-up, then the baseline: the runtime, pools and allocator have reached their
    // working size, and no client is connected.
    let main = Load::start(addr, MAIN_CLIENTS);
    let hung = Load::start_with(addr, HANG_CLIENTS, "/hang", 504);
    main.wait_for_more(300, "warm-up").await;
    hung.wait_for_more(HANG_CLIENTS, "warm-up timeouts").await;
    let mut main_total = main.stop().await;
    let mut hang_total = hung.stop().await;
    wait_clients_gone(&weir).await;
    let (fd_before, rss_before) = (weir.open_fds(), weir.rss_kib());

    let main = Load::start(addr, MAIN_CLIENTS);
    let hung = Load::start_with(addr, HANG_CLIENTS, "/hang", 504);
    let (mut reloads_ok, mut reloads_rejected, mut variant) = (0usize, 0usize, 0usize);
    let deadline = Instant::now() + Duration::from_secs(secs);
    // At most one step per 50 ms: the bound on the loop's count.
    for _ in 0..secs * 20 {
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50 + rng.below(150))).await;
        match rng.below(10) {
            0..=3 => {
                if let Some(i) = fleet.pick(&mut rng, true) {
                    fleet.kill(&weir, i).await;
                }
            }
            4..=6 => {
                if let Some(i) = fleet.pick(&mut rng, false) {
                    fleet.restart(i, answer_delay(&mut rng)).await;
                }
            }
            // Every third reload is of an invalid file.
            _ if (reloads_ok + reloads_rejected) % 3 == 2 => {
                let bad = invalid_config(&configs[variant], rng.below(3));
                assert!(!reload(&mut weir, &bad).await, "an invalid config applied");
                reloads_rejected += 1;
            }
            _ => {
                variant = 1 - variant;
                assert!(
                    reload(&mut weir, &configs[variant]).await,
                    "a valid config was refused"
                );
                reloads_ok += 1;
            }
        }
    }
    let chaos_restarts = fleet.restarts;
    for i in 0..BACKENDS {
        fleet.restart(i, Duration::ZERO).await;
    }
    main.wait_for_more(100, "after the chaos").await;
    add(&mut main_total, main.stop().await);
    add(&mut hang_total, hung.stop().await);
    wait_clients_gone(&weir).await;

    // Pooled connections to killed backends close as weir notices; wait, bounded, for
    // the count to come down before judging it.
    let fd_bound = fd_before + FD_GROWTH_LIMIT;
    for _ in 0..100 {
        if weir.open_fds() <= fd_bound {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (fd_after, rss_after) = (weir.open_fds(), weir.rss_kib());
    let healthz = weir.healthz().await.map(|r| r.status.as_u16());
    let scrape = weir.metrics().await;
    let counted = scrape.sum("weir_http_requests_total", &[("listener", "web")]);
    let retries = scrape.sum("weir_retries_total", &[]);
    let upstream_errors = scrape.sum("weir_upstream_errors_total", &[]);
    let requests = main_total.ok + main_total.failed + hang_total.ok + hang_total.failed;
    let failures = main_total.failed + main_total.refused + hang_total.failed + hang_total.refused;

    println!(
        "soak: secs={secs} seed={seed:#x} requests={requests} ok={} expected_504={} \
         failed={failures} backend_hits={} hang_connections={} retries={retries} \
         upstream_errors={upstream_errors} kills={} restarts={} \
         reloads_ok={reloads_ok} reloads_rejected={reloads_rejected} fd_before={fd_before} \
         fd_after={fd_after} rss_before_kib={rss_before} rss_after_kib={rss_after} \
         healthz={healthz:?}",
        main_total.ok,
        hang_total.ok,
        fleet.hits(),
        sink.connections(),
        fleet.kills,
        chaos_restarts,
    );
    main_total.assert_no_failures("pool main (always a live backend)");
    hang_total.assert_no_failures("pool hang (every request an expected 504)");
    assert!(
        matches!(healthz, Ok(200)) && !weir.has_exited(),
        "weir is not alive and healthy after the soak: {healthz:?}\n{}",
        weir.log_tail(40)
    );
    assert!(
        fd_after <= fd_bound,
        "descriptors grew from {fd_before} to {fd_after} (bound +{FD_GROWTH_LIMIT})"
    );
    assert!(
        rss_after <= rss_before + RSS_GROWTH_LIMIT_KIB,
        "RSS grew from {rss_before} KiB to {rss_after} KiB (bound +{RSS_GROWTH_LIMIT_KIB} KiB)"
    );
    assert_eq!(
        counted as usize, requests,
        "weir_http_requests_total counts each client request once"
    );
    assert!(
        fleet.kills > 0
            && chaos_restarts > 0
            && reloads_rejected > 0
            && hang_total.ok > HANG_CLIENTS,
        "the soak was too short to exercise every kind of event"
    );
}
