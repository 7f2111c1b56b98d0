//! Test backends: real HTTP/1.1 servers on loopback, in the test's own process.
//!
//! A backend answers every request with its name (body and `x-backend` header), so a test
//! sees where the balancer sent each request, and it records what reached it, so a test can
//! check what the balancer forwarded (or that nothing was). Special paths give the few
//! other behaviours the end-to-end tests need, so one backend type serves them all:
//!
//! | path / request             | answer                                                     |
//! |----------------------------|------------------------------------------------------------|
//! | `/health`                  | [`BackendHandle::set_health_status`] (default 200); not a hit |
//! | `/hold...`                 | waits for [`BackendHandle::release`] before answering       |
//! | `/echo`                    | the request body                                           |
//! | `/sink`                    | `"{len} {fnv1a}"` of the request body, hashed as it streams |
//! | `/bytes/{n}`               | [`crate::deterministic_bytes`]`(n)`                        |
//! | `/hop`                     | a response carrying hop-by-hop headers                     |
//! | `Upgrade: websocket`       | `101 Switching Protocols`, then echoes raw bytes           |
//! | anything else              | the backend's name with [`BackendHandle::set_status`]      |
//!
//! [`BackendHandle::kill`] stops accepting *and* closes open connections, so the port then
//! refuses, as a crashed process's would.

mod raw;
mod server;
mod sink;
mod tcp;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use http::{HeaderMap, Method, Version};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::port::HeldPort;

pub use raw::{spawn_raw_backend, RawAction, RawBackend, RawRequest};
pub use sink::{spawn_tcp_sink, TcpSink};
pub use tcp::{spawn_tcp_echo, spawn_tcp_recorder};

/// One request as the backend received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The request method.
    pub method: Method,
    /// Path and query, as on the request line.
    pub path: String,
    /// The headers the backend received (after the balancer's rewriting).
    pub headers: HeaderMap,
    /// The HTTP version between balancer and backend.
    pub version: Version,
}

impl Recorded {
    /// The value of header `name`, if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// State shared between the handle and the server tasks.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) name: String,
    pub(crate) hits: AtomicUsize,
    pub(crate) health_probes: AtomicUsize,
    pub(crate) connections: AtomicUsize,
    pub(crate) in_progress: AtomicUsize,
    /// The most requests ever in progress at once.
    pub(crate) peak_in_progress: AtomicUsize,
    pub(crate) requests: Mutex<Vec<Recorded>>,
    pub(crate) delay_ms: AtomicU64,
    pub(crate) status: AtomicU16,
    pub(crate) health_status: AtomicU16,
    pub(crate) held: Semaphore,
    pub(crate) tasks: Mutex<Tasks>,
    /// Keeps the port refusing, and free for a restart, while the backend is killed.
    pub(crate) port: Arc<HeldPort>,
}

/// The tasks to abort when the backend is killed.
#[derive(Debug, Default)]
pub(crate) struct Tasks {
    pub(crate) accept: Option<JoinHandle<()>>,
    pub(crate) conns: Vec<JoinHandle<()>>,
    pub(crate) killed: bool,
}

impl Shared {
    pub(crate) fn tasks(&self) -> MutexGuard<'_, Tasks> {
        // A poisoned lock only means another test thread panicked; the data is still usable.
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tracks a connection (or upgraded tunnel) task so `kill` can close it.
    pub(crate) fn track(&self, task: JoinHandle<()>) {
        let mut tasks = self.tasks();
        if tasks.killed {
            task.abort();
            return;
        }
        tasks.conns.retain(|t| !t.is_finished());
        tasks.conns.push(task);
    }
}

/// Controls and observes one test backend. Cheap to clone; clones share the backend.
#[derive(Debug, Clone)]
pub struct BackendHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

/// Starts a backend named `name` on a port the backend holds ([`HeldPort`]): once
/// killed, the port refuses and stays free for [`BackendHandle::restart`].
///
/// # Panics
/// When loopback cannot be bound.
pub async fn spawn_backend(name: &str) -> (SocketAddr, BackendHandle) {
    start(Arc::new(HeldPort::new()), name, 200).await
}

/// [`spawn_backend`] for each of `names`, in order: their addresses and handles.
///
/// # Panics
/// As [`spawn_backend`].
pub async fn spawn_backends<const N: usize>(
    names: [&str; N],
) -> ([SocketAddr; N], [BackendHandle; N]) {
    let mut addrs = Vec::with_capacity(N);
    let mut handles = Vec::with_capacity(N);
    for name in names {
        let (addr, handle) = spawn_backend(name).await;
        addrs.push(addr);
        handles.push(handle);
    }
    let addrs = <[SocketAddr; N]>::try_from(addrs).expect("one address per name");
    let handles = <[BackendHandle; N]>::try_from(handles).expect("one handle per name");
    (addrs, handles)
}

async fn start(port: Arc<HeldPort>, name: &str, health_status: u16) -> (SocketAddr, BackendHandle) {
    let addr = port.addr();
    // Retried: a killed backend's listener may take a moment to be closed by its task.
    let listener = crate::eventually(&format!("listening for backend {name} on {addr}"), || {
        let listener = port.listen().ok();
        async move { listener }
    })
    .await;
    let shared = Arc::new(Shared {
        name: name.to_owned(),
        hits: AtomicUsize::new(0),
        health_probes: AtomicUsize::new(0),
        connections: AtomicUsize::new(0),
        in_progress: AtomicUsize::new(0),
        peak_in_progress: AtomicUsize::new(0),
        requests: Mutex::new(Vec::new()),
        delay_ms: AtomicU64::new(0),
        status: AtomicU16::new(200),
        health_status: AtomicU16::new(health_status),
        held: Semaphore::new(0),
        tasks: Mutex::new(Tasks::default()),
        port,
    });
    let accept = tokio::spawn(server::accept_loop(listener, Arc::clone(&shared)));
    shared.tasks().accept = Some(accept);
    (addr, BackendHandle { addr, shared })
}

// === impl BackendHandle ===

impl BackendHandle {
    /// The address the backend listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The backend's name (its response body).
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Requests received, health probes (`/health`) excluded.
    pub fn hits(&self) -> usize {
        self.shared.hits.load(Ordering::SeqCst)
    }

    /// Health probes (`GET /health`) received.
    pub fn health_probes(&self) -> usize {
        self.shared.health_probes.load(Ordering::SeqCst)
    }

    /// TCP connections accepted (probes included).
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Requests being handled right now (e.g. held or delayed), probes excluded.
    pub fn in_progress(&self) -> usize {
        self.shared.in_progress.load(Ordering::SeqCst)
    }

    /// Waits until exactly `n` requests are in progress (`what` names the wait).
    ///
    /// # Panics
    /// As [`crate::eventually`], when that does not happen in time.
    pub async fn wait_in_progress(&self, n: usize, what: &str) {
        crate::eventually(what, || {
            let now = self.in_progress();
            async move { (now == n).then_some(()) }
        })
        .await;
    }

    /// The most requests that were ever in progress at once, probes excluded.
    pub fn peak_in_progress(&self) -> usize {
        self.shared.peak_in_progress.load(Ordering::SeqCst)
    }

    /// Every request received so far, probes excluded, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Delays every later answer (probes excluded) by `delay`.
    pub fn set_delay(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.shared.delay_ms.store(ms, Ordering::SeqCst);
    }

    /// The status of later ordinary answers (default 200).
    pub fn set_status(&self, status: u16) {
        self.shared.status.store(status, Ordering::SeqCst);
    }

    /// The status `GET /health` answers from now on (default 200).
    pub fn set_health_status(&self, status: u16) {
        self.shared.health_status.store(status, Ordering::SeqCst);
    }

    /// Lets `n` held (`/hold...`) requests answer, in arrival order.
    pub fn release(&self, n: usize) {
        self.shared.held.add_permits(n);
    }

    /// A backend named `name` on this (killed) backend's port, as a restarted process
    /// would come back on its old address.
    ///
    /// # Panics
    /// When the port cannot be listened on within 5 s (this backend still runs).
    pub async fn restart(&self, name: &str) -> BackendHandle {
        self.restart_with_health(name, 200).await
    }

    /// As [`restart`](BackendHandle::restart), with `GET /health` answering
    /// `health_status` from the first probe on: a restarted process that is not healthy
    /// yet, with no window in which a probe could see 200 before the test sets the status.
    ///
    /// # Panics
    /// As [`restart`](BackendHandle::restart).
    pub async fn restart_with_health(&self, name: &str, health_status: u16) -> BackendHandle {
        start(Arc::clone(&self.shared.port), name, health_status)
            .await
            .1
    }

    /// Stops accepting and closes every open connection; returns once the port refuses.
    pub async fn kill(&self) {
        let (accept, conns) = {
            let mut tasks = self.shared.tasks();
            tasks.killed = true;
            (tasks.accept.take(), std::mem::take(&mut tasks.conns))
        };
        // Held requests must not keep a connection task alive.
        self.shared.held.close();
        for task in accept.iter().chain(conns.iter()) {
            task.abort();
        }
        for task in accept.into_iter().chain(conns) {
            // An aborted task reports `cancelled`; its socket is closed either way.
            if let Err(e) = task.await {
                if !e.is_cancelled() {
                    panic!("backend {} task failed: {e}", self.shared.name);
                }
            }
        }
    }
}
