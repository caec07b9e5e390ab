#!/usr/bin/env bash
# The web UI's browser tests: starts a local devnet (loopback only) with its UI server, drives
# the UI in headless Chromium through the flows in crates/ui/tests/browser/flows.mjs (axe-core
# on every page), and stops the devnet. Screenshots go to target/ui-screenshots/.
# Needs node/npm and Chromium (CI installs Debian's `chromium`); npm is used for the tests only.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
(cd crates/ui/tests/browser && npm ci --no-audit --no-fund --silent)
. scripts/devnet-lib.sh
start_devnet "${MEDLEDGER_UI_TEST_PORT:-24400}" --requester-rate 2000
shots="$root/target/ui-screenshots"
rm -rf "$shots"
timeout 600 node crates/ui/tests/browser/flows.mjs "$work/ready.json" "$work/devnet" "$shots" || {
  echo "UI flows failed; the UI server's log:"; tail -40 "$work/devnet/ui.log"; exit 1; }
