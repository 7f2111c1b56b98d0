//! The chunked transfer coding: a streaming decoder with bounded state, and the encoder.

/// The last chunk and an empty trailer section.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Appends a chunk-size line for `len` data bytes (`{len:x}\r\n`; the caller appends
/// the data and `\r\n`).
pub fn chunk_header(len: usize, out: &mut Vec<u8>) {
    let _ = (len, out);
    unimplemented!()
}

/// What a call to [`ChunkedDecoder::decode`] found in its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// `len` data bytes at `start` of the input (`start + len` ≤ consumed).
    Data {
        /// Offset in the input.
        start: usize,
        /// Bytes of chunk data.
        len: usize,
    },
    /// Only framing was consumed; more input is needed.
    NeedMore,
    /// Raw trailer-section bytes at `start` of the input (field lines with their CRLFs,
    /// never the final blank line): pass them on after the last chunk, or drop them.
    Trailer {
        /// Offset in the input.
        start: usize,
        /// Bytes.
        len: usize,
    },
    /// The body ended (last chunk and trailer section read).
    End,
}

/// Why a chunked body is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkError(pub &'static str);

/// A chunked body decoder that keeps no bytes of its own: the caller feeds what it read,
/// the decoder says which bytes are data. Chunk extensions are dropped; sizes over 2^60,
/// size lines over 4 KiB, a missing CRLF after data, bare LF line ends, and a trailer
/// section over 16 KiB or with control characters are errors.
#[derive(Debug, Default)]
pub struct ChunkedDecoder {
    _state: (),
}

impl ChunkedDecoder {
    /// Decodes from the start of `input`: returns the bytes consumed and what they were.
    /// Call again with the rest until it returns [`Decoded::NeedMore`] (input used up)
    /// or [`Decoded::End`].
    ///
    /// # Errors
    ///
    /// The body is malformed; the stream cannot be trusted after it.
    pub fn decode(&mut self, input: &[u8]) -> Result<(usize, Decoded), ChunkError> {
        let _ = input;
        unimplemented!()
    }

    /// Whether the body ended.
    pub fn is_done(&self) -> bool {
        unimplemented!()
    }
}
