//! Validation of a pool's `hash_on` and `balance_factor` (`strategy: consistent_hash`)
//! and of its `sticky` cookie.

use super::{field, Io, Validator};
use crate::affinity::{
    ConsistentHashConfig, HashOn, StickyConfig, StickySecret, DEFAULT_BALANCE_FACTOR,
};
use crate::raw::{RawPool, RawSticky};

/// The shortest sticky key accepted: 16 characters (`openssl rand -hex 32` gives 64).
const MIN_SECRET: usize = 16;

/// Stands in for the key when validation may not open files (fuzzing).
const OFFLINE_SECRET: &[u8] = b"offline-sticky-key";

/// The consistent-hash settings of pool `p` at `path`: `Some` exactly when `hashed`
/// (the strategy is `consistent_hash`); `hash_on`/`balance_factor` on another strategy are
/// an error, since they would silently do nothing.
pub(super) fn consistent_hash(
    v: &mut Validator<'_>,
    p: &RawPool,
    path: &str,
    hashed: bool,
) -> Option<ConsistentHashConfig> {
    if !hashed {
        v.inert(
            path,
            &[
                ("hash_on", p.hash_on.is_some()),
                ("balance_factor", p.balance_factor.is_some()),
            ],
            |name| format!("{name} only applies to strategy: consistent_hash"),
        );
        return None;
    }
    let hash_on = match &p.hash_on {
        None => HashOn::SourceIp,
        Some(text) => hash_on(text.as_str())
            .map_err(|message| v.error(&field(path, "hash_on"), message))
            .unwrap_or(HashOn::SourceIp),
    };
    let balance_factor = match &p.balance_factor {
        None => DEFAULT_BALANCE_FACTOR,
        Some(text) => balance_factor(text.as_str())
            .map_err(|message| v.error(&field(path, "balance_factor"), message))
            .unwrap_or(DEFAULT_BALANCE_FACTOR),
    };
    Some(ConsistentHashConfig {
        hash_on,
        balance_factor,
    })
}

/// A pool's `sticky` block at `path`: `cookie` required, `ttl` positive, the key file
/// private and at least [`MIN_SECRET`] characters long.
pub(super) fn sticky(v: &mut Validator<'_>, raw: &RawSticky, path: &str) -> Option<StickyConfig> {
    let Some(name) = raw.cookie.as_ref() else {
        v.missing(path, "cookie", " (the cookie's name, e.g. cookie: WEIR_B)");
        return None;
    };
    let cookie = match super::value::token_in(name.as_str(), "cookie name", "sticky", "e.g. WEIR_B")
    {
        Ok(n) => n.to_owned(),
        Err(message) => {
            v.error(&field(path, "cookie"), message);
            return None;
        }
    };
    let ttl = raw.ttl.as_ref().map(|t| {
        v.duration(
            Some(t),
            &field(path, "ttl"),
            std::time::Duration::from_secs(3600),
        )
    });
    let (secret_file, secret) = match raw.secret_file.as_ref() {
        None => (None, None),
        Some(text) => {
            let at = field(path, "secret_file");
            if text.as_str().trim().is_empty() {
                v.error(&at, "the secret file name must not be empty");
                return None;
            }
            let file = super::admin::resolve(v, text.as_str());
            let secret = match v.io {
                Io::Offline => StickySecret::new(OFFLINE_SECRET),
                Io::Real => match super::admin::read_private(&file, "secret") {
                    Ok(bytes) if bytes.len() >= MIN_SECRET => StickySecret::new(&bytes),
                    Ok(bytes) => {
                        v.error(
                            &at,
                            format!(
                                "the secret in {} is {} characters; use at least {MIN_SECRET} (openssl rand -hex 32)",
                                file.display(),
                                bytes.len()
                            ),
                        );
                        return None;
                    }
                    Err(message) => {
                        v.error(&at, message);
                        return None;
                    }
                },
            };
            (Some(file), Some(secret))
        }
    };
    Some(StickyConfig {
        cookie,
        ttl,
        secret_file,
        secret,
    })
}

/// `source_ip`, `path`, `header:NAME` (lower-cased) or `cookie:NAME`.
fn hash_on(text: &str) -> Result<HashOn, String> {
    match text {
        "source_ip" => return Ok(HashOn::SourceIp),
        "path" => return Ok(HashOn::Path),
        _ => {}
    }
    let expected = "expected source_ip, path, header:NAME or cookie:NAME";
    let (kind, name) = text
        .split_once(':')
        .ok_or_else(|| format!("unknown hash_on {text:?} ({expected})"))?;
    let name = super::value::token_in(name, "name", "hash_on", expected)?;
    match kind {
        "header" => Ok(HashOn::Header(name.to_ascii_lowercase())),
        "cookie" => Ok(HashOn::Cookie(name.to_owned())),
        _ => Err(format!("unknown hash_on {text:?} ({expected})")),
    }
}

/// A number from 1 to 100: `1.25`, `2`.
fn balance_factor(text: &str) -> Result<f64, String> {
    let invalid =
        || format!("invalid balance_factor {text:?} (expected a number from 1 to 100, e.g. 1.25)");
    if !text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(invalid());
    }
    let f: f64 = text.parse().map_err(|_| invalid())?;
    if (1.0..=100.0).contains(&f) {
        Ok(f)
    } else {
        Err(invalid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_on_takes_four_forms() {
        assert_eq!(hash_on("source_ip"), Ok(HashOn::SourceIp));
        assert_eq!(hash_on("path"), Ok(HashOn::Path));
        assert_eq!(
            hash_on("header:X-User"),
            Ok(HashOn::Header("x-user".to_owned()))
        );
        assert_eq!(hash_on("cookie:Sid"), Ok(HashOn::Cookie("Sid".to_owned())));
        for bad in ["header:", "cookie:a b", "query:x", "ip", "header:x:y"] {
            assert!(hash_on(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn balance_factor_is_between_one_and_a_hundred() {
        assert_eq!(balance_factor("1.25"), Ok(1.25));
        assert_eq!(balance_factor("2"), Ok(2.0));
        for bad in ["0.5", "101", "-1", "x", "1e3", "NaN", "inf"] {
            assert!(balance_factor(bad).is_err(), "{bad}");
        }
    }
}
