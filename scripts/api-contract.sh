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
# The signing hook (scripts/schemathesis/medledger_auth.py) needs ed25519.
python3 -c 'import cryptography' 2>/dev/null ||
  python3 -m pip install --quiet --disable-pip-version-check "cryptography==48.0.0"
# Ports below Linux's ephemeral range; the devnet refuses to start if one is taken. A requester
# rate far above what schemathesis sends, so that 429s do not hide other answers.
. scripts/devnet-lib.sh
base=${MEDLEDGER_CONTRACT_PORT:-23400}
start_devnet "$base" --requester-rate 100000 --no-ui
# The nodes serve HTTPS with certificates from the devnet's consortium CA.
api="https://127.0.0.1:$((base + 100))"
ca="$work/devnet/tls/ca.pem"
cd "$work"
# GETs are signed as the devnet's regulator, who may see everything (see medledger_auth.py).
export SCHEMATHESIS_HOOKS=medledger_auth PYTHONPATH="$root/scripts/schemathesis${PYTHONPATH:+:$PYTHONPATH}"
export MEDLEDGER_AUTH_KEY="$work/devnet/demo/regulator-rita.key"
# The hook must really authenticate, or every GET would be judged only on its 401.
python3 - "$api" "$ca" <<'PY'
import sys, requests, medledger_auth  # noqa: E401 (the hook registers itself on import)
api, ca = sys.argv[1], sys.argv[2]
auth = medledger_auth.MedLedgerAuth(medledger_auth.os.environ["MEDLEDGER_AUTH_KEY"], "medledger-devnet")
r = requests.get(f"{api}/v1/blocks?limit=1", auth=auth, timeout=10, verify=ca)
assert r.status_code == 200, f"signed GET answered {r.status_code}: {r.text}"
r = requests.get(f"{api}/v1/blocks?limit=1", timeout=10, verify=ca)
assert r.status_code == 401, f"unsigned GET answered {r.status_code}: {r.text}"
print("signing hook: a signed GET is answered, an unsigned one refused")
PY
"$st" --config-file "$root/scripts/schemathesis/schemathesis.toml" --no-color run "$api/openapi.json" \
  --checks all --phases examples,coverage,fuzzing,stateful \
  --seed 1 --max-examples 30 --max-time 240 --workers 2 \
  --request-timeout 20 --tls-verify "$ca"
