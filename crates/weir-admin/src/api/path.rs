//! `/pools/{pool}/backends/{address}`: splitting and percent-decoding the two names.
//!
//! A backend is named by its address as written in the config (`10.0.0.11:80`,
//! `[::1]:8080`, `web-1.internal:80`); clients may send `[`, `]` and `:` raw or
//! percent-encoded (`%5B%3A%3A1%5D%3A8080`).

/// `(pool, address)`, decoded; `None` unless the path has exactly that shape and both
/// names decode to non-empty UTF-8 without `/`.
pub(crate) fn parse(path: &str) -> Option<(String, String)> {
    let rest = path.strip_prefix("/pools/")?;
    let (pool, address) = rest.split_once("/backends/")?;
    let (pool, address) = (decode(pool)?, decode(address)?);
    let ok = |s: &str| !s.is_empty() && !s.contains('/');
    (ok(&pool) && ok(&address)).then_some((pool, address))
}

/// Percent-decoding (RFC 3986 §2.1); `None` for a malformed escape or non-UTF-8.
fn decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            // Two hex digits exactly: `from_str_radix` alone would take a sign (`%+5`).
            let hex = bytes.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_need_two_hex_digits() {
        assert_eq!(decode("a%2Fb").as_deref(), Some("a/b"));
        for bad in ["%+5", "%-5", "% 5", "%5", "%G0", "%"] {
            assert_eq!(decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn splits_and_decodes() {
        let got = |p: &str| parse(p).map(|(a, b)| format!("{a} {b}"));
        assert_eq!(
            got("/pools/web/backends/127.0.0.1:80").as_deref(),
            Some("web 127.0.0.1:80")
        );
        assert_eq!(
            got("/pools/web/backends/[::1]:80").as_deref(),
            Some("web [::1]:80")
        );
        assert_eq!(
            got("/pools/w%65b/backends/%5B%3A%3A1%5D%3A8080").as_deref(),
            Some("web [::1]:8080")
        );
        for bad in [
            "/pools/web",
            "/pools/web/backends/",
            "/pools//backends/a:1",
            "/pools/web/backends/a%2Fb",
            "/pools/web/backends/a/b",
            "/pools/web/backends/%zz",
            "/pools/web/backends/%4",
            "/pools/web/backends/%ff",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
