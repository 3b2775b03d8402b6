#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ for a bounded time, one after the other (the
# machine's cores are shared; parallel campaigns would only slice the same CPU).
#
#   tools/fuzz.sh [SECONDS_PER_TARGET]      default 60
#
# Environment:
#   FUZZ_OPTIONAL=1   a missing toolchain (nightly, cargo-fuzz) is reported and skipped with
#                     status 0 instead of failing (CI on machines without nightly).
#   FUZZ_TARGETS      space-separated subset of targets (default: all of `cargo fuzz list`).
#   FUZZ_SANITIZER    libFuzzer sanitizer (default none: the decoders are safe Rust, where
#                     a bug shows as a panic or an overflow check, both caught without
#                     ASan, and the build is twice as fast; `address` for unsafe code).
#   FUZZ_JOBS         cargo build jobs (default 2).
#
# New inputs go to fuzz/corpus-new/<target> (not committed); the committed seeds in
# fuzz/corpus/<target> are only read. A crash fails the script and prints the path of
# the input that triggered it; reproduce with
#   cargo +nightly fuzz run -s none <target> <that path>
# Ends with one line per target:
#   fuzz: ok <target> execs=<n> cov=<n> ft=<n> secs=<n>    or    fuzz: FAIL <target> ...
set -uo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
san=${FUZZ_SANITIZER:-none}
export CARGO_BUILD_JOBS=${FUZZ_JOBS:-2}

unavailable() {
    echo "fuzz: $1" >&2
    if [[ ${FUZZ_OPTIONAL:-0} == 1 ]]; then
        echo "fuzz: skipped (FUZZ_OPTIONAL=1)" >&2
        exit 0
    fi
    exit 1
}

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "fuzz: no nightly toolchain; installing it (rustup toolchain install nightly --profile minimal)" >&2
    rustup toolchain install nightly --profile minimal >&2 ||
        unavailable "cargo-fuzz needs a nightly toolchain (-Z sanitizer flags) and rustup could not install one"
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: cargo-fuzz missing; installing it (cargo install cargo-fuzz --locked)" >&2
    cargo install cargo-fuzz --locked >&2 || unavailable "cargo install cargo-fuzz failed"
fi

cd fuzz
targets=${FUZZ_TARGETS:-$(cargo +nightly fuzz list)}
t0=$SECONDS
if ! nice cargo +nightly fuzz build -s "$san"; then
    echo "fuzz: FAIL build (cargo fuzz build)"
    exit 1
fi
echo "fuzz: built $(wc -w <<<"$targets") targets in $((SECONDS - t0)) s" >&2

mkdir -p artifacts/logs
summary=()
failed=0
for t in $targets; do
    mkdir -p "corpus-new/$t" "corpus/$t"
    log="artifacts/logs/$t.log"
    echo "fuzz: running $t for ${secs} s" >&2
    start=$SECONDS
    nice cargo +nightly fuzz run -s "$san" "$t" "corpus-new/$t" "corpus/$t" -- \
        -max_total_time="$secs" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
        >"$log" 2>&1
    rc=$?
    took=$((SECONDS - start))
    execs=$(awk '/^stat::number_of_executed_units/ { n = $NF } END { print n + 0 }' "$log")
    # The last status line of libFuzzer (`#N DONE cov: C ft: F ...`, or the last pulse).
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+')
    ft=$(grep -oE 'ft: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+')
    line="$t execs=${execs:-0} cov=${cov:-0} ft=${ft:-0} secs=$took"
    if [[ $rc -eq 0 ]]; then
        summary+=("fuzz: ok $line")
    else
        failed=1
        crash=$(grep -oE '(Test unit written to|artifact_prefix=.*; Test unit written to) [^ ]+' "$log" |
            tail -1 | awk '{ print $NF }')
        echo "fuzz: $t failed (status $rc); log fuzz/$log" >&2
        tail -40 "$log" >&2
        summary+=("fuzz: FAIL $line crash=fuzz/${crash:-unknown (see fuzz/$log)}")
    fi
done
printf '%s\n' "${summary[@]}"
exit "$failed"
