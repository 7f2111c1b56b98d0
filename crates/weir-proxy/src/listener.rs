//! Listener accept loops and connection tracking (CONTRACT; the proxy work fills it in).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use weir_balance::SharedTable;

/// Starts accepting on `socket` for the listener called `name` in the table.
///
/// Each connection reads the listener's settings (protocol, routes, timeouts,
/// `max_connections`) from the current table snapshot by name.
pub fn spawn_listener(
    socket: tokio::net::TcpListener,
    name: Arc<str>,
    table: SharedTable,
) -> std::io::Result<ListenerHandle> {
    let _ = (socket, name, table);
    Err(std::io::Error::other("not yet built"))
}

/// A running listener: its accept loop and the connections it accepted.
#[derive(Debug)]
pub struct ListenerHandle {}

impl ListenerHandle {
    /// The listener's name.
    pub fn name(&self) -> &str {
        ""
    }

    /// The address actually bound (port 0 resolved).
    pub fn local_addr(&self) -> SocketAddr {
        SocketAddr::from(([0, 0, 0, 0], 0))
    }

    /// Client connections currently open.
    pub fn active_connections(&self) -> usize {
        0
    }

    /// Stops accepting at once (the task's socket is dropped) and asks every connection to
    /// finish: HTTP/1.1 connections close after their current response
    /// (`Connection: close`), HTTP/2 ones get GOAWAY, TCP streams run to their end.
    pub fn drain(&self) {}

    /// Waits until every connection has closed, at most `timeout`; then closes whatever
    /// is left by force. Returns the number of connections closed by force.
    pub async fn drained(&self, timeout: Duration) -> usize {
        let _ = timeout;
        0
    }
}
