use super::*;

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("socket address")
}

#[test]
fn v1_header_is_the_spec_line() {
    let h = encode(
        ProxyProtocolVersion::V1,
        addr("192.0.2.1:5000"),
        addr("127.0.0.1:80"),
    );
    assert_eq!(h, b"PROXY TCP4 192.0.2.1 127.0.0.1 5000 80\r\n");
    let h = encode(
        ProxyProtocolVersion::V1,
        addr("[::1]:5000"),
        addr("127.0.0.1:80"),
    );
    assert_eq!(h, b"PROXY TCP6 ::1 ::ffff:127.0.0.1 5000 80\r\n");
}

#[test]
fn v2_header_round_trips() {
    let h = encode(
        ProxyProtocolVersion::V2,
        addr("192.0.2.1:5000"),
        addr("10.0.0.2:443"),
    );
    assert_eq!(h.len(), 28);
    assert_eq!(&h[..12], &V2_SIG);
    assert_eq!(&h[12..16], &[0x21, 0x11, 0, 12]);
    let carried = parse_v2(h[12], h[13], &h[16..]).expect("valid");
    assert_eq!(
        carried,
        Some((addr("192.0.2.1:5000"), addr("10.0.0.2:443")))
    );
    let h = encode(
        ProxyProtocolVersion::V2,
        addr("[2001:db8::1]:1"),
        addr("[::1]:2"),
    );
    assert_eq!(h.len(), 52);
    let carried = parse_v2(h[12], h[13], &h[16..]).expect("valid");
    assert_eq!(carried, Some((addr("[2001:db8::1]:1"), addr("[::1]:2"))));
}

#[test]
fn v1_lines_parse_or_are_refused() {
    assert_eq!(
        parse_v1(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n").expect("valid"),
        Some((addr("1.2.3.4:1"), addr("5.6.7.8:2")))
    );
    assert_eq!(parse_v1(b"PROXY UNKNOWN\r\n").expect("valid"), None);
    for (why, bad) in [
        ("LF without CR", &b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"[..]),
        ("a port missing", b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n"),
        ("IPv6 under TCP4", b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n"),
        ("port over 65535", b"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n"),
        ("not TCP", b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n"),
        ("two spaces", b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n"),
    ] {
        assert!(parse_v1(bad).is_err(), "{why}");
    }
}

#[test]
fn v2_local_and_bad_headers() {
    assert_eq!(parse_v2(0x20, 0x00, &[]).expect("LOCAL"), None);
    assert!(
        parse_v2(0x11, 0x11, &[0; 12]).is_err(),
        "version 1 in a v2 header"
    );
    assert!(parse_v2(0x22, 0x11, &[0; 12]).is_err(), "unknown command");
    assert!(
        parse_v2(0x21, 0x11, &[0; 11]).is_err(),
        "short address block"
    );
    assert!(parse_v2(0x21, 0x41, &[0; 12]).is_err(), "unknown family");
}

#[test]
fn v2_tlvs_must_fit_the_header() {
    let addrs = [192, 0, 2, 1, 10, 0, 0, 2, 0, 1, 0, 2];
    let with = |tlvs: &[u8]| [&addrs[..], tlvs].concat();
    let want = Some((addr("192.0.2.1:1"), addr("10.0.0.2:2")));
    // NOOP TLV of 2 bytes, then an empty one: fits.
    let ok = with(&[0x04, 0, 2, 0xaa, 0xbb, 0x04, 0, 0]);
    assert_eq!(parse_v2(0x21, 0x11, &ok).expect("fits"), want);
    for bad in [
        with(&[0x01, 0x01, 0x00, b'h']), // 256 bytes announced, 1 present
        with(&[0x04, 0, 2, 0xaa]),
        with(&[0x04]),
        with(&[0x04, 0]),
    ] {
        assert!(parse_v2(0x21, 0x11, &bad).is_err(), "{bad:?}");
    }
    let mut v6 = vec![0u8; 36];
    v6.extend_from_slice(&[0x02, 0, 9, b'x']);
    assert!(
        parse_v2(0x21, 0x21, &v6).is_err(),
        "v6 with an overrunning TLV"
    );
}
