#!/usr/bin/env bash
# Regenerates crates/analytics/assets/DejaVuSans-ascii.ttf, the printable-ASCII
# subset of DejaVu Sans embedded in the analytics crate so that PNG plots need
# no system fonts. Needs a DejaVuSans.ttf (Debian package fonts-dejavu-core)
# and fonttools (installed into target/font-venv).
set -euo pipefail
cd "$(dirname "$0")/.."
SRC="${1:?usage: analytics-font-subset.sh PATH/TO/DejaVuSans.ttf}"
python3 -m venv target/font-venv
target/font-venv/bin/pip install --quiet fonttools
target/font-venv/bin/pyftsubset "$SRC" \
  --unicodes="U+0020-007E,U+00B7,U+00D7,U+2013,U+2212" \
  --layout-features='' --no-hinting --desubroutinize \
  --output-file=crates/analytics/assets/DejaVuSans-ascii.ttf
ls -l crates/analytics/assets/DejaVuSans-ascii.ttf
