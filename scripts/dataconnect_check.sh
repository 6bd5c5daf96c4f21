#!/usr/bin/env bash
# The public Data Connect client against a real Courbe server (outside CI: it needs a venv).
#
# Builds courbe, fills a fresh data directory with 3 generated meters over October-November 2024
# (the autumn DST day included), adds a consumer token for the first meter, serves on a free
# loopback port, and runs scripts/dataconnect_client.py as that consumer: a week of load curve
# across 2024-10-27 and the month of October of daily consumption, compared with /v1.
#
#   python3 -m venv /tmp/dcvenv && /tmp/dcvenv/bin/pip install enedis-data-connect requests
#   scripts/dataconnect_check.sh [/tmp/dcvenv/bin/python]
set -euo pipefail

python=${1:-/tmp/dcvenv/bin/python}
root=$(cd "$(dirname "$0")/.." && pwd)
cargo build --quiet --manifest-path "$root/Cargo.toml" --bin courbe
courbe="${CARGO_TARGET_DIR:-$root/target}/debug/courbe"

work=$(mktemp -d)
server=""
cleanup() {
    if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

data="$work/data"
"$courbe" --data "$data" gen --meters 3 --days 61 --start 2024-10-01 --seed 7 > "$work/fleet.csv"
"$courbe" --data "$data" ingest "$work/fleet.csv" > /dev/null
meter=$(sed -n 2p "$work/fleet.csv" | cut -d, -f1)
secret=$("$courbe" --data "$data" token add --tokens "$work/tokens" --role consumer --subject "$meter" | tail -1)

: > "$work/serve.log"
"$courbe" --data "$data" serve --listen 127.0.0.1:0 --tokens "$work/tokens" 2> "$work/serve.log" &
server=$!
base=""
for _ in $(seq 1 100); do
    base=$(sed -n 's/.*serving .* on \(http:[^ ]*\).*/\1/p' "$work/serve.log" | head -1 || true)
    [ -n "$base" ] && break
    sleep 0.1
done
[ -n "$base" ] || { cat "$work/serve.log"; exit 1; }
echo "courbe on $base, meter $meter (consumer token as client secret)"

COURBE_CLIENT_SECRET="$secret" "$python" "$root/scripts/dataconnect_client.py" \
    --base-url "$base" --client-id "$meter" --prm "$meter" \
    --curve-start 2024-10-24 --daily-start 2024-10-01
if grep -q "$secret" "$work/serve.log"; then
    echo "the server's log holds the secret" >&2
    exit 1
fi
