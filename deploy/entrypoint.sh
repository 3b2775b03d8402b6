#!/usr/bin/env bash
# Entrypoint of the pala container image (deploy/Dockerfile). It also runs outside a
# container: deploy/validate.sh starts a node with it against a temporary directory.
#
# Commands:
#   node (default)        prepare, then exec `pala node --config "$PALA_CONFIG"`
#   init-testnet ARGS...  `pala testnet ARGS --out "$PALA_TESTNET_DIR"`, unless a genesis
#                         is there already (the compose file's one-shot `init` service)
#   healthcheck           exit 0 when GET /healthz on $PALA_HEALTH_ADDR answers 200
#   anything else         exec pala "$@" (keygen, inspect, testnet, --help, ...)
#
# Environment (none of these names starts with a config section, so `pala node` does not
# read them as PALA_<SECTION>_<KEY> overrides):
#   PALA_BIN            the pala binary (default: `pala` on PATH)
#   PALA_CONFIG         the node's config file (default /etc/pala/node.toml)
#   PALA_NODE_DATA_DIR  the data directory (default /var/lib/pala); exported, so it is
#                       also the config override of node.data_dir
#   PALA_KEY_SOURCE     a key file to install before the start, e.g. a Kubernetes Secret
#                       mounted group-readable; copied with mode 0600 to
#                       PALA_NODE_KEY_FILE (default /run/pala/node.key), since the node
#                       refuses a key that others can read
#   PALA_INIT           what to create on the first start: `keygen` (a key at
#                       PALA_NODE_KEY_FILE when there is none, for network
#                       PALA_KEYGEN_NETWORK_ID (default 1); its identity line is
#                       printed for the genesis file) or `testnet` (a one-machine testnet
#                       in PALA_TESTNET_DIR, whose node PALA_TESTNET_NODE then runs)
#   PALA_TESTNET_DIR    where init-testnet and PALA_INIT=testnet write (default
#                       $PALA_NODE_DATA_DIR/testnet)
#   PALA_TESTNET_ARGS   `pala testnet` options for PALA_INIT=testnet (default
#                       "--proposers 1 --validators 1 --fast")
#   PALA_TESTNET_NODE   the node of that testnet to run (default proposer0)
#   PALA_HEALTH_ADDR    ip:port of the node's API for `healthcheck` (default 127.0.0.1:8100)
set -euo pipefail

# Keys and generated configs must not be readable by others.
umask 077

die() {
    echo "pala-entrypoint: $*" >&2
    exit 1
}

log() {
    echo "pala-entrypoint: $*" >&2
}

PALA_BIN=${PALA_BIN:-pala}
command -v "$PALA_BIN" >/dev/null 2>&1 || die "the pala binary \`$PALA_BIN\` was not found (set PALA_BIN)"

data_dir=${PALA_NODE_DATA_DIR:-/var/lib/pala}
testnet_dir=${PALA_TESTNET_DIR:-$data_dir/testnet}

# A read-only or foreign-owned volume would otherwise fail deep inside storage start-up.
check_data_dir() {
    mkdir -p "$data_dir" 2>/dev/null || die "cannot create the data directory $data_dir"
    local probe="$data_dir/.pala-write-probe.$$"
    if ! : >"$probe" 2>/dev/null; then
        die "the data directory $data_dir is not writable by uid $(id -u) (gid $(id -g)): \
give the volume to this user (docker: chown -R $(id -u):$(id -g) on the volume; \
Kubernetes: securityContext.fsGroup: $(id -g))"
    fi
    rm -f "$probe"
    export PALA_NODE_DATA_DIR=$data_dir
}

init_testnet() {
    if [[ -f "$testnet_dir/genesis.toml" ]]; then
        log "testnet in $testnet_dir exists; not rewritten"
        return 0
    fi
    mkdir -p "$(dirname "$testnet_dir")"
    # Written next to the target and renamed, so a half-written testnet is never taken
    # for a complete one after a crash.
    local tmp="$testnet_dir.tmp.$$"
    rm -rf "$tmp"
    "$PALA_BIN" testnet "$@" --out "$tmp"
    mv "$tmp" "$testnet_dir"
    log "testnet written to $testnet_dir"
}

install_key() {
    local dest=${PALA_NODE_KEY_FILE:-/run/pala/node.key}
    if [[ -n "${PALA_KEY_SOURCE:-}" ]]; then
        [[ -r "$PALA_KEY_SOURCE" ]] || die "PALA_KEY_SOURCE=$PALA_KEY_SOURCE is not readable by uid $(id -u)"
        mkdir -p "$(dirname "$dest")"
        install -m 0600 "$PALA_KEY_SOURCE" "$dest"
        export PALA_NODE_KEY_FILE=$dest
    elif [[ "${PALA_INIT:-}" == keygen ]]; then
        if [[ ! -f "$dest" ]]; then
            mkdir -p "$(dirname "$dest")"
            log "no key at $dest: generating one; put this identity line into the genesis file:"
            "$PALA_BIN" keygen --out "$dest" --network-id "${PALA_KEYGEN_NETWORK_ID:-1}"
        fi
        export PALA_NODE_KEY_FILE=$dest
    fi
}

healthcheck() {
    local addr=${PALA_HEALTH_ADDR:-127.0.0.1:8100}
    local host=${addr%:*} port=${addr##*:} status
    # bash's /dev/tcp: the runtime image needs no HTTP client for its HEALTHCHECK.
    exec 3<>"/dev/tcp/$host/$port" || exit 1
    printf 'GET /healthz HTTP/1.0\r\nHost: %s\r\n\r\n' "$addr" >&3
    IFS= read -r -t 5 status <&3 || exit 1
    exec 3<&-
    [[ "$status" == *" 200 "* ]]
}

cmd=${1:-node}
[[ $# -gt 0 ]] && shift
case "$cmd" in
node)
    check_data_dir
    config=${PALA_CONFIG:-/etc/pala/node.toml}
    if [[ "${PALA_INIT:-}" == testnet ]]; then
        # shellcheck disable=SC2086 # the options are a word list on purpose
        init_testnet ${PALA_TESTNET_ARGS:---proposers 1 --validators 1 --fast}
        config="$testnet_dir/${PALA_TESTNET_NODE:-proposer0}.toml"
    fi
    install_key
    [[ -f "$config" ]] || die "no config at $config (set PALA_CONFIG, or PALA_INIT=testnet)"
    log "starting: $PALA_BIN node --config $config (data in $data_dir)"
    exec "$PALA_BIN" node --config "$config" "$@"
    ;;
init-testnet)
    init_testnet "$@"
    ;;
healthcheck)
    healthcheck
    ;;
*)
    exec "$PALA_BIN" "$cmd" "$@"
    ;;
esac
