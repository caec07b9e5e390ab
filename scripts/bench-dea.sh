#!/usr/bin/env bash
# DEA benchmark: the full DEAP pipeline (output orientation; CRS + VRS + NIRS
# radial stages; VRS two-stage slacks, targets, peers) on seeded synthetic
# data, 2,000 and 10,000 DMUs; then a plain per-DMU scipy linprog(highs) loop
# on the same 2,000-DMU file, and the ratio measured in this run.
#   usage: scripts/bench-dea.sh          (from anywhere in the repository)
set -euo pipefail
cd "$(dirname "$0")/.."
SEED="${SEED:-20240501}"
cargo build --release -p medledger-analytics --bin dea-bench
BENCH=target/release/dea-bench
echo "== medledger-analytics (rayon threads: ${RAYON_NUM_THREADS:-all cores})"
R2000=$("$BENCH" --n 2000 --seed "$SEED")
echo "$R2000"
"$BENCH" --n 10000 --seed "$SEED"
"$BENCH" --n 2000 --seed "$SEED" --write target/dea-bench-2000.csv
echo "== scipy linprog(method=highs), plain per-DMU loop, 2,000 DMUs"
if [ ! -x target/bench-venv/bin/python ]; then
  python3 -m venv target/bench-venv
fi
target/bench-venv/bin/pip install --quiet scipy numpy
SCIPY=$(target/bench-venv/bin/python scripts/bench-dea-scipy.py target/dea-bench-2000.csv)
echo "$SCIPY"
rust_s=$(sed -E 's/.* time=([0-9.]+)s.*/\1/' <<<"$R2000")
scipy_s=$(sed -E 's/.* time=([0-9.]+)s.*/\1/' <<<"$SCIPY")
python3 -c "print(f'ratio scipy/medledger on 2,000 DMUs: {${scipy_s}/${rust_s}:.1f}x ({${scipy_s}:.2f} s vs {${rust_s}:.2f} s)')"
