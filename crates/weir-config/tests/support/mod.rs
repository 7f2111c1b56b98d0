//! What the config test files share: the errors of a file that must not parse, printed
//! the way `weir check` prints them (`FILE:LINE:COLUMN: FIELD.PATH: message`).

#![allow(dead_code)] // each test file uses a different part

use std::path::{Path, PathBuf};

use weir_config::{parse, ConfigErrors};

/// Every error of `yaml` read as `weir.yaml`.
///
/// # Panics
/// When `yaml` is valid.
pub(crate) fn errors(yaml: &str) -> Vec<String> {
    errors_in(yaml, Path::new("weir.yaml"))
}

/// Every error of `yaml` read as `file` (relative paths in it resolve from there).
///
/// # Panics
/// When `yaml` is valid.
pub(crate) fn errors_in(yaml: &str, file: &Path) -> Vec<String> {
    match parse(yaml, file) {
        Ok(config) => panic!("expected errors, got a valid config: {config:?}"),
        Err(ConfigErrors(errors)) => errors.iter().map(ToString::to_string).collect(),
    }
}

/// A fresh directory `group/name-PID` under the test target's scratch space, for files a
/// config names (token and key files).
pub(crate) fn scratch_dir(group: &str, name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(group)
        .join(format!("{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("test dir");
    d
}

/// Writes `contents` to `dir/file` with permissions `mode`.
pub(crate) fn private_file(dir: &Path, file: &str, contents: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join(file);
    std::fs::write(&path, contents).expect("write the file");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}
