//! Passive checks, fail-open, slow start, retry conditions and the retry budget: their
//! defaults, every value an operator may write, and the errors for values out of range.

mod support;

use support::errors;

use std::path::Path;
use std::time::Duration;

use weir_config::{parse, PassiveConfig, RetryBudgetConfig, RetryOn};

use weir_e2e::config::MINIMAL as POOL;

#[test]
fn resilience_defaults_eject_after_three_failures_and_budget_retries() {
    let config = parse(POOL, Path::new("weir.yaml")).expect("valid");
    let p = &config.pools[0];
    assert_eq!(
        p.passive,
        PassiveConfig {
            consecutive_failures: 3,
            max_ejected_percent: 50,
            base_ejection_time: Duration::from_secs(30),
        }
    );
    assert!(!p.fail_open);
    assert_eq!(p.slow_start, None);
    assert_eq!(
        p.retry_on,
        RetryOn {
            connect_failure: true,
            reset: true,
            status_502: false,
            status_503: false,
        }
    );
    assert_eq!(
        p.retry_budget,
        RetryBudgetConfig {
            percent: 20,
            min_per_second: 10,
        }
    );
}

#[test]
fn every_resilience_setting_is_read() {
    let yaml = format!(
        "{POOL}    passive: {{ consecutive_failures: 5, max_ejected_percent: 30, base_ejection_time: 10s }}
    fail_open: true
    slow_start: 1m
    retry_on: [connect_failure, 502, \"503\"]
    retry_budget: {{ percent: 10, min_per_second: 0 }}
"
    );
    let config = parse(&yaml, Path::new("weir.yaml")).expect("valid");
    let p = &config.pools[0];
    assert_eq!(p.passive.consecutive_failures, 5);
    assert_eq!(p.passive.max_ejected_percent, 30);
    assert_eq!(p.passive.base_ejection_time, Duration::from_secs(10));
    assert!(p.fail_open);
    assert_eq!(p.slow_start, Some(Duration::from_secs(60)));
    assert_eq!(
        p.retry_on,
        RetryOn {
            connect_failure: true,
            reset: false,
            status_502: true,
            status_503: true,
        }
    );
    assert!(p.retry_on.status(502) && p.retry_on.status(503) && !p.retry_on.status(500));
    assert_eq!(
        (p.retry_budget.percent, p.retry_budget.min_per_second),
        (10, 0)
    );
}

#[test]
fn zero_consecutive_failures_turns_passive_checks_off() {
    let yaml = format!("{POOL}    passive: {{ consecutive_failures: 0 }}\n");
    let config = parse(&yaml, Path::new("weir.yaml")).expect("valid");
    assert_eq!(config.pools[0].passive.consecutive_failures, 0);
    assert_eq!(
        config.pools[0].passive.max_ejected_percent, 50,
        "others default"
    );
}

#[test]
fn resilience_values_out_of_range_are_all_reported() {
    let yaml = format!(
        "{POOL}    passive: {{ consecutive_failures: -1, max_ejected_percent: 101, base_ejection_time: 0s }}
    slow_start: soon
    retry_on: [connect_failure, timeout, connect_failure]
    retry_budget: {{ percent: 200, min_per_second: -3 }}
"
    );
    assert_eq!(
        errors(&yaml),
        [
            "weir.yaml:10:16: pools.web.passive.consecutive_failures: consecutive_failures must be between 0 and 1000, got -1",
            "weir.yaml:10:42: pools.web.passive.max_ejected_percent: max_ejected_percent must be between 0 and 100, got 101",
            "weir.yaml:10:68: pools.web.passive.base_ejection_time: must be greater than zero",
            "weir.yaml:11:5: pools.web.slow_start: invalid duration \"soon\" (expected a number and a unit: 250ms, 2s, 1m, 1h)",
            "weir.yaml:12:33: pools.web.retry_on[1]: unknown retry condition \"timeout\" (expected connect_failure, reset, 502 or 503)",
            "weir.yaml:12:42: pools.web.retry_on[2]: duplicate retry condition \"connect_failure\"",
            "weir.yaml:13:21: pools.web.retry_budget.percent: percent must be between 0 and 100, got 200",
            "weir.yaml:13:35: pools.web.retry_budget.min_per_second: min_per_second must be between 0 and 1000000, got -3",
        ]
    );
}
