//! What a route does to a request besides choosing a pool: answer it with a redirect,
//! rewrite its path prefix, edit its headers and its response's.
//!
//! Everything is parsed once, when the table is built: header names and values are
//! `http` types ready to insert or write, so applying an action per request costs the
//! copy of its bytes and nothing else. The phases apply them in this order: match →
//! redirect → rewrite → request headers → forward → response headers; header edits in
//! the order remove, set, add.

use http::{HeaderMap, HeaderName, HeaderValue};
use weir_config::{HeaderEdits as HeaderEditsConfig, RedirectConfig, RedirectScheme};

/// A redirect answered by weir itself (`routes[].redirect`).
#[derive(Debug)]
pub struct Redirect {
    scheme: Option<RedirectScheme>,
    host: Option<Box<str>>,
    port: Option<u16>,
    path: Option<Box<str>>,
    code: u16,
}

/// The parts of the request a redirect's `Location` is built from.
#[derive(Debug, Clone, Copy)]
pub struct RedirectFrom<'a> {
    /// The request came over TLS.
    pub tls: bool,
    /// The `Host` (or `:authority`) as sent, port included; `None` without one.
    pub host: Option<&'a [u8]>,
    /// The path, without query.
    pub path: &'a [u8],
    /// The query, without `?`; `None` when the target has none.
    pub query: Option<&'a [u8]>,
}

// === impl Redirect ===

impl Redirect {
    /// The redirect `config` describes.
    pub fn new(config: &RedirectConfig) -> Self {
        Redirect {
            scheme: config.scheme,
            host: config.host.as_deref().map(Into::into),
            port: config.port,
            path: config.path.as_deref().map(Into::into),
            code: config.code,
        }
    }

    /// 301, 302, 307 or 308.
    pub fn code(&self) -> u16 {
        self.code
    }

    /// The configured scheme, host, port and path (`None`: the request's), for `/status`.
    pub fn parts(
        &self,
    ) -> (
        Option<&'static str>,
        Option<&str>,
        Option<u16>,
        Option<&str>,
    ) {
        (
            self.scheme.map(RedirectScheme::as_str),
            self.host.as_deref(),
            self.port,
            self.path.as_deref(),
        )
    }

    /// Appends the `Location` for a request to `out`: `scheme://host[:port]path[?query]`.
    ///
    /// The host is the configured one, else the request's. The port is the configured
    /// one; else the request's, but only when neither the scheme nor the host changes
    /// (the port belonged to the listener the client reached, so an `http` → `https`
    /// redirect drops it, as nginx's `https://$host$request_uri` does; HAProxy's
    /// `redirect scheme` keeps it and needs a Host rewrite for a non-default port). A
    /// scheme's default port is never written. Without any host (an HTTP/1.0 request
    /// without `Host`, no `host` configured) the `Location` is the path alone.
    pub fn location(&self, from: &RedirectFrom<'_>, out: &mut Vec<u8>) {
        let request_scheme = if from.tls {
            RedirectScheme::Https
        } else {
            RedirectScheme::Http
        };
        let scheme = self.scheme.unwrap_or(request_scheme);
        let (req_host, req_port) = match from.host {
            Some(h) => {
                let (host, port) = split_port(h);
                (Some(host), port)
            }
            None => (None, None),
        };
        let host = self.host.as_deref().map(str::as_bytes).or(req_host);
        if let Some(host) = host {
            let keeps_port = self.host.is_none() && scheme == request_scheme;
            let port = match (self.port, keeps_port) {
                (Some(p), _) => Some(Port::Number(p)),
                (None, true) => req_port.map(Port::Text),
                (None, false) => None,
            };
            out.extend_from_slice(scheme.as_str().as_bytes());
            out.extend_from_slice(b"://");
            out.extend_from_slice(host);
            match port {
                Some(Port::Number(p)) if !is_default(scheme, p) => {
                    out.push(b':');
                    out.extend_from_slice(p.to_string().as_bytes());
                }
                Some(Port::Text(p)) => {
                    out.push(b':');
                    out.extend_from_slice(p);
                }
                _ => {}
            }
        }
        out.extend_from_slice(self.path.as_deref().map_or(from.path, str::as_bytes));
        if let Some(q) = from.query {
            out.push(b'?');
            out.extend_from_slice(q);
        }
    }
}

enum Port<'a> {
    Number(u16),
    Text(&'a [u8]),
}

fn is_default(scheme: RedirectScheme, port: u16) -> bool {
    matches!(
        (scheme, port),
        (RedirectScheme::Http, 80) | (RedirectScheme::Https, 443)
    )
}

/// `host[:port]` split at its port (`[v6]:port` too); the port only when it is digits.
fn split_port(h: &[u8]) -> (&[u8], Option<&[u8]>) {
    let at = if h.first() == Some(&b'[') {
        h.iter().position(|&b| b == b']').map(|i| i + 1)
    } else {
        h.iter().rposition(|&b| b == b':')
    };
    match at {
        Some(i) if h.get(i) == Some(&b':') => {
            let port = &h[i + 1..];
            if !port.is_empty() && port.iter().all(u8::is_ascii_digit) {
                (&h[..i], Some(port))
            } else {
                (&h[..i], None)
            }
        }
        _ => (h, None),
    }
}

/// `rewrite_path_prefix`: the matched prefix replaced before forwarding.
#[derive(Debug)]
pub struct Rewrite {
    /// Bytes of the matched `match.path_prefix`.
    prefix_len: usize,
    replacement: Box<[u8]>,
}

// === impl Rewrite ===

impl Rewrite {
    /// Replaces the first `prefix_len` bytes (the route's matched `path_prefix`) with
    /// `replacement`.
    pub fn new(prefix_len: usize, replacement: &str) -> Self {
        Rewrite {
            prefix_len,
            replacement: replacement.as_bytes().into(),
        }
    }

    /// The replacement, for `/status`.
    pub fn replacement(&self) -> &str {
        std::str::from_utf8(&self.replacement).unwrap_or("")
    }

    /// Appends the rewritten `target` (origin-form: path and query, which starts with the
    /// route's prefix) to `out`. A replacement ending in `/` takes the place of a `/`
    /// the rest starts with, so stripping `/api` with `/` makes `/api/users` `/users`,
    /// not `//users`. A target that does not start with the prefix (it always does once
    /// the route matched) is written unchanged.
    pub fn write(&self, target: &[u8], out: &mut Vec<u8>) {
        let Some(rest) = target.get(self.prefix_len..) else {
            out.extend_from_slice(target);
            return;
        };
        out.extend_from_slice(&self.replacement);
        let rest = if self.replacement.ends_with(b"/") {
            rest.strip_prefix(b"/").unwrap_or(rest)
        } else {
            rest
        };
        out.extend_from_slice(rest);
    }
}

/// `request_headers` / `response_headers`, pre-parsed.
#[derive(Debug)]
pub struct HeaderEdits {
    remove: Box<[HeaderName]>,
    set: Box<[(HeaderName, HeaderValue)]>,
    add: Box<[(HeaderName, HeaderValue)]>,
}

// === impl HeaderEdits ===

impl HeaderEdits {
    /// The edits `config` describes; `None` when it has none.
    pub fn new(config: &HeaderEditsConfig) -> Option<Box<HeaderEdits>> {
        if config.is_empty() {
            return None;
        }
        let pairs = |list: &[(String, String)]| -> Box<[(HeaderName, HeaderValue)]> {
            list.iter()
                .filter_map(|(n, v)| {
                    let parsed = HeaderName::from_bytes(n.as_bytes())
                        .ok()
                        .zip(HeaderValue::from_str(v).ok());
                    if parsed.is_none() {
                        // Validation checks both with the same rules.
                        tracing::error!(header = %n, "header edit refused by the http crate");
                    }
                    parsed
                })
                .collect()
        };
        Some(Box::new(HeaderEdits {
            remove: config
                .remove
                .iter()
                .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
                .collect(),
            set: pairs(&config.set),
            add: pairs(&config.add),
        }))
    }

    /// Whether a field named `name` (any case) of the message is dropped: removed, or
    /// replaced by a `set`.
    #[inline]
    pub fn drops(&self, name: &[u8]) -> bool {
        let is = |n: &HeaderName| n.as_str().as_bytes().eq_ignore_ascii_case(name);
        self.remove.iter().any(is) || self.set.iter().any(|(n, _)| is(n))
    }

    /// The fields to write after the kept ones: every `set`, then every `add`.
    pub fn lines(&self) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
        self.set.iter().chain(self.add.iter()).map(|(n, v)| (n, v))
    }

    /// Applies the edits to `map`: remove, set, add.
    pub fn apply(&self, map: &mut HeaderMap) {
        for n in self.remove.iter() {
            map.remove(n);
        }
        for (n, v) in self.set.iter() {
            map.insert(n.clone(), v.clone());
        }
        for (n, v) in self.add.iter() {
            map.append(n.clone(), v.clone());
        }
    }

    /// Names removed, for `/status`.
    pub fn removed(&self) -> impl Iterator<Item = &str> {
        self.remove.iter().map(HeaderName::as_str)
    }

    /// Fields set, for `/status`.
    pub fn set(&self) -> impl Iterator<Item = (&str, &str)> {
        as_text(&self.set)
    }

    /// Fields added, for `/status`.
    pub fn added(&self) -> impl Iterator<Item = (&str, &str)> {
        as_text(&self.add)
    }
}

/// Name and value pairs as text (values are visible ASCII, checked at load).
fn as_text(list: &[(HeaderName, HeaderValue)]) -> impl Iterator<Item = (&str, &str)> {
    list.iter()
        .map(|(n, v)| (n.as_str(), v.to_str().unwrap_or("")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redirect(
        scheme: Option<RedirectScheme>,
        host: Option<&str>,
        port: Option<u16>,
        path: Option<&str>,
    ) -> Redirect {
        Redirect::new(&RedirectConfig {
            scheme,
            host: host.map(str::to_owned),
            port,
            path: path.map(str::to_owned),
            code: 301,
        })
    }

    fn location(
        r: &Redirect,
        tls: bool,
        host: Option<&str>,
        path: &str,
        q: Option<&str>,
    ) -> String {
        let from = RedirectFrom {
            tls,
            host: host.map(str::as_bytes),
            path: path.as_bytes(),
            query: q.map(str::as_bytes),
        };
        let mut out = Vec::new();
        r.location(&from, &mut out);
        String::from_utf8(out).expect("ascii")
    }

    #[test]
    fn scheme_change_keeps_host_and_query_and_drops_the_old_port() {
        let r = redirect(Some(RedirectScheme::Https), None, None, None);
        assert_eq!(
            location(&r, false, Some("example.com:8080"), "/a/b", Some("x=1&y")),
            "https://example.com/a/b?x=1&y"
        );
        assert_eq!(
            location(&r, false, Some("example.com"), "/", None),
            "https://example.com/"
        );
        assert_eq!(
            location(&r, false, Some("[::1]:8080"), "/", None),
            "https://[::1]/"
        );
    }

    #[test]
    fn a_configured_port_is_written_unless_it_is_the_default() {
        let r = redirect(Some(RedirectScheme::Https), None, Some(8443), None);
        assert_eq!(
            location(&r, false, Some("127.0.0.1:8080"), "/p", Some("q=1")),
            "https://127.0.0.1:8443/p?q=1"
        );
        let r = redirect(Some(RedirectScheme::Https), None, Some(443), None);
        assert_eq!(
            location(&r, false, Some("a.test:80"), "/", None),
            "https://a.test/"
        );
    }

    #[test]
    fn same_scheme_and_host_keeps_the_port_and_a_new_path_keeps_the_query() {
        let r = redirect(None, None, None, Some("/new"));
        assert_eq!(
            location(&r, false, Some("a.test:8080"), "/old", Some("k=v")),
            "http://a.test:8080/new?k=v"
        );
        assert_eq!(
            location(&r, true, Some("a.test"), "/old", None),
            "https://a.test/new"
        );
    }

    #[test]
    fn a_new_host_drops_the_request_port() {
        let r = redirect(None, Some("b.test"), None, None);
        assert_eq!(
            location(&r, false, Some("a.test:8080"), "/x", None),
            "http://b.test/x"
        );
        assert_eq!(location(&r, false, None, "/x", None), "http://b.test/x");
    }

    #[test]
    fn without_any_host_the_location_is_the_path() {
        let r = redirect(Some(RedirectScheme::Https), None, None, None);
        assert_eq!(location(&r, false, None, "/x", Some("a=1")), "/x?a=1");
    }

    fn rewrite(prefix: &str, to: &str, target: &str) -> String {
        let mut out = Vec::new();
        Rewrite::new(prefix.len(), to).write(target.as_bytes(), &mut out);
        String::from_utf8(out).expect("ascii")
    }

    #[test]
    fn rewrite_replaces_the_prefix_and_keeps_the_query() {
        assert_eq!(
            rewrite("/api/", "/v2/", "/api/users?id=3"),
            "/v2/users?id=3"
        );
        assert_eq!(rewrite("/api/", "/", "/api/users"), "/users");
        assert_eq!(rewrite("/api", "/", "/api/users"), "/users");
        assert_eq!(rewrite("/api", "/", "/api"), "/");
        assert_eq!(rewrite("/api", "/", "/api?x=1"), "/?x=1");
        assert_eq!(
            rewrite("/api/", "/internal/api/", "/api/"),
            "/internal/api/"
        );
        assert_eq!(rewrite("/old", "/new", "/old/x"), "/new/x");
        assert_eq!(
            rewrite("/old/", "/new", "/old/x"),
            "/newx",
            "literal, as written"
        );
    }

    #[test]
    fn header_edits_drop_removed_and_set_names_and_apply_in_order() {
        let cfg = HeaderEditsConfig {
            remove: vec!["x-secret".into()],
            set: vec![("x-env".into(), "prod".into())],
            add: vec![
                ("x-via".into(), "weir".into()),
                ("x-env".into(), "extra".into()),
            ],
        };
        let e = HeaderEdits::new(&cfg).expect("edits");
        assert!(e.drops(b"X-Secret"));
        assert!(e.drops(b"x-ENV"));
        assert!(!e.drops(b"x-via"), "an add keeps the fields already there");
        let mut map = HeaderMap::new();
        map.append("x-secret", HeaderValue::from_static("1"));
        map.append("x-env", HeaderValue::from_static("dev"));
        map.append("x-env", HeaderValue::from_static("test"));
        map.append("x-via", HeaderValue::from_static("edge"));
        e.apply(&mut map);
        assert!(!map.contains_key("x-secret"));
        let env: Vec<_> = map.get_all("x-env").iter().collect();
        assert_eq!(env, ["prod", "extra"]);
        let via: Vec<_> = map.get_all("x-via").iter().collect();
        assert_eq!(via, ["edge", "weir"]);
        let lines: Vec<_> = e
            .lines()
            .map(|(n, v)| (n.as_str(), v.to_str().ok()))
            .collect();
        assert_eq!(
            lines,
            [
                ("x-env", Some("prod")),
                ("x-via", Some("weir")),
                ("x-env", Some("extra"))
            ]
        );
        assert!(HeaderEdits::new(&HeaderEditsConfig::default()).is_none());
    }
}
