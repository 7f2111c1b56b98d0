//! The chunked transfer coding: a streaming decoder with bounded state, and the encoder.

/// The last chunk and an empty trailer section.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Appends a chunk-size line for `len` data bytes (`{len:x}\r\n`; the caller appends
/// the data and `\r\n`).
pub fn chunk_header(len: usize, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 16];
    let mut at = digits.len();
    let mut rest = len;
    loop {
        at -= 1;
        digits[at] = HEX[rest & 0xf];
        rest >>= 4;
        if rest == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
    out.extend_from_slice(b"\r\n");
}

/// Most hex digits in a chunk size: 15 keep it under 2^60.
const MAX_SIZE_DIGITS: u8 = 15;
/// Longest chunk-size line, extensions included.
const MAX_SIZE_LINE: u16 = 4096;
/// Largest trailer section.
const MAX_TRAILER_BYTES: u16 = 16 * 1024;

const BAD_SIZE: ChunkError = ChunkError("invalid chunk size");
const SIZE_TOO_BIG: ChunkError = ChunkError("chunk size too large");
const LINE_TOO_LONG: ChunkError = ChunkError("chunk size line too long");
const BAD_LINE_END: ChunkError = ChunkError("chunked body line not ended by CRLF");
const NO_CRLF_AFTER_DATA: ChunkError = ChunkError("missing CRLF after chunk data");
const TRAILER_TOO_BIG: ChunkError = ChunkError("trailer section too large");
const BAD_TRAILER: ChunkError = ChunkError("invalid byte in trailer section");
const FAILED: ChunkError = ChunkError("chunked body already refused");

/// Where the decoder is in the body.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum State {
    /// At the start of a chunk-size line.
    #[default]
    Start,
    /// In a chunk-size line's hex digits (`digits` so far, `line` bytes of the line).
    Size {
        size: u64,
        digits: u8,
        line: u16,
    },
    /// Whitespace after the digits, before `;` or CR.
    SizeSpace {
        size: u64,
        line: u16,
    },
    /// In a chunk extension (dropped).
    Ext {
        size: u64,
        line: u16,
    },
    /// The LF ending the size line.
    SizeLf {
        size: u64,
    },
    /// Data bytes still to come.
    Data(u64),
    /// The CRLF after data.
    DataCr,
    DataLf,
    /// At the start of a trailer field line or the final blank line.
    TrailerStart {
        total: u16,
    },
    /// In a trailer field's name (a token, up to its colon).
    TrailerName {
        total: u16,
    },
    /// In a trailer field line, past its colon.
    TrailerLine {
        total: u16,
    },
    /// The LF ending a trailer field line.
    TrailerLf {
        total: u16,
    },
    /// The LF of the final blank line.
    EndLf,
    Done,
    Failed,
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
    state: State,
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
        let result = self.step(input);
        if result.is_err() {
            self.state = State::Failed;
        }
        result
    }

    /// Whether the body ended.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    fn step(&mut self, input: &[u8]) -> Result<(usize, Decoded), ChunkError> {
        let mut pos = 0;
        // Where the trailer bytes of this call began.
        let mut trailer: Option<usize> = None;
        loop {
            match self.state {
                State::Done => return Ok((pos, Decoded::End)),
                State::Failed => return Err(FAILED),
                State::Data(0) => {
                    self.state = State::DataCr;
                    continue;
                }
                State::Data(left) if pos < input.len() => {
                    let avail = input.len() - pos;
                    let n = usize::try_from(left).map_or(avail, |l| l.min(avail));
                    self.state = State::Data(left - n as u64);
                    return Ok((pos + n, Decoded::Data { start: pos, len: n }));
                }
                State::TrailerStart { .. } if input.get(pos) == Some(&b'\r') => {
                    if let Some(start) = trailer {
                        return Ok((
                            pos,
                            Decoded::Trailer {
                                start,
                                len: pos - start,
                            },
                        ));
                    }
                }
                _ => {}
            }
            let Some(&b) = input.get(pos) else {
                return Ok(match trailer {
                    Some(start) => (
                        pos,
                        Decoded::Trailer {
                            start,
                            len: pos - start,
                        },
                    ),
                    None => (pos, Decoded::NeedMore),
                });
            };
            let in_trailer = match self.state {
                State::TrailerStart { .. } => b != b'\r',
                State::TrailerName { .. } | State::TrailerLine { .. } | State::TrailerLf { .. } => {
                    true
                }
                _ => false,
            };
            if in_trailer {
                trailer = trailer.or(Some(pos));
            }
            self.state = next(self.state, b)?;
            pos += 1;
        }
    }
}

/// A token character of RFC 9110 §5.6.2 (field names, methods, chunk extensions); the
/// HTTP/2 codec checks request methods and field names with it too (`const`, so it can
/// build its byte tables at compile time).
#[inline]
pub const fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// The state after byte `b` (never called in `Data`, `Done` or `Failed`): the size line
/// and the trailer section each have their own function, so each reads as one grammar.
#[inline]
fn next(state: State, b: u8) -> Result<State, ChunkError> {
    match state {
        State::TrailerStart { .. }
        | State::TrailerName { .. }
        | State::TrailerLine { .. }
        | State::TrailerLf { .. }
        | State::EndLf => trailer_next(state, b),
        _ => size_line_next(state, b),
    }
}

/// A byte of a chunk-size line (`1a;ext=v CRLF`) or of the CRLF after a chunk's data.
#[inline]
fn size_line_next(state: State, b: u8) -> Result<State, ChunkError> {
    let line_byte = |line: u16| {
        let line = line + 1;
        if line > MAX_SIZE_LINE {
            Err(LINE_TOO_LONG)
        } else {
            Ok(line)
        }
    };
    Ok(match state {
        State::Start => match hex(b) {
            Some(d) => State::Size {
                size: u64::from(d),
                digits: 1,
                line: 1,
            },
            None => return Err(BAD_SIZE),
        },
        State::Size { size, digits, line } => {
            let line = line_byte(line)?;
            match (hex(b), b) {
                (Some(_), _) if digits >= MAX_SIZE_DIGITS => return Err(SIZE_TOO_BIG),
                (Some(d), _) => State::Size {
                    size: size << 4 | u64::from(d),
                    digits: digits + 1,
                    line,
                },
                (None, b' ' | b'\t') => State::SizeSpace { size, line },
                (None, b';') => State::Ext { size, line },
                (None, b'\r') => State::SizeLf { size },
                (None, b'\n') => return Err(BAD_LINE_END),
                (None, _) => return Err(BAD_SIZE),
            }
        }
        State::SizeSpace { size, line } => {
            let line = line_byte(line)?;
            match b {
                b' ' | b'\t' => State::SizeSpace { size, line },
                b';' => State::Ext { size, line },
                b'\r' => State::SizeLf { size },
                b'\n' => return Err(BAD_LINE_END),
                _ => return Err(BAD_SIZE),
            }
        }
        State::Ext { size, line } => {
            let line = line_byte(line)?;
            match b {
                b'\r' => State::SizeLf { size },
                b'\n' => return Err(BAD_LINE_END),
                b'\t' => State::Ext { size, line },
                0..=0x1f | 0x7f => return Err(BAD_SIZE),
                _ => State::Ext { size, line },
            }
        }
        State::SizeLf { size } => match b {
            b'\n' if size == 0 => State::TrailerStart { total: 0 },
            b'\n' => State::Data(size),
            _ => return Err(BAD_LINE_END),
        },
        State::DataCr => match b {
            b'\r' => State::DataLf,
            _ => return Err(NO_CRLF_AFTER_DATA),
        },
        State::DataLf => match b {
            b'\n' => State::Start,
            _ => return Err(NO_CRLF_AFTER_DATA),
        },
        _ => state,
    })
}

/// A byte of the trailer section after the last chunk, up to its final CRLF.
#[inline]
fn trailer_next(state: State, b: u8) -> Result<State, ChunkError> {
    let trailer_byte = |total: u16| {
        total
            .checked_add(1)
            .filter(|&t| t <= MAX_TRAILER_BYTES)
            .ok_or(TRAILER_TOO_BIG)
    };
    Ok(match state {
        State::TrailerStart { total } => match b {
            b'\r' => State::EndLf,
            b'\n' => return Err(BAD_LINE_END),
            // A field line starts with its name, a token: not whitespace (obs-fold), a
            // control, or anything that could pass for a request line to a lenient reader.
            b if is_tchar(b) => State::TrailerName {
                total: trailer_byte(total)?,
            },
            _ => return Err(BAD_TRAILER),
        },
        State::TrailerName { total } => {
            let total = trailer_byte(total)?;
            match b {
                b':' => State::TrailerLine { total },
                b if is_tchar(b) => State::TrailerName { total },
                _ => return Err(BAD_TRAILER),
            }
        }
        State::TrailerLine { total } => {
            let total = trailer_byte(total)?;
            match b {
                b'\r' => State::TrailerLf { total },
                b'\n' => return Err(BAD_LINE_END),
                b'\t' => State::TrailerLine { total },
                0..=0x1f | 0x7f => return Err(BAD_TRAILER),
                _ => State::TrailerLine { total },
            }
        }
        State::TrailerLf { total } => match b {
            b'\n' => State::TrailerStart {
                total: trailer_byte(total)?,
            },
            _ => return Err(BAD_LINE_END),
        },
        State::EndLf => match b {
            b'\n' => State::Done,
            _ => return Err(BAD_LINE_END),
        },
        _ => state,
    })
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}
