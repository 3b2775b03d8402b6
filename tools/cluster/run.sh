#!/usr/bin/env bash
# Runs a loopback testnet of separate `pala node` processes until Ctrl-C, then stops every
# node with SIGTERM (clean shutdown). Logs and data stay in DIR.
#   tools/cluster/run.sh [DIR] [VOTERS] [PROPOSERS]
# Needs a built binary: cargo build --release (or set PALA=/path/to/pala).
set -euo pipefail
DIR=${1:-./testnet}
VOTERS=${2:-4}
PROPOSERS=${3:-2}
PALA=${PALA:-$(dirname "$0")/../../target/release/pala}
[ -x "$PALA" ] || { echo "no pala binary at $PALA: run cargo build --release or set PALA" >&2; exit 1; }
if [ ! -f "$DIR/genesis.toml" ]; then
  "$PALA" testnet --validators "$VOTERS" --proposers "$PROPOSERS" --out "$DIR" --fast
fi
pids=()
for cfg in "$DIR"/proposer*.toml "$DIR"/voter*.toml; do
  name=$(basename "$cfg" .toml)
  "$PALA" node --config "$cfg" 2>"$DIR/$name.log" &
  pids+=($!)
  echo "started $name (pid $!), log $DIR/$name.log"
done
stop() {
  echo "stopping ${#pids[@]} nodes"
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  exit 0
}
trap stop INT TERM
http=$(grep -h '^listen' "$DIR"/proposer0.toml | tail -1 | cut -d'"' -f2)
while true; do
  sleep 2
  curl -s "http://$http/status" && echo || echo "waiting for $http"
done
