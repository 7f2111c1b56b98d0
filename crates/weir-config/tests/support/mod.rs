//! What the config test files share: the errors of a file that must not parse, printed
//! the way `weir check` prints them (`FILE:LINE:COLUMN: FIELD.PATH: message`).

#![allow(dead_code)] // each test file uses a different part

use std::path::Path;

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
