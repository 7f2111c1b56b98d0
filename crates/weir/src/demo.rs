//! `weir demo`: three demo backends on loopback and a balancer in front of them.
//!
//! The demo goes through the same path as `weir run`: it writes an ordinary YAML config
//! naming its backends, validates it with the same loader, and starts the same server,
//! so what a newcomer sees is what production does.

use std::convert::Infallible;
use std::net::SocketAddr;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use crate::server::Server;

/// Runs the demo until SIGTERM/SIGINT (Ctrl-C).
pub(crate) async fn run(listen: SocketAddr, admin: SocketAddr) -> anyhow::Result<()> {
    let mut backends = Vec::new();
    for n in 1..=3 {
        backends.push(spawn_backend(n).await?);
    }
    let yaml = demo_yaml(listen, admin, &backends);
    let config = weir_config::parse(&yaml, "<demo>".as_ref())
        .map_err(|e| anyhow::anyhow!("demo configuration is invalid (a bug):\n{e}"))?;
    let server = Server::start(config, None).await?;
    let web = server
        .listener_addr("demo")
        .context("demo listener did not start")?;
    let admin = server.admin_addr();
    let list = backends
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    println!(
        "weir demo: a round-robin balancer on http://{web}/ in front of 3 demo backends ({list}).\n\
         Try:\n  \
         curl http://{web}/            # repeat it: demo backend 1, 2 and 3 take turns\n  \
         curl http://{admin}/status    # pools, backends, health, in-flight\n  \
         curl http://{admin}/healthz   # what an outer balancer polls\n\
         Stop with Ctrl-C. The configuration behind this demo:\n\n{yaml}"
    );
    server.run().await
}

fn demo_yaml(listen: SocketAddr, admin: SocketAddr, backends: &[SocketAddr]) -> String {
    let mut yaml = format!(
        "admin:\n  listen: {admin}\nshutdown_timeout: 5s\nlisteners:\n  - name: demo\n    listen: {listen}\n    \
         protocol: http\n    routes:\n      - pool: demo\npools:\n  demo:\n    strategy: round_robin\n    backends:\n"
    );
    for b in backends {
        yaml.push_str(&format!("      - address: {b}\n"));
    }
    yaml.push_str(
        "    health_check:\n      type: http\n      path: /healthz\n      interval: 2s\n      timeout: 1s\n",
    );
    yaml
}

/// A tiny HTTP server that names itself in every answer.
async fn spawn_backend(n: u32) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding a demo backend on 127.0.0.1")?;
    let addr = listener.local_addr().context("demo backend address")?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service = service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| async move {
                        let body =
                            format!("demo backend {n}: {} {}\n", req.method(), req.uri().path());
                        Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from(body))))
                    },
                );
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    tracing::debug!(backend = n, error = %e, "demo backend connection error");
                }
            });
        }
    });
    Ok(addr)
}
