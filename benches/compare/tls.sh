#!/usr/bin/env bash
# The TLS edge, how browsers arrive: weir (rustls) vs HAProxy and nginx (OpenSSL), one run.
#
# All three terminate TLS with the same self-signed ECDSA P-256 certificate (made by the
# script with openssl) in front of one HTTP/1.1 nginx backend; each proxy has one worker
# thread pinned to CPU 1, clients and backend share CPU 0. Per round (interleaved, order
# rotating), for each proxy:
#
#  1. full handshakes: h2load --h1 -n BATCH -c BATCH, again and again for DURATION s, so
#     every request comes on a new connection with a full handshake (a fresh h2load has no
#     session to resume); the figure is handshakes (one request each) per CPU-second of
#     the proxy;
#  2. keep-alive HTTPS: wrk -c CONNS over TLS for DURATION s; requests per CPU-second.
#
# CPU is the proxy's user + system time from /proc/PID/stat; ratios are the median of
# per-round ratios to HAProxy (higher is better).
#
#   benches/compare/tls.sh                        # ROUNDS=3 DURATION=10 BATCH=100 CONNS=50
#   ROUNDS=1 DURATION=3 benches/compare/tls.sh    # smoke test
#   WEIR_BIN=path/to/weir benches/compare/tls.sh  # skip the cargo build
#
# Needs: h2load (nghttp2-client), wrk, haproxy, nginx, taskset, python3, openssl.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=benches/compare/lib.sh
. benches/compare/lib.sh
defaults ROUNDS=3 DURATION=10 BATCH=100 CONNS=50
need h2load wrk haproxy nginx taskset python3 openssl
need_two_cpus
weir_bin
start_all
names=(weir haproxy nginx)
declare -A HS KA

# Prints how many one-request connections to $1 (a URL) succeeded in DURATION seconds.
handshake_loop() {
  local total=0 ok end=$(( SECONDS + DURATION ))
  while [ "$SECONDS" -lt "$end" ]; do
    ok=$(taskset -c 0 h2load --h1 -n "$BATCH" -c "$BATCH" "$1" | awk '/^requests:/ { print $8 }')
    [ "${ok:-0}" = "$BATCH" ] || echo "$1: ${ok:-0} of $BATCH requests succeeded" >&2
    total=$(( total + ${ok:-0} ))
  done
  echo "$total"
}
# One round $2 of both measurements for proxy $1.
run() {
  local n=$1 r=$2 reqs
  measure_cpu "${PID[$n]}" handshake_loop "$(tls_url "$n")"
  HS[$n,$r]=$(awk -v q="$OUT" -v u="$CPU_U" -v s="$CPU_S" 'BEGIN { printf "%.0f", q / (u + s) }')
  measure_cpu "${PID[$n]}" taskset -c 0 wrk -t1 -c"$CONNS" -d"${DURATION}s" "$(tls_url "$n")"
  if grep -q "Non-2xx\|Socket errors" <<<"$OUT"; then echo "$n: errors during the run: $OUT" >&2; fi
  reqs=$(awk '/requests in/ {print $1}' <<<"$OUT")
  KA[$n,$r]=$(awk -v q="$reqs" -v u="$CPU_U" -v s="$CPU_S" 'BEGIN { printf "%.0f", q / (u + s) }')
}
for n in "${names[@]}"; do   # warm-up
  taskset -c 0 h2load --h1 -n "$BATCH" -c "$BATCH" "$(tls_url "$n")" >/dev/null
  taskset -c 0 wrk -t1 -c"$CONNS" -d1s "$(tls_url "$n")" >/dev/null
done
for (( r = 0; r < ROUNDS; r++ )); do
  for n in $(round_order "$r"); do run "$n" "$r"; done
  echo "round $((r + 1))/$ROUNDS: handshakes/CPU-s weir ${HS[weir,$r]} haproxy ${HS[haproxy,$r]} nginx ${HS[nginx,$r]}" >&2
done

declare -A WR
printf '\nTLS (ECDSA P-256), 1 worker thread pinned to CPU 1, %s rounds of %ss; per CPU-second of the proxy\n' \
  "$ROUNDS" "$DURATION"
printf '%-8s %-22s %12s %18s\n' proxy what "median" "ratio (range)"
for kind in HS KA; do
  declare -n arr=$kind
  for n in "${names[@]}"; do
    vals=() ratios=()
    for (( r = 0; r < ROUNDS; r++ )); do
      vals+=("${arr[$n,$r]}")
      ratios+=("$(awk -v a="${arr[$n,$r]}" -v b="${arr[haproxy,$r]}" 'BEGIN { print a / b }')")
    done
    label="full handshakes/CPU-s"; [ "$kind" = HS ] || label="keep-alive req/CPU-s"
    printf '%-8s %-22s %12.0f %8.2fx (%.2f-%.2f)\n' "$n" "$label" "$(median "${vals[@]}")" \
      "$(median "${ratios[@]}")" "$(lowest "${ratios[@]}")" "$(printf '%s\n' "${ratios[@]}" | sort -g | tail -1)"
    [ "$n" != weir ] || WR[$kind]=$(median "${ratios[@]}")
  done
  unset -n arr
done
printf '\nweir vs HAProxy per CPU-second: full handshakes %.2fx, keep-alive HTTPS requests %.2fx\n' "${WR[HS]}" "${WR[KA]}"
