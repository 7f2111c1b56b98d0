//! The private serde mirror of the file format (DESIGN.md §3), including the fields this
//! build parses but does not implement yet.
//!
//! These types only check the *shape* of the file: unknown fields (`deny_unknown_fields`),
//! mappings versus lists. Every scalar that has rules of its own (durations, addresses,
//! enumerations, numbers with ranges) is kept loosely typed here, as [`Text`] or `i64`, so
//! that validation can report all of its errors in one pass instead of stopping at the
//! first value serde dislikes. Required fields are `Option` for the same reason.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};

/// The whole file.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub(crate) admin: Option<RawAdmin>,
    pub(crate) shutdown_timeout: Option<Text>,
    pub(crate) shutdown_grace: Option<Text>,
    pub(crate) listeners: Option<Vec<RawListener>>,
    pub(crate) pools: Option<Ordered<RawPool>>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdmin {
    pub(crate) listen: Option<Text>,
    pub(crate) api: Option<RawAdminApi>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdminApi {
    pub(crate) token_file: Option<Text>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawListener {
    pub(crate) name: Option<Text>,
    pub(crate) listen: Option<Text>,
    pub(crate) protocol: Option<Text>,
    pub(crate) tls: Option<RawListenerTls>,
    pub(crate) routes: Option<Vec<RawRoute>>,
    pub(crate) pool: Option<Text>,
    pub(crate) timeouts: Option<RawListenerTimeouts>,
    pub(crate) max_connections: Option<Int>,
    pub(crate) access_log: Option<bool>,
    pub(crate) proxy_protocol: Option<Text>,
    pub(crate) accept_proxy_protocol: Option<RawAcceptProxyProtocol>,
    pub(crate) max_requests_per_connection: Option<Int>,
    pub(crate) http2: Option<RawHttp2>,
    pub(crate) rate_limit: Option<RawRateLimit>,
    pub(crate) allow: Option<Vec<Text>>,
    pub(crate) deny: Option<Vec<Text>>,
}

/// `rate_limit` of a listener or route.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRateLimit {
    pub(crate) requests_per_second: Option<Text>,
    pub(crate) burst: Option<Int>,
    pub(crate) key: Option<Text>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHttp2 {
    pub(crate) max_concurrent_streams: Option<Int>,
    pub(crate) max_header_list_size: Option<Text>,
    pub(crate) max_pending_reset_streams: Option<Int>,
    pub(crate) max_stream_errors: Option<Int>,
    pub(crate) initial_stream_window: Option<Text>,
    pub(crate) initial_connection_window: Option<Text>,
    pub(crate) keepalive_interval: Option<Text>,
    pub(crate) keepalive_timeout: Option<Text>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawListenerTls {
    pub(crate) certificates: Option<Vec<RawCertificate>>,
    pub(crate) handshake_timeout: Option<Text>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCertificate {
    pub(crate) cert: Option<Text>,
    pub(crate) key: Option<Text>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAcceptProxyProtocol {
    pub(crate) trusted: Option<Vec<Text>>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoute {
    #[serde(rename = "match")]
    pub(crate) matcher: Option<RawMatch>,
    pub(crate) pool: Option<Text>,
    pub(crate) redirect: Option<RawRedirect>,
    pub(crate) rewrite_path_prefix: Option<Text>,
    pub(crate) request_headers: Option<RawHeaderEdits>,
    pub(crate) response_headers: Option<RawHeaderEdits>,
    pub(crate) rate_limit: Option<RawRateLimit>,
    pub(crate) allow: Option<Vec<Text>>,
    pub(crate) deny: Option<Vec<Text>>,
}

/// `routes[].redirect`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRedirect {
    pub(crate) scheme: Option<Text>,
    pub(crate) host: Option<Text>,
    pub(crate) port: Option<Int>,
    pub(crate) path: Option<Text>,
    pub(crate) code: Option<Int>,
}

/// `routes[].request_headers` and `routes[].response_headers`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHeaderEdits {
    pub(crate) set: Option<Ordered<Text>>,
    pub(crate) add: Option<Ordered<Text>>,
    pub(crate) remove: Option<Vec<Text>>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMatch {
    pub(crate) host: Option<Text>,
    pub(crate) path_prefix: Option<Text>,
    pub(crate) methods: Option<Vec<Text>>,
    pub(crate) headers: Option<Ordered<Text>>,
    pub(crate) query: Option<Ordered<Text>>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawListenerTimeouts {
    pub(crate) header_read: Option<Text>,
    pub(crate) idle: Option<Text>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPool {
    pub(crate) strategy: Option<Text>,
    pub(crate) hash_on: Option<Text>,
    pub(crate) balance_factor: Option<Text>,
    pub(crate) backends: Option<Vec<RawBackend>>,
    pub(crate) health_check: Option<RawHealthCheck>,
    pub(crate) passive: Option<RawPassive>,
    pub(crate) fail_open: Option<bool>,
    pub(crate) slow_start: Option<Text>,
    pub(crate) timeouts: Option<RawPoolTimeouts>,
    pub(crate) retries: Option<Int>,
    pub(crate) retry_on: Option<Vec<Text>>,
    pub(crate) retry_budget: Option<RawRetryBudget>,
    pub(crate) tls: Option<RawUpstreamTls>,
    pub(crate) upstream_protocol: Option<Text>,
    pub(crate) discovery: Option<RawDiscovery>,
    pub(crate) max_in_flight: Option<Int>,
    pub(crate) queue: Option<RawQueue>,
    pub(crate) sticky: Option<RawSticky>,
}

/// `pools.NAME.sticky`: the cookie that pins a client to the backend that served it.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSticky {
    pub(crate) cookie: Option<Text>,
    pub(crate) ttl: Option<Text>,
    pub(crate) secret_file: Option<Text>,
}

/// `pools.NAME.queue`: where requests over `max_in_flight` wait.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawQueue {
    pub(crate) max: Option<Int>,
    pub(crate) timeout: Option<Text>,
}

/// `pools.NAME.discovery`: where backends come from besides `backends`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDiscovery {
    pub(crate) dns: Option<RawDns>,
    pub(crate) kubernetes: Option<RawKubernetes>,
}

/// `pools.NAME.discovery.kubernetes`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawKubernetes {
    pub(crate) namespace: Option<Text>,
    pub(crate) service: Option<Text>,
    pub(crate) port: Option<Text>,
}

/// `pools.NAME.discovery.dns`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDns {
    pub(crate) name: Option<Text>,
    #[serde(rename = "type")]
    pub(crate) kind: Option<Text>,
    pub(crate) port: Option<Int>,
    pub(crate) resolver: Option<Text>,
    pub(crate) refresh: Option<Text>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBackend {
    pub(crate) address: Option<Text>,
    pub(crate) weight: Option<Int>,
    pub(crate) backup: Option<bool>,
    pub(crate) max_in_flight: Option<Int>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHealthCheck {
    #[serde(rename = "type")]
    pub(crate) kind: Option<Text>,
    pub(crate) path: Option<Text>,
    pub(crate) host: Option<Text>,
    pub(crate) expect_status: Option<Text>,
    pub(crate) interval: Option<Text>,
    pub(crate) timeout: Option<Text>,
    pub(crate) rise: Option<Int>,
    pub(crate) fall: Option<Int>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPassive {
    pub(crate) consecutive_failures: Option<Int>,
    pub(crate) max_ejected_percent: Option<Int>,
    pub(crate) base_ejection_time: Option<Text>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPoolTimeouts {
    pub(crate) connect: Option<Text>,
    pub(crate) response: Option<Text>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRetryBudget {
    pub(crate) percent: Option<Int>,
    pub(crate) min_per_second: Option<Int>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUpstreamTls {
    pub(crate) server_name: Option<Text>,
    pub(crate) ca: Option<Text>,
    pub(crate) verify: Option<bool>,
}

// === impl Text ===

/// Any YAML scalar, kept as the text written in the file.
///
/// `listen: 8080` or `timeout: 30` are then reported by validation as an invalid address or
/// duration with the value quoted, rather than as a serde type error that stops parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Text(pub(crate) String);

impl Text {
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl Visitor<'_> for TextVisitor {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a single value (not a list or mapping)")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Text, E> {
                Ok(Text(v))
            }
        }
        // serde_yaml_ng hands any scalar to `deserialize_string` as the text written.
        deserializer.deserialize_string(TextVisitor)
    }
}

// === impl Int ===

/// A whole number, range-checked by validation (so `weight: 0` and `weight: 300` are
/// reported together with every other error rather than stopping serde).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Int(pub(crate) i64);

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IntVisitor;
        impl Visitor<'_> for IntVisitor {
            type Value = Int;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a whole number")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Int, E> {
                Ok(Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Int, E> {
                // Far beyond every range validation allows; saturating keeps it so.
                Ok(Int(i64::try_from(v).unwrap_or(i64::MAX)))
            }
        }
        deserializer.deserialize_i64(IntVisitor)
    }
}

// === impl Ordered ===

/// A YAML mapping kept in file order, duplicates included, so that pools keep the order
/// the operator wrote and validation can report a duplicate name where it is.
#[derive(Debug)]
pub(crate) struct Ordered<T>(pub(crate) Vec<(String, T)>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Ordered<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OrderedVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for OrderedVisitor<T> {
            type Value = Ordered<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping from name to value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered<T>, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some((key, value)) = map.next_entry::<Text, T>()? {
                    entries.push((key.0, value));
                }
                Ok(Ordered(entries))
            }
        }
        deserializer.deserialize_map(OrderedVisitor(std::marker::PhantomData))
    }
}
