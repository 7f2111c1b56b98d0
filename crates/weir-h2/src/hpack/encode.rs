//! Header block encoding (RFC 7541 §6) for responses, the way HAProxy's encoder works:
//! the static table's indexes where a name (or name and value) is there, plain literals
//! otherwise, never the dynamic table and never Huffman.
//!
//! A proxy's responses are mostly fields that change per response (a date, a length, a
//! request id) or that a dynamic table would hold once per connection. Indexing them
//! costs a table lookup and an insertion per field, and Huffman coding a few
//! instructions per byte, for a header block a few dozen bytes smaller; the client's
//! decoder also does less. h2's encoder spent about 4,500 instructions per response
//! doing both (callgrind, `benches/compare/callgrind.sh`).

use super::table::{static_name, STATIC};

/// One connection's encoder. It keeps no table; it only remembers to tell the peer so
/// when the peer's table limit changes.
#[derive(Debug, Default)]
pub struct Encoder {
    size_update: bool,
}

impl Encoder {
    /// An encoder for a peer with HTTP/2's default table size.
    pub fn new() -> Self {
        Encoder::default()
    }

    /// The peer's `SETTINGS_HEADER_TABLE_SIZE`. Below the 4,096 an encoder may assume,
    /// §4.2 wants a size update at the start of the next block; this encoder's table is
    /// always empty, so it announces size 0, within any limit.
    pub fn peer_table_size(&mut self, size: u32) {
        if size < 4096 {
            self.size_update = true;
        }
    }

    /// Starts a header block: the size update, if one is owed.
    pub fn begin(&mut self, dst: &mut Vec<u8>) {
        if std::mem::take(&mut self.size_update) {
            dst.push(0x20);
        }
    }

    /// `:status`: one byte for the seven codes in the static table.
    pub fn status(&self, code: u16, dst: &mut Vec<u8>) {
        let index = match code {
            200 => 8,
            204 => 9,
            206 => 10,
            304 => 11,
            400 => 12,
            404 => 13,
            500 => 14,
            _ => {
                let digits = [
                    b'0' + (code / 100 % 10) as u8,
                    b'0' + (code / 10 % 10) as u8,
                    b'0' + (code % 10) as u8,
                ];
                literal_with_name_index(8, &digits, false, dst);
                return;
            }
        };
        dst.push(0x80 | index);
    }

    /// One field; `name` is lower case (HTTP/2's rule, §8.2.1 of RFC 9113). A
    /// `never_index` field goes out as never indexed (§6.2.3), so an intermediary after
    /// weir does not index it either.
    pub fn field(&self, name: &[u8], value: &[u8], never_index: bool, dst: &mut Vec<u8>) {
        // One reservation for the field: its bytes, and prefixes up to 5 bytes each.
        dst.reserve(name.len() + value.len() + 11);
        match static_name(name) {
            Some(first) => {
                // Entries with values: the pseudo-headers and `accept-encoding` (1-16).
                if first <= 16 && !never_index {
                    // Those of one name are adjacent.
                    let exact = STATIC[first - 1..]
                        .iter()
                        .take_while(|(n, _)| *n == name)
                        .position(|(_, v)| !v.is_empty() && *v == value);
                    if let Some(at) = exact {
                        integer(first + at, 7, 0x80, dst);
                        return;
                    }
                }
                literal_with_name_index(first, value, never_index, dst);
            }
            None => {
                dst.push(if never_index { 0x10 } else { 0x00 });
                string(name, dst);
                string(value, dst);
            }
        }
    }
}

fn literal_with_name_index(index: usize, value: &[u8], never_index: bool, dst: &mut Vec<u8>) {
    integer(index, 4, if never_index { 0x10 } else { 0x00 }, dst);
    string(value, dst);
}

/// §5.1 with `flags` in the first byte's high bits.
#[inline]
fn integer(value: usize, prefix: u8, flags: u8, dst: &mut Vec<u8>) {
    let mask = (1usize << prefix) - 1;
    if value < mask {
        dst.push(flags | value as u8);
        return;
    }
    dst.push(flags | mask as u8);
    let mut rest = value - mask;
    while rest >= 0x80 {
        dst.push(0x80 | (rest & 0x7f) as u8);
        rest >>= 7;
    }
    dst.push(rest as u8);
}

/// §5.2 without Huffman coding.
#[inline]
fn string(bytes: &[u8], dst: &mut Vec<u8>) {
    integer(bytes.len(), 7, 0x00, dst);
    dst.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hpack::{Block, Decoder};

    #[test]
    fn statuses_and_static_pairs_are_one_byte() {
        let e = Encoder::new();
        let mut dst = Vec::new();
        e.status(200, &mut dst);
        e.status(404, &mut dst);
        e.field(b":method", b"POST", false, &mut dst);
        e.field(b"accept-encoding", b"gzip, deflate", false, &mut dst);
        assert_eq!(dst, [0x88, 0x8d, 0x83, 0x90]);
    }

    #[test]
    fn literals_use_the_static_name_when_there_is_one() {
        let e = Encoder::new();
        let mut dst = Vec::new();
        e.status(503, &mut dst);
        assert_eq!(dst, [0x08, 0x03, b'5', b'0', b'3']);
        dst.clear();
        e.field(b"content-length", b"12", false, &mut dst);
        assert_eq!(dst, [0x0f, 0x0d, 0x02, b'1', b'2']);
        dst.clear();
        e.field(b"x-id", b"7", true, &mut dst);
        assert_eq!(dst, [0x10, 0x04, b'x', b'-', b'i', b'd', 0x01, b'7']);
        dst.clear();
        e.field(b":method", b"GET", true, &mut dst);
        assert_eq!(
            dst,
            [0x12, 0x03, b'G', b'E', b'T'],
            "never indexed, even if static"
        );
    }

    #[test]
    fn a_lowered_peer_table_gets_one_size_update() {
        let mut e = Encoder::new();
        let mut dst = Vec::new();
        e.begin(&mut dst);
        e.peer_table_size(4096);
        e.begin(&mut dst);
        assert!(dst.is_empty());
        e.peer_table_size(0);
        e.begin(&mut dst);
        e.begin(&mut dst);
        assert_eq!(dst, [0x20]);
    }

    #[test]
    fn long_values_round_trip_through_the_decoder() {
        let e = Encoder::new();
        let value = vec![b'a'; 70_000];
        let mut dst = Vec::new();
        e.field(b"set-cookie", &value, false, &mut dst);
        e.field(b"a-name-that-is-not-in-the-table", b"", false, &mut dst);
        let mut out = Block::new();
        Decoder::new(4096)
            .decode(&dst, 1 << 20, &mut out)
            .expect("decodes");
        let got: Vec<_> = out.iter().map(|(n, v)| (n.to_vec(), v.len())).collect();
        assert_eq!(
            got,
            [
                (b"set-cookie".to_vec(), 70_000),
                (b"a-name-that-is-not-in-the-table".to_vec(), 0)
            ]
        );
    }
}
