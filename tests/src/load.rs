//! Steady client load through weir, tallied: what "zero failed requests" is measured with.
//!
//! The resilience tests (backend killed, 100 reloads, drain) need many clients sending
//! at once while something changes underneath, and afterwards one question answered: did
//! any client notice? [`Load`] runs `clients` tasks until stopped. Even-numbered clients
//! keep one connection for [`KEEP_ALIVE_REQUESTS`] requests (pooled clients, where a
//! reused connection is what could break); odd-numbered ones open a fresh connection per
//! request (so the listening socket is exercised all along and a refused connection shows).
//!
//! Every request is classified: `ok` (the expected status), `refused` (the connect
//! failed), or another failure (wrong status, reset, timeout). The first failures are kept
//! verbatim for the panic message.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::backend::BackendHandle;
use crate::client::H1Client;

/// Requests a keep-alive client sends on one connection before opening another.
pub const KEEP_ALIVE_REQUESTS: usize = 20;

/// Failures kept verbatim for reports.
const KEPT_FAILURES: usize = 50;

/// What the clients saw so far.
#[derive(Debug, Default)]
struct Tally {
    ok: AtomicUsize,
    refused: AtomicUsize,
    failed: AtomicUsize,
    connections: AtomicUsize,
    failures: Mutex<Vec<String>>,
}

impl Tally {
    /// Counts a failed request and keeps its description.
    fn fail(&self, what: String) {
        self.failed.fetch_add(1, Ordering::SeqCst);
        self.fail_kept(what);
    }

    /// Keeps `what` for the report without counting it (the caller counts it).
    fn fail_kept(&self, what: String) {
        let mut kept = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() < KEPT_FAILURES {
            kept.push(what);
        }
    }
}

/// The final count of a [`Load`].
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Requests answered with the expected status.
    pub ok: usize,
    /// Connects that failed (refused or timed out).
    pub refused: usize,
    /// Requests that failed otherwise (status, reset, timeout).
    pub failed: usize,
    /// Connections opened.
    pub connections: usize,
    /// The first failures (refusals included), verbatim.
    pub failures: Vec<String>,
}

/// `N ok, N failed, N refused over N connections`: the line a test logs after a run.
impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ok, {} failed, {} refused over {} connections",
            self.ok, self.failed, self.refused, self.connections
        )
    }
}

impl LoadReport {
    /// Logs `what: <this report>; hits a=N b=N …` to stderr: how much traffic a test
    /// moved and how it spread over `backends`, for reading a run that passed narrowly.
    pub fn log(&self, what: &str, backends: &[&BackendHandle]) {
        let hits: Vec<String> = backends
            .iter()
            .map(|b| format!("{}={}", b.name(), b.hits()))
            .collect();
        eprintln!("{what}: {self}; hits {}", hits.join(" "));
    }

    /// Panics with the kept failures unless no request failed and no connect was refused.
    ///
    /// # Panics
    /// When any request failed or any connection was refused.
    pub fn assert_no_failures(&self, what: &str) {
        assert!(
            self.refused == 0 && self.failed == 0,
            "{what}: {} refused connections and {} failed requests out of {}; first: {:#?}",
            self.refused,
            self.failed,
            self.ok + self.failed + self.refused,
            self.failures
        );
    }
}

/// Clients sending `GET path` to one address until stopped.
#[derive(Debug)]
pub struct Load {
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
    tasks: Vec<JoinHandle<()>>,
}

impl Load {
    /// Starts `clients` clients sending `GET /` to `addr`, each expecting 200.
    pub fn start(addr: SocketAddr, clients: usize) -> Load {
        Self::start_with(addr, clients, "/", 200)
    }

    /// Starts `clients` clients sending `GET path` to `addr`, each expecting `status`.
    pub fn start_with(addr: SocketAddr, clients: usize, path: &str, status: u16) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Tally::default());
        let tasks = (0..clients)
            .map(|id| {
                let per_connection = if id % 2 == 0 { KEEP_ALIVE_REQUESTS } else { 1 };
                let client = Client {
                    id,
                    addr,
                    path: path.to_owned(),
                    status,
                    per_connection,
                    stop: Arc::clone(&stop),
                    tally: Arc::clone(&tally),
                };
                tokio::spawn(client.run())
            })
            .collect();
        Load { stop, tally, tasks }
    }

    /// Requests answered with the expected status so far.
    pub fn ok(&self) -> usize {
        self.tally.ok.load(Ordering::SeqCst)
    }

    /// Failed requests plus refused connections so far.
    pub fn failed(&self) -> usize {
        self.tally.failed.load(Ordering::SeqCst) + self.tally.refused.load(Ordering::SeqCst)
    }

    /// Waits until `n` more requests than now were answered as expected.
    ///
    /// # Panics
    /// When that does not happen within 5 s (see [`crate::eventually`]).
    pub async fn wait_for_more(&self, n: usize, what: &str) {
        let target = self.ok() + n;
        crate::eventually(&format!("{n} more successful requests ({what})"), || {
            let reached = self.ok() >= target;
            async move { reached.then_some(()) }
        })
        .await;
    }

    /// Waits for `more` successful requests, stops, logs the tally as `what` with each
    /// backend's hits, and asserts that no request failed: the end of every
    /// "change the backends under load" test.
    ///
    /// # Panics
    /// As [`Load::wait_for_more`] and [`LoadReport::assert_no_failures`].
    pub async fn finish_without_failures(
        self,
        more: usize,
        what: &str,
        backends: &[&BackendHandle],
    ) -> LoadReport {
        self.wait_for_more(more, what).await;
        let report = self.stop().await;
        report.log(what, backends);
        report.assert_no_failures(what);
        report
    }

    /// Stops every client after its current request and returns the tally.
    ///
    /// # Panics
    /// When a client task panicked.
    pub async fn stop(self) -> LoadReport {
        self.stop.store(true, Ordering::SeqCst);
        for task in self.tasks {
            task.await.expect("load client task");
        }
        let t = &self.tally;
        LoadReport {
            ok: t.ok.load(Ordering::SeqCst),
            refused: t.refused.load(Ordering::SeqCst),
            failed: t.failed.load(Ordering::SeqCst),
            connections: t.connections.load(Ordering::SeqCst),
            failures: t.failures.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        }
    }
}

/// One client's loop.
struct Client {
    id: usize,
    addr: SocketAddr,
    path: String,
    status: u16,
    per_connection: usize,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
}

impl Client {
    async fn run(self) {
        let Client { id, .. } = self;
        while !self.stop.load(Ordering::SeqCst) {
            let mut conn = match H1Client::connect(self.addr).await {
                Ok(c) => c,
                Err(e) => {
                    self.tally.refused.fetch_add(1, Ordering::SeqCst);
                    self.tally.fail_kept(format!("client {id}: connect: {e}"));
                    // A dead weir must not turn this loop into a busy spin.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            self.tally.connections.fetch_add(1, Ordering::SeqCst);
            for _ in 0..self.per_connection {
                if self.stop.load(Ordering::SeqCst) {
                    break;
                }
                match conn.get(&self.path).await {
                    Ok(r) if r.status == self.status => {
                        self.tally.ok.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(r) => self.tally.fail(format!(
                        "client {id}: status {} from {:?}: {}",
                        r.status,
                        r.header("x-backend"),
                        r.text()
                    )),
                    Err(e) => {
                        self.tally.fail(format!("client {id}: request: {e}"));
                        break;
                    }
                }
                if conn.is_closed() {
                    break;
                }
            }
        }
    }
}
