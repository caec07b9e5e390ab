#!/usr/bin/env bash
# Short coverage-guided smoke run of every cargo-fuzz target (transaction and block decoding).
# Installs cargo-fuzz if it is missing. The stable toolchain accepts the sanitizer flags
# cargo-fuzz passes when RUSTC_BOOTSTRAP=1 is set.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
SECONDS_PER_TARGET="${FUZZ_SECONDS:-10}"
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
for target in $(RUSTC_BOOTSTRAP=1 cargo fuzz list); do
    echo "fuzzing ${target} for ${SECONDS_PER_TARGET}s"
    RUSTC_BOOTSTRAP=1 cargo fuzz run "${target}" -- -max_total_time="${SECONDS_PER_TARGET}" -print_final_stats=1 2>&1 | tail -n 3
done
echo "fuzz smoke: $(RUSTC_BOOTSTRAP=1 cargo fuzz list | wc -l) targets ran without a crash"
