//! Zero-copy relay of one direction with splice(2): socket → pipe → socket.
//!
//! The payload moves between kernel buffers and is never copied into weir. Each chunk is
//! spliced into the pipe only when the pipe is empty, so an `EAGAIN` from the socket →
//! pipe splice always means "socket not readable" and one from pipe → socket always
//! "socket not writable", which keeps tokio's readiness flags exact (`try_io` clears the
//! flag of the socket that said `EAGAIN`). `SPLICE_F_NONBLOCK` and an `O_NONBLOCK` pipe
//! make neither end block the runtime. The safe wrappers of the `nix` crate keep the
//! workspace free of `unsafe`.

use std::io;
use std::os::fd::OwnedFd;

use nix::errno::Errno;
use nix::fcntl::{fcntl, splice, FcntlArg, OFlag, SpliceFFlags};
use nix::unistd::pipe2;
use tokio::io::Interest;

use super::{Leg, Pumped};

/// Pipe capacity asked for: fewer, larger splices than the default 64 KiB (HAProxy's
/// `tune.pipesize` serves the same purpose). The kernel may grant less
/// (`/proc/sys/fs/pipe-max-size`); the default is then kept.
const PIPE_SIZE: i32 = 256 * 1024;

/// Capacity of a pipe whose resize was refused.
const DEFAULT_PIPE_SIZE: usize = 64 * 1024;

/// One direction's pipe.
#[derive(Debug)]
pub(super) struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    size: usize,
}

impl Pipe {
    /// A non-blocking, close-on-exec pipe, enlarged if the kernel allows.
    pub(super) fn new() -> io::Result<Pipe> {
        let (read, write) = pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
        let size = match fcntl(&write, FcntlArg::F_SETPIPE_SZ(PIPE_SIZE)) {
            Ok(granted) => usize::try_from(granted).unwrap_or(DEFAULT_PIPE_SIZE),
            Err(e) => {
                tracing::trace!(error = %e, "pipe resize refused");
                DEFAULT_PIPE_SIZE
            }
        };
        Ok(Pipe { read, write, size })
    }

    /// Moves `src` → `dst` until `src`'s EOF (every byte delivered), or until the kernel
    /// refuses to splice these sockets (the pipe is empty then, so the caller can go on
    /// copying without losing a byte).
    pub(super) async fn pump(&self, leg: Leg<'_>) -> io::Result<Pumped> {
        let Leg {
            src, dst, meter, ..
        } = leg;
        let flags = SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK;
        let mut total = 0u64;
        loop {
            src.readable().await?;
            let filled = src.try_io(Interest::READABLE, || {
                splice(src, None, &self.write, None, self.size, flags).map_err(io::Error::from)
            });
            let n = match filled {
                Ok(0) => return Ok(Pumped::Eof(total)),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) if unsupported(&e) => {
                    tracing::debug!(error = %e, "splice refused, copying instead");
                    return Ok(Pumped::Unsupported(total));
                }
                Err(e) => return Err(e),
            };
            let mut left = n;
            while left > 0 {
                dst.writable().await?;
                let drained = dst.try_io(Interest::WRITABLE, || {
                    splice(&self.read, None, dst, None, left, flags).map_err(io::Error::from)
                });
                match drained {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(w) => {
                        left = left.saturating_sub(w);
                        // Partial writes to a slow reader are activity (idle timeout).
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
}

/// The kernel cannot splice these descriptors (not a socket splice supports, or no
/// splice at all): nothing was moved by the failed call.
fn unsupported(e: &io::Error) -> bool {
    e.raw_os_error()
        .is_some_and(|code| code == Errno::EINVAL as i32 || code == Errno::ENOSYS as i32)
}
