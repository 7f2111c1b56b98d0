//! One HTTP/2 server connection's protocol state, without I/O (RFC 9113 §5, §6.5, §6.9).
//!
//! The caller feeds it the bytes a client sent ([`Connection::receive`], one frame per
//! call, so each [`Event`] can borrow what it names) and writes out what it queues
//! ([`Connection::output`]). It keeps what h2 keeps for weir today: the preface and
//! SETTINGS exchange, each stream's state (§5.1), flow control both ways with the
//! windows' bounds, the concurrent-stream limit (REFUSED_STREAM past it), a client's
//! trailers, and the two abuse budgets of the listener's `http2` settings: streams the
//! client resets before their response started (the rapid-reset lever of CVE-2023-44487)
//! and streams weir had to reset for the client's errors; past either, GOAWAY
//! `ENHANCE_YOUR_CALM`.
//!
//! Streams live in a small vector searched by id: a connection has at most
//! `max_concurrent_streams` of them (100 by default, 10 from h2load), where a linear
//! scan of ids is cheaper than hashing.

use crate::frame::{self, Frame, FrameError, Head, HeaderBlock, Reason, HEAD_LEN, PREFACE};
use crate::hpack::{Block, DecodeError, Decoder, Encoder};
use crate::request::{self, RequestHead};

/// Bytes of output that may wait for the caller to write before a client's flood of
/// frames that ask for replies is cut off (see [`Connection::reply_room`]).
pub const MAX_PENDING_OUTPUT: usize = 256 * 1024;

/// The default initial window (§6.5.2), which holds until the peer's SETTINGS say
/// otherwise, and which the client may use before it has acknowledged weir's.
const DEFAULT_WINDOW: u32 = 65_535;

/// The listener's limits for one connection.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Streams a client may have open at once.
    pub max_concurrent_streams: u32,
    /// Each stream's receive window (`SETTINGS_INITIAL_WINDOW_SIZE`).
    pub initial_stream_window: u32,
    /// The connection's receive window, opened by a WINDOW_UPDATE after the preface.
    pub initial_connection_window: u32,
    /// The largest decoded header list (`SETTINGS_MAX_HEADER_LIST_SIZE`); a larger
    /// request gets 431.
    pub max_header_list_size: u32,
    /// Streams the client may reset before their response started, net of the
    /// responses completed.
    pub max_pending_reset_streams: u32,
    /// Streams weir may reset for the client's stream errors.
    pub max_stream_errors: u32,
}

/// What a frame meant for the caller; `stream` is the stream it concerns. Slices are
/// valid until the next call.
#[derive(Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Event<'a> {
    /// A new request; its fields are in [`Connection::block`].
    Request {
        stream: u32,
        head: RequestHead,
        /// No body follows.
        end_stream: bool,
    },
    /// A request whose header list is over `max_header_list_size`: answer 431.
    HeadersTooLarge { stream: u32 },
    /// Request body bytes; give their flow-control credit back with
    /// [`Connection::release`] once they are passed on.
    Data {
        stream: u32,
        data: &'a [u8],
        end_stream: bool,
    },
    /// The request's trailers, in [`Connection::block`]; the body has ended.
    Trailers { stream: u32 },
    /// The stream is gone: the client reset it, or weir did for its error (the frame
    /// is queued). Stop its work.
    Reset { stream: u32, reason: Reason },
    /// The peer's windows grew: data that waited may now go.
    WindowOpened,
    /// An acknowledgement of weir's PING.
    Pong { data: [u8; 8] },
    /// The client will open no more streams.
    GoAway { reason: Reason },
}

/// The connection must end: GOAWAY with `reason` is queued in the output; flush it and
/// close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fatal {
    /// The code sent.
    pub reason: Reason,
}

#[derive(Debug)]
struct Stream {
    id: u32,
    /// Credit the client has left on this stream.
    recv_window: i64,
    /// Credit weir has left to send on this stream (may go negative when the peer
    /// shrinks its initial window, §6.9.2).
    send_window: i64,
    /// Body bytes received and not yet released.
    unreleased: u32,
    /// Credit released and not yet announced with a WINDOW_UPDATE.
    to_announce: u32,
    /// Opened before the client acknowledged weir's SETTINGS, with the default window.
    before_ack: bool,
    /// The client ended its side.
    recv_closed: bool,
    /// weir ended its side.
    send_closed: bool,
    /// Response headers have been sent.
    responded: bool,
    /// `Content-Length` left to receive, when declared.
    remaining: Option<u64>,
}

/// One connection's state.
#[derive(Debug)]
pub struct Connection {
    config: Config,
    out: Vec<u8>,
    preface_left: usize,
    /// The first frame after the preface must be SETTINGS (§3.4).
    seen_settings: bool,
    /// The client acknowledged weir's SETTINGS: its initial window applies.
    settings_acked: bool,
    decoder: Decoder,
    encoder: Encoder,
    blocks: HeaderBlock,
    block: Block,
    scratch: Vec<u8>,
    streams: Vec<Stream>,
    /// The highest stream id the client has used.
    last_stream: u32,
    /// After weir's GOAWAY: streams above it are not taken.
    goaway: Option<u32>,
    recv_window: i64,
    /// Connection credit released and not yet announced.
    to_announce: u32,
    send_window: i64,
    peer_initial_window: u32,
    peer_max_frame: u32,
    early_resets: u32,
    stream_errors: u32,
}

impl Connection {
    /// A connection whose client has yet to send its preface; weir's SETTINGS (and the
    /// connection window's update) are queued at once, as §3.4 allows.
    pub fn new(config: Config) -> Self {
        let mut out = Vec::with_capacity(64);
        frame::write_settings(
            &[
                // The settings h2 sent, so clients see what they saw from weir before:
                // no ENABLE_PUSH (a server's is meaningless, §6.5.2), and the frame
                // size weir reads stated even though it is the default.
                (
                    frame::setting::MAX_CONCURRENT_STREAMS,
                    config.max_concurrent_streams,
                ),
                (
                    frame::setting::INITIAL_WINDOW_SIZE,
                    config.initial_stream_window,
                ),
                (
                    frame::setting::MAX_FRAME_SIZE,
                    frame::DEFAULT_MAX_FRAME_SIZE,
                ),
                (
                    frame::setting::MAX_HEADER_LIST_SIZE,
                    config.max_header_list_size,
                ),
            ],
            &mut out,
        );
        let extra = config
            .initial_connection_window
            .saturating_sub(DEFAULT_WINDOW);
        if extra > 0 {
            frame::write_window_update(0, extra, &mut out);
        }
        Connection {
            config,
            out,
            preface_left: PREFACE.len(),
            seen_settings: false,
            settings_acked: false,
            decoder: Decoder::new(4096),
            encoder: Encoder::new(),
            blocks: HeaderBlock::new(),
            block: Block::new(),
            scratch: Vec::new(),
            streams: Vec::new(),
            last_stream: 0,
            goaway: None,
            recv_window: i64::from(DEFAULT_WINDOW.max(config.initial_connection_window)),
            to_announce: 0,
            send_window: i64::from(DEFAULT_WINDOW),
            peer_initial_window: DEFAULT_WINDOW,
            peer_max_frame: frame::DEFAULT_MAX_FRAME_SIZE,
            early_resets: 0,
            stream_errors: 0,
        }
    }

    /// The frames queued for the client; the caller writes them and clears the vector.
    /// Stop calling [`receive`](Self::receive) while it is large (a client that floods
    /// PINGs or SETTINGS and does not read gets back-pressure, not memory).
    pub fn output(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    /// Bytes queued in [`output`](Self::output).
    pub fn pending_output(&self) -> usize {
        self.out.len()
    }

    /// The fields of the last [`Event::Request`] or [`Event::Trailers`].
    pub fn block(&self) -> &Block {
        &self.block
    }

    /// Streams not yet closed.
    pub fn active_streams(&self) -> usize {
        self.streams.len()
    }

    /// Reads at most one frame (or the preface) from the front of `input`: how many
    /// bytes it used (0: a frame is not all there yet), and the event it made.
    pub fn receive<'a>(&mut self, input: &'a [u8]) -> Result<(usize, Option<Event<'a>>), Fatal> {
        if self.preface_left > 0 {
            let done = PREFACE.len() - self.preface_left;
            let n = self.preface_left.min(input.len());
            if input[..n] != PREFACE[done..done + n] {
                return Err(self.fatal(Reason::PROTOCOL_ERROR));
            }
            self.preface_left -= n;
            return Ok((n, None));
        }
        let Some((h, rest)) = input.split_first_chunk::<HEAD_LEN>() else {
            return Ok((0, None));
        };
        let head = Head::parse(h);
        if head.len > frame::DEFAULT_MAX_FRAME_SIZE {
            return Err(self.fatal(Reason::FRAME_SIZE_ERROR));
        }
        let Some(payload) = rest.get(..head.len as usize) else {
            return Ok((0, None));
        };
        let used = HEAD_LEN + payload.len();
        if !self.seen_settings && head.kind != frame::kind::SETTINGS {
            return Err(self.fatal(Reason::PROTOCOL_ERROR));
        }
        let event = match frame::parse(head, payload, frame::DEFAULT_MAX_FRAME_SIZE) {
            Ok(f) => {
                self.blocks.check(&f).map_err(|e| self.error(e))?;
                self.frame(f)?
            }
            Err(FrameError::Stream(stream, reason)) => {
                // A HEADERS frame whose priority names its own stream would still have
                // to be decoded for the table, and is not kept: the connection ends.
                if head.kind == frame::kind::HEADERS {
                    return Err(self.fatal(Reason::PROTOCOL_ERROR));
                }
                // An idle stream cannot be reset (§5.1); a faulty PRIORITY for one is
                // ignored, as RFC 9113 deprecates the scheme, and any other fault there
                // ends the connection with its own code.
                if self.is_idle(stream) {
                    if head.kind == frame::kind::PRIORITY {
                        return Ok((used, None));
                    }
                    return Err(self.fatal(reason));
                }
                self.stream_error(stream, reason)?
            }
            Err(e) => return Err(self.error(e)),
        };
        Ok((used, event))
    }

    fn frame<'a>(&mut self, f: Frame<'a>) -> Result<Option<Event<'a>>, Fatal> {
        match f {
            Frame::Settings(s) => {
                if s.ack {
                    if !self.settings_acked {
                        self.settings_acked = true;
                        // §6.9.2: streams opened before the acknowledgement had the
                        // default window; weir's smaller one applies to them now.
                        let cut = DEFAULT_WINDOW.saturating_sub(self.config.initial_stream_window);
                        for s in self.streams.iter_mut().filter(|s| s.before_ack) {
                            s.recv_window -= i64::from(cut);
                        }
                    }
                    return Ok(None);
                }
                self.seen_settings = true;
                for (id, value) in s.params() {
                    match id {
                        frame::setting::HEADER_TABLE_SIZE => self.encoder.peer_table_size(value),
                        frame::setting::INITIAL_WINDOW_SIZE => {
                            // §6.9.2: open streams' windows move by the difference, and
                            // may go below zero.
                            let delta = i64::from(value) - i64::from(self.peer_initial_window);
                            self.peer_initial_window = value;
                            let mut overflow = false;
                            for s in &mut self.streams {
                                s.send_window += delta;
                                overflow |= s.send_window > i64::from(frame::MAX_WINDOW);
                            }
                            if overflow {
                                return Err(self.fatal(Reason::FLOW_CONTROL_ERROR));
                            }
                        }
                        frame::setting::MAX_FRAME_SIZE => self.peer_max_frame = value,
                        _ => {}
                    }
                }
                self.reply_room()?;
                frame::write_settings_ack(&mut self.out);
                Ok(Some(Event::WindowOpened))
            }
            Frame::Headers { .. } | Frame::Continuation { .. } => self.headers(f),
            Frame::Data {
                stream,
                data,
                end_stream,
                flow_len,
            } => self.data(stream, data, end_stream, flow_len),
            Frame::RstStream { stream, reason } => {
                if self.is_idle(stream) {
                    return Err(self.fatal(Reason::PROTOCOL_ERROR));
                }
                let Some(i) = self.find(stream) else {
                    return Ok(None);
                };
                let s = self.streams.swap_remove(i);
                if !s.responded {
                    self.early_resets += 1;
                    if self.early_resets > self.config.max_pending_reset_streams {
                        return Err(self.fatal(Reason::ENHANCE_YOUR_CALM));
                    }
                }
                self.give_back_connection(s.unreleased);
                Ok(Some(Event::Reset { stream, reason }))
            }
            Frame::WindowUpdate { stream, increment } => {
                if stream == 0 {
                    self.send_window += i64::from(increment);
                    if self.send_window > i64::from(frame::MAX_WINDOW) {
                        return Err(self.fatal(Reason::FLOW_CONTROL_ERROR));
                    }
                    return Ok(Some(Event::WindowOpened));
                }
                if self.is_idle(stream) {
                    return Err(self.fatal(Reason::PROTOCOL_ERROR));
                }
                let Some(i) = self.find(stream) else {
                    return Ok(None);
                };
                self.streams[i].send_window += i64::from(increment);
                if self.streams[i].send_window > i64::from(frame::MAX_WINDOW) {
                    return self.stream_error(stream, Reason::FLOW_CONTROL_ERROR);
                }
                Ok(Some(Event::WindowOpened))
            }
            Frame::Ping { ack: false, data } => {
                self.reply_room()?;
                frame::write_ping(true, data, &mut self.out);
                Ok(None)
            }
            Frame::Ping { ack: true, data } => Ok(Some(Event::Pong { data })),
            Frame::GoAway { reason, .. } => Ok(Some(Event::GoAway { reason })),
            Frame::Priority { .. } | Frame::Unknown => Ok(None),
        }
    }

    fn headers<'a>(&mut self, f: Frame<'a>) -> Result<Option<Event<'a>>, Fatal> {
        let max_block = self.config.max_header_list_size as usize + 16 * 1024;
        let complete = match self.blocks.push(&f, max_block) {
            Ok(Some(c)) => c,
            Ok(None) => return Ok(None),
            Err(e) => return Err(self.error(e)),
        };
        let (stream, end_stream) = (complete.stream, complete.end_stream);
        // Decoded first, whatever becomes of the stream: the table must stay in step.
        let decoded = self.decoder.decode(
            complete.block,
            self.config.max_header_list_size as usize,
            &mut self.block,
        );
        if let Err(e) = decoded {
            if e.is_connection_error() {
                return Err(self.fatal(Reason::COMPRESSION_ERROR));
            }
        }
        if stream.is_multiple_of(2) {
            return Err(self.fatal(Reason::PROTOCOL_ERROR));
        }
        if stream <= self.last_stream {
            // Trailers on an open stream, or a frame on a closed one (§5.1).
            let Some(i) = self.find(stream) else {
                // A request on a used id is a connection error (§5.1.1); trailers in
                // flight for a stream weir reset are dropped, as its DATA is.
                if self.block.iter().any(|(n, _)| n.starts_with(b":")) {
                    return Err(self.fatal(Reason::PROTOCOL_ERROR));
                }
                return Ok(None);
            };
            if self.streams[i].recv_closed {
                // Half closed (remote): this stream only, the others go on (§5.1).
                return self.stream_error(stream, Reason::STREAM_CLOSED);
            }
            if !end_stream || decoded.is_err() || request::trailers(&self.block).is_err() {
                return self.stream_error(stream, Reason::PROTOCOL_ERROR);
            }
            if self.streams[i].remaining.is_some_and(|r| r != 0) {
                return self.stream_error(stream, Reason::PROTOCOL_ERROR);
            }
            self.streams[i].recv_closed = true;
            self.close_if_done(i);
            return Ok(Some(Event::Trailers { stream }));
        }
        self.last_stream = stream;
        if self.goaway.is_some_and(|last| stream > last) {
            return Ok(None);
        }
        if self.streams.len() >= self.config.max_concurrent_streams as usize {
            // A client past the limit it was told is one of the glitches h2 counts:
            // each refusal spends the stream-error budget.
            self.reply_room()?;
            return self.stream_error(stream, Reason::REFUSED_STREAM);
        }
        let initial = if self.settings_acked {
            self.config.initial_stream_window
        } else {
            self.config.initial_stream_window.max(DEFAULT_WINDOW)
        };
        let mut s = Stream {
            id: stream,
            recv_window: i64::from(initial),
            send_window: i64::from(self.peer_initial_window),
            unreleased: 0,
            to_announce: 0,
            before_ack: !self.settings_acked,
            recv_closed: end_stream,
            send_closed: false,
            responded: false,
            remaining: None,
        };
        if decoded == Err(DecodeError::TooLarge) {
            self.streams.push(s);
            return Ok(Some(Event::HeadersTooLarge { stream }));
        }
        match request::request(&self.block) {
            Ok(head) => {
                if end_stream && head.content_length.is_some_and(|n| n != 0) {
                    self.streams.push(s);
                    return self.stream_error(stream, Reason::PROTOCOL_ERROR);
                }
                s.remaining = head.content_length;
                self.streams.push(s);
                Ok(Some(Event::Request {
                    stream,
                    head,
                    end_stream,
                }))
            }
            Err(_) => {
                self.streams.push(s);
                self.stream_error(stream, Reason::PROTOCOL_ERROR)
            }
        }
    }

    fn data<'a>(
        &mut self,
        stream: u32,
        data: &'a [u8],
        end_stream: bool,
        flow_len: u32,
    ) -> Result<Option<Event<'a>>, Fatal> {
        if self.is_idle(stream) {
            return Err(self.fatal(Reason::PROTOCOL_ERROR));
        }
        // Counted against the connection whatever the stream's state (§6.9).
        self.recv_window -= i64::from(flow_len);
        if self.recv_window < 0 {
            return Err(self.fatal(Reason::FLOW_CONTROL_ERROR));
        }
        let padding = flow_len - data.len() as u32;
        let Some(i) = self.find(stream) else {
            // A stream weir reset or refused: what the client had in flight is dropped
            // (§5.4.2), its credit given back, and nothing else said.
            self.give_back_connection(flow_len);
            return Ok(None);
        };
        if self.streams[i].recv_closed {
            // Half closed (remote): this stream only (§5.1).
            self.give_back_connection(flow_len);
            return self.stream_error(stream, Reason::STREAM_CLOSED);
        }
        let s = &mut self.streams[i];
        s.recv_window -= i64::from(flow_len);
        if s.recv_window < 0 {
            self.give_back_connection(flow_len);
            return self.stream_error(stream, Reason::FLOW_CONTROL_ERROR);
        }
        let mut malformed = false;
        if let Some(left) = s.remaining.as_mut() {
            match left.checked_sub(data.len() as u64) {
                Some(l) => *left = l,
                None => malformed = true,
            }
            malformed |= end_stream && *left != 0;
        }
        if malformed {
            self.give_back_connection(flow_len);
            return self.stream_error(stream, Reason::PROTOCOL_ERROR);
        }
        s.unreleased += data.len() as u32;
        s.recv_closed = end_stream;
        // Padding is nobody's to pass on: its credit goes back at once.
        if padding > 0 {
            self.release_stream(i, padding);
        }
        if end_stream {
            self.close_if_done(i);
        }
        Ok(Some(Event::Data {
            stream,
            data,
            end_stream,
        }))
    }

    /// Gives back `n` bytes of a stream's body credit (they have been passed on): a
    /// WINDOW_UPDATE goes out once half a window is owed, for the stream and for the
    /// connection, as h2 batches them.
    pub fn release(&mut self, stream: u32, n: u32) {
        // A closed stream gave its credit back as it closed.
        if let Some(i) = self.find(stream) {
            let n = n.min(self.streams[i].unreleased);
            self.streams[i].unreleased -= n;
            self.release_stream(i, n);
        }
    }

    fn release_stream(&mut self, i: usize, n: u32) {
        let half = self.config.initial_stream_window / 2;
        let s = &mut self.streams[i];
        s.to_announce += n;
        if !s.recv_closed && s.to_announce > 0 && s.to_announce >= half {
            frame::write_window_update(s.id, s.to_announce, &mut self.out);
            s.recv_window += i64::from(s.to_announce);
            s.to_announce = 0;
        }
        self.give_back_connection(n);
    }

    fn give_back_connection(&mut self, n: u32) {
        self.to_announce += n;
        let half = DEFAULT_WINDOW.max(self.config.initial_connection_window) / 2;
        if self.to_announce > 0 && self.to_announce >= half {
            frame::write_window_update(0, self.to_announce, &mut self.out);
            self.recv_window += i64::from(self.to_announce);
            self.to_announce = 0;
        }
    }

    /// Queues a response head. `fields` are lower case, without connection-specific
    /// ones (the caller's HTTP/1 head has already dropped them); `never_index` marks a
    /// field HPACK must not index.
    pub fn send_response<'f>(
        &mut self,
        stream: u32,
        status: u16,
        fields: impl IntoIterator<Item = (&'f [u8], &'f [u8], bool)>,
        end_stream: bool,
    ) {
        let Some(i) = self.find(stream) else {
            return;
        };
        self.scratch.clear();
        self.encoder.begin(&mut self.scratch);
        self.encoder.status(status, &mut self.scratch);
        for (name, value, never_index) in fields {
            self.encoder
                .field(name, value, never_index, &mut self.scratch);
        }
        frame::write_headers(
            stream,
            &self.scratch,
            end_stream,
            self.peer_max_frame,
            &mut self.out,
        );
        self.streams[i].responded = true;
        if end_stream {
            self.end_local(i);
        }
    }

    /// Queues what the windows allow of `data` (in frames of the peer's size) and
    /// returns how much that was; `end_stream` applies once all of it went.
    pub fn send_data(&mut self, stream: u32, data: &[u8], end_stream: bool) -> usize {
        let Some(i) = self.find(stream) else {
            return 0;
        };
        let allowed = self.send_window.min(self.streams[i].send_window).max(0);
        let n = data
            .len()
            .min(usize::try_from(allowed).unwrap_or(usize::MAX));
        let max = self.peer_max_frame as usize;
        let mut sent = 0;
        while sent < n {
            let chunk = (n - sent).min(max);
            let last = end_stream && sent + chunk == data.len();
            frame::write_data_head(stream, chunk, last, &mut self.out);
            self.out.extend_from_slice(&data[sent..sent + chunk]);
            sent += chunk;
        }
        self.send_window -= n as i64;
        self.streams[i].send_window -= n as i64;
        if end_stream && n == data.len() {
            if data.is_empty() {
                frame::write_data_head(stream, 0, true, &mut self.out);
            }
            self.end_local(i);
        }
        n
    }

    /// Queues trailers, which end the stream.
    pub fn send_trailers<'f>(
        &mut self,
        stream: u32,
        fields: impl IntoIterator<Item = (&'f [u8], &'f [u8])>,
    ) {
        let Some(i) = self.find(stream) else {
            return;
        };
        self.scratch.clear();
        self.encoder.begin(&mut self.scratch);
        for (name, value) in fields {
            self.encoder.field(name, value, false, &mut self.scratch);
        }
        frame::write_headers(
            stream,
            &self.scratch,
            true,
            self.peer_max_frame,
            &mut self.out,
        );
        self.end_local(i);
    }

    /// Resets a stream weir gives up on (its backend failed mid-response).
    pub fn reset(&mut self, stream: u32, reason: Reason) {
        if let Some(i) = self.find(stream) {
            let s = self.streams.swap_remove(i);
            self.give_back_connection(s.unreleased);
            frame::write_rst_stream(stream, reason, &mut self.out);
        }
    }

    /// Starts a graceful shutdown: streams the client opens after this are not taken,
    /// those open finish.
    pub fn goaway(&mut self, reason: Reason) {
        if self.goaway.is_none() {
            self.goaway = Some(self.last_stream);
            frame::write_goaway(self.last_stream, reason, &mut self.out);
        }
    }

    /// The first GOAWAY of a graceful shutdown (RFC 9113 §6.8; h2 and Go send the same):
    /// the highest stream id, so the client opens no more streams while those already
    /// on the wire are still taken. Follow it with [`goaway`](Self::goaway) after a
    /// PING's round trip, which names the last stream served.
    pub fn goaway_notice(&mut self) {
        if self.goaway.is_none() {
            frame::write_goaway(frame::MAX_WINDOW, Reason::NO_ERROR, &mut self.out);
        }
    }

    /// Whether `stream` is still open on either side (a response can still go).
    pub fn is_open(&self, stream: u32) -> bool {
        self.find(stream).is_some()
    }

    /// Whether [`goaway`](Self::goaway) was called: no new streams are taken.
    pub fn is_going_away(&self) -> bool {
        self.goaway.is_some()
    }

    /// Queues a PING (for the keep-alive check); the answer is [`Event::Pong`].
    pub fn ping(&mut self, data: [u8; 8]) {
        frame::write_ping(false, data, &mut self.out);
    }

    fn end_local(&mut self, i: usize) {
        self.streams[i].send_closed = true;
        if self.streams[i].recv_closed {
            self.early_resets = self.early_resets.saturating_sub(1);
        }
        self.close_if_done(i);
    }

    fn close_if_done(&mut self, i: usize) {
        if self.streams[i].recv_closed && self.streams[i].send_closed {
            let s = self.streams.swap_remove(i);
            self.give_back_connection(s.unreleased);
        }
    }

    /// A stream the client has not opened: above the last one, or even (weir pushes
    /// nothing, so no even stream ever opens).
    fn is_idle(&self, stream: u32) -> bool {
        stream > self.last_stream || stream.is_multiple_of(2)
    }

    /// Room for one more reply the client's frame asks for (a PING or SETTINGS
    /// acknowledgement, a REFUSED_STREAM): a client that floods them without reading
    /// what weir writes (CVE-2019-9512, -9515) gets GOAWAY `ENHANCE_YOUR_CALM` once
    /// [`MAX_PENDING_OUTPUT`] bytes wait, instead of growing the output without end.
    fn reply_room(&mut self) -> Result<(), Fatal> {
        if self.out.len() > MAX_PENDING_OUTPUT {
            return Err(self.fatal(Reason::ENHANCE_YOUR_CALM));
        }
        Ok(())
    }

    fn find(&self, stream: u32) -> Option<usize> {
        self.streams.iter().position(|s| s.id == stream)
    }

    /// A stream error: RST_STREAM, counted against the client's error budget.
    fn stream_error<'a>(
        &mut self,
        stream: u32,
        reason: Reason,
    ) -> Result<Option<Event<'a>>, Fatal> {
        self.stream_errors += 1;
        if self.stream_errors > self.config.max_stream_errors {
            return Err(self.fatal(Reason::ENHANCE_YOUR_CALM));
        }
        frame::write_rst_stream(stream, reason, &mut self.out);
        match self.find(stream) {
            Some(i) => {
                let s = self.streams.swap_remove(i);
                self.give_back_connection(s.unreleased);
                Ok(Some(Event::Reset { stream, reason }))
            }
            None => Ok(None),
        }
    }

    fn error(&mut self, e: FrameError) -> Fatal {
        match e {
            FrameError::Connection(reason) | FrameError::Stream(_, reason) => self.fatal(reason),
        }
    }

    fn fatal(&mut self, reason: Reason) -> Fatal {
        frame::write_goaway(self.last_stream, reason, &mut self.out);
        Fatal { reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{flag, kind, setting};

    const CONFIG: Config = Config {
        max_concurrent_streams: 4,
        initial_stream_window: 65_535,
        initial_connection_window: 1 << 20,
        max_header_list_size: 16 * 1024,
        max_pending_reset_streams: 3,
        max_stream_errors: 3,
    };

    /// A scripted client: frames it sends, and what the server queued, parsed.
    struct Client {
        conn: Connection,
        encoder: Encoder,
    }

    /// What one `send` produced: the events (owned) and the frames queued back.
    #[derive(Debug, Default)]
    struct Answer {
        events: Vec<String>,
        frames: Vec<(Head, Vec<u8>)>,
        fatal: Option<Reason>,
    }

    impl Answer {
        fn kinds(&self) -> Vec<u8> {
            self.frames.iter().map(|(h, _)| h.kind).collect()
        }

        fn rst(&self) -> Vec<(u32, u32)> {
            self.frames
                .iter()
                .filter(|(h, _)| h.kind == kind::RST_STREAM)
                .map(|(h, p)| (h.stream, u32::from_be_bytes([p[0], p[1], p[2], p[3]])))
                .collect()
        }

        fn window_updates(&self) -> Vec<(u32, u32)> {
            self.frames
                .iter()
                .filter(|(h, _)| h.kind == kind::WINDOW_UPDATE)
                .map(|(h, p)| (h.stream, u32::from_be_bytes([p[0], p[1], p[2], p[3]])))
                .collect()
        }
    }

    fn raw(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        Head {
            len: payload.len() as u32,
            kind,
            flags,
            stream,
        }
        .write(&mut v);
        v.extend_from_slice(payload);
        v
    }

    impl Client {
        /// Preface and SETTINGS sent and acknowledged both ways.
        fn new(config: Config) -> Self {
            let mut c = Client {
                conn: Connection::new(config),
                encoder: Encoder::new(),
            };
            let mut hello = PREFACE.to_vec();
            hello.extend(raw(kind::SETTINGS, 0, 0, &[]));
            hello.extend(raw(kind::SETTINGS, flag::ACK, 0, &[]));
            let a = c.send(&hello);
            assert_eq!(a.fatal, None);
            c
        }

        fn send(&mut self, mut bytes: &[u8]) -> Answer {
            let mut a = Answer::default();
            // Bounded: every call uses at least one byte or stops.
            for _ in 0..10_000 {
                if bytes.is_empty() {
                    break;
                }
                match self.conn.receive(bytes) {
                    Ok((0, _)) => break,
                    Ok((n, event)) => {
                        if let Some(e) = event {
                            a.events.push(format!("{e:?}"));
                        }
                        bytes = &bytes[n..];
                    }
                    Err(f) => {
                        a.fatal = Some(f.reason);
                        break;
                    }
                }
            }
            a.frames = self.drain();
            a
        }

        fn drain(&mut self) -> Vec<(Head, Vec<u8>)> {
            let out = std::mem::take(self.conn.output());
            let mut frames = Vec::new();
            let mut rest = &out[..];
            while let Some((h, tail)) = rest.split_first_chunk::<HEAD_LEN>() {
                let head = Head::parse(h);
                let (p, tail) = tail.split_at(head.len as usize);
                frames.push((head, p.to_vec()));
                rest = tail;
            }
            frames
        }

        fn headers(&self, stream: u32, fields: &[(&str, &str)], end_stream: bool) -> Vec<u8> {
            let mut block = Vec::new();
            for (n, v) in fields {
                self.encoder
                    .field(n.as_bytes(), v.as_bytes(), false, &mut block);
            }
            let mut out = Vec::new();
            frame::write_headers(stream, &block, end_stream, 16_384, &mut out);
            out
        }

        fn get(&self, stream: u32) -> Vec<u8> {
            self.headers(stream, &GET, true)
        }
    }

    /// A POST's fields, with a `Content-Length` if given.
    fn post(length: Option<&'static str>) -> Vec<(&'static str, &'static str)> {
        let mut fields = vec![
            (":method", "POST"),
            (":scheme", "http"),
            (":authority", "a.test"),
            (":path", "/"),
        ];
        fields.extend(length.map(|l| ("content-length", l)));
        fields
    }

    const GET: [(&str, &str); 4] = [
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", "a.test"),
        (":path", "/"),
    ];

    #[test]
    fn the_exchange_opens_with_settings_and_the_connection_window() {
        let mut c = Client {
            conn: Connection::new(CONFIG),
            encoder: Encoder::new(),
        };
        let first = c.drain();
        assert_eq!(first[0].0.kind, kind::SETTINGS);
        let mut params = Vec::new();
        for p in first[0].1.chunks(6) {
            params.push((
                u16::from_be_bytes([p[0], p[1]]),
                u32::from_be_bytes([p[2], p[3], p[4], p[5]]),
            ));
        }
        assert!(params.contains(&(setting::MAX_CONCURRENT_STREAMS, 4)));
        assert!(params.contains(&(setting::MAX_FRAME_SIZE, 16_384)));
        assert!(!params.iter().any(|p| p.0 == setting::ENABLE_PUSH));
        assert_eq!(first[1].0.kind, kind::WINDOW_UPDATE);
        // The preface may come a byte at a time.
        for b in PREFACE.iter() {
            assert_eq!(c.conn.receive(&[*b]), Ok((1, None)));
        }
        let a = c.send(&raw(kind::SETTINGS, 0, 0, &[0, 4, 0, 0, 0x10, 0]));
        assert_eq!(a.kinds(), [kind::SETTINGS], "acknowledged");
        assert_eq!(a.frames[0].0.flags, flag::ACK);
    }

    #[test]
    fn a_bad_preface_or_a_first_frame_other_than_settings_ends_the_connection() {
        let mut c = Client {
            conn: Connection::new(CONFIG),
            encoder: Encoder::new(),
        };
        assert_eq!(
            c.send(b"GET / HTTP/1.1\r\n").fatal,
            Some(Reason::PROTOCOL_ERROR)
        );
        let mut c = Client {
            conn: Connection::new(CONFIG),
            encoder: Encoder::new(),
        };
        let mut bytes = PREFACE.to_vec();
        bytes.extend(raw(kind::PING, 0, 0, &[0; 8]));
        assert_eq!(c.send(&bytes).fatal, Some(Reason::PROTOCOL_ERROR));
    }

    #[test]
    fn a_get_is_a_request_event_and_its_response_closes_the_stream() {
        let mut c = Client::new(CONFIG);
        let a = c.send(&c.get(1));
        assert_eq!(a.events.len(), 1);
        assert!(
            a.events[0].starts_with("Request { stream: 1"),
            "{:?}",
            a.events
        );
        assert_eq!(c.conn.active_streams(), 1);
        c.conn.send_response(
            1,
            200,
            [(&b"content-type"[..], &b"text/plain"[..], false)],
            false,
        );
        assert_eq!(c.conn.send_data(1, b"hello", true), 5);
        let frames = c.drain();
        assert_eq!(
            frames.iter().map(|(h, _)| h.kind).collect::<Vec<_>>(),
            [kind::HEADERS, kind::DATA]
        );
        assert_eq!(frames[1].0.flags, flag::END_STREAM);
        assert_eq!(c.conn.active_streams(), 0);
        let mut block = Block::new();
        Decoder::new(4096)
            .decode(&frames[0].1, 1 << 16, &mut block)
            .expect("the response head decodes");
        assert_eq!(block.iter().next(), Some((&b":status"[..], &b"200"[..])));
    }

    #[test]
    fn streams_past_the_limit_are_refused_and_even_or_reused_ids_end_the_connection() {
        let mut c = Client::new(CONFIG);
        for id in [1, 3, 5, 7] {
            assert_eq!(c.send(&c.get(id)).events.len(), 1);
        }
        let a = c.send(&c.get(9));
        assert_eq!(a.rst(), [(9, Reason::REFUSED_STREAM.0)]);
        assert!(a.events.is_empty());
        // What the refused stream had in flight is dropped quietly.
        let a = c.send(&raw(kind::DATA, 0, 9, b"late"));
        assert!(a.events.is_empty() && a.fatal.is_none() && a.rst().is_empty());
        assert_eq!(c.send(&c.get(4)).fatal, Some(Reason::PROTOCOL_ERROR));
        let mut c = Client::new(CONFIG);
        c.send(&c.get(5));
        assert_eq!(
            c.send(&raw(kind::DATA, 0, 7, b"x")).fatal,
            Some(Reason::PROTOCOL_ERROR),
            "idle stream"
        );
        c.conn.send_response(5, 204, [], true);
        c.drain();
        // Stream 5 is closed; a request on a lower id is a connection error.
        assert_eq!(c.send(&c.get(3)).fatal, Some(Reason::PROTOCOL_ERROR));
    }

    #[test]
    fn a_body_is_counted_against_both_windows_and_its_credit_comes_back_when_released() {
        let mut c = Client::new(CONFIG);
        let post = post(Some("40000"));
        c.send(&c.headers(1, &post, false));
        let chunk = vec![b'x'; 16_384];
        let mut bytes = raw(kind::DATA, 0, 1, &chunk);
        bytes.extend(raw(kind::DATA, 0, 1, &chunk));
        let a = c.send(&bytes);
        assert_eq!(a.events.len(), 2);
        assert!(a.window_updates().is_empty(), "nothing released yet");
        c.conn.release(1, 32_768);
        let updates: Vec<_> = c
            .drain()
            .into_iter()
            .filter(|(h, _)| h.kind == kind::WINDOW_UPDATE)
            .map(|(h, _)| h.stream)
            .collect();
        assert_eq!(
            updates,
            [1],
            "the stream's half window; the connection's is far larger"
        );
        // More than the stream's window without a release: a stream error.
        let a = c.send(
            &[
                raw(kind::DATA, 0, 1, &chunk),
                raw(kind::DATA, 0, 1, &chunk),
                raw(kind::DATA, 0, 1, &chunk),
                raw(kind::DATA, 0, 1, &chunk),
                raw(kind::DATA, 0, 1, &chunk),
            ]
            .concat(),
        );
        assert!(
            a.rst().contains(&(1, Reason::FLOW_CONTROL_ERROR.0))
                || a.rst().contains(&(1, Reason::PROTOCOL_ERROR.0)),
            "{:?}",
            a.rst()
        );
    }

    #[test]
    fn a_body_that_disagrees_with_content_length_is_malformed() {
        let mut c = Client::new(CONFIG);
        let post = post(Some("3"));
        c.send(&c.headers(1, &post, false));
        let a = c.send(&raw(kind::DATA, flag::END_STREAM, 1, b"four"));
        assert_eq!(a.rst(), [(1, Reason::PROTOCOL_ERROR.0)]);
        c.send(&c.headers(3, &post, false));
        let a = c.send(&raw(kind::DATA, flag::END_STREAM, 3, b"tw"));
        assert_eq!(a.rst(), [(3, Reason::PROTOCOL_ERROR.0)]);
        let a = c.send(&c.headers(5, &post, true));
        assert_eq!(
            a.rst(),
            [(5, Reason::PROTOCOL_ERROR.0)],
            "a length and no body"
        );
    }

    #[test]
    fn send_data_waits_for_the_peers_windows() {
        let mut c = Client::new(CONFIG);
        // The client allows 10 bytes per stream.
        c.send(&raw(kind::SETTINGS, 0, 0, &[0, 4, 0, 0, 0, 10]));
        c.send(&c.get(1));
        c.conn.send_response(1, 200, [], false);
        assert_eq!(c.conn.send_data(1, &[b'a'; 25], true), 10);
        assert_eq!(c.conn.send_data(1, &[b'a'; 15], true), 0);
        let a = c.send(&raw(kind::WINDOW_UPDATE, 0, 1, &100u32.to_be_bytes()));
        assert_eq!(a.events, ["WindowOpened"]);
        assert_eq!(c.conn.send_data(1, &[b'a'; 15], true), 15);
        assert_eq!(c.conn.active_streams(), 0);
        // A window past 2^31 - 1 ends the connection.
        let a = c.send(&raw(
            kind::WINDOW_UPDATE,
            0,
            0,
            &frame::MAX_WINDOW.to_be_bytes(),
        ));
        assert_eq!(a.fatal, Some(Reason::FLOW_CONTROL_ERROR));
    }

    #[test]
    fn rapid_resets_past_the_budget_get_enhance_your_calm() {
        let mut c = Client::new(CONFIG);
        let mut fatal = None;
        for i in 0..10u32 {
            let id = 2 * i + 1;
            let mut bytes = c.get(id);
            bytes.extend(raw(
                kind::RST_STREAM,
                0,
                id,
                &Reason::CANCEL.0.to_be_bytes(),
            ));
            let a = c.send(&bytes);
            if a.fatal.is_some() {
                fatal = a.fatal.map(|r| (i, r));
                break;
            }
            assert!(a.events.iter().any(|e| e.starts_with("Reset")));
        }
        assert_eq!(
            fatal,
            Some((3, Reason::ENHANCE_YOUR_CALM)),
            "the fourth reset is over a budget of 3"
        );
        // Answered streams do not count.
        let mut c = Client::new(CONFIG);
        for i in 0..10u32 {
            let id = 2 * i + 1;
            c.send(&c.get(id));
            c.conn.send_response(id, 200, [], true);
            c.drain();
        }
        assert_eq!(c.conn.active_streams(), 0);
    }

    #[test]
    fn malformed_requests_and_trailers_are_stream_errors_within_a_budget() {
        let mut c = Client::new(CONFIG);
        let bad = [
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/"),
            ("connection", "close"),
        ];
        for (i, id) in [1u32, 3, 5].iter().enumerate() {
            let a = c.send(&c.headers(*id, &bad, true));
            assert_eq!(a.rst(), [(*id, Reason::PROTOCOL_ERROR.0)], "{i}");
        }
        assert_eq!(
            c.send(&c.headers(7, &bad, true)).fatal,
            Some(Reason::ENHANCE_YOUR_CALM)
        );
        // Trailers: after a body, with END_STREAM, and no pseudo-headers.
        let mut c = Client::new(CONFIG);
        let post = post(None);
        c.send(&c.headers(1, &post, false));
        c.send(&raw(kind::DATA, 0, 1, b"body"));
        let a = c.send(&c.headers(1, &[("grpc-status", "0")], true));
        assert_eq!(a.events, ["Trailers { stream: 1 }"]);
        c.send(&c.headers(3, &post, false));
        let a = c.send(&c.headers(3, &[(":path", "/x")], true));
        assert_eq!(a.rst(), [(3, Reason::PROTOCOL_ERROR.0)]);
    }

    #[test]
    fn an_oversized_header_list_is_a_431_not_a_connection_error() {
        let mut c = Client::new(Config {
            max_header_list_size: 200,
            ..CONFIG
        });
        let big = "v".repeat(300);
        let fields = [GET[0], GET[1], GET[2], GET[3], ("x-big", big.as_str())];
        let a = c.send(&c.headers(1, &fields, true));
        assert_eq!(a.events, ["HeadersTooLarge { stream: 1 }"]);
        assert_eq!(a.fatal, None);
        c.conn.send_response(1, 431, [], true);
        assert_eq!(c.conn.active_streams(), 0);
        // The table stayed in step: the next request is read.
        assert_eq!(c.send(&c.get(3)).events.len(), 1);
    }

    #[test]
    fn goaway_takes_no_new_streams_and_pings_are_answered() {
        let mut c = Client::new(CONFIG);
        c.send(&c.get(1));
        c.conn.goaway(Reason::NO_ERROR);
        let frames = c.drain();
        assert_eq!(frames[0].0.kind, kind::GOAWAY);
        assert_eq!(&frames[0].1[..4], &1u32.to_be_bytes());
        assert!(c.send(&c.get(3)).events.is_empty(), "after GOAWAY");
        let a = c.send(&raw(kind::PING, 0, 0, b"12345678"));
        assert_eq!(
            a.frames,
            [(
                Head {
                    len: 8,
                    kind: kind::PING,
                    flags: flag::ACK,
                    stream: 0
                },
                b"12345678".to_vec()
            )]
        );
        c.conn.ping(*b"weir-ka!");
        c.drain();
        assert_eq!(
            c.send(&raw(kind::PING, flag::ACK, 0, b"weir-ka!")).events,
            ["Pong { data: [119, 101, 105, 114, 45, 107, 97, 33] }"]
        );
    }

    #[test]
    fn a_ping_flood_that_is_not_read_is_cut_off() {
        let mut c = Client::new(CONFIG);
        let ping = raw(kind::PING, 0, 0, b"12345678");
        let mut fatal = None;
        // Never drained: 17 bytes of answer per PING pile up.
        for i in 0..100_000 {
            match c.conn.receive(&ping) {
                Ok(_) => {}
                Err(f) => {
                    fatal = Some((i > 10_000, f.reason));
                    break;
                }
            }
        }
        assert_eq!(fatal, Some((true, Reason::ENHANCE_YOUR_CALM)));
        assert!(c.conn.output().len() < MAX_PENDING_OUTPUT + 1024);
    }

    #[test]
    fn frames_after_the_clients_end_of_stream_reset_only_that_stream() {
        let mut c = Client::new(CONFIG);
        c.send(&c.get(1));
        c.send(&c.get(3));
        let a = c.send(&raw(kind::DATA, 0, 1, b"late"));
        assert_eq!(a.fatal, None);
        assert_eq!(a.rst(), [(1, Reason::STREAM_CLOSED.0)]);
        assert_eq!(c.conn.active_streams(), 1, "stream 3 goes on");
        let a = c.send(&c.headers(3, &[("x-t", "1")], true));
        assert_eq!(a.rst(), [(3, Reason::STREAM_CLOSED.0)]);
    }

    #[test]
    fn even_and_idle_streams_are_never_open() {
        let mut c = Client::new(CONFIG);
        c.send(&c.get(5));
        let rst = Reason::CANCEL.0.to_be_bytes();
        assert_eq!(
            c.send(&raw(kind::RST_STREAM, 0, 2, &rst)).fatal,
            Some(Reason::PROTOCOL_ERROR)
        );
        let mut c = Client::new(CONFIG);
        c.send(&c.get(5));
        let a = c.send(&raw(kind::WINDOW_UPDATE, 0, 4, &1u32.to_be_bytes()));
        assert_eq!(a.fatal, Some(Reason::PROTOCOL_ERROR));
        // A malformed PRIORITY for an idle stream is ignored (the scheme is deprecated).
        let mut c = Client::new(CONFIG);
        let a = c.send(&raw(kind::PRIORITY, 0, 9, &[0; 4]));
        assert_eq!((a.fatal, a.frames.len()), (None, 0));
    }

    #[test]
    fn a_stream_opened_before_the_ack_gets_weirs_smaller_window_after_it() {
        let config = Config {
            initial_stream_window: 1000,
            ..CONFIG
        };
        let mut c = Client {
            conn: Connection::new(config),
            encoder: Encoder::new(),
        };
        let mut hello = PREFACE.to_vec();
        hello.extend(raw(kind::SETTINGS, 0, 0, &[]));
        c.send(&hello);
        let post = post(None);
        c.send(&c.headers(1, &post, false));
        // Before the acknowledgement the default 65,535 holds: 2,000 bytes are fine.
        assert_eq!(c.send(&raw(kind::DATA, 0, 1, &[0; 2000])).rst(), []);
        c.send(&raw(kind::SETTINGS, flag::ACK, 0, &[]));
        // Now 1,000 applies: the window is far below zero and the next byte is over it.
        let a = c.send(&raw(kind::DATA, 0, 1, &[0; 1]));
        assert_eq!(a.rst(), [(1, Reason::FLOW_CONTROL_ERROR.0)]);
    }
}
