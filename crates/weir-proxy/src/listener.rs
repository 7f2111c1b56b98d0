//! Listener accept loops and connection tracking.
//!
//! One task per listener accepts; one task per client connection serves it (HTTP via
//! [`crate::http`], TCP via [`crate::tcp`]). A semaphore permit is taken *before*
//! `accept`, so beyond `max_connections` clients wait in the kernel's backlog instead of
//! being accepted and dropped (HAProxy's `maxconn`). Each connection reads its
//! listener's settings from the current table by name; a listener missing from the
//! table (being removed) closes new connections. The name is shared by the accept task
//! and every connection and can change ([`ListenerHandle::rename`]): a reload that only
//! renames a listener keeps its task and its connections, which then follow the new name.
//!
//! Shutdown has two steps, after an optional grace: [`ListenerHandle::drain`] stops
//! accepting at once and asks HTTP connections to finish (TCP streams run on), then
//! [`ListenerHandle::drained`] waits for them up to a deadline and closes the rest by
//! force. During the grace ([`ListenerHandle::wind_down`]) the listener still accepts
//! and serves, but every HTTP connection closes after its next response (an HTTP/1 one
//! idle between requests at once), so clients that an outer balancer or a moved VIP
//! sends elsewhere get there with their next request.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use weir_balance::SharedTable;
use weir_config::Protocol;

use crate::tls::ListenerTls;

/// Connection limit used when the listener is missing from the table at start.
const FALLBACK_MAX_CONNECTIONS: u32 = 10_000;

/// A listener's current name, read by its accept task and by every request of its
/// connections to find the listener in the table; a rename stores a new one.
pub(crate) type ListenerName = Arc<ArcSwap<Arc<str>>>;

/// Shutdown signals and task tracking shared by a listener's connections.
#[derive(Debug, Clone)]
pub(crate) struct ConnScope {
    /// Asks connections to finish (graceful).
    pub(crate) drain: CancellationToken,
    /// Ends whatever is left (forced).
    pub(crate) kill: CancellationToken,
    /// Set just before `drain` is cancelled: read per request without the token's lock.
    pub(crate) draining: Arc<std::sync::atomic::AtomicBool>,
    /// Set just before `kill` is cancelled (see `draining`).
    pub(crate) killed: Arc<std::sync::atomic::AtomicBool>,
    /// Asks connections to close after their current response while the listener still
    /// accepts (the shutdown grace); `drain` implies it.
    pub(crate) winding_down: CancellationToken,
    /// Set just before `winding_down` is cancelled: read by every response, which then
    /// says `Connection: close`.
    pub(crate) closes: Arc<std::sync::atomic::AtomicBool>,
    /// Every connection task and tunnel.
    pub(crate) tasks: TaskTracker,
    /// The listener's current name.
    pub(crate) name: ListenerName,
}

// === impl ConnScope ===

impl ConnScope {
    /// Whether the response being written must close its connection: the listener is
    /// winding down or draining.
    pub(crate) fn says_close(&self) -> bool {
        self.closes.load(Ordering::Acquire)
    }
}

/// Starts accepting on `socket` for the listener called `name` in the table.
///
/// Each connection reads the listener's settings (protocol, routes, timeouts,
/// `max_connections`) from the current table snapshot by name. Must be called within a
/// tokio runtime.
///
/// # Errors
///
/// When the socket's local address cannot be read.
pub fn spawn_listener(
    socket: TcpListener,
    name: Arc<str>,
    table: SharedTable,
) -> io::Result<ListenerHandle> {
    spawn_tls_listener(socket, name, table, None)
}

/// As [`spawn_listener`], terminating TLS with `tls` from the very first connection
/// (`None`: plain). [`ListenerHandle::set_tls`] changes it later.
///
/// # Errors
///
/// When the socket's local address cannot be read.
pub fn spawn_tls_listener(
    socket: TcpListener,
    name: Arc<str>,
    table: SharedTable,
    tls: Option<ListenerTls>,
) -> io::Result<ListenerHandle> {
    let local_addr = socket.local_addr()?;
    Ok(start_tls_listener(socket, local_addr, name, table, tls))
}

/// As [`spawn_tls_listener`], with the socket's address already read by the caller
/// (`socket.local_addr()`), so starting cannot fail: a reload does every fallible step
/// first and then starts its listeners with nothing left that could go wrong halfway.
pub fn start_tls_listener(
    socket: TcpListener,
    local_addr: SocketAddr,
    name: Arc<str>,
    table: SharedTable,
    tls: Option<ListenerTls>,
) -> ListenerHandle {
    let tls = Arc::new(ArcSwapOption::from(tls.map(Arc::new)));
    // The span keeps the name the task started with: logs say which task this was.
    let span = tracing::info_span!("listener", listener = %name, addr = %local_addr);
    let scope = ConnScope {
        drain: CancellationToken::new(),
        kill: CancellationToken::new(),
        draining: Arc::default(),
        killed: Arc::default(),
        winding_down: CancellationToken::new(),
        closes: Arc::default(),
        tasks: TaskTracker::new(),
        name: Arc::new(ArcSwap::from_pointee(name)),
    };
    let active = Arc::new(AtomicUsize::new(0));
    let accept = TaskTracker::new();
    accept.spawn(
        accept_loop(
            socket,
            table,
            scope.clone(),
            Arc::clone(&active),
            Arc::clone(&tls),
        )
        .instrument(span),
    );
    accept.close();
    ListenerHandle {
        local_addr,
        scope,
        active,
        accept,
        tls,
    }
}

async fn accept_loop(
    socket: TcpListener,
    table: SharedTable,
    scope: ConnScope,
    active: Arc<AtomicUsize>,
    tls: Arc<ArcSwapOption<ListenerTls>>,
) {
    let mut limit = table
        .load()
        .listener(&scope.name.load())
        .map_or(FALLBACK_MAX_CONNECTIONS, |l| l.max_connections());
    let permits = Arc::new(Semaphore::new(limit as usize));
    loop {
        let want = table
            .load()
            .listener(&scope.name.load())
            .map(|l| l.max_connections());
        if let Some(want) = want {
            resize(&permits, &mut limit, want);
        }
        let permit = tokio::select! {
            biased;
            () = scope.drain.cancelled() => break,
            p = Arc::clone(&permits).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            biased;
            () = scope.drain.cancelled() => break,
            r = socket.accept() => match r {
                Ok(pair) => pair,
                Err(e) => {
                    accept_error(&e).await;
                    continue;
                }
            },
        };
        active.fetch_add(1, Ordering::Relaxed);
        let conn = Connection {
            active: Arc::clone(&active),
        };
        let (table, task_scope) = (Arc::clone(&table), scope.clone());
        let tls_now = tls.load_full();
        let span = tracing::debug_span!("conn", %peer);
        scope.tasks.spawn(
            async move {
                let _permit = permit;
                let _conn = conn;
                serve(stream, peer, table, task_scope, tls_now).await;
            }
            .instrument(span),
        );
    }
    drop(socket);
    tracing::info!("listener stopped accepting");
}

async fn serve(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    table: SharedTable,
    scope: ConnScope,
    tls: Option<Arc<ListenerTls>>,
) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "TCP_NODELAY failed");
    }
    let Some(listener) = table.load().listener(&scope.name.load()).map(Arc::clone) else {
        tracing::debug!("listener no longer in the table, closing");
        return;
    };
    tracing::debug!(protocol = ?listener.protocol(), "accepted");
    // `weir_listener_connections_{total,active}`: counted for the connection's life.
    let _counted = listener
        .metrics()
        .map(weir_telemetry::ListenerMetrics::connection_opened);
    let mut stream = stream;
    let header_read = listener.timeouts().header_read;
    // Boxed, like every state an idle HTTP/1 connection is never in (TLS handshake, TCP
    // relay): the connection task's future stays as small as the state it waits in.
    let Some(origin) = Box::pin(crate::proxy_protocol::on_accept(
        &mut stream,
        peer,
        &table,
        listener.name(),
        header_read,
    ))
    .await
    else {
        return;
    };
    let peer = origin.client;
    // The listener's access list, on the PROXY header's address when there was one:
    // nothing more of the connection is read.
    if !listener.policy().permits(peer.ip()) {
        tracing::debug!(client = %peer, "refused by the listener's access list, closing");
        return;
    }
    // TLS sits inside the PROXY header (which a balancer in front sends in the clear).
    let Some(tls) = tls else {
        return dispatch(stream, false, peer, origin, listener, table, &scope).await;
    };
    let Some(stream) = Box::pin(crate::tls::accept(&tls, stream, &scope.kill)).await else {
        return;
    };
    Box::pin(dispatch(
        stream, true, peer, origin, listener, table, &scope,
    ))
    .await;
}

/// Hands a client stream (plain, or TLS after its handshake) to HTTP or TCP.
async fn dispatch<S>(
    stream: S,
    is_tls: bool,
    peer: SocketAddr,
    origin: crate::proxy_protocol::Origin,
    listener: Arc<weir_balance::ListenerTable>,
    table: SharedTable,
    scope: &ConnScope,
) where
    S: crate::h1::ClientStream,
{
    match listener.protocol() {
        Protocol::Http => {
            // Each request loads its own snapshot: the connection must not pin this one
            // (with its pools and backends, and their metric series) for its whole life.
            let limits = crate::http::ConnLimits::of(&listener);
            drop(listener);
            crate::http::serve(stream, is_tls, peer, limits, table, scope).await;
        }
        Protocol::Tcp => Box::pin(crate::tcp::serve(stream, origin, &listener, scope)).await,
    }
}

/// Follows a reload's `max_connections`: adds permits, or withdraws free ones (busy
/// ones are withdrawn on later passes as their connections end).
fn resize(permits: &Semaphore, limit: &mut u32, want: u32) {
    if want > *limit {
        permits.add_permits((want - *limit) as usize);
        *limit = want;
    } else if want < *limit {
        let gone = permits.forget_permits((*limit - want) as usize);
        *limit -= u32::try_from(gone).unwrap_or(0);
    }
}

/// Out of descriptors or memory: back off instead of spinning on `accept`.
async fn accept_error(e: &io::Error) {
    let exhausted = matches!(e.raw_os_error(), Some(23 | 24 | 105 | 12));
    if exhausted {
        tracing::warn!(error = %e, "accept failed, backing off");
        tokio::time::sleep(Duration::from_millis(100)).await;
    } else {
        tracing::debug!(error = %e, "accept failed");
    }
}

/// Counts an open client connection.
#[derive(Debug)]
struct Connection {
    active: Arc<AtomicUsize>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A running listener: its accept loop and the connections it accepted.
#[derive(Debug)]
pub struct ListenerHandle {
    local_addr: SocketAddr,
    scope: ConnScope,
    active: Arc<AtomicUsize>,
    accept: TaskTracker,
    /// TLS termination, swapped by reloads; loaded once per accepted connection.
    tls: Arc<ArcSwapOption<ListenerTls>>,
}

impl ListenerHandle {
    /// The listener's name.
    pub fn name(&self) -> Arc<str> {
        Arc::clone(&self.scope.name.load())
    }

    /// Calls the listener `name` from now on: its accept task and every connection it
    /// accepted find their settings in the table under `name`, with no connection
    /// closed. Store the table that has `name` first (with the old name as an alias,
    /// [`weir_balance::Table::alias_listener`], for requests that read it just before).
    pub fn rename(&self, name: Arc<str>) {
        self.scope.name.store(Arc::new(name));
    }

    /// The address actually bound (port 0 resolved).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Terminates TLS with `tls` on connections accepted from now on (`None`: plain).
    /// Established connections keep the session they negotiated.
    pub fn set_tls(&self, tls: Option<ListenerTls>) {
        self.tls.store(tls.map(Arc::new));
    }

    /// Whether new connections are served over TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.load().is_some()
    }

    /// Client connections currently open (upgraded tunnels not included).
    pub fn active_connections(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// Keeps accepting and serving, but asks every HTTP connection to close after its
    /// current response: HTTP/1 responses from now on say `Connection: close`, HTTP/2
    /// connections get GOAWAY (their streams in flight finish); TCP streams are left
    /// alone. HTTP/1 connections idle between requests (none of the next one read yet)
    /// close at once, so their clients see a FIN while this host still receives their
    /// packets, not a reset from wherever the VIP moved; one accepted but still waiting
    /// for its first request is served.
    pub fn wind_down(&self) {
        self.scope.closes.store(true, Ordering::Release);
        self.scope.winding_down.cancel();
    }

    /// Stops accepting at once (the task's socket is dropped) and asks every connection to
    /// finish: HTTP/1.1 connections close after their current response
    /// (`Connection: close`), HTTP/2 ones get GOAWAY, TCP streams run to their end.
    pub fn drain(&self) {
        self.wind_down();
        self.scope.draining.store(true, Ordering::Release);
        self.scope.drain.cancel();
        self.scope.tasks.close();
    }

    /// Waits until the accept task has stopped (after [`ListenerHandle::drain`]), at most
    /// `timeout`; says whether it did. From then on this listener accepts nothing.
    pub async fn accept_stopped(&self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, self.accept.wait())
            .await
            .is_ok()
    }

    /// Waits until every connection has closed, at most `timeout`; then closes whatever
    /// is left by force. Returns the number of connections (and tunnels) closed by force.
    ///
    /// Drains first if [`ListenerHandle::drain`] was not called.
    pub async fn drained(&self, timeout: Duration) -> usize {
        self.drain();
        let deadline = tokio::time::Instant::now() + timeout;
        // The accept task exits at once on drain; after that no connection is added.
        if tokio::time::timeout_at(deadline, self.accept.wait())
            .await
            .is_err()
        {
            tracing::warn!(listener = %self.name(), "accept loop did not stop in time");
        }
        if tokio::time::timeout_at(deadline, self.scope.tasks.wait())
            .await
            .is_ok()
        {
            return 0;
        }
        let left = self.scope.tasks.len();
        self.scope.killed.store(true, Ordering::Release);
        self.scope.kill.cancel();
        // Every task selects on `kill`, so they end at their next poll.
        if tokio::time::timeout(Duration::from_secs(1), self.scope.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(listener = %self.name(), "connections still open after forced close");
        }
        left
    }
}
