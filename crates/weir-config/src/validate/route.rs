//! Validation of one HTTP route: its match (host, path prefix, methods, headers, query),
//! where it sends requests (exactly one of `pool` and `redirect`) and its actions (path
//! rewrite, request and response header edits).
//!
//! Header names and values are checked here with the rules the `http` crate applies, so
//! the table can pre-parse them without a failure case. The names weir owns are refused
//! in edits: the framing and hop-by-hop headers (weir frames every message itself and
//! removes what describes one connection), `Host` (weir passes the client's on, DESIGN
//! §4), and `X-Request-Id` and `X-Forwarded-*` (weir sets them on every request).

use super::{field, value, Validator};
use crate::model::RouteConfig;
use crate::position::index;
use crate::raw::{Ordered, RawHeaderEdits, RawMatch, RawRedirect, RawRoute, Text};
use crate::route::{HeaderEdits, RedirectConfig, RedirectScheme};

/// Names an edit may not touch, each with the reason given.
const OWNED: [(&str, &str); 15] = [
    ("connection", HOP),
    ("keep-alive", HOP),
    ("proxy-connection", HOP),
    ("te", HOP),
    ("trailer", HOP),
    ("upgrade", HOP),
    ("proxy-authenticate", HOP),
    ("proxy-authorization", HOP),
    ("transfer-encoding", FRAMING),
    ("content-length", FRAMING),
    ("host", "weir passes the client's Host on unchanged"),
    ("x-request-id", SET_BY_WEIR),
    ("x-forwarded-for", SET_BY_WEIR),
    ("x-forwarded-proto", SET_BY_WEIR),
    ("x-forwarded-host", SET_BY_WEIR),
];
const HOP: &str = "a hop-by-hop header describes one connection and weir removes it";
const FRAMING: &str = "weir frames every message itself";
const SET_BY_WEIR: &str = "weir sets this header itself";

pub(super) fn route(
    v: &mut Validator<'_>,
    r: &RawRoute,
    path: &str,
    pools: &[&str],
) -> RouteConfig {
    let match_path = field(path, "match");
    let m = r.matcher.as_ref();
    let host = m.and_then(|m| m.host.as_ref()).and_then(|h| {
        value::route_host(h.as_str())
            .map_err(|message| v.error(&field(&match_path, "host"), message))
            .ok()
    });
    let path_prefix = m.and_then(|m| m.path_prefix.as_ref()).and_then(|p| {
        if p.as_str().starts_with('/') {
            Some(p.as_str().to_owned())
        } else {
            let message = format!(
                "invalid path prefix {:?} (must start with \"/\")",
                p.as_str()
            );
            v.error(&field(&match_path, "path_prefix"), message);
            None
        }
    });
    let (methods, headers, query) =
        m.map_or_else(Default::default, |m| conditions(v, m, &match_path));
    let pool = match (&r.pool, &r.redirect) {
        (None, None) => {
            v.missing(path, "pool", " (or `redirect`)");
            None
        }
        (Some(_), Some(_)) => {
            v.error(
                &field(path, "redirect"),
                "a route has either `pool` or `redirect`, not both",
            );
            None
        }
        (Some(p), None) => {
            super::listener::check_pool_exists(v, p.as_str(), &field(path, "pool"), "route", pools);
            Some(p.as_str().to_owned())
        }
        (None, Some(_)) => None,
    };
    let redirect = r
        .redirect
        .as_ref()
        .map(|rd| redirect(v, rd, &field(path, "redirect")));
    if r.redirect.is_some() {
        v.inert(
            path,
            &[
                ("rewrite_path_prefix", r.rewrite_path_prefix.is_some()),
                ("request_headers", r.request_headers.is_some()),
                ("response_headers", r.response_headers.is_some()),
            ],
            |name| {
                format!(
                    "`{name}` does nothing on a redirect route (weir answers it without a backend)"
                )
            },
        );
    }
    let rewrite_path_prefix = r.rewrite_path_prefix.as_ref().and_then(|t| {
        let p = field(path, "rewrite_path_prefix");
        if m.and_then(|m| m.path_prefix.as_ref()).is_none() {
            v.error(
                &p,
                "rewrite_path_prefix replaces the matched `match.path_prefix`; give the route one",
            );
            return None;
        }
        uri_path(t.as_str())
            .map_err(|message| v.error(&p, message))
            .ok()
    });
    let request_headers = r
        .request_headers
        .as_ref()
        .map(|e| edits(v, e, &field(path, "request_headers")))
        .unwrap_or_default();
    let response_headers = r
        .response_headers
        .as_ref()
        .map(|e| edits(v, e, &field(path, "response_headers")))
        .unwrap_or_default();
    let rate_limit = r
        .rate_limit
        .as_ref()
        .and_then(|rl| super::policy::rate_limit(v, rl, &field(path, "rate_limit")));
    let (allow, deny) = super::policy::access_lists(v, r.allow.as_deref(), r.deny.as_deref(), path);
    RouteConfig {
        host,
        path_prefix,
        methods,
        headers,
        query,
        pool,
        redirect,
        rewrite_path_prefix,
        request_headers,
        response_headers,
        rate_limit,
        allow,
        deny,
    }
}

type Pairs = Vec<(String, String)>;

/// `match.methods`, `match.headers` and `match.query`.
fn conditions(v: &mut Validator<'_>, m: &RawMatch, path: &str) -> (Vec<String>, Pairs, Pairs) {
    let mut methods: Vec<String> = Vec::new();
    if let Some(list) = &m.methods {
        let list_path = field(path, "methods");
        if list.is_empty() {
            v.error(
                &list_path,
                "list at least one method, or leave `methods` out to match any",
            );
        }
        for (i, t) in list.iter().enumerate() {
            let p = index(&list_path, i);
            let name = t.as_str();
            if !value::is_token(name) {
                v.error(&p, format!("invalid method {name:?} (a token such as GET)"));
            } else if name.bytes().any(|b| b.is_ascii_lowercase())
                && STANDARD_METHODS.contains(&name.to_ascii_uppercase().as_str())
            {
                v.error(
                    &p,
                    format!(
                        "methods are case-sensitive: {name:?} is not {:?}",
                        name.to_ascii_uppercase()
                    ),
                );
            } else if methods.iter().any(|m| m == name) {
                v.error(&p, format!("method {name} is listed twice"));
            } else {
                methods.push(name.to_owned());
            }
        }
    }
    let headers = m.headers.as_ref().map_or_else(Vec::new, |h| {
        pairs(v, h, &field(path, "headers"), |v, name, p| {
            header_name(v, name, p, false)
        })
    });
    let query = m.query.as_ref().map_or_else(Vec::new, |q| {
        pairs(v, q, &field(path, "query"), |v, name, p| {
            if name.is_empty() {
                v.error(p, "a query parameter needs a name");
                None
            } else {
                Some(name.to_owned())
            }
        })
    });
    (methods, headers, query)
}

const STANDARD_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "TRACE", "PATCH", "CONNECT",
];

/// A mapping of name to value: each name checked by `name` (which reports and returns
/// `None` when bad), each value a legal header value, no name twice.
fn pairs(
    v: &mut Validator<'_>,
    map: &Ordered<Text>,
    path: &str,
    name: impl Fn(&mut Validator<'_>, &str, &str) -> Option<String>,
) -> Pairs {
    let mut out: Pairs = Vec::with_capacity(map.0.len());
    for (key, val) in &map.0 {
        let p = field(path, key);
        let Some(n) = name(v, key, &p) else {
            continue;
        };
        if let Err(message) = header_value(val.as_str()) {
            v.error(&p, message);
            continue;
        }
        if out.iter().any(|(k, _)| *k == n) {
            v.error(&p, format!("{key:?} is given twice"));
            continue;
        }
        out.push((n, val.as_str().to_owned()));
    }
    out
}

/// A header name: a token, lower-cased; `edit`: one weir owns is refused.
fn header_name(v: &mut Validator<'_>, name: &str, path: &str, edit: bool) -> Option<String> {
    if !value::is_token(name) {
        v.error(
            path,
            format!("invalid header name {name:?} (a token such as X-Api-Version)"),
        );
        return None;
    }
    let lower = name.to_ascii_lowercase();
    if edit {
        if let Some((_, why)) = OWNED.iter().find(|(n, _)| *n == lower) {
            v.error(path, format!("header {name} cannot be changed: {why}"));
            return None;
        }
    }
    Some(lower)
}

/// A field value the `http` crate and every HTTP/1 parser accept: visible ASCII, spaces
/// and tabs inside, none at the ends.
fn header_value(value: &str) -> Result<(), String> {
    let ok = value
        .bytes()
        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
        && value.trim_matches([' ', '\t']).len() == value.len();
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid header value {value:?} (visible ASCII, no space or tab at either end)"
        ))
    }
}

/// `request_headers` / `response_headers`.
fn edits(v: &mut Validator<'_>, e: &RawHeaderEdits, path: &str) -> HeaderEdits {
    let mut out = HeaderEdits::default();
    if let Some(list) = &e.remove {
        let list_path = field(path, "remove");
        for (i, t) in list.iter().enumerate() {
            let p = index(&list_path, i);
            if let Some(n) = header_name(v, t.as_str(), &p, true) {
                if out.remove.contains(&n) {
                    v.error(&p, format!("{:?} is listed twice", t.as_str()));
                } else {
                    out.remove.push(n);
                }
            }
        }
    }
    let named = |v: &mut Validator<'_>, name: &str, p: &str| header_name(v, name, p, true);
    if let Some(set) = &e.set {
        out.set = pairs(v, set, &field(path, "set"), named);
    }
    if let Some(add) = &e.add {
        out.add = pairs(v, add, &field(path, "add"), named);
    }
    out
}

fn redirect(v: &mut Validator<'_>, r: &RawRedirect, path: &str) -> RedirectConfig {
    let scheme = r.scheme.as_ref().map(|s| {
        v.keyword(
            Some(s),
            &field(path, "scheme"),
            "scheme",
            ("https", RedirectScheme::Https),
            &[("http", RedirectScheme::Http)],
        )
    });
    let host = r.host.as_ref().and_then(|h| {
        let p = field(path, "host");
        if h.as_str().starts_with('*') {
            v.error(&p, "a redirect goes to one host, not a wildcard");
            return None;
        }
        value::route_host(h.as_str())
            .map_err(|message| v.error(&p, message))
            .ok()
    });
    let port = r.port.map(|_| {
        let n = v.integer(r.port, &field(path, "port"), 1..=65_535, 443);
        u16::try_from(n).unwrap_or(443)
    });
    let redirect_path = r.path.as_ref().and_then(|t| {
        uri_path(t.as_str())
            .map_err(|message| v.error(&field(path, "path"), message))
            .ok()
    });
    let code = match r.code {
        None => 301,
        Some(crate::raw::Int(c @ (301 | 302 | 307 | 308))) => c as u16,
        Some(crate::raw::Int(c)) => {
            v.error(
                &field(path, "code"),
                format!("redirect code must be 301, 302, 307 or 308, got {c}"),
            );
            301
        }
    };
    RedirectConfig {
        scheme,
        host,
        port,
        path: redirect_path,
        code,
    }
}

/// A path written into a request target or `Location`: starts with `/`, visible ASCII
/// without `?` or `#` (the query is the request's).
fn uri_path(text: &str) -> Result<String, String> {
    let ok = text.starts_with('/')
        && text
            .bytes()
            .all(|b| (b'!'..=b'~').contains(&b) && b != b'?' && b != b'#');
    if ok {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "invalid path {text:?} (must start with \"/\"; visible ASCII without spaces, `?` or `#`)"
        ))
    }
}
