#!/usr/bin/env bash
# The web UI's browser tests: starts a local devnet (loopback only) with its UI server, drives
# the UI in headless Chromium through the flows in crates/ui/tests/browser/flows.mjs (axe-core
# on every page), and stops the devnet. Screenshots go to target/ui-screenshots/.
# Needs node/npm and Chromium (CI installs Debian's `chromium`); npm is used for the tests only.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
(cd crates/ui/tests/browser && npm ci --no-audit --no-fund --silent)
cargo build --quiet --bin medledger
work=$(mktemp -d)
base=${MEDLEDGER_UI_TEST_PORT:-24400}
"$root/target/debug/medledger" --json devnet --dir "$work/devnet" --base-port "$base" --requester-rate 2000 \
  >"$work/ready.json" 2>"$work/devnet.log" &
devnet=$!
cleanup() {
  kill -INT "$devnet" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$devnet" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$devnet" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 1 1800); do
  if [ -s "$work/ready.json" ]; then break; fi
  if ! kill -0 "$devnet" 2>/dev/null; then echo "devnet exited:"; tail -40 "$work/devnet.log"; exit 1; fi
  sleep 0.1
done
[ -s "$work/ready.json" ] || { echo "devnet not ready after 180 s"; tail -40 "$work/devnet.log"; exit 1; }
shots="$root/target/ui-screenshots"
rm -rf "$shots"
timeout 600 node crates/ui/tests/browser/flows.mjs "$work/ready.json" "$work/devnet" "$shots" || {
  echo "UI flows failed; the UI server's log:"; tail -40 "$work/devnet/ui.log"; exit 1; }
