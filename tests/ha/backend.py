#!/usr/bin/env python3
"""Backends for tests/ha/vrrp_failover.sh: one HTTP/1.1 server per port given.

Every path answers 200 with a small body naming the port (`/health` included, which the
balancers' health checks probe), with Content-Length, so weir keeps its upstream
connections alive; `/big` answers 256 KiB instead, an exchange that lasts long enough to
be under way when the VIP moves, as a page's assets or an API's listings are. Runs until
killed.
"""

import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


BIG = b"x" * (256 * 1024)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = f"backend {self.server.server_address[1]}\n".encode()
        if self.path == "/big":
            body = BIG
        # Head and body in one write, as a real server sends an answer it holds whole.
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.wfile.write(head + body)

    def log_message(self, format, *args):
        pass


def main():
    servers = []
    for port in sys.argv[1:]:
        server = ThreadingHTTPServer(("0.0.0.0", int(port)), Handler)
        server.daemon_threads = True
        servers.append(server)
    for server in servers[1:]:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print("backends listening", flush=True)
    servers[0].serve_forever()


if __name__ == "__main__":
    main()
