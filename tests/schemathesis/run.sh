#!/usr/bin/env bash
# Fuzzes the HTTP API against its own OpenAPI document (GET /v1/openapi.json) with schemathesis:
# the document is validated (openapi-spec-validator), then schemathesis runs once per role
# (operator, consumer, supplier, public_body, public, no token) against a server on a small demo
# fleet, and fails on any 5xx, any status, content type, header or body the document does not
# describe, and any crash.
#
# Usage: tests/schemathesis/run.sh COURBE_BINARY VENV [SECONDS_PER_ROLE]
# VENV holds schemathesis and openapi-spec-validator (`.ci/run` creates it). With REPORT_DIR set,
# each role's requests and answers are kept there (HAR files, `ROLE.har`); ROLES (e.g.
# "operator none") runs only those; SEED changes schemathesis's seed.
set -euo pipefail

courbe="$(realpath "$1")"
venv="$(realpath "$2")"
per_role="${3:-30}"
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
server=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

data="$work/data"
tokens="$work/tokens"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"

wait_up() {
  for _ in $(seq 1 300); do
    if python3 -c "import urllib.request,sys; urllib.request.urlopen('$base/healthz', timeout=1)" 2>/dev/null; then
      return 0
    fi
    sleep 0.2
  done
  echo "the server did not answer /healthz" >&2
  return 1
}

# A small demo fleet: curves (3 meters in 5 with curve consent), daily data, contracts,
# prices, Tempo colours and released months. The demo serves it once made; stop it.
"$courbe" --data "$data" demo --meters 10 --days 62 --listen "127.0.0.1:$port" >"$work/demo.log" 2>&1 &
server=$!
wait_up
kill -INT "$server"; wait "$server" || true; server=""

example=$("$venv/bin/python" - "$courbe" "$data" <<'PY'
import json, subprocess, sys
# The meter the document's examples name must be in the fleet.
out = subprocess.run([sys.argv[1], "--data", sys.argv[2], "query", "fleet-energy", "--from",
                      "2024-01-01", "--to", "2024-01-02", "--period", "day"],
                     check=True, capture_output=True, text=True).stdout
print(" ".join(m["meter"] for m in json.loads(out)["meters"]))
PY
)
meter=09174474470421
case " $example " in
  *" $meter "*) ;;
  *) echo "the demo fleet does not hold the document's example meter $meter: $example" >&2; exit 1 ;;
esac

token() { "$courbe" token add --tokens "$tokens" --role "$1" ${2:+--subject "$2"} | tail -n 1; }
operator=$(token operator)
consumer=$(token consumer "$meter")
supplier=$(token supplier acme)
public_body=$(token public_body)
public=$(token public)
"$courbe" --data "$data" grant add --meter "$meter" --supplier acme --from 2023-01-01 \
  --to 2025-12-31 --kinds daily,max_power,curve >/dev/null

"$courbe" --data "$data" serve --listen "127.0.0.1:$port" --tokens "$tokens" >"$work/serve.log" 2>&1 &
server=$!
wait_up

echo "== the document is valid OpenAPI 3.1"
"$venv/bin/python" - "$base/v1/openapi.json" <<'PY'
import json, sys, urllib.request
from openapi_spec_validator import validate
from openapi_spec_validator.validation.validators import OpenAPIV31SpecValidator
doc = json.load(urllib.request.urlopen(sys.argv[1]))
assert doc["openapi"].startswith("3.1"), doc["openapi"]
validate(doc, cls=OpenAPIV31SpecValidator)
print(f"valid: {len(doc['paths'])} paths")
PY

status=0
passed=0
failed=0
run_role() {
  local role="$1" header="$2"
  echo "== schemathesis as $role"
  local started=$SECONDS
  # The live view is an endless event stream: its Rust tests cover it.
  # Run from the scratch directory: schemathesis keeps a cache (`.schemathesis/`) where it runs.
  if ! (cd "$work" && timeout $((per_role + 60)) "$venv/bin/schemathesis" run "$base/v1/openapi.json" \
      ${header:+-H "$header"} \
      --checks "${CHECKS:-not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance}" \
      --phases examples,coverage,fuzzing --mode all --max-examples 8 --max-time "$per_role" \
      --seed "${SEED:-20261205}" --workers 1 --request-timeout 20 --exclude-path '/v1/meters/{id}/live' \
      --suppress-health-check all \
      ${REPORT_DIR:+--report har --report-har-path "$REPORT_DIR/$role.har"}); then
    echo "schemathesis found failures as $role" >&2
    status=1
    failed=$((failed + 1))
  else
    passed=$((passed + 1))
  fi
  echo "($role: $((SECONDS - started)) s)"
  if ! kill -0 "$server" 2>/dev/null; then
    echo "the server died; its log:" >&2; tail -50 "$work/serve.log" >&2; exit 1
  fi
}
for role in ${ROLES:-public public_body supplier consumer none operator}; do
  case "$role" in
    none) run_role none "" ;;
    *) run_role "$role" "Authorization: Bearer ${!role}" ;;
  esac
done
if grep -q "panicked" "$work/serve.log"; then
  echo "the server panicked:" >&2; grep -A5 panicked "$work/serve.log" >&2; status=1
fi
echo "roles: $passed passed, $failed failed"
exit $status
