//! Large bodies stream through intact in both directions (compared by FNV-1a hash).

use std::hash::Hasher;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use weir_e2e::{deterministic_bytes, fnv1a, Weir};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");
const TWENTY_MB: usize = 20 * 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_of_20_mb_reaches_the_backend_intact() {
    let (_weir, ha, mut client) = Weir::one_backend_h1(WEIR, "a").await;

    let body = deterministic_bytes(TWENTY_MB);
    let expected = format!("{} {}", body.len(), fnv1a(&body));
    let req = Request::post("/sink")
        .body(Full::new(Bytes::from(body)))
        .expect("request");
    let resp = client.send(req).await.expect("upload through weir");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        resp.text(),
        expected,
        "the backend saw a different body (len hash)"
    );
    assert_eq!(ha.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_of_20_mb_reaches_the_client_intact() {
    let (_weir, _ha, mut client) = Weir::one_backend_h1(WEIR, "a").await;

    let resp = client
        .get(&format!("/bytes/{TWENTY_MB}"))
        .await
        .expect("download through weir");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body.len(), TWENTY_MB);
    assert_eq!(fnv1a(&resp.body), fnv1a(&deterministic_bytes(TWENTY_MB)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echoed_body_round_trips_on_a_kept_alive_connection() {
    let (_weir, _ha, mut client) = Weir::one_backend_h1(WEIR, "a").await;

    for len in [0usize, 1, 65_537, 3 * 1024 * 1024] {
        let body = deterministic_bytes(len);
        let mut h = weir_e2e::Fnv1a::default();
        h.write(&body);
        let req = Request::post("/echo")
            .body(Full::new(Bytes::from(body)))
            .expect("request");
        let resp = client.send(req).await.expect("echo through weir");
        assert_eq!(resp.status, 200, "len {len}");
        assert_eq!(resp.body.len(), len, "echo of {len} bytes");
        assert_eq!(
            fnv1a(&resp.body),
            h.finish(),
            "echo of {len} bytes corrupted"
        );
    }
}
