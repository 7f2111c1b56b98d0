//! weir's HPACK checked against an independent implementation (`loona-hpack`, the
//! maintained fork of hpack-rs): its encoder (which uses the dynamic table) feeds weir's
//! decoder, weir's encoder and Huffman code feed its decoder, and where both decoders
//! accept the same arbitrary bytes they must read them alike.

use proptest::prelude::*;

use super::{huffman, Block, Decoder, Encoder};

type List = Vec<(Vec<u8>, Vec<u8>)>;

fn name() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::sample::select(vec![
            &b":method"[..],
            b":path",
            b":status",
            b"content-type",
            b"accept-encoding",
            b"cookie",
            b"x-request-id",
            b"user-agent",
        ])
        .prop_map(<[u8]>::to_vec),
        "[a-z0-9-]{1,40}".prop_map(String::into_bytes),
    ]
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::sample::select(vec![&b"GET"[..], b"/", b"200", b"gzip, deflate", b""])
            .prop_map(<[u8]>::to_vec),
        prop::collection::vec(any::<u8>(), 0..200),
    ]
}

fn list() -> impl Strategy<Value = List> {
    prop::collection::vec((name(), value()), 0..12)
}

fn decoded(block: &Block) -> List {
    block
        .iter()
        .map(|(n, v)| (n.to_vec(), v.to_vec()))
        .collect()
}

/// A block of literals without indexing, names and values Huffman-coded by weir.
fn huffman_block(list: &List) -> Vec<u8> {
    let mut out = Vec::new();
    for (n, v) in list {
        out.push(0x00);
        for s in [n, v] {
            let mut coded = Vec::new();
            huffman::encode(s, &mut coded);
            // Lengths under 127 fit the prefix; longer ones take the integer form.
            let len = coded.len();
            if len < 127 {
                out.push(0x80 | len as u8);
            } else {
                out.push(0xff);
                let mut rest = len - 127;
                while rest >= 0x80 {
                    out.push(0x80 | (rest & 0x7f) as u8);
                    rest >>= 7;
                }
                out.push(rest as u8);
            }
            out.extend_from_slice(&coded);
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn weir_decodes_what_the_reference_encodes_on_one_connection(
        lists in prop::collection::vec(list(), 1..6)
    ) {
        let mut theirs = loona_hpack::Encoder::new();
        let mut ours = Decoder::new(4096);
        let mut block = Block::new();
        for list in &lists {
            let encoded = theirs.encode(list.iter().map(|(n, v)| (&n[..], &v[..])));
            prop_assert_eq!(ours.decode(&encoded, 1 << 20, &mut block), Ok(()));
            prop_assert_eq!(&decoded(&block), list);
        }
    }

    #[test]
    fn the_reference_decodes_what_weir_encodes(list in list(), never in any::<bool>()) {
        let encoder = Encoder::new();
        let mut encoded = Vec::new();
        for (n, v) in &list {
            encoder.field(n, v, never, &mut encoded);
        }
        let theirs = loona_hpack::Decoder::new().decode(&encoded);
        prop_assert_eq!(theirs.ok(), Some(list));
    }

    #[test]
    fn both_decoders_read_weirs_huffman_strings_alike(list in list()) {
        let encoded = huffman_block(&list);
        let theirs = loona_hpack::Decoder::new().decode(&encoded);
        prop_assert_eq!(theirs.ok(), Some(list.clone()));
        let mut block = Block::new();
        prop_assert_eq!(Decoder::new(4096).decode(&encoded, 1 << 20, &mut block), Ok(()));
        prop_assert_eq!(decoded(&block), list);
    }

    /// Where both accept arbitrary bytes they read the same fields. They differ on
    /// purpose about size updates: the reference refuses one at a block's end, which RFC
    /// 7541 allows, and accepts one after a field, which §4.2 does not.
    #[test]
    fn where_both_decoders_accept_bytes_they_read_the_same_fields(
        bytes in prop::collection::vec(any::<u8>(), 0..64)
    ) {
        let mut reference = loona_hpack::Decoder::new();
        reference.set_max_allowed_table_size(4096);
        let theirs = reference.decode(&bytes).ok();
        let mut block = Block::new();
        let ours = Decoder::new(4096)
            .decode(&bytes, 1 << 20, &mut block)
            .ok()
            .map(|()| decoded(&block));
        if let (Some(ours), Some(theirs)) = (ours, theirs) {
            prop_assert_eq!(ours, theirs, "{:02x?}", bytes);
        }
    }
}
