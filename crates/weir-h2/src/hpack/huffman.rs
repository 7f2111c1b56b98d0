//! HPACK's Huffman code (RFC 7541 §5.2, Appendix B): decoding for the header blocks
//! clients send, and encoding for the tests and the fuzz target.
//!
//! The code is canonical: within each length the codes are consecutive and in symbol
//! order, and each length's first code follows the last code of the length before. So a
//! symbol is found from the next 30 bits alone by comparing them with each length's
//! upper bound ([`LIMIT`]), shortest first, instead of walking a tree bit by bit; the
//! common characters have codes of 5 to 8 bits and are found in a few comparisons. The
//! tables are computed at compile time from Appendix B's codes.

/// Appendix B's code of each byte value, right-aligned (the table h2 generates; the
/// RFC's figures).
const CODES: [u32; 256] = [
    0x1ff8, 0x7fffd8, 0xfffffe2, 0xfffffe3, 0xfffffe4, 0xfffffe5, 0xfffffe6, 0xfffffe7, 0xfffffe8,
    0xffffea, 0x3ffffffc, 0xfffffe9, 0xfffffea, 0x3ffffffd, 0xfffffeb, 0xfffffec, 0xfffffed,
    0xfffffee, 0xfffffef, 0xffffff0, 0xffffff1, 0xffffff2, 0x3ffffffe, 0xffffff3, 0xffffff4,
    0xffffff5, 0xffffff6, 0xffffff7, 0xffffff8, 0xffffff9, 0xffffffa, 0xffffffb, 0x14, 0x3f8,
    0x3f9, 0xffa, 0x1ff9, 0x15, 0xf8, 0x7fa, 0x3fa, 0x3fb, 0xf9, 0x7fb, 0xfa, 0x16, 0x17, 0x18,
    0x0, 0x1, 0x2, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x5c, 0xfb, 0x7ffc, 0x20, 0xffb,
    0x3fc, 0x1ffa, 0x21, 0x5d, 0x5e, 0x5f, 0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
    0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f, 0x70, 0x71, 0x72, 0xfc, 0x73, 0xfd, 0x1ffb, 0x7fff0,
    0x1ffc, 0x3ffc, 0x22, 0x7ffd, 0x3, 0x23, 0x4, 0x24, 0x5, 0x25, 0x26, 0x27, 0x6, 0x74, 0x75,
    0x28, 0x29, 0x2a, 0x7, 0x2b, 0x76, 0x2c, 0x8, 0x9, 0x2d, 0x77, 0x78, 0x79, 0x7a, 0x7b, 0x7ffe,
    0x7fc, 0x3ffd, 0x1ffd, 0xffffffc, 0xfffe6, 0x3fffd2, 0xfffe7, 0xfffe8, 0x3fffd3, 0x3fffd4,
    0x3fffd5, 0x7fffd9, 0x3fffd6, 0x7fffda, 0x7fffdb, 0x7fffdc, 0x7fffdd, 0x7fffde, 0xffffeb,
    0x7fffdf, 0xffffec, 0xffffed, 0x3fffd7, 0x7fffe0, 0xffffee, 0x7fffe1, 0x7fffe2, 0x7fffe3,
    0x7fffe4, 0x1fffdc, 0x3fffd8, 0x7fffe5, 0x3fffd9, 0x7fffe6, 0x7fffe7, 0xffffef, 0x3fffda,
    0x1fffdd, 0xfffe9, 0x3fffdb, 0x3fffdc, 0x7fffe8, 0x7fffe9, 0x1fffde, 0x7fffea, 0x3fffdd,
    0x3fffde, 0xfffff0, 0x1fffdf, 0x3fffdf, 0x7fffeb, 0x7fffec, 0x1fffe0, 0x1fffe1, 0x3fffe0,
    0x1fffe2, 0x7fffed, 0x3fffe1, 0x7fffee, 0x7fffef, 0xfffea, 0x3fffe2, 0x3fffe3, 0x3fffe4,
    0x7ffff0, 0x3fffe5, 0x3fffe6, 0x7ffff1, 0x3ffffe0, 0x3ffffe1, 0xfffeb, 0x7fff1, 0x3fffe7,
    0x7ffff2, 0x3fffe8, 0x1ffffec, 0x3ffffe2, 0x3ffffe3, 0x3ffffe4, 0x7ffffde, 0x7ffffdf,
    0x3ffffe5, 0xfffff1, 0x1ffffed, 0x7fff2, 0x1fffe3, 0x3ffffe6, 0x7ffffe0, 0x7ffffe1, 0x3ffffe7,
    0x7ffffe2, 0xfffff2, 0x1fffe4, 0x1fffe5, 0x3ffffe8, 0x3ffffe9, 0xffffffd, 0x7ffffe3, 0x7ffffe4,
    0x7ffffe5, 0xfffec, 0xfffff3, 0xfffed, 0x1fffe6, 0x3fffe9, 0x1fffe7, 0x1fffe8, 0x7ffff3,
    0x3fffea, 0x3fffeb, 0x1ffffee, 0x1ffffef, 0xfffff4, 0xfffff5, 0x3ffffea, 0x7ffff4, 0x3ffffeb,
    0x7ffffe6, 0x3ffffec, 0x3ffffed, 0x7ffffe7, 0x7ffffe8, 0x7ffffe9, 0x7ffffea, 0x7ffffeb,
    0xffffffe, 0x7ffffec, 0x7ffffed, 0x7ffffee, 0x7ffffef, 0x7fffff0, 0x3ffffee,
];

/// Each byte value's code length in bits.
const LENGTHS: [u8; 256] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28,
    28, 28, 28, 28, 28, 28, 28, 28, 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5,
    5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, 15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6,
    6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22, 22, 23, 22,
    23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22,
    21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20,
    22, 22, 22, 23, 22, 22, 23, 26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19,
    21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22,
    22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
];

/// End of string: 30 one bits. It never appears in a valid string; its first bits pad
/// the last byte.
const EOS: (u32, u32) = (0x3fff_ffff, 30);
const EOS_SYMBOL: u16 = 256;
const MIN_LEN: usize = 5;
const MAX_LEN: usize = 30;

/// A symbol's code and length (the byte values, then EOS).
const fn code(symbol: usize) -> (u32, u32) {
    if symbol == EOS_SYMBOL as usize {
        EOS
    } else {
        (CODES[symbol], LENGTHS[symbol] as u32)
    }
}

/// The decoding tables, by code length.
struct Tables {
    /// One past the last code of each length, left-aligned in 30 bits: the next 30 bits
    /// of input hold a code of length `l` if they are below `limit[l]` and not below
    /// `limit` of any shorter length.
    limit: [u32; MAX_LEN + 1],
    /// The first code of each length (right-aligned).
    first: [u32; MAX_LEN + 1],
    /// Where each length's symbols start in `sorted`.
    offset: [u16; MAX_LEN + 1],
    /// The symbols ordered by code length, then by code.
    sorted: [u16; 257],
}

const TABLES: Tables = build();

/// Builds [`Tables`] at compile time, and fails the build if the code were not
/// canonical (the decoding above depends on it).
const fn build() -> Tables {
    let mut t = Tables {
        limit: [0; MAX_LEN + 1],
        first: [0; MAX_LEN + 1],
        offset: [0; MAX_LEN + 1],
        sorted: [0; 257],
    };
    let mut n = 0;
    let mut prev_limit = 0u32;
    let mut len = 1;
    while len <= MAX_LEN {
        t.offset[len] = n as u16;
        let start = n;
        let mut symbol = 0;
        while symbol < 257 {
            if code(symbol).1 as usize == len {
                // Insertion by code, so `sorted` is in code order within the length.
                let mut at = n;
                while at > start && code(t.sorted[at - 1] as usize).0 > code(symbol).0 {
                    t.sorted[at] = t.sorted[at - 1];
                    at -= 1;
                }
                t.sorted[at] = symbol as u16;
                n += 1;
            }
            symbol += 1;
        }
        let count = (n - start) as u32;
        if count == 0 {
            t.limit[len] = prev_limit;
        } else {
            let first = code(t.sorted[start] as usize).0;
            let mut i = 0;
            while i < count {
                assert!(
                    code(t.sorted[start + i as usize] as usize).0 == first + i,
                    "codes of one length are consecutive"
                );
                i += 1;
            }
            let shift = (MAX_LEN - len) as u32;
            assert!(first << shift == prev_limit, "lengths follow one another");
            t.first[len] = first;
            t.limit[len] = (first + count) << shift;
            prev_limit = t.limit[len];
        }
        len += 1;
    }
    assert!(n == 257, "every symbol has a code");
    assert!(prev_limit == 1 << MAX_LEN, "the code space is complete");
    t
}

/// A Huffman-coded string that is not valid (§5.2): it contains EOS, or its padding is
/// longer than 7 bits or not the most significant bits of EOS. A decoder must treat it
/// as a decoding error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidHuffman;

/// Decodes `src` onto the end of `out`.
pub(crate) fn decode(src: &[u8], out: &mut Vec<u8>) -> Result<(), InvalidHuffman> {
    // Most strings shrink to about 5/8 when coded; one reservation covers their text.
    out.reserve(src.len() + src.len() / 2);
    let t = &TABLES;
    let mut acc: u64 = 0;
    // Bits of `acc` not yet decoded (its low `bits` bits); below 30 + 8.
    let mut bits: u32 = 0;
    for &byte in src {
        acc = (acc << 8) | u64::from(byte);
        bits += 8;
        while bits >= MIN_LEN as u32 {
            // The next 30 bits, left-aligned; zeros past the input's end can only make a
            // longer code look possible, which the length check below then refuses.
            let next = if bits >= 30 {
                (acc >> (bits - 30)) as u32
            } else {
                (acc << (30 - bits)) as u32
            } & ((1 << 30) - 1);
            let mut len = MIN_LEN;
            while len < MAX_LEN && next >= t.limit[len] {
                len += 1;
            }
            if len as u32 > bits {
                break;
            }
            let code = next >> (MAX_LEN - len);
            let symbol = t.sorted[usize::from(t.offset[len]) + (code - t.first[len]) as usize];
            if symbol == EOS_SYMBOL {
                return Err(InvalidHuffman);
            }
            out.push(symbol as u8);
            bits -= len as u32;
            acc &= (1u64 << bits) - 1;
        }
    }
    // What is left must be padding: at most 7 bits, all ones.
    if bits > 7 || acc != (1u64 << bits) - 1 {
        return Err(InvalidHuffman);
    }
    Ok(())
}

/// Encodes `src` onto the end of `out`, padded with EOS's first bits.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn encode(src: &[u8], out: &mut Vec<u8>) {
    let mut acc: u64 = 0;
    let mut bits: u32 = 0;
    for &byte in src {
        let (code, len) = code(usize::from(byte));
        acc = (acc << len) | u64::from(code);
        bits += len;
        while bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
        acc &= (1u64 << bits) - 1;
    }
    if bits > 0 {
        let pad = 8 - bits;
        out.push(((acc << pad) | ((1 << pad) - 1)) as u8);
    }
}

/// How many bytes [`encode`] makes of `src`.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn encoded_len(src: &[u8]) -> usize {
    let bits: usize = src
        .iter()
        .map(|&b| usize::from(LENGTHS[usize::from(b)]))
        .sum();
    bits.div_ceil(8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    #[test]
    fn rfc_7541_appendix_c4_strings_decode() {
        // The Huffman-coded strings of RFC 7541 C.4 and C.6.
        let cases = [
            ("f1e3 c2e5 f23a 6ba0 ab90 f4ff", "www.example.com"),
            ("a8eb 1064 9cbf", "no-cache"),
            ("25a8 49e9 5ba9 7d7f", "custom-key"),
            ("25a8 49e9 5bb8 e8b4 bf", "custom-value"),
            ("6402", "302"),
            ("aec3 771a 4b", "private"),
            (
                "d07a be94 1054 d444 a820 0595 040b 8166 e082 a62d 1bff",
                "Mon, 21 Oct 2013 20:13:21 GMT",
            ),
            (
                "9d29 ad17 1863 c78f 0b97 c8e9 ae82 ae43 d3",
                "https://www.example.com",
            ),
        ];
        for (coded, text) in cases {
            let mut out = Vec::new();
            decode(&hex(coded), &mut out).expect("valid");
            assert_eq!(out, text.as_bytes(), "{coded}");
            let mut again = Vec::new();
            encode(text.as_bytes(), &mut again);
            assert_eq!(again, hex(coded), "{text}");
            assert_eq!(encoded_len(text.as_bytes()), again.len());
        }
    }

    #[test]
    fn padding_must_be_short_and_all_ones() {
        let mut out = Vec::new();
        // '0' is 00000: three 1 bits of padding are fine.
        assert_eq!(decode(&[0b0000_0111], &mut out), Ok(()));
        assert_eq!(out, b"0");
        // Padding with a zero bit.
        assert_eq!(decode(&[0b0000_0110], &mut out), Err(InvalidHuffman));
        // A whole byte of padding (8 bits, more than 7).
        assert_eq!(decode(&[0b0000_0111, 0xff], &mut out), Err(InvalidHuffman));
        // EOS itself, 30 ones and two bits of padding.
        assert_eq!(decode(&[0xff; 4], &mut out), Err(InvalidHuffman));
        // The empty string.
        out.clear();
        assert_eq!(decode(&[], &mut out), Ok(()));
        assert!(out.is_empty());
    }

    proptest! {
        #[test]
        fn any_bytes_round_trip(src in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut coded = Vec::new();
            encode(&src, &mut coded);
            prop_assert_eq!(coded.len(), encoded_len(&src));
            let mut out = Vec::new();
            prop_assert_eq!(decode(&coded, &mut out), Ok(()));
            prop_assert_eq!(out, src);
        }

        #[test]
        fn any_input_decodes_or_is_refused_without_panicking(
            src in proptest::collection::vec(any::<u8>(), 0..64)
        ) {
            let mut out = Vec::new();
            let _ = decode(&src, &mut out);
        }
    }
}
