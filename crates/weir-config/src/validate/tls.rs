//! Validation of `listeners[].tls` and `pools.*.tls`.
//!
//! Paths are taken relative to the configuration file's directory, so a config and its
//! certificates move together. Each file must be readable now: a typo in a path is
//! reported by `weir check` rather than at the first handshake. Parsing the PEM and
//! matching key to certificate is left to `weir-proxy`, which has the cryptography.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{field, Validator};
use crate::position::index;
use crate::raw::{RawListenerTls, RawUpstreamTls, Text};
use crate::tls::{CertificateConfig, ListenerTlsConfig, UpstreamTlsConfig};

/// Default `tls.handshake_timeout`.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) fn listener(
    v: &mut Validator<'_>,
    raw: &RawListenerTls,
    path: &str,
) -> ListenerTlsConfig {
    let handshake_timeout = v.duration(
        raw.handshake_timeout.as_ref(),
        &field(path, "handshake_timeout"),
        HANDSHAKE_TIMEOUT,
    );
    let list_path = field(path, "certificates");
    let certificates = match raw.certificates.as_deref() {
        None => {
            v.missing(path, "certificates", " (at least one { cert, key } pair)");
            Vec::new()
        }
        Some([]) => {
            v.error(&list_path, "at least one certificate is required");
            Vec::new()
        }
        Some(list) => list
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let at = index(&list_path, i);
                let cert = file(v, c.cert.as_ref(), &at, "cert", "certificate chain");
                let key = file(v, c.key.as_ref(), &at, "key", "private key");
                CertificateConfig {
                    cert,
                    key,
                    origin: v.origin(&at),
                }
            })
            .collect(),
    };
    ListenerTlsConfig {
        certificates,
        handshake_timeout,
    }
}

pub(super) fn upstream(
    v: &mut Validator<'_>,
    raw: &RawUpstreamTls,
    path: &str,
) -> UpstreamTlsConfig {
    let verify = raw.verify.unwrap_or(true);
    let server_name = raw.server_name.as_ref().and_then(|n| {
        let name = n.as_str().trim();
        if name.is_empty() {
            v.error(&field(path, "server_name"), "server_name must not be empty");
            None
        } else {
            Some(name.to_owned())
        }
    });
    let ca = match &raw.ca {
        Some(text) => Some(readable(v, text, &field(path, "ca"), "CA certificates")),
        None if verify => {
            v.missing(
                path,
                "ca",
                " (the CA certificates that sign the backends' certificates, a PEM file; \
                 this build does not read the system's trust store)",
            );
            None
        }
        None => None,
    };
    UpstreamTlsConfig {
        server_name,
        ca,
        verify,
        origin: v.origin(path),
    }
}

/// The required file field `name` of the entry at `at`, resolved and checked readable.
fn file(v: &mut Validator<'_>, text: Option<&Text>, at: &str, name: &str, what: &str) -> PathBuf {
    match text {
        None => {
            v.missing(at, name, &format!(" (the {what}, a PEM file)"));
            PathBuf::new()
        }
        Some(text) => readable(v, text, &field(at, name), what),
    }
}

/// `text` joined to the config file's directory; an error unless it can be opened.
fn readable(v: &mut Validator<'_>, text: &Text, path: &str, what: &str) -> PathBuf {
    let written = Path::new(text.as_str());
    let resolved = match v.file.parent() {
        Some(dir) if written.is_relative() => dir.join(written),
        _ => written.to_path_buf(),
    };
    if text.as_str().trim().is_empty() {
        v.error(path, format!("the {what} file name must not be empty"));
    } else if let Err(e) = v.can_open(&resolved) {
        v.error(
            path,
            format!("cannot read the {what} file {}: {e}", resolved.display()),
        );
    }
    resolved
}
