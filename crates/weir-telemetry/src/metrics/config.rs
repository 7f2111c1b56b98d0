//! Configuration load and reload outcome: the series an operator alerts on after `SIGHUP`.

use std::time::{SystemTime, UNIX_EPOCH};

use prometheus::{Gauge, IntCounter, IntGauge, IntGaugeVec};

use super::families::{result_pair, Families};

/// Handles for `weir_config_*`. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ConfigMetrics {
    success: IntCounter,
    failure: IntCounter,
    last_successful: IntGauge,
    last_success_timestamp: Gauge,
    info: IntGaugeVec,
}

impl ConfigMetrics {
    pub(super) fn new(f: &Families) -> Self {
        let (success, failure) = result_pair(&f.config_reloads, &[]);
        ConfigMetrics {
            success,
            failure,
            last_successful: f.config_last_reload_successful.clone(),
            last_success_timestamp: f.config_last_reload_success_timestamp.clone(),
            info: f.config_info.clone(),
        }
    }

    /// The configuration loaded at start-up (not a reload, so not counted in
    /// `weir_config_reloads_total`; Prometheus' own `config_last_reload_*` behave alike).
    pub fn loaded(&self, hash: &str) {
        self.mark_current(hash);
    }

    /// A reload applied: counts it and records the new configuration's `hash`.
    pub fn reload_succeeded(&self, hash: &str) {
        self.success.inc();
        self.mark_current(hash);
    }

    /// A reload rejected: counts it; the old configuration (and its hash) stays.
    pub fn reload_failed(&self) {
        self.failure.inc();
        self.last_successful.set(0);
    }

    fn mark_current(&self, hash: &str) {
        // Exactly one `weir_config_info` series: the configuration being served.
        self.info.reset();
        self.info.with_label_values(&[hash]).set(1);
        self.last_successful.set(1);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.last_success_timestamp.set(now);
    }
}

/// A short, stable hash of a configuration file's bytes for `weir_config_info{hash}` and
/// `/status`: 16 hex digits of FNV-1a 64. Not cryptographic; it only has to tell two
/// configurations apart on a dashboard, and be the same on every build and host.
pub fn config_hash(bytes: &[u8]) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = bytes
        .iter()
        .fold(OFFSET, |h, &b| (h ^ u64::from(b)).wrapping_mul(PRIME));
    format!("{hash:016x}")
}
