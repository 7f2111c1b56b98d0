//! Issue 8, defect 6, over an HTTP/2 backend connection (`upstream_protocol: h2`): the
//! one connection every request to the backend shares must neither buffer much per
//! stalled client nor let a few stalled clients use up its flow-control window, which
//! would stall every other client's responses from that backend.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use weir_e2e::client::H1Client;
use weir_e2e::config::{backends, one_pool};
use weir_e2e::Weir;

const WEIR: &str = env!("CARGO_BIN_EXE_weir");
const CLIENTS: usize = 20;
const BODY: usize = 50 * 1024 * 1024;
const PER_CLIENT_BOUND: u64 = 256 * 1024;

/// Counts of an h2c backend: `/big` requests and the body bytes they had accepted.
#[derive(Default)]
struct Counts {
    big: AtomicUsize,
    sent: AtomicUsize,
}

/// An h2c backend: `/big` streams 50 MB in 16 KiB chunks, anything else answers `ok`.
async fn h2_backend() -> (SocketAddr, Arc<Counts>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let counts = Arc::new(Counts::default());
    let state = Arc::clone(&counts);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let state = Arc::clone(&state);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let state = Arc::clone(&state);
                    async move { Ok::<_, hyper::Error>(answer(&req, state)) }
                });
                if let Err(e) = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await
                {
                    eprintln!("h2 backend connection: {e}");
                }
            });
        }
    });
    (addr, counts)
}

fn answer(req: &Request<Incoming>, state: Arc<Counts>) -> Response<BoxBody<Bytes, hyper::Error>> {
    if req.uri().path() != "/big" {
        return Response::new(
            Full::new(Bytes::from_static(b"ok"))
                .map_err(|e| match e {})
                .boxed(),
        );
    }
    state.big.fetch_add(1, Ordering::SeqCst);
    Response::new(
        Counting {
            left: BODY,
            chunk: Bytes::from(vec![b'x'; 16 * 1024]),
            counts: state,
        }
        .boxed(),
    )
}

/// `left` bytes in 16 KiB chunks, each counted when hyper takes it (which it does only
/// as flow control lets it send).
struct Counting {
    left: usize,
    chunk: Bytes,
    counts: Arc<Counts>,
}

impl Body for Counting {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let n = self.left.min(self.chunk.len());
        self.left -= n;
        self.counts.sent.fetch_add(n, Ordering::SeqCst);
        Poll::Ready(Some(Ok(Frame::data(self.chunk.slice(..n)))))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_readers_neither_bloat_nor_block_a_shared_h2_backend_connection() {
    let (addr, counts) = h2_backend().await;
    let extra = "    upstream_protocol: h2\n";
    let weir = Weir::start(WEIR, &one_pool("round_robin", &backends(&[addr]), extra)).await;
    let listen = weir.listener_addr("web");
    // Open the shared connection first, so the stalled requests all go over it.
    let mut probe = H1Client::connect(listen).await.expect("connect");
    assert_eq!(probe.get("/small").await.expect("GET").status, 200);
    let before = weir.rss_kib() * 1024;

    let mut clients = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        let mut s = TcpStream::connect(listen).await.expect("connect to weir");
        s.write_all(b"GET /big HTTP/1.1\r\nhost: big.test\r\n\r\n")
            .await
            .expect("write request");
        clients.push(s);
    }
    // Until every stream started and the backend's writes stopped growing over three
    // 200 ms polls; 30 s at most.
    let last = weir_e2e::until_steady(|| {
        (counts.big.load(Ordering::SeqCst) == CLIENTS).then(|| counts.sent.load(Ordering::SeqCst))
    })
    .await;
    let Some(last) = last else {
        panic!("the backend kept sending: weir never applied back-pressure");
    };
    let growth = (weir.rss_kib() * 1024).saturating_sub(before);
    eprintln!(
        "{CLIENTS} stalled readers over one h2 backend connection: backend sent {} KiB, \
         weir RSS +{} KiB ({} KiB per stream)",
        last / 1024,
        growth / 1024,
        growth / 1024 / CLIENTS as u64
    );

    // Another client of the same backend is still served.
    let other = tokio::time::timeout(Duration::from_secs(5), probe.get("/small")).await;
    let status = other.ok().and_then(Result::ok).map(|r| r.status.as_u16());
    assert_eq!(
        status,
        Some(200),
        "stalled streams blocked the shared connection"
    );
    assert!(
        growth < CLIENTS as u64 * PER_CLIENT_BOUND,
        "weir grew by {} KiB for {CLIENTS} stalled streams (bound {} KiB)",
        growth / 1024,
        CLIENTS as u64 * PER_CLIENT_BOUND / 1024
    );
    drop(clients);
}
