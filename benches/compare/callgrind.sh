#!/usr/bin/env bash
# User-space instructions per HTTP/1.1 keep-alive request: weir vs HAProxy, in one run.
#
# Instruction counts do not move with the machine's noise, unlike CPU time. Each proxy in
# turn runs under `valgrind --tool=callgrind` with one worker thread (weir `--threads 1`,
# HAProxy `nbthread 1`) in front of one nginx backend; the script sends WARMUP requests,
# zeroes the counters (`callgrind_control -z`), sends REQUESTS keep-alive requests
# (`oha -n REQUESTS -c CONNS`), dumps the counters (`callgrind_control -d`) and divides the
# dump's total Ir by REQUESTS. Then it prints the ratio and weir's TOP self-cost functions
# (callgrind_annotate; functions still on the stack at the dump, main and its callers,
# show as 100% there and are left out). The kernel's share (system calls) is not counted.
#
#   benches/compare/callgrind.sh                       # REQUESTS=5000 CONNS=10 WARMUP=200 TOP=15
#   WEIR_BIN=path/to/weir benches/compare/callgrind.sh # skip the cargo build
#   KEEP=dir benches/compare/callgrind.sh              # keep the callgrind dumps in dir
#   PROTO=h2c benches/compare/callgrind.sh             # HTTP/2 clients (h2load -m 10, prior
#                                                      # knowledge) to the HTTP/1.1 backend
#
# Function names come from the symbol table; for file names, and the per-crate split
# printed last, build with
# CARGO_PROFILE_RELEASE_DEBUG=line-tables-only. Needs: valgrind, haproxy, nginx, oha,
# python3, openssl.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=benches/compare/lib.sh
. benches/compare/lib.sh
defaults REQUESTS=5000 CONNS=10 WARMUP=200 TOP=15 KEEP="" PROTO=h1
need valgrind callgrind_control callgrind_annotate haproxy nginx python3 openssl
case $PROTO in
  h1) need oha ;;
  h2c) need h2load ;;
  *) echo "PROTO is h1 or h2c, not $PROTO" >&2; exit 2 ;;
esac
weir_bin
write_proxy_configs
start_backend "$BACKEND" 0

# $1 requests (CONNS connections) against $2; exits unless every request got a 200.
load() {
  if [ "$PROTO" = h2c ]; then
    local out
    out=$(h2load -n "$1" -c "$CONNS" -m 10 "http://$2/")
    awk -v n="$1" '/^status codes:/ { gsub(",", ""); if ($3 + 0 == n) ok = 1 } END { exit !ok }' <<<"$out" ||
      { echo "not every request answered 200: $out" >&2; exit 1; }
    return
  fi
  oha --no-tui --output-format json -n "$1" -c "$CONNS" "http://$2/" | python3 -c '
import json, sys
r = json.load(sys.stdin)
ok = r.get("statusCodeDistribution", {}).get("200", 0)
if ok != int(sys.argv[1]):
    sys.exit("%d of %s requests answered 200: %s" % (ok, sys.argv[1], r.get("errorDistribution")))' "$1"
}

declare -A IR
# Runs the proxy command "$@" under callgrind (name $1, listening on $2), sets IR[name],
# and keeps the dump when KEEP is set.
count() {
  callgrind_count "$@"
  [ -z "$KEEP" ] || { mkdir -p "$KEEP"; cp "$work/$1.dump" "$KEEP/$1.callgrind"; }
}

export WEIR_LOG=warn   # not `env`: callgrind would follow env, not the exec
if [ "$PROTO" = h2c ]; then
  count weir "${H2C[weir]}" "$WEIR_BIN" --threads 1 run -c "$work/weir.yaml"
  count haproxy "${H2C[haproxy]}" haproxy -f "$work/haproxy.cfg" -db
  what="HTTP/2 (h2c) request to an HTTP/1.1 backend (callgrind, 1 thread, h2load -n $REQUESTS -c $CONNS -m 10"
else
  count weir "${H1[weir]}" "$WEIR_BIN" --threads 1 run -c "$work/weir.yaml"
  count haproxy "${H1[haproxy]}" haproxy -f "$work/haproxy.cfg" -db
  what="HTTP/1.1 keep-alive request (callgrind, 1 thread, oha -n $REQUESTS -c $CONNS"
fi

printf '\nuser-space instructions per %s after %s warm-up)\n' "$what" "$WARMUP"
for n in weir haproxy; do
  awk -v n="$n" -v ir="${IR[$n]}" -v q="$REQUESTS" 'BEGIN { printf "%-8s %14d Ir total %10.0f Ir/request\n", n, ir, ir / q }'
done
target="target <= 0.40x, about 12,000 Ir/request"
[ "$PROTO" = h1 ] || target="CPU target <= 1.00x"
awk -v w="${IR[weir]}" -v h="${IR[haproxy]}" -v t="$target" 'BEGIN {
  printf "weir: %.2fx HAProxy (%s)\n", w / h, t }'
printf '\nweir, top %s functions by self cost (Ir, share of the total)\n' "$TOP"
callgrind_annotate --inclusive=no --threshold=100 "$work/weir.dump" 2>/dev/null |
  awk '/^-+$/ { rule++; next } rule >= 3 && NF >= 2 && !/^Ir / && !/\(100\.0%\)/' | sed -n "1,${TOP}p" | cut -c1-160

# Per crate: each instruction counted in the crate whose source line it comes from, so
# code inlined from h2 into weir's functions counts as h2's. Needs line tables (see
# above); without them every line is `???` and this part is left out. Functions still on
# the stack at the dump (main and its callers) show their inclusive cost and are skipped.
printf '\nweir, instructions per request by source crate (inlined code where its source lives)\n'
callgrind_annotate --inclusive=no --auto=no --show-percs=no --threshold=100 "$work/weir.dump" 2>/dev/null |
  sed 's/,//g' |
  awk -v q="$REQUESTS" -v total="${IR[weir]}" '
    $1 ~ /^[0-9]+$/ && !/PROGRAM TOTALS/ && $1 < total / 2 {
      f = $2; sub(/:.*/, "", f)
      if (f ~ /registry\/src\//) { sub(/.*registry\/src\/[^\/]*\//, "", f); sub(/\/.*/, "", f) }
      else if (f ~ /^\/rustc\//) { sub(/^\/rustc\/[0-9a-f]*\/library\//, "std:", f); sub(/\/src\/.*/, "", f) }
      else if (f ~ /(^|\/)crates\/weir/) { sub(/^(.*\/)?crates\//, "", f); sub(/\/src\/.*/, "", f) }
      else if (f ~ /malloc/) f = "libc malloc/free"
      else if (f ~ /string\//) f = "libc string (memcpy...)"
      else if (f == "???") { unknown += $1; next }
      s[f] += $1; named += $1
    }
    END {
      if (named < unknown) { print "  (no line tables: build with CARGO_PROFILE_RELEASE_DEBUG=line-tables-only)"; exit }
      for (k in s) if (s[k] / q >= 20) printf "%8.0f  %s\n", s[k] / q, k
    }' | sort -rn | sed -n "1,${TOP}p"
