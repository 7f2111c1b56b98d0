//! Test backends on loopback (TCP and hyper HTTP) that count the probes they receive, and
//! tables built from YAML through the real config parser and backend registry.

#![allow(dead_code, unreachable_pub)] // each test file uses a different part

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use weir_balance::{Backend, BackendRegistry, Table};
use weir_e2e::HeldPort;
use weir_health::HealthChecker;

/// A pool for [`table`]: name, backend addresses and the `health_check` YAML (if any).
pub struct PoolSpec<'a> {
    pub name: &'a str,
    pub backends: &'a [SocketAddr],
    pub health_check: Option<&'a str>,
}

/// Builds a table of `pools` through `weir_config::parse` and `registry`.
pub fn table(registry: &BackendRegistry, generation: u64, pools: &[PoolSpec<'_>]) -> Table {
    let mut yaml =
        String::from("listeners:\n  - name: web\n    listen: 127.0.0.1:0\n    routes:\n");
    for p in pools {
        yaml.push_str(&format!(
            "      - {{ match: {{ path_prefix: /{0}/ }}, pool: {0} }}\n",
            p.name
        ));
    }
    yaml.push_str("pools:\n");
    for p in pools {
        yaml.push_str(&format!("  {}:\n    backends:\n", p.name));
        for b in p.backends {
            yaml.push_str(&format!("      - {{ address: \"{b}\" }}\n"));
        }
        if let Some(check) = p.health_check {
            yaml.push_str(&format!("    health_check: {check}\n"));
        }
    }
    let config = weir_config::parse(&yaml, "test.yaml".as_ref())
        .unwrap_or_else(|e| panic!("test config is valid: {e:?}\n{yaml}"));
    registry.build(Arc::new(config), generation)
}

/// Pool `app` with the one backend `addr`, checked by `health_check` (YAML), in a table
/// of generation 1 that a new checker has reconciled: the registry, the table, the
/// checker (keep it: its drop stops the probes) and the backend.
pub fn checked(
    addr: SocketAddr,
    health_check: &str,
) -> (BackendRegistry, Table, HealthChecker, Arc<Backend>) {
    let registry = BackendRegistry::new();
    let table = app_table(&registry, 1, &[addr], Some(health_check));
    let mut checker = HealthChecker::new();
    checker.reconcile(&table);
    let backend = only_backend(&table);
    (registry, table, checker, backend)
}

/// A table of generation `generation` with the one pool `app` of `backends`, checked by
/// `health_check` (YAML) if given.
pub fn app_table(
    registry: &BackendRegistry,
    generation: u64,
    backends: &[SocketAddr],
    health_check: Option<&str>,
) -> Table {
    table(
        registry,
        generation,
        &[PoolSpec {
            name: "app",
            backends,
            health_check,
        }],
    )
}

/// The one backend of the one pool of `table`.
pub fn only_backend(table: &Table) -> Arc<Backend> {
    backend(table, 0)
}

/// Backend `i` of the first pool.
pub fn backend(table: &Table, i: usize) -> Arc<Backend> {
    Arc::clone(table.pools()[0].backends().nth(i).expect("backend exists"))
}

#[allow(unused_imports)] // not every test file that includes this module uses each
pub use weir_e2e::{closed_port, until, until_no_sooner};

/// A TCP server that accepts and closes connections, counting them.
///
/// Its port is held for the whole test ([`HeldPort`]): stopped, it refuses, and nothing
/// else can take the port before [`TcpBackend::restart`].
pub struct TcpBackend {
    pub addr: SocketAddr,
    pub connections: Arc<AtomicUsize>,
    port: Arc<HeldPort>,
    task: Option<JoinHandle<()>>,
}

impl TcpBackend {
    pub async fn start() -> Self {
        Self::serve(Arc::new(HeldPort::new()), Arc::new(AtomicUsize::new(0)))
    }

    fn serve(port: Arc<HeldPort>, connections: Arc<AtomicUsize>) -> Self {
        let listener = port.listen().expect("listen on the held port");
        let addr = port.addr();
        let count = Arc::clone(&connections);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
        TcpBackend {
            addr,
            connections,
            port,
            task: Some(task),
        }
    }

    pub fn count(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Closes the listening socket; returns once it is closed.
    pub async fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _cancelled = task.await;
        }
    }

    /// Listens on the same port again.
    pub async fn restart(&mut self) {
        *self = Self::serve(Arc::clone(&self.port), Arc::clone(&self.connections));
    }
}

impl Drop for TcpBackend {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// What an HTTP test backend saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub host: Option<String>,
    pub user_agent: Option<String>,
    pub connection: Option<String>,
}

/// A hyper HTTP/1.1 server answering 200 while `healthy`, 503 otherwise, recording every
/// request it receives.
pub struct HttpBackend {
    pub addr: SocketAddr,
    pub healthy: Arc<AtomicBool>,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    task: JoinHandle<()>,
}

impl HttpBackend {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("bound address");
        let healthy = Arc::new(AtomicBool::new(true));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (h, s) = (Arc::clone(&healthy), Arc::clone(&seen));
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (h, s) = (Arc::clone(&h), Arc::clone(&s));
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let header = |name: &str| {
                            req.headers()
                                .get(name)
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_owned)
                        };
                        s.lock().expect("seen lock").push(Seen {
                            path: req.uri().to_string(),
                            host: header("host"),
                            user_agent: header("user-agent"),
                            connection: header("connection"),
                        });
                        let status = if h.load(Ordering::SeqCst) {
                            StatusCode::OK
                        } else {
                            StatusCode::SERVICE_UNAVAILABLE
                        };
                        let mut response =
                            Response::new(Full::new(Bytes::from_static(b"health\n")));
                        *response.status_mut() = status;
                        async move { Ok::<_, Infallible>(response) }
                    });
                    if let Err(e) = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await
                    {
                        eprintln!("test backend connection: {e}");
                    }
                });
            }
        });
        HttpBackend {
            addr,
            healthy,
            seen,
            task,
        }
    }

    pub fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::SeqCst);
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().expect("seen lock").clone()
    }

    pub fn count(&self) -> usize {
        self.seen.lock().expect("seen lock").len()
    }
}

impl Drop for HttpBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A TCP server that accepts connections and never answers (holds them open).
pub async fn silent_backend() -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("bound address");
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    (addr, task)
}
