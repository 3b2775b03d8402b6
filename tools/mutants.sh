#!/bin/bash
# Mutation testing of the protocol core with cargo-mutants (issue 17 item 6).
#
#   tools/mutants.sh                 # pass 1: every mutant of pala-core not yet tested,
#                                    # against the core's own tests (~1000 in all; hours
#                                    # here, so it resumes where an earlier run stopped)
#   tools/mutants.sh --recheck       # pass 1's survivors against the core's tests as they
#                                    # are now (tests added since pass 1 found them)
#   tools/mutants.sh --sim           # pass 2: what is still left, against a bounded sweep
#   tools/mutants.sh --report        # counts, and the survivors of every pass
#   tools/mutants.sh --shard 3/30    # one slice of pass 1
#   tools/mutants.sh --list          # what would be mutated
#
# The ledger, perf/mutants/ (committed; MUTANTS_LEDGER overrides), holds what every run
# found: pass1-{caught,missed,timeout,unviable}.txt, recheck-caught.txt, sim-caught.txt,
# and equivalent.txt, written by hand (file: description, as --report prints them).
# Each run works in mutants-run/<pass>/ (ignored by git) and is merged into the ledger
# when it ends, and again at the start of the next run (so a run that was killed still
# counts what it finished). Runs mark everything they need not test as done through
# cargo-mutants --iterate (previously_caught.txt), so each can start while another pass
# is still going.
#
# Names carry file:line:col, which move when the core changes: pass 1's survivors are
# matched by file and description alone (a survivor is never lost, a sibling with the
# same description may be tested again); everything else is matched exactly (a mutant
# whose line moved is tested again). An equivalent.txt entry is a key too, so it also
# covers a later mutant with the same description in the same function: a new entry's
# reason must hold for every such place, and a pass-1 run still lists them as missed.
#
# --sim runs crates/pala-sim/tests/bounded_sweep.rs: the swarm sweep's first
# PALA_BOUNDED_SWEEP_SEEDS seeds (default 400) and a quarter as many with committee
# changes, every checker on. MUTANTS_FLAGS is passed to cargo-mutants (default --jobs 1;
# --in-place in a worktree kept for it makes repeated small runs start warm). Settings are
# in .cargo/mutants.toml. Every survivor of all passes is killed by a new test or
# explained in perf/mutants.md (equivalent, or dead code to delete).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo-mutants >/dev/null; then
  echo "installing cargo-mutants (crates.io)..." >&2
  cargo install cargo-mutants --locked
fi
ledger="${MUTANTS_LEDGER:-perf/mutants}"
scratch="mutants-run"
mode=pass1
shard=()
case "${1:-}" in
  --list) exec cargo mutants --list -p pala-core ;;
  --recheck) mode=recheck ;;
  --sim) mode=sim ;;
  --report) mode=report ;;
  --shard) shard=(--shard "$2") ;;
  "") ;;
  *) echo "usage: tools/mutants.sh [--recheck | --sim | --report | --shard K/N | --list]" >&2; exit 2 ;;
esac
mkdir -p "$ledger" "$scratch"
for f in pass1-caught pass1-missed pass1-timeout pass1-unviable recheck-caught sim-caught equivalent; do
  touch "$ledger/$f.txt"
done

# Adds what the last run of each pass found to the ledger.
merge() {
  local pass="$1" kind out="$scratch/$1/mutants.out"
  for kind in caught missed timeout unviable; do
    [ -f "$out/$kind.txt" ] || continue
    if [ "$pass" = pass1 ]; then
      sort -u -o "$ledger/pass1-$kind.txt" "$ledger/pass1-$kind.txt" "$out/$kind.txt"
    elif [ "$kind" = caught ] || [ "$kind" = timeout ]; then
      # A timeout is detected (a mutant that never ends fails its test), as in pass 1.
      sort -u -o "$ledger/$pass-caught.txt" "$ledger/$pass-caught.txt" "$out/$kind.txt"
    fi
  done
}
for p in pass1 recheck sim; do merge "$p"; done

strip() { sed -E 's/^([^:]+):[0-9]+:[0-9]+: /\1: /'; }

# The mutants of the current tree still alive after pass 1 and the rechecks (and, for
# "sim", after earlier pass-2 runs), exactly as cargo-mutants names them now, leaving out
# those triaged as equivalent (equivalent.txt: file and description, the reason in
# perf/mutants.md).
alive() {
  local keys killed
  keys="$(mktemp)"
  killed="$(mktemp)"
  cat "$ledger/pass1-missed.txt" "$ledger/pass1-timeout.txt" | strip | sort -u \
    | comm -23 - <(strip <"$ledger/equivalent.txt" | sort -u) >"$keys"
  # A name pass 1 caught later (its line moved back, or a sibling) is not alive either.
  cat "$ledger/recheck-caught.txt" "$ledger/pass1-caught.txt" "$ledger/pass1-timeout.txt" >"$killed"
  [ "$1" = sim ] && cat "$ledger/sim-caught.txt" >>"$killed"
  cargo mutants --list -p pala-core 2>/dev/null \
    | awk 'NR == FNR { s[$0] = 1; next } { k = $0; sub(/:[0-9]+:[0-9]+: /, ": ", k); if (k in s) print }' "$keys" - \
    | sort -u | comm -23 - <(sort -u "$killed")
  rm -f "$keys" "$killed"
}

# Runs cargo-mutants for pass $1 on every current mutant except those in file $2.
run() {
  local pass="$1" skip="$2"
  shift 2
  rm -rf "$scratch/$pass"
  mkdir -p "$scratch/$pass/mutants.out"
  cp "$skip" "$scratch/$pass/mutants.out/previously_caught.txt"
  # shellcheck disable=SC2086
  nice cargo mutants -p pala-core --iterate -o "$scratch/$pass" ${MUTANTS_FLAGS:---jobs 1} "$@" || true
  merge "$pass"
}

all="$(mktemp)"
skip="$(mktemp)"
trap 'rm -f "$all" "$skip"' EXIT
cargo mutants --list -p pala-core 2>/dev/null | sort -u >"$all"
case "$mode" in
  pass1)
    cat "$ledger"/pass1-*.txt | sort -u >"$skip"
    echo "pass 1: $(comm -23 "$all" "$skip" | wc -l) of $(wc -l <"$all") mutants not tested yet" >&2
    run pass1 "$skip" "${shard[@]}"
    ;;
  recheck | sim)
    alive "$mode" | comm -13 - "$all" >"$skip"
    echo "$mode: $(comm -23 "$all" "$skip" | wc -l) survivors to test" >&2
    if [ "$mode" = recheck ]; then
      run recheck "$skip"
    else
      # cargo-mutants 27.1 runs its baseline on the mutated package's tests, not on
      # --test-package's, so the sweep's unmutated run is done here and its baseline
      # skipped (with a fixed timeout instead of one measured by the baseline).
      export PALA_BOUNDED_SWEEP_SEEDS="${PALA_BOUNDED_SWEEP_SEEDS:-400}"
      echo "sim: the unmutated tree first" >&2
      nice cargo test -p pala-sim --test bounded_sweep
      run sim "$skip" --baseline=skip --timeout "${MUTANTS_SIM_TIMEOUT:-300}" \
        --test-package pala-sim -- --test bounded_sweep
    fi
    ;;
  report)
    tested="$(cat "$ledger"/pass1-*.txt | sort -u | comm -12 - "$all" | wc -l)"
    echo "mutants generated: $(wc -l <"$all"); pass 1 tested (exact names of the current tree): $tested"
    for k in caught missed timeout unviable; do
      echo "pass 1 $k: $(wc -l <"$ledger/pass1-$k.txt")"
    done
    echo "killed by a recheck (tests added since): $(wc -l <"$ledger/recheck-caught.txt")"
    echo "killed by the bounded sweep: $(wc -l <"$ledger/sim-caught.txt")"
    echo "equivalent (triaged): $(wc -l <"$ledger/equivalent.txt")"
    # The score of the current tree: each of its mutants by its best outcome (a later
    # pass that kills a pass-1 survivor counts; equivalents are matched by key).
    awk -v eqf=<(strip <"$ledger/equivalent.txt") '
      BEGIN { while ((getline l < eqf) > 0) eq[l] = 1 }
      FNR == 1 { file++ }
      file == 1 { unviable[$0] = 1; next }
      file == 2 { killed[$0] = 1; next }
      file == 3 { missed[$0] = 1; next }
      {
        k = $0; sub(/:[0-9]+:[0-9]+: /, ": ", k)
        if ($0 in unviable) u++
        else if ($0 in killed) c++
        else if (k in eq) e++
        else if ($0 in missed) m++
        else t++
      }
      END {
        printf "current tree: %d mutants: %d unviable, %d killed, %d equivalent, %d survived, %d untested\n", u + c + e + m + t, u, c, e, m, t
        if (c + m + t > 0) printf "score: %d / %d = %.1f %% of non-equivalent viable mutants killed\n", c, c + m + t, 100 * c / (c + m + t)
      }' "$ledger/pass1-unviable.txt" \
      <(cat "$ledger/pass1-caught.txt" "$ledger/pass1-timeout.txt" "$ledger/recheck-caught.txt" "$ledger/sim-caught.txt") \
      "$ledger/pass1-missed.txt" "$all"
    echo "alive after every pass (to triage in perf/mutants.md):"
    alive sim | sed 's/^/  /'
    ;;
esac
