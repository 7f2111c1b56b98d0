//! A stand-in Kubernetes API server on loopback for the EndpointSlice discovery tests:
//! no cluster can run here, so this speaks the part of the real protocol a watcher
//! uses, over plain HTTP/1.1 on a port the test holds.
//!
//! - `GET /apis/discovery.k8s.io/v1/namespaces/NS/endpointslices?labelSelector=K%3DV`
//!   lists the matching slices as an `EndpointSliceList` with the current
//!   `metadata.resourceVersion` (items without `kind`/`apiVersion`, as the API server
//!   sends them).
//! - The same with `watch=true&resourceVersion=RV` streams newline-delimited
//!   `WatchEvent` JSON (chunked): every change after RV from the history, then new ones
//!   as [`ApiServer::apply`] and [`ApiServer::delete`] make them; with
//!   `allowWatchBookmarks=true`, a `BOOKMARK` at the current version once caught up.
//!   An RV older than the history ([`ApiServer::expire`]) gets an `ERROR` event with a
//!   `Status` of code 410 (Expired) and the stream ends: the client must re-list, as
//!   against a real API server after etcd compaction.
//! - [`ApiServer::stop`] closes the port and every connection; [`ApiServer::start_again`]
//!   serves again on the same port, with the same objects.
//!
//! The slices are built from `tests/fixtures/k8s/endpointslice-list.json`
//! (the v1 API shape), with the test's backends as endpoints ([`slice`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::HeldPort;

/// One endpoint of a slice: an address (its port is the slice's) and its conditions.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint {
    addr: SocketAddr,
    ready: bool,
    serving: bool,
    terminating: bool,
}

/// A ready endpoint (`ready`, `serving`, not `terminating`).
pub fn ready(addr: SocketAddr) -> Endpoint {
    Endpoint {
        addr,
        ready: true,
        serving: true,
        terminating: false,
    }
}

/// A pod that is not ready yet (its readiness probe fails).
pub fn not_ready(addr: SocketAddr) -> Endpoint {
    Endpoint {
        ready: false,
        serving: false,
        ..ready(addr)
    }
}

/// A pod being deleted that still serves (`terminating`, `serving`, not `ready`).
pub fn terminating(addr: SocketAddr) -> Endpoint {
    Endpoint {
        ready: false,
        serving: true,
        terminating: true,
        ..ready(addr)
    }
}

/// The fixtures' directory (EndpointSlice JSON in the v1 shape the API server returns).
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/k8s")
}

/// The fixture slice `web-7xk2p` of Service `web` in namespace `shop`, named `name`,
/// with `endpoints` instead of its own, all on the port named `port_name`, whose number
/// is the endpoints' port (they must share one, as a slice's endpoints do).
///
/// # Panics
/// When the fixture is missing or the endpoints' ports differ.
pub fn slice(name: &str, port_name: &str, endpoints: &[Endpoint]) -> Value {
    let path = fixtures().join("endpointslice-list.json");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let list: Value = serde_json::from_str(&text).expect("the fixture is JSON");
    let mut s = list["items"][0].clone();
    let port = endpoints.first().map_or(8080, |e| e.addr.port());
    assert!(
        endpoints.iter().all(|e| e.addr.port() == port),
        "one slice, one port: {endpoints:?}"
    );
    s["metadata"]["name"] = json!(name);
    s["metadata"]["uid"] = json!(format!("uid-{name}"));
    s["ports"] = json!([
        { "name": port_name, "protocol": "TCP", "port": port },
        { "name": "metrics", "protocol": "TCP", "port": 9090 }
    ]);
    s["endpoints"] = endpoints
        .iter()
        .enumerate()
        .map(|(i, e)| {
            json!({
                "addresses": [e.addr.ip().to_string()],
                "conditions": { "ready": e.ready, "serving": e.serving, "terminating": e.terminating },
                "targetRef": { "kind": "Pod", "namespace": "shop", "name": format!("{name}-pod-{i}"), "uid": format!("pod-{name}-{i}") },
                "nodeName": "node-a",
                "zone": "eu-west-1a"
            })
        })
        .collect();
    s
}

#[derive(Default)]
struct State {
    resource_version: u64,
    /// Current objects by name.
    slices: BTreeMap<String, Value>,
    /// `(resourceVersion, event line)` of every change since `oldest`.
    history: Vec<(u64, String)>,
    /// A watch from an older version than this is answered 410.
    oldest: u64,
    watchers: Vec<mpsc::UnboundedSender<String>>,
}

#[derive(Default)]
struct Counters {
    lists: AtomicUsize,
    watches: AtomicUsize,
    gone: AtomicUsize,
    bookmarks: AtomicUsize,
}

/// The stand-in API server (see the module docs).
pub struct ApiServer {
    port: Arc<HeldPort>,
    state: Arc<Mutex<State>>,
    counters: Arc<Counters>,
    accept: Mutex<Option<JoinHandle<()>>>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

// === impl ApiServer ===

impl ApiServer {
    /// As [`ApiServer::start`], serving one slice per `(name, endpoint)` (port name
    /// `http`), applied in order: the usual starting set of a test.
    ///
    /// # Panics
    /// As [`ApiServer::start`].
    pub async fn with_slices(slices: &[(&str, Endpoint)]) -> ApiServer {
        let api = ApiServer::start().await;
        for (name, endpoint) in slices {
            api.apply(slice(name, "http", std::slice::from_ref(endpoint)));
        }
        api
    }

    /// Serves on a fresh loopback port, with no objects (resourceVersion 1000).
    ///
    /// # Panics
    /// When loopback cannot be bound.
    pub async fn start() -> ApiServer {
        let server = ApiServer {
            port: Arc::new(HeldPort::new()),
            state: Arc::new(Mutex::new(State {
                resource_version: 1000,
                oldest: 1000,
                ..State::default()
            })),
            counters: Arc::new(Counters::default()),
            accept: Mutex::new(None),
            conns: Arc::new(Mutex::new(Vec::new())),
        };
        server.start_again().await;
        server
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.port.addr()
    }

    /// Writes a kubeconfig naming this server (plain HTTP, no credentials) in `dir`,
    /// with `namespace` as the context's default; returns its path (for `KUBECONFIG`).
    ///
    /// # Panics
    /// When the file cannot be written.
    pub fn kubeconfig(&self, dir: &Path, namespace: &str) -> PathBuf {
        let path = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: stand-in\n  cluster:\n    server: http://{}\n\
             users:\n- name: weir\n  user: {{}}\ncontexts:\n- name: test\n  context:\n    cluster: stand-in\n    \
             user: weir\n    namespace: {namespace}\ncurrent-context: test\n",
            self.addr()
        );
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    /// Creates or replaces a slice: an `ADDED` or `MODIFIED` event to every watch.
    pub fn apply(&self, mut slice: Value) {
        let name = slice["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let mut st = lock(&self.state);
        st.resource_version += 1;
        let rv = st.resource_version;
        slice["metadata"]["resourceVersion"] = json!(rv.to_string());
        let kind = if st.slices.contains_key(&name) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        st.slices.insert(name, slice.clone());
        record(&mut st, rv, kind, slice);
    }

    /// Deletes a slice: a `DELETED` event to every watch.
    pub fn delete(&self, name: &str) {
        let mut st = lock(&self.state);
        let Some(mut slice) = st.slices.remove(name) else {
            return;
        };
        st.resource_version += 1;
        let rv = st.resource_version;
        slice["metadata"]["resourceVersion"] = json!(rv.to_string());
        record(&mut st, rv, "DELETED", slice);
    }

    /// etcd compacted: replaces the slices with `slices` without any event (only a
    /// re-list can see them), forgets the history and ends every watch. A client that
    /// resumes from the version it had gets 410 Gone.
    pub fn expire(&self, slices: Vec<Value>) {
        let mut st = lock(&self.state);
        st.resource_version += 1;
        let rv = st.resource_version;
        st.slices = slices
            .into_iter()
            .map(|mut s| {
                s["metadata"]["resourceVersion"] = json!(rv.to_string());
                (
                    s["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    s,
                )
            })
            .collect();
        st.history.clear();
        st.oldest = rv;
        st.watchers.clear();
    }

    /// Stops serving: the port refuses and every open connection is closed.
    pub fn stop(&self) {
        if let Some(accept) = lock(&self.accept).take() {
            accept.abort();
        }
        for conn in lock(&self.conns).drain(..) {
            conn.abort();
        }
        lock(&self.state).watchers.clear();
    }

    /// Serves (again) on the same port.
    ///
    /// # Panics
    /// When the port cannot be listened on within the bounded wait.
    pub async fn start_again(&self) {
        let port = Arc::clone(&self.port);
        let listener: TcpListener = crate::eventually("the stand-in API server listening", || {
            let l = port.listen().ok();
            async move { l }
        })
        .await;
        let (state, counters, conns) = (
            Arc::clone(&self.state),
            Arc::clone(&self.counters),
            Arc::clone(&self.conns),
        );
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let conn = tokio::spawn(serve(stream, Arc::clone(&state), Arc::clone(&counters)));
                let mut all = lock(&conns);
                all.retain(|c| !c.is_finished());
                all.push(conn);
            }
        });
        *lock(&self.accept) = Some(accept);
    }

    /// Lists served so far.
    pub fn lists(&self) -> usize {
        self.counters.lists.load(Ordering::Relaxed)
    }

    /// Watches started so far.
    pub fn watches(&self) -> usize {
        self.counters.watches.load(Ordering::Relaxed)
    }

    /// Watches answered 410 Gone so far.
    pub fn gone(&self) -> usize {
        self.counters.gone.load(Ordering::Relaxed)
    }

    /// `BOOKMARK` events sent so far (only to watches that asked for them).
    pub fn bookmarks(&self) -> usize {
        self.counters.bookmarks.load(Ordering::Relaxed)
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Appends the event to the history and sends it to every live watch.
fn record(st: &mut State, rv: u64, kind: &str, mut object: Value) {
    object["kind"] = json!("EndpointSlice");
    object["apiVersion"] = json!("discovery.k8s.io/v1");
    let line = json!({ "type": kind, "object": object }).to_string();
    st.history.push((rv, line.clone()));
    st.watchers.retain(|w| w.send(line.clone()).is_ok());
}

/// One client connection: requests one after the other (keep-alive) until a watch,
/// which holds the connection until it ends.
async fn serve(mut stream: TcpStream, state: Arc<Mutex<State>>, counters: Arc<Counters>) {
    let mut buf = Vec::new();
    loop {
        let Some(head) = read_head(&mut stream, &mut buf).await else {
            return;
        };
        let target = head
            .lines()
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .unwrap_or("/")
            .to_owned();
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let params: BTreeMap<String, String> = query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), percent_decode(v)))
            .collect();
        let Some(ns) = path
            .strip_prefix("/apis/discovery.k8s.io/v1/namespaces/")
            .and_then(|rest| rest.strip_suffix("/endpointslices"))
        else {
            let body = json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":format!("the server could not find the requested resource ({path})"),"reason":"NotFound","code":404}).to_string();
            if respond(&mut stream, "404 Not Found", &body).await.is_err() {
                return;
            }
            continue;
        };
        let selector = params.get("labelSelector").cloned().unwrap_or_default();
        let matches = |s: &Value| {
            s["metadata"]["namespace"].as_str() == Some(ns)
                && selector.split(',').filter(|t| !t.is_empty()).all(|term| {
                    term.split_once('=')
                        .is_some_and(|(k, v)| s["metadata"]["labels"][k].as_str() == Some(v))
                })
        };
        if params.get("watch").map(String::as_str) == Some("true") {
            let from: u64 = params
                .get("resourceVersion")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let bookmarks = params.get("allowWatchBookmarks").map(String::as_str) == Some("true");
            watch(stream, &state, &counters, from, bookmarks, matches).await;
            return;
        }
        counters.lists.fetch_add(1, Ordering::Relaxed);
        let body = {
            let st = lock(&state);
            let items: Vec<&Value> = st.slices.values().filter(|s| matches(s)).collect();
            json!({
                "kind": "EndpointSliceList",
                "apiVersion": "discovery.k8s.io/v1",
                "metadata": { "resourceVersion": st.resource_version.to_string() },
                "items": items
            })
            .to_string()
        };
        if respond(&mut stream, "200 OK", &body).await.is_err() {
            return;
        }
    }
}

async fn watch(
    mut stream: TcpStream,
    state: &Mutex<State>,
    counters: &Counters,
    from: u64,
    bookmarks: bool,
    matches: impl Fn(&Value) -> bool,
) {
    counters.watches.fetch_add(1, Ordering::Relaxed);
    let head =
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut first = Vec::new();
    {
        let mut st = lock(state);
        if from < st.oldest {
            counters.gone.fetch_add(1, Ordering::Relaxed);
            first.push(json!({"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":format!("too old resource version: {from} ({})", st.oldest),"reason":"Expired","code":410}}).to_string());
            drop(tx);
        } else {
            first.extend(
                st.history
                    .iter()
                    .filter(|(rv, _)| *rv > from)
                    .map(|(_, l)| l.clone()),
            );
            if bookmarks {
                counters.bookmarks.fetch_add(1, Ordering::Relaxed);
                first.push(json!({"type":"BOOKMARK","object":{"kind":"EndpointSlice","apiVersion":"discovery.k8s.io/v1","metadata":{"resourceVersion":st.resource_version.to_string(),"creationTimestamp":null}}}).to_string());
            }
            st.watchers.push(tx);
        }
    }
    if stream.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let wanted = |line: &str| {
        serde_json::from_str::<Value>(line)
            .is_ok_and(|e| e["type"] == "BOOKMARK" || e["type"] == "ERROR" || matches(&e["object"]))
    };
    for line in first.iter().filter(|l| wanted(l)) {
        if chunk(&mut stream, line).await.is_err() {
            return;
        }
    }
    while let Some(line) = rx.recv().await {
        if wanted(&line) && chunk(&mut stream, &line).await.is_err() {
            return;
        }
    }
    // The watch was ended (410, expire): close the stream properly. A client already
    // gone has nothing to be told, so a failed write needs no handling.
    if stream.write_all(b"0\r\n\r\n").await.is_ok() {
        stream.flush().await.ok();
    }
}

async fn chunk(stream: &mut TcpStream, line: &str) -> std::io::Result<()> {
    let data = format!("{line}\n");
    stream
        .write_all(format!("{:x}\r\n{data}\r\n", data.len()).as_bytes())
        .await
}

async fn respond(stream: &mut TcpStream, status: &str, body: &str) -> std::io::Result<()> {
    let text = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(text.as_bytes()).await
}

/// Reads one request head (the requests a watcher sends have no body).
async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end + 4);
            return Some(head);
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
