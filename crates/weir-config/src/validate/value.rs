//! Parsers for the scalar formats of the file: durations, addresses, status ranges, hosts.
//!
//! Each returns the message an operator reads on failure; the caller adds file, line,
//! column and field path. They know nothing of where the value came from.

use std::net::{SocketAddr, ToSocketAddrs};
use std::ops::RangeInclusive;
use std::time::Duration;

use super::Io;

const DURATION_HINT: &str = "expected a number and a unit: 250ms, 2s, 1m, 1h";

/// Whether `name` is a token (RFC 9110 §5.1; RFC 6265 §4.1.1 for cookie names), as
/// header and cookie names in keys must be.
pub(crate) fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// `name` if it is a token, else the message for a key form (`hash_on`, a rate limit
/// key) whose `what` (`header name`) in `place` is not, ending with the forms `expected`.
pub(crate) fn token_in<'a>(
    name: &'a str,
    what: &str,
    place: &str,
    expected: &str,
) -> Result<&'a str, String> {
    if is_token(name) {
        Ok(name)
    } else {
        Err(format!(
            "invalid {what} {name:?} in {place} ({expected}; a name is letters, digits and !#$%&'*+-.^_`|~)"
        ))
    }
}

/// `250ms`, `2s`, `1.5s`, `1m`, `1h`.
pub(crate) fn duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("invalid duration {text:?} ({DURATION_HINT})");
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(invalid)?;
    let (number, unit) = text.split_at(split);
    let unit_nanos: u128 = match unit {
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60 * 1_000_000_000,
        "h" => 3_600 * 1_000_000_000,
        _ => return Err(invalid()),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits_only = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty()
        || !digits_only(whole)
        || !digits_only(fraction)
        || (number.contains('.') && fraction.is_empty())
    {
        return Err(invalid());
    }
    let too_long = || format!("duration {text:?} is too long");
    // Nanoseconds in u128: exact for every value a u64 of nanoseconds can hold.
    let whole: u128 = whole.parse().map_err(|_| too_long())?;
    let mut nanos = whole.checked_mul(unit_nanos).ok_or_else(too_long)?;
    if !fraction.is_empty() {
        // Beyond nanosecond precision the extra digits cannot matter.
        let fraction = &fraction[..fraction.len().min(18)];
        let scale = 10u128.pow(fraction.len() as u32);
        let fraction: u128 = fraction.parse().map_err(|_| invalid())?;
        nanos += fraction * unit_nanos / scale;
    }
    let nanos = u64::try_from(nanos).map_err(|_| too_long())?;
    Ok(Duration::from_nanos(nanos))
}

const SIZE_HINT: &str = "expected bytes or a number and a unit: 65536, 64KiB, 1MiB";

/// A size in bytes: `65536`, `64KiB`, `1MiB`, `1GiB` (binary units, as in the README).
pub(crate) fn size(text: &str) -> Result<u64, String> {
    let invalid = || format!("invalid size {text:?} ({SIZE_HINT})");
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let scale: u64 = match unit {
        "" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return Err(invalid()),
    };
    if number.is_empty() {
        return Err(invalid());
    }
    let too_large = || format!("size {text:?} is too large");
    let n: u64 = number.parse().map_err(|_| too_large())?;
    n.checked_mul(scale).ok_or_else(too_large)
}

/// A socket address: `127.0.0.1:80`, `[::1]:80`, or `host:port` resolved now (the first
/// IPv4 result if there is one, as most backends listen on IPv4 only). Offline, a
/// well-formed `host:port` stands for the unspecified address with that port.
pub(crate) fn socket_addr(text: &str, io: Io) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let invalid = |why: &str| {
        format!("invalid address {text:?} ({why}; expected host:port, e.g. 127.0.0.1:8080, [::1]:8080 or localhost:8080)")
    };
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(invalid("no port"));
    };
    if host.is_empty() {
        return Err(invalid("no host"));
    }
    if host.contains(':') || host.starts_with('[') {
        return Err(invalid("an IPv6 address goes in brackets"));
    }
    let Ok(port) = port.parse::<u16>() else {
        return Err(invalid(&format!(
            "port {port:?} is not a number from 0 to 65535"
        )));
    };
    if host.chars().any(|c| c.is_whitespace() || c == '/') {
        return Err(invalid("not a host name"));
    }
    if io == Io::Offline {
        return Ok(SocketAddr::new(
            std::net::Ipv4Addr::UNSPECIFIED.into(),
            port,
        ));
    }
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve host {host:?}: {e}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| format!("cannot resolve host {host:?}: no addresses found"))
}

/// `200` or `200-399`, within 100..=599.
pub(crate) fn status_range(text: &str) -> Result<RangeInclusive<u16>, String> {
    let invalid =
        || format!("invalid status {text:?} (expected a status like 200 or a range like 200-399)");
    let (low, high) = text.split_once('-').unwrap_or((text, text));
    let low: u16 = low.trim().parse().map_err(|_| invalid())?;
    let high: u16 = high.trim().parse().map_err(|_| invalid())?;
    for status in [low, high] {
        if !(100..=599).contains(&status) {
            return Err(format!(
                "status {status} is not an HTTP status (100 to 599)"
            ));
        }
    }
    if low > high {
        return Err(format!(
            "empty status range {text:?} (the low end comes first)"
        ));
    }
    Ok(low..=high)
}

/// A route's host: lower-cased, without port, optionally `*.` + a domain.
pub(crate) fn route_host(text: &str) -> Result<String, String> {
    let host = text.to_ascii_lowercase();
    let domain = host.strip_prefix("*.").unwrap_or(&host);
    let valid = !domain.is_empty()
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_');
    if valid {
        Ok(host)
    } else {
        Err(format!(
            "invalid host {text:?} (expected a host name without port, like api.example.com or *.example.com)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_with_each_unit_parse() {
        assert_eq!(duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(duration("0.25ms"), Ok(Duration::from_micros(250)));
        assert_eq!(duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn malformed_durations_are_rejected_with_a_hint() {
        for bad in [
            "fast", "", "2", "s", "2 s", "2sec", "-1s", ".5s", "1.s", "1.2.3s", "2S",
        ] {
            let err = duration(bad).expect_err(bad);
            assert_eq!(
                err,
                format!(
                    "invalid duration {bad:?} (expected a number and a unit: 250ms, 2s, 1m, 1h)"
                )
            );
        }
        assert!(duration("99999999999999999999h").is_err());
    }

    #[test]
    fn sizes_take_bytes_or_binary_units() {
        assert_eq!(size("65536"), Ok(65_536));
        assert_eq!(size("64KiB"), Ok(65_536));
        assert_eq!(size("1MiB"), Ok(1_048_576));
        assert_eq!(size("2GiB"), Ok(2 << 30));
        assert_eq!(size("0"), Ok(0));
        for bad in [
            "", "KiB", "64 KiB", "64kb", "64KB", "1.5MiB", "-1", "64k", "1MiBs",
        ] {
            assert_eq!(
                size(bad),
                Err(format!(
                    "invalid size {bad:?} (expected bytes or a number and a unit: 65536, 64KiB, 1MiB)"
                )),
                "{bad}"
            );
        }
        assert!(size("99999999999999999999GiB")
            .expect_err("overflow")
            .contains("too large"));
        assert!(size("99999999999GiB")
            .expect_err("overflow")
            .contains("too large"));
    }

    #[test]
    fn addresses_parse_ipv4_ipv6_and_hostnames() {
        assert_eq!(
            socket_addr("127.0.0.1:80", Io::Real),
            Ok("127.0.0.1:80".parse().expect("addr"))
        );
        assert_eq!(
            socket_addr("[::1]:80", Io::Real),
            Ok("[::1]:80".parse().expect("addr"))
        );
        let local = socket_addr("localhost:80", Io::Real).expect("localhost resolves");
        assert!(local.ip().is_loopback());
        assert_eq!(local.port(), 80);
    }

    #[test]
    fn bad_addresses_say_why() {
        for (addr, why) in [
            ("8080", "no port"),
            (":80", "no host"),
            ("::1:80", "brackets"),
            ("a:99999", "port \"99999\""),
        ] {
            let err = socket_addr(addr, Io::Real).expect_err(addr);
            assert!(err.contains(why), "{addr}: {err}");
        }
        let err = socket_addr("no-such-host.invalid:80", Io::Real).expect_err("unresolvable");
        assert!(
            err.starts_with("cannot resolve host \"no-such-host.invalid\""),
            "{err}"
        );
    }

    #[test]
    fn status_ranges_accept_one_code_or_a_range() {
        assert_eq!(status_range("200"), Ok(200..=200));
        assert_eq!(status_range("200-399"), Ok(200..=399));
        assert!(status_range("99").is_err());
        assert!(status_range("200-600").is_err());
        assert!(status_range("399-200")
            .expect_err("reversed")
            .contains("empty"));
        assert!(status_range("ok").is_err());
    }

    #[test]
    fn route_hosts_are_lower_cased_and_may_be_wildcards() {
        assert_eq!(
            route_host("API.Example.com"),
            Ok("api.example.com".to_owned())
        );
        assert_eq!(route_host("*.example.com"), Ok("*.example.com".to_owned()));
        assert!(route_host("example.com:80").is_err());
        assert!(route_host("*.").is_err());
        assert!(route_host("a..b").is_err());
    }
}
