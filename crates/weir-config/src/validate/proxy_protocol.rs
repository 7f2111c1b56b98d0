//! Validation of a listener's PROXY protocol settings: `proxy_protocol` (sent to backends)
//! and `accept_proxy_protocol` (read from trusted sources).

use super::{field, Validator};
use crate::model::{AcceptProxyConfig, Cidr, Protocol, ProxyProtocolVersion};
use crate::position::index;
use crate::raw::{RawAcceptProxyProtocol, RawListener};

/// `proxy_protocol: v1 | v2`, on TCP listeners only: an HTTP listener talks to its
/// backends over pooled keep-alive connections shared by many clients, so one client's
/// address cannot be announced once per connection.
pub(super) fn send(
    v: &mut Validator<'_>,
    l: &RawListener,
    path: &str,
    protocol: Protocol,
) -> Option<ProxyProtocolVersion> {
    let text = l.proxy_protocol.as_ref()?;
    let path = field(path, "proxy_protocol");
    let version = match text.as_str() {
        "v1" => ProxyProtocolVersion::V1,
        "v2" => ProxyProtocolVersion::V2,
        other => {
            v.error(
                &path,
                format!("unknown PROXY protocol version {other:?} (expected v1 or v2)"),
            );
            return None;
        }
    };
    if protocol != Protocol::Tcp {
        v.error(
            &path,
            "the PROXY protocol is sent on tcp listeners only (an http listener adds X-Forwarded-For)",
        );
        return None;
    }
    Some(version)
}

/// `accept_proxy_protocol: { trusted: [CIDR, ...] }` with at least one block.
pub(super) fn accept(
    v: &mut Validator<'_>,
    raw: &RawAcceptProxyProtocol,
    path: &str,
) -> AcceptProxyConfig {
    let trusted_path = field(path, "trusted");
    let trusted = match raw.trusted.as_deref() {
        None => {
            v.missing(
                path,
                "trusted",
                " (the addresses allowed to send a PROXY header, e.g. [10.0.0.0/8])",
            );
            Vec::new()
        }
        Some([]) => {
            v.error(
                &trusted_path,
                "at least one trusted address block is required",
            );
            Vec::new()
        }
        Some(list) => list
            .iter()
            .enumerate()
            .filter_map(|(i, text)| {
                Cidr::parse(text.as_str())
                    .map_err(|message| v.error(&index(&trusted_path, i), message))
                    .ok()
            })
            .collect(),
    };
    AcceptProxyConfig { trusted }
}
