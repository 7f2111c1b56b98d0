//! Unit tests of a backend's state machine: hysteresis, transitions, passive
//! ejection, slow-start marks and downtime.

use super::*;
use crate::test_support::backend_config;

fn backend() -> Arc<Backend> {
    Arc::new(Backend::new("web", &backend_config(0, 2, false)))
}

#[test]
fn new_backend_is_up_with_its_config() {
    let b = backend();
    assert!(b.is_up());
    assert_eq!((b.pool(), b.address(), b.weight()), ("web", "a", 2));
    assert_eq!(b.addr().port(), 10_000);
    assert!(!b.is_backup());
    assert_eq!(b.transitions(), 0);
    assert_eq!(b.last_transition(), LastTransition::default());
}

#[test]
fn first_failure_of_a_new_backend_marks_it_down() {
    let b = backend();
    assert_eq!(b.observe(false, 2, 3, "refused"), Some(Transition::Down));
    assert!(!b.is_up());
    assert_eq!(b.last_transition().reason, "refused");
}

/// One probe of `b` with rise 2 and fall 3, reason `ok` or `x`.
fn probe(b: &Backend, ok: bool) -> Option<Transition> {
    b.observe(ok, 2, 3, if ok { "ok" } else { "x" })
}

#[test]
fn checked_backend_needs_fall_failures_in_a_row() {
    let b = backend();
    assert_eq!(probe(&b, true), None, "already up: no transition");
    assert_eq!(probe(&b, false), None);
    assert_eq!(probe(&b, false), None);
    assert_eq!(b.consecutive(), (0, 2));
    assert_eq!(probe(&b, true), None, "a success resets the count");
    assert_eq!(b.consecutive(), (0, 0));
    assert_eq!(probe(&b, false), None);
    assert_eq!(probe(&b, false), None);
    assert_eq!(b.observe(false, 2, 3, "timeout"), Some(Transition::Down));
    assert_eq!(b.transitions(), 1);
}

#[test]
fn down_backend_needs_rise_successes_in_a_row() {
    let b = backend();
    assert_eq!(probe(&b, false), Some(Transition::Down));
    assert_eq!(probe(&b, true), None);
    assert_eq!(probe(&b, false), None, "a failure resets the count");
    assert_eq!(b.consecutive(), (0, 0));
    assert_eq!(probe(&b, true), None);
    assert_eq!(b.observe(true, 2, 3, "check passed"), Some(Transition::Up));
    assert!(b.is_up());
    assert_eq!(b.last_transition().reason, "check passed");
    assert!(b.last_transition().at_unix_ms > 0);
}

#[test]
fn transitions_are_reported_once() {
    let b = backend();
    assert_eq!(b.observe(false, 1, 1, "x"), Some(Transition::Down));
    for _ in 0..5 {
        assert_eq!(b.observe(false, 1, 1, "x"), None);
    }
    assert_eq!(b.observe(true, 1, 1, "ok"), Some(Transition::Up));
    for _ in 0..5 {
        assert_eq!(b.observe(true, 1, 1, "ok"), None);
    }
    assert_eq!(b.transitions(), 2);
}

#[test]
fn zero_thresholds_act_as_one() {
    let b = backend();
    assert_eq!(b.observe(true, 0, 0, "ok"), None);
    assert_eq!(b.observe(false, 0, 0, "x"), Some(Transition::Down));
    assert_eq!(b.observe(true, 0, 0, "ok"), Some(Transition::Up));
}

#[test]
fn force_reports_only_a_change() {
    let b = backend();
    assert_eq!(b.force(true, "no check"), None);
    assert_eq!(b.force(false, "admin"), Some(Transition::Down));
    assert_eq!(b.force(false, "admin"), None);
    assert_eq!(b.force(true, "no check"), Some(Transition::Up));
}

#[test]
fn in_flight_guard_counts_until_dropped() {
    let b = backend();
    let g1 = b.start_request();
    let g2 = b.start_request();
    assert_eq!(b.in_flight(), 2);
    assert!(Arc::ptr_eq(g1.backend(), &b));
    drop(g1);
    assert_eq!(b.in_flight(), 1);
    drop(g2);
    assert_eq!(b.in_flight(), 0);
}

#[test]
fn update_settings_changes_weight_and_backup() {
    let b = backend();
    b.update_settings(&backend_config(0, 7, true));
    assert_eq!(b.weight(), 7);
    assert!(b.is_backup());
}

#[test]
fn weight_override_survives_settings_until_the_configured_weight_changes() {
    let b = backend();
    let w = b.configured_weight();
    let change = b.set_admin(Some(AdminMode::Drain), Some(9));
    assert_eq!(
        (change.old_mode, change.new_mode),
        (AdminMode::Ready, AdminMode::Drain)
    );
    assert_eq!((change.old_weight, change.new_weight), (w, 9));
    assert!(!b.is_routable() && b.is_up(), "drained, still healthy");
    // A reload with the same configured weight keeps the override and the mode.
    assert_eq!(b.update_settings(&backend_config(0, w, false)), None);
    assert_eq!((b.weight(), b.weight_override()), (9, Some(9)));
    assert_eq!(b.admin_mode(), AdminMode::Drain);
    // One that changes it: the file wins.
    assert_eq!(b.update_settings(&backend_config(0, w + 1, false)), Some(9));
    assert_eq!((b.weight(), b.weight_override()), (w + 1, None));
    assert_eq!(b.admin_mode(), AdminMode::Drain, "the mode is not a weight");
}

#[test]
fn leaving_maint_makes_the_backend_fragile_again() {
    let b = backend();
    b.observe(true, 2, 3, "ok");
    b.set_admin(Some(AdminMode::Maint), None);
    assert!(!b.is_routable());
    b.set_admin(Some(AdminMode::Ready), None);
    assert!(b.is_routable());
    assert_eq!(b.observe(false, 2, 3, "refused"), Some(Transition::Down));
    assert!(!b.is_routable());
}

#[test]
fn passive_failures_count_until_a_success() {
    let b = backend();
    assert_eq!(b.passive_failure(), 1);
    assert_eq!(b.passive_failure(), 2);
    b.passive_success();
    assert_eq!(b.passive_failures(), 0);
    assert_eq!(b.passive_failure(), 1);
}

#[test]
fn ejection_marks_down_once_and_counts_ejections() {
    let b = backend();
    let forget = std::time::Duration::from_secs(300);
    assert_eq!(b.eject("passive: x", forget), Some(1));
    assert!(!b.is_up() && b.is_ejected());
    assert_eq!(b.eject("passive: x", forget), None, "already down");
    assert_eq!(b.transitions(), 1);
    assert_eq!(b.last_transition().reason, "passive: x");
    assert_eq!(b.end_ejection(1, "ejection over"), Some(Transition::Up));
    assert!(b.is_up() && !b.is_ejected());
    assert_eq!(b.eject("passive: y", forget), Some(2), "ejections grow");
}

#[test]
fn end_of_an_older_ejection_does_not_end_a_newer_one() {
    let b = backend();
    let forget = std::time::Duration::from_secs(300);
    assert_eq!(b.eject("p", forget), Some(1));
    assert_eq!(b.observe(true, 1, 1, "check passed"), Some(Transition::Up));
    assert_eq!(b.eject("p", forget), Some(2));
    assert_eq!(b.end_ejection(1, "late timer"), None);
    assert!(!b.is_up());
    assert_eq!(b.end_ejection(2, "ejection over"), Some(Transition::Up));
}

#[test]
fn end_ejection_leaves_a_backend_down_for_another_reason() {
    let b = backend();
    b.force(false, "admin");
    assert_eq!(b.end_ejection(0, "ejection over"), None);
    assert!(!b.is_up());
}

#[test]
fn racing_writers_count_one_transition() {
    let b = backend();
    let forget = std::time::Duration::from_secs(300);
    let results: Vec<bool> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let b = &b;
                s.spawn(move || {
                    if i % 2 == 0 {
                        b.eject("passive", forget).is_some()
                    } else {
                        b.force(false, "admin").is_some()
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("join"))
            .collect()
    });
    assert_eq!(results.iter().filter(|r| **r).count(), 1);
    assert_eq!(b.transitions(), 1);
}

#[tokio::test(start_paused = true)]
async fn downtime_grows_while_down_and_stops_when_up() {
    use std::time::Duration;
    let b = backend();
    assert_eq!(b.downtime(), Duration::ZERO);
    b.force(false, "down");
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(b.downtime(), Duration::from_secs(5));
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(b.downtime(), Duration::from_secs(7), "grows while down");
    b.force(true, "up");
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(b.downtime(), Duration::from_secs(7), "frozen while up");
    b.force(false, "down again");
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(b.downtime(), Duration::from_secs(8), "accumulates");
}

#[test]
fn coming_back_up_starts_a_ramp_but_creation_does_not() {
    let b = backend();
    assert!(
        !b.is_ramping(),
        "a new backend takes its full share at once"
    );
    b.force(false, "down");
    assert!(!b.is_ramping());
    b.force(true, "up");
    assert!(b.is_ramping());
    assert!(b.since_unix_ms() > 0);
}

#[test]
fn returning_from_drain_or_maint_starts_a_ramp() {
    for mode in [AdminMode::Drain, AdminMode::Maint] {
        let b = backend();
        b.set_admin(Some(mode), None);
        assert!(!b.is_ramping(), "{mode:?}: leaving rotation does not ramp");
        b.set_admin(Some(AdminMode::Ready), None);
        assert!(
            b.is_routable() && b.is_ramping(),
            "{mode:?}: back in rotation"
        );
    }
    // Staying ready (a weight change) or returning while down starts nothing.
    let b = backend();
    b.set_admin(None, Some(4));
    assert!(!b.is_ramping());
    b.set_admin(Some(AdminMode::Drain), None);
    b.force(false, "down");
    b.set_admin(Some(AdminMode::Ready), None);
    assert!(!b.is_routable() && !b.is_ramping());
}

#[test]
fn a_rescaled_weight_keeps_the_override_until_the_announced_weight_changes() {
    let b = backend();
    b.update_settings(&weir_config::BackendConfig {
        announced_weight: 1000,
        ..backend_config(0, 256, false)
    });
    b.set_admin(None, Some(9));
    // Another SRV record grew: this one scales to 128 but still announces 1000.
    let rescaled = weir_config::BackendConfig {
        announced_weight: 1000,
        ..backend_config(0, 128, false)
    };
    assert_eq!(b.update_settings(&rescaled), None);
    assert_eq!((b.configured_weight(), b.weight()), (128, 9));
    // Its own record changed: the source wins.
    let own = weir_config::BackendConfig {
        announced_weight: 2000,
        ..backend_config(0, 256, false)
    };
    assert_eq!(b.update_settings(&own), Some(9));
    assert_eq!((b.weight(), b.weight_override()), (256, None));
}

#[test]
fn only_a_ready_endpoint_is_routable_and_a_terminating_one_stays_out_of_fail_open() {
    let with = |endpoint| weir_config::BackendConfig {
        endpoint,
        ..backend_config(0, 1, false)
    };
    let b = Arc::new(Backend::new("web", &with(EndpointState::NotReady)));
    assert!(
        b.is_up() && !b.is_routable(),
        "health up, endpoint not ready"
    );
    assert!(
        b.may_fail_open(),
        "not ready counts as down: failing open may use it"
    );
    b.update_settings(&with(EndpointState::Ready));
    assert!(
        b.is_routable() && b.is_ramping(),
        "ready: back in rotation, slow start"
    );
    b.set_admin(Some(AdminMode::Drain), None);
    b.update_settings(&with(EndpointState::Terminating));
    b.set_admin(Some(AdminMode::Ready), None);
    assert!(
        !b.is_routable(),
        "the operator's ready does not override terminating"
    );
    assert!(!b.may_fail_open());
    assert_eq!(b.endpoint_state(), EndpointState::Terminating);
    b.update_settings(&with(EndpointState::Ready));
    assert_eq!(b.observe(false, 1, 1, "refused"), Some(Transition::Down));
    assert!(!b.is_routable());
    assert_eq!(b.observe(true, 1, 1, "ok"), Some(Transition::Up));
    assert!(b.is_routable(), "health, admin and endpoint all agree");
}
