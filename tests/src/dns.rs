//! A real DNS server on loopback for the discovery tests: Debian's `dnsmasq`, serving
//! only the records a test gives it on its command line.
//!
//! It binds nothing but `127.0.0.1` on one port chosen free for UDP and TCP, reads no
//! configuration, hosts file or upstream resolver (`--conf-file=/dev/null --no-resolv
//! --no-hosts`), and stays in the foreground as this process's child, so it is
//! stopped by its PID only ([`Dnsmasq::stop`], and on drop). Changing the answers means
//! restarting it on the same port ([`Dnsmasq::restart`]), as dnsmasq reads its records
//! once.

use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::time::Duration;

use tokio::process::{Child, Command};

/// The binary (package `dnsmasq-base`).
pub const DNSMASQ: &str = "dnsmasq";

/// The records a [`Dnsmasq`] serves.
#[derive(Debug, Clone, Default)]
pub struct Records {
    /// `(name, address)`: A or AAAA records (`--host-record`); a name may repeat.
    pub hosts: Vec<(String, IpAddr)>,
    /// `(name, target, port, priority, weight)`: SRV records (`--srv-host`).
    pub srv: Vec<(String, String, u16, u16, u16)>,
    /// The TTL of every record (`--local-ttl`), seconds.
    pub ttl: u32,
}

impl Records {
    /// No records, TTL `ttl`.
    pub fn with_ttl(ttl: u32) -> Records {
        Records {
            ttl,
            ..Records::default()
        }
    }

    /// Adds an A/AAAA record.
    #[must_use]
    pub fn host(mut self, name: &str, ip: IpAddr) -> Records {
        self.hosts.push((name.to_owned(), ip));
        self
    }

    /// Adds an SRV record.
    #[must_use]
    pub fn srv(
        mut self,
        name: &str,
        target: &str,
        port: u16,
        priority: u16,
        weight: u16,
    ) -> Records {
        self.srv
            .push((name.to_owned(), target.to_owned(), port, priority, weight));
        self
    }

    fn args(&self, port: u16) -> Vec<String> {
        let mut args: Vec<String> = [
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--no-poll",
            "--bind-interfaces",
            "--listen-address=127.0.0.1",
            "--pid-file=",
            "--user=root",
        ]
        .map(str::to_owned)
        .into();
        args.push(format!("--port={port}"));
        args.push(format!("--local-ttl={}", self.ttl));
        for (name, ip) in &self.hosts {
            args.push(format!("--host-record={name},{ip}"));
        }
        for (name, target, port, priority, weight) in &self.srv {
            args.push(format!(
                "--srv-host={name},{target},{port},{priority},{weight}"
            ));
        }
        args
    }
}

/// A running (or stopped) dnsmasq on one loopback port.
#[derive(Debug)]
pub struct Dnsmasq {
    port: u16,
    child: Option<Child>,
}

/// Whether `dnsmasq` can be run here.
pub async fn available() -> bool {
    Command::new(DNSMASQ)
        .arg("--version")
        .output()
        .await
        .is_ok_and(|o| o.status.success())
}

/// A port free on 127.0.0.1 for both UDP and TCP right now.
fn free_port() -> u16 {
    for _ in 0..50 {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind a loopback TCP port");
        let port = tcp.local_addr().expect("bound address").port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no loopback port free for both UDP and TCP in 50 tries");
}

impl Dnsmasq {
    /// Starts dnsmasq serving `records`; returns once it answers on TCP.
    ///
    /// # Panics
    /// When it cannot be started or does not listen within 5 s.
    pub async fn start(records: &Records) -> Dnsmasq {
        let mut d = Dnsmasq {
            port: free_port(),
            child: None,
        };
        d.launch(records, true).await;
        d
    }

    /// The address to give weir as `resolver`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Its PID, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Stops it (SIGKILL to its PID) and waits until it has exited.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.start_kill().expect("kill dnsmasq");
            tokio::time::timeout(Duration::from_secs(5), child.wait())
                .await
                .expect("dnsmasq exits within 5 s")
                .expect("wait for dnsmasq");
        }
    }

    /// Stops it and starts it again on the same port with `records`.
    ///
    /// # Panics
    /// As [`Dnsmasq::start`].
    pub async fn restart(&mut self, records: &Records) {
        self.stop().await;
        // weir's resolver points at this port: a retry must use it again.
        self.launch(records, false).await;
    }

    /// With `may_move` (nobody knows the port yet), a dnsmasq that exits at start (its
    /// port taken since `free_port` checked it) is retried on a new free port; else on
    /// the same one (just released by `stop`: a bind race), bounded either way.
    async fn launch(&mut self, records: &Records, may_move: bool) {
        for attempt in 0..20 {
            let mut child = Command::new(DNSMASQ)
                .args(records.args(self.port))
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .unwrap_or_else(|e| panic!("start {DNSMASQ}: {e}"));
            for _ in 0..500 {
                if let Ok(Some(status)) = child.try_wait() {
                    eprintln!(
                        "dnsmasq exited at start ({status}, attempt {attempt}): {DNSMASQ} {}",
                        records.args(self.port).join(" ")
                    );
                    if may_move {
                        self.port = free_port();
                    }
                    break;
                }
                if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                    .await
                    .is_ok()
                {
                    self.child = Some(child);
                    return;
                }
                tokio::time::sleep(crate::POLL_INTERVAL).await;
            }
            if child.id().is_some() {
                // Started but never listened in time: kill it before the next attempt.
                if let Err(e) = child.start_kill() {
                    eprintln!("kill a dnsmasq that did not listen (attempt {attempt}): {e}");
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "dnsmasq did not listen on 127.0.0.1:{} in 20 attempts",
            self.port
        );
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            // Best effort while dropping: `kill_on_drop` kills it anyway; an error here
            // means it already exited, which is what we want.
            if let Err(e) = child.start_kill() {
                eprintln!("kill dnsmasq on drop: {e}");
            }
        }
    }
}
