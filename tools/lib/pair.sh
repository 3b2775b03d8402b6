# shellcheck shell=bash
# Sourced by the HTTP scripts under tools/: finds the pala binary and starts a `--fast`
# testnet on loopback in a temporary directory, stopped on exit.
#
#   pair_start NAME DEFAULT_P2P_PORT DEFAULT_HTTP_PORT
#       one proposer and one voter
#   testnet_start NAME DEFAULT_P2P_PORT DEFAULT_HTTP_PORT PROPOSERS VOTERS
#       any size; node i (proposers first) serves HTTP on HTTP+i
#
# Sets PALA (target/release/pala, else target/debug/pala, or as given), DIR, P2P, HTTP
# (ports from P2P_PORT / HTTP_PORT when set), NODES (proposer0.., voter0..) and PIDS (in
# the same order). The nodes inherit the environment, so PALA_* overrides apply.
pair_start() {
  testnet_start "$1" "$2" "$3" 1 1
}

testnet_start() {
  local root n i
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  PALA=${PALA:-}
  if [ -z "$PALA" ]; then
    for p in "$root/target/release/pala" "$root/target/debug/pala"; do
      [ -x "$p" ] && { PALA=$p; break; }
    done
  fi
  [ -x "${PALA:-}" ] || { echo "no pala binary: cargo build (or set PALA)" >&2; exit 2; }
  DIR=$(mktemp -d "/tmp/pala-$1.XXXXXX")
  P2P=${P2P_PORT:-$2}
  HTTP=${HTTP_PORT:-$3}
  "$PALA" testnet --validators "$5" --proposers "$4" --out "$DIR" --fast \
    --p2p-port "$P2P" --http-port "$HTTP" >/dev/null
  NODES=()
  for ((i = 0; i < $4; i++)); do NODES+=("proposer$i"); done
  for ((i = 0; i < $5; i++)); do NODES+=("voter$i"); done
  PIDS=()
  trap pair_stop EXIT
  for n in "${NODES[@]}"; do
    "$PALA" node --config "$DIR/$n.toml" 2>"$DIR/$n.log" &
    PIDS+=($!)
  done
}

pair_stop() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
