#!/usr/bin/env bash
# Records a CPU flamegraph of any command (or of a running process) with perf + inferno.
#
#   tools/flamegraph.sh NAME -- COMMAND [ARGS...]      profile COMMAND until it exits
#   tools/flamegraph.sh NAME --pid PID [SECONDS]       attach to PID for SECONDS (default 10)
#
# Writes perf/flamegraphs/NAME.svg and NAME.folded.gz (the collapsed stacks, to diff two
# runs with inferno-diff-folded after gunzip). Environment:
#   FREQ   sampling frequency in Hz (default 499: cheap enough for the 2-core machine)
#   STACK  bytes of stack copied per sample for DWARF unwinding (default 16384)
#   OUT    output directory (default perf/flamegraphs next to this script)
#
# Release builds carry line tables (profile.release debug = 1), which DWARF unwinding
# needs. Installs perf (apt) and inferno (cargo) when missing.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
out="${OUT:-$here/../perf/flamegraphs}"
freq="${FREQ:-499}"
stack="${STACK:-16384}"

usage() { sed -n '2,14p' "$0" >&2; exit 2; }
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
  *) usage ;;
esac

perf script -i "$data" 2>/dev/null | inferno-collapse-perf > "$out/$name.folded"
inferno-flamegraph --title "$name" < "$out/$name.folded" > "$out/$name.svg"
stacks="$(wc -l < "$out/$name.folded")"
gzip -f "$out/$name.folded"
echo "flamegraph: $out/$name.svg ($stacks distinct stacks; collapsed stacks in $name.folded.gz)"
