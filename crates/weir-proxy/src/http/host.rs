//! Which host a request is for, and the `Host` rules of RFC 9112 §3.2.
//!
//! The host decides the route, so two readings of it are two routes: a front end that
//! routes by the first of two `Host` headers while the backend reads the second is how
//! a request for `evil.test` gets into `api.test`'s pool. weir therefore refuses every
//! request that could be read two ways (more than one `Host`, an invalid one, an
//! HTTP/1.1 request with none, an authority-form target outside CONNECT) with 400, and
//! reads the one it keeps the same way for routing, the access log and the `Host` it
//! forwards: the URI's authority (absolute form, HTTP/2 `:authority`) when there is one,
//! as §3.2.2 says, else the `Host` header. Userinfo (`user:pw@`) in an authority is
//! dropped: it is not part of the host, and forwarding it leaks credentials.

use http::header::{self, HeaderMap};
use http::uri::{Authority, Uri};
use http::{Method, Version};

/// The request's host without port: the URI authority (HTTP/2 `:authority`, or an
/// absolute-form HTTP/1.1 target, which RFC 9112 §3.2.2 says wins over `Host`), else
/// the `Host` header.
pub(crate) fn request_host<'a>(uri: &'a Uri, headers: &'a HeaderMap) -> Option<&'a str> {
    if let Some(authority) = uri.authority() {
        // Leaves out userinfo and port, as `Authority::host` does.
        return Some(strip_root_dot(authority_host(authority.as_str())));
    }
    let host = headers.get(header::HOST)?.to_str().ok()?;
    Some(strip_root_dot(strip_port(host)))
}

/// `api.test.` (fully qualified, with the root's empty label) is `api.test` to DNS and to
/// the backend's virtual hosts, so it must be to the routes too: otherwise a route that
/// guards `api.test` is passed by, while the backend serves the request as `api.test`.
pub(crate) fn strip_root_dot(host: &str) -> &str {
    host.strip_suffix('.').unwrap_or(host)
}

/// Refuses an asterisk-form target (`*`) for any method but OPTIONS (RFC 9112 §3.2.4):
/// a backend would be handed a request for no resource it has.
pub(crate) fn check_asterisk(method: &Method, uri: &Uri) -> Result<(), &'static str> {
    if uri.path() == "*" && method != Method::OPTIONS {
        return Err("asterisk-form request target outside OPTIONS");
    }
    Ok(())
}

/// Refuses what RFC 9112 §3.2 answers with 400: more than one `Host`, an invalid `Host`
/// value, an HTTP/1.1 request without `Host`; and an authority-form target
/// (`GET api.test:80`), which only CONNECT may use (§3.2.3).
pub(crate) fn check(version: Version, uri: &Uri, headers: &HeaderMap) -> Result<(), &'static str> {
    if uri.scheme().is_none() && uri.authority().is_some() {
        return Err("authority-form request target outside CONNECT");
    }
    let mut hosts = headers.get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => Err("more than one Host header"),
        (Some(host), None) if !is_valid_host(host.as_bytes()) => Err("invalid Host header"),
        (None, _) if version == Version::HTTP_11 => Err("HTTP/1.1 request without Host"),
        _ => Ok(()),
    }
}

/// The `Host` value for a request whose URI has `authority`: host and port, no userinfo;
/// `None` if it is not a valid header value (the rule of `HeaderValue::from_str`).
/// Borrowed: the HTTP/2 path writes it straight into the backend's head, and a header
/// value made here was an allocation and a copy per request.
pub(crate) fn forwarded(authority: &Authority) -> Option<&str> {
    let s = authority.as_str();
    let host_port = s.rsplit_once('@').map_or(s, |(_, host_port)| host_port);
    host_port
        .bytes()
        .all(|b| (b >= 32 && b != 127) || b == b'\t')
        .then_some(host_port)
}

/// What `Authority::host` returns (no userinfo, no port; an IPv6 literal keeps its
/// brackets), in one backward scan for `@` and one forward scan for the end of the host:
/// `http`'s version cost about 400 instructions per request.
pub(crate) fn authority_host(authority: &str) -> &str {
    let b = authority.as_bytes();
    let start = b.iter().rposition(|&c| c == b'@').map_or(0, |i| i + 1);
    let host_port = authority.get(start..).unwrap_or_default();
    let end = if host_port.starts_with('[') {
        host_port.find(']').map_or(host_port.len(), |i| i + 1)
    } else {
        host_port.find(':').unwrap_or(host_port.len())
    };
    host_port.get(..end).unwrap_or(host_port)
}

pub(crate) fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        // IPv6 literal: keep the brackets, drop what follows `]`.
        return host.find(']').and_then(|i| host.get(..=i)).unwrap_or(host);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// `uri-host [ ":" port ]` of RFC 3986: a bracketed IP literal or a reg-name (which
/// covers IPv4), then optional digits. No userinfo, no path, no spaces.
pub(crate) fn is_valid_host(v: &[u8]) -> bool {
    let (name_ok, port) = match v.strip_prefix(b"[") {
        Some(rest) => {
            let Some(end) = rest.iter().position(|&b| b == b']') else {
                return false;
            };
            let (literal, after) = rest.split_at(end);
            let literal_ok =
                !literal.is_empty() && literal.iter().all(|&b| b == b':' || is_reg_name(b));
            match after.get(1..).unwrap_or_default() {
                [] => (literal_ok, &[][..]),
                [b':', port @ ..] => (literal_ok, port),
                _ => return false,
            }
        }
        None => match v.iter().rposition(|&b| b == b':') {
            Some(i) => {
                let (name, port) = v.split_at(i);
                (
                    name.iter().all(|&b| is_reg_name(b)),
                    port.get(1..).unwrap_or_default(),
                )
            }
            None => (v.iter().all(|&b| is_reg_name(b)), &[][..]),
        },
    };
    name_ok && port.iter().all(u8::is_ascii_digit)
}

/// unreserved / pct-encoded / sub-delims (RFC 3986 §3.2.2).
fn is_reg_name(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'%'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(hosts: &[&str]) -> HeaderMap {
        crate::http::repeated(header::HOST, hosts)
    }

    fn check_h1(target: &str, hosts: &[&str]) -> Result<(), &'static str> {
        check(
            Version::HTTP_11,
            &target.parse().expect("test uri"),
            &headers(hosts),
        )
    }

    #[test]
    fn ports_are_stripped_from_hosts() {
        assert_eq!(strip_port("a.example:80"), "a.example");
        assert_eq!(strip_port("a.example"), "a.example");
        assert_eq!(strip_port("[::1]:8080"), "[::1]");
    }

    #[test]
    fn one_valid_host_is_required_on_http_1_1() {
        assert_eq!(check_h1("/", &["api.test"]), Ok(()));
        assert_eq!(check_h1("/", &["api.test:8080"]), Ok(()));
        assert_eq!(check_h1("/", &["[::1]:8080"]), Ok(()));
        assert_eq!(check_h1("/", &["10.0.0.1"]), Ok(()));
        assert_eq!(check_h1("/", &[""]), Ok(()), "empty Host is allowed");
        assert!(check_h1("/", &[]).is_err());
        assert!(check_h1("/", &["api.test", "evil.test"]).is_err());
        assert!(check_h1("/", &["api.test", "api.test"]).is_err());
        for bad in [
            "user@api.test",
            "api.test/x",
            "api.test:80x",
            "a b",
            "[::1",
            "[::1]x",
            "[]",
        ] {
            assert!(check_h1("/", &[bad]).is_err(), "{bad}");
        }
        let no_host = check(Version::HTTP_10, &Uri::from_static("/"), &HeaderMap::new());
        assert_eq!(no_host, Ok(()), "HTTP/1.0 needs no Host");
    }

    #[test]
    fn a_root_dot_does_not_make_another_host() {
        let uri = Uri::from_static("/");
        assert_eq!(
            request_host(&uri, &headers(&["api.test."])),
            Some("api.test")
        );
        assert_eq!(
            request_host(&uri, &headers(&["api.test.:80"])),
            Some("api.test")
        );
        let abs = Uri::from_static("http://api.test./x");
        assert_eq!(request_host(&abs, &HeaderMap::new()), Some("api.test"));
    }

    #[test]
    fn authority_host_is_what_http_takes_as_the_host() {
        for a in [
            "api.test",
            "api.test:8080",
            "user@api.test",
            "user:pw@api.test:8080",
            "u@v@api.test:1",
            "[::1]",
            "[::1]:8080",
            "user:pw@[fe80::1]:80",
            "127.0.0.1:18080",
            "api.test.:80",
        ] {
            let authority = http::uri::Authority::from_static(a);
            assert_eq!(authority_host(a), authority.host(), "{a}");
        }
    }

    #[test]
    fn asterisk_form_is_for_options_only() {
        let star = Uri::from_static("*");
        assert_eq!(check_asterisk(&Method::OPTIONS, &star), Ok(()));
        assert!(check_asterisk(&Method::GET, &star).is_err());
        assert_eq!(check_asterisk(&Method::GET, &Uri::from_static("/")), Ok(()));
    }

    #[test]
    fn authority_form_is_refused() {
        assert!(check_h1("api.test:80", &["api.test"]).is_err());
        assert_eq!(check_h1("http://api.test/x", &["other.test"]), Ok(()));
    }

    #[test]
    fn userinfo_never_reaches_the_host() {
        let uri = Uri::from_static("http://user:pw@api.test:8080/x");
        assert_eq!(request_host(&uri, &HeaderMap::new()), Some("api.test"));
        let authority = uri.authority().expect("authority");
        assert_eq!(forwarded(authority).expect("host value"), "api.test:8080");
        let plain = Uri::from_static("http://api.test/x");
        let authority = plain.authority().expect("authority");
        assert_eq!(forwarded(authority).expect("host value"), "api.test");
    }
}
