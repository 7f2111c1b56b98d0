//! The passes over the text: syntax, limits and positions (`walk`, yaml-rust2), serde
//! for the structure, then validation with positions.
//!
//! Syntax errors are yaml-rust2's: serde only ever parses a text whose every node was
//! counted against the limits, and after a syntax error nothing was.
//!
//! serde_yaml_ng reports syntax errors, unknown fields and values of the wrong shape, and
//! stops at the first one (serde cannot resume inside a half-built value). Everything
//! past the structure is checked by `validate`, which collects every error.

use std::path::Path;

use crate::error::{ConfigError, ConfigErrors};
use crate::model::Config;
use crate::position::PositionIndex;
use crate::raw::RawConfig;
use crate::validate::{self, Io};
use crate::walk::{self, MAX_SOURCE_BYTES};

/// Parses and validates `source`, naming `file` in errors and in `Config::source`.
/// `io` says whether hostnames are resolved and files opened.
pub(crate) fn parse(source: &str, file: &Path, io: Io) -> Result<Config, ConfigErrors> {
    if source.len() > MAX_SOURCE_BYTES {
        return Err(too_large(file));
    }
    let index = walk::build(source).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: file.to_path_buf(),
            line: e.pos.line,
            column: e.pos.column,
            path: String::new(),
            message: e.message,
        }])
    })?;
    // An empty file (or one holding only comments) is a document with no fields: let
    // validation say what is missing instead of serde saying "EOF".
    let raw: Option<RawConfig> = serde_yaml_ng::from_str(source)
        .map_err(|e| ConfigErrors(vec![structural(&e, file, &index)]))?;
    let raw = raw.unwrap_or_default();
    validate::validate(&raw, file, &index, io).map_err(|mut errors| {
        // Stable: errors at the same spot keep the order they were found in.
        errors.sort_by_key(|e| (e.line, e.column));
        ConfigErrors(errors)
    })
}

/// The error for a file over [`MAX_SOURCE_BYTES`].
pub(crate) fn too_large(file: &Path) -> ConfigErrors {
    ConfigErrors(vec![ConfigError {
        file: file.to_path_buf(),
        line: 0,
        column: 0,
        path: String::new(),
        message: format!(
            "the configuration file is larger than {} MiB",
            MAX_SOURCE_BYTES >> 20
        ),
    }])
}

/// Turns serde_yaml_ng's one error into ours, splitting its `path: message at line L
/// column C` text into the path and the message.
fn structural(error: &serde_yaml_ng::Error, file: &Path, index: &PositionIndex) -> ConfigError {
    let (mut line, mut column) = error.location().map_or((0, 0), |l| (l.line(), l.column()));
    let mut text = error.to_string();
    let at = format!(" at line {line} column {column}");
    if let Some(i) = text.find(&at) {
        text.replace_range(i..i + at.len(), "");
    }
    let (path, message) = split_path(&text);
    // serde places a value of the wrong type at the value; validation places errors at the
    // field's key. Use one convention for the whole file.
    if message.starts_with("invalid ") && index.contains(path) {
        let pos = index.key(path, 0);
        (line, column) = (pos.line, pos.column);
    }
    ConfigError {
        file: file.to_path_buf(),
        line,
        column,
        path: path.to_owned(),
        message: message.to_owned(),
    }
}

/// What serde (and our own visitors) start their messages with. A path never contains
/// `": "` followed by one of these, so the split cannot cut a path in two.
const MESSAGE_STARTS: [&str; 9] = [
    "unknown field",
    "missing field",
    "duplicate field",
    "invalid type",
    "invalid value",
    "invalid length",
    "unknown variant",
    "data did not match",
    "recursion limit",
];

fn split_path(text: &str) -> (&str, &str) {
    MESSAGE_STARTS
        .iter()
        .filter_map(|start| text.find(&format!(": {start}")))
        .min()
        .map_or(("", text), |i| (&text[..i], &text[i + 2..]))
}

#[cfg(test)]
mod tests {
    use super::split_path;

    #[test]
    fn serde_messages_split_into_path_and_message() {
        assert_eq!(
            split_path("pools.web: unknown field `wieght`, expected one of `a`"),
            ("pools.web", "unknown field `wieght`, expected one of `a`")
        );
        assert_eq!(
            split_path("unknown field `x`, expected `y`"),
            ("", "unknown field `x`, expected `y`")
        );
        assert_eq!(
            split_path("did not find expected key, while parsing a block mapping"),
            (
                "",
                "did not find expected key, while parsing a block mapping"
            )
        );
    }
}
