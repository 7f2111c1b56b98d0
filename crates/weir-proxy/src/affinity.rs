//! The affinity key of a request or connection: what a consistent-hash pool hashes.
//!
//! Both HTTP paths (weir's HTTP/1 engine and its HTTP/2 server) and the TCP relay
//! call [`key`] with what they have: the client's address (the PROXY-protocol address
//! when the listener takes one, as access lists use), the request path and an iterator
//! over its headers. Everything is borrowed from the request and hashed in place, so a
//! keyed pick allocates nothing. A request without the key (no such header or cookie)
//! gets `None`, and the pool balances it round robin.

use std::net::IpAddr;

use weir_balance::strategy::maglev::hash64;
use weir_config::HashOn;

/// The hash of the request's key under `hash_on`, or `None` when it has none.
///
/// `path` is the path of the request target without its query (`None` on TCP);
/// `headers` yields each header's name and value (several `Cookie` headers, as HTTP/2
/// sends them, are all searched).
#[inline]
pub(crate) fn key<'h>(
    hash_on: &HashOn,
    ip: IpAddr,
    path: Option<&[u8]>,
    mut headers: impl Iterator<Item = (&'h [u8], &'h [u8])>,
) -> Option<u64> {
    match hash_on {
        HashOn::SourceIp => Some(match ip.to_canonical() {
            IpAddr::V4(v4) => hash64(&v4.octets()),
            IpAddr::V6(v6) => hash64(&v6.octets()),
        }),
        HashOn::Path => path.map(hash64),
        HashOn::Header(name) => headers
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| hash64(v)),
        HashOn::Cookie(name) => headers
            .filter(|(n, _)| n.eq_ignore_ascii_case(b"cookie"))
            .find_map(|(_, v)| cookie(v, name.as_bytes()))
            .map(hash64),
    }
}

/// The value of cookie `name` in a `Cookie` header (`a=1; b=2`, RFC 6265 §5.4), its
/// surrounding double quotes kept (they are part of the value as the backend sees it).
pub(crate) fn cookie<'v>(header: &'v [u8], name: &[u8]) -> Option<&'v [u8]> {
    header.split(|&b| b == b';').find_map(|pair| {
        let pair = pair.trim_ascii();
        let eq = pair.iter().position(|&b| b == b'=')?;
        let (n, v) = (pair.get(..eq)?, pair.get(eq + 1..)?);
        (n.trim_ascii() == name).then(|| v.trim_ascii())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));

    #[test]
    fn cookies_are_found_by_exact_name() {
        assert_eq!(cookie(b"a=1; sid=xyz; b=2", b"sid"), Some(&b"xyz"[..]));
        assert_eq!(cookie(b"sid=;a=1", b"sid"), Some(&b""[..]));
        assert_eq!(cookie(b"SID=1", b"sid"), None);
        assert_eq!(cookie(b"sidx=1; nosign", b"sid"), None);
    }

    #[test]
    fn each_kind_of_key_is_read_from_its_place() {
        let headers = [(&b"X-User"[..], &b"alice"[..]), (b"cookie", b"a=1; s=bob")];
        let k = |on: HashOn, path| key(&on, IP, path, headers.iter().copied());
        assert_eq!(
            k(HashOn::Header("x-user".into()), None),
            Some(hash64(b"alice"))
        );
        assert_eq!(k(HashOn::Cookie("s".into()), None), Some(hash64(b"bob")));
        assert_eq!(k(HashOn::Cookie("t".into()), None), None);
        assert_eq!(k(HashOn::Header("x-other".into()), None), None);
        assert_eq!(k(HashOn::Path, Some(b"/a")), Some(hash64(b"/a")));
        assert_eq!(k(HashOn::Path, None), None);
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(
            key(&HashOn::SourceIp, mapped, None, std::iter::empty()),
            k(HashOn::SourceIp, None)
        );
    }
}
