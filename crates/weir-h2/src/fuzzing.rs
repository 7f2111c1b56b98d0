//! The bodies of the `hpack` and `h2_frames` fuzz targets (feature `fuzzing`), replayed
//! over their committed corpora by ordinary tests so that stable CI runs them too.

use crate::conn::{Config, Connection, Event};
use crate::frame::{self, Frame, FrameError, Head, HeaderBlock, HEAD_LEN};
use crate::hpack::{huffman, Block, DecodeError, Decoder, Encoder};

/// The header list limit the target decodes with: small enough that the corpus reaches
/// it, as a listener's `http2.max_header_list_size` would be reached.
const LIST_LIMIT: usize = 4096;

/// Splits `data` into header blocks (each one length byte, then that many bytes) and
/// decodes them in order on one connection's decoder, checking that:
/// - nothing panics and no decoded list is over the limit;
/// - what decodes re-encodes (weir's encoder) and decodes again to the same fields,
///   never-indexed marks included;
/// - every decoded value survives a Huffman round trip;
/// - after a connection error nothing more is decoded (the tables no longer agree).
pub fn hpack(data: &[u8]) {
    let mut decoder = Decoder::new(4096);
    let mut block = Block::new();
    let mut again = Block::new();
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let len = usize::from(len).min(tail.len());
        let (src, tail) = tail.split_at(len);
        rest = tail;
        match decoder.decode(src, LIST_LIMIT, &mut block) {
            Ok(()) => check(&block, &mut again),
            Err(DecodeError::TooLarge) => assert!(block.fields().is_empty()),
            Err(_) => return,
        }
    }
}

fn check(block: &Block, again: &mut Block) {
    let size: usize = block.iter().map(|(n, v)| n.len() + v.len() + 32).sum();
    assert!(size <= LIST_LIMIT, "a list over the limit was kept");
    let mut encoded = Vec::new();
    let encoder = Encoder::new();
    for field in block.fields() {
        encoder.field(
            block.name(field),
            block.value(field),
            field.never_indexed,
            &mut encoded,
        );
    }
    let decoded = Decoder::new(4096).decode(&encoded, LIST_LIMIT, again);
    assert_eq!(decoded, Ok(()), "weir's own encoding did not decode");
    assert_eq!(
        block.iter().collect::<Vec<_>>(),
        again.iter().collect::<Vec<_>>()
    );
    let marks = |b: &Block| {
        b.fields()
            .iter()
            .map(|f| f.never_indexed)
            .collect::<Vec<_>>()
    };
    assert_eq!(marks(block), marks(again));
    for (_, value) in block.iter() {
        let mut coded = Vec::new();
        huffman::encode(value, &mut coded);
        assert_eq!(coded.len(), huffman::encoded_len(value));
        let mut decoded = Vec::new();
        assert_eq!(huffman::decode(&coded, &mut decoded), Ok(()));
        assert_eq!(decoded, value);
    }
}

/// The largest header block `h2_frames` assembles (a listener's `max_header_list_size`
/// bounds it the same way).
const BLOCK_LIMIT: usize = 8192;

/// Reads `data` as a client's byte stream after the preface, as a server reads it:
/// frame headers, each frame checked ([`frame::parse`]), header blocks joined across
/// CONTINUATION and decoded on one connection's HPACK table, until the first
/// connection error. Checks that:
/// - nothing panics, and no joined block is over the limit;
/// - a frame weir can write (SETTINGS, PING, GOAWAY, RST_STREAM, WINDOW_UPDATE, and
///   DATA and HEADERS without padding or priority) writes back to bytes that parse to
///   the same frame;
/// - a stream error names the frame's own stream;
/// - a request head weir accepts has nothing an HTTP/1 backend could misread.
pub fn frames(data: &[u8]) {
    connection(data);
    let mut blocks = HeaderBlock::new();
    let mut decoder = Decoder::new(4096);
    let mut fields = Block::new();
    let mut rest = data;
    while let Some((h, tail)) = rest.split_first_chunk::<HEAD_LEN>() {
        let head = Head::parse(h);
        let Some(payload) = tail.get(..head.len as usize) else {
            return;
        };
        rest = &tail[payload.len()..];
        let parsed = match frame::parse(head, payload, frame::DEFAULT_MAX_FRAME_SIZE) {
            Ok(f) => f,
            Err(FrameError::Stream(stream, _)) => {
                assert_eq!(stream, head.stream, "a stream error names its stream");
                continue;
            }
            Err(FrameError::Connection(_)) => return,
        };
        rewrites_alike(&parsed);
        if blocks.check(&parsed).is_err() {
            return;
        }
        match blocks.push(&parsed, BLOCK_LIMIT) {
            Ok(Some(done)) => {
                assert!(done.block.len() <= BLOCK_LIMIT);
                match decoder.decode(done.block, LIST_LIMIT, &mut fields) {
                    Ok(()) => request_is_checked(&fields),
                    Err(DecodeError::TooLarge) => {}
                    Err(_) => return,
                }
            }
            Ok(None) => {}
            Err(_) => return,
        }
    }
}

/// The same bytes through a whole [`Connection`] after the preface and an empty
/// SETTINGS, answering every request at once with `200` and releasing every body byte.
/// Checks that no more streams are open than allowed, and that what weir writes stays
/// within a small multiple of what the client sent (no amplification: a PING or
/// SETTINGS costs at most its own size, a request at most a short answer).
fn connection(data: &[u8]) {
    let config = Config {
        max_concurrent_streams: 8,
        initial_stream_window: 65_535,
        initial_connection_window: 1 << 20,
        max_header_list_size: LIST_LIMIT as u32,
        max_pending_reset_streams: 8,
        max_stream_errors: 8,
    };
    let mut conn = Connection::new(config);
    let mut written = std::mem::take(conn.output()).len();
    let mut input = frame::PREFACE.to_vec();
    frame::write_settings(&[], &mut input);
    input.extend_from_slice(data);
    let mut rest = &input[..];
    // Bounded: each step uses at least one byte or stops.
    while !rest.is_empty() {
        let (n, event) = match conn.receive(rest) {
            Ok((0, _)) | Err(_) => break,
            Ok(step) => step,
        };
        rest = &rest[n..];
        match event {
            Some(Event::Request { stream, .. }) | Some(Event::HeadersTooLarge { stream }) => {
                conn.send_response(stream, 200, [], true);
            }
            Some(Event::Data { stream, data, .. }) => conn.release(stream, data.len() as u32),
            _ => {}
        }
        assert!(conn.active_streams() <= 8, "more streams open than allowed");
        written += std::mem::take(conn.output()).len();
    }
    assert!(
        written <= 1024 + 4 * input.len(),
        "{written} bytes out for {}",
        input.len()
    );
}

/// A request [`crate::request::request`] accepts has what forwarding relies on: a
/// method, a path or CONNECT's authority, and no field an HTTP/1 backend could read
/// differently (CR, LF or NUL in a value, a connection-specific name).
fn request_is_checked(block: &Block) {
    let Ok(head) = crate::request::request(block) else {
        return;
    };
    assert!(!block.value(&head.method).is_empty());
    assert!(head.path.is_some() || head.authority.is_some());
    // The request line and Host the backend gets: no space, no control byte.
    for f in [Some(head.method), head.path, head.authority, head.scheme]
        .into_iter()
        .flatten()
    {
        assert!(block.value(&f).iter().all(|b| (0x21..=0x7e).contains(b)));
    }
    for (name, value) in block.iter() {
        assert!(!value.iter().any(|b| matches!(b, 0 | b'\r' | b'\n')));
        assert!(!matches!(
            name,
            b"connection" | b"transfer-encoding" | b"upgrade"
        ));
    }
}

/// A frame weir can write, written and parsed again, is the same frame.
fn rewrites_alike(parsed: &Frame<'_>) {
    let mut out = Vec::new();
    let expect = match *parsed {
        Frame::Settings(s) if s.ack => {
            frame::write_settings_ack(&mut out);
            *parsed
        }
        Frame::Settings(s) => {
            frame::write_settings(&s.params().collect::<Vec<_>>(), &mut out);
            *parsed
        }
        Frame::Ping { ack, data } => {
            frame::write_ping(ack, data, &mut out);
            *parsed
        }
        Frame::GoAway {
            last_stream,
            reason,
        } => {
            frame::write_goaway(last_stream, reason, &mut out);
            *parsed
        }
        Frame::RstStream { stream, reason } => {
            frame::write_rst_stream(stream, reason, &mut out);
            *parsed
        }
        Frame::WindowUpdate { stream, increment } => {
            frame::write_window_update(stream, increment, &mut out);
            *parsed
        }
        Frame::Data {
            stream,
            data,
            end_stream,
            ..
        } => {
            frame::write_data_head(stream, data.len(), end_stream, &mut out);
            out.extend_from_slice(data);
            Frame::Data {
                stream,
                data,
                end_stream,
                flow_len: data.len() as u32,
            }
        }
        Frame::Headers {
            stream,
            fragment,
            end_stream,
            end_headers: true,
        } => {
            frame::write_headers(
                stream,
                fragment,
                end_stream,
                frame::DEFAULT_MAX_FRAME_SIZE,
                &mut out,
            );
            *parsed
        }
        _ => return,
    };
    let written = out.split_first_chunk::<HEAD_LEN>();
    assert!(written.is_some(), "a frame shorter than its header");
    if let Some((h, payload)) = written {
        let again = frame::parse(Head::parse(h), payload, frame::DEFAULT_MAX_FRAME_SIZE);
        assert_eq!(again, Ok(expect));
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    #[test]
    fn hpack_corpus_replays() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/hpack");
        let mut files = 0;
        for entry in std::fs::read_dir(&dir).expect("the corpus directory") {
            let path = entry.expect("a corpus entry").path();
            let bytes = std::fs::read(&path).expect("a corpus file");
            super::hpack(&bytes);
            files += 1;
        }
        assert!(files >= 10, "only {files} corpus files in {dir:?}");
    }

    #[test]
    fn h2_frames_corpus_replays() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/h2_frames");
        let mut files = 0;
        for entry in std::fs::read_dir(&dir).expect("the corpus directory") {
            let path = entry.expect("a corpus entry").path();
            let bytes = std::fs::read(&path).expect("a corpus file");
            super::frames(&bytes);
            files += 1;
        }
        assert!(files >= 10, "only {files} corpus files in {dir:?}");
    }
}
