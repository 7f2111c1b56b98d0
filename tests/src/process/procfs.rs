//! What the kernel says about the weir child: open descriptors and resident memory.
//!
//! Leak checks (the chaos soak, descriptor exhaustion) compare these before and after;
//! they read `/proc/<pid>` of this child only, so they are exact and need no privileges.

use super::Weir;

impl Weir {
    /// The number of descriptors the process holds open (entries of `/proc/<pid>/fd`).
    ///
    /// # Panics
    /// When `/proc/<pid>/fd` cannot be read (the process is gone).
    pub fn open_fds(&self) -> usize {
        let dir = format!("/proc/{}/fd", self.pid);
        std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("read {dir}: {e}"))
            .count()
    }

    /// The resident set size in KiB (`VmRSS` in `/proc/<pid>/status`).
    ///
    /// # Panics
    /// When the file cannot be read or has no `VmRSS` line.
    pub fn rss_kib(&self) -> u64 {
        let path = format!("/proc/{}/status", self.pid);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
        text.lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no VmRSS in {path}: {text}"))
    }
}

impl Weir {
    /// As [`Weir::start`], with weir's descriptor limit (soft and hard) set to `nofile` by
    /// `prlimit --nofile=N:N`, which then execs weir: the PID is weir's own.
    ///
    /// # Panics
    /// As [`Weir::start`]; also when `prlimit` (util-linux) is missing.
    pub async fn start_with_nofile(bin: &str, yaml: &str, nofile: u64) -> Weir {
        let dir = crate::tempdir::TempDir::new("run");
        let config_path = dir.path().join("weir.yaml");
        super::write_file(&config_path, yaml);
        let config_arg = config_path.to_string_lossy().into_owned();
        let limit = format!("--nofile={nofile}:{nofile}");
        let args = [
            &limit,
            bin,
            "run",
            "-c",
            &config_arg,
            "--log-format",
            "json",
        ];
        let weir = Self::spawn(
            "prlimit",
            &args,
            dir,
            config_path,
            super::DEFAULT_LOG_FILTER,
            &[],
        );
        weir.wait_for_log("weir ready", super::READY_TIMEOUT).await;
        weir
    }
}
