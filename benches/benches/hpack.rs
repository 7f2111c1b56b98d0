//! weir-h2 on the traffic of the `h2.sh` benchmark: HPACK for the response head of a
//! proxied static file (encoded) and an h2load request (decoded), first on a connection
//! (its fields inserted, Huffman-coded) and after (indexes into the table); and one whole
//! exchange through a connection's state (`h2_exchange`: the request's HEADERS frame
//! read, the response's HEADERS and a 612-byte DATA frame written). For scale: h2's
//! encoder, which weir's HTTP/2 server uses today, spends about 4,500 instructions per
//! such response (callgrind, `benches/compare/callgrind.sh`).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use weir_h2::conn::{Config, Connection, Event};
use weir_h2::frame;
use weir_h2::hpack::{Block, Decoder, Encoder};

/// nginx's answer for a small static file, as weir forwards it, and weir's request id.
const RESPONSE: [(&[u8], &[u8]); 7] = [
    (b"server", b"nginx/1.22.1"),
    (b"date", b"Thu, 03 Dec 2026 17:05:04 GMT"),
    (b"content-type", b"text/html"),
    (b"content-length", b"612"),
    (b"last-modified", b"Tue, 01 Dec 2026 10:00:00 GMT"),
    (b"etag", b"\"674c3a10-264\""),
    (b"accept-ranges", b"bytes"),
];

fn encode(c: &mut Criterion) {
    let mut encoder = Encoder::new();
    let mut dst = Vec::with_capacity(512);
    c.bench_function("hpack_encode_response", |b| {
        b.iter(|| {
            dst.clear();
            encoder.begin(&mut dst);
            encoder.status(200, &mut dst);
            for (name, value) in RESPONSE {
                encoder.field(name, value, false, &mut dst);
            }
            encoder.field(
                b"x-request-id",
                b"3f9c2a7d41e08b6c5d2e9f1a0b7c4d83",
                true,
                &mut dst,
            );
            black_box(dst.len())
        });
    });
}

fn decode(c: &mut Criterion) {
    // h2load's first request: :method GET, :path /, :scheme http, then :authority
    // (127.0.0.1:8080), accept (*/*) and user-agent (h2load nghttp2/1.52.0) inserted
    // with Huffman-coded values, as nghttp2 sends them.
    let first: &[u8] = &[
        0x82, 0x84, 0x86, 0x41, 0x8a, 0x08, 0x9d, 0x5c, 0x0b, 0x81, 0x70, 0xdc, 0x78, 0x0f, 0x03,
        0x53, 0x83, 0xf9, 0x63, 0xe7, 0x7a, 0x8f, 0x9c, 0x54, 0x1c, 0x72, 0x29, 0x54, 0xd3, 0xa5,
        0x35, 0x89, 0x80, 0xae, 0xd8, 0x97, 0x07,
    ];
    // The requests after: every field an index.
    let next: &[u8] = &[0x82, 0x84, 0x86, 0xc0, 0xbf, 0xbe];
    let mut block = Block::new();
    assert_eq!(
        Decoder::new(4096).decode(first, 64 * 1024, &mut block),
        Ok(()),
        "the first request decodes"
    );
    assert_eq!(block.fields().len(), 6);
    c.bench_function("hpack_decode_first_request", |b| {
        b.iter(|| {
            let mut decoder = Decoder::new(4096);
            let ok = decoder
                .decode(black_box(first), 64 * 1024, &mut block)
                .is_ok();
            black_box((ok, block.fields().len()))
        });
    });
    let mut decoder = Decoder::new(4096);
    assert!(
        decoder.decode(first, 64 * 1024, &mut block).is_ok(),
        "the first block"
    );
    c.bench_function("hpack_decode_indexed_request", |b| {
        b.iter(|| {
            let ok = decoder
                .decode(black_box(next), 64 * 1024, &mut block)
                .is_ok();
            black_box((ok, block.fields().len()))
        });
    });
}

criterion_group!(benches, encode, decode, exchange);
/// One request and its response through [`Connection`], as h2load's later requests on
/// a connection arrive (every field an index), without the socket.
fn exchange(c: &mut Criterion) {
    let config = Config {
        max_concurrent_streams: 100,
        initial_stream_window: 65_535,
        initial_connection_window: 1 << 20,
        max_header_list_size: 64 * 1024,
        max_pending_reset_streams: 100,
        max_stream_errors: 100,
    };
    let mut conn = Connection::new(config);
    let mut hello = frame::PREFACE.to_vec();
    frame::write_settings(&[], &mut hello);
    frame::write_settings(
        &[(frame::setting::INITIAL_WINDOW_SIZE, frame::MAX_WINDOW)],
        &mut hello,
    );
    frame::write_window_update(0, frame::MAX_WINDOW - 65_535, &mut hello);
    let mut rest = &hello[..];
    while let Ok((n, _)) = conn.receive(rest) {
        if n == 0 {
            break;
        }
        rest = &rest[n..];
    }
    conn.output().clear();
    let body = [b'w'; 612];
    let mut stream = 1u32;
    let mut request = Vec::with_capacity(64);
    c.bench_function("h2_exchange", |b| {
        b.iter(|| {
            request.clear();
            // :method GET, :path /, :scheme http, then the static name :authority.
            let block = [
                0x82, 0x84, 0x86, 0x01, 0x06, b'a', b'.', b't', b'e', b's', b't',
            ];
            frame::write_headers(stream, &block, true, 16_384, &mut request);
            let Ok((_, Some(Event::Request { .. }))) = conn.receive(&request) else {
                panic!("the request is read");
            };
            conn.send_response(
                stream,
                200,
                RESPONSE.iter().map(|(n, v)| (*n, *v, false)),
                false,
            );
            let sent = conn.send_data(stream, &body, true);
            stream += 2;
            black_box(sent);
            // The window the client would give back, and the frames it would read.
            if stream % 4096 == 1 {
                let mut more = Vec::new();
                frame::write_window_update(0, 2048 * 612, &mut more);
                let _ = conn.receive(&more);
            }
            conn.output().clear();
        });
    });
}

criterion_main!(benches);
