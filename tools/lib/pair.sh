# shellcheck shell=bash
# Sourced by the HTTP scripts under tools/: finds the pala binary and starts a 1-proposer,
# 1-voter `--fast` testnet on loopback in a temporary directory, stopped on exit.
#
#   pair_start NAME DEFAULT_P2P_PORT DEFAULT_HTTP_PORT
#
# Sets PALA (target/release/pala, else target/debug/pala, or as given), DIR, P2P, HTTP
# (ports from P2P_PORT / HTTP_PORT when set) and PIDS (proposer, voter).
pair_start() {
  local root
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
  "$PALA" testnet --validators 1 --proposers 1 --out "$DIR" --fast \
    --p2p-port "$P2P" --http-port "$HTTP" >/dev/null
  PIDS=()
  trap pair_stop EXIT
  for n in proposer0 voter0; do
    "$PALA" node --config "$DIR/$n.toml" 2>"$DIR/$n.log" &
    PIDS+=($!)
  done
}

pair_stop() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
