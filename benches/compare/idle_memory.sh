#!/usr/bin/env bash
# Memory per idle client connection: weir vs HAProxy vs nginx, side by side in one run.
#
# Each proxy (one worker thread) gets N idle keep-alive client connections, opened one
# after the other, each having sent one request and got its answer (so per-connection HTTP state exists), then the script
# reads the proxy's resident memory (RSS, summed over nginx's master and worker) before
# and after, and prints bytes per connection.
#
#   benches/compare/idle_memory.sh            # N=9000
#   N=20000 WEIR_BIN=path/to/weir benches/compare/idle_memory.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=benches/compare/lib.sh
. benches/compare/lib.sh
N=${N:-9000}   # HAProxy reserves 2 descriptors per connection: 10,000 needs a hard limit above 20,000
BACKEND=127.0.0.1:18101
WEIR=127.0.0.1:18180
HAPROXY=127.0.0.1:18181
NGINX=127.0.0.1:18182
ADMIN=127.0.0.1:18199
for tool in haproxy nginx python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install haproxy nginx)"; exit 2; }
done
# Each process (client, proxy) holds about N descriptors: raise the soft limit to the hard one.
ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -gt $((N + 500)) ] || { echo "open-file limit $(ulimit -n) too low for N=$N"; exit 2; }
weir_bin

nginx_conf "$work/backend" $((N + 500)) $((N * 2 + 100)) <<CONF
http { access_log off; server { listen $BACKEND; location / { return 200 "ok\n"; } } }
CONF
nginx -p "$work/backend" -c "$work/backend/nginx.conf" & pids+=($!)
cat > "$work/weir.yaml" <<CONF
admin: { listen: $ADMIN }
listeners:
  - name: idle
    listen: $WEIR
    routes: [ { pool: app } ]
    max_connections: $((N * 2))
    timeouts: { header_read: 10m, idle: 10m }
pools:
  app: { backends: [ { address: $BACKEND } ] }
CONF
haproxy_cfg $((N + 100)) http 10m <<CONF
  timeout http-keep-alive 10m
  option http-keep-alive
frontend idle
  bind $HAPROXY
  default_backend app
backend app
  server s1 $BACKEND
CONF
nginx_conf "$work/proxy" $((N + 500)) $((N * 2 + 100)) <<CONF
http { access_log off; keepalive_timeout 10m; keepalive_requests 1000000;
  upstream app { server $BACKEND; keepalive 64; }
  server { listen $NGINX; location / { proxy_pass http://app; proxy_http_version 1.1;
    proxy_set_header Connection ""; } } }
CONF
WEIR_LOG=warn "$WEIR_BIN" --threads 1 run -c "$work/weir.yaml" & weir_pid=$!; pids+=("$weir_pid")
haproxy -f "$work/haproxy.cfg" -db 2>/dev/null & haproxy_pid=$!; pids+=("$haproxy_pid")
nginx -p "$work/proxy" -c "$work/proxy/nginx.conf" & nginx_pid=$!; pids+=("$nginx_pid")
wait_port $BACKEND; wait_port $WEIR; wait_port $HAPROXY; wait_port $NGINX

rss_kib() { local t=0 p; for p in "$1" $(pgrep -P "$1"); do t=$((t + $(awk '/VmRSS/ {print $2}' "/proc/$p/status"))); done; echo $t; }

measure() { # name addr pid
  local before after
  before=$(rss_kib "$3")
  # Opens N connections, sends one request on each, reads each answer, keeps them open.
  python3 - "$2" "$N" "$work/$1.ready" <<'PY' &
import socket, sys, time, os
host, port = sys.argv[1].rsplit(":", 1)
n, ready = int(sys.argv[2]), sys.argv[3]
socks = []
for i in range(n):
    # One request at a time: only the idle client-side state accumulates, not a burst of
    # N concurrent upstream requests whose freed memory the allocator would keep.
    s = socket.create_connection((host, int(port)))
    s.sendall(b"GET / HTTP/1.1\r\nHost: idle\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data or not data.endswith(b"ok\n"):
        chunk = s.recv(4096)
        if not chunk:
            sys.exit("connection closed")
        data += chunk
    socks.append(s)
open(ready, "w").close()
time.sleep(3600)
PY
  local client=$!
  for _ in $(seq 1200); do [ -e "$work/$1.ready" ] && break; sleep 0.1; done
  [ -e "$work/$1.ready" ] || { echo "$1: connections never became ready"; kill $client; exit 1; }
  sleep 1
  after=$(rss_kib "$3")
  kill $client; wait $client 2>/dev/null || true
  printf '%-8s %10s KiB -> %10s KiB   %6.2f KiB per idle connection\n' "$1" "$before" "$after" \
    "$(awk -v a="$after" -v b="$before" -v n="$N" 'BEGIN { print (a - b) / n }')"
}
printf '%s idle keep-alive client connections, RSS before -> after\n' "$N"
measure weir "$WEIR" "$weir_pid"
measure haproxy "$HAPROXY" "$haproxy_pid"
measure nginx "$NGINX" "$nginx_pid"
