#!/usr/bin/env bash
# The whole test suite, as README and CI run it: formatting, lints, every test, the API contract
# (schemathesis against a devnet node), EPCIS documents against GS1's schema, the web UI's flows in headless Chromium (axe-core on every
# page), then a short cargo-fuzz run of each target.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
scripts/epcis-schema.sh
scripts/api-contract.sh
scripts/ui-flows.sh
scripts/fuzz-smoke.sh
