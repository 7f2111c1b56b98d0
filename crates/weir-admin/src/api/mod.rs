//! The runtime API: `POST /pools/{pool}/backends/{address}` changes a backend's admin
//! mode and weight while weir runs.
//!
//! Off unless the configuration has `admin.api.token_file`; the token is the current
//! table's (so a SIGHUP re-reads it, and a reload that drops `admin.api` turns writes
//! off). The checks run in this order, each with its status:
//!
//! | check | status |
//! |---|---|
//! | method is `POST` | 405, `Allow: POST` |
//! | the API is enabled | 403 |
//! | `Authorization: Bearer <token>` matches (constant time) | 401 |
//! | the path names a pool and one of its backends (percent-decoded) | 404 |
//! | the body (≤ [`MAX_BODY_BYTES`], read within [`BODY_TIMEOUT`]) is a valid change | 400 |
//!
//! then the change is applied to the `Backend` object itself, so it lasts for as long
//! as the backend stays configured, across reloads. A new weight needs new strategies:
//! the binary rebuilds the table (one swap, serialised with reloads) before the answer,
//! so the `200` (the backend's `/status` object) shows the weight in force.

mod body;
mod path;
mod token;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use weir_balance::{Backend, Pool, Table};

#[cfg(any(test, feature = "fuzzing"))]
pub use body::fuzz_one;
pub use body::{parse_change, Change, MAX_BODY_BYTES};

use crate::AdminState;

/// How long a client may take to send its body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a write waits for the table rebuilt with a new weight.
const REBUILD_TIMEOUT: Duration = Duration::from_secs(10);

/// Asks the owner of the table to rebuild it from the current backends' weights; it
/// answers on the oneshot once the new table is live.
pub type RebuildRequests = tokio::sync::mpsc::Sender<tokio::sync::oneshot::Sender<()>>;

/// Whether `path` is the API's (every method there is answered by [`handle`]).
pub(crate) fn is_api_path(path: &str) -> bool {
    path.starts_with("/pools/")
}

/// Answers one request to an API path.
pub(crate) async fn handle(
    state: &AdminState,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<Full<Bytes>> {
    match apply(state, req, peer).await {
        Ok(resp) => resp,
        Err((status, message)) => {
            let mut resp = crate::server::text(status, format!("{message}\n"));
            match status {
                StatusCode::METHOD_NOT_ALLOWED => {
                    resp.headers_mut()
                        .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
                }
                StatusCode::UNAUTHORIZED => {
                    resp.headers_mut().insert(
                        header::WWW_AUTHENTICATE,
                        header::HeaderValue::from_static("Bearer realm=\"weir\""),
                    );
                }
                _ => {}
            }
            resp
        }
    }
}

type Refusal = (StatusCode, String);

async fn apply(
    state: &AdminState,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Result<Response<Full<Bytes>>, Refusal> {
    if req.method() != http::Method::POST {
        return Err((
            StatusCode::METHOD_NOT_ALLOWED,
            "only POST, with a JSON body".to_owned(),
        ));
    }
    let table = state.table().load_full();
    let Some(api) = table.config().admin.api.as_ref() else {
        return Err((
            StatusCode::FORBIDDEN,
            "the runtime API is not enabled (admin.api.token_file)".to_owned(),
        ));
    };
    if !token::authorized(req.headers(), api.token.as_bytes()) {
        state.metrics().config().admin_change_unauthorized();
        tracing::warn!(%peer, path = req.uri().path(), "admin API: missing or wrong token");
        return Err((
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token".to_owned(),
        ));
    }
    let not_found = || {
        (
            StatusCode::NOT_FOUND,
            "not found: POST /pools/{pool}/backends/{address}".to_owned(),
        )
    };
    let (pool_name, address) = path::parse(req.uri().path()).ok_or_else(not_found)?;
    let (pool, backend) = find(&table, &pool_name, &address)?;
    let body = read_body(req.into_body()).await?;
    let change = parse_change(&body).map_err(|m| (StatusCode::BAD_REQUEST, m))?;
    let done = backend.set_admin(change.state, change.weight);
    state.metrics().config().admin_change_applied();
    tracing::info!(
        %peer,
        pool = pool.name(),
        backend = backend.address(),
        old_state = %done.old_mode,
        new_state = %done.new_mode,
        old_weight = done.old_weight,
        new_weight = done.new_weight,
        "admin change"
    );
    // The `200` promises the new weight is in force: without a confirmed rebuild the
    // answer says so instead (the override stays set and applies from the next table).
    if done.reweighted() && !rebuild(state).await {
        return Err((
            StatusCode::SERVICE_UNAVAILABLE,
            "weight recorded but not confirmed in force; it applies from the next table".to_owned(),
        ));
    }
    // The backend's object in the live table (the same `Arc`; its pool may be newer).
    let live = state.table().load_full();
    let body = match find(&live, &pool_name, &address) {
        Ok((pool, b)) => crate::status::backend_status(pool, b),
        Err(_) => crate::status::backend_status(pool, backend),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

/// The pool and backend a path names; a 404 says which of the two is unknown, so an
/// operator who mistyped the pool is not sent looking for the backend.
fn find<'t>(
    table: &'t Table,
    pool_name: &str,
    address: &str,
) -> Result<(&'t Pool, &'t Arc<Backend>), Refusal> {
    let pool = table
        .pool(pool_name)
        .ok_or_else(|| (StatusCode::NOT_FOUND, format!("no pool {pool_name:?}")))?;
    let backend = pool
        .backends()
        .find(|b| b.address() == address)
        .ok_or_else(|| {
            (
                StatusCode::NOT_FOUND,
                format!("no backend {address:?} in pool {pool_name:?}"),
            )
        })?;
    Ok((pool, backend))
}

/// The whole body, at most [`MAX_BODY_BYTES`], within [`BODY_TIMEOUT`].
async fn read_body(body: Incoming) -> Result<Bytes, Refusal> {
    let limited = Limited::new(body, MAX_BODY_BYTES);
    match tokio::time::timeout(BODY_TIMEOUT, limited.collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) => Err((
            StatusCode::BAD_REQUEST,
            format!("cannot read the body (at most {MAX_BODY_BYTES} bytes): {e}"),
        )),
        Err(_) => Err((
            StatusCode::BAD_REQUEST,
            format!("body not received within {}s", BODY_TIMEOUT.as_secs()),
        )),
    }
}

/// Asks the binary for a table built with the new weights and waits until it is live;
/// whether it is. The send shares the timeout with the wait: a rebuilder stuck on a
/// reload must not hold the request (or make a late table look confirmed).
async fn rebuild(state: &AdminState) -> bool {
    let Some(requests) = state.rebuild_requests() else {
        tracing::warn!("no table rebuilder: the new weight applies from the next reload");
        return false;
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let confirmed = async {
        requests
            .send(tx)
            .await
            .map_err(|_| "table rebuilder gone")?;
        rx.await.map_err(|_| "table rebuild dropped")
    };
    match tokio::time::timeout(REBUILD_TIMEOUT, confirmed).await {
        Ok(Ok(())) => true,
        Ok(Err(why)) => {
            tracing::warn!("{why}: the new weight applies from the next reload");
            false
        }
        Err(_) => {
            tracing::warn!(
                "table rebuild not confirmed within {}s",
                REBUILD_TIMEOUT.as_secs()
            );
            false
        }
    }
}
