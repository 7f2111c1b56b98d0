//! Validation of `pools.NAME.discovery`: one source (`dns`), its name, record type,
//! port (required for `a`/`aaaa`, refused for `srv`), resolver address and refresh.

use std::net::SocketAddr;

use super::{field, Validator};
use crate::discovery::{DiscoveryConfig, DnsDiscoveryConfig, DnsRecordType};
use crate::raw::{RawDiscovery, RawDns};

pub(super) fn discovery(
    v: &mut Validator<'_>,
    raw: &RawDiscovery,
    path: &str,
) -> Option<DiscoveryConfig> {
    let Some(dns_raw) = &raw.dns else {
        v.missing(path, "dns", " (the discovery source)");
        return None;
    };
    Some(DiscoveryConfig::Dns(dns(v, dns_raw, &field(path, "dns"))))
}

fn dns(v: &mut Validator<'_>, raw: &RawDns, path: &str) -> DnsDiscoveryConfig {
    let name = match &raw.name {
        None => {
            v.missing(path, "name", " (the DNS name to look up)");
            String::new()
        }
        Some(text) => {
            let name = text.as_str().trim();
            if let Err(why) = check_name(name) {
                v.error(
                    &field(path, "name"),
                    format!("invalid DNS name {:?} ({why})", text.as_str()),
                );
            }
            name.to_owned()
        }
    };
    let record_type = v.keyword(
        raw.kind.as_ref(),
        &field(path, "type"),
        "DNS record type",
        ("a", DnsRecordType::A),
        &[("aaaa", DnsRecordType::Aaaa), ("srv", DnsRecordType::Srv)],
    );
    let port = match (record_type, raw.port) {
        (DnsRecordType::Srv, Some(_)) => {
            v.error(
                &field(path, "port"),
                "`port` applies only to a and aaaa lookups (srv answers carry their ports)",
            );
            None
        }
        (DnsRecordType::Srv, None) => None,
        (_, None) => {
            v.missing(
                path,
                "port",
                " (the backends' port, required for a and aaaa lookups)",
            );
            None
        }
        (_, Some(p)) => u16::try_from(v.integer(Some(p), &field(path, "port"), 1..=65535, 1)).ok(),
    };
    let resolver = raw.resolver.as_ref().and_then(|text| {
        let parsed = text.as_str().parse::<SocketAddr>();
        if parsed.is_err() {
            v.error(
                &field(path, "resolver"),
                format!(
                    "invalid resolver address {:?} (expected ip:port, e.g. 127.0.0.1:53 or [::1]:53)",
                    text.as_str()
                ),
            );
        }
        parsed.ok()
    });
    let refresh = v.duration(
        raw.refresh.as_ref(),
        &field(path, "refresh"),
        DnsDiscoveryConfig::DEFAULT_REFRESH,
    );
    if refresh < DnsDiscoveryConfig::MIN_REFRESH {
        v.error(
            &field(path, "refresh"),
            format!(
                "refresh must be at least 1s, got {:?}",
                raw.refresh.as_ref().map_or("", |t| t.as_str())
            ),
        );
    }
    DnsDiscoveryConfig {
        name,
        record_type,
        port,
        resolver,
        refresh: refresh.max(DnsDiscoveryConfig::MIN_REFRESH),
    }
}

/// RFC 1035 limits: labels of 1..=63 bytes, 253 bytes in all, no spaces. Underscores are
/// allowed (SRV names start with them).
fn check_name(name: &str) -> Result<(), &'static str> {
    let bare = name.strip_suffix('.').unwrap_or(name);
    if bare.is_empty() {
        return Err("empty");
    }
    if bare.len() > 253 {
        return Err("longer than 253 bytes");
    }
    for label in bare.split('.') {
        if label.is_empty() {
            return Err("empty label");
        }
        if label.len() > 63 {
            return Err("a label is longer than 63 bytes");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err("only letters, digits, '-', '_' and '.' are allowed");
        }
    }
    Ok(())
}
