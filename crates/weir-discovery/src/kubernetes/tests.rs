//! The EndpointSlice → backends rules, on the fixture list and watch stream in
//! `tests/fixtures/k8s/` (written to the discovery.k8s.io/v1 shape the API server
//! returns).

use std::path::PathBuf;

use k8s_openapi::api::discovery::v1::EndpointSlice;
use weir_config::{EndpointState, KubernetesPort};

use super::*;

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/k8s")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn listed() -> Vec<EndpointSlice> {
    let list: serde_json::Value =
        serde_json::from_str(&fixture("endpointslice-list.json")).expect("JSON");
    serde_json::from_value(list["items"].clone()).expect("EndpointSlice items")
}

fn shown(set: &[Discovered]) -> Vec<String> {
    set.iter()
        .map(|d| format!("{} {}", d.addr, d.endpoint.as_str()))
        .collect()
}

fn name(n: &str) -> KubernetesPort {
    KubernetesPort::Name(n.to_owned())
}

#[test]
fn the_fixture_list_gives_each_slices_port_and_each_endpoints_state() {
    let slices = listed();
    let set = merge(slices.iter().flat_map(|s| endpoints(s, &name("http"))));
    assert_eq!(
        shown(&set),
        [
            "10.244.1.17:8080 ready",
            "10.244.1.18:8081 ready",
            "10.244.2.9:8080 not_ready",
            "10.244.3.21:8080 terminating",
        ],
        "each slice's own port for `http`; terminating wins over serving"
    );
    assert!(set.iter().all(|d| d.weight.get() == 1 && !d.backup));
    let metrics = merge(slices.iter().flat_map(|s| endpoints(s, &name("metrics"))));
    assert!(metrics.iter().all(|d| d.addr.port() == 9090));
    let by_number = merge(
        slices
            .iter()
            .flat_map(|s| endpoints(s, &KubernetesPort::Number(7000))),
    );
    assert!(by_number.iter().all(|d| d.addr.port() == 7000) && by_number.len() == 4);
    assert!(
        merge(slices.iter().flat_map(|s| endpoints(s, &name("grpc")))).is_empty(),
        "a port name no slice has gives nothing"
    );
}

#[test]
fn the_fixture_watch_events_parse_as_the_watcher_reads_them() {
    let text = fixture("watch-events.jsonl");
    let events: Vec<kube::core::WatchEvent<EndpointSlice>> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| match e {
            kube::core::WatchEvent::Added(_) => "added",
            kube::core::WatchEvent::Modified(_) => "modified",
            kube::core::WatchEvent::Deleted(_) => "deleted",
            kube::core::WatchEvent::Bookmark(_) => "bookmark",
            kube::core::WatchEvent::Error(e) if e.code == 410 => "gone",
            kube::core::WatchEvent::Error(_) => "error",
        })
        .collect();
    assert_eq!(kinds, ["bookmark", "modified", "deleted", "gone"]);
    let kube::core::WatchEvent::Modified(slice) = &events[1] else {
        panic!("modified")
    };
    assert_eq!(
        shown(&endpoints(slice, &name("http"))),
        ["10.244.1.17:8080 ready", "10.244.2.9:8080 ready"],
        "the not-ready pod became ready; the terminating one is gone"
    );
}

fn slice(json: serde_json::Value) -> EndpointSlice {
    serde_json::from_value(json).expect("an EndpointSlice")
}

#[test]
fn conditions_absent_read_as_ready_and_fqdn_udp_and_bad_addresses_give_nothing() {
    let s = slice(serde_json::json!({
        "metadata": { "name": "a" },
        "addressType": "IPv4",
        "endpoints": [
            { "addresses": ["10.0.0.1"] },
            { "addresses": ["10.0.0.2"], "conditions": {} },
            { "addresses": ["not-an-ip"] },
            { "addresses": ["fd00::1"] },
            { "addresses": [] },
            { "addresses": ["10.0.0.3", "10.0.0.4"], "conditions": { "ready": false, "terminating": false } }
        ],
        "ports": [{ "name": "http", "port": 80 }, { "name": "dns", "protocol": "UDP", "port": 53 }]
    }));
    assert_eq!(
        shown(&merge(endpoints(&s, &name("http")))),
        ["10.0.0.1:80 ready", "10.0.0.2:80 ready", "10.0.0.3:80 not_ready"],
        "no protocol is TCP; only the first address counts; an IPv6 address in an IPv4 slice is skipped"
    );
    assert!(
        endpoints(&s, &name("dns")).is_empty(),
        "UDP ports are not proxied"
    );
    let fqdn = slice(serde_json::json!({
        "metadata": { "name": "f" }, "addressType": "FQDN",
        "endpoints": [{ "addresses": ["web.example.com"] }], "ports": [{ "name": "http", "port": 80 }]
    }));
    assert!(endpoints(&fqdn, &name("http")).is_empty());
    let v6 = slice(serde_json::json!({
        "metadata": { "name": "v6" }, "addressType": "IPv6",
        "endpoints": [{ "addresses": ["fd00::7"] }], "ports": [{ "name": "http", "port": 80 }]
    }));
    assert_eq!(
        shown(&endpoints(&v6, &name("http"))),
        ["[fd00::7]:80 ready"]
    );
}

#[test]
fn an_address_in_two_slices_is_one_backend_in_its_best_state() {
    let mk = |n: &str, ready: bool, terminating: bool| {
        slice(serde_json::json!({
            "metadata": { "name": n }, "addressType": "IPv4",
            "endpoints": [{ "addresses": ["10.0.0.1"], "conditions": { "ready": ready, "terminating": terminating } }],
            "ports": [{ "name": "http", "port": 80 }]
        }))
    };
    let slices = [
        mk("a", false, true),
        mk("b", true, false),
        mk("c", false, false),
    ];
    let set = merge(slices.iter().flat_map(|s| endpoints(s, &name("http"))));
    assert_eq!(shown(&set), ["10.0.0.1:80 ready"]);
    let set = merge(
        [&slices[0], &slices[2]]
            .iter()
            .flat_map(|s| endpoints(s, &name("http"))),
    );
    assert_eq!(set[0].endpoint, EndpointState::NotReady);
}
