//! Reconciling the probe tasks with each new table: stop, keep, start, restart, force up.

mod support;

use std::sync::Arc;

use support::{
    app_table, backend, checked, closed_port, only_backend, table, until, PoolSpec, TcpBackend,
};
use weir_balance::BackendRegistry;
use weir_health::HealthChecker;

const FAST: &str = "{ type: tcp, interval: 50ms, timeout: 500ms, rise: 1, fall: 1 }";
const SLOW: &str = "{ type: tcp, interval: 60s, timeout: 1s }";

#[tokio::test]
async fn removed_backend_is_no_longer_probed_and_kept_backend_keeps_its_task() {
    let (gone, kept) = (TcpBackend::start().await, TcpBackend::start().await);
    let registry = BackendRegistry::new();
    let t1 = app_table(&registry, 1, &[gone.addr, kept.addr], Some(FAST));
    let mut checker = HealthChecker::new();
    checker.reconcile(&t1);
    let (gone_backend, kept_backend) = (Arc::downgrade(&backend(&t1, 0)), backend(&t1, 1));
    until("both backends probed", || {
        gone.count() >= 2 && kept.count() >= 2
    })
    .await;
    let kept_task = checker.task_id(&kept_backend);

    let t2 = app_table(&registry, 2, &[kept.addr], Some(FAST));
    checker.reconcile(&t2);
    registry.retain(&t2);
    drop(t1);
    assert_eq!(checker.task_count(), 1);
    assert!(Arc::ptr_eq(&only_backend(&t2), &kept_backend));
    assert_eq!(
        checker.task_id(&kept_backend),
        kept_task,
        "kept backend keeps its task"
    );

    // The stopped task held the last reference to the removed backend.
    until("removed backend's task ended", || {
        gone_backend.upgrade().is_none()
    })
    .await;
    // One more probe of the kept backend lets the removed one's server accept any
    // connection made just before the abort.
    let probes_of_kept = kept.count();
    until("kept backend probed again", || {
        kept.count() > probes_of_kept
    })
    .await;
    let probes_of_gone = gone.count();
    let probes_of_kept = kept.count();
    until("kept backend probed three more times", || {
        kept.count() >= probes_of_kept + 3
    })
    .await;
    assert_eq!(
        gone.count(),
        probes_of_gone,
        "removed backend sees no more probes"
    );
    assert!(kept_backend.is_up());
}

#[tokio::test]
async fn reconcile_with_an_unchanged_check_sends_no_extra_probe_and_new_backends_are_probed_at_once(
) {
    let (old, new) = (TcpBackend::start().await, TcpBackend::start().await);
    let (registry, t1, mut checker, old_backend) = checked(old.addr, SLOW);
    until("first probe at once", || old.count() == 1).await;
    let task = checker.task_id(&old_backend);

    // Same table again: nothing changes.
    checker.reconcile(&t1);
    assert_eq!(checker.task_id(&old_backend), task);

    // A rebuilt table that adds a backend: the new one is probed at once (the interval is
    // a minute), the kept one is not probed again.
    let t2 = app_table(&registry, 2, &[old.addr, new.addr], Some(SLOW));
    checker.reconcile(&t2);
    assert_eq!(checker.task_count(), 2);
    assert_eq!(checker.task_id(&old_backend), task);
    until("new backend probed at once", || new.count() == 1).await;
    assert_eq!(old.count(), 1, "no extra probe of the kept backend");
}

#[tokio::test]
async fn changed_check_restarts_the_task_but_keeps_the_backend_state() {
    let held = closed_port();
    let addr = held.addr();
    let (registry, _t1, mut checker, b) = checked(addr, SLOW);
    until("dead backend down", || !b.is_up()).await;
    let task = checker.task_id(&b);

    let changed = "{ type: tcp, interval: 30s, timeout: 1s }";
    let t2 = app_table(&registry, 2, &[addr], Some(changed));
    checker.reconcile(&t2);
    assert_ne!(
        checker.task_id(&b),
        task,
        "a changed check restarts the task"
    );
    assert!(!b.is_up(), "state lives in the backend, not the task");
    assert_eq!(b.transitions(), 1);
}

#[tokio::test]
async fn removing_the_health_check_forces_the_pool_up_and_stops_probing() {
    let mut server = TcpBackend::start().await;
    let (registry, _t1, mut checker, b) = checked(server.addr, FAST);
    server.stop().await;
    until("backend down", || !b.is_up()).await;

    let t2 = app_table(&registry, 2, &[server.addr], None);
    checker.reconcile(&t2);
    assert!(b.is_up(), "forced up at once");
    assert_eq!(b.last_transition().reason, "health check removed");
    assert_eq!(checker.task_count(), 0);
    assert!(!checker.is_checking(&b));

    // Nothing probes it any more, so nothing can pull it down again.
    server.restart().await;
    let before = server.count();
    let other = TcpBackend::start().await;
    let t3 = table(
        &registry,
        3,
        &[
            PoolSpec {
                name: "app",
                backends: &[server.addr],
                health_check: None,
            },
            PoolSpec {
                name: "other",
                backends: &[other.addr],
                health_check: Some(FAST),
            },
        ],
    );
    checker.reconcile(&t3);
    until("other pool probed three times", || other.count() >= 3).await;
    assert_eq!(
        server.count(),
        before,
        "a pool without health_check sends no probes"
    );
}

#[tokio::test]
async fn shutdown_and_drop_stop_every_task() {
    let server = TcpBackend::start().await;
    let registry = BackendRegistry::new();
    let t = app_table(&registry, 1, &[server.addr], Some(FAST));
    let mut checker = HealthChecker::new();
    checker.reconcile(&t);
    until("probed", || server.count() >= 1).await;
    checker.shutdown();
    assert_eq!(checker.task_count(), 0);

    checker.reconcile(&t);
    assert_eq!(checker.task_count(), 1);
    let weak = Arc::downgrade(&only_backend(&t));
    drop(checker);
    drop(t);
    drop(registry);
    until("task ended with the checker", || weak.upgrade().is_none()).await;
}

#[test]
fn reconcile_outside_a_runtime_starts_nothing() {
    let registry = BackendRegistry::new();
    let addr = "127.0.0.1:9".parse().expect("literal address");
    let t = app_table(&registry, 1, &[addr], Some(FAST));
    let mut checker = HealthChecker::new();
    checker.reconcile(&t);
    assert_eq!(checker.task_count(), 0);
}
