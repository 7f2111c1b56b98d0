#!/usr/bin/env python3
"""The client of tests/ha/vrrp_failover.sh: a bounded request loop against the VIP.

Two workers run side by side, as two kinds of real clients do: one keeps its HTTP/1.1
connection alive and reconnects whenever the server closes it (a browser, an API
client), the other opens a new connection per request (curl in a loop). Each request
is bounded by --timeout per socket operation; a worker paces itself to one request every
--pace seconds. Every request's start, end and outcome is recorded.

A request fails when its connection is refused, times out, is closed without an answer
or is answered with anything but 200. A connection *reset* (RST) is counted apart: it is
what a VIP moving under a connection in progress does (packets the client sends after
the move reach the new master, which knows nothing of the connection), and no balancer
on either host can prevent it; the script bounds those instead.

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
import threading
import time


def attempt(conn, keep_alive, args):
    """One GET. Returns (conn to reuse or None, ok, error, reset)."""
    phase = "connect"
    try:
        if conn is None:
            conn = http.client.HTTPConnection(args.host, args.port, timeout=args.timeout)
            conn.connect()
        phase = "request"
        headers = {} if keep_alive else {"Connection": "close"}
        conn.request("GET", "/", headers=headers)
        resp = conn.getresponse()
        phase = "body"
        resp.read()
        ok = resp.status == 200
        error = "" if ok else f"status {resp.status}"
        if resp.will_close or not keep_alive:
            conn.close()
            conn = None
        return conn, ok, error, False
    except (OSError, http.client.HTTPException) as e:
        if conn is not None:
            conn.close()
        # RemoteDisconnected (a close without an answer) is a ConnectionResetError to
        # Python, but it is a FIN from the server: a failure like any other.
        reset = isinstance(e, ConnectionResetError) and not isinstance(
            e, http.client.RemoteDisconnected
        )
        return None, False, f"{phase}: {type(e).__name__}: {e}", reset


def worker(keep_alive, args, stop, results):
    conn = None
    deadline = time.monotonic() + args.max_seconds
    while not stop.is_set() and time.monotonic() < deadline:
        start = time.monotonic()
        conn, ok, error, reset = attempt(conn, keep_alive, args)
        end = time.monotonic()
        results.append((start, end, ok, error, reset))
        rest = args.pace - (end - start)
        if rest > 0:
            stop.wait(rest)
    if conn is not None:
        conn.close()


def summary(name, results, ended):
    """Failures count from the first request; gaps from the first success (the script
    starts the client once the VIP answers, so a slow first connect is no outage)."""
    successes = [end for (_, end, ok, _, _) in results if ok]
    gap = 0.0
    if successes:
        points = successes + [ended]
        gap = max(b - a for a, b in zip(points, points[1:]))
    started = results[0][0] if results else ended
    errors = [(round(end - started, 3), e) for (_, end, ok, e, r) in results if not ok and not r]
    resets = [(round(end - started, 3), e) for (_, end, ok, e, r) in results if not ok and r]
    return {
        "worker": name,
        "requests": len(results),
        "succeeded": len(successes),
        "failed": len(errors),
        "reset": len(resets),
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
    workers = {"keep-alive": [], "new-connection": []}
    threads = [
        threading.Thread(target=worker, args=(name == "keep-alive", args, stop, results))
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
