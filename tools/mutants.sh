#!/bin/bash
# Mutation testing of the protocol core with cargo-mutants (issue 17 item 6).
#
#   tools/mutants.sh [OUT]               # pass 1: every mutant of pala-core against the
#                                        # core's own tests (about 1000; ~1 h here)
#   tools/mutants.sh --sim [OUT]         # pass 2: only pass 1's survivors (and timeouts),
#                                        # against the core's tests, the simulator's
#                                        # scenario tests and a bounded sweep
#   tools/mutants.sh --shard 3/30 [OUT]  # one slice of pass 1, to spread it over sessions
#   tools/mutants.sh --list              # what would be mutated
#
# OUT (default mutants-run/) holds mutants.out/: outcomes.json, caught.txt, missed.txt,
# timeout.txt, unviable.txt. Pass 2 reads pass 1's caught and unviable lists there
# (cargo-mutants --iterate) and tests only the rest. PALA_BOUNDED_SWEEP_SEEDS sets the
# sweep's size in pass 2 (default 400 plain seeds and a quarter as many with committee
# changes; crates/pala-sim/tests/bounded_sweep.rs). Settings are in .cargo/mutants.toml.
# Every missed mutant must be killed by a new test or explained in perf/mutants.md
# (equivalent, or dead code to delete).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo-mutants >/dev/null; then
  echo "installing cargo-mutants (crates.io)..." >&2
  cargo install cargo-mutants --locked
fi
mode=core
shard=()
case "${1:-}" in
  --list) exec cargo mutants --list -p pala-core ;;
  --sim) mode=sim; shift ;;
  --shard) shard=(--shard "$2"); shift 2 ;;
esac
out="${1:-mutants-run}"
mkdir -p "$out"
if [ "$mode" = sim ]; then
  if [ ! -f "$out/mutants.out/caught.txt" ]; then
    echo "error: $out/mutants.out/caught.txt not found: run pass 1 first (tools/mutants.sh $out)" >&2
    exit 2
  fi
  export PALA_BOUNDED_SWEEP_SEEDS="${PALA_BOUNDED_SWEEP_SEEDS:-400}"
  exec nice cargo mutants -p pala-core --jobs 1 --iterate -o "$out" \
    --test-package pala-core --test-package pala-sim
fi
exec nice cargo mutants -p pala-core --jobs 1 -o "$out" "${shard[@]}"
