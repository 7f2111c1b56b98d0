//! The match conditions of a route beyond host and path: methods, headers and query
//! parameters (`match.methods`, `match.headers`, `match.query`).
//!
//! A route without them keeps the fast path: [`crate::ListenerTable::find_route`] checks
//! `conditions.is_none()` and never asks the request anything more. When a route has
//! some, the request is read through [`RequestFacts`], which each HTTP path implements
//! over the head it already holds (borrowed spans of weir's HTTP/1 head, hyper's
//! `Parts`), so matching allocates nothing.
//!
//! Query parameters are compared after percent-decoding (`%2F` is `/`, `+` is a space,
//! as HTML forms and Go's `url.ParseQuery` read them); a pair with a malformed escape
//! never matches. A parameter given without `=` has the empty value. A repeated header
//! or parameter matches when any one of its occurrences has the value.

use http::HeaderName;
use weir_config::RouteConfig;

/// What the conditions read of a request.
pub trait RequestFacts {
    /// The method token as sent (case-sensitive).
    fn method(&self) -> &[u8];
    /// Whether some field named `name` has exactly `value` (surrounding spaces are not
    /// part of a value).
    fn has_header(&self, name: &HeaderName, value: &[u8]) -> bool;
    /// The query: what follows `?` in the target, up to any `#`.
    fn query(&self) -> Option<&[u8]>;
}

/// A route's extra conditions; all must hold.
#[derive(Debug)]
pub(crate) struct Conditions {
    methods: Box<[Box<[u8]>]>,
    headers: Box<[(HeaderName, Box<[u8]>)]>,
    query: Box<[Pair]>,
}

/// A query parameter's decoded name and value.
type Pair = (Box<[u8]>, Box<[u8]>);

// === impl Conditions ===

impl Conditions {
    /// The conditions of `route`; `None` when it has none (the fast path).
    pub(crate) fn new(route: &RouteConfig) -> Option<Box<Conditions>> {
        if route.methods.is_empty() && route.headers.is_empty() && route.query.is_empty() {
            return None;
        }
        let headers = route
            .headers
            .iter()
            .filter_map(
                |(name, value)| match HeaderName::from_bytes(name.as_bytes()) {
                    Ok(n) => Some((n, value.as_bytes().into())),
                    Err(e) => {
                        // Validation accepts only tokens, which always parse.
                        tracing::error!(header = %name, error = %e, "match header name refused");
                        None
                    }
                },
            )
            .collect();
        Some(Box::new(Conditions {
            methods: route.methods.iter().map(|m| m.as_bytes().into()).collect(),
            headers,
            query: route
                .query
                .iter()
                .map(|(k, v)| (k.as_bytes().into(), v.as_bytes().into()))
                .collect(),
        }))
    }

    /// Whether `req` meets every condition.
    #[inline]
    pub(crate) fn matches<R: RequestFacts + ?Sized>(&self, req: &R) -> bool {
        (self.methods.is_empty() || self.methods.iter().any(|m| **m == *req.method()))
            && self
                .headers
                .iter()
                .all(|(name, value)| req.has_header(name, value))
            && (self.query.is_empty()
                || req.query().is_some_and(|q| {
                    self.query
                        .iter()
                        .all(|(name, value)| query_has(q, name, value))
                }))
    }

    /// The methods, for `/status`.
    pub(crate) fn methods(&self) -> impl Iterator<Item = &str> {
        self.methods
            .iter()
            .map(|m| std::str::from_utf8(m).unwrap_or(""))
    }

    /// The headers, for `/status`.
    pub(crate) fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers
            .iter()
            .map(|(n, v)| (n.as_str(), std::str::from_utf8(v).unwrap_or("")))
    }

    /// The query parameters, for `/status`.
    pub(crate) fn query(&self) -> impl Iterator<Item = (&str, &str)> {
        self.query.iter().map(|(n, v)| {
            (
                std::str::from_utf8(n).unwrap_or(""),
                std::str::from_utf8(v).unwrap_or(""),
            )
        })
    }
}

/// Whether `query` (`a=1&b=2`) has a parameter `name` (decoded) whose decoded value is
/// `value`.
pub fn query_has(query: &[u8], name: &[u8], value: &[u8]) -> bool {
    query.split(|&b| b == b'&').any(|pair| {
        let (k, v) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        decoded_eq(k, name) && decoded_eq(v, value)
    })
}

/// Whether `raw`, percent-decoded (`+` as space), equals `want`; a malformed escape
/// never equals anything.
fn decoded_eq(raw: &[u8], want: &[u8]) -> bool {
    let mut want = want.iter();
    let mut i = 0;
    while i < raw.len() {
        let b = match raw[i] {
            b'%' => {
                let hex = raw.get(i + 1..i + 3).and_then(|h| {
                    let hi = (h[0] as char).to_digit(16)?;
                    let lo = (h[1] as char).to_digit(16)?;
                    u8::try_from(hi * 16 + lo).ok()
                });
                match hex {
                    Some(b) => {
                        i += 3;
                        b
                    }
                    None => return false,
                }
            }
            b'+' => {
                i += 1;
                b' '
            }
            b => {
                i += 1;
                b
            }
        };
        if want.next() != Some(&b) {
            return false;
        }
    }
    want.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Req {
        method: &'static str,
        headers: Vec<(&'static str, &'static str)>,
        query: Option<&'static str>,
    }

    impl RequestFacts for Req {
        fn method(&self) -> &[u8] {
            self.method.as_bytes()
        }
        fn has_header(&self, name: &HeaderName, value: &[u8]) -> bool {
            self.headers
                .iter()
                .any(|(n, v)| n.eq_ignore_ascii_case(name.as_str()) && v.as_bytes() == value)
        }
        fn query(&self) -> Option<&[u8]> {
            self.query.map(str::as_bytes)
        }
    }

    fn cond(methods: &[&str], headers: &[(&str, &str)], query: &[(&str, &str)]) -> Conditions {
        let own = |p: &[(&str, &str)]| {
            p.iter()
                .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                .collect()
        };
        let route = RouteConfig {
            methods: methods.iter().map(|m| (*m).to_owned()).collect(),
            headers: own(headers),
            query: own(query),
            ..RouteConfig::default()
        };
        *Conditions::new(&route).expect("conditions")
    }

    fn get() -> Req {
        Req {
            method: "GET",
            headers: Vec::new(),
            query: None,
        }
    }

    #[test]
    fn a_route_without_conditions_has_none() {
        assert!(Conditions::new(&RouteConfig::default()).is_none());
    }

    #[test]
    fn methods_match_exactly_and_case_sensitively() {
        let c = cond(&["GET", "HEAD"], &[], &[]);
        assert!(c.matches(&get()));
        assert!(c.matches(&Req {
            method: "HEAD",
            ..get()
        }));
        assert!(!c.matches(&Req {
            method: "POST",
            ..get()
        }));
        assert!(!c.matches(&Req {
            method: "get",
            ..get()
        }));
        assert!(!c.matches(&Req {
            method: "GETX",
            ..get()
        }));
    }

    #[test]
    fn every_header_must_match_by_name_in_any_case() {
        let c = cond(&[], &[("x-env", "canary"), ("x-tier", "gold")], &[]);
        let both = Req {
            headers: vec![("X-Env", "canary"), ("X-TIER", "gold")],
            ..get()
        };
        assert!(c.matches(&both));
        let one = Req {
            headers: vec![("x-env", "canary")],
            ..get()
        };
        assert!(!c.matches(&one));
        let wrong_case_value = Req {
            headers: vec![("x-env", "Canary"), ("x-tier", "gold")],
            ..get()
        };
        assert!(!c.matches(&wrong_case_value), "values are exact");
        let repeated = Req {
            headers: vec![("x-env", "prod"), ("x-env", "canary"), ("x-tier", "gold")],
            ..get()
        };
        assert!(c.matches(&repeated), "any field of the name may carry it");
    }

    #[test]
    fn query_parameters_are_decoded_and_all_required() {
        let c = cond(&[], &[], &[("v", "2"), ("q", "a b/c")]);
        let with = |q| Req {
            query: Some(q),
            ..get()
        };
        assert!(c.matches(&with("v=2&q=a+b%2Fc")));
        assert!(c.matches(&with("q=a%20b/c&x=1&v=2")));
        assert!(c.matches(&with("v=1&v=2&q=a+b/c")), "any occurrence");
        assert!(!c.matches(&with("v=2")));
        assert!(!c.matches(&with("v=22&q=a+b/c")));
        assert!(!c.matches(&get()), "no query at all");
        assert!(!c.matches(&with("v=%2&q=a+b/c")), "malformed escape");
    }

    #[test]
    fn a_bare_parameter_has_the_empty_value() {
        assert!(query_has(b"debug&x=1", b"debug", b""));
        assert!(query_has(b"debug=", b"debug", b""));
        assert!(!query_has(b"debug=1", b"debug", b""));
        assert!(query_has(b"%64ebug=1", b"debug", b"1"));
        assert!(!query_has(b"", b"debug", b""));
    }

    /// `bytes` percent-encoded, every byte as `%XX`.
    fn encoded(bytes: &[u8]) -> Vec<u8> {
        bytes
            .iter()
            .flat_map(|b| format!("%{b:02X}").into_bytes())
            .collect()
    }

    proptest::proptest! {
        /// The matcher reads untrusted query strings: whatever they hold, it answers.
        #[test]
        fn any_query_is_answered_without_panic(q: Vec<u8>, name: Vec<u8>, value: Vec<u8>) {
            let _ = query_has(&q, &name, &value);
        }

        /// A pair written percent-encoded among other pairs is found, and a different
        /// value is not.
        #[test]
        fn an_encoded_pair_is_found_among_others(
            name in proptest::collection::vec(proptest::num::u8::ANY, 1..16),
            value in proptest::collection::vec(proptest::num::u8::ANY, 0..16),
            before in "[a-z0-9=&]{0,12}",
        ) {
            let mut q = before.into_bytes();
            q.push(b'&');
            q.extend(encoded(&name));
            q.push(b'=');
            q.extend(encoded(&value));
            proptest::prop_assert!(query_has(&q, &name, &value));
            let mut other = value;
            other.push(b'x');
            proptest::prop_assert!(!query_has(&q, &name, &other) || before_has(&q, &name, &other));
        }
    }

    /// Whether a pair other than the last carries `name=value` (the random prefix may).
    fn before_has(q: &[u8], name: &[u8], value: &[u8]) -> bool {
        let cut = q.iter().rposition(|&b| b == b'&').unwrap_or(0);
        query_has(&q[..cut], name, value)
    }
}
