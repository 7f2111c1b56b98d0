//! HTTP/2 client connections on weir's own codec ([`weir_h2`]), in place of hyper's and
//! h2's general-purpose server: one task per connection owns the socket, the protocol
//! state and every stream's work, as HAProxy and h2o drive a connection's streams.
//!
//! Each request goes through the same path as before ([`crate::http`]'s phases, with
//! the HTTP/1 engine or hyper's client upstream); its response head is encoded straight
//! from the `http` response, its body frames moved as the client's windows allow. What
//! h2 and hyper did here per request (a lock around the whole stream store, a task
//! wake-up per frame, a `HeaderMap` decoded and re-encoded by their HPACK, a send
//! buffer per stream) is most of what made an HTTP/2 request cost more than HAProxy's.
//!
//! ```text
//! mod.rs      the connection's loop: socket, frames, streams, timers, shutdown
//! body.rs     a request body between the connection and its reader
//! convert.rs  weir-h2 fields to `http` requests; response fields
//! wake.rs     which streams to poll; whose credit to give back
//! ```
//!
//! The connection ends gracefully (two GOAWAYs a PING apart, then the streams finish)
//! for a drain, the shutdown grace, `max_requests_per_connection` and the idle timeout;
//! at once (GOAWAY with the error) for a client's connection error; and without a word
//! when the listener is killed or the client goes away.

mod body;
mod convert;
mod wake;

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use http::Response;
use http_body::Body as _;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::{Instant, Sleep};
use weir_h2::conn::{Config, Connection, Event, Fatal};
use weir_h2::frame::Reason;

use body::Inbound;
pub(crate) use body::RequestBody;
use wake::{Ready, StreamWaker};

use crate::http::{handle_h2, ConnCtx, ResBody};
use crate::io::{ClientIo, ConnShared};

/// Read buffer: the largest frame weir accepts (16 KiB, the default it never raises)
/// and its head, twice, so a read is rarely cut short by a frame already there.
const READ_BUF: usize = 2 * (16 * 1024 + 9);

/// Output at which the connection stops taking more (reading frames, polling response
/// bodies) until the socket has taken what is queued: a client that does not read
/// holds this much, not what its streams' backends can send. A stream window's worth,
/// as hyper's send buffer was.
const OUTPUT_HIGH: usize = 64 * 1024;

/// Rounds of work in one poll before the task yields to others.
const ROUNDS: usize = 32;

/// Body frames one stream may move in one poll before the others get a turn.
const FRAMES_PER_POLL: usize = 64;

/// The frame size weir sends at least when a chunk goes (the protocol's default).
const FRAME: usize = weir_h2::frame::DEFAULT_MAX_FRAME_SIZE as usize;

/// How long a closing connection's last frames may take to leave.
const FLUSH_LIMIT: Duration = Duration::from_secs(1);

/// The PING payload of the graceful shutdown's round trip: its answer says the client
/// has seen the first GOAWAY, so the last one can name the last stream.
const SHUTDOWN_PING: [u8; 8] = *b"weir-bye";
/// The keep-alive PING's payload, told apart from the shutdown's and the client's own.
const KEEPALIVE_PING: [u8; 8] = *b"weir-ka!";

/// Serves an HTTP/2 client connection (its preface is among the bytes `stream` yields
/// first) until it closes, drains, idles out or is killed.
pub(crate) async fn serve<S>(stream: S, conn: &crate::h1::Ctx)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let scope = &conn.scope;
    let limits = conn.limits.clone();
    let shared = Arc::new(ConnShared::new());
    let io = ClientIo::new(stream, Arc::clone(&shared), true);
    let ctx = Arc::new(ConnCtx::new(conn, &shared, &limits));
    let h2 = &limits.http2;
    let config = Config {
        max_concurrent_streams: h2.max_concurrent_streams,
        initial_stream_window: h2.initial_stream_window,
        initial_connection_window: h2.initial_connection_window,
        max_header_list_size: h2.max_header_list_size,
        max_pending_reset_streams: h2.max_pending_reset_streams,
        max_stream_errors: h2.max_stream_errors,
    };
    let mut driver = Driver {
        io,
        rbuf: vec![0; READ_BUF],
        start: 0,
        end: 0,
        flush_pending: false,
        core: Core {
            written: 0,
            h2: Connection::new(config),
            slots: Vec::new(),
            ready: Arc::new(Ready::default()),
            ctx: Arc::clone(&ctx),
            fatal: None,
            peer_goaway: false,
            blocked: Vec::new(),
            pongs: Pongs::default(),
        },
        eof: false,
        closing: Closing::Open,
        keepalive: h2.keepalive_interval.map(|every| Keepalive {
            every,
            timeout: h2.keepalive_timeout,
            timer: Box::pin(tokio::time::sleep(every)),
            waiting: false,
        }),
        flush_deadline: None,
        shutdown_timer: None,
    };

    let killed = scope.kill.cancelled();
    tokio::pin!(killed);
    let drained = scope.drain.cancelled();
    tokio::pin!(drained);
    let wound = scope.winding_down.cancelled();
    tokio::pin!(wound);
    let idle = shared.idle_expired(limits.timeouts.idle);
    tokio::pin!(idle);
    let capped = ctx.cap.reached();
    tokio::pin!(capped);
    let first = ctx.cap.first_served();
    tokio::pin!(first);
    // Winding down (the shutdown grace): GOAWAY once the connection has served a
    // request, so one accepted during the grace is served before it is sent away.
    let mut winding = false;
    let end = std::future::poll_fn(|cx| {
        if killed.as_mut().poll(cx).is_ready() {
            return Poll::Ready(End::Killed);
        }
        if driver.closing == Closing::Open {
            let why = if drained.as_mut().poll(cx).is_ready() {
                Some("drain")
            } else if !winding && wound.as_mut().poll(cx).is_ready() {
                winding = true;
                None
            } else {
                None
            };
            let why = why
                .or_else(|| {
                    (winding && first.as_mut().poll(cx).is_ready()).then_some("winding down")
                })
                .or_else(|| {
                    capped
                        .as_mut()
                        .poll(cx)
                        .is_ready()
                        .then_some("max_requests_per_connection reached")
                })
                .or_else(|| idle.as_mut().poll(cx).is_ready().then_some("idle"));
            if let Some(why) = why {
                tracing::debug!(why, "closing the HTTP/2 connection gracefully");
                driver.begin_close();
            }
        }
        driver.poll_drive(cx)
    })
    .await;
    match end {
        End::Killed => tracing::debug!("connection closed by force"),
        End::Failed(e) => tracing::debug!(error = %e, "connection ended with an I/O error"),
        End::Done => {
            tracing::debug!("connection closed");
            let _ = tokio::time::timeout(FLUSH_LIMIT, driver.io.shutdown()).await;
        }
    }
    if let (Some(reason), Some(m)) = (driver.core.fatal, &limits.metrics) {
        if reason != Reason::NO_ERROR {
            m.protocol_error();
        }
    }
    driver.core.fail_all();
}

/// How a connection ended.
enum End {
    Killed,
    Failed(io::Error),
    Done,
}

/// Where a graceful shutdown is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closing {
    Open,
    /// The first GOAWAY and its PING went; new streams are still taken until the PING
    /// comes back (or [`FLUSH_LIMIT`] passes).
    Notified,
    /// The last GOAWAY went: the connection ends when its streams have.
    Final,
}

/// `http2.keepalive_*`: a PING every `every`, the connection closed when one goes
/// unanswered for `timeout` (a vanished client would otherwise hold its streams).
struct Keepalive {
    every: Duration,
    timeout: Duration,
    /// The next PING, or the deadline of the one out.
    timer: Pin<Box<Sleep>>,
    /// A PING is out and the timer is its deadline.
    waiting: bool,
}

/// One connection: its socket and read buffer beside the protocol state.
struct Driver<S> {
    io: ClientIo<S>,
    /// Held for the connection's life: HTTP/2 connections are few and busy, unlike
    /// HTTP/1 keep-alive ones, whose buffers are lent per request.
    rbuf: Vec<u8>,
    /// `rbuf[start..end]`: read and not yet taken by the codec.
    start: usize,
    end: usize,
    /// Bytes were written since the last complete flush (TLS holds them until then).
    flush_pending: bool,
    core: Core,
    /// The client closed its side.
    eof: bool,
    closing: Closing,
    keepalive: Option<Keepalive>,
    /// After a connection error: how long its GOAWAY may take to leave.
    flush_deadline: Option<Pin<Box<Sleep>>>,
    /// After the first GOAWAY: how long its PING may take to come back.
    shutdown_timer: Option<Pin<Box<Sleep>>>,
}

/// The protocol state and the streams, apart from the socket and its read buffer so
/// events that borrow the buffer can be handled.
struct Core {
    h2: Connection,
    /// How much of the codec's output the socket has taken.
    written: usize,
    slots: Vec<Slot>,
    ready: Arc<Ready>,
    ctx: Arc<ConnCtx>,
    /// The client broke the protocol: the GOAWAY with this code is queued.
    fatal: Option<Reason>,
    peer_goaway: bool,
    /// Streams with data waiting for window or for the output to drain.
    blocked: Vec<u32>,
    /// PING answers the loop has to look at.
    pongs: Pongs,
}

/// Which of weir's PINGs came back (both may in one read).
#[derive(Debug, Default)]
struct Pongs {
    keepalive: bool,
    shutdown: bool,
}

/// One request stream weir has taken.
struct Slot {
    id: u32,
    /// Re-armed before each poll, so a wake queues the stream once.
    wake: Arc<StreamWaker>,
    /// The same, as the waker its handler and body see.
    waker: Waker,
    /// The request body's queue, when the request has one.
    inbound: Option<Arc<Inbound>>,
    state: SlotState,
}

enum SlotState {
    /// The request's handler, until the response head.
    Handling(Pin<Box<dyn Future<Output = Response<ResBody>> + Send>>),
    /// The response body, and a frame's bytes the windows did not let go yet.
    Sending {
        body: ResBody,
        pending: Option<(Bytes, bool)>,
    },
}

/// What polling a stream did.
enum Step {
    /// Waits for its own waker.
    Waiting,
    /// Waits for a window or for the output to drain.
    Blocked,
    /// Finished (or reset): its slot goes.
    Done,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Driver<S> {
    /// Starts a graceful close: the first GOAWAY and the PING whose answer ends it.
    fn begin_close(&mut self) {
        if self.closing != Closing::Open {
            return;
        }
        self.core.h2.goaway_notice();
        self.core.h2.ping(SHUTDOWN_PING);
        self.closing = Closing::Notified;
    }

    /// The last GOAWAY, naming the last stream taken: the connection ends with them.
    fn final_goaway(&mut self) {
        self.core.h2.goaway(Reason::NO_ERROR);
        self.closing = Closing::Final;
    }

    /// Moves everything that can move (credit, streams, output, input) in rounds until
    /// nothing does, then waits on the socket, the streams' wakers and the timers.
    fn poll_drive(&mut self, cx: &mut Context<'_>) -> Poll<End> {
        self.core.ready.register(cx.waker());
        for round in 0..ROUNDS {
            let mut progress = self.core.give_back_credit();
            progress |= self.core.poll_streams();
            match self.poll_write(cx) {
                Err(e) => return Poll::Ready(End::Failed(e)),
                Ok(wrote) => progress |= wrote,
            }
            if self.reading() {
                match self.poll_read(cx) {
                    Err(e) => return Poll::Ready(End::Failed(e)),
                    Ok(read) => progress |= read,
                }
            }
            if std::mem::take(&mut self.core.pongs.shutdown) {
                if self.closing == Closing::Notified {
                    self.final_goaway();
                }
                progress = true;
            }
            if std::mem::take(&mut self.core.pongs.keepalive) {
                self.keepalive_answered();
            }
            if !progress {
                break;
            }
            if self.finished() {
                return Poll::Ready(End::Done);
            }
            if round + 1 == ROUNDS {
                // Still busy after the rounds: the socket's last ready read registered
                // no wake-up, so come back after other tasks ran.
                cx.waker().wake_by_ref();
            }
        }
        if self.finished() {
            return Poll::Ready(End::Done);
        }
        if let Some(end) = self.poll_timers(cx) {
            return Poll::Ready(end);
        }
        if self.core.ready.queued() > 0 {
            // Work left after the rounds: come back after other tasks ran.
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }

    /// Whether frames are read now: not after an error or the client's close, nor while
    /// the client leaves weir's output unread.
    fn reading(&self) -> bool {
        !self.eof && self.core.fatal.is_none() && self.core.unwritten() < OUTPUT_HIGH
    }

    /// Nothing left to do but close.
    fn finished(&self) -> bool {
        if self.eof {
            return true;
        }
        let out_empty = self.core.unwritten() == 0;
        if self.core.fatal.is_some() {
            return out_empty;
        }
        let streams_done = self.core.slots.is_empty() && self.core.h2.active_streams() == 0;
        let ending = self.core.peer_goaway || self.closing == Closing::Final;
        ending && streams_done && out_empty
    }

    /// The keep-alive PING came back: the next one goes an interval from now.
    fn keepalive_answered(&mut self) {
        if let Some(k) = &mut self.keepalive {
            if k.waiting {
                k.waiting = false;
                let next = Instant::now() + k.every;
                k.timer.as_mut().reset(next);
            }
        }
    }

    /// The keep-alive PING, the shutdown's PING deadline and the last flush's limit.
    fn poll_timers(&mut self, cx: &mut Context<'_>) -> Option<End> {
        let only_output = self.closing == Closing::Final
            && self.core.slots.is_empty()
            && self.core.h2.active_streams() == 0;
        if self.core.fatal.is_some() || only_output {
            // The last frames may take this long to leave, however slowly the client
            // reads (rare: boxed once).
            let d = self
                .flush_deadline
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(FLUSH_LIMIT)));
            if d.as_mut().poll(cx).is_ready() {
                return Some(End::Done);
            }
        }
        if self.closing == Closing::Notified {
            // The client's answer to the shutdown PING may not come (rare: boxed once).
            let t = self
                .shutdown_timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(FLUSH_LIMIT)));
            if t.as_mut().poll(cx).is_ready() {
                self.final_goaway();
                cx.waker().wake_by_ref();
            }
        }
        let k = self.keepalive.as_mut()?;
        if k.timer.as_mut().poll(cx).is_pending() {
            return None;
        }
        if k.waiting {
            tracing::debug!(timeout = ?k.timeout, "keep-alive PING unanswered, closing");
            return Some(End::Done);
        }
        self.core.h2.ping(KEEPALIVE_PING);
        k.waiting = true;
        let deadline = Instant::now() + k.timeout;
        k.timer.as_mut().reset(deadline);
        // The PING goes out with the next round, and the new deadline is registered.
        cx.waker().wake_by_ref();
        None
    }

    /// Writes what the codec queued, and flushes it; whether anything moved.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> io::Result<bool> {
        let mut moved = false;
        loop {
            let written = self.core.written;
            let out = self.core.h2.output();
            if written == out.len() {
                break;
            }
            match Pin::new(&mut self.io).poll_write(cx, &out[written..]) {
                Poll::Ready(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                Poll::Ready(Ok(n)) => {
                    self.core.written += n;
                    self.flush_pending = true;
                    moved = true;
                }
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => break,
            }
        }
        if self.flush_pending {
            // TLS keeps what it encrypted until the socket takes it: polled until done,
            // or the tail of a response would wait for the next frame to leave.
            match Pin::new(&mut self.io).poll_flush(cx) {
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Ready(Ok(())) => self.flush_pending = false,
                Poll::Pending => {}
            }
        }
        self.core.compact_output();
        Ok(moved)
    }

    /// Reads once and hands the codec every whole frame; whether anything was read.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> io::Result<bool> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.rbuf.len() {
            self.rbuf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.rbuf.len() {
            // Cannot happen (the buffer holds two whole frames and the codec takes
            // every whole one), but a zero-length read would look like the client's close.
            return Ok(false);
        }
        let mut buf = ReadBuf::new(&mut self.rbuf[self.end..]);
        match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
            Poll::Pending => return Ok(false),
            Poll::Ready(Err(e)) => return Err(e),
            Poll::Ready(Ok(())) => {}
        }
        let n = buf.filled().len();
        if n == 0 {
            // The client closed: nothing it sent after can come, nothing weir would send
            // is read. Its streams end with it, as they did under hyper.
            self.eof = true;
            self.core.fail_all();
            return Ok(true);
        }
        self.end += n;
        // Bounded: each call takes a frame's bytes or stops.
        while self.core.fatal.is_none() {
            match self.core.h2.receive(&self.rbuf[self.start..self.end]) {
                Ok((0, _)) => break,
                Ok((used, event)) => {
                    self.start += used;
                    if let Some(event) = event {
                        self.core.on_event(event);
                    }
                }
                Err(Fatal { reason }) => {
                    tracing::debug!(?reason, "HTTP/2 connection error, GOAWAY sent");
                    self.core.fatal = Some(reason);
                    self.core.fail_all();
                }
            }
        }
        Ok(true)
    }
}

impl Core {
    /// Output queued and not yet taken by the socket.
    fn unwritten(&self) -> usize {
        self.h2.pending_output() - self.written
    }

    /// Drops what the socket has taken: all of it once drained (waking the streams that
    /// waited for room), or the front once it is large, so the codec's own output limit
    /// counts only what waits.
    fn compact_output(&mut self) {
        let out = self.h2.output();
        if self.written == out.len() {
            if self.written == 0 {
                return;
            }
            out.clear();
            // A burst's buffer is not kept for the connection's life.
            if out.capacity() > 4 * OUTPUT_HIGH {
                out.shrink_to(OUTPUT_HIGH);
            }
            self.written = 0;
            self.unblock_all();
        } else if self.written >= OUTPUT_HIGH {
            out.drain(..self.written);
            self.written = 0;
        }
    }

    fn find(&self, id: u32) -> Option<usize> {
        self.slots.iter().position(|s| s.id == id)
    }

    /// What a frame from the client means for the streams.
    fn on_event(&mut self, event: Event<'_>) {
        match event {
            Event::Request {
                stream,
                head,
                end_stream,
            } => self.request(stream, &head, end_stream),
            Event::HeadersTooLarge { stream } => {
                self.h2.send_response(stream, 431, std::iter::empty(), true);
                // A body may follow: nobody wants it (h2 reset the stream the same way).
                if self.h2.is_open(stream) {
                    self.h2.reset(stream, Reason::PROTOCOL_ERROR);
                }
            }
            Event::Data {
                stream,
                data,
                end_stream,
            } => {
                let taken = self
                    .find(stream)
                    .and_then(|i| self.slots[i].inbound.as_ref())
                    .is_some_and(|inb| inb.push(data, end_stream));
                if !taken {
                    // Nobody reads it: the credit goes back at once.
                    self.h2.release(stream, data.len() as u32);
                }
            }
            Event::Trailers { stream } => {
                let inbound = self
                    .find(stream)
                    .and_then(|i| self.slots[i].inbound.clone());
                if let Some(inbound) = inbound {
                    match convert::trailers(self.h2.block()) {
                        Some(t) => inbound.trailers(t),
                        None => {
                            inbound.fail();
                            self.h2.reset(stream, Reason::PROTOCOL_ERROR);
                            self.remove(stream);
                        }
                    }
                }
            }
            Event::Reset { stream, reason } => {
                tracing::debug!(stream, ?reason, "stream reset");
                self.remove(stream);
            }
            Event::WindowOpened => self.unblock_all(),
            Event::Pong { data } => {
                if data == SHUTDOWN_PING {
                    self.pongs.shutdown = true;
                } else if data == KEEPALIVE_PING {
                    self.pongs.keepalive = true;
                }
            }
            Event::GoAway { reason } => {
                tracing::debug!(?reason, "client sent GOAWAY");
                self.peer_goaway = true;
            }
        }
    }

    /// A new request: its handler starts at the next round, as a slot of its own.
    fn request(&mut self, id: u32, head: &weir_h2::request::RequestHead, end_stream: bool) {
        let inbound = (!end_stream).then(|| Inbound::new(id, &self.ready));
        let body = match &inbound {
            None => RequestBody::empty(),
            Some(inb) => RequestBody::streaming(Arc::clone(inb), head.content_length),
        };
        let Some(req) = convert::request(self.h2.block(), head, body) else {
            tracing::debug!(stream = id, "request refused by the http crate's checks");
            self.h2.reset(id, Reason::PROTOCOL_ERROR);
            return;
        };
        let fut = Box::pin(handle_h2(Arc::clone(&self.ctx), req));
        let (wake, waker) = StreamWaker::new(id, &self.ready);
        self.slots.push(Slot {
            id,
            wake,
            waker,
            inbound,
            state: SlotState::Handling(fut),
        });
        self.ready.wake_stream(id);
    }

    /// Drops a stream's work (the client reset it, or it failed): its handler and body
    /// are cancelled, its upload's reader sees an error.
    fn remove(&mut self, id: u32) {
        if let Some(i) = self.find(id) {
            let slot = self.slots.swap_remove(i);
            if let Some(inb) = &slot.inbound {
                inb.fail();
            }
        }
    }

    /// Every stream's work stops: the connection is ending.
    fn fail_all(&mut self) {
        for slot in self.slots.drain(..) {
            if let Some(inb) = &slot.inbound {
                inb.fail();
            }
        }
        self.blocked.clear();
    }

    /// Gives back the credit of request bytes their readers took.
    fn give_back_credit(&mut self) -> bool {
        let mut any = false;
        while let Some(id) = self.ready.next_released() {
            let n = self
                .find(id)
                .and_then(|i| self.slots[i].inbound.as_ref())
                .map_or(0, |inb| inb.take_consumed());
            if n > 0 {
                self.h2.release(id, n);
                any = true;
            }
        }
        any
    }

    fn unblock_all(&mut self) {
        for id in self.blocked.drain(..) {
            self.ready.wake_stream(id);
        }
    }

    /// Polls the streams that were woken; whether any made progress.
    fn poll_streams(&mut self) -> bool {
        let mut any = false;
        for _ in 0..self.ready.queued() {
            let Some(id) = self.ready.next_stream() else {
                break;
            };
            let Some(i) = self.find(id) else {
                continue;
            };
            any = true;
            match self.poll_slot(i) {
                Step::Waiting => {}
                Step::Blocked => {
                    if !self.blocked.contains(&id) {
                        self.blocked.push(id);
                    }
                }
                Step::Done => {
                    let slot = self.slots.swap_remove(i);
                    // A complete response before the whole request: the client may stop
                    // sending (RFC 9113 §8.1), as h2 tells it, and whoever still reads
                    // the upload (an `h2` pool's stream) learns it will not end.
                    if let Some(inb) = slot.inbound.as_ref().filter(|inb| !inb.ended()) {
                        inb.fail();
                        if self.h2.is_open(id) {
                            self.h2.reset(id, Reason::NO_ERROR);
                        }
                    }
                }
            }
        }
        any
    }

    /// Polls one stream: its handler until the response head, then its body, as far as
    /// the windows and the output limit let it.
    fn poll_slot(&mut self, i: usize) -> Step {
        let slot = &mut self.slots[i];
        let id = slot.id;
        slot.wake.rearm();
        let mut cx = Context::from_waker(&slot.waker);
        // Bounded: a body of empty frames must not hold the connection.
        for _ in 0..FRAMES_PER_POLL {
            match &mut slot.state {
                SlotState::Handling(fut) => {
                    let Poll::Ready(resp) = fut.as_mut().poll(&mut cx) else {
                        return Step::Waiting;
                    };
                    let (parts, body) = resp.into_parts();
                    let end = body.is_end_stream();
                    let length = (!end)
                        .then(|| body.size_hint().exact())
                        .flatten()
                        .filter(|_| !parts.headers.contains_key(http::header::CONTENT_LENGTH));
                    let mut digits = itoa::Buffer::new();
                    let length = length.map(|n| digits.format(n).as_bytes());
                    let fields = parts
                        .headers
                        .iter()
                        .filter(|(n, _)| !convert::connection_specific(n))
                        .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes(), v.is_sensitive()))
                        .chain(length.map(|l| (&b"content-length"[..], l, false)));
                    self.h2
                        .send_response(id, parts.status.as_u16(), fields, end);
                    if end {
                        return Step::Done;
                    }
                    slot.state = SlotState::Sending {
                        body,
                        pending: None,
                    };
                }
                SlotState::Sending { body, pending } => {
                    if !self.h2.is_open(id) {
                        return Step::Done;
                    }
                    let room = OUTPUT_HIGH.saturating_sub(self.h2.pending_output() - self.written);
                    if let Some((data, end)) = pending.take() {
                        // At most the room left (a frame at least): a large body chunk
                        // must not queue more than a client that stops reading may hold.
                        let take = data.len().min(room.max(FRAME));
                        let n = self
                            .h2
                            .send_data(id, &data[..take], end && take == data.len());
                        if n < data.len() {
                            *pending = Some((data.slice(n..), end));
                            return Step::Blocked;
                        }
                        if end {
                            return Step::Done;
                        }
                        continue;
                    }
                    if room == 0 {
                        return Step::Blocked;
                    }
                    match Pin::new(&mut *body).poll_frame(&mut cx) {
                        Poll::Pending => return Step::Waiting,
                        Poll::Ready(None) => {
                            self.h2.send_data(id, &[], true);
                            return Step::Done;
                        }
                        Poll::Ready(Some(Err(e))) => {
                            tracing::debug!(stream = id, error = %e, "response body failed");
                            self.h2.reset(id, Reason::INTERNAL_ERROR);
                            return Step::Done;
                        }
                        Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                            Ok(data) => {
                                let end = body.is_end_stream();
                                if data.is_empty() && !end {
                                    continue;
                                }
                                *pending = Some((data, end));
                            }
                            Err(frame) => {
                                if let Ok(trailers) = frame.into_trailers() {
                                    let fields = trailers
                                        .iter()
                                        .filter(|(n, _)| !convert::connection_specific(n))
                                        .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes()));
                                    self.h2.send_trailers(id, fields);
                                    return Step::Done;
                                }
                            }
                        },
                    }
                }
            }
        }
        cx.waker().wake_by_ref();
        Step::Waiting
    }
}
