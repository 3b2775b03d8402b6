#!/bin/bash
# Mutation testing of the protocol core with cargo-mutants (issue 17 item 6).
#
#   tools/mutants.sh [OUT]               # pass 1: every mutant of pala-core against the
#                                        # core's own tests (about 1000; ~1 h here)
#   tools/mutants.sh --sim [OUT]         # pass 2: only pass 1's survivors (missed and
#                                        # timed out, so far: pass 1 may still run),
#                                        # against a bounded sweep; results in OUT-sim/
#   tools/mutants.sh --recheck [OUT]     # pass 1's survivors against the core's tests as
#                                        # they are now (tests added since); OUT-recheck/
#   tools/mutants.sh --shard 3/30 [OUT]  # one slice of pass 1, to spread it over sessions
#   tools/mutants.sh --list              # what would be mutated
#
# OUT (default mutants-run/) holds mutants.out/: outcomes.json, caught.txt, missed.txt,
# timeout.txt, unviable.txt. Pass 2 marks every mutant that is not a survivor of pass 1
# as done (cargo-mutants --iterate reads OUT-sim/mutants.out/previously_caught.txt) and
# runs the rest against crates/pala-sim/tests/bounded_sweep.rs: the swarm sweep's first
# PALA_BOUNDED_SWEEP_SEEDS seeds (default 400) and a quarter as many with committee
# changes, every checker on. The core's tests are not run again: pass 1 ran them.
# Rerunning --sim tests only the survivors it has not tested yet. Settings are in
# .cargo/mutants.toml.
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
  --recheck) mode=recheck; shift ;;
  --shard) shard=(--shard "$2"); shift 2 ;;
esac
out="${1:-mutants-run}"
mkdir -p "$out"
if [ "$mode" != core ]; then
  pass1="$out/mutants.out"
  if [ ! -f "$pass1/missed.txt" ]; then
    echo "error: $pass1/missed.txt not found: run pass 1 first (tools/mutants.sh $out)" >&2
    exit 2
  fi
  sim="$out-$mode"
  mkdir -p "$sim/mutants.out"
  survivors="$(mktemp)"
  cat "$pass1/missed.txt" "$pass1/timeout.txt" 2>/dev/null | sort -u >"$survivors"
  # What earlier pass-2 runs caught is kept in caught-all.txt (each run's caught.txt
  # holds only its own); everything that is not a survivor of pass 1 counts as done.
  touch "$sim/caught-all.txt"
  cat "$sim/mutants.out/caught.txt" 2>/dev/null | sort -u -o "$sim/caught-all.txt" - "$sim/caught-all.txt"
  cargo mutants --list -p pala-core | sort -u | comm -23 - "$survivors" \
    | sort -u - "$sim/caught-all.txt" >"$sim/mutants.out/previously_caught.txt"
  echo "$mode: $(wc -l <"$survivors") survivors of pass 1 (those not caught by an earlier pass 2 run are tested)" >&2
  rm -f "$survivors"
  if [ "$mode" = recheck ]; then
    exec nice cargo mutants -p pala-core --jobs 1 --iterate -o "$sim"
  fi
  export PALA_BOUNDED_SWEEP_SEEDS="${PALA_BOUNDED_SWEEP_SEEDS:-400}"
  exec nice cargo mutants -p pala-core --jobs 1 --iterate -o "$sim" \
    --test-package pala-sim -- --test bounded_sweep
fi
exec nice cargo mutants -p pala-core --jobs 1 -o "$out" "${shard[@]}"
