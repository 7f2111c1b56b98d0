//! Access lists: `allow` and `deny` address blocks of a listener or route.
//!
//! `deny` wins; with `allow`, an address outside it is refused. Blocks are kept per
//! family as `(network, mask)` integers, so a check is an AND and a compare per block,
//! with no allocation; an IPv4-mapped IPv6 client (`::ffff:10.0.0.1`, a dual-stack
//! socket's view of an IPv4 peer) is matched as the IPv4 address it is.

use std::net::IpAddr;

use weir_config::Cidr;

/// Compiled `allow` / `deny` lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessList {
    /// `None`: no `allow` list, every address not denied is allowed.
    allow: Option<Blocks>,
    deny: Blocks,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Blocks {
    v4: Box<[(u32, u32)]>,
    v6: Box<[(u128, u128)]>,
}

impl AccessList {
    /// The lists of a listener or route; `None` when it has neither.
    pub fn new(allow: Option<&[Cidr]>, deny: &[Cidr]) -> Option<AccessList> {
        if allow.is_none() && deny.is_empty() {
            return None;
        }
        Some(AccessList {
            allow: allow.map(Blocks::new),
            deny: Blocks::new(deny),
        })
    }

    /// Whether a client at `ip` may pass.
    #[inline]
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            IpAddr::V4(_) => ip,
        };
        !self.deny.contains(ip) && self.allow.as_ref().is_none_or(|a| a.contains(ip))
    }
}

impl Blocks {
    fn new(cidrs: &[Cidr]) -> Blocks {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for c in cidrs {
            let len = u32::from(c.prefix_len);
            match c.addr {
                IpAddr::V4(a) => {
                    let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
                    v4.push((u32::from(a) & mask, mask));
                }
                IpAddr::V6(a) => match a.to_ipv4_mapped().filter(|_| len >= 96) {
                    // `::ffff:10.0.0.0/104` is the IPv4 block `10.0.0.0/8`.
                    Some(a4) => {
                        let mask = u32::MAX.checked_shl(128 - len).unwrap_or(0);
                        v4.push((u32::from(a4) & mask, mask));
                    }
                    None => {
                        let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
                        v6.push((u128::from(a) & mask, mask));
                    }
                },
            }
        }
        Blocks {
            v4: v4.into(),
            v6: v6.into(),
        }
    }

    #[inline]
    fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                self.v4.iter().any(|&(net, mask)| a & mask == net)
            }
            IpAddr::V6(a) => {
                let a = u128::from(a);
                self.v6.iter().any(|&(net, mask)| a & mask == net)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter()
            .map(|c| Cidr::parse(c).expect("valid cidr"))
            .collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn no_lists_no_access_list() {
        assert_eq!(AccessList::new(None, &[]), None);
    }

    #[test]
    fn deny_alone_refuses_only_its_blocks() {
        let acl = AccessList::new(None, &cidrs(&["10.0.0.0/8", "2001:db8::/32"])).expect("acl");
        assert!(!acl.permits(ip("10.1.2.3")));
        assert!(!acl.permits(ip("2001:db8::1")));
        assert!(acl.permits(ip("11.0.0.1")));
        assert!(acl.permits(ip("2001:db9::1")));
        assert!(acl.permits(ip("::1")));
    }

    #[test]
    fn allow_alone_refuses_everything_else() {
        let allow = cidrs(&["192.168.0.0/16", "::1"]);
        let acl = AccessList::new(Some(&allow), &[]).expect("acl");
        assert!(acl.permits(ip("192.168.44.1")));
        assert!(acl.permits(ip("::1")));
        assert!(!acl.permits(ip("192.169.0.1")));
        assert!(!acl.permits(ip("::2")));
    }

    #[test]
    fn deny_wins_over_allow() {
        let allow = cidrs(&["10.0.0.0/8"]);
        let acl = AccessList::new(Some(&allow), &cidrs(&["10.0.0.5"])).expect("acl");
        assert!(acl.permits(ip("10.0.0.4")));
        assert!(!acl.permits(ip("10.0.0.5")));
    }

    #[test]
    fn ipv4_mapped_clients_match_ipv4_blocks_and_mapped_blocks_match_ipv4() {
        let acl =
            AccessList::new(None, &cidrs(&["127.0.0.2/32", "::ffff:10.0.0.0/104"])).expect("acl");
        assert!(!acl.permits(ip("::ffff:127.0.0.2")));
        assert!(acl.permits(ip("::ffff:127.0.0.1")));
        assert!(
            !acl.permits(ip("10.9.9.9")),
            "a mapped block is its IPv4 block"
        );
        assert!(!acl.permits(ip("::ffff:10.9.9.9")));
    }

    #[test]
    fn zero_length_prefixes_match_their_whole_family() {
        let acl = AccessList::new(None, &cidrs(&["0.0.0.0/0"])).expect("acl");
        assert!(!acl.permits(ip("203.0.113.9")));
        assert!(!acl.permits(ip("::ffff:203.0.113.9")));
        assert!(acl.permits(ip("2001:db8::1")), "IPv6 is another family");
        let everything = AccessList::new(None, &cidrs(&["0.0.0.0/0", "::/0"])).expect("acl");
        assert!(!everything.permits(ip("2001:db8::1")));
    }
}
