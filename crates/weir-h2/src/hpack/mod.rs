//! HPACK (RFC 7541), the header compression of HTTP/2.
//!
//! ```text
//! huffman.rs  the Huffman code: decoding (canonical, by code length), encoding for tests
//! table.rs    the static table, a decoder's dynamic table
//! decode.rs   header blocks into one reusable buffer, bounded by the header list limit
//! encode.rs   responses: static indexes and plain literals, no dynamic table
//! ```

mod decode;
mod encode;
pub(crate) mod huffman;
mod table;

pub use decode::{Block, DecodeError, Decoder, Field, Span};
pub use encode::Encoder;
pub use huffman::InvalidHuffman;
#[cfg(test)]
mod reference;
