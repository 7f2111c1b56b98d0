//! The bearer token check.
//!
//! The comparison takes the same time whatever bytes the guess shares with the token
//! (it depends on the length of the guess only, which the caller knows anyway), so
//! timing answers cannot be used to find the token byte by byte.

use http::{header, HeaderMap};

/// Whether `headers` carry `Authorization: Bearer <token>` (scheme in any case, RFC
/// 9110 §11.1) with exactly `token`, in a single `Authorization` header.
pub(crate) fn authorized(headers: &HeaderMap, token: &[u8]) -> bool {
    // More than one is ambiguous (which would a proxy in front have checked?): refuse.
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return false;
    };
    let value = value.as_bytes();
    let Some((scheme, given)) = value.split_at_checked(7) else {
        return false;
    };
    scheme.eq_ignore_ascii_case(b"bearer ") && same(token, given.trim_ascii())
}

/// Constant-time equality: every byte of `given` is looked at, and no branch depends on
/// the contents of either side.
fn same(expected: &[u8], given: &[u8]) -> bool {
    if expected.is_empty() {
        return false;
    }
    let mut diff = expected.len() ^ given.len();
    for (i, g) in given.iter().enumerate() {
        diff |= usize::from(expected[i % expected.len()] ^ g);
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, value.parse().expect("header value"));
        h
    }

    #[test]
    fn two_authorization_headers_are_refused() {
        let token = b"s3cret-token";
        let mut h = auth("Bearer s3cret-token");
        h.append(
            header::AUTHORIZATION,
            "Bearer other".parse().expect("value"),
        );
        assert!(!authorized(&h, token));
        let mut h = auth("Bearer s3cret-token");
        h.append(
            header::AUTHORIZATION,
            "Bearer s3cret-token".parse().expect("value"),
        );
        assert!(!authorized(&h, token), "even the same token twice");
    }

    #[test]
    fn only_the_exact_token_passes() {
        let token = b"s3cret-token";
        assert!(authorized(&auth("Bearer s3cret-token"), token));
        assert!(authorized(&auth("bearer s3cret-token"), token));
        for bad in [
            "Bearer s3cret-toke",
            "Bearer s3cret-token2",
            "Bearer S3cret-token",
            "Basic s3cret-token",
            "Bearer",
            "Bearer ",
            "s3cret-token",
            "Bearer s3cret-tokens3cret-token",
        ] {
            assert!(!authorized(&auth(bad), token), "{bad:?}");
        }
        assert!(!authorized(&HeaderMap::new(), token));
        assert!(!same(b"", b""));
    }
}
