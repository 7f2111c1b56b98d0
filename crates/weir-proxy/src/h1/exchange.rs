//! One attempt of the HTTP/1 engine on one backend: a pooled or new connection, the
//! request written (head and any body held whole in one write), a streamed body after
//! it (from an HTTP/1 client's connection, or an HTTP/2 client's stream), then the
//! response head read into a buffer of its own. [`crate::http::forward`]
//! drives the attempts and their retries, for this engine and for hyper's alike.
//!
//! Which failures allow what: a first write that fails put nothing on the wire, so on
//! a pooled connection the request goes again on a fresh one for free (the backend had
//! closed it just then); anything after is a reset with the request sent, retried only
//! as `retry_on` allows. A client whose own body fails while it is streamed is the
//! client's fault: not counted against the backend.

use std::io;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use weir_balance::{Backend, Pool};
use weir_h1::{Method, Parsed, ResponseHead};

use super::body::PumpError;
use super::buf::Buf;
use super::conn::{self, Stream};
use super::h2_upload::FrameUpload;
use super::upload::Upload;
use crate::http::{Attempt, ResetCause, UpstreamError};

/// Largest backend response head (HAProxy's `tune.bufsize` caps its heads the same).
pub(crate) const MAX_RESPONSE_HEAD: usize = super::buf::BUF_SIZE;

/// The rest of a request body, streamed from the client during the first attempt that
/// gets that far (such a request is never replayed), while the response is read.
#[derive(Debug)]
pub(crate) struct Streamed<'a, C: ?Sized> {
    pub(crate) client: &'a mut C,
    pub(crate) buf: &'a mut Buf,
    pub(crate) upload: Upload,
    /// Some of it went out.
    pub(crate) started: bool,
}

/// A request ready to go to a backend.
#[derive(Debug)]
pub(crate) struct Exchange<'a, C: ?Sized> {
    /// Head, and the body when it is held whole: written as one.
    pub(crate) wire: &'a [u8],
    pub(crate) body: Option<Streamed<'a, C>>,
    /// A body streamed from an HTTP/2 client instead (never both).
    pub(crate) frames: Option<Box<FrameUpload>>,
    pub(crate) method: Method,
    pub(crate) replayable: bool,
    /// Where the response head is parsed.
    pub(crate) head: &'a mut ResponseHead,
    /// Set when the client's body failed (the answer is then the client's 400).
    pub(crate) client_failed: bool,
}

/// A backend's response head (parsed into the exchange's head) and its connection.
#[derive(Debug)]
pub(crate) struct Answered {
    pub(crate) stream: Stream,
    /// The head and whatever of the body came with it.
    pub(crate) buf: Buf,
    pub(crate) status: u16,
}

/// How one try on one connection failed.
enum Fail {
    /// Nothing was written.
    Unsent(io::Error),
    /// The request (or part of it) went out.
    Sent(ResetCause),
    /// The backend answered with something weir will not forward.
    Invalid(&'static str),
    /// The client's body failed.
    Client,
}

impl<C> Attempt for Exchange<'_, C>
where
    C: AsyncRead + AsyncWrite + Unpin + Send + ?Sized,
{
    type Response = Answered;

    fn replayable(&self) -> bool {
        self.replayable
    }

    fn streaming(&self) -> bool {
        self.body.is_some() || self.frames.is_some()
    }

    fn status(response: &Answered) -> u16 {
        response.status
    }

    async fn attempt(
        &mut self,
        backend: &Backend,
        pool: &Pool,
        fresh: bool,
        reused: &mut bool,
    ) -> Result<Answered, UpstreamError> {
        let settings = pool.settings();
        let mut fresh_only = fresh;
        let name = || Arc::from(backend.address());
        loop {
            let pooled = if fresh_only {
                None
            } else {
                conn::checkout(backend, pool)
            };
            *reused = pooled.is_some();
            let mut stream = match pooled {
                Some(s) => s,
                None => conn::connect(backend, pool, settings.connect_timeout).await?,
            };
            let mut buf = Buf::take();
            let sent = self.send(&mut stream, &mut buf);
            let fail = match tokio::time::timeout(settings.response_timeout, sent).await {
                Ok(Ok(status)) => {
                    return Ok(Answered {
                        stream,
                        buf,
                        status,
                    })
                }
                Ok(Err(fail)) => fail,
                Err(_) => {
                    buf.give_back();
                    return Err(UpstreamError::ResponseTimeout {
                        backend: name(),
                        timeout: settings.response_timeout,
                    });
                }
            };
            buf.give_back();
            return Err(match fail {
                Fail::Unsent(e) if *reused => {
                    // The backend closed a kept-alive connection before weir wrote a byte
                    // of this request on it: that says nothing about its health.
                    tracing::debug!(backend = backend.address(), error = %e, "pooled connection closed, reconnecting");
                    fresh_only = true;
                    continue;
                }
                Fail::Unsent(e) => UpstreamError::Reset {
                    backend: name(),
                    source: e.into(),
                    request_sent: false,
                },
                Fail::Sent(source) => UpstreamError::Reset {
                    backend: name(),
                    source,
                    request_sent: true,
                },
                Fail::Invalid(reason) => UpstreamError::InvalidResponse {
                    backend: name(),
                    reason,
                },
                Fail::Client => {
                    self.client_failed = true;
                    UpstreamError::Reset {
                        backend: name(),
                        source: ResetCause::Client,
                        request_sent: true,
                    }
                }
            });
        }
    }
}

impl<C> Exchange<'_, C>
where
    C: AsyncRead + AsyncWrite + Unpin + Send + ?Sized,
{
    /// Streams the body while watching for the response: `Some(status)` when a final
    /// response head arrived before the upload ended (the caller finishes the upload
    /// alongside the response body), `None` once the upload is done first.
    async fn upload_and_read(
        mut up: Up<'_, '_, C>,
        stream: &mut Stream,
        buf: &mut Buf,
        head: &mut ResponseHead,
        method: Method,
    ) -> Result<Option<u16>, Fail> {
        let (mut rd, mut wr) = tokio::io::split(&mut *stream);
        loop {
            tokio::select! {
                step = up.step(&mut wr) => match step {
                    Ok(true) => return Ok(None),
                    Ok(false) => {}
                    Err(PumpError::Sink(e)) => return Err(Fail::Sent(ResetCause::Io(e))),
                    Err(_) => return Err(Fail::Client),
                },
                read = buf.read_from(&mut rd) => {
                    match read {
                        Ok(0) => return Err(Fail::Sent(ResetCause::Closed)),
                        Ok(_) => {}
                        Err(e) => return Err(Fail::Sent(ResetCause::Io(e))),
                    }
                    loop {
                        match head.parse(buf.filled(), MAX_RESPONSE_HEAD, method) {
                            Ok(Parsed::Complete) if (100..200).contains(&head.status) && head.status != 101 => {
                                buf.consume(head.len);
                            }
                            Ok(Parsed::Complete) => return Ok(Some(head.status)),
                            Ok(Parsed::Partial) => break,
                            Err(refusal) => return Err(Fail::Invalid(refusal.reason)),
                        }
                    }
                }
            }
        }
    }

    /// Writes the request and reads the final response head (1xx are skipped; a 101
    /// is final).
    async fn send(&mut self, stream: &mut Stream, buf: &mut Buf) -> Result<u16, Fail> {
        let first = stream.write(self.wire).await.map_err(Fail::Unsent)?;
        if first == 0 {
            return Err(Fail::Unsent(io::ErrorKind::WriteZero.into()));
        }
        let sent = |e: io::Error| Fail::Sent(ResetCause::Io(e));
        stream
            .write_all(self.wire.get(first..).unwrap_or_default())
            .await
            .map_err(sent)?;
        let up = match (self.body.as_mut(), self.frames.as_deref_mut()) {
            (Some(body), _) => {
                body.started = true;
                Some(Up::H1(body))
            }
            (None, Some(frames)) => Some(Up::H2(frames)),
            (None, None) => None,
        };
        if let Some(up) = up {
            if let Some(status) =
                Self::upload_and_read(up, stream, buf, self.head, self.method).await?
            {
                return Ok(status);
            }
        }
        stream.flush().await.map_err(sent)?;
        loop {
            match self
                .head
                .parse(buf.filled(), MAX_RESPONSE_HEAD, self.method)
            {
                Ok(Parsed::Complete)
                    if (100..200).contains(&self.head.status) && self.head.status != 101 =>
                {
                    // Interim responses (100 Continue, 103 Early Hints) are not passed
                    // on: weir answered the client's `Expect` itself.
                    buf.consume(self.head.len);
                }
                Ok(Parsed::Complete) => return Ok(self.head.status),
                Ok(Parsed::Partial) => {
                    let n = buf.read_from(stream).await.map_err(sent)?;
                    if n == 0 {
                        return Err(Fail::Sent(ResetCause::Closed));
                    }
                }
                Err(refusal) => return Err(Fail::Invalid(refusal.reason)),
            }
        }
    }
}

/// The streamed body of one attempt, from either kind of client.
enum Up<'x, 'a, C: ?Sized> {
    H1(&'x mut Streamed<'a, C>),
    H2(&'x mut FrameUpload),
}

impl<C> Up<'_, '_, C>
where
    C: AsyncRead + AsyncWrite + Unpin + Send + ?Sized,
{
    /// One step of the upload (see [`Upload::step`] and [`FrameUpload::poll_step`]).
    async fn step<W>(&mut self, dst: &mut W) -> Result<bool, PumpError>
    where
        W: AsyncWrite + Unpin + ?Sized,
    {
        match self {
            Up::H1(body) => {
                body.upload
                    .step(&mut *body.client, &mut *body.buf, dst)
                    .await
            }
            Up::H2(frames) => frames.step(dst).await,
        }
    }
}
