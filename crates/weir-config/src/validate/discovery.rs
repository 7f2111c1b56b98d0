//! Validation of `pools.NAME.discovery`: exactly one source.
//!
//! - `dns`: its name, record type, port (required for `a`/`aaaa`, refused for `srv`),
//!   resolver address and refresh.
//! - `kubernetes`: namespace (optional) and service as Kubernetes names (RFC 1123
//!   labels), port as a number or a Service port name (IANA service name). Refused
//!   by a build without the `kubernetes` feature, so `weir check` of that build says
//!   so instead of a weir that starts and never finds a backend.

use std::net::SocketAddr;

use super::{field, Validator};
use crate::discovery::{
    DiscoveryConfig, DnsDiscoveryConfig, DnsRecordType, KubernetesDiscoveryConfig, KubernetesPort,
};
use crate::raw::{RawDiscovery, RawDns, RawKubernetes};

pub(super) fn discovery(
    v: &mut Validator<'_>,
    raw: &RawDiscovery,
    path: &str,
) -> Option<DiscoveryConfig> {
    match (&raw.dns, &raw.kubernetes) {
        (Some(dns_raw), None) => Some(DiscoveryConfig::Dns(dns(v, dns_raw, &field(path, "dns")))),
        (None, Some(k)) => {
            let path = field(path, "kubernetes");
            let config = kubernetes(v, k, &path);
            if !cfg!(feature = "kubernetes") {
                v.error(
                    &path,
                    "this weir was built without Kubernetes discovery \
                     (cargo feature `kubernetes`, on by default)",
                );
            }
            Some(DiscoveryConfig::Kubernetes(config))
        }
        (Some(_), Some(_)) => {
            v.error(
                path,
                "one discovery source per pool: `dns` or `kubernetes`, not both",
            );
            None
        }
        (None, None) => {
            v.missing(path, "dns", " or `kubernetes` (the discovery source)");
            None
        }
    }
}

fn kubernetes(v: &mut Validator<'_>, raw: &RawKubernetes, path: &str) -> KubernetesDiscoveryConfig {
    let name = |v: &mut Validator<'_>, text: &crate::raw::Text, key: &str, what: &str| {
        let name = text.as_str().trim();
        if let Err(why) = check_k8s_name(name) {
            v.error(
                &field(path, key),
                format!("invalid Kubernetes {what} name {:?} ({why})", text.as_str()),
            );
        }
        name.to_owned()
    };
    let namespace = raw
        .namespace
        .as_ref()
        .map(|t| name(v, t, "namespace", "namespace"));
    let service = match &raw.service {
        Some(t) => name(v, t, "service", "Service"),
        None => {
            v.missing(
                path,
                "service",
                " (the Service whose EndpointSlices are watched)",
            );
            String::new()
        }
    };
    let port = match &raw.port {
        None => {
            v.missing(
                path,
                "port",
                " (a Service port name, or the endpoints' port number)",
            );
            KubernetesPort::Number(0)
        }
        Some(text) => {
            let t = text.as_str().trim();
            if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
                match t.parse::<u16>() {
                    Ok(p) if p > 0 => KubernetesPort::Number(p),
                    _ => {
                        v.error(
                            &field(path, "port"),
                            format!("port must be 1..=65535, got {t}"),
                        );
                        KubernetesPort::Number(0)
                    }
                }
            } else {
                if let Err(why) = check_port_name(t) {
                    v.error(
                        &field(path, "port"),
                        format!(
                            "invalid port {:?}: a number 1..=65535 or a Service port name ({why})",
                            text.as_str()
                        ),
                    );
                }
                KubernetesPort::Name(t.to_owned())
            }
        }
    };
    KubernetesDiscoveryConfig {
        namespace,
        service,
        port,
    }
}

/// 1..=`max` lower-case letters, digits and '-' (`too_long` past `max`): what
/// Kubernetes' names and port names have in common.
fn check_lower_dashed(name: &str, max: usize, too_long: &'static str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty");
    }
    if name.len() > max {
        return Err(too_long);
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err("only lower-case letters, digits and '-' are allowed");
    }
    Ok(())
}

/// An RFC 1123 label, as Kubernetes requires of namespace and Service names: 1..=63
/// lower-case letters, digits and '-', starting and ending with a letter or digit.
fn check_k8s_name(name: &str) -> Result<(), &'static str> {
    check_lower_dashed(name, 63, "longer than 63 characters")?;
    if name.starts_with('-') || name.ends_with('-') {
        return Err("must start and end with a letter or digit");
    }
    Ok(())
}

/// An IANA service name, as Kubernetes requires of port names: 1..=15 lower-case
/// letters, digits and '-', at least one letter, no '-' at either end or twice in a row.
fn check_port_name(name: &str) -> Result<(), &'static str> {
    check_lower_dashed(name, 15, "a port name is at most 15 characters")?;
    if !name.bytes().any(|b| b.is_ascii_lowercase()) {
        return Err("a port name has at least one letter");
    }
    if name.starts_with('-') || name.ends_with('-') || name.contains("--") {
        return Err("no '-' at either end or twice in a row");
    }
    Ok(())
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
