//! The runtime API's settings (`admin.api`) and its bearer token.
//!
//! The token is read with the configuration (at start, by `weir check`, and again on
//! every SIGHUP), so a missing, empty or too widely readable token file refuses the
//! start or the reload exactly like any other configuration error, and the old token
//! keeps working until a valid new one is loaded.

use std::path::PathBuf;

/// `admin.api`: enables writes on the admin listener.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiConfig {
    /// The file the token was read from (resolved against the config's directory).
    pub token_file: PathBuf,
    /// The bearer token every write must present.
    pub token: ApiToken,
}

impl std::fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiConfig")
            .field("token_file", &self.token_file)
            .field("token", &self.token)
            .finish()
    }
}

/// A bearer token: printable ASCII without spaces, never empty. Its `Debug` hides it,
/// so it cannot leak into logs or the demo's config hash.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken(Box<[u8]>);

// === impl ApiToken ===

impl ApiToken {
    /// The token's bytes, for a constant-time comparison.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub(crate) fn new(bytes: &[u8]) -> Self {
        ApiToken(bytes.into())
    }
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken(<redacted>)")
    }
}
