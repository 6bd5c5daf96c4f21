#!/usr/bin/env bash
# Side-by-side suite: Courbe vs DuckDB and ClickHouse (chdb), one fleet, five questions, one
# table. Not part of CI. Usage, from anywhere in a clone:
#   benches/peers/run.sh [--meters 2000] [--days 365] [--reps 20] [--work DIR] [--peers duckdb clickhouse]
# Builds courbe (release), installs the peers from PyPI into target/peers/venv, generates the
# fleet CSV once (kept in the work dir, default target/peers/work), and prints the table; the
# full figures go to WORK/results.json. Exits 1 when the systems' answers disagree.
# Honours CARGO_TARGET_DIR (the venv and the work dir then live under it).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
target="${CARGO_TARGET_DIR:-$root/target}"
cargo build --release --bin courbe
venv="$target/peers/venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
# The versions the figures in BENCHMARKS.md were taken with.
"$venv/bin/pip" install --quiet --disable-pip-version-check "duckdb==2.0.0" "chdb==4.4.0"
exec "$venv/bin/python" "$root/benches/peers/peers.py" suite --courbe "$target/release/courbe" \
  --work "$target/peers/work" "$@"
