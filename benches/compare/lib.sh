# shellcheck shell=bash disable=SC2034  # sets variables its callers read
# Shared by the benches/compare/ scripts (sourced, never run on its own): the temp dir and
# the clean-up trap, free loopback ports, waiting for a port, CPU time of a process from
# /proc, medians, the nginx backend and the test certificate. See benches/README.md.

# Settings: each NAME=VALUE given sets NAME to VALUE unless the caller's environment
# already gives it a non-empty value (`defaults ROUNDS=3 DURATION=10`).
defaults() {
  local kv name
  for kv in "$@"; do
    name=${kv%%=*}
    [ -n "${!name:-}" ] || printf -v "$name" '%s' "${kv#*=}"
  done
}

# Exit 2 naming the first missing tool; the install lines are in benches/README.md.
need() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "missing $tool (see benches/README.md for the install lines)" >&2; exit 2; }
  done
}

need_two_cpus() {
  [ "$(nproc)" -ge 2 ] || { echo "needs 2 CPUs (proxy on CPU 1, load and backend on CPU 0)" >&2; exit 2; }
}

# Sets WEIR_BIN: the caller's, or a fresh release build of this checkout.
weir_bin() {
  WEIR_BIN=${WEIR_BIN:-}
  if [ -z "$WEIR_BIN" ]; then cargo build --release -q -p weir; WEIR_BIN=./target/release/weir; fi
  [ -x "$WEIR_BIN" ] || { echo "WEIR_BIN=$WEIR_BIN is not an executable" >&2; exit 2; }
}

# Sets FIXED_RATE_BIN: the caller's, or a release build of benches/src/bin/fixed-rate.rs.
fixed_rate_bin() {
  FIXED_RATE_BIN=${FIXED_RATE_BIN:-}
  if [ -z "$FIXED_RATE_BIN" ]; then
    cargo build --release -q -p weir-benches --bin fixed-rate
    FIXED_RATE_BIN=${CARGO_TARGET_DIR:-./target}/release/fixed-rate
  fi
  [ -x "$FIXED_RATE_BIN" ] || { echo "FIXED_RATE_BIN=$FIXED_RATE_BIN is not an executable" >&2; exit 2; }
}

# A private temp dir ($work) and the list of processes this script started ($pids): the
# EXIT trap stops exactly those (by PID) and removes the dir, on success, error or ^C.
work=$(mktemp -d)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Runs "$@" in the background and records its PID; the caller reads it from $!.
spawn() {
  "$@" &
  pids+=("$!")
}

# Stops one process this script spawned and waits for it.
stop() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# Prints N distinct free loopback ports, one a line (all bound at once, then released).
free_ports() {
  python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
for s in socks:
    print(s.getsockname()[1])
PY
}

# Waits until host:port accepts a connection (up to $2 seconds, default 10).
wait_port() {
  local i tries=$(( ${2:-10} * 20 ))
  for (( i = 0; i < tries; i++ )); do
    (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "port $1 never opened" >&2
  exit 1
}

hz=$(getconf CLK_TCK)

# "user system" clock ticks used so far by a process and its children (nginx's worker),
# all threads included (fields 14 and 15 of /proc/PID/stat).
cpu_ticks() {
  local p u=0 s=0 f kids
  mapfile -t kids < <(pgrep -P "$1" || true)
  for p in "$1" "${kids[@]}"; do
    [ -r "/proc/$p/stat" ] || continue
    read -r -a f < <(sed 's/^.*) //' "/proc/$p/stat")
    u=$(( u + f[11] )); s=$(( s + f[12] ))
  done
  echo "$u $s"
}

# Median of the numbers given as arguments.
median() {
  printf '%s\n' "$@" | sort -g |
    awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# Smallest of the numbers given as arguments.
lowest() { printf '%s\n' "$@" | sort -g | head -1; }

# Writes DIR/nginx.conf: one worker in the foreground, its pid file in DIR, no error
# log, NOFILE descriptors and CONNS connections, then the rest of the file from stdin
# (the `http` or `stream` block). `load_module` lines go in the optional 4th argument.
nginx_conf() {
  mkdir -p "$1"
  {
    [ -z "${4:-}" ] || echo "$4"
    echo "worker_processes 1; daemon off; pid $1/nginx.pid; error_log /dev/null crit;"
    [ -z "$2" ] || echo "worker_rlimit_nofile $2;"
    echo "events { worker_connections $3; }"
    cat
  } > "$1/nginx.conf"
}

# Writes $work/haproxy.cfg: one thread, MAXCONN ($1) connections, MODE ($2) tcp or
# http, a 2 s connect timeout and IDLE ($3) client and server timeouts, then the rest of
# the file from stdin (further `defaults` lines, the frontend and the backend).
haproxy_cfg() {
  {
    printf 'global\n  nbthread 1\n  maxconn %s\ndefaults\n  mode %s\n' "$1" "$2"
    printf '  timeout connect 2s\n  timeout client %s\n  timeout server %s\n' "$3" "$3"
    cat
  } > "$work/haproxy.cfg"
}

# Starts the backend: one nginx worker on CPU $2 answering "hello, world\n" on $1.
start_backend() {
  nginx_conf "$work/backend" 20000 10000 <<CONF
http { access_log off; keepalive_requests 1000000;
  server { listen $1 backlog=4096; location / { return 200 "hello, world\n"; } } }
CONF
  spawn taskset -c "$2" nginx -p "$work/backend" -c "$work/backend/nginx.conf"
  BACKEND_PID=$!
  wait_port "$1"
}

# Moves the backend (nginx's master and its worker) to CPU $1.
pin_backend() {
  local p kids
  mapfile -t kids < <(pgrep -P "$BACKEND_PID" || true)
  for p in "$BACKEND_PID" "${kids[@]}"; do taskset -a -p -c "$1" "$p" >/dev/null; done
}

# Writes a self-signed ECDSA P-256 certificate for localhost/127.0.0.1 into $work/tls:
# site.pem + site.key (weir, nginx) and site.both.pem, both in one file (HAProxy's `crt`).
make_cert() {
  mkdir -p "$work/tls"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$work/tls/site.key" -out "$work/tls/site.pem" 2>/dev/null
  cat "$work/tls/site.pem" "$work/tls/site.key" > "$work/tls/site.both.pem"
}

# https://localhost:PORT/ of proxy $1's TLS port: clients send SNI "localhost" (an IP
# address is no valid SNI, and rustls logs a warning for each one).
tls_url() { echo "https://localhost:${TLS[$1]#*:}/"; }

# Picks the ports and writes the three proxies' configs, each with the same three entry
# points in front of the backend $BACKEND: H1[name] (HTTP/1.1; weir's also takes h2c),
# H2C[name] (HTTP/2 with prior knowledge), TLS[name] (ALPN h2 and http/1.1, the
# certificate from make_cert). HAProxy and nginx are configured as a keep-alive reverse
# proxy the way their manuals show; weir with its defaults, except that it too keeps a
# connection for any number of requests (HAProxy has no such cap, nginx gets 1,000,000;
# h2load would not reconnect after weir's default GOAWAY at 1,000).
declare -A H1 H2C TLS PID
write_proxy_configs() {
  local ports
  mapfile -t ports < <(free_ports 10)
  BACKEND=127.0.0.1:${ports[0]}
  ADMIN=127.0.0.1:${ports[1]}
  H1[weir]=127.0.0.1:${ports[2]}; H2C[weir]=${H1[weir]}; TLS[weir]=127.0.0.1:${ports[3]}
  H1[haproxy]=127.0.0.1:${ports[4]}; H2C[haproxy]=127.0.0.1:${ports[5]}; TLS[haproxy]=127.0.0.1:${ports[6]}
  H1[nginx]=127.0.0.1:${ports[7]}; H2C[nginx]=127.0.0.1:${ports[8]}; TLS[nginx]=127.0.0.1:${ports[9]}
  make_cert
  cat > "$work/weir.yaml" <<CONF
admin: { listen: $ADMIN }
listeners:
  - { name: bench, listen: ${H1[weir]}, max_requests_per_connection: 0, routes: [ { pool: app } ] }
  - name: bench-tls
    listen: ${TLS[weir]}
    max_requests_per_connection: 0
    tls: { certificates: [ { cert: $work/tls/site.pem, key: $work/tls/site.key } ] }
    routes: [ { pool: app } ]
pools:
  app: { backends: [ { address: $BACKEND } ] }
CONF
  haproxy_cfg 4000 http 60s <<CONF
  option http-keep-alive
frontend bench
  bind ${H1[haproxy]}
  bind ${H2C[haproxy]} proto h2
  bind ${TLS[haproxy]} ssl crt $work/tls/site.both.pem alpn h2,http/1.1
  default_backend app
backend app
  http-reuse always
  server s1 $BACKEND
CONF
  nginx_conf "$work/proxy" 20000 10000 <<CONF
http { access_log off; keepalive_requests 1000000;
  upstream app { server $BACKEND; keepalive 128; }
  server { listen ${H1[nginx]}; listen ${H2C[nginx]} http2; listen ${TLS[nginx]} ssl http2;
    ssl_certificate $work/tls/site.pem; ssl_certificate_key $work/tls/site.key;
    location / { proxy_pass http://app; proxy_http_version 1.1;
      proxy_set_header Connection ""; proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for; } } }
CONF
}

# Starts the backend on CPU 0 and the three proxies, each with one worker thread pinned to
# CPU 1; PID[name] is the process whose CPU time is measured.
start_all() {
  write_proxy_configs
  start_backend "$BACKEND" 0
  spawn env WEIR_LOG=warn taskset -c 1 "$WEIR_BIN" --threads 1 run -c "$work/weir.yaml"; PID[weir]=$!
  spawn taskset -c 1 haproxy -f "$work/haproxy.cfg" -db; PID[haproxy]=$!
  spawn taskset -c 1 nginx -p "$work/proxy" -c "$work/proxy/nginx.conf"; PID[nginx]=$!
  local n
  for n in weir haproxy nginx; do wait_port "${H1[$n]}"; wait_port "${H2C[$n]}"; wait_port "${TLS[$n]}"; done
}

# Runs "$@" (a load generator) while measuring the proxy process $1 (a PID):
# sets CPU_U and CPU_S (seconds of user and system time it used) and OUT (the tool's
# stdout).
measure_cpu() {
  local pid=$1 u0 s0 u1 s1
  shift
  read -r u0 s0 < <(cpu_ticks "$pid")
  OUT=$("$@")
  read -r u1 s1 < <(cpu_ticks "$pid")
  CPU_U=$(awk -v a="$u0" -v b="$u1" -v hz="$hz" 'BEGIN { print (b - a) / hz }')
  CPU_S=$(awk -v a="$s0" -v b="$s1" -v hz="$hz" 'BEGIN { print (b - a) / hz }')
}

# Proxy order for round $1: rotated each round, so no proxy always goes first or last.
round_order() {
  local names=(weir haproxy nginx) i=$(( $1 % 3 ))
  echo "${names[*]:i} ${names[*]:0:i}"
}

# Runs "$@" (a server listening on $2) under callgrind as $1: the caller's `load N ADDR`
# sends WARMUP requests, the counters are zeroed (`callgrind_control -z`), `load` sends
# REQUESTS, the counters are dumped (`-d`). Sets IR[$1] (the caller's `declare -A IR`)
# to the dump's total and leaves the dump as $work/$1.dump.
callgrind_count() {
  local name=$1 addr=$2 pid dump
  shift 2
  spawn valgrind --tool=callgrind --callgrind-out-file="$work/$name.cg" "$@" 2>"$work/$name.valgrind.log"
  pid=$!
  wait_port "$addr" 120
  load "$WARMUP" "$addr"
  callgrind_control -z "$pid" >/dev/null 2>&1
  load "$REQUESTS" "$addr"
  callgrind_control -d "$pid" >/dev/null 2>&1
  dump=$(find "$work" -maxdepth 1 -name "$name.cg.*" | sort | head -1)
  [ -n "$dump" ] || { echo "$name: no callgrind dump in $work" >&2; exit 1; }
  IR[$name]=$(awk '/^(summary|totals):/ { print $2; exit }' "$dump")
  mv "$dump" "$work/$name.dump"
  stop "$pid"
}
