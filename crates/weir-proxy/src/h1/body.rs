//! Moving one message body from one side to the other through the read buffer, with
//! its framing checked as it passes: `Content-Length` bytes exactly, chunked bodies
//! decoded and written again as chunks weir framed itself (extensions dropped, trailers
//! kept only where the receiver takes them), or a backend body that runs until its
//! connection closes, sent on chunked to an HTTP/1.1 client.
//!
//! Memory is bounded by the one read buffer and the output buffer: a reader that stops
//! reading stops the writer (back-pressure), nothing queues. Every read and write waits
//! at most the idle timeout.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use weir_h1::{chunk_header, ChunkedDecoder, Decoded, LAST_CHUNK};

use super::buf::Buf;

/// How the body arrives.
#[derive(Debug)]
pub(crate) enum Source {
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked.
    Chunked(Dechunk),
    /// Until the sender closes (backend responses only).
    Close,
}

/// How it is sent on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sink {
    /// As the bytes are (`Content-Length`, or close-delimited to an HTTP/1.0 client).
    Raw,
    /// Chunked, with trailers passed on if `trailers`.
    Chunked { trailers: bool },
}

/// Why a body stopped.
#[derive(Debug)]
pub(crate) enum PumpError {
    /// Reading the source failed, or it ended early.
    Source(io::Error),
    /// The source's chunked framing is malformed.
    Framing(&'static str),
    /// Writing to the destination failed.
    Sink(io::Error),
    /// Neither side moved for the idle timeout.
    Idle,
}

impl std::fmt::Display for PumpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PumpError::Source(e) => write!(f, "reading the body failed: {e}"),
            PumpError::Framing(reason) => write!(f, "bad chunked framing: {reason}"),
            PumpError::Sink(e) => write!(f, "writing the body failed: {e}"),
            PumpError::Idle => f.write_str("no progress within the idle timeout"),
        }
    }
}

/// Moves the body from `src` (bytes already read past the head are in `buf`) to `dst`.
/// `out` may hold bytes to send first (a head): they go out with the first body bytes
/// in one write. Returns the body bytes moved.
///
/// # Errors
///
/// Which side failed; the connection of that side cannot be reused.
pub(crate) async fn pump<R, W>(
    src: &mut R,
    buf: &mut Buf,
    dst: &mut W,
    mut source: Source,
    sink: Sink,
    out: &mut Vec<u8>,
    idle: Duration,
) -> Result<u64, PumpError>
where
    R: AsyncRead + Unpin + ?Sized,
    W: AsyncWrite + Unpin + ?Sized,
{
    let mut moved = 0u64;
    loop {
        let done = match &mut source {
            Source::Length(left) => {
                let take = usize::try_from(*left).unwrap_or(usize::MAX).min(buf.len());
                let data = buf.filled().get(..take).unwrap_or_default();
                if out.is_empty() && take > 0 {
                    // Large bodies: straight from the read buffer.
                    write(dst, data, idle).await?;
                } else {
                    out.extend_from_slice(data);
                }
                buf.consume(take);
                *left -= take as u64;
                moved += take as u64;
                *left == 0
            }
            Source::Close => {
                let n = buf.len();
                frame(out, buf.filled(), sink);
                buf.consume(n);
                moved += n as u64;
                false
            }
            Source::Chunked(decoder) => {
                let (n, done) = decode(decoder, buf.filled(), out, sink, &mut moved)?;
                buf.consume(n);
                done
            }
        };
        if done {
            if !out.is_empty() {
                write(dst, out, idle).await?;
                out.clear();
            }
            return Ok(moved);
        }
        if !out.is_empty() {
            write(dst, out, idle).await?;
            out.clear();
        }
        let read = super::within(idle, buf.read_from(src)).await;
        match read {
            Err(_) => return Err(PumpError::Idle),
            Ok(Err(e)) => return Err(PumpError::Source(e)),
            Ok(Ok(0)) if matches!(source, Source::Close) => {
                if let Sink::Chunked { .. } = sink {
                    write(dst, LAST_CHUNK, idle).await?;
                }
                return Ok(moved);
            }
            Ok(Ok(0)) => return Err(PumpError::Source(io::ErrorKind::UnexpectedEof.into())),
            Ok(Ok(_)) => {}
        }
    }
}

/// A chunked body being decoded and framed again: the codec's decoder, and whether
/// the trailer section was begun in the output (it may span several reads).
#[derive(Debug, Default)]
pub(crate) struct Dechunk {
    decoder: ChunkedDecoder,
    trailers_started: bool,
}

/// Decodes what `input` holds of a chunked body into `out`; returns the bytes consumed
/// and whether the body ended.
pub(crate) fn decode(
    state: &mut Dechunk,
    input: &[u8],
    out: &mut Vec<u8>,
    sink: Sink,
    moved: &mut u64,
) -> Result<(usize, bool), PumpError> {
    let mut at = 0;
    let Dechunk {
        decoder,
        trailers_started,
    } = state;
    loop {
        let rest = input.get(at..).unwrap_or_default();
        let (n, piece) = decoder.decode(rest).map_err(|e| PumpError::Framing(e.0))?;
        match piece {
            Decoded::Data { start, len } => {
                let data = rest.get(start..start + len).unwrap_or_default();
                frame(out, data, sink);
                *moved += len as u64;
            }
            Decoded::Trailer { start, len } => {
                if let Sink::Chunked { trailers: true } = sink {
                    if !*trailers_started {
                        out.extend_from_slice(b"0\r\n");
                        *trailers_started = true;
                    }
                    out.extend_from_slice(rest.get(start..start + len).unwrap_or_default());
                }
            }
            Decoded::End => {
                at += n;
                match sink {
                    Sink::Chunked { .. } if *trailers_started => out.extend_from_slice(b"\r\n"),
                    Sink::Chunked { .. } => out.extend_from_slice(LAST_CHUNK),
                    Sink::Raw => {}
                }
                return Ok((at, true));
            }
            Decoded::NeedMore => {
                at += n;
                return Ok((at, false));
            }
        }
        at += n;
        if n == 0 {
            return Ok((at, false));
        }
    }
}

/// Appends `data` to `out` framed for `sink`.
#[inline]
fn frame(out: &mut Vec<u8>, data: &[u8], sink: Sink) {
    if data.is_empty() {
        return;
    }
    match sink {
        Sink::Raw => out.extend_from_slice(data),
        Sink::Chunked { .. } => {
            chunk_header(data.len(), out);
            out.extend_from_slice(data);
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// Writes all of `data` within `idle`.
pub(crate) async fn write<W: AsyncWrite + Unpin + ?Sized>(
    dst: &mut W,
    data: &[u8],
    idle: Duration,
) -> Result<(), PumpError> {
    match super::within(idle, dst.write_all(data)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(PumpError::Sink(e)),
        Err(_) => Err(PumpError::Idle),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded_in_pieces(input: &[u8], split: usize) -> Vec<u8> {
        let mut state = Dechunk::default();
        let mut out = Vec::new();
        let mut moved = 0;
        let sink = Sink::Chunked { trailers: true };
        let mut pending: Vec<u8> = Vec::new();
        for piece in input.chunks(split) {
            pending.extend_from_slice(piece);
            let (n, _) = decode(&mut state, &pending, &mut out, sink, &mut moved).expect("valid");
            pending.drain(..n);
        }
        out
    }

    /// Reads a chunked message back: its data, its trailer bytes, and whether it ended
    /// exactly at the end of `wire`.
    fn read_back(wire: &[u8]) -> (Vec<u8>, Vec<u8>, bool) {
        let mut d = ChunkedDecoder::default();
        let (mut data, mut trailers, mut at) = (Vec::new(), Vec::new(), 0);
        loop {
            let rest = wire.get(at..).unwrap_or_default();
            let (n, piece) = d.decode(rest).expect("weir's own framing is valid");
            match piece {
                Decoded::Data { start, len } => data.extend_from_slice(&rest[start..start + len]),
                Decoded::Trailer { start, len } => {
                    trailers.extend_from_slice(&rest[start..start + len])
                }
                Decoded::End => return (data, trailers, at + n == wire.len()),
                Decoded::NeedMore => return (data, trailers, false),
            }
            at += n;
        }
    }

    #[test]
    fn trailers_split_across_reads_are_framed_once() {
        // Review of issue 9: the trailer section's `0\r\n` was written again for each
        // read it spanned, and a second last-chunk could follow.
        let body = b"5\r\nhello\r\n0\r\nX-Sum: 1\r\nX-Other: 2\r\n\r\n";
        for split in 1..=body.len() {
            let (data, trailers, exact) = read_back(&decoded_in_pieces(body, split));
            assert_eq!(data, b"hello", "split {split}");
            assert_eq!(trailers, b"X-Sum: 1\r\nX-Other: 2\r\n", "split {split}");
            assert!(exact, "bytes after the end, split {split}");
        }
    }
}
