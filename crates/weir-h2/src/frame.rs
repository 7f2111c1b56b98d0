//! HTTP/2 frames (RFC 9113 §4, §6) as a server reads and writes them: the 9-byte
//! header, each type's payload checked against the RFC's MUSTs, a header block
//! assembled from HEADERS and CONTINUATION within a size limit, and the writers for the
//! frames a server sends.
//!
//! Parsing borrows the payload from the connection's read buffer; nothing is copied
//! except a header block split across CONTINUATION frames, which [`HeaderBlock`]
//! joins (HPACK needs the whole block). Every violation says whether it ends the
//! connection or only its stream ([`FrameError`]), so the connection answers with the
//! right GOAWAY or RST_STREAM.

/// What a client sends first (§3.4), before its SETTINGS.
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Bytes of a frame header.
pub const HEAD_LEN: usize = 9;
/// `SETTINGS_MAX_FRAME_SIZE`'s default and least value.
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 16_384;
/// `SETTINGS_MAX_FRAME_SIZE`'s largest value.
pub const MAX_MAX_FRAME_SIZE: u32 = (1 << 24) - 1;
/// The largest flow-control window (§6.9.1).
pub const MAX_WINDOW: u32 = (1 << 31) - 1;

/// Error codes (§7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reason(pub u32);

// The names are RFC 9113's (§7); each one's meaning is there.
#[allow(missing_docs)]
impl Reason {
    pub const NO_ERROR: Reason = Reason(0x0);
    pub const PROTOCOL_ERROR: Reason = Reason(0x1);
    pub const INTERNAL_ERROR: Reason = Reason(0x2);
    pub const FLOW_CONTROL_ERROR: Reason = Reason(0x3);
    pub const SETTINGS_TIMEOUT: Reason = Reason(0x4);
    pub const STREAM_CLOSED: Reason = Reason(0x5);
    pub const FRAME_SIZE_ERROR: Reason = Reason(0x6);
    pub const REFUSED_STREAM: Reason = Reason(0x7);
    pub const CANCEL: Reason = Reason(0x8);
    pub const COMPRESSION_ERROR: Reason = Reason(0x9);
    pub const CONNECT_ERROR: Reason = Reason(0xa);
    pub const ENHANCE_YOUR_CALM: Reason = Reason(0xb);
    pub const INADEQUATE_SECURITY: Reason = Reason(0xc);
    pub const HTTP_1_1_REQUIRED: Reason = Reason(0xd);
}

/// A frame that breaks the protocol, and what it costs the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// GOAWAY with this code, then close (§5.4.1).
    Connection(Reason),
    /// RST_STREAM of this stream with this code; the connection goes on (§5.4.2).
    Stream(u32, Reason),
}

/// Frame types (§6; §5.5 says to ignore the others), by the RFC's names.
#[allow(missing_docs)]
pub mod kind {
    pub const DATA: u8 = 0x0;
    pub const HEADERS: u8 = 0x1;
    pub const PRIORITY: u8 = 0x2;
    pub const RST_STREAM: u8 = 0x3;
    pub const SETTINGS: u8 = 0x4;
    pub const PUSH_PROMISE: u8 = 0x5;
    pub const PING: u8 = 0x6;
    pub const GOAWAY: u8 = 0x7;
    pub const WINDOW_UPDATE: u8 = 0x8;
    pub const CONTINUATION: u8 = 0x9;
}

/// Frame flags, by the RFC's names (`ACK` and `END_STREAM` share a bit on different
/// types).
#[allow(missing_docs)]
pub mod flag {
    pub const END_STREAM: u8 = 0x1;
    pub const ACK: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;
    pub const PADDED: u8 = 0x8;
    pub const PRIORITY: u8 = 0x20;
}

/// A frame header (§4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Payload length.
    pub len: u32,
    /// One of [`kind`], or a type to ignore.
    pub kind: u8,
    /// Bits of [`flag`].
    pub flags: u8,
    /// The stream, its reserved bit cleared (§4.1 says to ignore it).
    pub stream: u32,
}

impl Head {
    /// Reads a header from its 9 bytes.
    pub fn parse(b: &[u8; HEAD_LEN]) -> Head {
        Head {
            len: u32::from_be_bytes([0, b[0], b[1], b[2]]),
            kind: b[3],
            flags: b[4],
            stream: u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & MAX_WINDOW,
        }
    }

    /// Appends the header's 9 bytes (`len` below 2^24, `stream` below 2^31).
    pub fn write(&self, dst: &mut Vec<u8>) {
        let len = self.len.to_be_bytes();
        dst.extend_from_slice(&[len[1], len[2], len[3], self.kind, self.flags]);
        dst.extend_from_slice(&(self.stream & MAX_WINDOW).to_be_bytes());
    }

    fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// A parsed frame; slices borrow the payload. Variants are the frame types (§6), with
/// their fields checked and decoded; `stream` is the frame's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Frame<'a> {
    Data {
        stream: u32,
        /// The data, padding removed.
        data: &'a [u8],
        end_stream: bool,
        /// What the frame counts against the windows: its whole payload, padding
        /// included (§6.9).
        flow_len: u32,
    },
    Headers {
        stream: u32,
        /// The first fragment of the header block, padding and priority removed.
        fragment: &'a [u8],
        end_stream: bool,
        end_headers: bool,
    },
    /// PRIORITY, or HEADERS' priority fields: RFC 9113 deprecates the scheme, and weir
    /// (as HAProxy) only checks them.
    Priority {
        stream: u32,
    },
    RstStream {
        stream: u32,
        reason: Reason,
    },
    Settings(Settings<'a>),
    Ping {
        ack: bool,
        data: [u8; 8],
    },
    GoAway {
        last_stream: u32,
        reason: Reason,
    },
    WindowUpdate {
        stream: u32,
        increment: u32,
    },
    Continuation {
        stream: u32,
        fragment: &'a [u8],
        end_headers: bool,
    },
    /// A type this version does not know: ignored (§5.5).
    Unknown,
}

/// A SETTINGS frame (§6.5): its acknowledgement, or its parameters (checked; read them
/// with [`Settings::params`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings<'a> {
    /// An acknowledgement (no parameters).
    pub ack: bool,
    payload: &'a [u8],
}

/// Setting identifiers (§6.5.2), by the RFC's names.
#[allow(missing_docs)]
pub mod setting {
    pub const HEADER_TABLE_SIZE: u16 = 0x1;
    pub const ENABLE_PUSH: u16 = 0x2;
    pub const MAX_CONCURRENT_STREAMS: u16 = 0x3;
    pub const INITIAL_WINDOW_SIZE: u16 = 0x4;
    pub const MAX_FRAME_SIZE: u16 = 0x5;
    pub const MAX_HEADER_LIST_SIZE: u16 = 0x6;
    /// RFC 8441's extended CONNECT.
    pub const ENABLE_CONNECT_PROTOCOL: u16 = 0x8;
}

impl<'a> Settings<'a> {
    /// The (identifier, value) pairs in order; unknown identifiers included (the
    /// caller ignores them, §6.5.2).
    pub fn params(&self) -> impl Iterator<Item = (u16, u32)> + 'a {
        self.payload.chunks_exact(6).map(|p| {
            (
                u16::from_be_bytes([p[0], p[1]]),
                u32::from_be_bytes([p[2], p[3], p[4], p[5]]),
            )
        })
    }
}

/// Checks one frame's payload against its header (§6). `max_frame_size` is weir's own
/// `SETTINGS_MAX_FRAME_SIZE`. A server's view: PUSH_PROMISE from a client is an error.
pub fn parse<'a>(
    head: Head,
    payload: &'a [u8],
    max_frame_size: u32,
) -> Result<Frame<'a>, FrameError> {
    use FrameError::{Connection, Stream};
    let conn = |r| Err(Connection(r));
    if head.len > max_frame_size || payload.len() != head.len as usize {
        return conn(Reason::FRAME_SIZE_ERROR);
    }
    let stream = head.stream;
    match head.kind {
        kind::DATA => {
            if stream == 0 {
                return conn(Reason::PROTOCOL_ERROR);
            }
            let data = unpad(head, payload)?;
            Ok(Frame::Data {
                stream,
                data,
                end_stream: head.has(flag::END_STREAM),
                flow_len: head.len,
            })
        }
        kind::HEADERS => {
            if stream == 0 {
                return conn(Reason::PROTOCOL_ERROR);
            }
            let mut fragment = unpad(head, payload)?;
            if head.has(flag::PRIORITY) {
                let Some((priority, rest)) = fragment.split_first_chunk::<5>() else {
                    return conn(Reason::FRAME_SIZE_ERROR);
                };
                // §5.3.1: a stream cannot depend on itself. The fragment is not
                // returned, so the block cannot be decoded and the HPACK tables would
                // part: a connection that receives this ends (`conn` does).
                if depends_on(priority) == stream {
                    return Err(Stream(stream, Reason::PROTOCOL_ERROR));
                }
                fragment = rest;
            }
            Ok(Frame::Headers {
                stream,
                fragment,
                end_stream: head.has(flag::END_STREAM),
                end_headers: head.has(flag::END_HEADERS),
            })
        }
        kind::PRIORITY => {
            if stream == 0 {
                return conn(Reason::PROTOCOL_ERROR);
            }
            let Ok(priority) = <&[u8; 5]>::try_from(payload) else {
                return Err(Stream(stream, Reason::FRAME_SIZE_ERROR));
            };
            if depends_on(priority) == stream {
                return Err(Stream(stream, Reason::PROTOCOL_ERROR));
            }
            Ok(Frame::Priority { stream })
        }
        kind::RST_STREAM => {
            if stream == 0 {
                return conn(Reason::PROTOCOL_ERROR);
            }
            let Ok(code) = <[u8; 4]>::try_from(payload) else {
                return conn(Reason::FRAME_SIZE_ERROR);
            };
            Ok(Frame::RstStream {
                stream,
                reason: Reason(u32::from_be_bytes(code)),
            })
        }
        kind::SETTINGS => {
            if stream != 0 {
                return conn(Reason::PROTOCOL_ERROR);
            }
            let ack = head.has(flag::ACK);
            if (ack && !payload.is_empty()) || !payload.len().is_multiple_of(6) {
                return conn(Reason::FRAME_SIZE_ERROR);
            }
            let settings = Settings { ack, payload };
            for (id, value) in settings.params() {
                let bad = match id {
                    setting::ENABLE_PUSH | setting::ENABLE_CONNECT_PROTOCOL => {
                        (value > 1).then_some(Reason::PROTOCOL_ERROR)
                    }
                    setting::INITIAL_WINDOW_SIZE => {
                        (value > MAX_WINDOW).then_some(Reason::FLOW_CONTROL_ERROR)
                    }
                    setting::MAX_FRAME_SIZE => (!(DEFAULT_MAX_FRAME_SIZE..=MAX_MAX_FRAME_SIZE)
                        .contains(&value))
                    .then_some(Reason::PROTOCOL_ERROR),
                    _ => None,
                };
                if let Some(reason) = bad {
                    return conn(reason);
                }
            }
            Ok(Frame::Settings(settings))
        }
        kind::PUSH_PROMISE => conn(Reason::PROTOCOL_ERROR),
        kind::PING => {
            if stream != 0 {
                return conn(Reason::PROTOCOL_ERROR);
            }
            let Ok(data) = <[u8; 8]>::try_from(payload) else {
                return conn(Reason::FRAME_SIZE_ERROR);
            };
            Ok(Frame::Ping {
                ack: head.has(flag::ACK),
                data,
            })
        }
        kind::GOAWAY => {
            if stream != 0 {
                return conn(Reason::PROTOCOL_ERROR);
            }
            let Some((fixed, _debug)) = payload.split_first_chunk::<8>() else {
                return conn(Reason::FRAME_SIZE_ERROR);
            };
            let last = u32::from_be_bytes([fixed[0], fixed[1], fixed[2], fixed[3]]);
            let code = u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
            Ok(Frame::GoAway {
                last_stream: last & MAX_WINDOW,
                reason: Reason(code),
            })
        }
        kind::WINDOW_UPDATE => {
            let Ok(b) = <[u8; 4]>::try_from(payload) else {
                return conn(Reason::FRAME_SIZE_ERROR);
            };
            let increment = u32::from_be_bytes(b) & MAX_WINDOW;
            if increment == 0 {
                // §6.9: a stream error on a stream, a connection error on the connection.
                return if stream == 0 {
                    conn(Reason::PROTOCOL_ERROR)
                } else {
                    Err(Stream(stream, Reason::PROTOCOL_ERROR))
                };
            }
            Ok(Frame::WindowUpdate { stream, increment })
        }
        kind::CONTINUATION => {
            if stream == 0 {
                return conn(Reason::PROTOCOL_ERROR);
            }
            Ok(Frame::Continuation {
                stream,
                fragment: payload,
                end_headers: head.has(flag::END_HEADERS),
            })
        }
        _ => Ok(Frame::Unknown),
    }
}

/// The stream a priority field names (its exclusive bit cleared).
fn depends_on(priority: &[u8; 5]) -> u32 {
    u32::from_be_bytes([priority[0], priority[1], priority[2], priority[3]]) & MAX_WINDOW
}

/// A PADDED frame's content (§6.1, §6.2): padding as long as the payload or longer is a
/// connection error.
fn unpad(head: Head, payload: &[u8]) -> Result<&[u8], FrameError> {
    if !head.has(flag::PADDED) {
        return Ok(payload);
    }
    let Some((&pad, rest)) = payload.split_first() else {
        return Err(FrameError::Connection(Reason::FRAME_SIZE_ERROR));
    };
    let Some(len) = rest.len().checked_sub(usize::from(pad)) else {
        return Err(FrameError::Connection(Reason::PROTOCOL_ERROR));
    };
    Ok(&rest[..len])
}

/// A header block being received: the HEADERS frame's fragment and the CONTINUATIONs
/// after it, joined (§4.3, §6.10).
///
/// While a block is open the connection may receive nothing but its CONTINUATIONs
/// ([`HeaderBlock::check`]), and the joined block may not pass `max_block` bytes: a
/// client that sends CONTINUATIONs without end (the "CONTINUATION flood" of 2024) is cut
/// off at the limit instead of growing weir's buffer, and so is one that sends many
/// empty ones (counted against [`MAX_CONTINUATIONS`]).
#[derive(Debug, Default)]
pub struct HeaderBlock {
    bytes: Vec<u8>,
    /// The stream whose block is open, if one is.
    open: Option<OpenBlock>,
}

#[derive(Debug, Clone, Copy)]
struct OpenBlock {
    stream: u32,
    end_stream: bool,
    continuations: u32,
}

/// CONTINUATION frames one header block may take: a browser's largest cookies fit in a
/// handful at the default frame size; more is a flood.
pub const MAX_CONTINUATIONS: u32 = 64;

/// A whole header block.
#[derive(Debug, PartialEq, Eq)]
pub struct Complete<'a> {
    /// The stream the block opens.
    pub stream: u32,
    /// The HEADERS frame ended the stream (no body follows).
    pub end_stream: bool,
    /// The HPACK block, whole.
    pub block: &'a [u8],
}

impl HeaderBlock {
    /// An assembler with no block open.
    pub fn new() -> Self {
        HeaderBlock::default()
    }

    /// Whether a block is waiting for CONTINUATION frames.
    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// Call for every frame before acting on it: while a block is open, anything but a
    /// CONTINUATION of its stream is a connection error (§6.10).
    pub fn check(&self, frame: &Frame<'_>) -> Result<(), FrameError> {
        match (self.open, frame) {
            (None, Frame::Continuation { .. }) => {
                Err(FrameError::Connection(Reason::PROTOCOL_ERROR))
            }
            (None, _) => Ok(()),
            (Some(open), Frame::Continuation { stream, .. }) if *stream == open.stream => Ok(()),
            (Some(_), _) => Err(FrameError::Connection(Reason::PROTOCOL_ERROR)),
        }
    }

    /// Takes a HEADERS or CONTINUATION frame (already [`check`](Self::check)ed); the
    /// whole block once its last fragment is in. A block over `max_block` bytes is a
    /// connection error: its table updates cannot be skipped, so the stream alone cannot
    /// be refused (the 431 for a long list comes from the HPACK decoder's own limit).
    pub fn push<'s>(
        &'s mut self,
        frame: &Frame<'s>,
        max_block: usize,
    ) -> Result<Option<Complete<'s>>, FrameError> {
        let too_large = FrameError::Connection(Reason::ENHANCE_YOUR_CALM);
        let (stream, fragment, end_headers) = match *frame {
            Frame::Headers {
                stream,
                fragment,
                end_stream,
                end_headers,
            } => {
                if end_headers {
                    if fragment.len() > max_block {
                        return Err(too_large);
                    }
                    // The usual case: the whole block in one frame, read in place.
                    return Ok(Some(Complete {
                        stream,
                        end_stream,
                        block: fragment,
                    }));
                }
                self.bytes.clear();
                self.open = Some(OpenBlock {
                    stream,
                    end_stream,
                    continuations: 0,
                });
                (stream, fragment, false)
            }
            Frame::Continuation {
                stream,
                fragment,
                end_headers,
            } => (stream, fragment, end_headers),
            _ => return Ok(None),
        };
        let Some(open) = self.open.as_mut() else {
            return Err(FrameError::Connection(Reason::PROTOCOL_ERROR));
        };
        if open.stream != stream {
            return Err(FrameError::Connection(Reason::PROTOCOL_ERROR));
        }
        if matches!(frame, Frame::Continuation { .. }) {
            open.continuations += 1;
            if open.continuations > MAX_CONTINUATIONS {
                return Err(too_large);
            }
        }
        if self.bytes.len() + fragment.len() > max_block {
            return Err(too_large);
        }
        self.bytes.extend_from_slice(fragment);
        if !end_headers {
            return Ok(None);
        }
        let end_stream = open.end_stream;
        self.open = None;
        Ok(Some(Complete {
            stream,
            end_stream,
            block: &self.bytes,
        }))
    }
}

/// Appends a SETTINGS frame with `params`.
pub fn write_settings(params: &[(u16, u32)], dst: &mut Vec<u8>) {
    head(params.len() * 6, kind::SETTINGS, 0, 0, dst);
    for (id, value) in params {
        dst.extend_from_slice(&id.to_be_bytes());
        dst.extend_from_slice(&value.to_be_bytes());
    }
}

/// Appends the acknowledgement of the peer's SETTINGS.
pub fn write_settings_ack(dst: &mut Vec<u8>) {
    head(0, kind::SETTINGS, flag::ACK, 0, dst);
}

/// Appends a PING (an acknowledgement echoes the peer's data).
pub fn write_ping(ack: bool, data: [u8; 8], dst: &mut Vec<u8>) {
    head(8, kind::PING, if ack { flag::ACK } else { 0 }, 0, dst);
    dst.extend_from_slice(&data);
}

/// Appends a GOAWAY: streams above `last_stream` were not processed and may be retried.
pub fn write_goaway(last_stream: u32, reason: Reason, dst: &mut Vec<u8>) {
    head(8, kind::GOAWAY, 0, 0, dst);
    dst.extend_from_slice(&(last_stream & MAX_WINDOW).to_be_bytes());
    dst.extend_from_slice(&reason.0.to_be_bytes());
}

/// Appends an RST_STREAM.
pub fn write_rst_stream(stream: u32, reason: Reason, dst: &mut Vec<u8>) {
    head(4, kind::RST_STREAM, 0, stream, dst);
    dst.extend_from_slice(&reason.0.to_be_bytes());
}

/// Appends a WINDOW_UPDATE (`increment` 1..2^31).
pub fn write_window_update(stream: u32, increment: u32, dst: &mut Vec<u8>) {
    head(4, kind::WINDOW_UPDATE, 0, stream, dst);
    dst.extend_from_slice(&(increment & MAX_WINDOW).to_be_bytes());
}

/// Appends a DATA frame's header for `len` bytes of data that the caller writes next
/// (or sends beside it in one vectored write): `len` at most the peer's frame size.
pub fn write_data_head(stream: u32, len: usize, end_stream: bool, dst: &mut Vec<u8>) {
    let flags = if end_stream { flag::END_STREAM } else { 0 };
    head(len, kind::DATA, flags, stream, dst);
}

/// Appends a header block as HEADERS and, past the peer's `max_frame_size`,
/// CONTINUATION frames (§4.3: nothing else between them).
pub fn write_headers(
    stream: u32,
    block: &[u8],
    end_stream: bool,
    max_frame_size: u32,
    dst: &mut Vec<u8>,
) {
    let max = (max_frame_size.clamp(DEFAULT_MAX_FRAME_SIZE, MAX_MAX_FRAME_SIZE)) as usize;
    let mut chunks = block.chunks(max);
    let first = chunks.next().unwrap_or_default();
    let mut rest = chunks.peekable();
    let mut flags = if end_stream { flag::END_STREAM } else { 0 };
    if rest.peek().is_none() {
        flags |= flag::END_HEADERS;
    }
    dst.reserve(block.len() + HEAD_LEN * (1 + block.len() / max));
    head(first.len(), kind::HEADERS, flags, stream, dst);
    dst.extend_from_slice(first);
    while let Some(chunk) = rest.next() {
        let flags = if rest.peek().is_none() {
            flag::END_HEADERS
        } else {
            0
        };
        head(chunk.len(), kind::CONTINUATION, flags, stream, dst);
        dst.extend_from_slice(chunk);
    }
}

fn head(len: usize, kind: u8, flags: u8, stream: u32, dst: &mut Vec<u8>) {
    Head {
        len: len as u32,
        kind,
        flags,
        stream,
    }
    .write(dst);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses every frame of `bytes` in order.
    fn frames(bytes: &[u8]) -> Vec<Result<Frame<'_>, FrameError>> {
        let mut out = Vec::new();
        let mut rest = bytes;
        while let Some((h, tail)) = rest.split_first_chunk::<HEAD_LEN>() {
            let head = Head::parse(h);
            let (payload, tail) = tail.split_at((head.len as usize).min(tail.len()));
            out.push(parse(head, payload, DEFAULT_MAX_FRAME_SIZE));
            rest = tail;
        }
        out
    }

    fn raw(len: u32, kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        Head {
            len,
            kind,
            flags,
            stream,
        }
        .write(&mut v);
        v.extend_from_slice(payload);
        v
    }

    fn one(
        len: u32,
        kind: u8,
        flags: u8,
        stream: u32,
        payload: &[u8],
    ) -> Result<Frame<'static>, FrameError> {
        let bytes: &'static [u8] = raw(len, kind, flags, stream, payload).leak();
        frames(bytes).remove(0)
    }

    #[test]
    fn what_weir_writes_parses_back() {
        let mut dst = Vec::new();
        write_settings(
            &[
                (setting::MAX_CONCURRENT_STREAMS, 100),
                (setting::INITIAL_WINDOW_SIZE, 65_535),
            ],
            &mut dst,
        );
        write_settings_ack(&mut dst);
        write_ping(true, *b"12345678", &mut dst);
        write_goaway(7, Reason::ENHANCE_YOUR_CALM, &mut dst);
        write_rst_stream(3, Reason::CANCEL, &mut dst);
        write_window_update(0, 1 << 20, &mut dst);
        write_data_head(5, 3, true, &mut dst);
        dst.extend_from_slice(b"abc");
        let got = frames(&dst);
        let Ok(Frame::Settings(s)) = got[0] else {
            panic!("settings: {:?}", got[0]);
        };
        assert!(!s.ack);
        assert_eq!(s.params().collect::<Vec<_>>(), [(3, 100), (4, 65_535)]);
        assert!(matches!(
            got[1],
            Ok(Frame::Settings(Settings { ack: true, .. }))
        ));
        assert_eq!(
            got[2],
            Ok(Frame::Ping {
                ack: true,
                data: *b"12345678"
            })
        );
        assert_eq!(
            got[3],
            Ok(Frame::GoAway {
                last_stream: 7,
                reason: Reason::ENHANCE_YOUR_CALM
            })
        );
        assert_eq!(
            got[4],
            Ok(Frame::RstStream {
                stream: 3,
                reason: Reason::CANCEL
            })
        );
        assert_eq!(
            got[5],
            Ok(Frame::WindowUpdate {
                stream: 0,
                increment: 1 << 20
            })
        );
        assert_eq!(
            got[6],
            Ok(Frame::Data {
                stream: 5,
                data: b"abc",
                end_stream: true,
                flow_len: 3
            })
        );
    }

    #[test]
    fn a_long_header_block_goes_out_in_continuations_and_joins_again() {
        let block: Vec<u8> = (0..40_000u32).map(|i| i as u8).collect();
        let mut dst = Vec::new();
        write_headers(9, &block, true, DEFAULT_MAX_FRAME_SIZE, &mut dst);
        let parsed = frames(&dst);
        assert_eq!(parsed.len(), 3, "16,384 + 16,384 + 7,232");
        let mut assembler = HeaderBlock::new();
        let mut whole = None;
        for f in &parsed {
            let f = f.expect("valid frames");
            assembler.check(&f).expect("only its continuations");
            if let Some(done) = assembler.push(&f, 64 * 1024).expect("within the limit") {
                whole = Some((done.stream, done.end_stream, done.block.to_vec()));
            }
        }
        assert_eq!(whole, Some((9, true, block)));
        assert!(!assembler.is_open());
    }

    #[test]
    fn padding_and_priority_are_removed() {
        // DATA: pad length 2, "hi", 2 bytes of padding.
        assert_eq!(
            one(5, kind::DATA, flag::PADDED, 1, &[2, b'h', b'i', 0, 0]),
            Ok(Frame::Data {
                stream: 1,
                data: b"hi",
                end_stream: false,
                flow_len: 5
            })
        );
        // HEADERS: padded and with priority (depends on stream 0, weight 16).
        let payload = [1, 0, 0, 0, 0, 16, 0x82, 0];
        assert_eq!(
            one(
                8,
                kind::HEADERS,
                flag::PADDED | flag::PRIORITY | flag::END_HEADERS,
                3,
                &payload
            ),
            Ok(Frame::Headers {
                stream: 3,
                fragment: &[0x82],
                end_stream: false,
                end_headers: true
            })
        );
    }

    #[test]
    fn the_rfcs_musts_are_enforced() {
        use FrameError::{Connection as C, Stream as S};
        use Reason as R;
        let cases: [(Vec<u8>, FrameError); 21] = [
            (raw(1, kind::DATA, 0, 0, b"x"), C(R::PROTOCOL_ERROR)),
            (
                raw(2, kind::DATA, flag::PADDED, 1, &[2, 0]),
                C(R::PROTOCOL_ERROR),
            ),
            (
                raw(0, kind::DATA, flag::PADDED, 1, &[]),
                C(R::FRAME_SIZE_ERROR),
            ),
            (raw(1, kind::HEADERS, 0, 0, &[0x82]), C(R::PROTOCOL_ERROR)),
            (
                raw(3, kind::HEADERS, flag::PRIORITY, 1, &[0, 0, 0]),
                C(R::FRAME_SIZE_ERROR),
            ),
            (
                raw(5, kind::HEADERS, flag::PRIORITY, 1, &[0, 0, 0, 1, 16]),
                S(1, R::PROTOCOL_ERROR),
            ),
            (raw(5, kind::PRIORITY, 0, 0, &[0; 5]), C(R::PROTOCOL_ERROR)),
            (
                raw(4, kind::PRIORITY, 0, 3, &[0; 4]),
                S(3, R::FRAME_SIZE_ERROR),
            ),
            (
                raw(5, kind::PRIORITY, 0, 3, &[0, 0, 0, 3, 0]),
                S(3, R::PROTOCOL_ERROR),
            ),
            (
                raw(4, kind::RST_STREAM, 0, 0, &[0; 4]),
                C(R::PROTOCOL_ERROR),
            ),
            (
                raw(3, kind::RST_STREAM, 0, 1, &[0; 3]),
                C(R::FRAME_SIZE_ERROR),
            ),
            (raw(0, kind::SETTINGS, 0, 1, &[]), C(R::PROTOCOL_ERROR)),
            (
                raw(6, kind::SETTINGS, flag::ACK, 0, &[0, 3, 0, 0, 0, 1]),
                C(R::FRAME_SIZE_ERROR),
            ),
            (
                raw(5, kind::SETTINGS, 0, 0, &[0; 5]),
                C(R::FRAME_SIZE_ERROR),
            ),
            (
                raw(6, kind::SETTINGS, 0, 0, &[0, 2, 0, 0, 0, 2]),
                C(R::PROTOCOL_ERROR),
            ),
            (
                raw(6, kind::SETTINGS, 0, 0, &[0, 4, 0x80, 0, 0, 0]),
                C(R::FLOW_CONTROL_ERROR),
            ),
            (
                raw(6, kind::SETTINGS, 0, 0, &[0, 5, 0, 0, 0x3f, 0xff]),
                C(R::PROTOCOL_ERROR),
            ),
            (raw(8, kind::PING, 0, 1, &[0; 8]), C(R::PROTOCOL_ERROR)),
            (
                raw(4, kind::WINDOW_UPDATE, 0, 0, &[0; 4]),
                C(R::PROTOCOL_ERROR),
            ),
            (
                raw(4, kind::WINDOW_UPDATE, 0, 5, &[0x80, 0, 0, 0]),
                S(5, R::PROTOCOL_ERROR),
            ),
            (
                raw(4, kind::PUSH_PROMISE, 0, 1, &[0, 0, 0, 2]),
                C(R::PROTOCOL_ERROR),
            ),
        ];
        for (bytes, want) in cases {
            assert_eq!(frames(&bytes)[0], Err(want), "{bytes:02x?}");
        }
        // Over weir's frame size, and a type it does not know (ignored).
        let big = vec![0; 16_385];
        assert_eq!(
            one(16_385, kind::DATA, 0, 1, &big),
            Err(C(R::FRAME_SIZE_ERROR))
        );
        assert_eq!(one(2, 0xfa, 0xff, 7, b"??"), Ok(Frame::Unknown));
        assert_eq!(
            one(7, kind::GOAWAY, 0, 0, &[0; 7]),
            Err(C(R::FRAME_SIZE_ERROR))
        );
        assert_eq!(
            one(
                10,
                kind::GOAWAY,
                0,
                0,
                &[0x80, 0, 0, 9, 0, 0, 0, 1, b'h', b'i']
            ),
            Ok(Frame::GoAway {
                last_stream: 9,
                reason: R::PROTOCOL_ERROR
            })
        );
    }

    #[test]
    fn only_its_continuations_may_follow_an_open_block() {
        let mut a = HeaderBlock::new();
        let cont = |stream, end_headers| Frame::Continuation {
            stream,
            fragment: b"x",
            end_headers,
        };
        assert_eq!(
            a.check(&cont(1, true)),
            Err(FrameError::Connection(Reason::PROTOCOL_ERROR))
        );
        let headers = Frame::Headers {
            stream: 1,
            fragment: b"ab",
            end_stream: false,
            end_headers: false,
        };
        assert_eq!(a.push(&headers, 1024), Ok(None));
        assert!(a.is_open());
        let ping = Frame::Ping {
            ack: false,
            data: [0; 8],
        };
        assert_eq!(
            a.check(&ping),
            Err(FrameError::Connection(Reason::PROTOCOL_ERROR))
        );
        assert_eq!(
            a.check(&cont(3, true)),
            Err(FrameError::Connection(Reason::PROTOCOL_ERROR))
        );
        assert_eq!(a.check(&cont(1, true)), Ok(()));
        let done = a.push(&cont(1, true), 1024).expect("fits");
        assert_eq!(
            done,
            Some(Complete {
                stream: 1,
                end_stream: false,
                block: b"abx"
            })
        );
    }

    #[test]
    fn a_continuation_flood_is_cut_off() {
        let mut a = HeaderBlock::new();
        let headers = Frame::Headers {
            stream: 1,
            fragment: b"",
            end_stream: true,
            end_headers: false,
        };
        assert_eq!(a.push(&headers, 1024), Ok(None));
        let empty = Frame::Continuation {
            stream: 1,
            fragment: b"",
            end_headers: false,
        };
        for _ in 0..MAX_CONTINUATIONS {
            assert_eq!(a.push(&empty, 1024), Ok(None));
        }
        assert_eq!(
            a.push(&empty, 1024),
            Err(FrameError::Connection(Reason::ENHANCE_YOUR_CALM))
        );
        // And by size.
        let mut a = HeaderBlock::new();
        let big = [0u8; 600];
        let headers = Frame::Headers {
            stream: 1,
            fragment: &big,
            end_stream: false,
            end_headers: false,
        };
        assert_eq!(a.push(&headers, 1024), Ok(None));
        let more = Frame::Continuation {
            stream: 1,
            fragment: &big,
            end_headers: true,
        };
        assert_eq!(
            a.push(&more, 1024),
            Err(FrameError::Connection(Reason::ENHANCE_YOUR_CALM))
        );
        let whole = Frame::Headers {
            stream: 3,
            fragment: &[0; 2000],
            end_stream: false,
            end_headers: true,
        };
        assert_eq!(
            HeaderBlock::new().push(&whole, 1024),
            Err(FrameError::Connection(Reason::ENHANCE_YOUR_CALM))
        );
    }
}
