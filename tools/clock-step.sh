#!/usr/bin/env bash
# Steps the wall clock of one proposer process back (and then forward) while the other
# proposer is stopped, and checks that the chain keeps finalizing: consensus timers run on
# the monotonic clock, so a wall-clock step must neither freeze nor fire them (issue 12).
#
#   tools/clock-step.sh [STEP_SECONDS] [WATCH_SECONDS]
#
# Needs a release binary (cargo build --release, or PALA=/path/to/pala) and Debian's
# `faketime` package (libfaketime), which shifts CLOCK_REALTIME of one process only;
# FAKETIME_DONT_FAKE_MONOTONIC keeps CLOCK_MONOTONIC real, as a real clock step does.
# Prints one line per phase with the finalized height seen by a voter; exits non-zero if
# finality stalls in any phase.
set -euo pipefail
STEP=${1:-300}
WATCH=${2:-12}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PALA=${PALA:-$ROOT/target/release/pala}
LIBFT=$(ls /usr/lib/*/faketime/libfaketimeMT.so.1 2>/dev/null | head -1 || true)
[ -x "$PALA" ] || { echo "no pala binary at $PALA: cargo build --release or set PALA" >&2; exit 2; }
[ -n "$LIBFT" ] || { echo "libfaketime not found: apt-get install faketime" >&2; exit 2; }

DIR=$(mktemp -d /tmp/pala-clock-step.XXXXXX)
P2P=${P2P_PORT:-17300}
HTTP=${HTTP_PORT:-18300}
"$PALA" testnet --validators 4 --proposers 2 --out "$DIR" --fast \
  --p2p-port "$P2P" --http-port "$HTTP" >/dev/null
OFFSET="$DIR/clock-offset"
echo "+0" >"$OFFSET"

pids=()
declare -A pid_of
start() { # name [faketime]
  local name=$1
  if [ "${2:-}" = faketime ]; then
    LD_PRELOAD=$LIBFT FAKETIME_TIMESTAMP_FILE=$OFFSET FAKETIME_NO_CACHE=1 \
      FAKETIME_DONT_FAKE_MONOTONIC=1 "$PALA" node --config "$DIR/$name.toml" 2>"$DIR/$name.log" &
  else
    "$PALA" node --config "$DIR/$name.toml" 2>"$DIR/$name.log" &
  fi
  pid_of[$name]=$!
  pids+=($!)
}
cleanup() {
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  if [ -z "${KEEP:-}" ]; then rm -rf "$DIR"; else echo "kept $DIR"; fi
}
trap cleanup EXIT

start proposer0 faketime
start proposer1
for v in 0 1 2 3; do start voter$v; done

# voter0 serves HTTP on the port after the two proposers'.
VOTER_HTTP=$((HTTP + 2))
P0_HTTP=$HTTP
field() { # port key
  curl -s --max-time 2 "http://127.0.0.1:$1/status" |
    python3 -c "import json,sys; print(json.dumps(json.load(sys.stdin)['$2']))" 2>/dev/null || true
}
height() { field "$1" finalized_height; }

for _ in $(seq 60); do
  h=$(height $VOTER_HTTP || true)
  [ -n "$h" ] && [ "$h" -ge 3 ] && break
  sleep 0.5
done
[ -n "${h:-}" ] && [ "$h" -ge 3 ] || { echo "cluster did not start finalizing (logs in $DIR)"; KEEP=1; exit 1; }

failed=0
ref_rate=""
phase() { # label [reference | stepped OFFSET]
  local before after e_before e_after rate
  before=$(height $VOTER_HTTP)
  e_before=$(field $P0_HTTP epoch)
  # The step happens after the "before" sample, so an epoch spent at the step is seen.
  [ -n "${3:-}" ] && echo "$3" >"$OFFSET"
  sleep "$WATCH"
  after=$(height $VOTER_HTTP)
  e_after=$(field $P0_HTTP epoch)
  rate=$(( (after - before) / WATCH ))
  printf '%-44s finalized %5s -> %5s (%s blocks/s), proposer0 epoch %s -> %s, producing %s\n' \
    "$1" "$before" "$after" "$rate" "$e_before" "$e_after" "$(field $P0_HTTP producing)"
  case "${2:-}" in
    reference) ref_rate=$rate ;;
    stepped)
      # A wall-clock step must neither slow production nor fire timers: the rate stays
      # within half of the reference phase and no epoch is spent.
      if [ $((rate * 2)) -lt "$ref_rate" ]; then echo "  -> finality slowed down"; failed=1; fi
      if [ "$e_before" != "$e_after" ]; then echo "  -> the epoch advanced"; failed=1; fi ;;
  esac
  [ "$after" -gt "$before" ] || failed=1
}

phase "both proposers, clock true"
kill -KILL "${pid_of[proposer1]}"
wait "${pid_of[proposer1]}" 2>/dev/null || true
phase "proposer1 killed, clock true" reference
phase "proposer0 wall clock stepped back ${STEP}s" stepped "-$STEP"
phase "proposer0 wall clock stepped forward ${STEP}s" stepped "+$STEP"
phase "proposer0 wall clock back to true" stepped "+0"

if [ "$failed" = 0 ]; then echo "clock-step: finality continued in every phase"; else
  echo "clock-step: FAILED, finality stalled in a phase (logs kept in $DIR)"; KEEP=1; exit 1; fi
