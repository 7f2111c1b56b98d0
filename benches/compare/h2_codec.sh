#!/usr/bin/env bash
# User-space instructions per HTTP/2 (h2c) request for one fixed answer, served by weir's
# own codec (weir-h2) and by hyper's HTTP/2 server (hyper + h2, what weir served HTTP/2
# clients with before weir-h2), in one run: what replacing hyper's server saves, with no routing
# and no backend in the way (`benches/src/bin/h2-codec-server.rs`).
#
# Each mode runs under `valgrind --tool=callgrind`; the script sends WARMUP requests,
# zeroes the counters, sends REQUESTS (`h2load -c CONNS -m 10`), dumps and divides.
#
#   benches/compare/h2_codec.sh          # REQUESTS=5000 CONNS=10 WARMUP=200
#
# Needs: valgrind, h2load.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=benches/compare/lib.sh
. benches/compare/lib.sh
defaults REQUESTS=5000 CONNS=10 WARMUP=200
need valgrind callgrind_control h2load
cargo build --release -q -p weir-benches --bin h2-codec-server
bin=target/release/h2-codec-server

# $1 requests against $2; exits unless every one got a 200.
load() {
  local out
  out=$(h2load -n "$1" -c "$CONNS" -m 10 "http://$2/")
  awk -v n="$1" '/^status codes:/ { gsub(",", ""); if ($3 + 0 == n) ok = 1 } END { exit !ok }' <<<"$out" ||
    { echo "not every request answered 200: $out" >&2; exit 1; }
}

declare -A IR
for mode in weir hyper; do
  addr=127.0.0.1:$(free_ports 1)
  callgrind_count "$mode" "$addr" "$bin" "$mode" "$addr"
done

printf 'user-space instructions per h2c request, one fixed 612-byte answer (h2load -n %s -c %s -m 10, after %s warm-up)\n' \
  "$REQUESTS" "$CONNS" "$WARMUP"
for mode in weir hyper; do
  awk -v n="$mode" -v ir="${IR[$mode]}" -v q="$REQUESTS" 'BEGIN { printf "%-6s %12d Ir total %8.0f Ir/request\n", n, ir, ir / q }'
done
awk -v w="${IR[weir]}" -v h="${IR[hyper]}" 'BEGIN { printf "weir-h2: %.2fx hyper + h2\n", w / h }'
