//! The body of the `hpack` fuzz target (feature `fuzzing`), replayed over its committed
//! corpus by an ordinary test so that stable CI runs it too.

use crate::hpack::{huffman, Block, DecodeError, Decoder, Encoder};

/// The header list limit the target decodes with: small enough that the corpus reaches
/// it, as a listener's `http2.max_header_list_size` would be reached.
const LIST_LIMIT: usize = 4096;

/// Splits `data` into header blocks (each one length byte, then that many bytes) and
/// decodes them in order on one connection's decoder, checking that:
/// - nothing panics and no decoded list is over the limit;
/// - what decodes re-encodes (weir's encoder) and decodes again to the same fields,
///   never-indexed marks included;
/// - every decoded value survives a Huffman round trip;
/// - after a connection error nothing more is decoded (the tables no longer agree).
pub fn hpack(data: &[u8]) {
    let mut decoder = Decoder::new(4096);
    let mut block = Block::new();
    let mut again = Block::new();
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let len = usize::from(len).min(tail.len());
        let (src, tail) = tail.split_at(len);
        rest = tail;
        match decoder.decode(src, LIST_LIMIT, &mut block) {
            Ok(()) => check(&block, &mut again),
            Err(DecodeError::TooLarge) => assert!(block.fields().is_empty()),
            Err(_) => return,
        }
    }
}

fn check(block: &Block, again: &mut Block) {
    let size: usize = block.iter().map(|(n, v)| n.len() + v.len() + 32).sum();
    assert!(size <= LIST_LIMIT, "a list over the limit was kept");
    let mut encoded = Vec::new();
    let encoder = Encoder::new();
    for field in block.fields() {
        encoder.field(
            block.name(field),
            block.value(field),
            field.never_indexed,
            &mut encoded,
        );
    }
    if let Err(e) = Decoder::new(4096).decode(&encoded, LIST_LIMIT, again) {
        panic!("weir's own encoding did not decode: {e:?}");
    }
    assert_eq!(
        block.iter().collect::<Vec<_>>(),
        again.iter().collect::<Vec<_>>()
    );
    let marks = |b: &Block| {
        b.fields()
            .iter()
            .map(|f| f.never_indexed)
            .collect::<Vec<_>>()
    };
    assert_eq!(marks(block), marks(again));
    for (_, value) in block.iter() {
        let mut coded = Vec::new();
        huffman::encode(value, &mut coded);
        assert_eq!(coded.len(), huffman::encoded_len(value));
        let mut decoded = Vec::new();
        assert_eq!(huffman::decode(&coded, &mut decoded), Ok(()));
        assert_eq!(decoded, value);
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    #[test]
    fn hpack_corpus_replays() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/hpack");
        let mut files = 0;
        for entry in std::fs::read_dir(&dir).expect("the corpus directory") {
            let path = entry.expect("a corpus entry").path();
            let bytes = std::fs::read(&path).expect("a corpus file");
            super::hpack(&bytes);
            files += 1;
        }
        assert!(files >= 10, "only {files} corpus files in {dir:?}");
    }
}
