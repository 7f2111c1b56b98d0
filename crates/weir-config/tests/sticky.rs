//! `sticky` on a pool: the cookie name is required and a token, `ttl` positive, the
//! key file private, long enough and resolved from the config's directory, and a pool
//! behind a tcp listener refused; the key never shows in `Debug` output.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::{errors, errors_in, private_file, scratch_dir};
use weir_config::parse;

fn yaml(sticky: &str) -> String {
    format!(
        "listeners: [{{ name: web, listen: 127.0.0.1:0, routes: [{{ pool: web }}] }}]\npools:\n  web:\n    backends: [{{ address: 127.0.0.1:8081 }}]\n    sticky: {sticky}\n"
    )
}

fn dir(name: &str) -> PathBuf {
    scratch_dir("sticky", name)
}

fn key(dir: &Path, contents: &str, mode: u32) {
    private_file(dir, "sticky.key", contents, mode);
}

#[test]
fn a_cookie_with_ttl_and_a_private_key_file_relative_to_the_config() {
    let d = dir("ok");
    key(&d, "0123456789abcdef0123456789abcdef\n", 0o600);
    let y = yaml("{ cookie: WEIR_B, ttl: 1h, secret_file: sticky.key }");
    let config = parse(&y, &d.join("weir.yaml")).expect("valid");
    let sticky = config.pools[0].sticky.clone().expect("sticky");
    assert_eq!(sticky.cookie, "WEIR_B");
    assert_eq!(sticky.ttl, Some(Duration::from_secs(3600)));
    assert_eq!(sticky.secret_file, Some(d.join("sticky.key")));
    let secret = sticky.secret.clone().expect("read");
    assert_eq!(secret.as_bytes(), b"0123456789abcdef0123456789abcdef");
    assert!(
        !format!("{sticky:?}").contains("0123456789abcdef"),
        "Debug hides the key"
    );

    let plain = parse(&yaml("{ cookie: s }"), Path::new("weir.yaml")).expect("valid");
    let sticky = plain.pools[0].sticky.clone().expect("sticky");
    assert_eq!(
        (sticky.ttl, sticky.secret_file, sticky.secret),
        (None, None, None)
    );
}

#[test]
fn a_missing_or_bad_cookie_name_and_a_zero_ttl_are_errors_at_their_field() {
    assert_eq!(
        errors(&yaml("{ ttl: 1h }")),
        ["weir.yaml:5:5: pools.web.sticky: missing field `cookie` (the cookie's name, e.g. cookie: WEIR_B)"]
    );
    let bad = errors(&yaml("{ cookie: \"a b\" }"));
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(
        bad[0].starts_with("weir.yaml:5:15: pools.web.sticky.cookie: invalid cookie name \"a b\""),
        "{bad:?}"
    );
    assert_eq!(
        errors(&yaml("{ cookie: s, ttl: 0s }")),
        ["weir.yaml:5:26: pools.web.sticky.ttl: must be greater than zero"]
    );
    let unknown = errors(&yaml("{ cookie: s, domain: x }"));
    assert!(
        unknown[0]
            .contains("unknown field `domain`, expected one of `cookie`, `ttl`, `secret_file`"),
        "{unknown:?}"
    );
}

#[test]
fn a_key_file_open_to_others_short_or_missing_is_an_error() {
    for (name, contents, mode, want) in [
        (
            "group",
            "0123456789abcdef\n",
            0o640,
            "is readable by group or others (mode 0640)",
        ),
        (
            "short",
            "tooshort\n",
            0o600,
            "is 8 characters; use at least 16 (openssl rand -hex 32)",
        ),
        ("empty", "\n", 0o600, "is empty"),
    ] {
        let d = dir(name);
        key(&d, contents, mode);
        let y = yaml("{ cookie: s, secret_file: sticky.key }");
        let errs = errors_in(&y, &d.join("weir.yaml"));
        assert_eq!(errs.len(), 1, "{name}: {errs:?}");
        assert!(
            errs[0].contains("pools.web.sticky.secret_file: "),
            "{name}: {errs:?}"
        );
        assert!(errs[0].contains(want), "{name}: {errs:?}");
    }
    let d = dir("missing");
    let errs = errors_in(
        &yaml("{ cookie: s, secret_file: nope.key }"),
        &d.join("weir.yaml"),
    );
    assert!(errs[0].contains("cannot read the secret file"), "{errs:?}");
}

#[test]
fn a_sticky_pool_behind_a_tcp_listener_is_refused() {
    let y = "listeners: [{ name: db, listen: 127.0.0.1:0, protocol: tcp, pool: web }]\npools:\n  web:\n    backends: [{ address: 127.0.0.1:8081 }]\n    sticky: { cookie: s }\n";
    let errs = errors(y);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("weir.yaml:5:5: pools.web.sticky: sticky cookies need HTTP responses; tcp listener \"db\""),
        "{errs:?}"
    );
}
