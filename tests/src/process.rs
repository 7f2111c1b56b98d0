//! A real `weir` process under test: config file, child process, collected logs.
//!
//! weir logs one JSON object per line on stderr (`--log-format json`), and it logs every
//! address it actually bound, so tests let it bind port 0 and learn the ports from the log
//! instead of guessing free ones (STYLE.md §11). [`Weir`] keeps every line, echoes it to the
//! test's stderr (shown when a test fails), and lets a test wait for a given message.
//!
//! Signals go to this child's PID only, through the `kill` command (`kill -HUP <pid>`),
//! exactly as an operator or systemd's `ExecReload` would send them.

pub mod access;
mod check;
mod events;
mod logs;
mod procfs;

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::tempdir::TempDir;
pub use check::{assert_check_errors, check_config, run_weir, CheckOutput};
pub use events::log_str;
use logs::Logs;

/// How long `weir` may take to log `weir ready`.
pub const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// The default level filter for `WEIR_LOG`: enough to see binds, reloads, health changes.
pub const DEFAULT_LOG_FILTER: &str = "info";

/// A running `weir` child, killed on drop; its config lives in a temp dir removed on drop.
#[derive(Debug)]
pub struct Weir {
    child: Child,
    pid: u32,
    config_path: PathBuf,
    logs: Arc<Logs>,
    // Dropped after the child is killed.
    dir: TempDir,
}

impl Weir {
    /// Writes `yaml` to a fresh `weir.yaml`, runs `weir run -c it --log-format json`, and
    /// waits for `weir ready`.
    ///
    /// # Panics
    /// When weir cannot be spawned, exits, or is not ready within 15 s.
    pub async fn start(bin: &str, yaml: &str) -> Weir {
        Self::start_with_log(bin, yaml, DEFAULT_LOG_FILTER).await
    }

    /// The commonest topology: a backend named `name` (see [`crate::spawn_backend`]) alone
    /// in pool `web` behind listener `web` ([`crate::config::one_pool`], round robin).
    ///
    /// # Panics
    /// As [`Weir::start`].
    pub async fn one_backend(bin: &str, name: &str) -> (Weir, crate::BackendHandle) {
        Self::one_backend_with(bin, name, "").await
    }

    /// [`Weir::one_backend`] and an HTTP/1.1 client connected to listener `web`.
    ///
    /// # Panics
    /// As [`Weir::start`], and when the client cannot connect.
    pub async fn one_backend_h1(
        bin: &str,
        name: &str,
    ) -> (Weir, crate::BackendHandle, crate::H1Client) {
        let (weir, handle) = Self::one_backend(bin, name).await;
        let client = weir.h1_client("web").await;
        (weir, handle, client)
    }

    /// [`Weir::one_backend`] with `listener_extra` added to listener `web`
    /// ([`crate::config::one_backend_listener`]).
    ///
    /// # Panics
    /// As [`Weir::start`].
    pub async fn one_backend_with(
        bin: &str,
        name: &str,
        listener_extra: &str,
    ) -> (Weir, crate::BackendHandle) {
        let (addr, handle) = crate::spawn_backend(name).await;
        let yaml = crate::config::one_backend_listener(addr, listener_extra);
        (Self::start(bin, &yaml).await, handle)
    }

    /// As [`Weir::start`], with `WEIR_LOG=filter`.
    ///
    /// # Panics
    /// As [`Weir::start`].
    pub async fn start_with_log(bin: &str, yaml: &str, filter: &str) -> Weir {
        let weir = Self::spawn_run(bin, yaml, filter);
        weir.wait_for_log("weir ready", READY_TIMEOUT).await;
        weir
    }

    /// Writes `yaml` and runs `weir run` without waiting for readiness (for start-up failures).
    ///
    /// # Panics
    /// When the config cannot be written or weir cannot be spawned.
    pub fn spawn_run(bin: &str, yaml: &str, filter: &str) -> Weir {
        Self::spawn_run_with(bin, yaml, filter, |_| Vec::new())
    }

    /// Writes `yaml`, runs `weir run` with the environment variables `env` gives for
    /// the run's own directory (where it may write files, a kubeconfig say), and waits
    /// for `weir ready`.
    ///
    /// # Panics
    /// As [`Weir::start`].
    pub async fn start_with_env(
        bin: &str,
        yaml: &str,
        env: impl FnOnce(&Path) -> Vec<(String, String)>,
    ) -> Weir {
        let weir = Self::spawn_run_with(bin, yaml, DEFAULT_LOG_FILTER, env);
        weir.wait_for_log("weir ready", READY_TIMEOUT).await;
        weir
    }

    fn spawn_run_with(
        bin: &str,
        yaml: &str,
        filter: &str,
        env: impl FnOnce(&Path) -> Vec<(String, String)>,
    ) -> Weir {
        let dir = TempDir::new("run");
        let config_path = dir.path().join("weir.yaml");
        write_file(&config_path, yaml);
        let config_arg = config_path.to_string_lossy().into_owned();
        let args = ["run", "-c", &config_arg, "--log-format", "json"];
        let vars = env(dir.path());
        Self::spawn(bin, &args, dir, config_path, filter, &vars)
    }

    /// Runs `weir demo --log-format json` with its listener and admin server on loopback
    /// port 0 and `extra` arguments (e.g. `--quiet`), and waits for `weir ready`.
    ///
    /// # Panics
    /// When weir cannot be spawned, exits, or is not ready within 15 s.
    pub async fn demo(bin: &str, extra: &[&str]) -> Weir {
        let dir = TempDir::new("demo");
        let config_path = dir.path().join("weir.yaml");
        let mut args = vec![
            "demo",
            "--log-format",
            "json",
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
        ];
        args.extend_from_slice(extra);
        let weir = Self::spawn(bin, &args, dir, config_path, DEFAULT_LOG_FILTER, &[]);
        weir.wait_for_log("weir ready", READY_TIMEOUT).await;
        weir
    }

    fn spawn(
        bin: &str,
        args: &[&str],
        dir: TempDir,
        config_path: PathBuf,
        filter: &str,
        env: &[(String, String)],
    ) -> Weir {
        let mut child = Command::new(bin)
            .args(args)
            .current_dir(dir.path())
            .env("WEIR_LOG", filter)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {bin} {args:?}: {e}"));
        let pid = child.id().expect("a just-spawned child has a pid");
        let logs = Logs::collect(
            pid,
            child.stdout.take().expect("piped stdout"),
            child.stderr.take().expect("piped stderr"),
        );
        Weir {
            child,
            pid,
            config_path,
            logs,
            dir,
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The config file weir was started with (absolute).
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The temp dir holding the config (weir's working directory).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Replaces the config file atomically (write + rename), so a reload never reads half.
    ///
    /// # Panics
    /// When the file cannot be written.
    pub fn rewrite_config(&self, yaml: &str) {
        let tmp = self.dir.path().join("weir.yaml.tmp");
        write_file(&tmp, yaml);
        std::fs::rename(&tmp, &self.config_path)
            .unwrap_or_else(|e| panic!("rename {} over the config: {e}", tmp.display()));
    }

    /// Sends SIGHUP (reload).
    pub async fn sighup(&mut self) {
        self.signal("-HUP").await;
    }

    /// Sends SIGTERM (graceful shutdown).
    pub async fn sigterm(&mut self) {
        self.signal("-TERM").await;
    }

    /// Sends SIGINT (graceful shutdown, as Ctrl-C).
    pub async fn sigint(&mut self) {
        self.signal("-INT").await;
    }

    async fn signal(&mut self, sig: &str) {
        // Never signal a PID the child no longer owns.
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "cannot send {sig}: weir already exited with {status}\n{}",
                self.logs.tail(40)
            );
        }
        let status = Command::new("kill")
            .arg(sig)
            .arg(self.pid.to_string())
            .status()
            .await
            .unwrap_or_else(|e| panic!("run `kill {sig} {}`: {e}", self.pid));
        assert!(
            status.success(),
            "`kill {sig} {}` failed: {status}",
            self.pid
        );
    }

    /// Waits for the process to exit.
    ///
    /// # Panics
    /// When it is still running after `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(Ok(status)) => {
                // Let the reader tasks take the last lines, so callers can inspect them.
                for _ in 0..200 {
                    if self.logs.is_closed() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                status
            }
            Ok(Err(e)) => panic!("waiting for weir {}: {e}", self.pid),
            Err(_) => panic!(
                "weir {} still running after {timeout:?}\n{}",
                self.pid,
                self.logs.tail(40)
            ),
        }
    }

    /// Whether the process has exited (without waiting).
    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

/// Writes `contents` to `path`.
///
/// # Panics
/// When the file cannot be written.
fn write_file(path: &Path, contents: &str) {
    std::fs::write(path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}
