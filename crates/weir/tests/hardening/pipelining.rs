//! HTTP/1.1 pipelining: 1,000 requests written at once on one connection are answered in
//! order, and each reaches the backend exactly once.
//!
//! Request `i` is `GET /bytes/{i}`, whose answer is `i` bytes long, so the sequence of
//! body lengths proves the answers' order; the backend's record of paths proves what was
//! forwarded, in which order, and that nothing was sent twice.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use weir_e2e::Weir;

use crate::WEIR;

const REQUESTS: usize = 1_000;
/// Longest the whole exchange may take (it takes well under a second).
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(30);

/// Splits one response off the front of `buf`: `(status, body length)`, or `None` until
/// a whole one is there. Bodies are framed by `Content-Length` (the backend's are).
fn take_response(buf: &mut Vec<u8>) -> Option<(u16, usize)> {
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok());
    let status = status.unwrap_or_else(|| panic!("no status in {head:?}"));
    let length = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or_else(|| panic!("no Content-Length in {head:?}"));
    if buf.len() < head_end + 4 + length {
        return None;
    }
    buf.drain(..head_end + 4 + length);
    Some((status, length))
}

#[tokio::test]
async fn a_thousand_pipelined_requests_are_answered_in_order_and_forwarded_once() {
    let (weir, backend) = Weir::one_backend(WEIR, "a").await;
    let addr = weir.listener_addr("web");

    let requests: Vec<u8> = (0..REQUESTS)
        .flat_map(|i| format!("GET /bytes/{i} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes())
        .collect();
    let exchange = async {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (mut rx, mut tx) = stream.into_split();
        // Written while the answers are read, so neither side's buffers can deadlock.
        let writer = tokio::spawn(async move { tx.write_all(&requests).await.map(|()| tx) });
        let (mut buf, mut answers) = (Vec::new(), Vec::with_capacity(REQUESTS));
        let mut chunk = vec![0u8; 64 * 1024];
        while answers.len() < REQUESTS {
            while let Some(answer) = take_response(&mut buf) {
                answers.push(answer);
            }
            if answers.len() == REQUESTS {
                break;
            }
            let n = rx.read(&mut chunk).await.expect("read answers");
            assert!(n > 0, "weir closed after {} answers", answers.len());
            buf.extend_from_slice(&chunk[..n]);
        }
        let _tx = writer.await.expect("writer task").expect("write requests");
        answers
    };
    let answers = tokio::time::timeout(EXCHANGE_TIMEOUT, exchange)
        .await
        .expect("1,000 pipelined answers in time");

    let expected: Vec<(u16, usize)> = (0..REQUESTS).map(|i| (200, i)).collect();
    let first_wrong = answers.iter().zip(&expected).position(|(a, e)| a != e);
    assert!(
        answers == expected,
        "answer {first_wrong:?} is not (200, its index as length): {:?}",
        first_wrong.map(|i| answers[i])
    );
    let paths: Vec<String> = backend.requests().into_iter().map(|r| r.path).collect();
    let expected: Vec<String> = (0..REQUESTS).map(|i| format!("/bytes/{i}")).collect();
    assert!(
        paths == expected,
        "the backend saw {} requests, not each of the 1,000 once in order",
        paths.len()
    );
}
