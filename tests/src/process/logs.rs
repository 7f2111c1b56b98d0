//! Collects a child's stdout and stderr lines in the background.
//!
//! Every line is kept (tests search from a mark, e.g. "after this SIGHUP") and echoed to the
//! test's stderr, which the test harness prints only when the test fails.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{ChildStderr, ChildStdout};

/// The lines a child wrote so far.
#[derive(Debug, Default)]
pub(crate) struct Logs {
    stderr: Mutex<Vec<String>>,
    stdout: Mutex<Vec<String>>,
    stderr_closed: AtomicBool,
}

fn lock(m: &Mutex<Vec<String>>) -> MutexGuard<'_, Vec<String>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Logs {
    /// Starts the two reader tasks.
    pub(crate) fn collect(pid: u32, stdout: ChildStdout, stderr: ChildStderr) -> Arc<Logs> {
        let logs = Arc::new(Logs::default());
        let l = Arc::clone(&logs);
        tokio::spawn(async move {
            keep_lines(stderr, pid, "stderr", &l.stderr).await;
            l.stderr_closed.store(true, Ordering::SeqCst);
        });
        let l = Arc::clone(&logs);
        tokio::spawn(async move { keep_lines(stdout, pid, "stdout", &l.stdout).await });
        logs
    }

    /// Number of stderr lines so far: a mark to search after.
    pub(crate) fn stderr_len(&self) -> usize {
        lock(&self.stderr).len()
    }

    /// Whether stderr reached its end (the process exited or closed it).
    pub(crate) fn is_closed(&self) -> bool {
        self.stderr_closed.load(Ordering::SeqCst)
    }

    /// The first JSON stderr line at index `from` or later whose `message` is `message`.
    pub(crate) fn find_after(&self, from: usize, message: &str) -> Option<Value> {
        self.all_with(from, message).into_iter().next()
    }

    /// Every JSON stderr line at index `from` or later whose `message` is `message`.
    pub(crate) fn all_with(&self, from: usize, message: &str) -> Vec<Value> {
        lock(&self.stderr)
            .iter()
            .skip(from)
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|v| v.get("message").and_then(Value::as_str) == Some(message))
            .collect()
    }

    /// Every stderr line at index `from` or later that parses as JSON.
    pub(crate) fn json_after(&self, from: usize) -> Vec<Value> {
        lock(&self.stderr)
            .iter()
            .skip(from)
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .collect()
    }

    /// Stdout lines so far.
    pub(crate) fn stdout(&self) -> Vec<String> {
        lock(&self.stdout).clone()
    }

    /// The last `n` stderr lines, for panic messages.
    pub(crate) fn tail(&self, n: usize) -> String {
        let lines = lock(&self.stderr);
        let start = lines.len().saturating_sub(n);
        format!(
            "--- last {} weir stderr lines ---\n{}",
            lines.len() - start,
            lines[start..].join("\n")
        )
    }
}

/// Keeps every line of `pipe` (weir's `what`) in `into`, echoing it to the test's stderr.
async fn keep_lines(pipe: impl AsyncRead + Unpin, pid: u32, what: &str, into: &Mutex<Vec<String>>) {
    read_lines(pipe, |line| {
        eprintln!("[weir {pid} {what}] {line}");
        lock(into).push(line);
    })
    .await;
}

async fn read_lines(pipe: impl AsyncRead + Unpin, mut on_line: impl FnMut(String)) {
    let mut lines = BufReader::new(pipe).lines();
    loop {
        match lines.next_line().await {
            Ok(Some(line)) => on_line(line),
            Ok(None) => return,
            Err(e) => {
                eprintln!("weir-e2e: reading weir's output failed: {e}");
                return;
            }
        }
    }
}
