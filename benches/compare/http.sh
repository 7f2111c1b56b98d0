#!/usr/bin/env bash
# shellcheck disable=SC2034  # RPS, P50 and P99 are read through summary's nameref
# weir vs HAProxy vs nginx as HTTP/1.1 keep-alive reverse proxies, side by side in one run.
#
# Each proxy runs with ONE worker thread pinned to CPU 1; the load generator and the backend
# (an nginx answering a fixed 13-byte body) share CPU 0. Two phases, each in interleaved
# rounds (the proxy order rotates every round, so background load hits all alike):
#
#  1. saturation: wrk (CONNS keep-alive connections, DURATION s) as fast as it goes; the
#     proxy's own CPU time (utime and stime from /proc/PID/stat) over the run gives CPU
#     microseconds per request, split into user and system, and wrk gives requests/s;
#  2. fixed rate: weir's own open-loop client (`fixed-rate`, benches/src/bin/fixed-rate.rs:
#     one thread, LAT_CONNS keep-alive connections on a fixed schedule, latency counted
#     from when a held-up request was due) at RATE requests/s (default a third of
#     HAProxy's median saturation rate): p50 and p99 latency. For this phase the backend
#     moves to CPU 1 beside the proxy and the client has CPU 0 to itself
#     (LAT_BACKEND_CPU=0 restores the old layout). oha, used before, spent most of CPU 0
#     itself at 20,000 req/s (p50 0.8 ms for every proxy), so its own queueing was most
#     of the p99 it reported; LAT_CLIENT=oha still runs it for comparison.
#
# Ratios are the median of per-round ratios to HAProxy measured in the same round.
#
#   benches/compare/http.sh                      # ROUNDS=6 DURATION=10 CONNS=50
#   ROUNDS=2 DURATION=3 LAT_ROUNDS=1 LAT_DURATION=3 benches/compare/http.sh   # smoke test
#   WEIR_BIN=path/to/weir benches/compare/http.sh    # skip the cargo build
#   RATE=8000 benches/compare/http.sh                # fixed rate instead of capacity / 3
#
# Needs: haproxy, nginx, wrk, taskset, python3, openssl, a release weir (oha for LAT_CLIENT=oha).
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=benches/compare/lib.sh
. benches/compare/lib.sh
defaults ROUNDS=6 DURATION=10 CONNS=50 LAT_ROUNDS=5 LAT_DURATION=10 LAT_CONNS=10 LAT_BACKEND_CPU=1 RATE="" LAT_CLIENT=fixed-rate
need haproxy nginx wrk taskset python3 openssl
case $LAT_CLIENT in
  fixed-rate) fixed_rate_bin ;;
  oha) need oha ;;
  *) echo "LAT_CLIENT is fixed-rate or oha, not $LAT_CLIENT" >&2; exit 2 ;;
esac
need_two_cpus
weir_bin
start_all
names=(weir haproxy nginx)

declare -A USR SYS TOT RPS P50 P99
# One saturation run of proxy $1 in round $2.
saturate() {
  local n=$1 r=$2 reqs
  measure_cpu "${PID[$n]}" taskset -c 0 wrk -t1 -c"$CONNS" -d"${DURATION}s" "http://${H1[$n]}/"
  if grep -q "Non-2xx\|Socket errors" <<<"$OUT"; then echo "$n: errors during the run:"; echo "$OUT"; fi
  reqs=$(awk '/requests in/ {print $1}' <<<"$OUT")
  RPS[$n,$r]=$(awk '/Requests\/sec/ {print $2}' <<<"$OUT")
  USR[$n,$r]=$(awk -v c="$CPU_U" -v q="$reqs" 'BEGIN { printf "%.3f", c * 1e6 / q }')
  SYS[$n,$r]=$(awk -v c="$CPU_S" -v q="$reqs" 'BEGIN { printf "%.3f", c * 1e6 / q }')
  TOT[$n,$r]=$(awk -v u="${USR[$n,$r]}" -v s="${SYS[$n,$r]}" 'BEGIN { printf "%.3f", u + s }')
}
# p50 and p99 (ms) of one fixed-rate run of proxy $1 in round $2.
fixed_rate() {
  local n=$1 r=$2 out
  if [ "$LAT_CLIENT" = fixed-rate ]; then
    out=$(taskset -c 0 "$FIXED_RATE_BIN" "${H1[$n]}" "$RATE" --conns "$LAT_CONNS" --duration "$LAT_DURATION" --warmup 1) ||
      echo "$n: failed or non-2xx requests: $out" >&2
    read -r "P50[$n,$r]" "P99[$n,$r]" < <(python3 -c '
import json, sys
r = json.load(sys.stdin)
print("%.3f %.3f" % (r["p50_ms"], r["p99_ms"]))' <<<"$out")
    return
  fi
  out=$(taskset -c 0 oha --no-tui --output-format json --worker-threads 1 -w -z "${LAT_DURATION}s" -c "$LAT_CONNS" \
    -q "$RATE" --latency-correction "http://${H1[$n]}/")
  read -r "P50[$n,$r]" "P99[$n,$r]" < <(python3 -c '
import json, sys
r = json.load(sys.stdin)
codes = r.get("statusCodeDistribution", {})
bad = sum(v for k, v in codes.items() if k != "200") + sum(r.get("errorDistribution", {}).values())
if bad:
    print("'"$n"': %d failed or non-200 requests" % bad, file=sys.stderr)
p = r["latencyPercentiles"]
print("%.3f %.3f" % (p["p50"] * 1e3, p["p99"] * 1e3))' <<<"$out")
}
# "median lowest highest" over the rounds of metric array $1 for proxy $2, and of the
# per-round ratio to HAProxy when $3 is "ratio".
summary() {
  local -n arr=$1
  local n=$2 r vals=() rounds=$4
  for (( r = 0; r < rounds; r++ )); do
    if [ "$3" = ratio ]; then
      vals+=("$(awk -v a="${arr[$n,$r]}" -v b="${arr[haproxy,$r]}" 'BEGIN { print a / b }')")
    else
      vals+=("${arr[$n,$r]}")
    fi
  done
  echo "$(median "${vals[@]}") $(lowest "${vals[@]}") $(printf '%s\n' "${vals[@]}" | sort -g | tail -1)"
}

for n in "${names[@]}"; do taskset -c 0 wrk -t1 -c"$CONNS" -d2s "http://${H1[$n]}/" >/dev/null; done   # warm-up
for (( r = 0; r < ROUNDS; r++ )); do
  for n in $(round_order "$r"); do saturate "$n" "$r"; done
  echo "round $((r + 1))/$ROUNDS: CPU us/req weir ${TOT[weir,$r]} haproxy ${TOT[haproxy,$r]} nginx ${TOT[nginx,$r]}" >&2
done
if [ -z "$RATE" ]; then
  RATE=$(awk -v m="$(summary RPS haproxy value "$ROUNDS" | cut -d' ' -f1)" 'BEGIN { printf "%d", m / 3 }')
fi
pin_backend "$LAT_BACKEND_CPU"
for (( r = 0; r < LAT_ROUNDS; r++ )); do
  for n in $(round_order "$r"); do fixed_rate "$n" "$r"; done
done

printf '\nHTTP/1.1 keep-alive, 1 worker thread pinned to CPU 1; saturation: wrk -c%s, %s rounds of %ss\n' \
  "$CONNS" "$ROUNDS" "$DURATION"
printf '%-8s %11s %8s %8s %10s %16s %10s %9s\n' proxy "CPU us/req" user system lowest "ratio (range)" "req/s" "ratio"
for n in "${names[@]}"; do
  read -r tm tl _ < <(summary TOT "$n" value "$ROUNDS")
  read -r um _ _ < <(summary USR "$n" value "$ROUNDS")
  read -r sm _ _ < <(summary SYS "$n" value "$ROUNDS")
  read -r rm rl rh < <(summary TOT "$n" ratio "$ROUNDS")
  read -r qm _ _ < <(summary RPS "$n" value "$ROUNDS")
  read -r qr _ _ < <(summary RPS "$n" ratio "$ROUNDS")
  printf '%-8s %11.2f %8.2f %8.2f %10.2f %6.2fx (%.2f-%.2f) %10.0f %8.2fx\n' "$n" "$tm" "$um" "$sm" "$tl" "$rm" "$rl" "$rh" "$qm" "$qr"
done
printf '\nfixed rate %s req/s (%s -c%s, corrected for coordinated omission, on CPU 0; backend on CPU %s), %s rounds of %ss, medians\n' \
  "$RATE" "$LAT_CLIENT" "$LAT_CONNS" "$LAT_BACKEND_CPU" "$LAT_ROUNDS" "$LAT_DURATION"
printf '%-8s %10s %10s %12s\n' proxy "p50 ms" "p99 ms" "p99 ratio"
for n in "${names[@]}"; do
  read -r pm _ _ < <(summary P50 "$n" value "$LAT_ROUNDS")
  read -r qm _ _ < <(summary P99 "$n" value "$LAT_ROUNDS")
  read -r qr _ _ < <(summary P99 "$n" ratio "$LAT_ROUNDS")
  printf '%-8s %10.3f %10.3f %11.2fx\n' "$n" "$pm" "$qm" "$qr"
done
read -r wr _ _ < <(summary TOT weir ratio "$ROUNDS")
read -r wq _ _ < <(summary RPS weir ratio "$ROUNDS")
read -r wp _ _ < <(summary P99 weir ratio "$LAT_ROUNDS")
printf '\nweir vs HAProxy: CPU/req %.2fx (target <= 0.80x), req/s %.2fx (target >= 1.00x), p99 %.2fx (target <= 1.00x)\n' \
  "$wr" "$wq" "$wp"
