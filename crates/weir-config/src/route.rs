//! What a route does besides choosing a pool (`routes[]` keys beside `match`): answer
//! with a redirect, rewrite the path prefix, edit request and response headers, and the
//! extra match conditions (methods, headers, query parameters).
//!
//! These are plain validated data: header names are lower-case tokens and values legal
//! field values, so the table can pre-parse them into `http` types without a failure
//! case, and the data plane never re-checks them.

/// Where a redirect sends the client: each part left `None` is the request's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectConfig {
    /// `http` or `https`; `None`: the scheme the request came in with.
    pub scheme: Option<RedirectScheme>,
    /// Host name (lower-case, no port); `None`: the request's `Host`.
    pub host: Option<String>,
    /// Port; `None`: the request's when neither scheme nor host changes, else the
    /// scheme's default (no port in `Location`).
    pub port: Option<u16>,
    /// Path (starts with `/`, no query); `None`: the request's. The query is kept.
    pub path: Option<String>,
    /// 301 (default), 302, 307 or 308.
    pub code: u16,
}

/// The scheme of a redirect's `Location`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectScheme {
    /// `http://`.
    Http,
    /// `https://`.
    Https,
}

impl RedirectScheme {
    /// `http` or `https`.
    pub fn as_str(self) -> &'static str {
        match self {
            RedirectScheme::Http => "http",
            RedirectScheme::Https => "https",
        }
    }
}

/// Header changes, applied in the order remove, set, add.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderEdits {
    /// Lower-case names whose every field is dropped.
    pub remove: Vec<String>,
    /// Lower-case name and value: replaces every field of that name.
    pub set: Vec<(String, String)>,
    /// Lower-case name and value: one more field, after those kept.
    pub add: Vec<(String, String)>,
}

impl HeaderEdits {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.set.is_empty() && self.add.is_empty()
    }
}
