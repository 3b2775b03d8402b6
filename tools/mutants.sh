#!/bin/bash
# Mutation testing of the protocol core with cargo-mutants (issue 17 item 6).
#
#   tools/mutants.sh                 # every mutant of pala-core (about 1000; hours here)
#   tools/mutants.sh --shard 3/30    # one slice, to spread a run over sessions
#   tools/mutants.sh --list          # what would be mutated
#
# Settings are in .cargo/mutants.toml: each mutant is built and pala-core's tests run
# against it. Results go to mutants.out/ (outcomes.json, caught.txt, missed.txt,
# timeout.txt, unviable.txt); every missed mutant must be killed by a new test or
# explained in perf/mutants.md (equivalent, or dead code to delete).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo-mutants >/dev/null; then
  echo "installing cargo-mutants (crates.io)..." >&2
  cargo install cargo-mutants --locked
fi
if [ "${1:-}" = "--list" ]; then
  exec cargo mutants --list -p pala-core
fi
exec nice cargo mutants -p pala-core --jobs 1 "$@"
