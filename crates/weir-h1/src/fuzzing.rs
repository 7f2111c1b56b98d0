//! The body of the `h1_engine` fuzz target (feature `fuzzing`), replayed over its
//! committed corpus by an ordinary test so that stable CI runs it too.
//!
//! It is differential: the input is a byte stream of pipelined requests, read by weir's
//! codec the way the proxy reads it (head, body by its framing, next head) and by a small
//! reference written from RFC 9112 without `httparse` ([`reference`]). The two must agree
//! on every head weir accepts: its length, its framing, where its body ends. weir may be
//! stricter than the reference (it then refuses and the stream stops), never laxer:
//! it never accepts a head the reference calls ambiguous or malformed, never finds a
//! boundary the reference does not, and never looks past its limits.

mod reference;

use crate::MAX_HEAD_BYTES;
use crate::{ChunkedDecoder, Decoded, Framing, Method, Parsed, RequestHead, ResponseHead};
use reference::{Body, Head};

/// Reads `data` as a stream of requests with weir's codec and the reference, asserting
/// that they agree (see the module docs). Chunked bodies are fed to the decoder in pieces
/// of 1 to 13 bytes, picked by the input's length.
pub fn h1_engine(data: &[u8]) {
    let split = 1 + data.len() % 13;
    let mut head = RequestHead::default();
    let mut pos = 0;
    // Every round consumes at least one byte (a head is never empty).
    while pos < data.len() {
        let rest = &data[pos..];
        let verdict = head.parse(rest);
        let theirs = reference::head(rest);
        match verdict {
            Err(_refused) => return,
            Ok(Parsed::Partial) => {
                assert!(
                    !matches!(theirs, Head::Ok { .. } | Head::Ambiguous | Head::TooLarge),
                    "weir waits for more but the reference read a whole head: {theirs:?}"
                );
                return;
            }
            Ok(Parsed::Complete) => {}
        }
        assert!(head.len <= MAX_HEAD_BYTES, "head of {} bytes", head.len);
        let Head::Ok { len, framing } = theirs else {
            panic!("weir accepted a head the reference calls {theirs:?}");
        };
        assert_eq!(head.len, len, "head lengths differ");
        let ours = match head.framing {
            Framing::None => reference::Framing::None,
            Framing::Length(n) => reference::Framing::Length(n),
            Framing::Chunked => reference::Framing::Chunked,
            Framing::Close => panic!("a request framed by close"),
        };
        assert_eq!(ours, framing, "framings differ");
        assert_eq!(
            head.parse(&rest[..len - 1]),
            Ok(Parsed::Partial),
            "the head minus its last byte"
        );
        let body = &rest[len..];
        let body_len = match head.framing {
            Framing::None | Framing::Close => 0,
            Framing::Length(n) => match usize::try_from(n) {
                Ok(n) if n <= body.len() => n,
                _ => return,
            },
            Framing::Chunked => match chunked(body, split, reference::chunked(body)) {
                Some(end) => end,
                None => return,
            },
        };
        pos += len + body_len;
    }
    // The response parser on the same bytes: no panic, spans inside the input.
    let mut response = ResponseHead::default();
    if let Ok(Parsed::Complete) = response.parse(data, MAX_HEAD_BYTES, Method::Get) {
        assert!(response.len <= data.len());
        assert!(response
            .headers
            .iter()
            .all(|h| h.value.end as usize <= data.len()));
    }
}

/// Decodes a chunked body in pieces of `split` bytes; the end offset if it ended, checked
/// against the reference's reading of the same bytes.
fn chunked(body: &[u8], split: usize, theirs: Body) -> Option<usize> {
    let mut dec = ChunkedDecoder::default();
    let mut data = Vec::new();
    let mut pos = 0;
    let mut fed = 0;
    // Each call consumes a byte or returns NeedMore, when more is fed.
    for _ in 0..=2 * body.len() + 2 {
        fed = (fed + split).min(body.len()).max(pos);
        let input = &body[pos..fed];
        let Ok((n, what)) = dec.decode(input) else {
            // Stricter than the reference is allowed: the connection is closed.
            return None;
        };
        assert!(n <= input.len());
        pos += n;
        match what {
            Decoded::Data { start, len } => {
                assert!(start + len <= n);
                data.extend_from_slice(&input[start..start + len]);
            }
            Decoded::Trailer { start, len } => assert!(start + len <= n),
            Decoded::NeedMore if fed == body.len() => {
                assert!(
                    !matches!(theirs, Body::End { .. }),
                    "weir waits for more body but the reference ended it: {theirs:?}"
                );
                return None;
            }
            Decoded::NeedMore => {}
            Decoded::End => {
                assert!(dec.is_done());
                assert_eq!(
                    theirs,
                    Body::End { end: pos, data },
                    "chunked body boundaries or data differ"
                );
                return Some(pos);
            }
        }
    }
    panic!("the chunked decoder made no progress");
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    #[test]
    fn h1_engine_corpus_replays() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/h1_engine");
        let mut files = 0;
        for entry in std::fs::read_dir(&dir).expect("the corpus directory") {
            let path = entry.expect("a corpus entry").path();
            let bytes = std::fs::read(&path).expect("a corpus file");
            super::h1_engine(&bytes);
            files += 1;
        }
        assert!(files >= 25, "only {files} corpus files in {dir:?}");
    }

    #[test]
    fn smuggled_pairs_are_read_as_the_reference_reads_them() {
        // A pipelined pair, a chunked body with trailers, then an HTTP/1.0 request.
        super::h1_engine(
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\n\
              POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
              5;x=y\r\nhello\r\n0\r\nX-T: 1\r\n\r\n\
              GET /z HTTP/1.0\r\n\r\n",
        );
    }
}
