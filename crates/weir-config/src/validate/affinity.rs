//! Validation of a pool's `hash_on` and `balance_factor` (`strategy: consistent_hash`).

use super::{field, Validator};
use crate::affinity::{ConsistentHashConfig, HashOn, DEFAULT_BALANCE_FACTOR};
use crate::raw::RawPool;

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
