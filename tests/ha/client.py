#!/usr/bin/env python3
"""The client of tests/ha/vrrp_failover.sh: a bounded request loop against the VIP.

Four workers run side by side, as the kinds of real clients do:

  keep-alive      keeps its HTTP/1.1 connection alive, a request every --pace seconds
                  (a busy API client)
  new-connection  a new connection per request (curl in a loop)
  large-body      keep-alive, GET /big: 256 KiB per response, so exchanges are under
                  way for a while, not a few hundred microseconds
  idle-keep-alive keeps one connection alive and makes a request every 1-3 s (a
                  browser tab, a poller): its connection is idle when the signal comes

Keep-alive workers reconnect whenever the server closed their connection, and check
before reusing one whether it did (readable means EOF: a FIN arrived), as urllib3,
browsers and HTTP client pools do. Each request is bounded by --timeout per socket
operation. Every request's start, end and outcome is recorded.

A request fails when its connection is refused, times out, is closed without an answer
or is answered with anything but 200. A request on a reused connection that the server
closed before any byte of the answer is retried once on a new one, as clients do, and
counted as `retried` (not failed, unless the retry fails). A connection *reset* (RST) is counted apart: it is
what a VIP moving under an exchange in progress does (packets the client sends after
the move reach the new master, which knows nothing of the connection), and no balancer
on either host can prevent it; the script bounds those instead. For idle-keep-alive a
reset counts as a failure: its connection is idle, not in an exchange, when the VIP
moves, so a reset there means the old master left an idle connection open for the new
one to reset (weir closes idle keep-alive connections when the grace starts).

The script reads --progress (the number of successful responses so far, rewritten every
50 ms) to synchronise on traffic, and creates --stop to end the run; --max-seconds
bounds it regardless. At the end one JSON object per worker is printed: requests,
failures, the longest gap between two successful responses (or between the last one and
the end of the run, so a worker that never recovers shows its whole outage) and the
first few errors.
"""

import argparse
import http.client
import json
import os
import random
import select
import threading
import time


def closed_by_server(conn):
    """Whether an idle connection's socket is readable: EOF (or a stray byte, equally
    unusable) from the server, so it must not be reused."""
    sock = conn.sock
    if sock is None:
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def attempt(conn, keep_alive, path, args):
    """One GET, retried once on a new connection when a reused one was closed before any
    byte of the answer (RFC 9112 9.3.1 allows it for idempotent requests; browsers and
    urllib3 do it: the server closed an idle connection as the request went out).
    Returns (conn to reuse or None, ok, error, reset, retried)."""
    reused = conn is not None and not closed_by_server(conn)
    if conn is not None and not reused:
        conn.close()
        conn = None
    conn, ok, error, reset, unanswered = exchange(conn, keep_alive, path, args)
    if reused and unanswered:
        conn, ok, error, reset, _ = exchange(None, keep_alive, path, args)
        return conn, ok, error, reset, True
    return conn, ok, error, reset, False


def exchange(conn, keep_alive, path, args):
    """One GET on conn (a new connection if None). Returns (conn to reuse or None, ok,
    error, reset, unanswered: the connection ended before any byte of an answer)."""
    phase = "connect"
    try:
        if conn is None:
            conn = http.client.HTTPConnection(args.host, args.port, timeout=args.timeout)
            conn.connect()
        phase = "request"
        headers = {} if keep_alive else {"Connection": "close"}
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        phase = "body"
        resp.read()
        ok = resp.status == 200
        error = "" if ok else f"status {resp.status}"
        if resp.will_close or not keep_alive:
            conn.close()
            conn = None
        return conn, ok, error, False, False
    except (OSError, http.client.HTTPException) as e:
        if conn is not None:
            conn.close()
        # RemoteDisconnected (a close without an answer) is a ConnectionResetError to
        # Python, but it is a FIN from the server: a failure like any other.
        reset = isinstance(e, ConnectionResetError) and not isinstance(
            e, http.client.RemoteDisconnected
        )
        unanswered = phase == "request" and isinstance(
            e, (ConnectionResetError, BrokenPipeError)
        )
        return None, False, f"{phase}: {type(e).__name__}: {e}", reset, unanswered


class Kind:
    """How one worker behaves: keep-alive or not, the path, the pause between requests
    (seconds: a fixed one, or a range drawn from), whether its resets are failures."""

    def __init__(self, keep_alive, path, pace, resets_fail=False):
        self.keep_alive = keep_alive
        self.path = path
        self.pace = pace
        self.resets_fail = resets_fail

    def pause(self):
        if isinstance(self.pace, tuple):
            return random.uniform(*self.pace)
        return self.pace


def worker(kind, args, stop, results):
    conn = None
    deadline = time.monotonic() + args.max_seconds
    while not stop.is_set() and time.monotonic() < deadline:
        start = time.monotonic()
        conn, ok, error, reset, retried = attempt(conn, kind.keep_alive, kind.path, args)
        end = time.monotonic()
        results.append((start, end, ok, error, reset and not kind.resets_fail, retried))
        rest = kind.pause() - (end - start)
        if rest > 0:
            stop.wait(rest)
    if conn is not None:
        conn.close()


def summary(name, results, ended):
    """Failures count from the first request; gaps from the first success (the script
    starts the client once the VIP answers, so a slow first connect is no outage). A
    gap of idle-keep-alive includes its own 1-3 s pauses: the script's longest gap is
    the others'."""
    successes = [end for (_, end, ok, _, _, _) in results if ok]
    gap = 0.0
    if successes:
        points = successes + [ended]
        gap = max(b - a for a, b in zip(points, points[1:]))
    started = results[0][0] if results else ended
    errors = [(round(end - started, 3), e) for (_, end, ok, e, r, _) in results if not ok and not r]
    resets = [(round(end - started, 3), e) for (_, end, ok, e, r, _) in results if not ok and r]
    return {
        "worker": name,
        "gap_counts": name != "idle-keep-alive",
        "requests": len(results),
        "succeeded": len(successes),
        "failed": len(errors),
        "reset": len(resets),
        "retried": sum(1 for r in results if r[5]),
        "longest_gap_ms": round(gap * 1000),
        "first_errors": errors[:5],
        "first_resets": resets[:5],
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--progress", required=True)
    p.add_argument("--stop", required=True)
    p.add_argument("--pace", type=float, default=0.01)
    p.add_argument("--timeout", type=float, default=1.0)
    p.add_argument("--max-seconds", type=float, default=60.0)
    args = p.parse_args()

    stop = threading.Event()
    kinds = {
        "keep-alive": Kind(True, "/", args.pace),
        "new-connection": Kind(False, "/", args.pace),
        "large-body": Kind(True, "/big", args.pace),
        "idle-keep-alive": Kind(True, "/", (1.0, 3.0), resets_fail=True),
    }
    workers = {name: [] for name in kinds}
    threads = [
        threading.Thread(target=worker, args=(kinds[name], args, stop, results))
        for name, results in workers.items()
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + args.max_seconds
    while time.monotonic() < deadline and not os.path.exists(args.stop):
        ok = sum(1 for results in workers.values() for r in list(results) if r[2])
        tmp = args.progress + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{ok}\n")
        os.replace(tmp, args.progress)
        time.sleep(0.05)
    stop.set()
    for t in threads:
        t.join()
    ended = time.monotonic()
    for name, results in workers.items():
        print(json.dumps(summary(name, results, ended)), flush=True)


if __name__ == "__main__":
    main()
