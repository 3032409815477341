#!/usr/bin/env bash
# tests/fuzz-ci.sh - run every cargo-fuzz target of fuzz/ for a bounded time
# (FUZZ_SECONDS each, default 20) when a nightly toolchain is installed.
#
# Exit status: non-zero only when a target crashes (a finding: libFuzzer
# prints the input and saves it under fuzz/artifacts/). A machine without
# nightly, or where cargo-fuzz cannot be installed or built, is reported and
# skipped: the stable mutation driver (tests/fuzz.rs, part of `cargo test`)
# covers the same targets there.
set -uo pipefail
cd "$(dirname "$0")/../fuzz"
SECONDS_EACH=${FUZZ_SECONDS:-20}

say() { echo "fuzz-ci: $*"; }

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  say "no nightly toolchain: coverage-guided fuzzing skipped (the stable driver ran in cargo test)"
  exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  say "installing cargo-fuzz"
  if ! cargo install --locked cargo-fuzz >/tmp/cargo-fuzz-install.log 2>&1; then
    say "cargo-fuzz could not be installed (see /tmp/cargo-fuzz-install.log): skipped"
    exit 0
  fi
fi
if ! cargo +nightly fuzz build >/tmp/cargo-fuzz-build.log 2>&1; then
  tail -20 /tmp/cargo-fuzz-build.log
  say "the fuzz targets did not build with this nightly: skipped"
  exit 0
fi
status=0
for target in $(cargo +nightly fuzz list); do
  log=/tmp/fuzz-$target.log
  # The committed seeds are read-only input; new corpus entries go to a
  # scratch folder so that CI leaves the checkout as it found it.
  scratch=$(mktemp -d)
  if cargo +nightly fuzz run "$target" "$scratch" "corpus/$target" -- \
      -max_total_time="$SECONDS_EACH" -print_final_stats=1 >"$log" 2>&1; then
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
    say "$target: ${execs:-?} executions in ${SECONDS_EACH}s, ${cov:-cov: ?}, no crash"
  else
    tail -40 "$log"
    say "$target: CRASH (input saved under fuzz/artifacts/$target/)"
    status=1
  fi
  rm -rf "$scratch"
done
exit $status
