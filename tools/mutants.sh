#!/bin/bash
# Mutation testing of the protocol core with cargo-mutants (issue 17 item 6).
#
#   tools/mutants.sh [OUT]               # pass 1: every mutant of pala-core against the
#                                        # core's own tests (about 1000; ~1 h here)
#   tools/mutants.sh --recheck [OUT]     # pass 1's survivors (missed or timed out, so
#                                        # far: pass 1 may still run) against the core's
#                                        # tests as they are now; results in OUT-recheck/
#   tools/mutants.sh --sim [OUT]         # pass 2: what is left of them, against a
#                                        # bounded sweep; results in OUT-sim/
#   tools/mutants.sh --shard 3/30 [OUT]  # one slice of pass 1, to spread it over sessions
#   tools/mutants.sh --list              # what would be mutated
#
# OUT (default mutants-run/) holds mutants.out/: outcomes.json, caught.txt, missed.txt,
# timeout.txt, unviable.txt. --recheck and --sim mark every mutant that is not a survivor
# of pass 1, or that a recheck (or an earlier --sim) caught, as done (cargo-mutants
# --iterate reads previously_caught.txt) and test the rest; so both can run while pass 1
# is still going, and again later for the survivors it has found since. --sim runs
# crates/pala-sim/tests/bounded_sweep.rs: the swarm sweep's first PALA_BOUNDED_SWEEP_SEEDS
# seeds (default 400) and a quarter as many with committee changes, every checker on.
# Settings are in .cargo/mutants.toml. MUTANTS_FLAGS is passed to cargo-mutants: with
# --in-place in a worktree kept for it, repeated small runs start warm instead of
# building a fresh copy of the tree each time.
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
  dir="$out-$mode"
  mkdir -p "$dir/mutants.out" "$out-recheck" "$out-sim"
  touch "$out-recheck/caught-all.txt" "$out-sim/caught-all.txt"
  # Each run's caught.txt holds only its own catches: keep them all in caught-all.txt.
  for d in "$out-recheck" "$out-sim"; do
    if [ -f "$d/mutants.out/caught.txt" ]; then
      sort -u -o "$d/caught-all.txt" "$d/mutants.out/caught.txt" "$d/caught-all.txt"
    fi
  done
  # Pass 1's survivors are matched by file and description without line and column, so
  # that tests and fixes added to the core since pass 1 (lines moved) lose none; what a
  # recheck (and, for --sim, an earlier --sim) caught is matched exactly.
  survivors="$(mktemp)"
  cat "$pass1/missed.txt" "$pass1/timeout.txt" 2>/dev/null \
    | sed -E 's/^([^:]+):[0-9]+:[0-9]+: /\1: /' | sort -u >"$survivors"
  done_lists=("$out-recheck/caught-all.txt")
  [ "$mode" = sim ] && done_lists+=("$out-sim/caught-all.txt")
  cargo mutants --list -p pala-core \
    | awk 'NR == FNR { s[$0] = 1; next } { k = $0; sub(/:[0-9]+:[0-9]+: /, ": ", k); if (!(k in s)) print }' "$survivors" - \
    | cat - "${done_lists[@]}" | sort -u >"$dir/mutants.out/previously_caught.txt"
  rm -f "$survivors"
  if [ "$mode" = recheck ]; then
    exec nice cargo mutants -p pala-core --iterate -o "$dir" ${MUTANTS_FLAGS:---jobs 1}
  fi
  export PALA_BOUNDED_SWEEP_SEEDS="${PALA_BOUNDED_SWEEP_SEEDS:-400}"
  exec nice cargo mutants -p pala-core --iterate -o "$dir" ${MUTANTS_FLAGS:---jobs 1} \
    --test-package pala-sim -- --test bounded_sweep
fi
exec nice cargo mutants -p pala-core --jobs 1 -o "$out" "${shard[@]}"
