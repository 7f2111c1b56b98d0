//! A streaming scanner of HTTP/1 request framing, for request-smuggling defence.
//!
//! hyper rejects most ambiguous requests itself (differing or non-numeric
//! `Content-Length`, a `Transfer-Encoding` whose last coding is not `chunked`), but it
//! accepts a request carrying both `Transfer-Encoding: chunked` and `Content-Length`,
//! as RFC 9112 §6.3 allows, silently dropping the length. weir refuses those with 400,
//! as HAProxy's strict mode does, and the request handler cannot see the dropped header.
//!
//! So the client socket feeds every byte hyper reads through this scanner. It follows
//! heads and body framing (fixed length or chunked) without buffering, matching only the
//! two header names, and reports the index of any head that carried both. Heads are
//! numbered in the order hyper hands requests to the service, which makes the verdict
//! exact even with pipelining. Malformed input is hyper's to reject; the scanner only
//! has to stay bounded (it never allocates).

const CONTENT_LENGTH: &[u8] = b"content-length";
const TRANSFER_ENCODING: &[u8] = b"transfer-encoding";
const H2_METHOD: &[u8] = b"PRI ";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before or in the request line; `pos` counts its bytes.
    RequestLine { pos: u8, pri: bool },
    /// At the start of a header line (or a bare `\r` of the blank line).
    LineStart,
    /// In a header name: how far it still matches each interesting name.
    Name { pos: u8, cl: bool, te: bool },
    /// In a `Content-Length` value.
    LengthValue { value: u64 },
    /// Rest of a line that does not matter.
    SkipLine,
    /// Fixed-length body bytes still to pass.
    Body(u64),
    /// A chunk-size line; `ext` once past the hex digits.
    ChunkSize { size: u64, ext: bool },
    /// Chunk data bytes still to pass.
    ChunkData(u64),
    /// The CRLF after chunk data.
    ChunkEnd,
    /// At the start of a trailer line (or the final blank line).
    TrailerStart,
    /// Inside a trailer line.
    TrailerLine,
    /// Not HTTP/1 (HTTP/2 preface, tunnel) or not understood: stop looking.
    Off,
}

/// Follows request framing over a connection's byte stream.
#[derive(Debug)]
pub(crate) struct HeadScanner {
    state: State,
    /// Index of the head being read.
    index: u64,
    saw_length: bool,
    saw_te: bool,
    length: u64,
}

impl HeadScanner {
    pub(crate) fn new() -> Self {
        HeadScanner {
            state: State::RequestLine { pos: 0, pri: true },
            index: 0,
            saw_length: false,
            saw_te: false,
            length: 0,
        }
    }

    /// Whether the scanner gave up (HTTP/2 or garbage); the caller may drop it.
    pub(crate) fn is_off(&self) -> bool {
        self.state == State::Off
    }

    /// Feeds the next bytes; returns the index of a head in them that carried both
    /// `Content-Length` and `Transfer-Encoding`.
    pub(crate) fn scan(&mut self, mut bytes: &[u8]) -> Option<u64> {
        let mut bad = None;
        while let Some((&b, rest)) = bytes.split_first() {
            match self.state {
                State::Body(n) | State::ChunkData(n) => {
                    // Skip data in bulk: only framing bytes are looked at one by one.
                    let take = usize::try_from(n).unwrap_or(usize::MAX).min(bytes.len());
                    bytes = bytes.get(take..).unwrap_or_default();
                    let left = n - take as u64;
                    self.state = match (self.state, left) {
                        (State::Body(_), 0) => self.next_head(),
                        (State::Body(_), l) => State::Body(l),
                        (_, 0) => State::ChunkEnd,
                        (_, l) => State::ChunkData(l),
                    };
                    continue;
                }
                State::Off => return bad,
                _ => {}
            }
            bytes = rest;
            if let Some(index) = self.step(b) {
                bad = bad.or(Some(index));
            }
        }
        bad
    }

    fn next_head(&mut self) -> State {
        self.index += 1;
        State::RequestLine { pos: 0, pri: false }
    }

    fn step(&mut self, b: u8) -> Option<u64> {
        match self.state {
            State::RequestLine { pos, pri } => {
                if pos == 0 && (b == b'\r' || b == b'\n') {
                    return None; // blank lines before a request are ignored
                }
                if b == b'\n' {
                    self.state = State::LineStart;
                    return None;
                }
                let pri = pri && H2_METHOD.get(usize::from(pos)) == Some(&b);
                if pri && usize::from(pos) + 1 == H2_METHOD.len() {
                    self.state = State::Off; // HTTP/2 prior knowledge: not ours
                    return None;
                }
                self.state = State::RequestLine {
                    pos: pos.saturating_add(1),
                    pri,
                };
            }
            State::LineStart => match b {
                b'\r' => {}
                b'\n' => return self.end_head(),
                _ => {
                    self.state = State::Name {
                        pos: 0,
                        cl: true,
                        te: true,
                    };
                    return self.step(b);
                }
            },
            State::Name { pos, cl, te } => {
                let p = usize::from(pos);
                if b == b':' {
                    self.state = if cl && p == CONTENT_LENGTH.len() {
                        self.saw_length = true;
                        State::LengthValue { value: 0 }
                    } else {
                        if te && p == TRANSFER_ENCODING.len() {
                            self.saw_te = true;
                        }
                        State::SkipLine
                    };
                } else if b == b'\n' {
                    self.state = State::LineStart;
                } else {
                    let lower = b.to_ascii_lowercase();
                    let cl = cl && CONTENT_LENGTH.get(p) == Some(&lower);
                    let te = te && TRANSFER_ENCODING.get(p) == Some(&lower);
                    self.state = if cl || te {
                        State::Name {
                            pos: pos.saturating_add(1),
                            cl,
                            te,
                        }
                    } else {
                        State::SkipLine
                    };
                }
            }
            State::LengthValue { value } => match b {
                b'0'..=b'9' => match value
                    .checked_mul(10)
                    .and_then(|v| v.checked_add(u64::from(b - b'0')))
                {
                    Some(v) => self.state = State::LengthValue { value: v },
                    None => self.state = State::Off, // hyper rejects it
                },
                b' ' | b'\t' => {}
                b'\n' => {
                    self.length = value;
                    self.state = State::LineStart;
                }
                // `\r`, or a list hyper checks itself: keep the first number.
                _ => {
                    self.length = value;
                    self.state = State::SkipLine;
                }
            },
            State::SkipLine => {
                if b == b'\n' {
                    self.state = State::LineStart;
                }
            }
            State::ChunkSize { size, ext } => match b {
                b'\n' => {
                    self.state = if size == 0 {
                        State::TrailerStart
                    } else {
                        State::ChunkData(size)
                    };
                }
                _ if ext => {}
                _ => match (b as char).to_digit(16) {
                    Some(d) => match size.checked_mul(16).and_then(|s| s.checked_add(d.into())) {
                        Some(s) => self.state = State::ChunkSize { size: s, ext },
                        None => self.state = State::Off,
                    },
                    None => self.state = State::ChunkSize { size, ext: true },
                },
            },
            State::ChunkEnd => {
                if b == b'\n' {
                    self.state = State::ChunkSize {
                        size: 0,
                        ext: false,
                    };
                }
            }
            State::TrailerStart => match b {
                b'\r' => {}
                b'\n' => self.state = self.next_head(),
                _ => self.state = State::TrailerLine,
            },
            State::TrailerLine => {
                if b == b'\n' {
                    self.state = State::TrailerStart;
                }
            }
            State::Body(_) | State::ChunkData(_) | State::Off => {}
        }
        None
    }

    fn end_head(&mut self) -> Option<u64> {
        let bad = (self.saw_length && self.saw_te).then_some(self.index);
        self.state = if self.saw_te {
            State::ChunkSize {
                size: 0,
                ext: false,
            }
        } else if self.saw_length && self.length > 0 {
            State::Body(self.length)
        } else {
            self.next_head()
        };
        self.saw_length = false;
        self.saw_te = false;
        self.length = 0;
        bad
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_all(input: &[u8], split: usize) -> Vec<u64> {
        let mut s = HeadScanner::new();
        let mut out = Vec::new();
        for piece in input.chunks(split.max(1)) {
            out.extend(s.scan(piece));
        }
        out
    }

    #[test]
    fn plain_requests_are_not_flagged() {
        let input = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n\r\n";
        for split in [1, 3, 7, input.len()] {
            assert!(scan_all(input, split).is_empty(), "split {split}");
        }
    }

    #[test]
    fn length_and_chunked_in_one_head_is_flagged_with_its_index() {
        let input = b"GET / HTTP/1.1\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        for split in [1, 2, 5, input.len()] {
            assert_eq!(scan_all(input, split), vec![1], "split {split}");
        }
    }

    #[test]
    fn body_bytes_that_look_like_headers_are_skipped() {
        let body = b"x\r\ncontent-length: 1\r\ntransfer-encoding: chunked\r\n\r\n";
        let mut input =
            format!("POST / HTTP/1.1\r\ncontent-length: {}\r\n\r\n", body.len()).into_bytes();
        input.extend_from_slice(body);
        input.extend_from_slice(b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nx-t: 1\r\n\r\nGET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(scan_all(&input, 1), vec![2]);
        assert_eq!(scan_all(&input, 4096), vec![2]);
    }

    #[test]
    fn http2_preface_turns_the_scanner_off() {
        let mut s = HeadScanner::new();
        assert_eq!(s.scan(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), None);
        assert!(s.is_off());
    }
}
