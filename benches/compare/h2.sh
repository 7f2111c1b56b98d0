#!/usr/bin/env bash
# HTTP/2 clients to an HTTP/1.1 backend: weir vs HAProxy vs nginx, in one run.
#
# h2load (`-n REQUESTS -c 10 -m 10`, on CPU 0 with the backend) sends HTTP/2 requests to
# each proxy (one worker thread pinned to CPU 1) twice per round: h2c (prior knowledge,
# cleartext) and h2 over TLS (ALPN, the same ECDSA P-256 certificate for all three, made by
# the script). The proxies forward over HTTP/1.1 keep-alive to one nginx backend. The
# figure is the proxy's CPU time per request (user + system from /proc/PID/stat); ratios
# are the median of per-round ratios to HAProxy. Rounds are interleaved and the order
# rotates.
#
#   benches/compare/h2.sh                       # ROUNDS=3 REQUESTS=60000
#   ROUNDS=1 REQUESTS=10000 benches/compare/h2.sh   # smoke test
#   WEIR_BIN=path/to/weir benches/compare/h2.sh     # skip the cargo build
#
# Needs: h2load (nghttp2-client), haproxy, nginx, taskset, python3, openssl, a release weir.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=benches/compare/lib.sh
. benches/compare/lib.sh
ROUNDS=${ROUNDS:-3}
REQUESTS=${REQUESTS:-60000}
need h2load haproxy nginx taskset python3 openssl
need_two_cpus
weir_bin
start_all
names=(weir haproxy nginx)
declare -A US WR
# One h2load run of kind $1 (h2c or tls) against proxy $2 in round $3.
run() {
  local kind=$1 n=$2 r=$3 url ok
  if [ "$kind" = h2c ]; then url=http://${H2C[$n]}/; else url=$(tls_url "$n"); fi
  measure_cpu "${PID[$n]}" taskset -c 0 h2load -n "$REQUESTS" -c 10 -m 10 "$url"
  ok=$(awk '/^requests:/ { print $8 }' <<<"$OUT")
  [ "$ok" = "$REQUESTS" ] || echo "$n $kind: $ok of $REQUESTS requests succeeded" >&2
  if [ -z "$ok" ] || [ "$ok" -eq 0 ]; then echo "$n $kind: h2load failed: $OUT" >&2; exit 1; fi
  US[$kind,$n,$r]=$(awk -v u="$CPU_U" -v s="$CPU_S" -v q="$ok" 'BEGIN { printf "%.3f", (u + s) * 1e6 / q }')
}
for n in "${names[@]}"; do   # warm-up
  taskset -c 0 h2load -n 2000 -c 10 -m 10 "http://${H2C[$n]}/" >/dev/null
  taskset -c 0 h2load -n 2000 -c 10 -m 10 "$(tls_url "$n")" >/dev/null
done
for (( r = 0; r < ROUNDS; r++ )); do
  for n in $(round_order "$r"); do run h2c "$n" "$r"; run tls "$n" "$r"; done
done

printf '\nHTTP/2 clients (h2load -n %s -c 10 -m 10) to an HTTP/1.1 backend, %s rounds, 1 worker thread\n' \
  "$REQUESTS" "$ROUNDS"
printf '%-8s %-4s %12s %10s %18s\n' proxy kind "CPU us/req" lowest "ratio (range)"
for kind in h2c tls; do
  for n in "${names[@]}"; do
    vals=() ratios=()
    for (( r = 0; r < ROUNDS; r++ )); do
      vals+=("${US[$kind,$n,$r]}")
      ratios+=("$(awk -v a="${US[$kind,$n,$r]}" -v b="${US[$kind,haproxy,$r]}" 'BEGIN { print a / b }')")
    done
    printf '%-8s %-4s %12.2f %10.2f %8.2fx (%.2f-%.2f)\n' "$n" "$kind" "$(median "${vals[@]}")" \
      "$(lowest "${vals[@]}")" "$(median "${ratios[@]}")" "$(lowest "${ratios[@]}")" \
      "$(printf '%s\n' "${ratios[@]}" | sort -g | tail -1)"
    [ "$n" != weir ] || WR[$kind]=$(median "${ratios[@]}")
  done
done
printf '\nweir vs HAProxy, CPU per HTTP/2 request: h2c %.2fx, TLS %.2fx (target <= 1.00x)\n' "${WR[h2c]}" "${WR[tls]}"
