//! A request body streamed to a backend in steps that can be interrupted between any
//! two, so the same task can read the backend's response while the upload is still
//! going (a backend that answers early, or echoes as it reads, must not deadlock
//! against weir writing the rest of the body first).
//!
//! Each [`Upload::step`] does one write of framed bytes or one read from the client:
//! both are single operations that either happened or did not, so dropping a step
//! future (because the response arrived first) loses nothing.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::body::{decode, Dechunk, PumpError, Sink};
use super::buf::Buf;

/// How the rest of the body arrives.
#[derive(Debug)]
pub(crate) enum Rest {
    /// This many bytes.
    Length(u64),
    /// Chunked (re-framed by weir, trailers kept).
    Chunked(Dechunk),
}

/// A streamed request body in progress.
#[derive(Debug)]
pub(crate) struct Upload {
    rest: Rest,
    /// Framed bytes to write, from `pos`.
    out: Vec<u8>,
    pos: usize,
    /// The client's body has been read to its end (what is left is in `out`).
    read_all: bool,
    /// Everything is written and flushed.
    pub(crate) done: bool,
    /// Body bytes read from the client.
    pub(crate) moved: u64,
    idle: Duration,
    /// Bytes were written since the last flush.
    unflushed: bool,
}

impl Upload {
    pub(crate) fn new(rest: Rest, out: Vec<u8>, idle: Duration) -> Upload {
        Upload {
            rest,
            out,
            pos: 0,
            read_all: false,
            done: false,
            moved: 0,
            idle,
            unflushed: false,
        }
    }

    /// The output buffer back (for the request's scratch).
    pub(crate) fn into_buffer(self) -> Vec<u8> {
        self.out
    }

    /// One step; `Ok(true)` once the whole body is written.
    ///
    /// # Errors
    ///
    /// `Source`/`Framing`/`Idle`: the client's side; `Sink`: the backend's.
    pub(crate) async fn step<R, W>(
        &mut self,
        client: &mut R,
        buf: &mut Buf,
        dst: &mut W,
    ) -> Result<bool, PumpError>
    where
        R: AsyncRead + Unpin + ?Sized,
        W: AsyncWrite + Unpin + ?Sized,
    {
        if self.done {
            return Ok(true);
        }
        if let Some(pending) = self.out.get(self.pos..).filter(|p| !p.is_empty()) {
            // A backend that stops reading is the backend's failure, not the client's.
            let n = match super::within(self.idle, dst.write(pending)).await {
                Ok(Ok(0)) => return Err(PumpError::Sink(std::io::ErrorKind::WriteZero.into())),
                Ok(Ok(n)) => n,
                Ok(Err(e)) => return Err(PumpError::Sink(e)),
                Err(_) => return Err(PumpError::Sink(std::io::ErrorKind::TimedOut.into())),
            };
            self.pos += n;
            self.unflushed = true;
            if self.pos >= self.out.len() {
                self.out.clear();
                self.pos = 0;
            }
            return Ok(false);
        }
        if self.read_all {
            flush_within(self.idle, dst).await?;
            self.done = true;
            return Ok(true);
        }
        if !buf.is_empty() {
            self.frame(buf)?;
            return Ok(false);
        }
        if self.unflushed {
            // A TLS stream may hold written bytes in its own buffer: flush them before
            // waiting for the client, or the backend might never see what it needs.
            flush_within(self.idle, dst).await?;
            self.unflushed = false;
        }
        match super::within(self.idle, buf.read_from(client)).await {
            Ok(Ok(0)) => Err(PumpError::Source(std::io::ErrorKind::UnexpectedEof.into())),
            Ok(Ok(_)) => Ok(false),
            Ok(Err(e)) => Err(PumpError::Source(e)),
            Err(_) => Err(PumpError::Idle),
        }
    }

    /// Moves what `buf` holds of the body into `out`, framed.
    fn frame(&mut self, buf: &mut Buf) -> Result<(), PumpError> {
        match &mut self.rest {
            Rest::Length(left) => {
                let take = usize::try_from(*left).unwrap_or(usize::MAX).min(buf.len());
                self.out
                    .extend_from_slice(buf.filled().get(..take).unwrap_or_default());
                buf.consume(take);
                *left -= take as u64;
                self.moved += take as u64;
                self.read_all = *left == 0;
            }
            Rest::Chunked(decoder) => {
                let sink = Sink::Chunked { trailers: true };
                let (n, end) = decode(decoder, buf.filled(), &mut self.out, sink, &mut self.moved)?;
                buf.consume(n);
                self.read_all = end;
            }
        }
        Ok(())
    }

    /// Runs the upload to its end.
    ///
    /// # Errors
    ///
    /// As [`Upload::step`].
    pub(crate) async fn finish<R, W>(
        &mut self,
        client: &mut R,
        buf: &mut Buf,
        dst: &mut W,
    ) -> Result<(), PumpError>
    where
        R: AsyncRead + Unpin + ?Sized,
        W: AsyncWrite + Unpin + ?Sized,
    {
        while !self.step(client, buf, dst).await? {}
        Ok(())
    }
}

/// Flushes `dst` within `idle`: a backend that stops reading is the backend's failure.
async fn flush_within<W: AsyncWrite + Unpin + ?Sized>(
    idle: Duration,
    dst: &mut W,
) -> Result<(), PumpError> {
    match super::within(idle, dst.flush()).await {
        Ok(r) => r.map_err(PumpError::Sink),
        Err(_) => Err(PumpError::Sink(std::io::ErrorKind::TimedOut.into())),
    }
}
