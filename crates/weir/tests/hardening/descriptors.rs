//! Descriptor exhaustion: weir run with a small descriptor limit and flooded with more
//! connections than it can hold stays up, and once the flood is gone serves again.
//!
//! `prlimit --nofile=N:N` starts weir with the limit; the test holds connections until
//! weir's descriptor table is full (`/proc/<pid>/fd` reaches N and weir logs that accept
//! failed), closes them, and then a new client must be answered by the backend and the
//! descriptor count must fall back to its idle figure.

use std::time::Duration;

use tokio::net::TcpStream;
use weir_e2e::client;
use weir_e2e::config::{backends, one_pool};
use weir_e2e::{eventually, spawn_backend, until, H1Client, Weir};

use crate::WEIR;

/// weir's descriptor limit: about twice what it holds idle, so the flood fills it.
const NOFILE: usize = 48;
/// Connections the flood opens: well past the limit; the rest wait in the backlog.
const FLOOD: usize = 3 * NOFILE;
/// A connect the kernel's backlog takes completes at once; this only bounds a failure.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn out_of_descriptors_weir_serves_again_once_the_flood_is_gone() {
    let (a, backend) = spawn_backend("a").await;
    let yaml = one_pool("round_robin", &backends(&[a]), "");
    let weir = Weir::start_with_nofile(WEIR, &yaml, NOFILE as u64).await;
    let addr = weir.listener_addr("web");
    assert_eq!(client::get(addr, "/before").await.status, 200);
    let idle = weir.open_fds();
    assert!(idle < NOFILE / 2 + 8, "weir holds {idle} descriptors idle");

    let mut flood = Vec::with_capacity(FLOOD);
    for _ in 0..FLOOD {
        let connect = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await;
        let stream = connect
            .expect("the backlog takes the flood")
            .expect("connect");
        flood.push(stream);
    }
    until("weir's descriptor table full", || weir.open_fds() >= NOFILE).await;
    weir.wait_for_log("accept failed, backing off", Duration::from_secs(5))
        .await;
    let full = weir.open_fds();
    drop(flood);

    let served = eventually("a new client served after the flood", || async {
        let mut conn = H1Client::connect(addr).await.ok()?;
        let resp = conn.get("/after").await.ok()?;
        (resp.status == 200).then_some(resp)
    })
    .await;
    assert_eq!(served.text(), "a");
    // Every flood connection is closed again: back to the idle count, give or take the
    // pooled connection to the backend.
    let after = eventually("weir's descriptors back to the idle count", || {
        let n = weir.open_fds();
        async move { (n <= idle + 1).then_some(n) }
    })
    .await;
    eprintln!(
        "descriptors: idle {idle}, full {full} (limit {NOFILE}, flood {FLOOD}), after {after}"
    );
    assert!(backend.requests().iter().any(|r| r.path == "/after"));
    let healthz = weir.healthz().await.map(|r| r.status.as_u16());
    assert!(
        matches!(healthz, Ok(200)),
        "/healthz after the flood: {healthz:?}"
    );
}
