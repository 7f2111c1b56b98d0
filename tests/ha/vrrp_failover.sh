#!/usr/bin/env bash
# A tested active/passive pair: two weir hosts behind one VRRP virtual IP (keepalived),
# built in network namespaces on this machine, with a client loop against the VIP.
#
#   client 10.99.0.10 ──┐
#   lb1    10.99.0.11 ──┼── br0 (in its own namespace)     VIP 10.99.0.100:8080
#   lb2    10.99.0.12 ──┤
#   backends 10.99.0.20 ┘ (:8081, :8082)
#
# Each balancer namespace runs weir (the same weir.yaml on both: listen 0.0.0.0:8080,
# admin on 127.0.0.1:9901, shutdown_grace 5s) and keepalived with
# docker/keepalived/keepalived.conf, the file we ship, rewritten only for these addresses
# (192.0.2. -> 10.99.0.), lb2's priority and peer, and the check running as root; both
# carry the VIP on lo as the README's host setup says. Two cases, each on a fresh pair:
#
#   kill   SIGKILL the master's weir: the check fails, the VIP moves. Connections open
#          on the master break, so failures are counted but the target is the longest
#          gap in successful responses: < 3 s.
#   drain  SIGTERM the master's weir: /healthz answers 503 at once, so the check fails
#          and the VIP moves while weir goes on accepting for shutdown_grace, closes
#          idle keep-alive connections at once and every other one after its next
#          response; then it drains and exits 0.
#          Target: 0 failed requests (refused, timed out, closed unanswered, not 200,
#          or any reset of the idle keep-alive client). A connection *reset* of an
#          exchange in progress is counted apart: that is what the VIP moving does to
#          a connection in use at that instant, at most one per busy client.
#
# Then, in both cases, the way back: lb1's weir is started again; keepalived's
# `nopreempt` must keep the VIP on lb2 (no second, unplanned move) while lb1 becomes
# the backup again, the client going on without a failure.
#
# Prints per case the requests, failures, resets and longest gap in successful
# responses (of the busy workers; the idle one pauses 1-3 s by design), and last
# `max interruption: N ms`. Exits non-zero if a target is missed
# or the pair misbehaves (a wait below runs out, the drained weir exits non-zero).
#
# Needs root (ip netns, veth), iproute2, keepalived, curl and python3. Nothing leaves the
# namespaces it creates: only 10.99.0.0/24 inside them, no route out, nothing in the
# host's own namespace. On exit (or Ctrl-C) it stops the processes it started, by PID,
# and deletes its namespaces (which takes the veths and the bridge with them).
#
#   WEIR_BIN=target/debug/weir   the weir binary (default: target/debug/weir)
#   HA_KEEP=1                    keep the logs (their directory is printed)
#   HA_CASES="kill drain"        the cases to run, in order (repeat one to measure it again)
# The predicates below are called through wait_until, cleanup through the trap.
# shellcheck disable=SC2329
set -euo pipefail
cd "$(dirname "$0")/../.."

WEIR_BIN=$(realpath "${WEIR_BIN:-target/debug/weir}")
KEEPALIVED=$(command -v keepalived || echo /usr/sbin/keepalived)
PYTHON=$(command -v python3 || true)
KEEPALIVED_CONF=docker/keepalived/keepalived.conf

NET=10.99.0
VIP=$NET.100
PORT=8080
KILL_TARGET_MS=3000

HA_CASES=${HA_CASES:-kill drain}
for tool in ip curl "$KEEPALIVED" "$PYTHON" "$WEIR_BIN"; do
  if [ -z "$tool" ] || ! command -v "$tool" >/dev/null 2>&1; then
    echo "vrrp_failover: missing ${tool:-python3} (needs iproute2, curl, keepalived, python3, a built weir)" >&2
    exit 2
  fi
done
if [ "$(id -u)" != 0 ]; then
  echo "vrrp_failover: needs root (network namespaces)" >&2
  exit 2
fi

tag="weirha$$"
work=$(mktemp -d /tmp/weir-ha.XXXXXX)
all_pids=()
all_namespaces=()
scenario='' kind='' runs=0

# === helpers ===

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# Whether PID is still a running child of this shell (never a reused PID of someone else).
alive() {
  [ "$(ps -o ppid= -p "$1" 2>/dev/null | tr -d ' ')" = "$$" ] &&
    [ "$(ps -o stat= -p "$1" 2>/dev/null | cut -c1)" != Z ]
}

# wait_until SECONDS WHAT COMMAND...: polls COMMAND every 50 ms, at most SECONDS.
wait_until() {
  local limit=$1 what=$2
  shift 2
  local deadline=$(($(now_ms) + limit * 1000))
  until "$@" >/dev/null 2>&1; do
    if [ "$(now_ms)" -ge "$deadline" ]; then
      echo "vrrp_failover: timed out after ${limit}s waiting for $what" >&2
      return 1
    fi
    sleep 0.05
  done
}

# stop PID...: SIGTERM, and again 0.5 s later to whatever still runs (weir in its
# shutdown grace stops at once on a second signal; the grace is not what is tested
# here), at most 5 s more to exit, then SIGKILL; only our own children.
stop() {
  local pid i
  for pid in "$@"; do
    alive "$pid" && kill -TERM "$pid" 2>/dev/null || true
  done
  for i in $(seq 10); do
    any_alive "$@" || break
    sleep 0.05
  done
  for pid in "$@"; do
    alive "$pid" && kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "$@"; do
    i=0
    while alive "$pid" && [ $i -lt 100 ]; do
      sleep 0.05
      i=$((i + 1))
    done
    alive "$pid" && kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}

any_alive() {
  local pid
  for pid in "$@"; do
    alive "$pid" && return 0
  done
  return 1
}

# Deletes namespace NS (its veth ends and bridge go with it). Whatever still runs in it
# was started by this script in a namespace only this run made: stop it first, so
# nothing outlives the run in a namespace nobody can reach.
del_ns() {
  local pids
  pids=$(ip netns pids "$1" 2>/dev/null || true)
  if [ -n "$pids" ]; then
    # shellcheck disable=SC2086 # one PID per word
    kill -KILL $pids 2>/dev/null || true
  fi
  ip netns del "$1" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ "$rc" != 0 ] && [ -n "${scenario:-}" ]; then
    show_logs
  fi
  if [ ${#all_pids[@]} -gt 0 ]; then
    stop "${all_pids[@]}"
  fi
  local ns
  for ns in "${all_namespaces[@]}"; do
    del_ns "$ns"
  done
  if [ "${HA_KEEP:-0}" = 1 ] || [ "$rc" != 0 ]; then
    echo "vrrp_failover: logs in $work"
  else
    rm -rf "$work"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

in_ns() { ip netns exec "$@"; }

holds_vip() { ip -n "$1" -4 -o addr show dev eth0 | grep -q " $VIP/"; }
not_holds_vip() { ! holds_vip "$1"; }
# keepalived's own word on HOST's state (MASTER, BACKUP, FAULT): the last transition
# its log reports.
vrrp_state() {
  sed -n 's/.*(VI_WEIR) Entering \([A-Z]*\) STATE.*/\1/p' "$work/$scenario-$1-keepalived.log" 2>/dev/null |
    tail -n 1
}
in_state() { [ "$(vrrp_state "$1")" = "$2" ]; }
is_backup() { in_state "$1" BACKUP && not_holds_vip "${!1}"; }
is_master() { in_state "$1" MASTER && holds_vip "${!1}"; }
healthz_ok() { in_ns "$1" curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:9901/healthz"; }
serves() { in_ns "$client" curl -fsS -o /dev/null --max-time 1 "http://$1:$PORT/"; }
progress() { cat "$work/$scenario-progress" 2>/dev/null || echo 0; }
progress_at_least() { [ "$(progress)" -ge "$1" ]; }
exited() { ! alive "$1"; }

# The pair's keepalived.conf for HOST (lb1 or lb2), from the shipped file, checked by
# keepalived in HOST's namespace (where its eth0 is).
keepalived_conf() {
  local host=$1 out=$2
  local sed_args=(
    -e "s/router_id weir_lb1/router_id weir_$host/"
    -e 's/script_user keepalived_script/script_user root/'
    -e "s/192\\.0\\.2\\./$NET./g"
  )
  if [ "$host" = lb2 ]; then
    # What the file's comments say to change on lb2.
    sed_args+=(
      -e 's/^\( *priority\) 150\b/\1 100/'
      -e "s/^\\( *unicast_src_ip\\) $NET\\.11\\b/\\1 $NET.12/"
      -e "s/^\\( *\\)$NET\\.12\\( \\|\$\\)/\\1$NET.11\\2/"
    )
  fi
  sed "${sed_args[@]}" "$KEEPALIVED_CONF" >"$out"
  local self=$NET.11 peer=$NET.12 priority=150
  [ "$host" = lb2 ] && self=$NET.12 peer=$NET.11 priority=100
  # The rewrite must have found what it rewrites: a changed file fails here, loudly.
  local want
  for want in "router_id weir_$host" "script_user root" "priority $priority" \
    "unicast_src_ip $self" "^ *$peer\\b" "$VIP/24 dev eth0" "interface eth0" \
    "http://127.0.0.1:9901/healthz" "^ *nopreempt" "^ *state BACKUP"; do
    if ! grep -q -- "$want" "$out"; then
      echo "vrrp_failover: $KEEPALIVED_CONF rewritten for $host lacks '$want'" >&2
      return 1
    fi
  done
  if ! in_ns "${!host}" "$KEEPALIVED" --config-test="$out.test" -f "$out" || [ -s "$out.test" ]; then
    cat "$out.test" >&2
    echo "vrrp_failover: keepalived rejects the $host configuration" >&2
    return 1
  fi
}

# === one pair ===

# Builds the namespaces, starts backends, both weirs and both keepalived, and waits
# until lb1 holds the VIP, lb2 is its backup, and the VIP answers.
start_pair() {
  case_pids=()
  sw=$tag-$scenario-sw client=$tag-$scenario-client lb1=$tag-$scenario-lb1 lb2=$tag-$scenario-lb2
  backends=$tag-$scenario-be
  local ns
  for ns in "$sw" "$client" "$lb1" "$lb2" "$backends"; do
    ip netns add "$ns"
    all_namespaces+=("$ns")
    ip -n "$ns" link set lo up
  done
  ip -n "$sw" link add br0 type bridge
  ip -n "$sw" link set br0 up
  local host addr
  for host in client:10 lb1:11 lb2:12 backends:20; do
    addr=$NET.${host#*:}
    host=${host%:*}
    ns=${!host}
    # Made inside the switch namespace with its peer born in the host's: the
    # machine's own namespace never sees either end.
    ip -n "$sw" link add "p-$host" type veth peer name eth0 netns "$ns"
    ip -n "$sw" link set "p-$host" master br0 up
    ip -n "$ns" addr add "$addr/24" dev eth0
    ip -n "$ns" link set eth0 up
  done
  # The host setup the README asks of both balancers: the VIP on lo, never answered
  # for in ARP. The host keepalived makes master answers ARP for it on eth0; the other
  # still accepts packets for it, so connections on the old master finish and a client
  # whose ARP entry is not updated yet is still served there during the grace.
  for host in lb1 lb2; do
    ip -n "${!host}" addr add "$VIP/32" dev lo
    ip netns exec "${!host}" sysctl -q -w net.ipv4.conf.all.arp_ignore=1 \
      net.ipv4.conf.all.arp_announce=2
  done

  ip netns exec "$backends" "$PYTHON" tests/ha/backend.py 8081 8082 >"$work/$scenario-backends.log" 2>&1 &
  case_pids+=($!)
  all_pids+=($!)

  cat >"$work/weir.yaml" <<EOF
admin:
  listen: 127.0.0.1:9901
# keepalived's check fails twice within 2 s of /healthz answering 503 (fall 2) and the
# backup takes the VIP ~0.6 s later (FAULT, priority 0); the grace covers both with
# room to spare.
shutdown_grace: 5s
shutdown_timeout: 10s
listeners:
  - name: web
    listen: 0.0.0.0:$PORT
    routes:
      - pool: web
pools:
  web:
    backends:
      - { address: $NET.20:8081 }
      - { address: $NET.20:8082 }
    health_check: { type: http, path: /health, interval: 1s }
EOF
  "$WEIR_BIN" check -c "$work/weir.yaml" >/dev/null

  for host in lb1 lb2; do
    start_weir "$host"
  done
  wait_until 15 "weir on lb1 ready" healthz_ok "$lb1"
  wait_until 15 "weir on lb2 ready" healthz_ok "$lb2"
  wait_until 15 "lb1 serving $NET.11:$PORT" serves "$NET.11"
  wait_until 15 "lb2 serving $NET.12:$PORT" serves "$NET.12"

  for host in lb1 lb2; do
    keepalived_conf "$host" "$work/$scenario-$host-keepalived.conf"
    ip netns exec "${!host}" "$KEEPALIVED" --dont-fork --log-console --log-detail --no-syslog --vrrp \
      -f "$work/$scenario-$host-keepalived.conf" \
      -p "$work/$scenario-$host-keepalived.pid" -r "$work/$scenario-$host-vrrp.pid" \
      >"$work/$scenario-$host-keepalived.log" 2>&1 &
    case_pids+=($!)
    all_pids+=($!)
  done
  wait_until 20 "lb1 to take the VIP" is_master lb1
  wait_until 5 "lb2 to be the backup" is_backup lb2
  wait_until 10 "the VIP answering" serves "$VIP"
}

# Starts weir on HOST (again, after a case stopped it: its log is appended to).
start_weir() {
  local host=$1
  ip netns exec "${!host}" env WEIR_LOG=info "$WEIR_BIN" run -c "$work/weir.yaml" \
    --log-format json >/dev/null 2>>"$work/$scenario-$host-weir.log" &
  case_pids+=($!)
  all_pids+=($!)
  [ "$host" = lb1 ] && weir_lb1=$!
  return 0
}

# The way back: lb1's weir restarted, lb1 becomes the backup again (rise 2) and the VIP
# stays on lb2 (nopreempt), for a few adverts after that: a move would show there.
# Sets back_moved (1 when the VIP left lb2).
way_back() {
  start_weir lb1
  wait_until 15 "weir on lb1 ready again" healthz_ok "$lb1"
  wait_until 15 "lb1 to be the backup again" is_backup lb1
  back_moved=0
  local until_ms=$(($(now_ms) + 4000))
  while [ "$(now_ms)" -lt "$until_ms" ]; do
    if ! is_master lb2 || holds_vip "$lb1"; then
      back_moved=1
      break
    fi
    sleep 0.1
  done
  echo "$kind: lb1's weir back: lb1 $(vrrp_state lb1), lb2 $(vrrp_state lb2), VIP $([ "$back_moved" = 0 ] && echo 'stayed on lb2' || echo 'moved')"
}

stop_pair() {
  stop "${case_pids[@]}"
  local ns
  for ns in "$sw" "$client" "$lb1" "$lb2" "$backends"; do
    del_ns "$ns"
  done
}

show_logs() {
  local f
  for f in "$work/$scenario"-*.log "$work/$scenario"-client.*; do
    [ -s "$f" ] || continue
    echo "--- $f (tail)"
    tail -n 30 "$f"
  done
}

# run_case kill|drain: a fresh pair, traffic, the fault, the VIP moving, traffic after.
# Sets case_failed and case_gap_ms.
run_case() {
  kind=$1
  runs=$((runs + 1))
  scenario=$kind$runs
  start_pair
  rm -f "$work/$scenario-stop"
  ip netns exec "$client" "$PYTHON" tests/ha/client.py --host "$VIP" --port "$PORT" \
    --progress "$work/$scenario-progress" --stop "$work/$scenario-stop" --max-seconds 60 \
    --timeout 1 \
    >"$work/$scenario-client.json" 2>"$work/$scenario-client.err" &
  local client_pid=$!
  case_pids+=("$client_pid")
  all_pids+=("$client_pid")
  wait_until 10 "the client's first 100 responses" progress_at_least 100

  local t0
  t0=$(now_ms)
  if [ "$kind" = kill ]; then
    kill -KILL "$weir_lb1"
  else
    kill -TERM "$weir_lb1"
  fi
  wait_until 15 "lb2 to take the VIP" holds_vip "$lb2"
  local moved_ms=$(($(now_ms) - t0))
  wait_until 5 "lb1 to give the VIP up" not_holds_vip "$lb1"
  wait_until 5 "lb1 in FAULT" in_state lb1 FAULT
  local weir_rc=0
  if [ "$kind" = drain ]; then
    wait_until 30 "the draining weir to exit" exited "$weir_lb1"
    wait "$weir_lb1" || weir_rc=$?
    echo "$kind: weir on lb1 exited $weir_rc after $(($(now_ms) - t0)) ms"
  fi
  echo "$kind: VIP on lb2 $moved_ms ms after the signal"
  # Traffic after the move, on the new master.
  local seen
  seen=$(progress)
  wait_until 10 "100 responses from the new master" progress_at_least $((seen + 100))
  way_back
  seen=$(progress)
  wait_until 10 "100 responses after lb1 came back" progress_at_least $((seen + 100))
  touch "$work/$scenario-stop"
  wait_until 10 "the client to finish" exited "$client_pid"
  wait "$client_pid"

  read -r case_requests case_failed case_reset case_gap_ms case_retried < <("$PYTHON" - "$work/$scenario-client.json" <<'EOF'
import json, sys
workers = [json.loads(line) for line in open(sys.argv[1])]
print(sum(w["requests"] for w in workers), sum(w["failed"] for w in workers),
      sum(w["reset"] for w in workers),
      max(w["longest_gap_ms"] for w in workers if w["gap_counts"]),
      sum(w["retried"] for w in workers))
EOF
  )
  sed "s/^/$kind: client /" "$work/$scenario-client.json"
  # The workers whose resets are excused (busy ones: an exchange can be in progress).
  case_workers=$(grep -c '"gap_counts": true' "$work/$scenario-client.json")
  echo "$kind: $case_requests requests, $case_failed failed, $case_reset reset, $case_retried retried (reused connection closed before the request was read), longest gap $case_gap_ms ms"
  if [ "$kind" = drain ] && [ "$weir_rc" != 0 ]; then
    echo "drain: weir exited $weir_rc, not 0" >&2
    case_failed=$((case_failed + 1))
  fi
  if [ "$back_moved" != 0 ]; then
    echo "$kind: the VIP moved back to lb1 when its weir returned (nopreempt must keep it on lb2)" >&2
    case_failed=$((case_failed + 1))
  fi
  stop_pair
}

echo "== vrrp failover: weir $("$WEIR_BIN" --version), $("$KEEPALIVED" --version 2>&1 | sed -n 1p)"
status=0
kill_gap_ms=0 kill_failed=0 kill_reset=0 drain_gap_ms=0 drain_failed=0 drain_reset=0 max=0
for c in $HA_CASES; do
  run_case "$c"
  [ "$case_gap_ms" -gt "$max" ] && max=$case_gap_ms
  if [ "$c" = kill ]; then
    [ "$case_gap_ms" -gt "$kill_gap_ms" ] && kill_gap_ms=$case_gap_ms
    kill_failed=$((kill_failed + case_failed)) kill_reset=$((kill_reset + case_reset))
    if [ "$case_gap_ms" -ge "$KILL_TARGET_MS" ]; then
      echo "kill: interruption $case_gap_ms ms misses the target (< $KILL_TARGET_MS ms)" >&2
      status=1
    fi
  else
    [ "$case_gap_ms" -gt "$drain_gap_ms" ] && drain_gap_ms=$case_gap_ms
    drain_failed=$((drain_failed + case_failed)) drain_reset=$((drain_reset + case_reset))
    if [ "$case_failed" -ne 0 ]; then
      echo "drain: $case_failed failed requests miss the target (0)" >&2
      status=1
    fi
    # A reset is what the VIP moving does to a connection in progress at that instant:
    # one per client at most. More would be something else resetting connections.
    if [ "$case_reset" -gt "$case_workers" ]; then
      echo "drain: $case_reset connections reset, more than the $case_workers clients could have had in progress when the VIP moved" >&2
      status=1
    fi
  fi
done

echo "kill:  $kill_failed failed requests, $kill_reset reset, longest gap $kill_gap_ms ms (target < $KILL_TARGET_MS ms)"
echo "drain: $drain_failed failed requests (target 0), $drain_reset reset (at most 1 per client per move), longest gap $drain_gap_ms ms"
echo "max interruption: $max ms"
exit $status
