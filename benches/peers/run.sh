#!/usr/bin/env bash
# Side-by-side suite: Courbe vs DuckDB and ClickHouse (chdb), one fleet, five questions, one
# table, counted fairly (issue 14: load until queries run as timed, ClickHouse partitioned with
# its best codecs, answers decoded into Python values for every system, fresh stores, loaded
# counts and answers compared in full). Not part of CI. Usage, from anywhere in a clone:
#   benches/peers/run.sh [suite] [--meters 1000] [--days 365] [--step 30] [--reps 10] [--work DIR] [--peers duckdb clickhouse]
#   benches/peers/run.sh untrained [--meters 1000] [--days 365] [--work DIR]
# `suite` builds courbe (release), installs the peers from PyPI into target/peers/venv, generates
# the fleet CSV once per set of arguments (kept in the work dir, default target/peers/work), and
# prints the table; the full figures go to WORK/results.json. Exits 1 when a system loaded another
# number of points or meters, or when the answers disagree. `untrained` prints bytes per point on
# data the format's rANS tables were not trained on (the real Enedis export of tests/data/enedis,
# generated fleets at 60 and 5 minutes) next to the trained family, Courbe and ClickHouse's best
# codecs; figures in WORK/untrained.json.
# Honours CARGO_TARGET_DIR (the venv and the work dir then live under it).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
target="${CARGO_TARGET_DIR:-$root/target}"
cmd=suite
if [ "${1:-}" = suite ] || [ "${1:-}" = untrained ]; then
  cmd="$1"
  shift
fi
cargo build --release --bin courbe
venv="$target/peers/venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
# The versions the figures in BENCHMARKS.md were taken with.
"$venv/bin/pip" install --quiet --disable-pip-version-check "duckdb==2.0.0" "chdb==4.4.0" "pyarrow==21.0.0"
exec "$venv/bin/python" "$root/benches/peers/peers.py" "$cmd" --courbe "$target/release/courbe" \
  --work "$target/peers/work" "$@"
