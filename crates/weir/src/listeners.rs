//! The set of running listeners, reconciled with each configuration.
//!
//! A reload must never refuse a connection on an address that stays configured. So a
//! listener's socket is keyed by its configured address: when the address is kept, the
//! socket is kept (its accept queue never closes); only the accept task may be replaced
//! when the listener's name or protocol changed, in which case the new task starts on a
//! duplicate of the same socket before the old task stops. Sockets for new addresses are
//! bound *before* the new table is swapped in, so a bind failure rejects the whole reload
//! and leaves the old configuration serving untouched.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use weir_admin::ListenerStatus;
use weir_balance::SharedTable;
use weir_config::{Config, Protocol};
use weir_proxy::tls::ListenerTls;
use weir_proxy::ListenerHandle;

/// Accept queue length: deep enough that a burst during a reload or at `max_connections`
/// waits in the kernel instead of being refused.
const BACKLOG: u32 = 4096;

/// One running listener.
struct Running {
    name: Arc<str>,
    protocol: Protocol,
    /// As configured (port 0 stays 0): the key for socket reuse.
    listen: SocketAddr,
    /// Our own duplicate of the listening socket, kept so a replacement task can take
    /// over the very same socket.
    socket: std::net::TcpListener,
    handle: Arc<ListenerHandle>,
}

/// What a new configuration needs: kept listeners, and sockets ready for new tasks.
pub(crate) struct Plan {
    /// Index into `running` per new listener, or a socket for a new task.
    entries: Vec<(Arc<str>, Protocol, SocketAddr, PlanSocket)>,
    /// Per entry: its TLS termination (certificates read by this reload), or `None`.
    tls: Vec<Option<ListenerTls>>,
}

enum PlanSocket {
    /// Same name, protocol and address: the running task carries on.
    Keep(usize),
    /// A socket (bound now, or a duplicate of a running one) for a new accept task.
    Start(std::net::TcpListener),
}

/// The running listeners of this process.
#[derive(Default)]
pub(crate) struct Listeners {
    running: Vec<Running>,
}

// === impl Listeners ===

impl Listeners {
    /// Binds what `config` needs that is not running yet. Nothing changes on error.
    /// `tls` has one entry per listener of `config`, in order.
    pub(crate) fn prepare(
        &self,
        config: &Config,
        tls: Vec<Option<ListenerTls>>,
    ) -> anyhow::Result<Plan> {
        let mut claimed = vec![false; self.running.len()];
        let mut entries = Vec::with_capacity(config.listeners.len());
        for l in &config.listeners {
            let exact = self.running.iter().enumerate().position(|(i, r)| {
                !claimed[i]
                    && *r.name == *l.name
                    && r.protocol == l.protocol
                    && r.listen == l.listen
            });
            let socket = if let Some(i) = exact {
                claimed[i] = true;
                PlanSocket::Keep(i)
            } else if let Some(i) = self
                .running
                .iter()
                .enumerate()
                .position(|(i, r)| !claimed[i] && r.listen == l.listen)
            {
                claimed[i] = true;
                let dup = self.running[i].socket.try_clone().with_context(|| {
                    format!("listener {}: duplicating socket {}", l.name, l.listen)
                })?;
                PlanSocket::Start(dup)
            } else {
                PlanSocket::Start(
                    bind(l.listen)
                        .with_context(|| format!("listener {}: bind {}", l.name, l.listen))?,
                )
            };
            entries.push((Arc::from(l.name.as_str()), l.protocol, l.listen, socket));
        }
        debug_assert_eq!(tls.len(), entries.len(), "one TLS entry per listener");
        Ok(Plan { entries, tls })
    }

    /// Starts the planned tasks and drains the listeners the plan no longer has. Call
    /// after the new table is live, so new tasks find their listener in it.
    pub(crate) fn commit(
        &mut self,
        plan: Plan,
        table: &SharedTable,
        drain_timeout: Duration,
    ) -> anyhow::Result<()> {
        let mut old: Vec<Option<Running>> = std::mem::take(&mut self.running)
            .into_iter()
            .map(Some)
            .collect();
        let mut next = Vec::with_capacity(plan.entries.len());
        let mut tls = plan.tls.into_iter();
        for (name, protocol, listen, socket) in plan.entries {
            let tls = tls.next().flatten();
            match socket {
                PlanSocket::Keep(i) => {
                    if let Some(r) = old.get_mut(i).and_then(Option::take) {
                        // New connections get the certificates just read; established
                        // ones keep their session.
                        r.handle.set_tls(tls);
                        next.push(r);
                    }
                }
                PlanSocket::Start(socket) => {
                    let ours = socket.try_clone().context("duplicating listener socket")?;
                    let tokio_socket = tokio::net::TcpListener::from_std(socket)
                        .context("registering listener socket")?;
                    let handle = weir_proxy::spawn_tls_listener(
                        tokio_socket,
                        Arc::clone(&name),
                        Arc::clone(table),
                        tls,
                    )
                    .with_context(|| format!("listener {name}: starting"))?;
                    tracing::info!(
                        listener = %name,
                        addr = %handle.local_addr(),
                        protocol = protocol_str(protocol),
                        tls = handle.is_tls(),
                        "listener bound"
                    );
                    next.push(Running {
                        name,
                        protocol,
                        listen,
                        socket: ours,
                        handle: Arc::new(handle),
                    });
                }
            }
        }
        self.running = next;
        for r in old.into_iter().flatten() {
            tracing::info!(listener = %r.name, addr = %r.handle.local_addr(), "listener removed: draining");
            r.handle.drain();
            // Our duplicate is dropped here: once the accept task drops its own, the
            // address stops accepting (unless a new task took over a duplicate).
            drop(r.socket);
            let handle = r.handle;
            tokio::spawn(async move {
                let forced = handle.drained(drain_timeout).await;
                tracing::info!(listener = handle.name(), forced, "listener drained");
            });
        }
        Ok(())
    }

    /// Stops accepting everywhere and waits for the connections, at most `timeout`.
    pub(crate) async fn drain_all(&mut self, timeout: Duration) -> usize {
        let running = std::mem::take(&mut self.running);
        for r in &running {
            r.handle.drain();
        }
        // Close our duplicates of the listening sockets now: while any descriptor stays
        // open the kernel keeps completing handshakes into a backlog nobody accepts, and
        // those clients would hang until exit instead of being refused at once.
        let handles: Vec<Arc<ListenerHandle>> = running.into_iter().map(|r| r.handle).collect();
        let waits = handles.iter().map(|h| h.drained(timeout));
        let mut forced = 0;
        for w in waits {
            forced += w.await;
        }
        forced
    }

    /// A snapshot for `/status`.
    pub(crate) fn status(&self) -> Vec<ListenerStatus> {
        self.running
            .iter()
            .map(|r| ListenerStatus {
                name: r.name.to_string(),
                protocol: protocol_str(r.protocol),
                listen: r.listen,
                bound: r.handle.local_addr(),
                active_connections: r.handle.active_connections(),
            })
            .collect()
    }

    /// The bound address of the listener called `name`.
    pub(crate) fn bound(&self, name: &str) -> Option<SocketAddr> {
        self.running
            .iter()
            .find(|r| &*r.name == name)
            .map(|r| r.handle.local_addr())
    }
}

fn protocol_str(p: Protocol) -> &'static str {
    match p {
        Protocol::Http => "http",
        Protocol::Tcp => "tcp",
    }
}

/// Binds a listening socket with `SO_REUSEADDR` (a restart does not wait out TIME_WAIT)
/// and a deep backlog.
pub(crate) fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    let listener = socket.listen(BACKLOG)?;
    listener.into_std()
}
