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
    }
}
