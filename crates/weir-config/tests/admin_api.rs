//! `admin.api`: the token file is read with the configuration and refused when missing,
//! empty, or readable by group or others; its path resolves from the config's directory;
//! the token never shows in `Debug` output.

mod support;

use std::path::{Path, PathBuf};

use support::{errors, errors_in, private_file, scratch_dir};
use weir_config::parse;

const POOL: &str = "listeners: [{ name: web, listen: 127.0.0.1:0, routes: [{ pool: web }] }]\npools:\n  web:\n    backends: [{ address: 127.0.0.1:8081 }]\n";

fn dir(name: &str) -> PathBuf {
    scratch_dir("admin-api", name)
}

fn token(dir: &Path, contents: &str, mode: u32) {
    private_file(dir, "admin.token", contents, mode);
}

fn yaml() -> String {
    format!("admin:\n  listen: 127.0.0.1:0\n  api: {{ token_file: admin.token }}\n{POOL}")
}

#[test]
fn private_token_is_read_relative_to_the_config_trailing_newline_trimmed() {
    let d = dir("ok");
    token(&d, "abc-123\n", 0o600);
    let config = parse(&yaml(), &d.join("weir.yaml")).expect("valid");
    let api = config.admin.api.expect("api enabled");
    assert_eq!(api.token.as_bytes(), b"abc-123");
    assert_eq!(api.token_file, d.join("admin.token"));
    assert!(
        !format!("{api:?}").contains("abc-123"),
        "Debug hides the token"
    );
    let off = parse(POOL, Path::new("weir.yaml")).expect("valid");
    assert!(off.admin.api.is_none(), "off by default");
}

#[test]
fn token_file_open_to_others_missing_or_empty_is_an_error() {
    for (name, contents, mode, want) in [
        (
            "group",
            "abc\n",
            0o640,
            "is readable by group or others (mode 0640)",
        ),
        (
            "world",
            "abc\n",
            0o644,
            "is readable by group or others (mode 0644)",
        ),
        (
            "writable",
            "abc\n",
            0o620,
            "is writable by group or others (mode 0620)",
        ),
        (
            "both",
            "abc\n",
            0o606,
            "is readable and writable by group or others (mode 0606)",
        ),
        ("empty", "\n", 0o600, "is empty"),
        ("spaces", "a b\n", 0o600, "printable ASCII without spaces"),
    ] {
        let d = dir(name);
        token(&d, contents, mode);
        let got = errors_in(&yaml(), &d.join("weir.yaml"));
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].contains(":3:10: admin.api.token_file: the token"),
            "{got:?}"
        );
        assert!(got[0].contains(want), "{name}: {got:?}");
    }
    let got = errors_in(&yaml(), &dir("missing").join("weir.yaml"));
    assert!(got[0].contains("cannot read the token file"), "{got:?}");
}

#[test]
fn api_block_shape_is_checked() {
    let missing = format!("admin:\n  api: {{}}\n{POOL}");
    assert_eq!(
        errors(&missing),
        ["weir.yaml:2:3: admin.api: missing field `token_file` (a file holding the bearer token, readable by its owner only)"]
    );
    let unknown = format!("admin:\n  api: {{ token: x }}\n{POOL}");
    let got = errors(&unknown);
    assert!(got[0].contains("unknown field `token`"), "{got:?}");
}
