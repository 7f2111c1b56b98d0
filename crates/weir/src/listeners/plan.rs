//! What a new configuration changes in the running listeners, decided without sockets.
//!
//! A listener is identified by its name, protocol and configured address (port 0 stays
//! 0). The diff is pure so that every case (kept, restarted on a duplicate of the same
//! socket, newly bound, drained) is unit-tested here; [`super::Listeners::prepare`] then
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
    /// Same address as running listener `i` but another name or protocol: a new task
    /// starts on a duplicate of `i`'s socket (its accept queue never closes), and `i`
    /// drains.
    Restart(usize),
    /// An address nothing runs on: a socket is bound.
    Bind,
}

/// The whole change: one step per configured listener, in config order, and the
/// running listeners (by index) that drain.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Diff {
    pub(crate) steps: Vec<Step>,
    /// Ascending; every running index not kept, including the ones restarted.
    pub(crate) drain: Vec<usize>,
}

/// Matches `wanted` against `running`: an exact match first (anywhere in `running`),
/// else a running listener on the same address, else a new socket. Each running
/// listener is used at most once.
pub(crate) fn diff(running: &[Key<'_>], wanted: &[Key<'_>]) -> Diff {
    let mut claimed = vec![false; running.len()];
    let mut kept = vec![false; running.len()];
    // Exact matches are claimed before any restart, so that a renamed listener never
    // takes the socket of one that is kept as it is.
    let exact: Vec<Option<usize>> = wanted
        .iter()
        .map(|w| {
            let i = (0..running.len()).find(|&i| !claimed[i] && running[i] == *w)?;
            claimed[i] = true;
            kept[i] = true;
            Some(i)
        })
        .collect();
    let steps = wanted
        .iter()
        .zip(exact)
        .map(|(w, exact)| {
            if let Some(i) = exact {
                return Step::Keep(i);
            }
            match (0..running.len()).find(|&i| !claimed[i] && running[i].listen == w.listen) {
                Some(i) => {
                    claimed[i] = true;
                    Step::Restart(i)
                }
                None => Step::Bind,
            }
        })
        .collect();
    let drain = (0..running.len()).filter(|&i| !kept[i]).collect();
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

    #[test]
    fn the_same_listeners_are_all_kept() {
        let running = [http("web", "127.0.0.1:80"), http("api", "127.0.0.1:81")];
        let d = diff(&running, &running);
        assert_eq!(d.steps, vec![Step::Keep(0), Step::Keep(1)]);
        assert!(d.drain.is_empty());
    }

    #[test]
    fn reordered_listeners_keep_their_own_sockets() {
        let running = [http("web", "127.0.0.1:80"), http("api", "127.0.0.1:81")];
        let wanted = [http("api", "127.0.0.1:81"), http("web", "127.0.0.1:80")];
        let d = diff(&running, &wanted);
        assert_eq!(d.steps, vec![Step::Keep(1), Step::Keep(0)]);
        assert!(d.drain.is_empty());
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
    fn a_rename_or_protocol_change_restarts_on_the_same_socket() {
        let running = [http("web", "127.0.0.1:80"), http("db", "127.0.0.1:81")];
        let wanted = [
            http("www", "127.0.0.1:80"),
            key("db", Protocol::Tcp, "127.0.0.1:81"),
        ];
        let d = diff(&running, &wanted);
        assert_eq!(d.steps, vec![Step::Restart(0), Step::Restart(1)]);
        assert_eq!(d.drain, vec![0, 1], "the old tasks drain");
    }

    #[test]
    fn a_renamed_listener_never_takes_a_kept_listeners_socket() {
        // Two listeners on port 0 share the configured key `127.0.0.1:0`; the new `b2`
        // comes first in the file but `a` is kept exactly, so `b2` restarts on `b`'s.
        let running = [http("a", "127.0.0.1:0"), http("b", "127.0.0.1:0")];
        let wanted = [http("b2", "127.0.0.1:0"), http("a", "127.0.0.1:0")];
        let d = diff(&running, &wanted);
        assert_eq!(d.steps, vec![Step::Restart(1), Step::Keep(0)]);
        assert_eq!(d.drain, vec![1]);
    }

    #[test]
    fn each_running_socket_is_used_once() {
        let running = [http("a", "127.0.0.1:0")];
        let wanted = [
            http("x", "127.0.0.1:0"),
            http("y", "127.0.0.1:0"),
            http("a", "127.0.0.1:0"),
        ];
        let d = diff(&running, &wanted);
        assert_eq!(d.steps, vec![Step::Bind, Step::Bind, Step::Keep(0)]);
        assert!(d.drain.is_empty());
    }

    #[test]
    fn swapped_names_restart_both_on_their_addresses() {
        let running = [http("a", "127.0.0.1:80"), http("b", "127.0.0.1:81")];
        let wanted = [http("b", "127.0.0.1:80"), http("a", "127.0.0.1:81")];
        let d = diff(&running, &wanted);
        assert_eq!(d.steps, vec![Step::Restart(0), Step::Restart(1)]);
        assert_eq!(d.drain, vec![0, 1]);
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
