//! Sticky cookies on the proxy's side: what a request's cookie names, and the
//! `Set-Cookie` its response carries.
//!
//! Both HTTP paths call [`presented`] with what they have (the HTTP/1 engine its head's
//! spans, hyper's path its header map); the pick itself is
//! [`weir_balance::Pool::reserve_sticky`], and the response's `Set-Cookie` (counted in
//! `weir_sticky_total` as it is made) [`weir_balance::Pool::sticky_answer`].
//! The request's `Cookie` header is passed to the backend as it came, the sticky cookie
//! included, as HAProxy does without `indirect`.

use weir_balance::{Pool, Presented};

/// What the request's sticky cookie names in `pool` ([`Presented::Absent`] for a pool
/// without one). `headers` yields each header's name and value; every `Cookie` header is
/// searched (HTTP/2 clients may split them).
#[inline]
pub(crate) fn presented<'h>(
    pool: &Pool,
    headers: impl Iterator<Item = (&'h [u8], &'h [u8])>,
) -> Presented {
    let Some(sticky) = pool.sticky() else {
        return Presented::Absent;
    };
    let name = sticky.cookie().as_bytes();
    let value = headers
        .filter(|(n, _)| n.eq_ignore_ascii_case(b"cookie"))
        .find_map(|(_, v)| crate::affinity::cookie(v, name));
    sticky.presented(value)
}
