//! Semantic validation: `RawConfig` -> `Config`, applying defaults and collecting *every*
//! error, each placed at the offending value through the [`PositionIndex`].
//!
//! Validation never stops early: a bad value is reported and replaced by a placeholder so
//! that the rest of the file is still checked. The `Config` built alongside is only handed
//! out when no error was found, so a placeholder can never reach the data plane.

/// Checks field `$name` of the raw block `$raw` with the validator's `$check` (and its
/// `$arg`s, a range say), reporting at `$path.$name`, taking `$defaults.$name` when the
/// field is absent. The name is written once, so the value read, the path an error
/// names and the default taken are always the same field's.
macro_rules! check_field {
    ($v:ident.$check:ident($raw:ident.$name:ident $(.$conv:ident())? at $path:expr $(, $arg:expr)*) or $defaults:ident) => {
        $v.$check(
            $raw.$name$(.$conv())?,
            &$crate::validate::field($path, stringify!($name)),
            $($arg,)*
            $defaults.$name,
        )
    };
}

mod admin;
mod affinity;
mod discovery;
mod http2;
mod listener;
mod policy;
mod pool;
mod proxy_protocol;
mod route;
mod tls;
mod value;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::error::ConfigError;
use crate::model::{AdminConfig, Config, ListenerConfig, PoolConfig, Protocol, UpstreamProtocol};
use crate::position::{join, Pos, PositionIndex};
use crate::raw::{Int, RawConfig, Text};

/// The longest `shutdown_grace`: it only has to outlast whatever moves clients away
/// (a VRRP check and takeover, an outer balancer's health checks: seconds, a minute at
/// most); an hour is a typo, and would hold a stop or a deploy that long.
const MAX_SHUTDOWN_GRACE: Duration = Duration::from_secs(3600);

/// Default admin address: loopback, because `/status` reveals the topology.
const DEFAULT_ADMIN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9901);

/// Stands in for an address that failed validation; never leaves this module.
const PLACEHOLDER_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0);

/// Whether validation may touch the world: resolve hostnames and open the files named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Io {
    Real,
    /// Fuzzing: arbitrary input must not send DNS queries or open arbitrary paths.
    #[cfg_attr(not(any(test, feature = "fuzzing")), allow(dead_code))]
    Offline,
}

/// Validates `raw`, returning the config or every error found (unsorted).
pub(crate) fn validate(
    raw: &RawConfig,
    file: &Path,
    index: &PositionIndex,
    io: Io,
) -> Result<Config, Vec<ConfigError>> {
    let mut v = Validator {
        file,
        index,
        io,
        errors: Vec::new(),
    };
    let admin_listen = match raw.admin.as_ref().and_then(|a| a.listen.as_ref()) {
        Some(text) => v.socket_addr(text, "admin.listen"),
        None => DEFAULT_ADMIN,
    };
    let api = raw
        .admin
        .as_ref()
        .and_then(|a| a.api.as_ref())
        .and_then(|api| admin::api(&mut v, api, "admin.api"));
    let shutdown_timeout = v.duration(
        raw.shutdown_timeout.as_ref(),
        "shutdown_timeout",
        Duration::from_secs(30),
    );
    // Off by default: a lone weir has nobody to wait for, and operators expect SIGTERM
    // to stop accepting at once (HAProxy's `grace` defaults to 0 too).
    let shutdown_grace = v.duration_upto(
        raw.shutdown_grace.as_ref(),
        "shutdown_grace",
        (MAX_SHUTDOWN_GRACE, "1h"),
        Duration::ZERO,
    );
    let pools = pool::pools(&mut v, raw.pools.as_ref());
    let pool_names: Vec<&str> = pools.iter().map(|p| p.name.as_str()).collect();
    let listeners =
        listener::listeners(&mut v, raw.listeners.as_deref(), &pool_names, admin_listen);
    tcp_pools_are_not_h2(&mut v, &listeners, &pools);
    tcp_pools_hash_source_ip(&mut v, &listeners, &pools);
    if v.errors.is_empty() {
        Ok(Config {
            source: file.to_path_buf(),
            admin: AdminConfig {
                listen: admin_listen,
                api,
            },
            shutdown_timeout,
            shutdown_grace,
            listeners,
            pools,
        })
    } else {
        Err(v.errors)
    }
}

/// A tcp listener relays bytes, not HTTP requests: its pool cannot speak `h2` (weir has
/// no HTTP/2 framing to put those bytes in). Reported at the pool's `upstream_protocol`.
fn tcp_pools_are_not_h2(v: &mut Validator<'_>, listeners: &[ListenerConfig], pools: &[PoolConfig]) {
    for l in listeners.iter().filter(|l| l.protocol == Protocol::Tcp) {
        let Some(pool) = l.pool.as_deref() else {
            continue;
        };
        if pools
            .iter()
            .any(|p| p.name == pool && p.upstream_protocol == UpstreamProtocol::H2)
        {
            v.error(
                &field(&field("pools", pool), "upstream_protocol"),
                format!(
                    "h2 is for pools behind http listeners; tcp listener {:?} relays raw bytes to this pool (use http1, or another pool)",
                    l.name
                ),
            );
        }
    }
}

/// A tcp listener sees no headers, cookies or paths: a consistent-hash pool behind one
/// can only hash on `source_ip`, and it cannot set a sticky cookie. Reported at the
/// pool's `hash_on` or `sticky`.
fn tcp_pools_hash_source_ip(
    v: &mut Validator<'_>,
    listeners: &[ListenerConfig],
    pools: &[PoolConfig],
) {
    for l in listeners.iter().filter(|l| l.protocol == Protocol::Tcp) {
        let Some(pool) = l.pool.as_deref() else {
            continue;
        };
        let hash = pools
            .iter()
            .find(|p| p.name == pool)
            .and_then(|p| p.consistent_hash.as_ref());
        let sticky = pools.iter().any(|p| p.name == pool && p.sticky.is_some());
        if sticky {
            v.error(
                &field(&field("pools", pool), "sticky"),
                format!(
                    "sticky cookies need HTTP responses; tcp listener {:?} relays raw bytes to this pool (use strategy: consistent_hash with hash_on: source_ip)",
                    l.name
                ),
            );
        }
        if let Some(hash) = hash.filter(|h| h.hash_on.needs_http()) {
            v.error(
                &field(&field("pools", pool), "hash_on"),
                format!(
                    "hash_on {} needs HTTP requests; tcp listener {:?} relays raw bytes to this pool (use source_ip)",
                    hash.hash_on.describe(),
                    l.name
                ),
            );
        }
    }
}

/// Collects errors and knows where each path is in the file.
pub(crate) struct Validator<'a> {
    file: &'a Path,
    index: &'a PositionIndex,
    io: Io,
    errors: Vec<ConfigError>,
}

impl Validator<'_> {
    /// An error about the field at `path`, placed where its entry starts: at its key for a
    /// mapping entry (`timeout: fast` is reported at `timeout`, as editors expect), at the
    /// item for a list item.
    pub(crate) fn error(&mut self, path: &str, message: impl Into<String>) {
        let pos = self.index.key(path, 0);
        self.push(pos, path, message.into());
    }

    /// An error about the key of the `nth` occurrence of `path` (a duplicate name, say).
    pub(crate) fn error_at_key(&mut self, path: &str, nth: usize, message: impl Into<String>) {
        let pos = self.index.key(path, nth);
        self.push(pos, path, message.into());
    }

    fn push(&mut self, pos: Pos, path: &str, message: String) {
        self.errors.push(ConfigError {
            file: self.file.to_path_buf(),
            line: pos.line,
            column: pos.column,
            path: path.to_owned(),
            message,
        });
    }

    /// Reports every field of `fields` (name, whether it is set) under `parent` that is
    /// set, saying `why(name)`: settings that would silently do nothing where they stand
    /// are refused rather than ignored.
    pub(crate) fn inert(
        &mut self,
        parent: &str,
        fields: &[(&str, bool)],
        why: impl Fn(&str) -> String,
    ) {
        for &(name, set) in fields {
            if set {
                self.error(&field(parent, name), why(name));
            }
        }
    }

    /// `None` after reporting `message` at `path` when `protocol` is tcp: the one check
    /// of every HTTP-only listener setting.
    pub(crate) fn http_only(
        &mut self,
        path: &str,
        protocol: Protocol,
        message: &str,
    ) -> Option<()> {
        if protocol == Protocol::Tcp {
            self.error(path, message);
            return None;
        }
        Some(())
    }

    /// A required field missing from the mapping at `parent`: reported at the mapping.
    pub(crate) fn missing(&mut self, parent: &str, field: &str, why: &str) {
        self.error(parent, format!("missing field `{field}`{why}"));
    }

    /// Where the entry at `path` is, for errors found after validation (TLS files).
    pub(crate) fn origin(&self, path: &str) -> crate::tls::Origin {
        let pos = self.index.key(path, 0);
        crate::tls::Origin {
            file: self.file.to_path_buf(),
            line: pos.line,
            column: pos.column,
            path: path.to_owned(),
        }
    }

    /// The line on which `path` is, for "first defined at line N" hints.
    pub(crate) fn line_of(&self, path: &str) -> usize {
        self.index.key(path, 0).line
    }

    /// Whether `path` can be opened for reading (always, offline).
    pub(crate) fn can_open(&self, path: &Path) -> std::io::Result<()> {
        match self.io {
            Io::Real => std::fs::File::open(path).map(drop),
            Io::Offline => Ok(()),
        }
    }

    /// A resolved socket address, or a placeholder after reporting why not.
    pub(crate) fn socket_addr(&mut self, text: &Text, path: &str) -> SocketAddr {
        value::socket_addr(text.as_str(), self.io).unwrap_or_else(|message| {
            self.error(path, message);
            PLACEHOLDER_ADDR
        })
    }

    /// `value` checked by `check`; `default` when absent, or after reporting at `path`
    /// why `check` refused it (so one bad field never hides the next).
    fn checked<V, T>(
        &mut self,
        value: Option<V>,
        path: &str,
        default: T,
        check: impl FnOnce(V) -> Result<T, String>,
    ) -> T {
        let Some(value) = value else {
            return default;
        };
        check(value).unwrap_or_else(|message| {
            self.error(path, message);
            default
        })
    }

    /// The keyword at `path`: `default`'s when absent, else the value of the matching
    /// choice; anything else is reported as an unknown `what`, naming the choices, and
    /// `default` taken.
    pub(crate) fn keyword<T: Copy>(
        &mut self,
        text: Option<&Text>,
        path: &str,
        what: &str,
        default: (&str, T),
        others: &[(&str, T)],
    ) -> T {
        self.checked(text, path, default.1, |text| {
            let choices = || std::iter::once(&default).chain(others);
            if let Some(&(_, value)) = choices().find(|(name, _)| *name == text.as_str()) {
                return Ok(value);
            }
            let names: Vec<&str> = choices().map(|(name, _)| *name).collect();
            let expected = match names.split_last() {
                Some((last, [])) => (*last).to_owned(),
                Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
                None => String::new(),
            };
            Err(format!(
                "unknown {what} {:?} (expected {expected})",
                text.as_str()
            ))
        })
    }

    /// The duration at `path`, which must be positive; `default` when absent.
    pub(crate) fn duration(
        &mut self,
        text: Option<&Text>,
        path: &str,
        default: Duration,
    ) -> Duration {
        self.checked(text, path, default, |text| {
            match value::duration(text.as_str())? {
                d if d.is_zero() => Err("must be greater than zero".to_owned()),
                d => Ok(d),
            }
        })
    }

    /// The duration at `path`, zero (`0`, `0s`) allowed, at most `max` (`max_text` in
    /// the error); `default` when
    /// absent. For settings whose zero means "none", not "instantly", such as the
    /// shutdown grace.
    pub(crate) fn duration_upto(
        &mut self,
        text: Option<&Text>,
        path: &str,
        (max, max_text): (Duration, &str),
        default: Duration,
    ) -> Duration {
        self.checked(text, path, default, |text| {
            if text.as_str() == "0" {
                return Ok(Duration::ZERO);
            }
            match value::duration(text.as_str())? {
                d if d > max => Err(format!("must be at most {max_text}, got {}", text.as_str())),
                d => Ok(d),
            }
        })
    }

    /// A size in bytes (`65536`, `64KiB`, `1MiB`) within `range`, `default` when absent.
    pub(crate) fn size(
        &mut self,
        text: Option<&Text>,
        path: &str,
        range: std::ops::RangeInclusive<u64>,
        default: u32,
    ) -> u32 {
        self.checked(text, path, default, |text| {
            let n = value::size(text.as_str())?;
            if range.contains(&n) {
                return Ok(u32::try_from(n).unwrap_or(default));
            }
            let name = path.rsplit('.').next().unwrap_or(path);
            let (low, high) = (human_size(*range.start()), human_size(*range.end()));
            Err(format!(
                "{name} must be between {low} and {high}, got {:?}",
                text.as_str()
            ))
        })
    }

    /// An integer within `range`, `default` when absent.
    pub(crate) fn integer(
        &mut self,
        value: Option<Int>,
        path: &str,
        range: std::ops::RangeInclusive<i64>,
        default: u32,
    ) -> u32 {
        self.checked(value, path, default, |Int(value)| {
            match u32::try_from(value) {
                Ok(n) if range.contains(&value) => Ok(n),
                _ => {
                    let name = path.rsplit('.').next().unwrap_or(path);
                    Err(if *range.end() >= i64::from(u32::MAX) {
                        format!("{name} must be at least {}, got {value}", range.start())
                    } else {
                        format!(
                            "{name} must be between {} and {}, got {value}",
                            range.start(),
                            range.end()
                        )
                    })
                }
            }
        })
    }
}

/// `n` bytes as written in the file's units: `64KiB` when exact, else the byte count.
fn human_size(n: u64) -> String {
    match n {
        0 => "0".to_owned(),
        n if n % (1 << 20) == 0 => format!("{}MiB", n >> 20),
        n if n % (1 << 10) == 0 => format!("{}KiB", n >> 10),
        n => n.to_string(),
    }
}

/// `parent.field`.
pub(crate) fn field(parent: &str, name: &str) -> String {
    join(parent, name)
}
