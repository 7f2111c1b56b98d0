//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`), replayed over
//! their committed corpus by ordinary tests so that stable CI runs them too. Each checks
//! more than "no panic" where that is cheap.

use std::net::SocketAddr;

use weir_config::ProxyProtocolVersion;

use crate::proxy_protocol::{encode, parse_v1, parse_v2};
use crate::tls::sni::NameIndex;

/// The PROXY protocol parsers, v1 and v2, on a header as it arrives (`PROXY …\r\n` or
/// the v2 signature and fixed part) or on raw fields: a header that parses re-encodes
/// to one that parses to the same addresses.
pub fn fuzz_proxy_protocol(data: &[u8]) {
    if data.starts_with(b"PROXY ") {
        let line = match data.iter().position(|&b| b == b'\n') {
            Some(i) => &data[..=i],
            None => data,
        };
        if let Ok(Some((src, dst))) = parse_v1(line) {
            round_trip(ProxyProtocolVersion::V1, src, dst);
        }
    } else if let [_sig @ .., ver_cmd, family, hi, lo] = data.get(..16).unwrap_or_default() {
        let len = usize::from(u16::from_be_bytes([*hi, *lo]));
        let body = data.get(16..).unwrap_or_default();
        if let Ok(Some((src, dst))) = parse_v2(*ver_cmd, *family, &body[..len.min(body.len())]) {
            round_trip(ProxyProtocolVersion::V2, src, dst);
        }
    }
    if let [ver_cmd, family, body @ ..] = data {
        let _verdict = parse_v2(*ver_cmd, *family, body);
    }
}

fn round_trip(version: ProxyProtocolVersion, src: SocketAddr, dst: SocketAddr) {
    let header = encode(version, src, dst);
    let again = match version {
        ProxyProtocolVersion::V1 => parse_v1(&header),
        ProxyProtocolVersion::V2 => parse_v2(header[12], header[13], &header[16..]),
    };
    assert_eq!(again, Ok(Some((src, dst))), "{version:?} {src} -> {dst}");
}

/// The HTTP/1 request head parser (weir-h1, which decides every framing rule):
/// however the bytes are split into reads, the verdict is the same as for all of them
/// at once (the same head length and framing, or the same refusal), and it never
/// panics. The first byte picks the read size.
pub fn fuzz_head_scanner(data: &[u8]) {
    use weir_h1::{Parsed, RequestHead};
    let Some((&split, input)) = data.split_first() else {
        return;
    };
    let mut whole = RequestHead::default();
    let at_once = whole.parse(input);
    let mut pieces = RequestHead::default();
    let step = usize::from(split).max(1);
    let mut seen = 0;
    let verdict = loop {
        seen = (seen + step).min(input.len());
        match pieces.parse(input.get(..seen).unwrap_or_default()) {
            Ok(Parsed::Partial) if seen < input.len() => continue,
            other => break other,
        }
    };
    assert_eq!(at_once, verdict, "split {split}");
    if at_once == Ok(Parsed::Complete) {
        assert_eq!(whole.len, pieces.len, "split {split}");
        assert_eq!(whole.framing, pieces.framing, "split {split}");
        assert!(whole.len <= input.len());
    }
}

/// The SNI matcher: the first line is the name asked for, each further line one
/// certificate's names, comma-separated. The pick agrees with the rules read plainly:
/// the first certificate naming it exactly, else the first with a one-label wildcard
/// covering it, else the first certificate.
pub fn fuzz_sni(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let asked = lines.next().filter(|l| !l.is_empty());
    let certs: Vec<Vec<String>> = lines
        .map(|l| l.split(',').map(str::to_ascii_lowercase).collect())
        .collect();
    let Some(index) = NameIndex::new(certs.iter().cloned().enumerate()) else {
        assert!(certs.is_empty());
        return;
    };
    let picked = *index.pick(asked);
    let want = asked.map_or(0, |asked| {
        let name = asked.trim_end_matches('.').to_ascii_lowercase();
        let claims = |pattern: &str| certs.iter().position(|c| c.iter().any(|n| n == pattern));
        let exact = if name.starts_with("*.") {
            None
        } else {
            claims(&name)
        };
        let wildcard = || {
            let (_, parent) = name.split_once('.')?;
            claims(&format!("*.{parent}"))
        };
        exact.or_else(wildcard).unwrap_or(0)
    });
    assert_eq!(picked, want, "{asked:?} among {certs:?}");
}

/// The affinity key reader: the first line is the cookie name, the rest a `Cookie`
/// header. A value found is a sub-slice of the header, was preceded by `name=` there,
/// and has no `;` in it; the key hashed for `cookie:NAME` is the hash of that value.
pub fn fuzz_affinity_cookie(data: &[u8]) {
    let (name, header) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b"sid"[..], data),
    };
    let Some(value) = crate::affinity::cookie(header, name) else {
        return;
    };
    assert!(!value.contains(&b';'), "{value:?} spans pairs");
    let start = value.as_ptr() as usize - header.as_ptr() as usize;
    assert!(start + value.len() <= header.len());
    let before = header[..start].trim_ascii_end();
    assert!(before.ends_with(b"="), "{value:?} not after `=`");
    let Ok(name) = std::str::from_utf8(name) else {
        return;
    };
    let on = weir_config::HashOn::Cookie(name.to_owned());
    let headers = std::iter::once((&b"Cookie"[..], header));
    let ip = std::net::IpAddr::from([127, 0, 0, 1]);
    assert_eq!(
        crate::affinity::key(&on, ip, None, headers),
        Some(weir_balance::strategy::maglev::hash64(value))
    );
}

/// A sticky pool of three backends, built once from a config as weir builds them.
fn sticky_pool() -> Option<&'static weir_balance::Pool> {
    static POOL: std::sync::OnceLock<Option<weir_balance::Pool>> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        let yaml = "listeners: [{ name: web, listen: 127.0.0.1:0, routes: [{ pool: web }] }]\npools:\n  web:\n    sticky: { cookie: WEIR_B, ttl: 1h }\n    backends: [{ address: 127.0.0.1:8081 }, { address: 127.0.0.1:8082 }, { address: 127.0.0.1:8083, backup: true }]\n";
        let config = weir_config::parse(yaml, std::path::Path::new("fuzz.yaml")).ok()?;
        let pool = config.pools.first()?;
        let backends = pool
            .backends
            .iter()
            .map(|b| std::sync::Arc::new(weir_balance::Backend::new(&pool.name, b)))
            .collect();
        Some(weir_balance::Pool::new(pool, backends))
    })
    .as_ref()
}

/// The sticky cookie reader: the input is a `Cookie` header in which `@0`, `@1` and
/// `@2` stand for the ids of the pool's backends (so the fuzzer reaches valid ids). A
/// cookie naming a backend is exactly its id; anything else under the cookie's name is
/// invalid; without the name, absent. The response's `Set-Cookie` is left out exactly
/// for the backend the cookie named, and is a valid header naming the one that served.
pub fn fuzz_sticky_cookie(data: &[u8]) {
    use weir_balance::Presented;
    let Some(pool) = sticky_pool() else {
        return;
    };
    let Some(sticky) = pool.sticky() else {
        return;
    };
    let ids: Vec<&str> = pool.backends().filter_map(|b| sticky.id_of(b)).collect();
    assert_eq!(ids.len(), 3);
    let mut header = Vec::with_capacity(data.len() + 64);
    let mut rest = data;
    while let Some((&b, tail)) = rest.split_first() {
        match (b, tail.first()) {
            (b'@', Some(&d @ b'0'..=b'2')) => {
                header.extend_from_slice(ids[usize::from(d - b'0')].as_bytes());
                rest = &tail[1..];
            }
            _ => {
                header.push(b);
                rest = tail;
            }
        }
    }
    let headers = std::iter::once((&b"cookie"[..], &header[..]));
    let presented = crate::sticky::presented(pool, headers);
    let value = crate::affinity::cookie(&header, b"WEIR_B");
    match presented {
        Presented::Absent => assert!(value.is_none()),
        Presented::Backend(i) => {
            let named = ids.get(i as usize).expect("a backend of the pool");
            assert_eq!(value.map(<[u8]>::trim_ascii), Some(named.as_bytes()));
        }
        Presented::Invalid => {
            let v = value.expect("a value under the name");
            assert!(!ids.iter().any(|id| id.as_bytes() == v.trim_ascii()));
        }
    }
    for (i, b) in pool.backends().enumerate() {
        let line = pool.sticky_answer(presented, b, i == 1);
        let named = presented == Presented::Backend(u32::try_from(i).unwrap_or(u32::MAX));
        assert_eq!(line.is_none(), named, "{presented:?} served by {i}");
        if let Some(line) = line {
            let text = line.to_str().expect("ASCII");
            assert!(
                text.starts_with(&format!("WEIR_B={}; Path=/", ids[i])),
                "{text}"
            );
            assert_eq!(text.ends_with("; Secure"), i == 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    /// Runs every file of corpus `target` through its fuzz target's body `run`, after
    /// checking that the corpus has at least 10 seeds.
    fn replay(target: &str, run: fn(&[u8])) {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/corpus")
            .join(target);
        let files: Vec<Vec<u8>> = std::fs::read_dir(&dir)
            .expect("the corpus directory")
            .map(|e| std::fs::read(e.expect("a corpus entry").path()).expect("a corpus file"))
            .collect();
        assert!(
            files.len() >= 10,
            "only {} corpus files in {dir:?}",
            files.len()
        );
        for bytes in files {
            run(&bytes);
        }
    }

    /// One `#[test]` per fuzz target, `name: "corpus directory" => body`.
    macro_rules! replays {
        ($($name:ident: $target:literal => $run:path),+ $(,)?) => {
            $(
                #[test]
                fn $name() {
                    replay($target, $run);
                }
            )+
        };
    }

    replays! {
        proxy_protocol_corpus_replays: "proxy_protocol" => super::fuzz_proxy_protocol,
        head_scanner_corpus_replays: "http1_head" => super::fuzz_head_scanner,
        affinity_cookie_corpus_replays: "affinity_cookie" => super::fuzz_affinity_cookie,
        sni_corpus_replays: "sni" => super::fuzz_sni,
        sticky_cookie_corpus_replays: "sticky_cookie" => super::fuzz_sticky_cookie,
    }
}
