#!/usr/bin/env bash
# KDE benchmark: 1,000,000 seeded points on a 512-point grid, exact and
# binned (linear binning + FFT), with the binned mode's error vs exact.
#   usage: scripts/bench-kde.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p medledger-analytics --bin kde-bench
target/release/kde-bench --n 1000000 --grid 512
