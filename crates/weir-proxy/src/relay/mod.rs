//! Moving bytes between a client and a backend for TCP listeners.
//!
//! Two plain [`TcpStream`]s take the fast path: on Linux each direction is spliced
//! socket → pipe → socket ([`splice`]), so the payload never enters user space (HAProxy's
//! and Sōzu's zero-copy relay); elsewhere, or when the kernel refuses splice for these
//! sockets (`EINVAL`/`ENOSYS`), the direction copies through a 64 KiB buffer instead.
//! Both run on the sockets' readiness, borrowing them shared, so one task drives both
//! directions. Any other pair (a TLS-terminated client, or a TLS backend of a pool with
//! `tls`: splice cannot encrypt) goes through [`tokio::io::copy_bidirectional`] with a
//! 64 KiB buffer per direction ([`relay_buffered`]).
//!
//! Either way a client's EOF becomes a `shutdown(Write)` towards the backend once every
//! byte before it was delivered, and the same the other way, so half-closed protocols
//! work; the relay ends when both directions have ended, or at the first error. Every
//! chunk moved touches the connection's activity counter (idle timeout) and is added to
//! the listener's `weir_tcp_bytes_total` (rx from the client, tx to it) as it moves.

#[cfg(target_os = "linux")]
mod splice;

use std::any::Any;
use std::io;
use std::net::Shutdown;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use weir_telemetry::ListenerMetrics;

use crate::io::{ClientIo, ConnShared};

/// Buffer of one direction when copying through user space.
const COPY_BUFFER: usize = 64 * 1024;

/// Bytes relayed in each direction.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Totals {
    /// Read from the client, written to the backend.
    pub(crate) from_client: u64,
    /// Read from the backend, written to the client.
    pub(crate) to_client: u64,
}

/// Where the relay reports traffic: the idle watchdog and the byte counters.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Meter<'a> {
    /// Touched on every chunk.
    pub(crate) shared: &'a Arc<ConnShared>,
    /// The listener's `weir_tcp_bytes_total`, when metrics are on.
    pub(crate) bytes: Option<&'a ListenerMetrics>,
}

impl Meter<'_> {
    fn shared_arc(&self) -> Arc<ConnShared> {
        Arc::clone(self.shared)
    }

    #[inline]
    fn moved(&self, n: usize, from_client: bool) {
        self.shared.touch();
        if let Some(m) = self.bytes {
            let n = n as u64;
            if from_client {
                m.add_rx_bytes(n);
            } else {
                m.add_tx_bytes(n);
            }
        }
    }
}

/// Relays until both directions have ended or one fails.
///
/// `C` is the client stream: a plain [`TcpStream`] is spliced (Linux) or copied
/// directly on its readiness; any other stream is copied through a buffer.
///
/// # Errors
///
/// The first I/O error of either direction (a reset, say).
pub(crate) async fn relay<C>(client: C, backend: TcpStream, meter: Meter<'_>) -> io::Result<Totals>
where
    C: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut client = Some(client);
    if let Some(tcp) = (&mut client as &mut dyn Any).downcast_mut::<Option<TcpStream>>() {
        if let Some(tcp) = tcp.take() {
            return relay_tcp(&tcp, &backend, meter).await;
        }
    }
    let Some(client) = client else {
        // Only the TcpStream branch above takes the stream, and it returns.
        return Ok(Totals::default());
    };
    relay_buffered(client, backend, meter).await
}

/// Relays any two streams through a bounded buffer per direction, as [`relay`] does
/// (half-closes, activity, byte counts on the client side).
///
/// # Errors
///
/// The first I/O error of either direction.
pub(crate) async fn relay_buffered<C, B>(
    client: C,
    backend: B,
    meter: Meter<'_>,
) -> io::Result<Totals>
where
    C: AsyncRead + AsyncWrite + Unpin + Send,
    B: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut client = ClientIo::new(client, meter.shared_arc(), false);
    if let Some(m) = meter.bytes {
        client.count_bytes(m.clone());
    }
    let mut backend = backend;
    let (from_client, to_client) = tokio::io::copy_bidirectional_with_sizes(
        &mut client,
        &mut backend,
        COPY_BUFFER,
        COPY_BUFFER,
    )
    .await?;
    Ok(Totals {
        from_client,
        to_client,
    })
}

/// Both directions of two plain sockets, driven by one task.
async fn relay_tcp(
    client: &TcpStream,
    backend: &TcpStream,
    meter: Meter<'_>,
) -> io::Result<Totals> {
    let (from_client, to_client) = tokio::try_join!(
        direction(Leg {
            src: client,
            dst: backend,
            meter,
            from_client: true,
        }),
        direction(Leg {
            src: backend,
            dst: client,
            meter,
            from_client: false,
        }),
    )?;
    Ok(Totals {
        from_client,
        to_client,
    })
}

/// One direction of a relay: what is read from `src` is written to `dst` and counted
/// by `meter` as from the client or to it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Leg<'a> {
    pub(crate) src: &'a TcpStream,
    pub(crate) dst: &'a TcpStream,
    pub(crate) meter: Meter<'a>,
    pub(crate) from_client: bool,
}

impl Leg<'_> {
    /// `n` bytes delivered to `dst`.
    fn moved(&self, n: usize) {
        self.meter.moved(n, self.from_client);
    }
}

/// `src` → `dst` until `src`'s EOF, then half-closes `dst`.
async fn direction(leg: Leg<'_>) -> io::Result<u64> {
    let Leg { src, dst, .. } = leg;
    // The pipe is made once there is something to move: an idle connection holds no
    // pipe (two descriptors and kernel buffers per direction).
    #[cfg(target_os = "linux")]
    src.readable().await?;
    #[cfg(target_os = "linux")]
    let spliced = match splice::Pipe::new() {
        Ok(pipe) => pipe.pump(leg).await?,
        Err(e) => {
            tracing::debug!(error = %e, "no pipe for splice, copying instead");
            Pumped::Unsupported(0)
        }
    };
    #[cfg(not(target_os = "linux"))]
    let spliced = Pumped::Unsupported(0);
    let total = match spliced {
        Pumped::Eof(n) => n,
        Pumped::Unsupported(n) => n + copy(leg).await?,
    };
    // Everything before the EOF is delivered: pass the EOF on.
    if let Err(e) = socket2::SockRef::from(dst).shutdown(Shutdown::Write) {
        tracing::debug!(error = %e, "half-close towards the peer failed");
    }
    Ok(total)
}

/// How a splice pump ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pumped {
    /// `src` reached EOF after this many bytes, all delivered.
    Eof(u64),
    /// The kernel refused splice after this many bytes (all delivered, pipe empty).
    Unsupported(u64),
}

/// `src` → `dst` through a user-space buffer until `src`'s EOF.
async fn copy(leg: Leg<'_>) -> io::Result<u64> {
    let Leg {
        src, dst, meter, ..
    } = leg;
    let mut buf = vec![0u8; COPY_BUFFER];
    let mut total = 0u64;
    loop {
        src.readable().await?;
        let n = match src.try_read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        };
        let mut written = 0;
        while let Some(rest) = buf.get(written..n).filter(|r| !r.is_empty()) {
            dst.writable().await?;
            match dst.try_write(rest) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(w) => {
                    written += w;
                    // A slow reader drains a chunk in many partial writes: each one is
                    // activity, or the idle timeout would cut a relay still moving bytes.
                    meter.shared.touch();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        total += n as u64;
        leg.moved(n);
    }
}
