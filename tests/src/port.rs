//! Loopback ports a test holds for as long as it needs them.
//!
//! A port a test binds and then releases can be handed to another test's backend (tests
//! run in parallel and all bind `127.0.0.1:0`), and a "dead" backend then answers with
//! another test's name; a backend brought back on a released port can find it taken. A
//! [`HeldPort`] is a socket bound with `SO_REUSEADDR` that never listens: on Linux, a
//! connect to it is refused at once (RST, `ECONNREFUSED`), the kernel never gives the port
//! to another bind of port 0 while the socket lives, and a listener can still be opened
//! on the same port beside it ([`HeldPort::listen`]). So the port refuses whenever no
//! listener of the test is open on it, and nothing else can take it until the test drops
//! the [`HeldPort`].

use std::io;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};

/// How many connections a [`HeldPort::listen`] listener queues, as `TcpListener::bind`.
const BACKLOG: u32 = 1024;

/// A loopback port reserved by a bound, never-listening socket. Dropping it frees the port.
#[derive(Debug)]
pub struct HeldPort {
    _socket: TcpSocket,
    addr: SocketAddr,
}

impl HeldPort {
    /// Reserves a fresh port on `127.0.0.1`; connects to it are refused until [`listen`].
    ///
    /// [`listen`]: HeldPort::listen
    ///
    /// # Panics
    /// When loopback cannot be bound.
    pub fn new() -> HeldPort {
        let socket = reusable_socket().expect("a TCP socket");
        socket
            .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("bind a loopback port");
        let addr = socket.local_addr().expect("bound address");
        HeldPort {
            _socket: socket,
            addr,
        }
    }

    /// The reserved address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Opens a listener on the reserved port. Once it is closed the port refuses again.
    ///
    /// # Errors
    /// When another listener of this test is still open on the port, or the socket
    /// calls fail. Must be called within a tokio runtime.
    pub fn listen(&self) -> io::Result<TcpListener> {
        let socket = reusable_socket()?;
        socket.bind(self.addr)?;
        socket.listen(BACKLOG)
    }
}

impl Default for HeldPort {
    fn default() -> Self {
        HeldPort::new()
    }
}

fn reusable_socket() -> io::Result<TcpSocket> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    Ok(socket)
}

/// A listener on a fresh loopback port for the test server `what`, and its address.
///
/// # Panics
/// When loopback cannot be bound, naming `what`.
pub async fn bind_loopback(what: &str) -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind a loopback port for {what}: {e}"));
    let addr = listener.local_addr().expect("bound address");
    (listener, addr)
}

/// A loopback address that refuses connections for as long as the test holds it.
///
/// # Panics
/// When loopback cannot be bound.
pub fn closed_port() -> HeldPort {
    HeldPort::new()
}

/// `N` [`closed_port`]s and their addresses: the ports stay refused while the test holds
/// the first.
pub fn closed_ports<const N: usize>() -> ([HeldPort; N], [SocketAddr; N]) {
    let held: [HeldPort; N] = std::array::from_fn(|_| closed_port());
    let addrs = held.each_ref().map(HeldPort::addr);
    (held, addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn held_port_refuses_then_listens_then_refuses_again() {
        let port = HeldPort::new();
        let refused = tokio::net::TcpStream::connect(port.addr()).await;
        assert_eq!(
            refused.map(|_| ()).map_err(|e| e.kind()),
            Err(io::ErrorKind::ConnectionRefused)
        );
        let listener = port.listen().expect("listen beside the reservation");
        let (connected, accepted) = tokio::join!(
            tokio::net::TcpStream::connect(port.addr()),
            listener.accept()
        );
        connected.expect("connect to the listener");
        accepted.expect("accept");
        drop(listener);
        let refused = tokio::net::TcpStream::connect(port.addr()).await;
        assert_eq!(
            refused.map(|_| ()).map_err(|e| e.kind()),
            Err(io::ErrorKind::ConnectionRefused)
        );
        port.listen().expect("listen again on the same port");
    }
}
