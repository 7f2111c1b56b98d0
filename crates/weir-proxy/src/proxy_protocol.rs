//! The PROXY protocol (HAProxy's spec, v1 and v2): headers sent to backends and read
//! from the L4 balancer in front.
//!
//! Sending: one header right after connecting, before any relayed byte, carrying the
//! client's and the listener's addresses (HAProxy's `send-proxy`/`send-proxy-v2`).
//!
//! Accepting (HAProxy's `accept-proxy`): a listener with `accept_proxy_protocol` speaks
//! to its trusted balancers only. A connection from any other source is closed before a
//! byte is read, so an untrusted client can never claim another address; a trusted
//! source must send a well-formed header within the listener's `header_read` timeout.
//! The header is read without reading past it (v1: peeked, then consumed up to its
//! `\r\n`; v2: its length is in its fixed part), so the bytes after it reach the proxy
//! untouched. `UNKNOWN` (v1) and `LOCAL` (v2, a balancer's own health check) keep the
//! socket's own addresses. v2 TLVs are skipped, but must fit the header exactly.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use weir_balance::SharedTable;
use weir_config::ProxyProtocolVersion;

/// The v2 signature.
const V2_SIG: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The longest v1 line the spec allows, `\r\n` included.
const V1_MAX: usize = 107;
/// Largest v2 address block accepted (TLVs included); the spec allows 64 KiB, HAProxy
/// keeps to its buffer.
const V2_MAX_LEN: usize = 4096;

/// The header announcing a connection from `src` to `dst`.
pub(crate) fn encode(version: ProxyProtocolVersion, src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    // Mixed families cannot share one header: announce both as IPv6 then.
    let (src, dst) = match (src, dst) {
        (SocketAddr::V4(_), SocketAddr::V4(_)) | (SocketAddr::V6(_), SocketAddr::V6(_)) => {
            (src, dst)
        }
        _ => (to_v6(src), to_v6(dst)),
    };
    match version {
        ProxyProtocolVersion::V1 => {
            let family = if src.is_ipv4() { "TCP4" } else { "TCP6" };
            format!(
                "PROXY {family} {} {} {} {}\r\n",
                src.ip(),
                dst.ip(),
                src.port(),
                dst.port()
            )
            .into_bytes()
        }
        ProxyProtocolVersion::V2 => {
            let mut out = Vec::with_capacity(16 + 36);
            out.extend_from_slice(&V2_SIG);
            out.push(0x21); // version 2, PROXY
            match (src.ip(), dst.ip()) {
                (IpAddr::V4(s), IpAddr::V4(d)) => {
                    out.push(0x11); // AF_INET, STREAM
                    out.extend_from_slice(&12u16.to_be_bytes());
                    out.extend_from_slice(&s.octets());
                    out.extend_from_slice(&d.octets());
                }
                (s, d) => {
                    out.push(0x21); // AF_INET6, STREAM
                    out.extend_from_slice(&36u16.to_be_bytes());
                    out.extend_from_slice(&v6(s).octets());
                    out.extend_from_slice(&v6(d).octets());
                }
            }
            out.extend_from_slice(&src.port().to_be_bytes());
            out.extend_from_slice(&dst.port().to_be_bytes());
            out
        }
    }
}

fn v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

fn to_v6(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(IpAddr::V6(v6(addr.ip())), addr.port())
}

/// The addresses a header carried: `None` for `UNKNOWN`/`LOCAL` (keep the socket's).
pub(crate) type Carried = Option<(SocketAddr, SocketAddr)>;

/// Reads one v1 or v2 header from the start of `stream`, and nothing after it.
///
/// # Errors
///
/// A message for the log: malformed, too long, or the connection closed first.
pub(crate) async fn read(stream: &mut TcpStream) -> Result<Carried, String> {
    let mut head = [0u8; 16];
    read_exact(stream, &mut head[..8]).await?;
    if head.starts_with(b"PROXY ") {
        return read_v1(stream, &head[..8]).await;
    }
    if head[..8] != V2_SIG[..8] {
        return Err("no PROXY protocol header".to_owned());
    }
    read_exact(stream, &mut head[8..]).await?;
    if head[..12] != V2_SIG {
        return Err("bad PROXY v2 signature".to_owned());
    }
    let len = usize::from(u16::from_be_bytes([head[14], head[15]]));
    if len > V2_MAX_LEN {
        return Err(format!("PROXY v2 header too long ({len} bytes)"));
    }
    let mut body = vec![0u8; len];
    read_exact(stream, &mut body).await?;
    parse_v2(head[12], head[13], &body)
}

async fn read_exact(stream: &mut TcpStream, buf: &mut [u8]) -> Result<(), String> {
    stream
        .read_exact(buf)
        .await
        .map(drop)
        .map_err(|e| format!("reading the PROXY header: {e}"))
}

/// Peeks for the `\n`, consuming only header bytes, so the payload stays in the socket.
async fn read_v1(stream: &mut TcpStream, start: &[u8]) -> Result<Carried, String> {
    let mut line = start.to_vec();
    let mut peek = [0u8; V1_MAX];
    loop {
        let room = V1_MAX.saturating_sub(line.len());
        if room == 0 {
            return Err("PROXY v1 line too long".to_owned());
        }
        let n = stream
            .peek(&mut peek[..room])
            .await
            .map_err(|e| format!("reading the PROXY header: {e}"))?;
        if n == 0 {
            return Err("connection closed inside the PROXY header".to_owned());
        }
        let take = peek[..n].iter().position(|&b| b == b'\n').map(|i| i + 1);
        let take_n = take.unwrap_or(n);
        let start = line.len();
        line.resize(start + take_n, 0);
        read_exact(stream, &mut line[start..]).await?;
        if take.is_some() {
            return parse_v1(&line);
        }
    }
}

/// `PROXY TCP4 src dst sport dport\r\n`, `PROXY TCP6 ...` or `PROXY UNKNOWN ...`.
pub(crate) fn parse_v1(line: &[u8]) -> Result<Carried, String> {
    let bad = || {
        format!(
            "malformed PROXY v1 line {:?}",
            String::from_utf8_lossy(line)
        )
    };
    let text = std::str::from_utf8(line).map_err(|_| bad())?;
    let text = text.strip_suffix("\r\n").ok_or_else(bad)?;
    let mut parts = text.split(' ');
    if parts.next() != Some("PROXY") {
        return Err(bad());
    }
    let v4 = match parts.next() {
        Some("TCP4") => true,
        Some("TCP6") => false,
        Some("UNKNOWN") => return Ok(None),
        _ => return Err(bad()),
    };
    let fields: Vec<&str> = parts.collect();
    let [src, dst, sport, dport] = fields[..] else {
        return Err(bad());
    };
    let ip = |s: &str| -> Result<IpAddr, String> {
        if v4 {
            s.parse::<Ipv4Addr>().map(IpAddr::V4).map_err(|_| bad())
        } else {
            s.parse::<Ipv6Addr>().map(IpAddr::V6).map_err(|_| bad())
        }
    };
    let port = |s: &str| -> Result<u16, String> {
        if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse().map_err(|_| bad())
    };
    Ok(Some((
        SocketAddr::new(ip(src)?, port(sport)?),
        SocketAddr::new(ip(dst)?, port(dport)?),
    )))
}

/// The v2 fields after the signature: version/command, family/transport, addresses.
pub(crate) fn parse_v2(ver_cmd: u8, family: u8, body: &[u8]) -> Result<Carried, String> {
    if ver_cmd >> 4 != 2 {
        return Err(format!("PROXY v2 header with version {}", ver_cmd >> 4));
    }
    match ver_cmd & 0x0f {
        0 => return Ok(None), // LOCAL
        1 => {}
        cmd => return Err(format!("PROXY v2 header with unknown command {cmd}")),
    }
    let short = || format!("PROXY v2 address block too short ({} bytes)", body.len());
    match family >> 4 {
        1 => {
            let b: &[u8; 12] = addresses(body, short)?;
            let ip = |i: usize| IpAddr::V4(Ipv4Addr::new(b[i], b[i + 1], b[i + 2], b[i + 3]));
            Ok(Some((
                SocketAddr::new(ip(0), u16::from_be_bytes([b[8], b[9]])),
                SocketAddr::new(ip(4), u16::from_be_bytes([b[10], b[11]])),
            )))
        }
        2 => {
            let b: &[u8; 36] = addresses(body, short)?;
            let ip = |i: usize| {
                let mut o = [0u8; 16];
                o.copy_from_slice(&b[i..i + 16]);
                IpAddr::V6(Ipv6Addr::from(o))
            };
            Ok(Some((
                SocketAddr::new(ip(0), u16::from_be_bytes([b[32], b[33]])),
                SocketAddr::new(ip(16), u16::from_be_bytes([b[34], b[35]])),
            )))
        }
        // AF_UNSPEC or AF_UNIX: nothing usable, keep the socket's addresses.
        0 | 3 => Ok(None),
        f => Err(format!("PROXY v2 header with unknown address family {f}")),
    }
}

/// The `N` bytes of v2 addresses at the start of `body` (`short` says why not), once
/// the TLVs after them are checked.
fn addresses<const N: usize>(
    body: &[u8],
    short: impl FnOnce() -> String,
) -> Result<&[u8; N], String> {
    let addresses = body
        .get(..N)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(short)?;
    check_tlvs(&body[N..])?;
    Ok(addresses)
}

/// The TLVs after the addresses must tile the rest of the header exactly: one whose
/// length runs past the end means the sender and weir disagree on where the header
/// ends, so nothing after it can be trusted to be the client's bytes. Their contents
/// are not used.
fn check_tlvs(mut tlvs: &[u8]) -> Result<(), String> {
    while !tlvs.is_empty() {
        let [kind, hi, lo, rest @ ..] = tlvs else {
            return Err(format!("PROXY v2 TLV cut short ({} bytes)", tlvs.len()));
        };
        let len = usize::from(u16::from_be_bytes([*hi, *lo]));
        let Some(next) = rest.get(len..) else {
            return Err(format!(
                "PROXY v2 TLV 0x{kind:02x} of {len} bytes overruns the header ({} left)",
                rest.len()
            ));
        };
        tlvs = next;
    }
    Ok(())
}

/// Who a connection is from and to, once any PROXY header is read, and what to send on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Origin {
    /// The client: the peer, or the source a trusted PROXY header carried.
    pub(crate) client: SocketAddr,
    /// The address the client connected to (the carried destination likewise).
    pub(crate) local: SocketAddr,
    /// TCP listeners: the header to send to the backend.
    pub(crate) send: Option<ProxyProtocolVersion>,
}

/// Applies the listener's `accept_proxy_protocol`: `None` means close the connection
/// (untrusted source, or a missing, malformed or late header; logged here).
pub(crate) async fn on_accept(
    stream: &mut TcpStream,
    peer: SocketAddr,
    table: &SharedTable,
    name: &str,
    timeout: Duration,
) -> Option<Origin> {
    let local = match stream.local_addr() {
        Ok(local) => local,
        Err(e) => {
            tracing::debug!(error = %e, "local address unavailable, closing");
            return None;
        }
    };
    let snapshot = table.load();
    let config = snapshot.config().listeners.iter().find(|l| l.name == name);
    let send = config.and_then(|l| l.proxy_protocol);
    let Some(accept) = config.and_then(|l| l.accept_proxy_protocol.as_ref()) else {
        return Some(Origin {
            client: peer,
            local,
            send,
        });
    };
    if !accept.is_trusted(peer.ip()) {
        tracing::debug!("source not trusted to send a PROXY header, closing");
        return None;
    }
    drop(snapshot);
    match tokio::time::timeout(timeout, read(stream)).await {
        Ok(Ok(Some((client, local)))) => {
            tracing::debug!(%client, "PROXY header accepted");
            Some(Origin {
                client,
                local,
                send,
            })
        }
        Ok(Ok(None)) => Some(Origin {
            client: peer,
            local,
            send,
        }),
        Ok(Err(error)) => {
            tracing::debug!(%error, "bad PROXY header, closing");
            None
        }
        Err(_) => {
            tracing::debug!(?timeout, "no PROXY header in time, closing");
            None
        }
    }
}

#[cfg(test)]
mod tests;
