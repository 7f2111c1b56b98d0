//! Affinity settings of a pool: what `strategy: consistent_hash` hashes on and how much
//! load above the average a backend may take before its keys spill to the next one; and
//! the sticky cookie, which pins a client to the backend that first served it.

/// What part of a request (or connection) a consistent-hash pool hashes to pick a
/// backend. A request without it is balanced round robin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashOn {
    /// The client's IP address (the PROXY-protocol address when present); the only key
    /// a TCP listener can see.
    SourceIp,
    /// The value of a request header, name lower-cased.
    Header(String),
    /// The value of a request cookie, name as written (cookie names are case-sensitive).
    Cookie(String),
    /// The request path, without the query string.
    Path,
}

impl HashOn {
    /// As written in the file: `source_ip`, `header:NAME`, `cookie:NAME`, `path`.
    pub fn describe(&self) -> String {
        match self {
            HashOn::SourceIp => "source_ip".to_owned(),
            HashOn::Header(name) => format!("header:{name}"),
            HashOn::Cookie(name) => format!("cookie:{name}"),
            HashOn::Path => "path".to_owned(),
        }
    }

    /// Whether the key is only in HTTP requests (a TCP listener cannot use it).
    pub fn needs_http(&self) -> bool {
        !matches!(self, HashOn::SourceIp)
    }
}

/// `strategy: consistent_hash` settings of a pool.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsistentHashConfig {
    /// The key. Default `source_ip`.
    pub hash_on: HashOn,
    /// Bounded load: a backend with more than `balance_factor ×` the pool's average
    /// in-flight load (rounded up) passes the key on. `1.0..=100.0`, default 1.25.
    pub balance_factor: f64,
}

/// The default bounded-load factor (Mirrokni, Thorup and Zadimoghaddam's ε = 0.25).
pub const DEFAULT_BALANCE_FACTOR: f64 = 1.25;

impl Default for ConsistentHashConfig {
    fn default() -> Self {
        ConsistentHashConfig {
            hash_on: HashOn::SourceIp,
            balance_factor: DEFAULT_BALANCE_FACTOR,
        }
    }
}

/// `sticky` on a pool: the first response sets a cookie naming the backend that served
/// it, and later requests carrying it go back to that backend while it is up, not
/// drained and not removed (HAProxy's `cookie NAME insert`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StickyConfig {
    /// The cookie's name, a token (RFC 6265 §4.1.1). Required.
    pub cookie: String,
    /// The cookie's `Max-Age`; `None`: a session cookie, gone when the browser closes.
    pub ttl: Option<std::time::Duration>,
    /// Where the key that signs backend ids came from (resolved against the config's
    /// directory); `None`: a key made at start, kept across reloads but not restarts.
    pub secret_file: Option<std::path::PathBuf>,
    /// The key read from `secret_file`.
    pub secret: Option<StickySecret>,
}

/// The key of a sticky cookie's ids, shared by balancers that must agree on them (a
/// keepalived pair). Its `Debug` hides it, as [`crate::ApiToken`]'s does.
#[derive(Clone, PartialEq, Eq)]
pub struct StickySecret(Box<[u8]>);

impl StickySecret {
    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub(crate) fn new(bytes: &[u8]) -> Self {
        StickySecret(bytes.into())
    }

    /// A key for tests of the crates that build pools from configs made in code.
    #[cfg(feature = "test-util")]
    pub fn for_tests(bytes: &[u8]) -> Self {
        StickySecret(bytes.into())
    }
}

impl std::fmt::Debug for StickySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StickySecret(<redacted>)")
    }
}
