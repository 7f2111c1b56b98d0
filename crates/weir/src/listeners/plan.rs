//! What a new configuration changes in the running listeners, decided without sockets.
//!
//! A listener is identified by its name, protocol and configured address (port 0 stays
//! 0). The diff is pure so that every case (kept, renamed, restarted on a duplicate of
//! the same socket, newly bound, drained) is unit-tested here; [`super::Listeners::prepare`] then
//! performs the fallible socket work the diff asks for, and
//! [`super::Listeners::commit`] applies it without anything left that can fail.

use std::net::SocketAddr;

use weir_config::Protocol;

/// What makes two listeners (running and configured) the same one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Key<'a> {
    pub(crate) name: &'a str,
    pub(crate) protocol: Protocol,
    /// As configured, the key for socket reuse.
    pub(crate) listen: SocketAddr,
}

/// What happens for one listener of the new configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Same name, protocol and address as running listener `i`: its task carries on.
    Keep(usize),
    /// Same address and protocol as running listener `i`, another name: `i` carries on
    /// under the new name, its task and connections included.
    Rename(usize),
    /// Same address as running listener `i` but another protocol: a new task starts on
    /// a duplicate of `i`'s socket (its accept queue never closes), and `i` drains.
    Restart(usize),
    /// An address nothing runs on: a socket is bound.
    Bind,
}

/// The whole change: one step per configured listener, in config order, and the
/// running listeners (by index) that drain.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Diff {
    pub(crate) steps: Vec<Step>,
    /// Ascending; every running index not kept or renamed, the restarted ones included.
    pub(crate) drain: Vec<usize>,
}

/// Matches `wanted` against `running`: an exact match first (anywhere in `running`),
/// else a running listener on the same address with the same protocol (renamed), else
/// one on the same address (restarted), else a new socket. Each running listener is
/// used at most once.
pub(crate) fn diff(running: &[Key<'_>], wanted: &[Key<'_>]) -> Diff {
    /// Whether running listener `r` can serve as wanted listener `w`, and how.
    type Pass = (fn(&Key<'_>, &Key<'_>) -> bool, fn(usize) -> Step);
    // Each kind of match is claimed over the whole file before the next, looser one, so
    // that a renamed or restarted listener never takes the socket of a closer match
    // (several listeners may share the configured address `127.0.0.1:0`).
    let passes: [Pass; 3] = [
        (|r, w| r == w, Step::Keep),
        (
            |r, w| r.listen == w.listen && r.protocol == w.protocol,
            Step::Rename,
        ),
        (|r, w| r.listen == w.listen, Step::Restart),
    ];
    let mut claimed = vec![false; running.len()];
    let mut steps: Vec<Option<Step>> = vec![None; wanted.len()];
    for (matches, step) in passes {
        for (w, slot) in wanted.iter().zip(steps.iter_mut()) {
            if slot.is_some() {
                continue;
            }
            if let Some(i) = (0..running.len()).find(|&i| !claimed[i] && matches(&running[i], w)) {
                claimed[i] = true;
                *slot = Some(step(i));
            }
        }
    }
    let steps: Vec<Step> = steps.into_iter().map(|s| s.unwrap_or(Step::Bind)).collect();
    let mut carried_on = vec![false; running.len()];
    for step in &steps {
        if let Step::Keep(i) | Step::Rename(i) = *step {
            carried_on[i] = true;
        }
    }
    let drain = (0..running.len()).filter(|&i| !carried_on[i]).collect();
    Diff { steps, drain }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key<'a>(name: &'a str, protocol: Protocol, listen: &str) -> Key<'a> {
        Key {
            name,
            protocol,
            listen: listen.parse().expect("test address"),
        }
    }

    fn http<'a>(name: &'a str, listen: &str) -> Key<'a> {
        key(name, Protocol::Http, listen)
    }

    fn tcp<'a>(name: &'a str, listen: &str) -> Key<'a> {
        key(name, Protocol::Tcp, listen)
    }

    /// `diff(running, wanted)` takes `steps` and drains no running listener.
    #[track_caller]
    fn assert_keeps_all(running: &[Key<'_>], wanted: &[Key<'_>], steps: Vec<Step>) {
        let d = diff(running, wanted);
        assert_eq!(d.steps, steps);
        assert!(d.drain.is_empty());
    }

    #[test]
    fn the_same_listeners_are_all_kept() {
        let running = [http("web", "127.0.0.1:80"), http("api", "127.0.0.1:81")];
        assert_keeps_all(&running, &running, vec![Step::Keep(0), Step::Keep(1)]);
    }

    #[test]
    fn reordered_listeners_keep_their_own_sockets() {
        let running = [http("web", "127.0.0.1:80"), http("api", "127.0.0.1:81")];
        let wanted = [http("api", "127.0.0.1:81"), http("web", "127.0.0.1:80")];
        assert_keeps_all(&running, &wanted, vec![Step::Keep(1), Step::Keep(0)]);
    }

    #[test]
    fn a_new_address_is_bound_and_a_removed_one_drains() {
        let running = [http("web", "127.0.0.1:80"), http("old", "127.0.0.1:81")];
        let wanted = [http("web", "127.0.0.1:80"), http("new", "127.0.0.1:82")];
        let d = diff(&running, &wanted);
        assert_eq!(d.steps, vec![Step::Keep(0), Step::Bind]);
        assert_eq!(d.drain, vec![1]);
    }

    #[test]
    fn a_rename_carries_on_and_a_protocol_change_restarts_on_the_same_socket() {
        let running = [http("web", "127.0.0.1:80"), http("db", "127.0.0.1:81")];
        let wanted = [http("www", "127.0.0.1:80"), tcp("db", "127.0.0.1:81")];
        let d = diff(&running, &wanted);
        assert_eq!(d.steps, vec![Step::Rename(0), Step::Restart(1)]);
        assert_eq!(d.drain, vec![1], "only the restarted task drains");
    }

    #[test]
    fn a_rename_prefers_a_socket_of_the_same_protocol() {
        let running = [http("a", "127.0.0.1:0"), tcp("b", "127.0.0.1:0")];
        let wanted = [tcp("c", "127.0.0.1:0"), http("d", "127.0.0.1:0")];
        assert_keeps_all(&running, &wanted, vec![Step::Rename(1), Step::Rename(0)]);
    }

    #[test]
    fn a_renamed_listener_never_takes_a_kept_listeners_socket() {
        // Two listeners on port 0 share the configured key `127.0.0.1:0`; the new `b2`
        // comes first in the file but `a` is kept exactly, so `b2` is `b` renamed.
        let running = [http("a", "127.0.0.1:0"), http("b", "127.0.0.1:0")];
        let wanted = [http("b2", "127.0.0.1:0"), http("a", "127.0.0.1:0")];
        assert_keeps_all(&running, &wanted, vec![Step::Rename(1), Step::Keep(0)]);
    }

    #[test]
    fn each_running_socket_is_used_once() {
        let running = [http("a", "127.0.0.1:0")];
        let wanted = [
            http("x", "127.0.0.1:0"),
            http("y", "127.0.0.1:0"),
            http("a", "127.0.0.1:0"),
        ];
        assert_keeps_all(
            &running,
            &wanted,
            vec![Step::Bind, Step::Bind, Step::Keep(0)],
        );
    }

    #[test]
    fn swapped_names_rename_both_on_their_addresses() {
        let running = [http("a", "127.0.0.1:80"), http("b", "127.0.0.1:81")];
        let wanted = [http("b", "127.0.0.1:80"), http("a", "127.0.0.1:81")];
        assert_keeps_all(&running, &wanted, vec![Step::Rename(0), Step::Rename(1)]);
    }

    #[test]
    fn from_nothing_everything_is_bound_and_to_nothing_everything_drains() {
        let some = [http("a", "127.0.0.1:80"), http("b", "[::1]:80")];
        let up = diff(&[], &some);
        assert_eq!(up.steps, vec![Step::Bind, Step::Bind]);
        assert!(up.drain.is_empty());
        let down = diff(&some, &[]);
        assert!(down.steps.is_empty());
        assert_eq!(down.drain, vec![0, 1]);
    }
}
