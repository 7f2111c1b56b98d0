#!/usr/bin/env bash
# Bulk TCP throughput: weir vs HAProxy vs nginx (stream) vs direct loopback, in one run.
#
# iperf3 (client and server, both on CPU 0) pushes one bulk stream through each proxy,
# which runs with ONE thread pinned to CPU 1: weir in a tcp listener (splice(2) on Linux),
# HAProxy in `mode tcp` with kernel splicing forced both ways (`option splice-request`,
# `option splice-response`), nginx's stream module (user-space copy, 64 KiB buffers).
# "direct" is iperf3 to iperf3 without a proxy. Throughput is the median of RUNS runs;
# ratios are against HAProxy and direct measured in the same run. The proxy's own CPU
# time per GB relayed (read from /proc) is printed too: it is far less sensitive than
# Gbit/s to other work on the machine.
#
#   benches/compare/tcp.sh                    # DURATION=10 RUNS=3 by default
#   DURATION=20 RUNS=5 benches/compare/tcp.sh
#   WEIR_BIN=path/to/weir benches/compare/tcp.sh   # skip the cargo build
#
# Needs: haproxy, nginx + libnginx-mod-stream, iperf3, python3, taskset, a release weir
# (apt-get install haproxy nginx libnginx-mod-stream iperf3).
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=benches/compare/lib.sh
. benches/compare/lib.sh
DURATION=${DURATION:-10}
RUNS=${RUNS:-3}
BACKEND=127.0.0.1:15201
WEIR=127.0.0.1:15280
HAPROXY=127.0.0.1:15281
NGINX=127.0.0.1:15282
ADMIN=127.0.0.1:15299
STREAM_MODULE=${STREAM_MODULE:-/usr/lib/nginx/modules/ngx_stream_module.so}

for tool in haproxy nginx iperf3 python3 taskset; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install haproxy nginx libnginx-mod-stream iperf3)"; exit 2; }
done
[ -r "$STREAM_MODULE" ] || { echo "missing $STREAM_MODULE (apt-get install libnginx-mod-stream)"; exit 2; }
[ "$(nproc)" -ge 2 ] || { echo "needs 2 CPUs (proxy on CPU 1, load on CPU 0)"; exit 2; }

weir_bin

# --- backend: an iperf3 server on CPU 0 ----------------------------------------------
taskset -c 0 iperf3 -s -B "${BACKEND%:*}" -p "${BACKEND#*:}" >/dev/null 2>&1 & pids+=($!)
wait_port $BACKEND

# --- the three proxies --------------------------------------------------------------
cat > "$work/weir.yaml" <<CONF
admin: { listen: $ADMIN }
listeners:
  - { name: bench, listen: $WEIR, protocol: tcp, pool: iperf }
pools:
  iperf: { backends: [ { address: $BACKEND } ] }
CONF
haproxy_cfg 4000 tcp 60s <<CONF
  option splice-request
  option splice-response
frontend bench
  bind $HAPROXY
  default_backend iperf
backend iperf
  server s1 $BACKEND
CONF
nginx_conf "$work/nginx" "" 4096 "load_module $STREAM_MODULE;" <<CONF
stream { server { listen $NGINX; proxy_pass $BACKEND; proxy_buffer_size 64k; } }
CONF

WEIR_LOG=warn taskset -c 1 "$WEIR_BIN" --threads 1 run -c "$work/weir.yaml" & weir_pid=$!; pids+=("$weir_pid")
taskset -c 1 haproxy -f "$work/haproxy.cfg" -db & haproxy_pid=$!; pids+=("$haproxy_pid")
taskset -c 1 nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" & nginx_pid=$!; pids+=("$nginx_pid")
wait_port $WEIR; wait_port $HAPROXY; wait_port $NGINX

# CPU clock ticks used so far by a process and its children (nginx's worker).
cpu_of() {
  local total=0 p
  for p in $(pgrep -P "$1") "$1"; do
    [ -r "/proc/$p/stat" ] || continue
    # shellcheck disable=SC2046  # the fields of /proc/PID/stat, split on purpose
    set -- $(sed 's/^.*) //' "/proc/$p/stat")
    total=$(( total + ${12} + ${13} ))   # utime + stime (fields 14, 15)
  done
  echo "$total"
}
hz=$(getconf CLK_TCK)

# "Gbit/s bytes" received by the iperf3 server in one run of `secs` (default DURATION).
iperf() {
  taskset -c 0 iperf3 -c "${1%:*}" -p "${1#*:}" -t "${2:-$DURATION}" -J |
    python3 -c 'import json,sys; r = json.load(sys.stdin)["end"]["sum_received"]; print("%.2f %d" % (r["bits_per_second"] / 1e9, r["bytes"]))'
}
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

names=(direct weir haproxy nginx)
declare -A ADDR=([direct]=$BACKEND [weir]=$WEIR [haproxy]=$HAPROXY [nginx]=$NGINX)
declare -A PID=([direct]=0 [weir]=$weir_pid [haproxy]=$haproxy_pid [nginx]=$nginx_pid)
declare -A ALL MED CPU BYTES
for n in "${names[@]}"; do iperf "${ADDR[$n]}" 2 >/dev/null; CPU[$n]=0; BYTES[$n]=0; done   # warm-up
for _ in $(seq "$RUNS"); do
  # Interleaved, so a burst of background load hits every contender alike.
  for n in "${names[@]}"; do
    before=0; [ "${PID[$n]}" = 0 ] || before=$(cpu_of "${PID[$n]}")
    read -r g b < <(iperf "${ADDR[$n]}")
    after=0; [ "${PID[$n]}" = 0 ] || after=$(cpu_of "${PID[$n]}")
    ALL[$n]="${ALL[$n]:-} $g"; CPU[$n]=$(( CPU[$n] + after - before )); BYTES[$n]=$(( BYTES[$n] + b ))
  done
done
# shellcheck disable=SC2086  # ALL[n] is a space-separated list
for n in "${names[@]}"; do MED[$n]=$(median ${ALL[$n]}); done

printf '\nBulk TCP, 1 stream, %ss x %s runs, proxy: 1 thread pinned to CPU 1, iperf3 on CPU 0\n' "$DURATION" "$RUNS"
printf '%-8s %12s %9s %10s %14s   %s\n' path "Gbit/s (med)" "/direct" "/HAProxy" "proxy CPU s/GB" "runs (Gbit/s)"
for n in "${names[@]}"; do
  awk -v n="$n" -v g="${MED[$n]}" -v d="${MED[direct]}" -v h="${MED[haproxy]}" -v r="${ALL[$n]}" \
      -v c="${CPU[$n]}" -v hz="$hz" -v b="${BYTES[$n]}" -v proxy="${PID[$n]}" \
    'BEGIN { cpu = (proxy == 0) ? "-" : sprintf("%.3f", c / hz / (b / 1e9));
             printf "%-8s %12.2f %9.2f %10.2f %14s  %s\n", n, g, g / d, g / h, cpu, r }'
done
awk -v w="${MED[weir]}" -v h="${MED[haproxy]}" \
    -v cw="${CPU[weir]}" -v bw="${BYTES[weir]}" -v ch="${CPU[haproxy]}" -v bh="${BYTES[haproxy]}" 'BEGIN {
  printf "\nweir: %.2fx HAProxy throughput (target >= 1.20x); %.2fx HAProxy CPU per byte\n", w / h, (cw / bw) / (ch / bh) }'
