#!/usr/bin/env bash
# weir vs HAProxy vs nginx as HTTP/1.1 keep-alive reverse proxies, side by side in one run.
#
# Each proxy runs with ONE worker thread pinned to CPU 1; wrk and the backend (an nginx
# answering a fixed 13-byte body) share CPU 0. For each proxy the script runs wrk at
# saturation and reads the proxy's own CPU time from /proc, so the figure that matters,
# CPU microseconds per request, does not depend on how fast the client side is. Ratios are
# against HAProxy and nginx measured in the same run.
#
#   benches/compare/http.sh                 # DURATION=10 CONNS=50 by default
#   DURATION=20 CONNS=100 benches/compare/http.sh
#   WEIR_BIN=path/to/weir benches/compare/http.sh    # skip the cargo build
#
# Needs: haproxy, nginx, wrk (apt-get install haproxy nginx wrk), taskset, a release weir.
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-10}
CONNS=${CONNS:-50}
LAT_CONNS=${LAT_CONNS:-10}
BACKEND=127.0.0.1:18001
WEIR=127.0.0.1:18080
HAPROXY=127.0.0.1:18081
NGINX=127.0.0.1:18082
ADMIN=127.0.0.1:18099

for tool in haproxy nginx wrk taskset; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install haproxy nginx wrk util-linux)"; exit 2; }
done
[ "$(nproc)" -ge 2 ] || { echo "needs 2 CPUs (proxy on CPU 1, load on CPU 0)"; exit 2; }

WEIR_BIN=${WEIR_BIN:-}
if [ -z "$WEIR_BIN" ]; then cargo build --release -q -p weir; WEIR_BIN=./target/release/weir; fi
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened"; exit 1; }

# --- backend: nginx, one worker on CPU 0 -------------------------------------------
mkdir -p "$work/backend" "$work/proxy"
cat > "$work/backend/nginx.conf" <<CONF
worker_processes 1; daemon off; pid $work/backend/nginx.pid; error_log /dev/null crit;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen $BACKEND; location / { return 200 "hello, world\n"; } } }
CONF
taskset -c 0 nginx -p "$work/backend" -c "$work/backend/nginx.conf" & pids+=($!)
wait_port $BACKEND

# --- the three proxies --------------------------------------------------------------
cat > "$work/weir.yaml" <<CONF
admin: { listen: $ADMIN }
listeners:
  - { name: bench, listen: $WEIR, routes: [ { pool: app } ] }
pools:
  app: { backends: [ { address: $BACKEND } ] }
CONF
cat > "$work/haproxy.cfg" <<CONF
global
  nbthread 1
  maxconn 4000
defaults
  mode http
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  option http-keep-alive
frontend bench
  bind $HAPROXY
  default_backend app
backend app
  http-reuse always
  server s1 $BACKEND
CONF
cat > "$work/proxy/nginx.conf" <<CONF
worker_processes 1; daemon off; pid $work/proxy/nginx.pid; error_log /dev/null crit;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  upstream app { server $BACKEND; keepalive 128; }
  server { listen $NGINX; location / { proxy_pass http://app; proxy_http_version 1.1;
    proxy_set_header Connection ""; proxy_set_header Host \$host;
    proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for; } } }
CONF

WEIR_LOG=warn taskset -c 1 "$WEIR_BIN" --threads 1 run -c "$work/weir.yaml" & weir_pid=$!; pids+=($weir_pid)
taskset -c 1 haproxy -f "$work/haproxy.cfg" -db & haproxy_pid=$!; pids+=($haproxy_pid)
taskset -c 1 nginx -p "$work/proxy" -c "$work/proxy/nginx.conf" & nginx_pid=$!; pids+=($nginx_pid)
wait_port $WEIR; wait_port $HAPROXY; wait_port $NGINX

# CPU seconds used so far by a process and its children threads/workers.
cpu_of() {
  local total=0 p
  for p in $(pgrep -P "$1") "$1"; do
    [ -r "/proc/$p/stat" ] || continue
    set -- $(sed 's/^.*) //' "/proc/$p/stat")
    total=$(( total + ${12} + ${13} ))   # utime + stime (fields 14, 15), clock ticks
  done
  echo "$total"
}
hz=$(getconf CLK_TCK)

declare -A US RPS P99
measure() { # name addr pid
  local name=$1 addr=$2 pid=$3
  taskset -c 0 wrk -t1 -c"$CONNS" -d2s "http://$addr/" >/dev/null           # warm-up
  local before after out reqs
  before=$(cpu_of "$pid")
  out=$(taskset -c 0 wrk -t1 -c"$CONNS" -d"${DURATION}s" "http://$addr/")
  after=$(cpu_of "$pid")
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  RPS[$name]=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  US[$name]=$(awk -v t=$((after - before)) -v hz="$hz" -v r="$reqs" 'BEGIN { printf "%.2f", t / hz * 1e6 / r }')
  P99[$name]=$(taskset -c 0 wrk -t1 -c"$LAT_CONNS" -d5s --latency "http://$addr/" | awk '$1 == "99%" {print $2}')
  if echo "$out" | grep -q "Non-2xx\|Socket errors"; then echo "$name: errors during the run:"; echo "$out"; fi
}
measure weir "$WEIR" "$weir_pid"
measure haproxy "$HAPROXY" "$haproxy_pid"
measure nginx "$NGINX" "$nginx_pid"

printf '\nHTTP/1.1 keep-alive, %s connections, %ss, 1 worker thread pinned to CPU 1\n' "$CONNS" "$DURATION"
printf '%-8s %14s %12s %16s\n' proxy "CPU us/req" "req/s" "p99 (${LAT_CONNS} conns)"
for n in weir haproxy nginx; do printf '%-8s %14s %12s %16s\n' "$n" "${US[$n]}" "${RPS[$n]}" "${P99[$n]}"; done
awk -v w="${US[weir]}" -v h="${US[haproxy]}" -v n="${US[nginx]}" 'BEGIN {
  printf "\nweir CPU per request: %.2fx HAProxy, %.2fx nginx (target <= 0.80x HAProxy)\n", w / h, w / n }'
