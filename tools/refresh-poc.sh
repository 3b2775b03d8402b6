#!/usr/bin/env bash
# Re-runs the `pala bench poc` figures of perf/README.md and redraws the plots.
#
#   tools/refresh-poc.sh [quick|all]      (default: all; quick = sweeps only)
#
# Every run appends a JSON result to perf/results/. About 6 minutes for `all` on 2 cores.
# Run it on a quiet machine: the scenario is latency-bound, and other processes on the
# same cores delay message delivery (see `lateness` in the results).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build --release -p pala --bin pala
cargo build --release -p pala-tools
pala="$CARGO_TARGET_DIR/release/pala"
what="${1:-all}"

echo "== load: $(cat /proc/loadavg)"
# Plots: blocks/s against K (V = 33) and against V (K = 10), D = 10 ms and D = 0.
for d in 10 0; do
  "$pala" bench sweep --over k --delay-ms "$d" --seconds 8
  "$pala" bench sweep --over v --delay-ms "$d" --seconds 8
done
if [ "$what" = all ]; then
  # Flat memory: 60 s at full speed.
  "$pala" bench poc --voters 33 --delay-ms 0 --k 10 --seconds 60
  "$pala" bench poc --voters 100 --delay-ms 0 --k 10 --seconds 60
  # Real BLS.
  "$pala" bench poc --voters 33 --delay-ms 10 --k 10 --seconds 10 --warmup 3 --scheme bls
  "$pala" bench poc --voters 33 --delay-ms 0 --k 10 --seconds 10 --warmup 3 --scheme bls
  "$pala" bench poc --voters 100 --delay-ms 0 --k 10 --seconds 10 --warmup 3 --scheme bls
  # Core and harness without any signature cost.
  "$pala" bench poc --voters 33 --delay-ms 0 --k 10 --seconds 5 --scheme none
  "$pala" bench poc --voters 100 --delay-ms 0 --k 10 --seconds 5 --scheme none
fi
"$CARGO_TARGET_DIR/release/plot" perf/results perf
echo "== load: $(cat /proc/loadavg)"
