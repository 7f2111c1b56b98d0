//! Validation of the traffic policies a listener or route carries: `rate_limit` and the
//! access lists `allow` / `deny`.
//!
//! A CIDR with host bits set (`10.1.2.3/8`) is taken as its network (`10.0.0.0/8`), as
//! HAProxy and nginx take it (nginx also warns); `/status` shows the normalised block.

use super::{field, Validator};
use crate::model::{Cidr, RateLimitConfig, RateLimitKey};
use crate::position::index;
use crate::raw::{RawRateLimit, Text};

/// The highest `requests_per_second`: one token per microsecond, beyond which one
/// weir instance could not tell a limit from none anyway.
const MAX_MILLI_RPS: u64 = 1_000_000_000;
/// The largest `burst`.
const MAX_BURST: i64 = 1_000_000;

/// `rate_limit: { requests_per_second, burst, key }` at `path`; `None` after an error.
pub(super) fn rate_limit(
    v: &mut Validator<'_>,
    raw: &RawRateLimit,
    path: &str,
) -> Option<RateLimitConfig> {
    let errors_before = v.errors.len();
    let milli = match &raw.requests_per_second {
        None => {
            v.missing(
                path,
                "requests_per_second",
                " (the rate tokens come back at, e.g. 100)",
            );
            None
        }
        Some(text) => rate(text.as_str())
            .map_err(|message| v.error(&field(path, "requests_per_second"), message))
            .ok(),
    };
    // One second's worth: a client quiet for a second may send that many at once.
    let default_burst = milli.map_or(1, |m| u32::try_from(m.div_ceil(1000)).unwrap_or(1));
    let burst = v.integer(
        raw.burst,
        &field(path, "burst"),
        1..=MAX_BURST,
        default_burst.max(1),
    );
    let key = match &raw.key {
        None => RateLimitKey::SourceIp,
        Some(text) => key(text.as_str())
            .map_err(|message| v.error(&field(path, "key"), message))
            .unwrap_or(RateLimitKey::None),
    };
    if v.errors.len() != errors_before {
        return None;
    }
    Some(RateLimitConfig {
        millirequests_per_second: milli?,
        burst,
        key,
    })
}

/// `100`, `0.5`, `2.125`: requests per second with at most three decimals, as
/// thousandths.
fn rate(text: &str) -> Result<u64, String> {
    let invalid = || {
        format!("invalid rate {text:?} (expected requests per second, e.g. 100 or 0.5, with at most three decimals)")
    };
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) || fraction.len() > 3 {
        return Err(invalid());
    }
    if text.contains('.') && fraction.is_empty() {
        return Err(invalid());
    }
    let too_high = || "requests_per_second must be at most 1000000".to_owned();
    let whole: u64 = whole.parse().map_err(|_| too_high())?;
    let thousandths: u64 = format!("{fraction:0<3}").parse().map_err(|_| invalid())?;
    let milli = whole
        .checked_mul(1000)
        .and_then(|w| w.checked_add(thousandths))
        .ok_or_else(too_high)?;
    match milli {
        0 => Err("requests_per_second must be greater than zero".to_owned()),
        m if m > MAX_MILLI_RPS => Err(too_high()),
        m => Ok(m),
    }
}

/// `source_ip`, `none` or `header:NAME` (a valid header name, lower-cased).
fn key(text: &str) -> Result<RateLimitKey, String> {
    match text {
        "source_ip" => return Ok(RateLimitKey::SourceIp),
        "none" => return Ok(RateLimitKey::None),
        _ => {}
    }
    let expected = "expected source_ip, none or header:NAME";
    let Some(name) = text.strip_prefix("header:") else {
        return Err(format!("unknown rate limit key {text:?} ({expected})"));
    };
    let name = super::value::token_in(name, "header name", "rate limit key", expected)?;
    Ok(RateLimitKey::Header(name.to_ascii_lowercase()))
}

/// `allow` and `deny` at `path`: each a non-empty list of CIDRs.
pub(super) fn access_lists(
    v: &mut Validator<'_>,
    allow: Option<&[Text]>,
    deny: Option<&[Text]>,
    path: &str,
) -> (Option<Vec<Cidr>>, Vec<Cidr>) {
    let allow = allow.map(|list| cidrs(v, list, &field(path, "allow"), "allow"));
    let deny = deny.map_or_else(Vec::new, |list| {
        cidrs(v, list, &field(path, "deny"), "deny")
    });
    (allow, deny)
}

fn cidrs(v: &mut Validator<'_>, list: &[Text], path: &str, what: &str) -> Vec<Cidr> {
    if list.is_empty() {
        let hint = if what == "allow" {
            " (to refuse every client, deny: [0.0.0.0/0, ::/0])"
        } else {
            " (or leave `deny` out)"
        };
        v.error(
            path,
            format!("`{what}` must list at least one address block{hint}"),
        );
        return Vec::new();
    }
    list.iter()
        .enumerate()
        .filter_map(|(i, text)| {
            Cidr::parse(text.as_str())
                .map_err(|message| v.error(&index(path, i), message))
                .ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_take_up_to_three_decimals() {
        assert_eq!(rate("100"), Ok(100_000));
        assert_eq!(rate("0.5"), Ok(500));
        assert_eq!(rate("2.125"), Ok(2125));
        assert_eq!(rate("1000000"), Ok(MAX_MILLI_RPS));
        for bad in ["", "-1", "1.", ".5", "1.2345", "ten", "1e3", " 1"] {
            assert!(rate(bad).is_err(), "{bad:?}");
        }
        assert!(rate("0").is_err());
        assert!(rate("0.000").is_err());
        assert!(rate("1000001").is_err());
        assert!(rate("99999999999999999999999").is_err());
    }

    #[test]
    fn keys_are_source_ip_none_or_a_header_name() {
        assert_eq!(key("source_ip"), Ok(RateLimitKey::SourceIp));
        assert_eq!(key("none"), Ok(RateLimitKey::None));
        assert_eq!(
            key("header:X-Api-Key"),
            Ok(RateLimitKey::Header("x-api-key".to_owned()))
        );
        for bad in ["header:", "header:a b", "header:x:y", "cookie:a", "ip"] {
            assert!(key(bad).is_err(), "{bad:?}");
        }
    }
}
