//! The answer → backend-set rules of the module docs, one test each, plus properties.

use std::net::Ipv4Addr;
use std::str::FromStr;

use hickory_resolver::proto::op::{Message, OpCode};
use hickory_resolver::proto::rr::rdata::{A, AAAA, CNAME, SRV};
use proptest::prelude::*;

use super::*;

fn name(s: &str) -> Name {
    Name::from_str(s).expect("a name")
}

fn a(owner: &str, ip: [u8; 4], ttl: u32) -> Record {
    Record::from_rdata(name(owner), ttl, RData::A(A(Ipv4Addr::from(ip))))
}

fn srv(priority: u16, weight: u16, port: u16, target: &str) -> Record {
    let data = SRV::new(priority, weight, port, name(target));
    Record::from_rdata(name("_http._tcp.web.example."), 30, RData::SRV(data))
}

fn message(answers: Vec<Record>, additionals: Vec<Record>) -> Message {
    let mut m = Message::response(1, OpCode::Query);
    m.add_answers(answers);
    m.add_additionals(additionals);
    m
}

/// One SRV record: `(priority, weight, port, target, the target's address if the answer
/// carries it)`.
type SrvRow<'a> = (u16, u16, u16, &'a str, Option<[u8; 4]>);

/// An SRV answer of `rows`, with the A record (TTL 30) of each target that has an
/// address in the additional section.
fn srv_answer(rows: &[SrvRow<'_>]) -> Message {
    let mut answers = Vec::new();
    let mut additionals = Vec::new();
    for &(priority, weight, port, target, ip) in rows {
        answers.push(srv(priority, weight, port, target));
        additionals.extend(ip.map(|ip| a(target, ip, 30)));
    }
    message(answers, additionals)
}

fn addrs(set: &[Discovered]) -> Vec<String> {
    set.iter()
        .map(|d| {
            format!(
                "{} w{}{}",
                d.addr,
                d.weight,
                if d.backup { " backup" } else { "" }
            )
        })
        .collect()
}

#[test]
fn a_records_follow_cnames_and_take_the_configured_port_with_weight_1() {
    let cname = Record::from_rdata(
        name("web.example."),
        60,
        RData::CNAME(CNAME(name("real.example."))),
    );
    let m = message(
        vec![
            cname,
            a("real.example.", [10, 0, 0, 2], 20),
            a("real.example.", [10, 0, 0, 1], 40),
        ],
        vec![],
    );
    let r = Records::from_message(&m);
    assert_eq!(r.ttl, Some(20), "the smallest TTL of the chain");
    assert_eq!(
        addrs(&r.backends(DnsRecordType::A, 8080)),
        ["10.0.0.1:8080 w1", "10.0.0.2:8080 w1"]
    );
    assert!(
        r.backends(DnsRecordType::Aaaa, 8080).is_empty(),
        "no AAAA in the answer"
    );
}

#[test]
fn aaaa_records_give_ipv6_backends() {
    let rec = Record::from_rdata(
        name("web.example."),
        5,
        RData::AAAA(AAAA(std::net::Ipv6Addr::LOCALHOST)),
    );
    let r = Records::from_message(&message(vec![rec], vec![]));
    assert_eq!(addrs(&r.backends(DnsRecordType::Aaaa, 80)), ["[::1]:80 w1"]);
}

#[test]
fn srv_lowest_priority_are_primaries_and_the_rest_backups() {
    let m = message(
        vec![
            srv(20, 5, 81, "c.example."),
            srv(10, 3, 80, "a.example."),
            srv(10, 1, 80, "b.example."),
        ],
        vec![
            a("a.example.", [10, 0, 0, 1], 30),
            a("B.Example.", [10, 0, 0, 2], 30),
            a("c.example.", [10, 0, 0, 3], 30),
        ],
    );
    let r = Records::from_message(&m);
    assert!(
        r.unresolved_targets().is_empty(),
        "names match case-insensitively"
    );
    assert_eq!(
        addrs(&r.backends(DnsRecordType::Srv, 0)),
        ["10.0.0.1:80 w3", "10.0.0.2:80 w1", "10.0.0.3:81 w5 backup"]
    );
}

#[test]
fn srv_targets_without_addresses_are_looked_up_and_dot_means_none() {
    let m = srv_answer(&[
        (1, 1, 80, "a.example.", Some([10, 0, 0, 1])),
        (1, 1, 80, ".", None),
        (1, 1, 80, "b.example.", None),
    ]);
    let mut r = Records::from_message(&m);
    assert_eq!(r.unresolved_targets(), ["b.example"]);
    assert_eq!(
        addrs(&r.backends(DnsRecordType::Srv, 0)),
        ["10.0.0.1:80 w1"]
    );
    r.add_addresses("b.example", [IpAddr::from([10, 0, 0, 2])], 4);
    assert_eq!(r.ttl, Some(4), "the follow-up's TTL counts too");
    assert_eq!(
        addrs(&r.backends(DnsRecordType::Srv, 0)),
        ["10.0.0.1:80 w1", "10.0.0.2:80 w1"]
    );
}

#[test]
fn a_priority_with_no_resolvable_target_does_not_make_the_rest_backups() {
    let m = srv_answer(&[
        (1, 1, 80, "gone.example.", None),
        (5, 1, 80, "a.example.", Some([10, 0, 0, 1])),
    ]);
    let r = Records::from_message(&m);
    assert_eq!(
        addrs(&r.backends(DnsRecordType::Srv, 0)),
        ["10.0.0.1:80 w1"]
    );
}

#[test]
fn srv_weights_fit_as_they_are_or_scale_into_1_to_256() {
    assert_eq!(scale_weight(0, 10).get(), 1, "weight 0 still gets traffic");
    assert_eq!(scale_weight(7, 256).get(), 7);
    assert_eq!(scale_weight(65535, 65535).get(), 256);
    assert_eq!(scale_weight(1, 65535).get(), 1);
    assert_eq!(scale_weight(1000, 1000).get(), 256);
    assert_eq!(scale_weight(500, 1000).get(), 128);
    assert_eq!(scale_weight(0, 1000).get(), 1);
}

#[test]
fn srv_weights_scale_per_tier_and_keep_the_record_weight() {
    let set = Records::from_message(&srv_answer(&[
        (10, 3, 80, "a.example.", Some([10, 0, 0, 1])),
        (10, 1, 80, "b.example.", Some([10, 0, 0, 2])),
        (20, 1000, 80, "c.example.", Some([10, 0, 0, 3])),
        (20, 500, 80, "d.example.", Some([10, 0, 0, 4])),
    ]))
    .backends(DnsRecordType::Srv, 0);
    assert_eq!(
        addrs(&set),
        [
            "10.0.0.1:80 w3",
            "10.0.0.2:80 w1",
            "10.0.0.3:80 w256 backup",
            "10.0.0.4:80 w128 backup"
        ],
        "the backups' 1000 does not squash the primaries' 3:1 to 1:1"
    );
    let announced: Vec<u32> = set.iter().map(|d| d.announced).collect();
    assert_eq!(announced, [3, 1, 1000, 500], "the record's own weights");
}

#[test]
fn the_same_address_twice_is_one_backend_primary_and_heavier_first() {
    // b and c are the same host; a is too, at a worse priority.
    let m = srv_answer(&[
        (2, 9, 80, "a.example.", Some([10, 0, 0, 1])),
        (1, 2, 80, "b.example.", Some([10, 0, 0, 1])),
        (1, 4, 80, "c.example.", Some([10, 0, 0, 1])),
    ]);
    let r = Records::from_message(&m);
    assert_eq!(
        addrs(&r.backends(DnsRecordType::Srv, 0)),
        ["10.0.0.1:80 w4"]
    );
    let twice = message(
        vec![
            a("w.example.", [10, 0, 0, 1], 30),
            a("w.example.", [10, 0, 0, 1], 30),
        ],
        vec![],
    );
    let r = Records::from_message(&twice);
    assert_eq!(r.backends(DnsRecordType::A, 80).len(), 1);
}

#[test]
fn an_empty_answer_gives_no_backend_and_no_ttl() {
    let r = Records::from_message(&message(vec![], vec![]));
    assert_eq!(r.ttl, None);
    for kind in [DnsRecordType::A, DnsRecordType::Aaaa, DnsRecordType::Srv] {
        assert!(r.backends(kind, 80).is_empty());
    }
}

proptest! {
    #[test]
    fn any_srv_answer_gives_unique_addresses_in_range_with_primaries_if_any(
        records in proptest::collection::vec((0u16..4, any::<u16>(), 1u16..4, 0u8..6), 0..24),
    ) {
        let srv: Vec<SrvRecord> = records
            .iter()
            .map(|&(priority, weight, port, host)| SrvRecord {
                priority,
                weight,
                port,
                target: format!("h{host}"),
            })
            .collect();
        // h0..h4 resolve (h4 to two addresses), h5 does not.
        let mut hosts: HashMap<String, Vec<IpAddr>> = (0u8..5)
            .map(|h| (format!("h{h}"), vec![IpAddr::from([10, 0, 0, h % 3])]))
            .collect();
        hosts.entry("h4".into()).or_default().push(IpAddr::from([10, 0, 1, 1]));
        let set = dedup(srv_backends(&srv, &hosts));
        let mut seen: Vec<SocketAddr> = set.iter().map(|d| d.addr).collect();
        seen.dedup();
        prop_assert_eq!(seen.len(), set.len(), "sorted and unique");
        prop_assert!(set.iter().all(|d| (1..=MAX_WEIGHT).contains(&d.weight.get())));
        prop_assert!(set.is_empty() || set.iter().any(|d| !d.backup), "some primary");
        let resolvable = srv.iter().any(|s| s.target != "h5");
        prop_assert_eq!(set.is_empty(), !resolvable);
    }
}
