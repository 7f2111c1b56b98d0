//! One-shot `weir` commands (`check`, `--version`): run to completion, capture everything.

use std::path::Path;
use std::time::Duration;

use tokio::process::Command;

use crate::tempdir::TempDir;

/// How long a one-shot command may run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// What a finished `weir` command left behind.
#[derive(Debug, Clone)]
pub struct CheckOutput {
    /// The exit code (`None` if killed by a signal).
    pub code: Option<i32>,
    /// Everything printed on stdout.
    pub stdout: String,
    /// Everything printed on stderr.
    pub stderr: String,
}

impl CheckOutput {
    /// Stderr's non-empty lines.
    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect()
    }
}

/// Writes `yaml` to `weir.yaml` in a fresh directory and runs `weir check -c weir.yaml`
/// there, so messages start with `weir.yaml:LINE:COLUMN:`.
///
/// # Panics
/// When weir cannot be run or runs for 30 s.
pub async fn check_config(bin: &str, yaml: &str) -> CheckOutput {
    let dir = TempDir::new("check");
    super::write_file(&dir.path().join("weir.yaml"), yaml);
    run_in(bin, &["check", "-c", "weir.yaml"], dir.path()).await
}

/// Runs `weir check` on `yaml` and asserts that it exits 1 printing exactly `errors`
/// (the last line is the `weir.yaml: N errors` summary): the one shape of every
/// "bad config is reported with line, column and path" test.
///
/// # Panics
/// When the exit code or the lines differ, or as [`check_config`].
pub async fn assert_check_errors(bin: &str, yaml: &str, errors: &[&str]) {
    let out = check_config(bin, yaml).await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(out.stderr_lines(), errors, "{out:?}");
}

/// Runs `weir args...` to completion in the system temp dir.
///
/// # Panics
/// When weir cannot be run or runs for 30 s.
pub async fn run_weir(bin: &str, args: &[&str]) -> CheckOutput {
    let dir = TempDir::new("cmd");
    run_in(bin, args, dir.path()).await
}

async fn run_in(bin: &str, args: &[&str], dir: &Path) -> CheckOutput {
    let out = Command::new(bin)
        .args(args)
        .current_dir(dir)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(COMMAND_TIMEOUT, out)
        .await
        .unwrap_or_else(|_| panic!("`weir {args:?}` still running after {COMMAND_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("run `{bin} {args:?}`: {e}"));
    let result = CheckOutput {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    eprintln!("weir {args:?} -> {result:?}");
    result
}
