//! The probe loop's schedule and hysteresis under paused time, with scripted probes.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Mutex;

use tokio::sync::Notify;
use weir_config::HealthCheckKind;

use super::*;

fn backend() -> Arc<Backend> {
    let addr: SocketAddr = "127.0.0.1:9".parse().expect("literal address");
    Arc::new(Backend::new("web", &weir_config::test_util::backend(addr)))
}

fn check(rise: u32, fall: u32) -> HealthCheckConfig {
    HealthCheckConfig {
        kind: HealthCheckKind::Tcp,
        interval: Duration::from_secs(1),
        timeout: Duration::from_millis(500),
        rise,
        fall,
    }
}

/// One probe call: when it happened and whether the backend was up at that moment
/// (which reflects every earlier result).
type Call = (Instant, bool);

/// Runs the probe loop over `results` and returns the calls, including the one after the
/// script ran out (which then never completes).
async fn run_script(
    backend: &Arc<Backend>,
    check: HealthCheckConfig,
    results: &[bool],
) -> Vec<Call> {
    let script = Arc::new(Mutex::new((
        results.iter().copied().collect::<VecDeque<_>>(),
        Vec::new(),
    )));
    let done = Arc::new(Notify::new());
    let probe = {
        let (script, done, backend) = (Arc::clone(&script), Arc::clone(&done), Arc::clone(backend));
        move || {
            let (script, done, backend) =
                (Arc::clone(&script), Arc::clone(&done), Arc::clone(&backend));
            async move {
                let next = {
                    let mut s = script.lock().expect("script lock");
                    s.1.push((Instant::now(), backend.is_up()));
                    s.0.pop_front()
                };
                match next {
                    Some(true) => Ok(()),
                    Some(false) => Err(ProbeError::Closed),
                    None => {
                        done.notify_one();
                        std::future::pending().await
                    }
                }
            }
        }
    };
    let task = tokio::spawn(run_with(Arc::clone(backend), check, probe));
    done.notified().await;
    task.abort();
    let calls = script.lock().expect("script lock").1.clone();
    calls
}

fn states(calls: &[Call]) -> Vec<bool> {
    calls.iter().map(|c| c.1).collect()
}

#[tokio::test(start_paused = true)]
async fn fragile_new_backend_goes_down_after_one_failure() {
    let b = backend();
    let calls = run_script(&b, check(2, 3), &[false]).await;
    assert_eq!(states(&calls), [true, false]);
    assert_eq!(
        b.last_transition().reason,
        "connection closed before the response status"
    );
}

#[tokio::test(start_paused = true)]
async fn checked_backend_needs_fall_failures_then_rise_successes() {
    let b = backend();
    let calls = run_script(&b, check(2, 3), &[true, false, false, false, true, true]).await;
    // Up while failures < fall, down after the third, up again after two successes.
    assert_eq!(states(&calls), [true, true, true, true, false, false, true]);
    assert_eq!(b.transitions(), 2);
    assert_eq!(b.last_transition().reason, REASON_PASSED);
}

#[tokio::test(start_paused = true)]
async fn a_success_resets_the_failure_count() {
    let b = backend();
    let calls = run_script(&b, check(1, 2), &[true, false, true, false, true]).await;
    assert!(
        states(&calls).iter().all(|&up| up),
        "never two failures in a row"
    );
}

#[tokio::test(start_paused = true)]
async fn probes_start_at_once_and_never_wait_longer_than_interval() {
    let b = backend();
    let start = Instant::now();
    let calls = run_script(&b, check(2, 3), &[true; 20]).await;
    assert_eq!(calls[0].0, start, "first probe at once");
    let interval = Duration::from_secs(1);
    let first_gap = calls[1].0 - calls[0].0;
    assert!(
        first_gap >= interval / 2 && first_gap <= interval,
        "{first_gap:?}"
    );
    for pair in calls[1..].windows(2) {
        let gap = pair[1].0 - pair[0].0;
        assert!(gap >= interval * 9 / 10 && gap <= interval, "{gap:?}");
    }
}

#[test]
fn jitter_spreads_within_bounds() {
    let mut j = Jitter(0x9E37_79B9_7F4A_7C15);
    let (low, high) = (Duration::from_millis(900), Duration::from_millis(1000));
    let draws: Vec<Duration> = (0..1000).map(|_| j.between(low, high)).collect();
    assert!(draws.iter().all(|d| *d >= low && *d <= high));
    let below_mid = draws
        .iter()
        .filter(|d| **d < Duration::from_millis(950))
        .count();
    assert!(
        (350..650).contains(&below_mid),
        "roughly uniform: {below_mid}"
    );
    assert_eq!(j.between(high, high), high);
}

#[tokio::test(start_paused = true)]
async fn passively_ejected_backend_returns_after_rise_passing_probes() {
    let yaml = "
listeners: [{ name: web, listen: 127.0.0.1:0, routes: [{ pool: app }] }]
pools:
  app:
    backends: [{ address: 127.0.0.1:9 }, { address: 127.0.0.1:10 }]
    health_check: { rise: 2 }
";
    let config = Arc::new(weir_config::parse(yaml, "w.yaml".as_ref()).expect("valid"));
    let table = weir_balance::BackendRegistry::new().build(config, 1);
    let pool = &table.pools()[0];
    let b = Arc::clone(&pool.primaries()[0]);
    for _ in 0..3 {
        pool.report_failure(&b, &"connect refused");
    }
    assert!(b.is_ejected() && !b.is_up());
    let calls = run_script(&b, check(2, 3), &[true, true]).await;
    assert_eq!(
        calls.iter().map(|c| c.1).collect::<Vec<_>>(),
        [false, false, true],
        "down until the second passing probe"
    );
    assert!(!b.is_ejected());
    assert_eq!(b.last_transition().reason, REASON_PASSED);
}

/// A probe that always passes and counts its calls in the returned counter.
fn counting_probe() -> (
    Arc<std::sync::atomic::AtomicUsize>,
    impl FnMut() -> std::future::Ready<Result<(), ProbeError>>,
) {
    let probes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&probes);
    let probe = move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        std::future::ready(Ok::<(), ProbeError>(()))
    };
    (probes, probe)
}

#[tokio::test(start_paused = true)]
async fn maint_skips_probes_and_drain_does_not() {
    let b = backend();
    let (probes, probe) = counting_probe();
    let task = tokio::spawn(run_with(Arc::clone(&b), check(1, 1), probe));
    let count = || probes.load(std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let before = count();
    assert!(before >= 3, "probing: {before}");
    b.set_admin(Some(AdminMode::Maint), None);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(count(), before, "no probe while in maint");
    b.set_admin(Some(AdminMode::Drain), None);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(count() >= before + 2, "drained backends are probed");
    task.abort();
}

#[tokio::test(start_paused = true)]
async fn leaving_maint_probes_at_once() {
    let b = backend();
    let (probes, probe) = counting_probe();
    let mut c = check(1, 1);
    c.interval = Duration::from_secs(600);
    b.set_admin(Some(AdminMode::Maint), None);
    let task = tokio::spawn(run_with(Arc::clone(&b), c, probe));
    let count = || probes.load(std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(count(), 0, "no probe while in maint");
    b.set_admin(Some(AdminMode::Ready), None);
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(
        count(),
        1,
        "probed at once, not after the 10-minute interval"
    );
    task.abort();
}
