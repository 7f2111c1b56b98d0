//! `listeners[].tls` and `pools.*.tls`: shapes, defaults, file checks, positions.

mod support;

use support::errors_in;

use std::path::{Path, PathBuf};
use std::time::Duration;

use weir_config::parse;
use weir_e2e::config::MINIMAL;

/// How the TLS tests' first listener starts: `web` with a certificate list, its entries
/// next.
const TLS_LISTENER_HEAD: &str =
    "listeners:\n  - name: web\n    listen: 127.0.0.1:0\n    tls:\n      certificates:\n";

/// A directory with `site.pem`, `site.key` and `ca.pem` (contents are not parsed here),
/// and the path of the config file in it.
fn dir_with_files(label: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("weir-config-tls-{label}-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("certs")).expect("temp dir");
    for f in ["certs/site.pem", "certs/site.key", "certs/ca.pem"] {
        std::fs::write(dir.join(f), "PEM\n").expect("write");
    }
    let file = dir.join("weir.yaml");
    (dir, file)
}

#[test]
fn tls_paths_are_relative_to_the_config_file_and_defaults_apply() {
    let (dir, file) = dir_with_files("ok");
    let yaml = format!(
        "\
{TLS_LISTENER_HEAD}        - {{ cert: certs/site.pem, key: certs/site.key }}
    routes:
      - pool: web
pools:
  web:
    backends:
      - {{ address: 127.0.0.1:8081 }}
    tls: {{ server_name: api.internal, ca: certs/ca.pem }}
"
    );
    let config = parse(&yaml, &file).expect("valid");
    let tls = config.listeners[0].tls.as_ref().expect("listener tls");
    assert_eq!(tls.handshake_timeout, Duration::from_secs(10));
    assert_eq!(tls.certificates[0].cert, dir.join("certs/site.pem"));
    assert_eq!(tls.certificates[0].key, dir.join("certs/site.key"));
    assert_eq!(tls.certificates[0].origin.line, 6);
    assert_eq!(
        tls.certificates[0].origin.path,
        "listeners[0].tls.certificates[0]"
    );
    let up = config.pools[0].tls.as_ref().expect("pool tls");
    assert_eq!(up.server_name.as_deref(), Some("api.internal"));
    assert_eq!(up.ca.as_deref(), Some(dir.join("certs/ca.pem").as_path()));
    assert!(up.verify, "verification is on by default");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn missing_files_fields_and_ca_are_reported_where_they_are() {
    let (dir, file) = dir_with_files("bad");
    let yaml = format!(
        "\
{TLS_LISTENER_HEAD}        - {{ cert: certs/missing.pem, key: certs/site.key }}
        - {{ cert: certs/site.pem }}
      handshake_timeout: soon
    routes:
      - pool: web
  - name: t
    listen: 127.0.0.1:0
    protocol: tcp
    pool: web
    tls: {{ certificates: [] }}
pools:
  web:
    backends:
      - {{ address: 127.0.0.1:8081 }}
    tls: {{ server_name: api.internal }}
"
    );
    let errs = errors_in(&yaml, &file);
    let f = file.display().to_string();
    assert_eq!(errs.len(), 5, "{errs:#?}");
    assert!(errs[0].starts_with(&format!("{f}:6:13: listeners[0].tls.certificates[0].cert: cannot read the certificate chain file ")), "{}", errs[0]);
    assert!(errs[0].contains("missing.pem"), "{}", errs[0]);
    assert_eq!(errs[1], format!("{f}:7:11: listeners[0].tls.certificates[1]: missing field `key` (the private key, a PEM file)"));
    assert!(
        errs[2].starts_with(&format!(
            "{f}:8:7: listeners[0].tls.handshake_timeout: invalid duration"
        )),
        "{}",
        errs[2]
    );
    assert_eq!(
        errs[3],
        format!("{f}:15:12: listeners[1].tls.certificates: at least one certificate is required")
    );
    assert!(
        errs[4].starts_with(&format!("{f}:20:5: pools.web.tls: missing field `ca`")),
        "{}",
        errs[4]
    );
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn verify_false_needs_no_ca() {
    let yaml = format!("{MINIMAL}    tls: {{ verify: false }}\n");
    let config = parse(&yaml, Path::new("weir.yaml")).expect("valid");
    let up = config.pools[0].tls.as_ref().expect("pool tls");
    assert!(!up.verify);
    assert_eq!(up.ca, None);
    assert_eq!(up.server_name, None);
}
