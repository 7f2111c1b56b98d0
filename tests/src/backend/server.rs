//! The HTTP/1.1 server behind a test backend: accept loop and request handling.

use std::convert::Infallible;
use std::hash::Hasher;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::{Recorded, Shared};
use crate::Fnv1a;

/// Accepts connections until the task is aborted by `kill`.
pub(crate) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _peer)) => stream,
            Err(e) => {
                eprintln!("backend {}: accept failed: {e}", shared.name);
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        shared.connections.fetch_add(1, Ordering::SeqCst);
        let conn_shared = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            let svc_shared = Arc::clone(&conn_shared);
            let service = service_fn(move |req| handle(req, Arc::clone(&svc_shared)));
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            if let Err(e) = conn.await {
                // Clients (weir) closing mid-request is normal in these tests; keep a trace.
                eprintln!("backend {}: connection ended: {e}", conn_shared.name);
            }
        });
        shared.track(task);
    }
}

/// Decrements `in_progress` however the request ends (answered or connection dropped).
struct InProgress<'a>(&'a Shared);

impl Drop for InProgress<'_> {
    fn drop(&mut self) {
        self.0.in_progress.fetch_sub(1, Ordering::SeqCst);
    }
}

type Reply = Response<Full<Bytes>>;

async fn handle(mut req: Request<Incoming>, shared: Arc<Shared>) -> Result<Reply, Infallible> {
    let path = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().path().to_owned(), |p| p.as_str().to_owned());
    if path == "/health" {
        shared.health_probes.fetch_add(1, Ordering::SeqCst);
        let status = shared.health_status.load(Ordering::SeqCst);
        return Ok(reply(&shared, status, format!("{} health", shared.name)));
    }
    let now = shared.in_progress.fetch_add(1, Ordering::SeqCst) + 1;
    shared.peak_in_progress.fetch_max(now, Ordering::SeqCst);
    let _guard = InProgress(&shared);
    shared
        .requests
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Recorded {
            method: req.method().clone(),
            path: path.clone(),
            headers: req.headers().clone(),
            version: req.version(),
        });
    // Counted after recording, so a test that sees the hit also sees the request.
    shared.hits.fetch_add(1, Ordering::SeqCst);

    let delay = shared.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    if path.starts_with("/hold") {
        match shared.held.acquire().await {
            Ok(permit) => permit.forget(),
            // Closed by `kill`: the connection is being torn down anyway.
            Err(_closed) => return Ok(reply(&shared, 503, "killed".to_owned())),
        }
    }
    if is_websocket(&req) {
        let upgrade = hyper::upgrade::on(&mut req);
        let tunnel_shared = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            match upgrade.await {
                Ok(upgraded) => echo_raw(TokioIo::new(upgraded), &tunnel_shared.name).await,
                Err(e) => eprintln!("backend {}: upgrade failed: {e}", tunnel_shared.name),
            }
        });
        shared.track(task);
        let mut resp = reply(&shared, 101, String::new());
        resp.headers_mut()
            .insert(header::UPGRADE, "websocket".parse().expect("static header"));
        resp.headers_mut().insert(
            header::CONNECTION,
            "upgrade".parse().expect("static header"),
        );
        return Ok(resp);
    }
    let status = shared.status.load(Ordering::SeqCst);
    if path == "/echo" {
        let body = match req.into_body().collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) => return Ok(reply(&shared, 400, format!("body error: {e}"))),
        };
        return Ok(reply_bytes(&shared, status, body));
    }
    if path == "/sink" {
        let mut body = req.into_body();
        let (mut len, mut hash) = (0usize, Fnv1a::default());
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => {
                    if let Some(data) = frame.data_ref() {
                        len += data.len();
                        hash.write(data);
                    }
                }
                Err(e) => return Ok(reply(&shared, 400, format!("body error: {e}"))),
            }
        }
        return Ok(reply(&shared, status, format!("{len} {}", hash.finish())));
    }
    if let Some(n) = path.strip_prefix("/bytes/") {
        let Ok(n) = n.parse::<usize>() else {
            return Ok(reply(&shared, 400, format!("bad length {n:?}")));
        };
        let body = Bytes::from(crate::deterministic_bytes(n));
        return Ok(reply_bytes(&shared, status, body));
    }
    let mut resp = reply(&shared, status, shared.name.clone());
    if path == "/hop" {
        let h = resp.headers_mut();
        h.insert(header::CONNECTION, "x-backend-hop".parse().expect("static"));
        h.insert("x-backend-hop", "secret".parse().expect("static"));
        h.insert("keep-alive", "timeout=5".parse().expect("static"));
        h.insert("x-backend-end-to-end", "kept".parse().expect("static"));
    }
    Ok(resp)
}

fn is_websocket(req: &Request<Incoming>) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

fn reply(shared: &Shared, status: u16, body: String) -> Reply {
    reply_bytes(shared, status, Bytes::from(body))
}

fn reply_bytes(shared: &Shared, status: u16, body: Bytes) -> Reply {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::IM_A_TEAPOT);
    if let Ok(name) = shared.name.parse() {
        resp.headers_mut().insert("x-backend", name);
    }
    resp
}

/// Echoes every byte back until the peer closes: the "WebSocket" after the 101.
async fn echo_raw(mut io: TokioIo<hyper::upgrade::Upgraded>, name: &str) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match io.read(&mut buf).await {
            Ok(0) => return,
            Ok(n) => {
                if let Err(e) = io.write_all(&buf[..n]).await {
                    eprintln!("backend {name}: tunnel write failed: {e}");
                    return;
                }
            }
            Err(e) => {
                eprintln!("backend {name}: tunnel read failed: {e}");
                return;
            }
        }
    }
}
