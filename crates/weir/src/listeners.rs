//! The set of running listeners, reconciled with each configuration in two phases.
//!
//! A reload must never refuse or drop a connection on an address that stays configured.
//! So a listener's socket is keyed by its configured address: when the address is kept,
//! the socket is kept (its accept queue never closes). A renamed listener keeps its task
//! and its connections, which follow the new name. Only a protocol change replaces the
//! accept task: the old one stops before the new table is stored, its clients wait in the
//! kernel's queue on our duplicate of the socket, and the new task starts on that
//! duplicate once the table that describes it is live.
//!
//! [`Listeners::prepare`] does everything that can fail (binding, duplicating sockets,
//! registering them with the runtime, reading their addresses) into a [`Plan`], and
//! changes nothing; [`Listeners::hand_over`] and [`Listeners::commit`] cannot fail. So a
//! reload is rejected whole or applied whole: a bind failure or an exhausted descriptor
//! limit leaves the old configuration serving untouched, with every running listener
//! still tracked.

mod drain;
mod plan;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use weir_admin::ListenerStatus;
use weir_balance::SharedTable;
use weir_config::{Config, Protocol};
use weir_proxy::tls::ListenerTls;
use weir_proxy::ListenerHandle;

use drain::Retiring;
use plan::{Key, Step};

/// Accept queue length: deep enough that a burst during a reload or at `max_connections`
/// waits in the kernel instead of being refused.
const BACKLOG: u32 = 4096;

/// How long a reload waits for a stopped accept task to let go of its socket. It stops
/// at its next poll; only an accept error's back-off (100 ms) can hold it.
const ACCEPT_STOP_WAIT: Duration = Duration::from_secs(1);

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

/// What a new configuration needs, with every socket already made: applying it cannot
/// fail. Only valid for the set that prepared it, with no commit in between.
pub(crate) struct Plan {
    /// One per listener of the new configuration, in config order.
    entries: Vec<Entry>,
    /// Running listeners (by index) that drain.
    drain: Vec<usize>,
    /// `(old, new)` names of the running listeners renamed.
    renames: Vec<(Arc<str>, Arc<str>)>,
}

struct Entry {
    name: Arc<str>,
    protocol: Protocol,
    listen: SocketAddr,
    /// Its TLS termination (certificates read by this reload), or `None`.
    tls: Option<ListenerTls>,
    /// Whether [`Listeners::hand_over`] gave `tls` to the kept listener already.
    tls_applied: bool,
    action: Action,
}

enum Action {
    /// The running listener at this index carries on (under this entry's name).
    Keep(usize),
    /// A new accept task on this socket.
    Start(Ready),
}

/// A listening socket registered with the runtime, with our duplicate and its address:
/// all [`weir_proxy::start_tls_listener`] needs.
struct Ready {
    socket: tokio::net::TcpListener,
    ours: std::net::TcpListener,
    local_addr: SocketAddr,
}

/// The running listeners of this process.
#[derive(Default)]
pub(crate) struct Listeners {
    running: Vec<Running>,
    retiring: Vec<Retiring>,
}

// === impl Listeners ===

impl Listeners {
    /// Makes every socket `config` needs that is not running yet. Nothing running
    /// changes, on error or not; dropping the plan closes what it made.
    /// `tls` has one entry per listener of `config`, in order.
    pub(crate) fn prepare(
        &self,
        config: &Config,
        tls: Vec<Option<ListenerTls>>,
    ) -> anyhow::Result<Plan> {
        // A mismatch would start a listener without its TLS: refuse rather than serve
        // plaintext where TLS is configured.
        anyhow::ensure!(
            tls.len() == config.listeners.len(),
            "internal error: {} TLS entries for {} listeners",
            tls.len(),
            config.listeners.len()
        );
        let running: Vec<Key<'_>> = self.running.iter().map(Running::key).collect();
        let wanted: Vec<Key<'_>> = config
            .listeners
            .iter()
            .map(|l| Key {
                name: &l.name,
                protocol: l.protocol,
                listen: l.listen,
            })
            .collect();
        let diff = plan::diff(&running, &wanted);
        let mut entries = Vec::with_capacity(config.listeners.len());
        let mut renames = Vec::new();
        for ((l, step), tls) in config.listeners.iter().zip(diff.steps).zip(tls) {
            let name: Arc<str> = Arc::from(l.name.as_str());
            let action = match step {
                Step::Keep(i) => Action::Keep(i),
                Step::Rename(i) => {
                    let r = self
                        .running
                        .get(i)
                        .context("internal error: a reload plan names no running listener")?;
                    renames.push((Arc::clone(&r.name), Arc::clone(&name)));
                    Action::Keep(i)
                }
                Step::Restart(i) => {
                    let r = self
                        .running
                        .get(i)
                        .context("internal error: a reload plan names no running listener")?;
                    let dup = r.socket.try_clone().with_context(|| {
                        format!("listener {}: duplicating socket {}", l.name, l.listen)
                    })?;
                    Action::Start(Ready::new(dup).with_context(|| format!("listener {}", l.name))?)
                }
                Step::Bind => {
                    let socket = bind(l.listen)
                        .with_context(|| format!("listener {}: bind {}", l.name, l.listen))?;
                    Action::Start(
                        Ready::new(socket).with_context(|| format!("listener {}", l.name))?,
                    )
                }
            };
            entries.push(Entry {
                name,
                protocol: l.protocol,
                listen: l.listen,
                tls,
                tls_applied: false,
                action,
            });
        }
        Ok(Plan {
            entries,
            drain: diff.drain,
            renames,
        })
    }

    /// The first half of applying `plan`, before the new table is stored; cannot fail.
    /// Kept listeners take their new TLS settings now, so no connection the new table
    /// serves is accepted with the old ones; every listener the plan stops (removed, or
    /// replaced for a protocol change) stops accepting and starts draining now, so none
    /// accepts a connection the new table has no listener for. Returns those, to await
    /// with [`accept_stopped`] before storing the table: clients of a replaced one wait
    /// in the kernel's queue meanwhile (our duplicate keeps it open).
    pub(crate) fn hand_over(&self, plan: &mut Plan) -> Vec<Arc<ListenerHandle>> {
        for entry in &mut plan.entries {
            if let Action::Keep(i) = entry.action {
                if let Some(r) = self.running.get(i) {
                    // New connections get the certificates just read; established ones
                    // keep their session.
                    r.handle.set_tls(entry.tls.take());
                    entry.tls_applied = true;
                }
            }
        }
        plan.drain
            .iter()
            .filter_map(|&i| self.running.get(i))
            .map(|r| {
                r.handle.drain();
                Arc::clone(&r.handle)
            })
            .collect()
    }

    /// Starts the planned tasks, renames the renamed listeners and drains the ones the
    /// plan no longer has. Call after [`Listeners::hand_over`] and after the new table
    /// is live, so new tasks and new names find their listener in it. Cannot fail.
    pub(crate) fn commit(&mut self, plan: Plan, table: &SharedTable, drain_timeout: Duration) {
        let mut old: Vec<Option<Running>> = std::mem::take(&mut self.running)
            .into_iter()
            .map(Some)
            .collect();
        let mut next = Vec::with_capacity(plan.entries.len());
        for entry in plan.entries {
            match entry.action {
                Action::Keep(i) => match old.get_mut(i).and_then(Option::take) {
                    Some(mut r) => {
                        if !entry.tls_applied {
                            r.handle.set_tls(entry.tls);
                        }
                        if r.name != entry.name {
                            tracing::info!(
                                listener = %entry.name,
                                was = %r.name,
                                addr = %r.handle.local_addr(),
                                "listener renamed"
                            );
                            r.handle.rename(Arc::clone(&entry.name));
                            r.name = entry.name;
                        }
                        next.push(r);
                    }
                    None => tracing::error!(
                        listener = %entry.name,
                        "internal error: a reload plan kept a listener that is not running"
                    ),
                },
                Action::Start(ready) => {
                    let handle = weir_proxy::start_tls_listener(
                        ready.socket,
                        ready.local_addr,
                        Arc::clone(&entry.name),
                        Arc::clone(table),
                        entry.tls,
                    );
                    tracing::info!(
                        listener = %entry.name,
                        addr = %handle.local_addr(),
                        protocol = protocol_str(entry.protocol),
                        tls = handle.is_tls(),
                        "listener bound"
                    );
                    next.push(Running {
                        name: entry.name,
                        protocol: entry.protocol,
                        listen: entry.listen,
                        socket: ready.ours,
                        handle: Arc::new(handle),
                    });
                }
            }
        }
        self.running = next;
        self.retiring.retain(|r| !r.is_finished());
        let planned = plan
            .drain
            .into_iter()
            .filter_map(|i| old.get_mut(i)?.take());
        let planned: Vec<Running> = planned.collect();
        // The plan drains every listener it does not keep; anything else left over would
        // lose its handle, so it drains as well.
        let leftover: Vec<Running> = old.into_iter().flatten().collect();
        debug_assert!(
            leftover.is_empty(),
            "the plan drains every listener it drops"
        );
        for r in planned.into_iter().chain(leftover) {
            self.retire(r, drain_timeout);
        }
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

// === impl Plan ===

impl Plan {
    /// Lets the former names of renamed listeners find them in `table`, the one this
    /// plan goes live with: a connection that read its listener's name just before the
    /// rename must not find nothing.
    pub(crate) fn alias_renamed(&self, table: &mut weir_balance::Table) {
        for (old, new) in &self.renames {
            table.alias_listener(old, new);
        }
    }
}

/// Waits until every listener of `stopping` ([`Listeners::hand_over`]) has stopped
/// accepting, at most [`ACCEPT_STOP_WAIT`] each.
pub(crate) async fn accept_stopped(stopping: &[Arc<ListenerHandle>]) {
    for handle in stopping {
        if !handle.accept_stopped(ACCEPT_STOP_WAIT).await {
            tracing::warn!(
                listener = %handle.name(),
                "accept task still running after the reload stopped it"
            );
        }
    }
}

// === impl Running ===

impl Running {
    fn key(&self) -> Key<'_> {
        Key {
            name: &self.name,
            protocol: self.protocol,
            listen: self.listen,
        }
    }
}

// === impl Ready ===

impl Ready {
    /// Every fallible step between a listening socket and its accept task: our
    /// duplicate (a descriptor), the runtime registration and the address.
    fn new(socket: std::net::TcpListener) -> anyhow::Result<Ready> {
        let ours = socket
            .try_clone()
            .context("duplicating the listening socket")?;
        let local_addr = socket
            .local_addr()
            .context("reading the listening socket's address")?;
        let socket = tokio::net::TcpListener::from_std(socket)
            .context("registering the listening socket")?;
        Ok(Ready {
            socket,
            ours,
            local_addr,
        })
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
