//! Address blocks (`10.0.0.0/8`) for `accept_proxy_protocol.trusted`, parsed by hand:
//! the job is a dozen lines, not worth a dependency.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An address block: `10.0.0.0/8`, `::1/128`. A bare address is a single host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// The network address (host bits cleared).
    pub addr: IpAddr,
    /// 0..=32 for IPv4, 0..=128 for IPv6.
    pub prefix_len: u8,
}

impl Cidr {
    /// Parses `addr/prefix` or a bare address; host bits are cleared.
    ///
    /// # Errors
    ///
    /// A message naming what is wrong, for the config error.
    ///
    /// ```
    /// let c = weir_config::Cidr::parse("10.1.2.3/8").unwrap();
    /// assert_eq!(c.to_string(), "10.0.0.0/8");
    /// assert!(c.contains("10.200.0.1".parse().unwrap()));
    /// assert!(c.contains("::ffff:10.0.0.1".parse().unwrap()));
    /// ```
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| {
            format!("invalid CIDR {text:?} (expected e.g. 10.0.0.0/8 or 127.0.0.1)")
        })?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix_len = match prefix {
            None => max,
            Some(p) => match p.trim().parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(format!("invalid prefix length in {text:?} (0 to {max})")),
            },
        };
        Ok(Cidr {
            addr: mask(addr, prefix_len),
            prefix_len,
        })
    }

    /// Whether `ip` is in the block; an IPv4-mapped IPv6 address counts as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            IpAddr::V4(_) => ip,
        };
        ip.is_ipv4() == self.addr.is_ipv4() && mask(ip, self.prefix_len) == self.addr
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

fn mask(ip: IpAddr, prefix_len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::MAX
                .checked_shl(32 - u32::from(prefix_len))
                .unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(v4) & bits))
        }
        IpAddr::V6(v6) => {
            let bits = u128::MAX
                .checked_shl(128 - u32::from(prefix_len))
                .unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & bits))
        }
    }
}
