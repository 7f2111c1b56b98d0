//! Header block decoding (RFC 7541 §3, §6) into one buffer the connection keeps.
//!
//! A block decodes into a [`Block`]: every name and value copied once, end to end, into
//! one byte buffer, and a span per field, so a request's fields cost no allocation each
//! (the HTTP/1 codec's heads work the same way) and the caller reads them in order.
//!
//! Decoding is bounded by the caller's header list limit (RFC 9113 §6.5.2's size: name,
//! value and 32 per field): past it, fields are still decoded, because the dynamic table
//! must stay in step with the peer's, but not kept, so a small block of indexes to one
//! large table entry (an "HPACK bomb") cannot make weir hold more than the limit.

use super::huffman;
use super::table::{DynamicTable, ENTRY_OVERHEAD};

/// Where a name or value lies in its [`Block`]'s buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    /// First byte.
    pub start: u32,
    /// One past the last byte.
    pub end: u32,
}

impl Span {
    fn of(self, buf: &[u8]) -> &[u8] {
        buf.get(self.start as usize..self.end as usize)
            .unwrap_or_default()
    }
}

/// One decoded field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// The name, lower case if the peer kept HTTP/2's rule (the caller checks).
    pub name: Span,
    /// The value as sent (the caller checks its bytes).
    pub value: Span,
    /// Sent as never indexed (§6.2.3): an intermediary re-encoding it for HTTP/2 must
    /// keep it so (a cookie or token the client asked no table to hold).
    pub never_indexed: bool,
}

/// A decoded header block: the fields in the order they came.
#[derive(Debug, Default)]
pub struct Block {
    bytes: Vec<u8>,
    fields: Vec<Field>,
    /// RFC 9113 §6.5.2's size of the fields decoded so far.
    list_size: usize,
}

impl Block {
    /// An empty block; its buffers grow to the largest block decoded into it.
    pub fn new() -> Self {
        Block::default()
    }

    /// The fields, in order.
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    /// A field's name.
    pub fn name(&self, field: &Field) -> &[u8] {
        field.name.of(&self.bytes)
    }

    /// A field's value.
    pub fn value(&self, field: &Field) -> &[u8] {
        field.value.of(&self.bytes)
    }

    /// The buffer every field's spans index: a caller that keeps the fields past the
    /// next block copies this once and slices it, instead of copying each field.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The fields as (name, value) pairs, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.fields
            .iter()
            .map(|f| (f.name.of(&self.bytes), f.value.of(&self.bytes)))
    }

    /// Empties the block and keeps its buffers for the next one.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.fields.clear();
        self.list_size = 0;
    }

    fn span_from(&self, start: usize) -> Span {
        Span {
            start: start as u32,
            end: self.bytes.len() as u32,
        }
    }
}

/// Why a header block could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The block ended inside a field.
    Truncated,
    /// Index 0, or past the end of both tables.
    BadIndex,
    /// An integer longer than any field or table can be.
    Overflow,
    /// A Huffman-coded string that is not valid (§5.2).
    Huffman,
    /// A dynamic table size update after the block's first field, or above the size
    /// weir advertised (§4.2, §6.3).
    BadSizeUpdate,
    /// The fields add up to more than the caller's header list limit. The block was
    /// decoded to its end and the table kept in step: the connection goes on, and only
    /// this request is refused (431).
    TooLarge,
}

impl DecodeError {
    /// Whether the connection must end (GOAWAY `COMPRESSION_ERROR`, RFC 9113 §4.3): the
    /// peer's table and weir's may no longer agree.
    pub fn is_connection_error(self) -> bool {
        self != DecodeError::TooLarge
    }
}

impl From<huffman::InvalidHuffman> for DecodeError {
    fn from(_: huffman::InvalidHuffman) -> Self {
        DecodeError::Huffman
    }
}

/// One connection's decoder: its dynamic table lives as long as the connection.
#[derive(Debug)]
pub struct Decoder {
    table: DynamicTable,
    /// `SETTINGS_HEADER_TABLE_SIZE` as weir advertised it: the most a size update may ask.
    limit: usize,
}

impl Decoder {
    /// A decoder whose peer may use up to `limit` bytes of table (HTTP/2's default is
    /// 4,096).
    pub fn new(limit: usize) -> Self {
        Decoder {
            table: DynamicTable::new(limit),
            limit,
        }
    }

    /// The table size the peer last set.
    pub fn table_size(&self) -> usize {
        self.table.max()
    }

    /// Decodes one whole header block (a HEADERS frame's fragment and its
    /// CONTINUATIONs, joined) into `out`, which is cleared first.
    pub fn decode(
        &mut self,
        src: &[u8],
        max_list_size: usize,
        out: &mut Block,
    ) -> Result<(), DecodeError> {
        out.clear();
        let mut pos = 0;
        let mut any_field = false;
        let mut too_large = false;
        while let Some(&first) = src.get(pos) {
            let mark = out.bytes.len();
            let field = if first & 0x80 != 0 {
                // §6.1 indexed field.
                let index = integer(src, &mut pos, 7)?;
                let (name, value) = self.table.get(index).ok_or(DecodeError::BadIndex)?;
                if too_large || fits(out, name, value, max_list_size).is_err() {
                    too_large = true;
                    any_field = true;
                    continue;
                }
                out.bytes.extend_from_slice(name);
                let name = out.span_from(mark);
                let at = out.bytes.len();
                out.bytes.extend_from_slice(value);
                Field {
                    name,
                    value: out.span_from(at),
                    never_indexed: false,
                }
            } else if first & 0x40 != 0 {
                // §6.2.1 literal with incremental indexing.
                let field = self.literal(src, &mut pos, 6, out)?;
                let name = field.name.of(&out.bytes);
                let value = field.value.of(&out.bytes);
                self.table.insert(name, value);
                field
            } else if first & 0x20 != 0 {
                // §6.3 dynamic table size update: only before the first field.
                let size = integer(src, &mut pos, 5)?;
                if any_field || size > self.limit {
                    return Err(DecodeError::BadSizeUpdate);
                }
                self.table.set_max(size);
                continue;
            } else {
                // §6.2.2 without indexing, §6.2.3 never indexed.
                let mut field = self.literal(src, &mut pos, 4, out)?;
                field.never_indexed = first & 0x10 != 0;
                field
            };
            any_field = true;
            let name = field.name.of(&out.bytes);
            let value = field.value.of(&out.bytes);
            if too_large || fits(out, name, value, max_list_size).is_err() {
                too_large = true;
                out.bytes.truncate(mark);
                continue;
            }
            out.list_size += name.len() + value.len() + ENTRY_OVERHEAD;
            out.fields.push(field);
        }
        if too_large {
            out.clear();
            return Err(DecodeError::TooLarge);
        }
        Ok(())
    }

    /// A literal field (§6.2): an index to its name, or the name itself, then the value;
    /// both go onto `out`'s buffer.
    fn literal(
        &self,
        src: &[u8],
        pos: &mut usize,
        prefix: u8,
        out: &mut Block,
    ) -> Result<Field, DecodeError> {
        let start = out.bytes.len();
        let index = integer(src, pos, prefix)?;
        if index == 0 {
            string(src, pos, &mut out.bytes)?;
        } else {
            let (name, _) = self.table.get(index).ok_or(DecodeError::BadIndex)?;
            out.bytes.extend_from_slice(name);
        }
        let name = out.span_from(start);
        let at = out.bytes.len();
        string(src, pos, &mut out.bytes)?;
        Ok(Field {
            name,
            value: out.span_from(at),
            never_indexed: false,
        })
    }
}

/// Whether one more field keeps the list within `max`.
fn fits(out: &Block, name: &[u8], value: &[u8], max: usize) -> Result<(), DecodeError> {
    let size = out.list_size + name.len() + value.len() + ENTRY_OVERHEAD;
    if size > max {
        Err(DecodeError::TooLarge)
    } else {
        Ok(())
    }
}

/// §5.1: an integer in the low `prefix` bits of `src[*pos]` and the bytes after it.
fn integer(src: &[u8], pos: &mut usize, prefix: u8) -> Result<usize, DecodeError> {
    let mask = (1usize << prefix) - 1;
    let first = *src.get(*pos).ok_or(DecodeError::Truncated)?;
    *pos += 1;
    let mut value = usize::from(first) & mask;
    if value < mask {
        return Ok(value);
    }
    let mut shift = 0;
    loop {
        let byte = *src.get(*pos).ok_or(DecodeError::Truncated)?;
        *pos += 1;
        value += usize::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
        shift += 7;
        // Four continuation bytes reach 2^28, past any block or table weir accepts.
        if shift > 21 {
            return Err(DecodeError::Overflow);
        }
    }
}

/// §5.2: a string literal, Huffman-coded or not, appended to `out`.
fn string(src: &[u8], pos: &mut usize, out: &mut Vec<u8>) -> Result<(), DecodeError> {
    let huffman = src.get(*pos).ok_or(DecodeError::Truncated)? & 0x80 != 0;
    let len = integer(src, pos, 7)?;
    let end = pos.checked_add(len).ok_or(DecodeError::Truncated)?;
    let bytes = src.get(*pos..end).ok_or(DecodeError::Truncated)?;
    *pos = end;
    if huffman {
        huffman::decode(bytes, out)?;
    } else {
        out.extend_from_slice(bytes);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    fn fields(block: &Block) -> Vec<(String, String)> {
        block
            .iter()
            .map(|(n, v)| {
                (
                    String::from_utf8_lossy(n).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn rfc_7541_c2_single_representations() {
        let mut out = Block::new();
        let mut d = Decoder::new(4096);
        d.decode(
            &hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572"),
            1 << 16,
            &mut out,
        )
        .expect("C.2.1");
        assert_eq!(fields(&out), pairs(&[("custom-key", "custom-header")]));
        assert_eq!(d.table.size(), 55);
        let mut d = Decoder::new(4096);
        d.decode(
            &hex("040c 2f73 616d 706c 652f 7061 7468"),
            1 << 16,
            &mut out,
        )
        .expect("C.2.2");
        assert_eq!(fields(&out), pairs(&[(":path", "/sample/path")]));
        assert_eq!(d.table.size(), 0);
        d.decode(
            &hex("1008 7061 7373 776f 7264 0673 6563 7265 74"),
            1 << 16,
            &mut out,
        )
        .expect("C.2.3");
        assert_eq!(fields(&out), pairs(&[("password", "secret")]));
        assert!(out.fields()[0].never_indexed);
        d.decode(&hex("82"), 1 << 16, &mut out).expect("C.2.4");
        assert_eq!(fields(&out), pairs(&[(":method", "GET")]));
    }

    /// C.3 (plain literals) and C.4 (Huffman-coded): three requests on one connection,
    /// the later ones referring to what the first put in the table.
    #[test]
    fn rfc_7541_c3_and_c4_request_sequences() {
        let sequences = [
            [
                "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
                "8286 84be 5808 6e6f 2d63 6163 6865",
                "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
            ],
            [
                "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
                "8286 84be 5886 a8eb 1064 9cbf",
                "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
            ],
        ];
        for blocks in sequences {
            let mut d = Decoder::new(4096);
            let mut out = Block::new();
            let base = [(":method", "GET"), (":scheme", "http"), (":path", "/")];
            d.decode(&hex(blocks[0]), 1 << 16, &mut out).expect("first");
            let mut want = base.to_vec();
            want.push((":authority", "www.example.com"));
            assert_eq!(fields(&out), pairs(&want));
            d.decode(&hex(blocks[1]), 1 << 16, &mut out)
                .expect("second");
            want.push(("cache-control", "no-cache"));
            assert_eq!(fields(&out), pairs(&want));
            d.decode(&hex(blocks[2]), 1 << 16, &mut out).expect("third");
            let want = [
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/index.html"),
                (":authority", "www.example.com"),
                ("custom-key", "custom-value"),
            ];
            assert_eq!(fields(&out), pairs(&want));
            assert_eq!(d.table.size(), 164);
        }
    }

    #[test]
    fn malformed_blocks_are_connection_errors() {
        let mut d = Decoder::new(4096);
        let mut out = Block::new();
        let cases = [
            ("80", DecodeError::BadIndex),
            ("be", DecodeError::BadIndex),
            ("ff", DecodeError::Truncated),
            ("ff ff ff ff ff 7f", DecodeError::Overflow),
            ("44 05 2f61", DecodeError::Truncated),
            ("00 81", DecodeError::Truncated),
            ("44 81 00", DecodeError::Huffman),
            ("82 20", DecodeError::BadSizeUpdate),
            ("3f e2 1f", DecodeError::BadSizeUpdate),
        ];
        for (block, want) in cases {
            assert_eq!(
                d.decode(&hex(block), 1 << 16, &mut out),
                Err(want),
                "{block}"
            );
            assert!(want.is_connection_error());
        }
        // A size update first is allowed, and evicts.
        assert_eq!(d.decode(&hex("20 82"), 1 << 16, &mut out), Ok(()));
        assert_eq!(d.table_size(), 0);
    }

    #[test]
    fn a_list_over_the_limit_is_refused_but_the_table_stays_in_step() {
        let mut d = Decoder::new(4096);
        let mut out = Block::new();
        // A 1,000-byte value inserted, then referred to 100 times: 100 KB decoded from
        // a block of about 1,100 bytes.
        // Literal with indexing, name "x", value length 127 + 0x69 + (6 << 7) = 1,000.
        let mut block = vec![0x40, 0x01, b'x', 0x7f, 0xe9, 0x06];
        let value_len = 1000;
        block.extend(std::iter::repeat_n(b'v', value_len));
        block.extend(std::iter::repeat_n(0xbe, 100));
        assert_eq!(
            d.decode(&block, 16 * 1024, &mut out),
            Err(DecodeError::TooLarge)
        );
        assert!(!DecodeError::TooLarge.is_connection_error());
        assert!(out.fields().is_empty());
        assert!(out.bytes.capacity() <= 32 * 1024, "kept at most the limit");
        // The inserted field is still index 62 for the next block.
        d.decode(&hex("be"), 16 * 1024, &mut out).expect("in step");
        assert_eq!(
            out.iter().next().map(|(n, v)| (n.len(), v.len())),
            Some((1, value_len))
        );
    }
}
