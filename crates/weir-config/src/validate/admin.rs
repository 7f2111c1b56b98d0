//! Validation of `admin.api`: the token file must exist, be readable by its owner only
//! (`mode & 0o077 == 0`, as ssh demands of a private key) and hold a non-empty token.
//! Sticky cookies' `secret_file` is read by the same [`read_private`].

use std::path::Path;

use super::{field, Io, Validator};
use crate::admin::{ApiConfig, ApiToken};
use crate::raw::RawAdminApi;

/// Stands in for the token when validation may not open files (fuzzing).
const OFFLINE_TOKEN: &[u8] = b"offline";

pub(super) fn api(v: &mut Validator<'_>, raw: &RawAdminApi, path: &str) -> Option<ApiConfig> {
    let Some(text) = raw.token_file.as_ref() else {
        v.missing(
            path,
            "token_file",
            " (a file holding the bearer token, readable by its owner only)",
        );
        return None;
    };
    let at = field(path, "token_file");
    if text.as_str().trim().is_empty() {
        v.error(&at, "the token file name must not be empty");
        return None;
    }
    let token_file = resolve(v, text.as_str());
    let token = match v.io {
        Io::Offline => ApiToken::new(OFFLINE_TOKEN),
        Io::Real => match read_private(&token_file, "token") {
            Ok(token) => ApiToken::new(&token),
            Err(message) => {
                v.error(&at, message);
                return None;
            }
        },
    };
    Some(ApiConfig { token_file, token })
}

/// Resolves a file name written in the config against the config's directory.
pub(super) fn resolve(v: &Validator<'_>, written: &str) -> std::path::PathBuf {
    let written = Path::new(written);
    match v.file.parent() {
        Some(dir) if written.is_relative() => dir.join(written),
        _ => written.to_path_buf(),
    }
}

/// Reads a private file (the API token, a sticky cookie's key) whose content is
/// `what`, refusing a file others may read; one trailing newline (`echo`, editors) is
/// not part of the content.
pub(super) fn read_private(file: &Path, what: &str) -> Result<Vec<u8>, String> {
    use std::io::Read as _;
    let shown = file.display();
    let cannot = |e: std::io::Error| format!("cannot read the {what} file {shown}: {e}");
    // One handle for the checks and the read: the file checked is the file read.
    let mut handle = std::fs::File::open(file).map_err(cannot)?;
    let meta = handle.metadata().map_err(cannot)?;
    if !meta.is_file() {
        return Err(format!("the {what} file {shown} is not a regular file"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            let how = match (mode & 0o044 != 0, mode & 0o022 != 0) {
                (true, true) => "readable and writable",
                (true, false) => "readable",
                (false, true) => "writable",
                (false, false) => "executable",
            };
            return Err(format!(
                "the {what} file {shown} is {how} by group or others (mode {mode:04o}); \
                 make it readable by its owner only: chmod 600 {shown}"
            ));
        }
    }
    let mut bytes = Vec::new();
    handle.read_to_end(&mut bytes).map_err(cannot)?;
    let content = bytes
        .strip_suffix(b"\n")
        .map_or(&bytes[..], |t| t.strip_suffix(b"\r").unwrap_or(t));
    if content.is_empty() {
        return Err(format!("the {what} file {shown} is empty"));
    }
    if !content.iter().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "the {what} in {shown} must be printable ASCII without spaces or further lines"
        ));
    }
    Ok(content.to_vec())
}
