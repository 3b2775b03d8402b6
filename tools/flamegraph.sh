#!/usr/bin/env bash
# Records a CPU flamegraph of any command (or of a running process) with perf + inferno.
#
#   tools/flamegraph.sh NAME -- COMMAND [ARGS...]      profile COMMAND until it exits
#   tools/flamegraph.sh NAME --pid PID [SECONDS]       attach to PID for SECONDS (default 10)
#   tools/flamegraph.sh NAME --cluster NODE [SECONDS] [BENCH-CLUSTER-OPTIONS...]
#       start `pala bench cluster` (real processes, TLS, storage, tx load) and profile
#       its node NODE (proposer0 = the primary, proposer1, voter0, ...) for SECONDS
#       (default 15) once the cluster is up; e.g.
#       tools/flamegraph.sh cluster-primary --cluster proposer0 15 --rate 10000 --block-wait-ms 5
#
# Writes perf/flamegraphs/NAME.svg and NAME.folded.gz (the collapsed stacks, to diff two
# runs with inferno-diff-folded after gunzip). Environment:
#   FREQ   sampling frequency in Hz (default 499: cheap enough for the 2-core machine)
#   STACK  bytes of stack copied per sample for DWARF unwinding (default 16384)
#   OUT    output directory (default perf/flamegraphs next to this script)
#   PALA   the pala binary for --cluster (default target/release/pala, built if missing)
#
# Release builds carry line tables (profile.release debug = 1), which DWARF unwinding
# needs. Installs perf (apt) and inferno (cargo) when missing.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
out="${OUT:-$here/../perf/flamegraphs}"
freq="${FREQ:-499}"
stack="${STACK:-16384}"

usage() { sed -n '2,20p' "$0" >&2; exit 2; }
[ $# -ge 2 ] || usage
name="$1"; shift

if ! command -v perf >/dev/null 2>&1; then
  echo "installing perf (linux-perf)" >&2
  apt-get update -qq && apt-get install -y -qq linux-perf >/dev/null
fi
export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v inferno-flamegraph >/dev/null 2>&1; then
  echo "installing inferno (cargo install inferno)" >&2
  cargo install --locked inferno >/dev/null
fi

mkdir -p "$out"
data="$(mktemp /tmp/flamegraph.XXXXXX.perf.data)"
trap 'rm -f "$data"' EXIT

case "$1" in
  --)
    shift; [ $# -ge 1 ] || usage
    perf record -F "$freq" --call-graph "dwarf,$stack" -o "$data" -- "$@"
    ;;
  --pid)
    pid="$2"; secs="${3:-10}"
    perf record -F "$freq" --call-graph "dwarf,$stack" -o "$data" -p "$pid" -- sleep "$secs"
    ;;
  --cluster)
    node="${2:-}"; [ -n "$node" ] || usage
    shift 2
    secs=15
    if [[ "${1:-}" =~ ^[0-9]+$ ]]; then secs="$1"; shift; fi
    pala="${PALA:-$here/../target/release/pala}"
    if [ ! -x "$pala" ]; then
      (cd "$here/.." && cargo build --release --bin pala)
    fi
    log="$(mktemp /tmp/flamegraph-cluster.XXXXXX.log)"
    # The load lasts the profile plus margins for start-up and the end of the window.
    "$pala" bench cluster --duration $((secs + 6)) --no-save "$@" >"$log" 2>&1 &
    bench=$!
    trap 'rm -f "$data"; kill "$bench" 2>/dev/null || true' EXIT
    for _ in $(seq 1 600); do
      grep -q " up in " "$log" && break
      kill -0 "$bench" 2>/dev/null || { cat "$log" >&2; echo "pala bench cluster ended early" >&2; exit 1; }
      sleep 0.1
    done
    pid="$(pgrep -f "node --config .*/$node\.toml" | head -n1 || true)"
    [ -n "$pid" ] || { cat "$log" >&2; echo "no node process named $node" >&2; exit 1; }
    sleep 2
    perf record -F "$freq" --call-graph "dwarf,$stack" -o "$data" -p "$pid" -- sleep "$secs"
    wait "$bench" || true
    sed -n '/^summary/,$p' "$log"
    rm -f "$log"
    ;;
  *) usage ;;
esac

perf script -i "$data" 2>/dev/null | inferno-collapse-perf > "$out/$name.folded"
inferno-flamegraph --title "$name" < "$out/$name.folded" > "$out/$name.svg"
stacks="$(wc -l < "$out/$name.folded")"
gzip -f "$out/$name.folded"
echo "flamegraph: $out/$name.svg ($stacks distinct stacks; collapsed stacks in $name.folded.gz)"
