#!/usr/bin/env bash
# The API contract check: starts a local devnet (loopback only), runs schemathesis against one
# node's OpenAPI document (every phase, every check, a fixed seed, bounded examples and time),
# and stops the devnet. Fails on any failure schemathesis reports.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
version=4.32.5
# The console script is called from where pip puts it, so a fresh install needs no PATH change.
st="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/st"
if ! "$st" --version 2>/dev/null | grep -q "$version"; then
  python3 -m pip install --quiet --disable-pip-version-check "schemathesis==$version"
fi
cargo build --quiet --bin medledger
work=$(mktemp -d)
# Ports below Linux's ephemeral range; the devnet refuses to start if one is taken.
base=${MEDLEDGER_CONTRACT_PORT:-23400}
"$root/target/debug/medledger" --json devnet --dir "$work/devnet" --base-port "$base" >"$work/ready.json" 2>"$work/devnet.log" &
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
api="http://127.0.0.1:$((base + 100))"
cd "$work"
"$st" --config-file "$root/scripts/schemathesis/schemathesis.toml" --no-color run "$api/openapi.json" \
  --checks all --phases examples,coverage,fuzzing,stateful \
  --seed 1 --max-examples 30 --max-time 240 --workers 2 \
  --request-timeout 20
