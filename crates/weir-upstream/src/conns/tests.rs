//! Unit tests of the idle queue on loopback sockets: reuse under one transport only,
//! what a change of settings closes, expiry and closed connections.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use super::*;

/// A connected pair: weir's end as a plain [`Stream`], and the backend's end.
async fn pair() -> (Stream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (ours, theirs) = tokio::join!(TcpStream::connect(addr), listener.accept());
    (
        Stream::Plain(ours.expect("connect")),
        theirs.expect("accept").0,
    )
}

/// An idle queue that has adopted `t`.
fn adopting(t: &Transport) -> Conns {
    let conns = Conns::new();
    conns.adopt(t);
    conns
}

#[tokio::test]
async fn a_returned_connection_is_reused_under_the_same_transport_only() {
    let t = Transport::plain(false);
    let other = Transport::plain(false);
    let conns = Conns::new();
    assert!(!conns.adopt(&t), "the first transport replaces nothing");
    let (s, _backend) = pair().await;
    conns.give_back(&t, s);
    assert_eq!(conns.idle(), 1);
    assert!(
        conns.checkout(&other).is_none(),
        "another transport's request"
    );
    assert!(conns.checkout(&t).is_some());
    assert_eq!(conns.idle(), 0);
}

#[tokio::test]
async fn adopting_other_settings_closes_idle_connections_and_refuses_former_ones() {
    let old = Transport::plain(false);
    let conns = adopting(&old);
    let (a, _ka) = pair().await;
    let (b, _kb) = pair().await;
    conns.give_back(&old, a);
    let new = Transport::plain(true);
    assert!(
        conns.adopt(&new),
        "a changed transport closes the idle queue"
    );
    assert_eq!(conns.idle(), 0);
    conns.give_back(&old, b);
    assert_eq!(
        conns.idle(),
        0,
        "a connection of the old table is not pooled"
    );
    assert!(conns.checkout(&old).is_none());
    assert!(
        !conns.adopt(&new),
        "adopting the same transport again keeps them"
    );
}

#[tokio::test]
async fn a_connection_the_backend_closed_is_dropped_at_checkout_and_by_a_sweep() {
    let t = Transport::plain(false);
    let conns = adopting(&t);
    let (a, backend_a) = pair().await;
    conns.give_back(&t, a);
    drop(backend_a);
    // The FIN arrives asynchronously: wait until the socket reads EOF.
    let (b, mut backend_b) = pair().await;
    backend_b.shutdown().await.expect("shutdown");
    let mut closed = false;
    for _ in 0..500 {
        if !b.is_quiet() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(closed, "the backend's FIN never arrived");
    conns.give_back(&t, b);
    let mut swept = 0;
    for _ in 0..500 {
        swept += conns.sweep(&t);
        if swept == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(swept, 2, "both closed connections swept");
    assert!(conns.checkout(&t).is_none());
}

#[tokio::test(start_paused = true)]
async fn a_sweep_closes_connections_idle_longer_than_the_timeout() {
    let t = Transport::plain(false).with_idle_timeout(Duration::from_secs(10));
    let conns = adopting(&t);
    let (a, _ka) = pair().await;
    conns.give_back(&t, a);
    tokio::time::advance(Duration::from_secs(9)).await;
    assert_eq!(conns.sweep(&t), 0, "not expired yet");
    assert_eq!(conns.idle(), 1);
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(conns.sweep(&t), 1);
    assert_eq!(conns.idle(), 0);
}

#[tokio::test]
async fn the_h2_client_is_shared_under_one_transport_and_replaced_under_another() {
    let t = Transport::plain(true);
    let conns = adopting(&t);
    let a = conns.h2_client(&t).expect("created");
    let b = conns.h2_client(&t).expect("shared");
    assert!(Arc::ptr_eq(&a, &b));
    assert!(a.conn.load().is_none(), "no connection opened yet");
    let old = t;
    let new = Transport::plain(false);
    conns.adopt(&new);
    assert!(conns.h2_client(&old).is_none(), "old table: nothing shared");
    let c = conns.h2_client(&new).expect("new one");
    assert!(!Arc::ptr_eq(&a, &c));
}

#[tokio::test]
async fn a_retired_backend_closes_its_idle_connections_and_pools_no_more() {
    let t = Transport::plain(false);
    let conns = adopting(&t);
    let (a, mut backend_a) = pair().await;
    let (b, _kb) = pair().await;
    conns.give_back(&t, a);
    conns.retire();
    assert_eq!(conns.idle(), 0);
    // The backend sees its connection closed.
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::io::AsyncReadExt::read(&mut backend_a, &mut byte),
    )
    .await
    .expect("EOF in time");
    assert_eq!(read.expect("read"), 0, "closed by weir");
    // A request still running on the old table gives its connection back: closed.
    conns.give_back(&t, b);
    assert_eq!(conns.idle(), 0, "a retired backend pools nothing");
    assert!(conns.checkout(&t).is_none());
}
