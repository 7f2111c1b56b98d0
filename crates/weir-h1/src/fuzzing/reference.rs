//! A small, strict HTTP/1.1 request reader written from RFC 9112 alone (no `httparse`),
//! the other side of the differential fuzz target. It is slow and allocates; it only has
//! to be obviously right about where a head ends, how its body is framed, and which heads
//! are ambiguous.

use crate::{MAX_HEADERS, MAX_HEAD_BYTES};

/// What the reference makes of a request head.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Head {
    /// No end of head yet.
    Incomplete,
    /// The request line is not `method SP target SP HTTP/1.x`.
    BadRequestLine,
    /// A field line is not `name ":" OWS value OWS` (obs-fold, controls, no colon).
    BadField,
    /// CL with TE, a TE other than one `chunked`, or Content-Lengths that disagree.
    Ambiguous,
    /// More fields or bytes than weir's limits.
    TooLarge,
    /// A head of `len` bytes with its body framed so.
    Ok { len: usize, framing: Framing },
}

/// The body framing of a request (RFC 9112 §6.3).
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(super) enum Framing {
    None,
    Length(u64),
    Chunked,
}

/// What the reference makes of a chunked body.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Body {
    Incomplete,
    Error,
    /// The body ends `end` bytes in; its data.
    End {
        end: usize,
        data: Vec<u8>,
    },
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_ctl(b: u8) -> bool {
    b < 0x20 || b == 0x7f
}

/// The line starting at `pos`, without its line end (LF, or CRLF; RFC 9112 §2.2 lets a
/// head's lines end in a bare LF), and where the next one starts.
fn head_line(buf: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let rest = buf.get(pos..)?;
    let lf = rest.iter().position(|&b| b == b'\n')?;
    let line = &rest[..lf];
    Some((line.strip_suffix(b"\r").unwrap_or(line), pos + lf + 1))
}

fn request_line_ok(line: &[u8]) -> bool {
    let parts: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    let [method, target, version] = parts.as_slice() else {
        return false;
    };
    !method.is_empty()
        && method.iter().all(|&b| is_tchar(b))
        && !target.is_empty()
        && target
            .iter()
            .all(|&b| (0x21..0x7f).contains(&b) || b >= 0x80)
        && (*version == b"HTTP/1.1" || *version == b"HTTP/1.0")
}

/// Reads the request head at the start of `buf`.
pub(super) fn head(buf: &[u8]) -> Head {
    let mut pos = 0;
    // Blank lines before the request line are skipped (RFC 9112 §2.2).
    loop {
        if buf[pos..].starts_with(b"\r\n") {
            pos += 2;
        } else if buf[pos..].starts_with(b"\n") {
            pos += 1;
        } else {
            break;
        }
    }
    let Some((line, mut pos)) = head_line(buf, pos) else {
        return Head::Incomplete;
    };
    if !request_line_ok(line) {
        return Head::BadRequestLine;
    }
    let mut fields: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    loop {
        let Some((line, next)) = head_line(buf, pos) else {
            return Head::Incomplete;
        };
        pos = next;
        if line.is_empty() {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            return Head::BadField;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Head::BadField;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return Head::BadField;
        }
        if value.iter().any(|&b| is_ctl(b) && b != b'\t') {
            return Head::BadField;
        }
        fields.push((name.to_ascii_lowercase(), value.to_vec()));
    }
    if fields.len() > MAX_HEADERS || pos > MAX_HEAD_BYTES {
        return Head::TooLarge;
    }
    match framing(&fields) {
        Some(framing) => Head::Ok { len: pos, framing },
        None => Head::Ambiguous,
    }
}

/// RFC 9112 §6.3 with weir's policy: a transfer coding list must be exactly `chunked`.
fn framing(fields: &[(Vec<u8>, Vec<u8>)]) -> Option<Framing> {
    let values = |name: &[u8]| -> Vec<Vec<u8>> {
        fields
            .iter()
            .filter(|(n, _)| n == name)
            .flat_map(|(_, v)| v.split(|&b| b == b',').map(|e| e.trim_ascii().to_vec()))
            .filter(|e| !e.is_empty())
            .collect()
    };
    let te_fields = fields
        .iter()
        .filter(|(n, _)| n == b"transfer-encoding")
        .count();
    let has_cl = fields.iter().any(|(n, _)| n == b"content-length");
    if te_fields > 0 {
        let codings = values(b"transfer-encoding");
        let single = codings.len() == 1 && codings[0].eq_ignore_ascii_case(b"chunked");
        return (single && !has_cl).then_some(Framing::Chunked);
    }
    if !has_cl {
        return Some(Framing::None);
    }
    let lengths = values(b"content-length");
    let mut agreed = None;
    for l in lengths {
        if !l.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n: u64 = std::str::from_utf8(&l).ok()?.parse().ok()?;
        if agreed.is_some_and(|a| a != n) {
            return None;
        }
        agreed = Some(n);
    }
    agreed.map(Framing::Length)
}

/// A chunked-body line starting at `pos`: strict CRLF, no controls but HTAB.
fn body_line(buf: &[u8], pos: usize) -> Result<Option<(&[u8], usize)>, ()> {
    let rest = &buf[pos..];
    for (i, &b) in rest.iter().enumerate() {
        match b {
            b'\r' => {
                return match rest.get(i + 1) {
                    None => Ok(None),
                    Some(b'\n') => Ok(Some((&rest[..i], pos + i + 2))),
                    Some(_) => Err(()),
                }
            }
            b'\t' => {}
            b if is_ctl(b) => return Err(()),
            _ => {}
        }
    }
    Ok(None)
}

/// Reads the chunked body at the start of `buf` (RFC 9112 §7.1).
pub(super) fn chunked(buf: &[u8]) -> Body {
    let mut pos = 0;
    let mut data = Vec::new();
    loop {
        let (line, next) = match body_line(buf, pos) {
            Err(()) => return Body::Error,
            Ok(None) => return Body::Incomplete,
            Ok(Some(found)) => found,
        };
        let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
        let rest = line[digits..].trim_ascii_start();
        if digits == 0 || !(rest.is_empty() || rest[0] == b';') {
            return Body::Error;
        }
        let Some(size) = std::str::from_utf8(&line[..digits])
            .ok()
            .and_then(|d| u64::from_str_radix(d, 16).ok())
        else {
            return Body::Error;
        };
        pos = next;
        if size == 0 {
            break;
        }
        let Some(end) = usize::try_from(size).ok().and_then(|s| pos.checked_add(s)) else {
            return Body::Incomplete;
        };
        if end > buf.len() {
            return Body::Incomplete;
        }
        data.extend_from_slice(&buf[pos..end]);
        match buf.get(end..end + 2) {
            Some(b"\r\n") => pos = end + 2,
            Some(_) => return Body::Error,
            None if buf.len() == end + 1 && buf[end] != b'\r' => return Body::Error,
            None => return Body::Incomplete,
        }
    }
    // The trailer section: field lines, then a blank line.
    loop {
        let (line, next) = match body_line(buf, pos) {
            Err(()) => return Body::Error,
            Ok(None) => return Body::Incomplete,
            Ok(Some(found)) => found,
        };
        if line.is_empty() {
            return Body::End { end: next, data };
        }
        if line[0] == b' ' || line[0] == b'\t' {
            return Body::Error;
        }
        pos = next;
    }
}
