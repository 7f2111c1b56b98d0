//! TCP listeners: relaying, half-close, failover on connect, nothing up.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use weir_config::Protocol;

use crate::support::*;

async fn echo_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                if let Err(e) = tokio::io::copy(&mut r, &mut w).await {
                    eprintln!("echo: {e}");
                }
                // Reply EOF after the client's: proves the half-close went through.
                if let Err(e) = w.shutdown().await {
                    eprintln!("echo shutdown: {e}");
                }
            });
        }
    });
    addr
}

fn tcp_config(backends: &[SocketAddr]) -> weir_config::Config {
    let mut l = http_listener("db");
    l.protocol = Protocol::Tcp;
    l.routes.clear();
    l.pool = Some("db".into());
    config(l, vec![pool("db", backends)])
}

#[tokio::test]
async fn tcp_relays_bytes_and_half_close_after_a_failed_connect() {
    let (dead, echo) = (closed_port().await, echo_server().await);
    let proxy = Proxy::start(tcp_config(&[dead, echo])).await;
    for _ in 0..2 {
        let mut s = TcpStream::connect(proxy.addr).await.expect("connect");
        let payload: Vec<u8> = (0..1_000_000u32).map(|i| i as u8).collect();
        let (mut r, mut w) = s.split();
        let write = async {
            w.write_all(&payload).await.expect("write");
            w.shutdown().await.expect("half-close");
        };
        let mut back = Vec::new();
        let read = r.read_to_end(&mut back);
        tokio::time::timeout(WAIT, async { tokio::join!(write, read).1 })
            .await
            .expect("echo in time")
            .expect("read");
        assert!(back == payload, "{} bytes back", back.len());
    }
}

#[tokio::test]
async fn tcp_with_nothing_up_closes_the_client() {
    let echo = echo_server().await;
    let proxy = Proxy::start(tcp_config(&[echo])).await;
    for b in proxy.table.load().pools()[0].backends() {
        b.force(false, "test");
    }
    let mut s = TcpStream::connect(proxy.addr).await.expect("connect");
    let mut buf = [0u8; 8];
    let n = tokio::time::timeout(WAIT, s.read(&mut buf))
        .await
        .expect("closed in time");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
}
