//! The chunked decoder and encoder: strict framing, bounded state, and the same result
//! however the body is split into reads.

use proptest::prelude::*;
use weir_h1::{chunk_header, ChunkError, ChunkedDecoder, Decoded, LAST_CHUNK};

/// What a whole body decodes to: data, trailer bytes, and the bytes consumed at the end
/// (or the error). `step` is the largest piece fed at a time.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    data: Vec<u8>,
    trailer: Vec<u8>,
    end: Result<Option<usize>, ChunkError>,
}

fn decode(body: &[u8], step: usize) -> Outcome {
    let mut dec = ChunkedDecoder::default();
    let mut out = Outcome {
        data: Vec::new(),
        trailer: Vec::new(),
        end: Ok(None),
    };
    let mut fed = 0;
    let mut pos = 0;
    let mut guard = 0;
    while pos <= body.len() {
        guard += 1;
        assert!(guard < 10 * body.len() + 10, "no progress");
        fed = (fed.max(pos) + step).min(body.len()).max(fed);
        let input = &body[pos..fed];
        match dec.decode(input) {
            Err(e) => {
                out.end = Err(e);
                return out;
            }
            Ok((n, what)) => {
                assert!(n <= input.len());
                match what {
                    Decoded::Data { start, len } => {
                        assert!(start + len <= n);
                        out.data.extend_from_slice(&input[start..start + len]);
                    }
                    Decoded::Trailer { start, len } => {
                        assert!(start + len <= n);
                        out.trailer.extend_from_slice(&input[start..start + len]);
                    }
                    Decoded::End => {
                        assert!(dec.is_done());
                        out.end = Ok(Some(pos + n));
                        return out;
                    }
                    Decoded::NeedMore => {
                        assert_eq!(n, input.len());
                        if fed == body.len() {
                            return out;
                        }
                    }
                }
                pos += n;
            }
        }
    }
    out
}

fn ok(body: &[u8]) -> Outcome {
    let out = decode(body, usize::MAX / 2);
    assert!(matches!(out.end, Ok(Some(_))), "{out:?}");
    out
}

fn err(body: &[u8]) -> &'static str {
    match decode(body, usize::MAX / 2).end {
        Err(ChunkError(why)) => why,
        other => panic!("{other:?} for {}", String::from_utf8_lossy(body)),
    }
}

#[test]
fn data_and_end() {
    let body = b"5\r\nhello\r\nA;name=value\r\n0123456789\r\n0\r\n\r\nGET";
    let out = ok(body);
    assert_eq!(out.data, b"hello0123456789");
    assert_eq!(out.end, Ok(Some(body.len() - 3)));
    assert!(out.trailer.is_empty());
    // Upper and lower case hex, whitespace before an extension, leading zeros.
    let out = ok(b"000a \t;x\r\n0123456789\r\n0;last\r\n\r\n");
    assert_eq!(out.data, b"0123456789");
}

#[test]
fn trailers_are_passed_on_without_the_blank_line() {
    let out = ok(b"1\r\nx\r\n0\r\nGrpc-Status: 0\r\nX-A: b\tc\r\n\r\n");
    assert_eq!(out.trailer, b"Grpc-Status: 0\r\nX-A: b\tc\r\n");
    assert_eq!(out.data, b"x");
}

#[test]
fn strict_framing() {
    assert_eq!(
        err(b"5\nhello\r\n0\r\n\r\n"),
        "chunked body line not ended by CRLF"
    );
    assert_eq!(
        err(b"5\r\nhello\n0\r\n\r\n"),
        "missing CRLF after chunk data"
    );
    assert_eq!(err(b"5\r\nhelloX\r\n"), "missing CRLF after chunk data");
    assert_eq!(err(b"0\r\n\n"), "chunked body line not ended by CRLF");
    assert_eq!(err(b"\r\n"), "invalid chunk size");
    assert_eq!(err(b";ext\r\n"), "invalid chunk size");
    assert_eq!(err(b"-1\r\n"), "invalid chunk size");
    assert_eq!(err(b"+1\r\n"), "invalid chunk size");
    assert_eq!(err(b"0x5\r\n"), "invalid chunk size");
    assert_eq!(err(b"5 5\r\n"), "invalid chunk size");
    assert_eq!(err(b"5;a\x00\r\n"), "invalid chunk size");
    assert_eq!(err(b"5;a\nb\r\n"), "chunked body line not ended by CRLF");
    // 15 hex digits is the most (below 2^60); 16 overflow-prone ones are refused.
    let out = decode(b"fffffffffffffff\r\nabc", 1000);
    assert_eq!((out.data, out.end), (b"abc".to_vec(), Ok(None)));
    assert_eq!(err(b"1000000000000000\r\n"), "chunk size too large");
    assert_eq!(err(b"ffffffffffffffffffffffff\r\n"), "chunk size too large");
    let mut long = b"1;".to_vec();
    long.resize(5000, b'x');
    assert_eq!(err(&long), "chunk size line too long");
}

#[test]
fn trailer_rules() {
    let bad = "invalid byte in trailer section";
    assert_eq!(err(b"0\r\nX: a\x00\r\n\r\n"), bad);
    assert_eq!(err(b"0\r\nX: a\x01\r\n\r\n"), bad);
    assert_eq!(err(b"0\r\n folded\r\n\r\n"), bad);
    assert_eq!(
        err(b"0\r\nX: a\nY: b\r\n\r\n"),
        "chunked body line not ended by CRLF"
    );
    assert_eq!(
        err(b"0\r\nX: a\rY\r\n\r\n"),
        "chunked body line not ended by CRLF"
    );
    let mut big = b"0\r\n".to_vec();
    for _ in 0..2000 {
        big.extend_from_slice(b"X-Long: abc\r\n");
    }
    big.extend_from_slice(b"\r\n");
    assert_eq!(err(&big), "trailer section too large");
}

#[test]
fn a_failed_decoder_stays_failed() {
    let mut dec = ChunkedDecoder::default();
    assert!(dec.decode(b"z").is_err());
    assert!(dec.decode(b"0\r\n\r\n").is_err());
    assert!(!dec.is_done());
}

#[test]
fn an_ended_decoder_consumes_nothing_more() {
    let mut dec = ChunkedDecoder::default();
    assert_eq!(dec.decode(b"0\r\n\r\n"), Ok((5, Decoded::End)));
    assert_eq!(dec.decode(b"GET"), Ok((0, Decoded::End)));
}

#[test]
fn encoder_writes_lower_case_hex() {
    let mut out = Vec::with_capacity(32);
    for (len, want) in [
        (0, "0\r\n"),
        (5, "5\r\n"),
        (255, "ff\r\n"),
        (0x1000, "1000\r\n"),
    ] {
        out.clear();
        chunk_header(len, &mut out);
        assert_eq!(out, want.as_bytes());
    }
    out.clear();
    chunk_header(usize::MAX, &mut out);
    assert_eq!(out.len(), usize::BITS as usize / 4 + 2);
    assert_eq!(LAST_CHUNK, b"0\r\n\r\n");
}

/// A chunked body built from data pieces, extensions and trailers.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let chunk = (proptest::collection::vec(any::<u8>(), 1..40), any::<bool>());
    let trailer = proptest::collection::vec("[A-Za-z-]{1,8}: [ -~]{0,10}", 0..3);
    (proptest::collection::vec(chunk, 0..6), trailer).prop_map(|(chunks, trailers)| {
        let mut out = Vec::new();
        for (data, ext) in chunks {
            chunk_header(data.len(), &mut out);
            if ext {
                out.truncate(out.len() - 2);
                out.extend_from_slice(b";a=b\r\n");
            }
            out.extend_from_slice(&data);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n");
        for t in trailers {
            out.extend_from_slice(t.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    })
}

proptest! {
    #[test]
    fn byte_by_byte_equals_one_piece(body in body(), step in 1usize..8) {
        let whole = decode(&body, body.len() + 1);
        prop_assert_eq!(whole.end, Ok(Some(body.len())));
        prop_assert_eq!(&decode(&body, 1), &whole);
        prop_assert_eq!(&decode(&body, step), &whole);
    }

    #[test]
    fn any_bytes_split_anyhow_give_one_verdict(
        body in proptest::collection::vec(prop_oneof![
            Just(b'0'), Just(b'5'), Just(b'\r'), Just(b'\n'), Just(b';'), Just(b'a'), Just(b':'), any::<u8>()
        ], 0..64),
        step in 1usize..8,
    ) {
        // Pieces already passed on before an error may differ; the verdict may not.
        let whole = decode(&body, body.len() + 1);
        for split in [decode(&body, 1), decode(&body, step)] {
            prop_assert_eq!(&split.end, &whole.end);
            if whole.end.is_ok() {
                prop_assert_eq!(&split, &whole);
            }
        }
    }
}
