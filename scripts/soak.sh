#!/usr/bin/env bash
# Long forms of the reliability tests (the short forms run in scripts/test.sh; this script
# does not): the crash matrix with many kills, 60 s of load, many tamper cases, 100,000
# generated hostile inputs, and the `where` parser/matcher property tests in rounds for a
# fixed time. Prints a summary of the figures; exits non-zero if any part failed.
#
#   scripts/soak.sh                        # defaults below, roughly 15 minutes on 2 cores
#   SOAK_CRASH_KILLS=500 SOAK_QUERY_SECS=1800 scripts/soak.sh
#
# Every part prints its seed; rerun one with the same seed through its env variable
# (EXPORTD_CRASH_SEED, EXPORTD_LOAD_SEED, EXPORTD_TAMPER_SEED, EXPORTD_FUZZ_SEED;
# proptest writes failing cases to tests/proptest-regressions/).
set -uo pipefail
cd "$(dirname "$0")/.."

KILLS=${SOAK_CRASH_KILLS:-200}
LOAD_SECS=${SOAK_LOAD_SECS:-60}
TAMPER_CASES=${SOAK_TAMPER_CASES:-100}
FUZZ_CASES=${SOAK_FUZZ_CASES:-100000}
QUERY_SECS=${SOAK_QUERY_SECS:-300}
QUERY_CASES=${SOAK_QUERY_CASES:-50000}

export RUST_LOG=${RUST_LOG:-warn}
export CARGO_TERM_COLOR=never
logs=$(mktemp -d -t exportd-soak.XXXXXX)
echo "soak: logs in $logs"

cargo test --release --locked --no-run \
  --test crash_matrix --test load --test tamper --test fuzz_inputs --test query \
  >"$logs/build.log" 2>&1 || { echo "soak: build failed (see $logs/build.log)"; exit 1; }

failed=()
summary=()

# run NAME ENV... -- CARGO-TEST-ARGS...: one part, timed, its output in $logs/NAME.log
run() {
  local name=$1; shift
  local envs=()
  while [ "$1" != "--" ]; do envs+=("$1"); shift; done
  shift
  local t0=$SECONDS
  if env "${envs[@]}" cargo test --release --locked "$@" -- --nocapture --test-threads=1 \
      >"$logs/$name.log" 2>&1; then
    summary+=("$name: ok in $((SECONDS - t0)) s")
  else
    summary+=("$name: FAILED in $((SECONDS - t0)) s (see $logs/$name.log)")
    failed+=("$name")
  fi
}

run crash EXPORTD_CRASH_KILLS="$KILLS" -- --test crash_matrix
run load EXPORTD_LOAD_SECS="$LOAD_SECS" -- --test load
run tamper EXPORTD_TAMPER_CASES="$TAMPER_CASES" -- --test tamper
run fuzz EXPORTD_FUZZ_CASES="$FUZZ_CASES" -- --test fuzz_inputs

# the where parser/matcher properties: rounds with fresh random seeds until the time is up
rounds=0
t0=$SECONDS
: >"$logs/query.log"
while [ $((SECONDS - t0)) -lt "$QUERY_SECS" ]; do
  if ! PROPTEST_CASES="$QUERY_CASES" cargo test --release --locked --test query \
      >>"$logs/query.log" 2>&1; then
    failed+=("query")
    break
  fi
  rounds=$((rounds + 1))
done
props=$(awk '/^proptest! \{/{p=1} p && /^}/{p=0} p && /#\[test\]/{n++} END{print n+0}' tests/query.rs)
summary+=("query: $rounds rounds x $QUERY_CASES cases x $props properties ($((rounds * QUERY_CASES * props)) cases) in $((SECONDS - t0)) s$([[ " ${failed[*]-} " == *" query "* ]] && echo " - FAILED (see $logs/query.log)")")

echo
echo "== soak summary =="
printf '%s\n' "${summary[@]}"
echo
echo "-- crash matrix"
grep -E "^crash matrix: seed [0-9]+: " "$logs/crash.log" || true
echo "-- load"
grep -E "^load: |^  (create|list|get|download|delete) " "$logs/load.log" || true
echo "-- tamper"
grep -E "^tamper( records)?: seed [0-9]+: " "$logs/tamper.log" || true
echo "-- fuzz"
grep -oE "[a-z (),]+: [0-9]+ cases, answers by status.*|where: [0-9]+ accepted.*|headers: [0-9]+ cases.*|export bodies: [0-9]+ passed.*|ndjson: [0-9]+ lines.*" "$logs/fuzz.log" || true

if [ ${#failed[@]} -gt 0 ]; then
  echo
  echo "soak: FAILED: ${failed[*]}"
  exit 1
fi
echo
echo "soak: all parts passed"
