"""Arrow IPC answers read by pyarrow, checked against the JSON answers of the same server.

Starts `courbe serve` (the binary named by $COURBE, default target/debug/courbe under
$CARGO_TARGET_DIR or ./target) on a store of 12 generated meters over 20 days around the spring
DST change, asks the curve, energy, fleet curve and fleet energy in Arrow (`format=arrow` and
`Accept: application/vnd.apache.arrow.stream`), reads each with
`pyarrow.ipc.open_stream(body).read_all()` and compares every row with the JSON answer.
Run by .ci/run in target/ci-venv (pinned pyarrow and pytest); by hand:
    python3 -m venv target/ci-venv && target/ci-venv/bin/pip install pyarrow==21.0.0 pytest==8.3.5
    cargo build --bin courbe && target/ci-venv/bin/python -m pytest tests/python -q
"""

import http.client
import json
import os
import socket
import subprocess
import tempfile
import time
from datetime import datetime

import pyarrow as pa
import pytest

ARROW = "application/vnd.apache.arrow.stream"
RANGE = "from=2024-03-25&to=2024-04-04"
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def courbe_bin():
    if os.environ.get("COURBE"):
        return os.environ["COURBE"]
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    return os.path.join(target, "debug", "courbe")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    courbe = courbe_bin()
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        csv = subprocess.run([courbe, "gen", "--meters", "12", "--days", "20", "--start",
                              "2024-03-20", "--seed", "3"], check=True, capture_output=True).stdout
        subprocess.run([courbe, "--data", data, "ingest", "-"], input=csv, check=True,
                       capture_output=True)
        meter = csv.decode().splitlines()[1].split(",")[0]
        port = free_port()
        proc = subprocess.Popen([courbe, "--data", data, "serve", "--listen", f"127.0.0.1:{port}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                    conn.request("GET", "/healthz")
                    conn.getresponse().read()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            yield conn, meter
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def get(conn, path, accept=None):
    conn.request("GET", path, headers={"Accept": accept} if accept else {})
    r = conn.getresponse()
    return r.status, r.getheader("Content-Type"), r.read()


def table(conn, path, accept=None):
    status, ctype, body = get(conn, path, accept)
    assert status == 200, body[:300]
    assert ctype == ARROW
    return pa.ipc.open_stream(body).read_all()


def answer(conn, path):
    status, ctype, body = get(conn, path)
    assert status == 200, body[:300]
    assert ctype == "application/json"
    return json.loads(body)


def seconds(text):
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


def epochs(column):
    assert str(column.type) == "timestamp[s, tz=UTC]"
    return column.cast(pa.int64()).to_pylist()


def test_a_curve_in_arrow_is_the_json_curve(server):
    conn, meter = server
    path = f"/v1/meters/{meter}/curve?{RANGE}"
    for t in (table(conn, path + "&format=arrow"), table(conn, path, accept=ARROW)):
        points = answer(conn, path)["points"]
        assert t.num_rows == len(points) > 400
        assert epochs(t["ts"]) == [seconds(p["ts"]) for p in points]
        assert t["value"].to_pylist() == [p["value"] for p in points]
        assert t["step_min"].to_pylist() == [p["step_min"] for p in points]
        assert t["quality"].to_pylist() == [p["quality"] for p in points]
        assert t.schema.metadata[b"meter"] == meter.encode()
        assert t.schema.field("value").metadata[b"unit"] == b"W"


def test_energy_in_arrow_is_the_json_energy_with_its_tariff_split(server):
    conn, meter = server
    path = f"/v1/meters/{meter}/energy?{RANGE}&period=day&tariff=HC:22:00-06:00"
    t = table(conn, path + "&format=arrow")
    periods = answer(conn, path)["periods"]
    assert t.num_rows == len(periods) == 10
    assert epochs(t["start"]) == [seconds(p["start"]) for p in periods]
    assert epochs(t["end"]) == [seconds(p["end"]) for p in periods]
    assert t["energy_wh"].to_pylist() == [p["energy_wh"] for p in periods]
    assert t["hc_wh"].to_pylist() == [p["by_tariff"]["HC"] for p in periods]
    assert t["source"].to_pylist() == [p["source"] for p in periods]
    # The DST day is 23 hours: 46 expected half-hours.
    assert 46 in t["expected_points"].to_pylist()


def test_the_fleet_curve_in_arrow_is_the_json_fleet_curve_across_months(server):
    conn, _ = server
    path = f"/v1/fleet/curve?{RANGE}"
    t = table(conn, path, accept=ARROW)
    points = answer(conn, path)["points"]
    assert t.num_rows == len(points) == 10 * 48 - 2
    assert epochs(t["ts"]) == [seconds(p["ts"]) for p in points]
    assert t["value"].to_pylist() == [p["value"] for p in points]
    assert t["meters"].to_pylist() == [p["meters"] for p in points]


def test_fleet_energy_in_arrow_is_the_json_fleet_energy_row_for_row(server):
    conn, _ = server
    path = f"/v1/fleet/energy?{RANGE}&period=day"
    t = table(conn, path + "&format=arrow")
    rows = [(m["meter"], seconds(p["start"]), seconds(p["end"]), p["energy_wh"])
            for m in answer(conn, path)["meters"] for p in m["periods"]]
    assert len(rows) == 12 * 10
    got = list(zip(t["meter_id"].to_pylist(), epochs(t["start"]), epochs(t["end"]),
                   t["energy_wh"].to_pylist()))
    assert got == rows


def test_an_error_asked_in_arrow_is_json_with_its_status(server):
    conn, meter = server
    for path, status in [
        (f"/v1/meters/09999999999999/curve?{RANGE}&format=arrow", 404),
        (f"/v1/meters/{meter}/peak?{RANGE}&format=arrow", 400),
        (f"/v1/fleet/energy?{RANGE}&meters=09999999999999&format=arrow", 404),
    ]:
        got, ctype, body = get(conn, path)
        assert (got, ctype) == (status, "application/json"), body[:300]
        assert json.loads(body)["error"]["message"]
