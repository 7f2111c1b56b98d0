//! weir's access log (`target: weir::access`, one JSON line per request) as tests see it.

use std::time::Duration;

use serde_json::Value;

use super::Weir;

/// The tracing target of access-log events.
pub const ACCESS_TARGET: &str = "weir::access";

impl Weir {
    /// Every access-log line from stderr index `mark` on (see [`Weir::log_mark`]).
    pub fn access_log_after(&self, mark: usize) -> Vec<Value> {
        self.logs
            .json_after(mark)
            .into_iter()
            .filter(|v| v.get("target").and_then(Value::as_str) == Some(ACCESS_TARGET))
            .collect()
    }

    /// Waits until at least `n` access-log lines were written from `mark` on; returns them.
    ///
    /// # Panics
    /// When fewer than `n` appear within `timeout`; shows the log tail.
    pub async fn wait_for_access_lines(
        &self,
        mark: usize,
        n: usize,
        timeout: Duration,
    ) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let lines = self.access_log_after(mark);
            if lines.len() >= n {
                return lines;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "weir {} wrote {} access-log lines, not {n}, within {timeout:?}\n{}",
                    self.pid,
                    lines.len(),
                    self.logs.tail(60)
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
