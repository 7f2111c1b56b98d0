//! A client stream with bytes already read put back in front, for handing an HTTP/2
//! client (recognised by its preface) to hyper.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::buf::Buf;

/// `prefix`'s bytes, then the stream's.
#[derive(Debug)]
pub(crate) struct Rewind<S> {
    prefix: Option<Buf>,
    inner: S,
}

impl<S> Rewind<S> {
    pub(crate) fn new(prefix: Buf, inner: S) -> Self {
        Rewind {
            prefix: Some(prefix),
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(prefix) = this.prefix.as_mut() {
            let n = prefix.len().min(out.remaining());
            out.put_slice(prefix.filled().get(..n).unwrap_or_default());
            prefix.consume(n);
            if prefix.is_empty() {
                if let Some(done) = this.prefix.take() {
                    done.give_back();
                }
            }
            if n > 0 {
                return Poll::Ready(Ok(()));
            }
        }
        Pin::new(&mut this.inner).poll_read(cx, out)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
