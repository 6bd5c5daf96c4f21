"""Side-by-side suite: Courbe against DuckDB and ClickHouse (chdb) on one generated fleet.

Driven by run.sh. `python peers.py suite ...` generates the CSV (or reuses the one generated with
the same arguments), loads every system into a fresh store, runs each peer in a process of its
own (`python peers.py peer duckdb|clickhouse`) so that peak memory is measured per system, asks
the five questions of every system, checks that every system loaded the same points and that the
answers agree in full, and prints one table (and writes results.json). Exit status 1 when a
loaded count or an answer differs.

Counted fairly (issue 14):
- load = everything until the queries run at the reported speed: Courbe `ingest` + `compact`
  (every query runs on the compacted store), DuckDB `CREATE TABLE AS` + `CHECKPOINT`, ClickHouse
  `INSERT` + `OPTIMIZE FINAL`;
- ClickHouse is partitioned by month (`PARTITION BY toYYYYMM(ts)`) and its table uses the
  smallest codecs of a study run first on the same data (untimed);
- every latency is what a Python caller pays to hold the answer as Python values: a list of rows
  of int/float/str, the same rows for every system (Courbe: HTTP body read, `json.loads`, RFC 3339
  instants turned into Unix seconds; DuckDB: `fetchall()` or its DataFrame's columns zipped into
  rows; ClickHouse: `JSONCompact` read with `json.loads` or its DataFrame's columns zipped into
  rows; for each peer and question the faster of its two ways counts);
- every store is written into a directory the suite has just emptied, and checked empty first.

Questions (M = the first meter of the fleet, year = 2024 in Europe/Paris):
  Q1 M's curve over the year            Q2 M's daily energy over the year (Paris days)
  Q3 M's monthly peak with its instant  Q4 half-hourly total of all meters over one Paris day: 2024-06-15 for a year, the middle day
     of a shorter span (so that no answer is empty; an empty answer fails the suite)
  Q5 monthly energy of every meter over the year
Energy of a point: value_w * step_min / 60 Wh. Peak ties go to the earliest instant.

`python peers.py untrained ...` reports bytes per point on data the format's rANS tables were not
trained on (the real Enedis export of the fixtures, generated fleets at steps outside the
training set) next to the trained family, for Courbe and for ClickHouse with its best codecs.
"""

import argparse
import http.client
import json
import lzma
import os
import re
import shutil
import statistics
import struct
import subprocess
import sys
import time
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
METER = "09111642617347"
YEAR_FROM_LOCAL, YEAR_TO_LOCAL = "2024-01-01", "2025-01-01"
YEAR_FROM_UTC, YEAR_TO_UTC = "2023-12-31 23:00:00", "2024-12-31 23:00:00"
QUESTIONS = ["Q1", "Q2", "Q3", "Q4", "Q5"]
WORK_MARKER = ".courbe-peers-work"
CSV_COLUMNS = "meter_id String, ts String, value_w Int32, quality String, step_min UInt8"


def epoch(text):
    return int(datetime.fromisoformat(text).timestamp())


def dir_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            total += os.path.getsize(os.path.join(root, f))
    return total


def fresh_dir(path):
    """Empties `path` (a store directory of the suite's own work dir) and checks that it is gone,
    so that no store starts with data of an earlier run."""
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)
    if os.path.exists(path):
        sys.exit(f"{path} still exists after wiping it")
    return path


def timed_answers(fn, reps):
    """Calls fn once (warm: the first call pays for opening files and caches; its rows are the
    answer that is compared), then reps times; returns (rows, median ms). Every timed call must
    return as many rows as the warm one, so that the time is that of the answer compared."""
    rows = fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        again = fn()
        times.append((time.perf_counter() - t) * 1e3)
        if len(again) != len(rows):
            sys.exit(f"a repeated question gave {len(again)} rows, the first {len(rows)}")
    return rows, statistics.median(times)


def fastest_answers(q, decoders, reps):
    """Question q fetched by each of a peer's ways to get Python rows (name -> function): each is
    timed, their rows must agree (as answers of different systems must), and the fastest is the
    peer's figure. Returns (rows, median ms, name of the fastest, {name: median ms})."""
    timed = {name: timed_answers(fn, reps) for name, fn in decoders.items()}
    first = next(iter(timed.values()))[0]
    for name, (rows, _) in timed.items():
        why = agree(rows, first, q)
        if why:
            sys.exit(f"{q}: the peer's ways of fetching disagree ({name}): {why}")
    best = min(timed, key=lambda name: timed[name][1])
    return timed[best][0], timed[best][1], best, {name: ms for name, (_, ms) in timed.items()}


def frame_rows(frame):
    """A pandas DataFrame as rows, each column's values converted by its own dtype (a frame's
    `values` would turn all-integer rows of mixed widths into floats)."""
    return list(zip(*(frame.iloc[:, i].tolist() for i in range(frame.shape[1])), strict=True))


def run_child(cmd, **kw):
    """Runs cmd, returns (seconds, peak RSS MiB, stdout)."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, **kw)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"{' '.join(cmd)} failed with status {code}")
    return seconds, usage.ru_maxrss / 1024, out


def fleet_day(days):
    """Q4's Paris day for a fleet of `days` days from 2024-01-01: (local day, next local day,
    UTC start, UTC end) of the day min(days // 2, 166) after 2024-01-01 (2024-06-15 for a year)."""
    paris = ZoneInfo("Europe/Paris")
    day = date(2024, 1, 1) + timedelta(days=min(days // 2, 166))
    bounds = [datetime.combine(d, datetime.min.time(), paris).astimezone(timezone.utc)
              for d in (day, day + timedelta(days=1))]
    return (day.isoformat(), (day + timedelta(days=1)).isoformat(),
            *(b.strftime("%Y-%m-%d %H:%M:%S") for b in bounds))


def question_sql(table, days):
    _, _, day_from_utc, day_to_utc = fleet_day(days)
    return {q: sql.format(day_from_utc=day_from_utc, day_to_utc=day_to_utc) if q == "Q4" else sql
            for q, sql in table.items()}


def csv_points(path):
    with open(path, "rb") as f:
        return sum(1 for _ in f) - 1


# ---------------------------------------------------------------- DuckDB

DUCK_SQL = {
    "Q1": f"""SELECT epoch(ts)::BIGINT, value_w FROM readings
        WHERE meter_id = '{METER}' AND ts >= TIMESTAMPTZ '{YEAR_FROM_UTC}+00'
          AND ts < TIMESTAMPTZ '{YEAR_TO_UTC}+00' ORDER BY ts""",
    "Q2": f"""SELECT epoch(date_trunc('day', ts))::BIGINT AS d,
               sum(value_w * step_min)::DOUBLE / 60 FROM readings
        WHERE meter_id = '{METER}' AND ts >= TIMESTAMPTZ '{YEAR_FROM_UTC}+00'
          AND ts < TIMESTAMPTZ '{YEAR_TO_UTC}+00' GROUP BY d ORDER BY d""",
    "Q3": f"""SELECT epoch(m)::BIGINT, value_w, epoch(ts)::BIGINT FROM (
          SELECT date_trunc('month', ts) AS m, value_w, ts,
                 row_number() OVER (PARTITION BY date_trunc('month', ts)
                                    ORDER BY value_w DESC, ts) AS rn
          FROM readings WHERE meter_id = '{METER}'
            AND ts >= TIMESTAMPTZ '{YEAR_FROM_UTC}+00' AND ts < TIMESTAMPTZ '{YEAR_TO_UTC}+00')
        WHERE rn = 1 ORDER BY m""",
    "Q4": """SELECT epoch(ts)::BIGINT AS t, sum(value_w), count(*) FROM readings
        WHERE ts >= TIMESTAMPTZ '{day_from_utc}+00' AND ts < TIMESTAMPTZ '{day_to_utc}+00'
        GROUP BY ts ORDER BY ts""",
    "Q5": f"""SELECT meter_id, epoch(date_trunc('month', ts))::BIGINT AS m,
               sum(value_w * step_min)::DOUBLE / 60 FROM readings
        WHERE ts >= TIMESTAMPTZ '{YEAR_FROM_UTC}+00' AND ts < TIMESTAMPTZ '{YEAR_TO_UTC}+00'
        GROUP BY meter_id, m""",
}


def peer_duckdb(csv, store, reps, days, queries=True):
    import duckdb

    os.makedirs(fresh_dir(store))
    path = os.path.join(store, "duckdb.db")
    con = duckdb.connect(path)
    con.execute("SET TimeZone = 'Europe/Paris'")
    con.execute("CREATE TYPE quality AS ENUM ('measured', 'estimated', 'corrected')")
    t = time.perf_counter()
    # Best practice for time series: rows sorted by series then time (zone maps prune, runs
    # compress); DuckDB picks each column's compression (ALP, bit-packing, dictionary, RLE).
    con.execute(
        f"""CREATE TABLE readings AS SELECT * FROM read_csv('{csv}', header = true,
            columns = {{'meter_id': 'VARCHAR', 'ts': 'TIMESTAMPTZ', 'value_w': 'INTEGER',
                        'quality': 'quality', 'step_min': 'SMALLINT'}})
            ORDER BY meter_id, ts"""
    )
    con.execute("CHECKPOINT")
    load_s = time.perf_counter() - t
    points, meters = con.execute("SELECT count(*), count(DISTINCT meter_id) FROM readings").fetchone()
    disk = dir_bytes(store)
    answers, latency, fetch, fetch_ms = {}, {}, {}, {}
    if queries:
        for q in QUESTIONS:
            sql = question_sql(DUCK_SQL, days)[q]
            answers[q], latency[q], fetch[q], fetch_ms[q] = fastest_answers(q, {
                "fetchall": lambda: con.execute(sql).fetchall(),
                "df columns": lambda: frame_rows(con.execute(sql).df()),
            }, reps)
    con.close()
    return {
        "points": points,
        "meters": meters,
        "load_s": load_s,
        "bytes": disk,
        "answers": answers,
        "latency_ms": latency,
        "fetched_by": fetch,
        "fetch_ways_ms": fetch_ms,
    }


# ---------------------------------------------------------------- ClickHouse (chdb)

def ch_year(col="ts"):
    return (f"{col} >= toDateTime('{YEAR_FROM_UTC}', 'UTC') "
            f"AND {col} < toDateTime('{YEAR_TO_UTC}', 'UTC')")


CH_MONTH = "toUnixTimestamp(toDateTime(toStartOfMonth(ts, 'Europe/Paris'), 'Europe/Paris'))"
# 64-bit integers (sums, counts) as JSON numbers, not strings: the caller gets ints.
CH_JSON = " SETTINGS output_format_json_quote_64bit_integers = 0"
CH_SQL = {
    "Q1": f"""SELECT toUnixTimestamp(ts), value_w FROM readings
        WHERE meter_id = '{METER}' AND {ch_year()} ORDER BY ts""",
    "Q2": f"""SELECT toUnixTimestamp(toStartOfDay(ts, 'Europe/Paris')) AS d,
               sum(value_w * step_min) / 60 FROM readings
        WHERE meter_id = '{METER}' AND {ch_year()} GROUP BY d ORDER BY d""",
    "Q3": f"""SELECT {CH_MONTH} AS m, max(value_w),
               argMax(toUnixTimestamp(ts), (value_w, -toInt64(toUnixTimestamp(ts))))
        FROM readings WHERE meter_id = '{METER}' AND {ch_year()} GROUP BY m ORDER BY m""",
    "Q4": """SELECT toUnixTimestamp(ts) AS t, sum(value_w), count() FROM readings
        WHERE ts >= toDateTime('{day_from_utc}', 'UTC') AND ts < toDateTime('{day_to_utc}', 'UTC')
        GROUP BY t ORDER BY t""",
    "Q5": f"""SELECT meter_id, {CH_MONTH} AS m, sum(value_w * step_min) / 60 FROM readings
        WHERE {ch_year()} GROUP BY meter_id, m""",
}

# Codecs tried per column (ClickHouse refuses Gorilla on integers). The study stores the fleet
# under every candidate; the timed table then uses the smallest of each column, whatever its
# cost at load time (ZSTD(19) included: the byte goal is against ClickHouse's smallest).
CH_CODECS = {
    "meter_id": ("LowCardinality(String)", ["LZ4", "ZSTD(3)"]),
    "ts": ("DateTime('UTC')", ["DoubleDelta", "DoubleDelta, LZ4", "DoubleDelta, ZSTD(1)",
                               "DoubleDelta, ZSTD(3)", "Delta, ZSTD(1)", "Delta, ZSTD(3)",
                               "Delta, ZSTD(9)", "T64, ZSTD(3)"]),
    "value_w": ("Int32", ["LZ4", "ZSTD(3)", "ZSTD(9)", "Delta, ZSTD(3)", "Delta, ZSTD(9)",
                          "DoubleDelta, ZSTD(3)", "T64, ZSTD(3)", "T64, ZSTD(9)",
                          "T64, ZSTD(19)", "Delta, T64, ZSTD(3)", "T64, LZ4"]),
    "quality": ("Enum8('measured' = 0, 'estimated' = 1, 'corrected' = 2)", ["LZ4", "ZSTD(3)"]),
    "step_min": ("UInt8", ["LZ4", "ZSTD(3)", "T64, ZSTD(1)", "T64, ZSTD(3)"]),
}
CH_SELECT = {
    "meter_id": "meter_id", "ts": "parseDateTimeBestEffort(ts, 'UTC')", "value_w": "value_w",
    "quality": "quality", "step_min": "step_min",
}
CH_PARTS = ("ENGINE = MergeTree PARTITION BY toYYYYMM({ts}) ORDER BY (meter_id, {ts}) "
            "SETTINGS min_bytes_for_wide_part = 0, min_rows_for_wide_part = 0")


def ch_text(sess, sql):
    return sess.query(sql, "TabSeparated").bytes().decode()


def ch_codec_study(sess, csv):
    """Loads the CSV once into a table holding every column under every candidate codec
    (partitioned and sorted as the timed table), merges it, and returns the compressed bytes
    of each (column, codec) and the smallest codec of each column."""
    cols, select = [], []
    for col, (kind, codecs) in CH_CODECS.items():
        for i, codec in enumerate(codecs):
            cols.append(f"{col}_{i} {kind} CODEC({codec})")
            select.append(f"{CH_SELECT[col]} AS {col}_{i}")
    sess.query(f"CREATE TABLE study ({', '.join(cols)}) "
               + CH_PARTS.format(ts="ts_0").replace("meter_id,", "meter_id_0,"))
    sess.query(f"INSERT INTO study SELECT {', '.join(select)} "
               f"FROM file('{csv}', 'CSVWithNames', '{CSV_COLUMNS}')")
    sess.query("OPTIMIZE TABLE study FINAL")
    sizes = {}
    for line in ch_text(sess, "SELECT name, data_compressed_bytes FROM system.columns "
                              "WHERE database = 'bench' AND table = 'study'").splitlines():
        name, b = line.split("\t")
        col, i = name.rsplit("_", 1)
        sizes[f"{col} {CH_CODECS[col][1][int(i)]}"] = int(b)
    sess.query("DROP TABLE study")
    best = {col: min(codecs, key=lambda c, col=col: sizes[f"{col} {c}"])
            for col, (_, codecs) in CH_CODECS.items()}
    return sizes, best


def ch_rows(sess, sql):
    return json.loads(sess.query(sql + CH_JSON, "JSONCompact").bytes())["data"]


def peer_clickhouse(csv, store, reps, days, queries=True):
    from chdb import session

    sess = session.Session(fresh_dir(store))
    sess.query("CREATE DATABASE IF NOT EXISTS bench")
    sess.query("USE bench")
    if ch_text(sess, "SELECT count() FROM system.tables WHERE database = 'bench'").strip() != "0":
        sys.exit(f"{store}: the ClickHouse store is not empty")
    study_t = time.perf_counter()
    sizes, best = ch_codec_study(sess, csv)
    study_s = time.perf_counter() - study_t

    # Best practice for time series: MergeTree partitioned by month and sorted by (meter, time),
    # LowCardinality ids, the codecs the study found smallest on this very data.
    cols = ", ".join(f"{col} {kind} CODEC({best[col]})" for col, (kind, _) in CH_CODECS.items())
    sess.query(f"CREATE TABLE readings ({cols}) " + CH_PARTS.format(ts="ts"))
    t = time.perf_counter()
    sess.query(
        f"""INSERT INTO readings SELECT {', '.join(CH_SELECT[c] for c in CH_CODECS)}
            FROM file('{csv}', 'CSVWithNames', '{CSV_COLUMNS}')"""
    )
    insert_s = time.perf_counter() - t
    t = time.perf_counter()
    sess.query("OPTIMIZE TABLE readings FINAL")
    optimize_s = time.perf_counter() - t
    points, meters = (int(x) for x in ch_text(
        sess, "SELECT count(), uniqExact(meter_id) FROM readings").split())
    part_bytes = int(ch_text(
        sess, "SELECT sum(bytes_on_disk) FROM system.parts WHERE database = 'bench' "
              "AND table = 'readings' AND active"))
    parts = int(ch_text(
        sess, "SELECT count() FROM system.parts WHERE database = 'bench' "
              "AND table = 'readings' AND active"))
    column_bytes = {}
    for line in ch_text(sess, "SELECT name, data_compressed_bytes FROM system.columns "
                              "WHERE database = 'bench' AND table = 'readings'").splitlines():
        name, b = line.split("\t")
        column_bytes[name] = int(b)

    answers, latency, fetch, fetch_ms = {}, {}, {}, {}
    if queries:
        for q in QUESTIONS:
            sql = question_sql(CH_SQL, days)[q]
            answers[q], latency[q], fetch[q], fetch_ms[q] = fastest_answers(q, {
                "JSONCompact": lambda: ch_rows(sess, sql),
                "DataFrame columns": lambda: frame_rows(sess.query(sql, "DataFrame")),
            }, reps)
    sess.close()
    return {
        "points": points,
        "meters": meters,
        "load_s": insert_s + optimize_s,
        "insert_s": insert_s,
        "optimize_s": optimize_s,
        "codec_study_s": study_s,
        "bytes": part_bytes,
        "parts": parts,
        "codecs": best,
        "column_bytes": column_bytes,
        "codec_study_bytes": sizes,
        "answers": answers,
        "latency_ms": latency,
        "fetched_by": fetch,
        "fetch_ways_ms": fetch_ms,
    }


# ---------------------------------------------------------------- Courbe

def courbe_paths(days):
    day, next_day, _, _ = fleet_day(days)
    m = f"/v1/meters/{METER}"
    y = f"from={YEAR_FROM_LOCAL}&to={YEAR_TO_LOCAL}"
    return {
        # Compact runs, the API's format for charts; the points format is timed apart.
        "Q1": f"{m}/curve?{y}&format=columns",
        "Q2": f"{m}/energy?{y}&period=day",
        "Q3": f"{m}/peak?{y}&period=month",
        "Q4": f"/v1/fleet/curve?from={day}&to={next_day}",
        "Q5": f"/v1/fleet/energy?{y}&period=month",
    }


def courbe_q1(body):
    rows = []
    for run in json.loads(body)["runs"]:
        start, step = epoch(run["start"]), 60 * run["step_min"]
        rows += [(start + i * step, v) for i, v in enumerate(run["values"])]
    return rows


def courbe_q1_points(body):
    return [(epoch(p["ts"]), p["value"]) for p in json.loads(body)["points"]]


def courbe_q2(body):
    # A day without a reading is a period of 0 points; the peers have no row for it.
    return [(epoch(p["start"]), p["energy_wh"]) for p in json.loads(body)["periods"]
            if p["points"] > 0]


def courbe_q3(body):
    return [(epoch(p["start"]), p["value"], epoch(p["at"])) for p in json.loads(body)["periods"]
            if p["value"] is not None]


def courbe_q4(body):
    return [(epoch(p["ts"]), p["value"], p["meters"]) for p in json.loads(body)["points"]]


def courbe_q5(body):
    return [(m["meter"], epoch(p["start"]), p["energy_wh"]) for m in json.loads(body)["meters"]
            for p in m["periods"]]


COURBE_DECODE = {"Q1": courbe_q1, "Q2": courbe_q2, "Q3": courbe_q3, "Q4": courbe_q4, "Q5": courbe_q5}


def courbe_stats(courbe, data):
    """`courbe stats` as a dict: meters, points, segments, bytes on disk."""
    out = subprocess.run([courbe, "--data", data, "stats"], check=True, capture_output=True,
                         text=True).stdout
    found = re.fullmatch(r"meters (\d+), points (\d+), segments (\d+), bytes on disk (\d+), .*",
                         out.strip())
    if not found:
        sys.exit(f"courbe stats: unexpected output {out!r}")
    meters, points, segments, bytes_ = (int(x) for x in found.groups())
    return {"meters": meters, "points": points, "segments": segments, "bytes": bytes_}


def courbe_load(courbe, csv, data):
    """Ingests the CSV into an emptied directory and compacts it; returns the figures."""
    fresh_dir(data)
    ingest_s, ingest_rss, _ = run_child([courbe, "--data", data, "ingest", csv],
                                        stderr=subprocess.DEVNULL)
    bytes_ingested = dir_bytes(data)
    compact_s, compact_rss, _ = run_child([courbe, "--data", data, "compact"],
                                          stderr=subprocess.DEVNULL)
    stats = courbe_stats(courbe, data)
    return {
        "points": stats["points"],
        "meters": stats["meters"],
        "segments": stats["segments"],
        "load_s": ingest_s + compact_s,
        "ingest_s": ingest_s,
        "compact_s": compact_s,
        "ingest_peak_rss_mib": ingest_rss,
        "compact_peak_rss_mib": compact_rss,
        "bytes_after_ingest": bytes_ingested,
        "bytes": dir_bytes(data),
    }


def courbe_run(courbe, csv, data, reps, port, days):
    result = courbe_load(courbe, csv, data)
    env = dict(os.environ, RUST_LOG="warn")
    server = subprocess.Popen([courbe, "--data", data, "serve", "--listen", f"127.0.0.1:{port}"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        conn = None
        for _ in range(600):
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
                conn.request("GET", "/healthz")
                conn.getresponse().read()
                break
            except OSError:
                time.sleep(0.1)
        else:
            sys.exit("courbe serve did not answer /healthz")

        def get(path):
            conn.request("GET", path)
            r = conn.getresponse()
            body = r.read()
            if r.status != 200:
                sys.exit(f"GET {path}: {r.status} {body[:300]!r}")
            return body

        paths = courbe_paths(days)
        answers, latency, fetch_only = {}, {}, {}
        for q in QUESTIONS:
            answers[q], latency[q] = timed_answers(lambda: COURBE_DECODE[q](get(paths[q])), reps)
            # The same request, body read and not decoded: what the decoding costs the caller.
            _, fetch_only[q] = timed_answers(lambda: get(paths[q]), reps)
        q1_points = paths["Q1"].replace("&format=columns", "")
        points_rows, points_ms = timed_answers(lambda: courbe_q1_points(get(q1_points)), reps)
        if points_rows != answers["Q1"]:
            sys.exit("Q1: the points format and the compact runs differ")
        serve_rss = None
        try:
            with open(f"/proc/{server.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        serve_rss = int(line.split()[1]) / 1024
        except OSError:
            pass
    finally:
        server.terminate()
        server.wait()
    result.update({
        "serve_peak_rss_mib": serve_rss,
        "answers": answers,
        "latency_ms": latency,
        "fetch_only_ms": fetch_only,
        "q1_points_format_ms": points_ms,
        "paths": paths,
    })
    return result


# ---------------------------------------------------------------- comparison

def agree(a, b, q, zero_is_missing=False):
    """Every row of a against every row of b: same keys, same number of cells, numbers within
    1e-9 relative. With zero_is_missing (a is Courbe's Q5), a row of a of 0 Wh stands for a
    row b does not have (Courbe lists every period of the range). Returns None or a reason."""
    key_len = {"Q1": 1, "Q2": 1, "Q3": 1, "Q4": 1, "Q5": 2}[q]
    da = {tuple(r[:key_len]): r[key_len:] for r in a}
    db = {tuple(r[:key_len]): r[key_len:] for r in b}
    if len(da) != len(a) or len(db) != len(b):
        return "duplicate keys"
    if zero_is_missing:
        da = {k: v for k, v in da.items() if k in db or any(float(x) != 0.0 for x in v)}
    if da.keys() != db.keys():
        only_a = sorted(da.keys() - db.keys())[:3]
        only_b = sorted(db.keys() - da.keys())[:3]
        return f"{len(da)} vs {len(db)} rows; only in first {only_a}, only in second {only_b}"
    for k, va in da.items():
        vb = db[k]
        if len(va) != len(vb):
            return f"at {k}: {len(va)} vs {len(vb)} cells"
        for x, y in zip(va, vb, strict=True):
            if abs(float(x) - float(y)) > 1e-9 * max(1.0, abs(float(x)), abs(float(y))):
                return f"at {k}: {va} vs {vb}"
    return None


def check_counts(expected, results, systems):
    """Every system must hold exactly the CSV's points and meters."""
    wrong = []
    for s in systems:
        for what in ("points", "meters"):
            if results[s][what] != expected[what]:
                wrong.append(f"{s} loaded {results[s][what]} {what}, the CSV has {expected[what]}")
    return wrong


def prepare_work(work):
    """The work dir is the suite's own: created with a marker, and refused when it exists with
    files but without the marker (so that the suite never wipes someone else's directory)."""
    if os.path.isdir(work) and os.listdir(work) and not os.path.exists(
            os.path.join(work, WORK_MARKER)):
        sys.exit(f"{work} is not empty and is not a work dir of this suite: refusing to use it")
    os.makedirs(work, exist_ok=True)
    open(os.path.join(work, WORK_MARKER), "a").close()


def generated_csv(courbe, work, meters, days, seed=1, step=30, start=None):
    """The fleet's CSV, generated once per set of arguments; reused only when its record (the
    arguments, its size and point count) matches."""
    name = f"fleet-{meters}x{days}-seed{seed}-step{step}" + (f"-from{start}" if start else "")
    csv = os.path.join(work, name + ".csv")
    record_path = csv + ".json"
    args = [courbe, "gen", "--meters", str(meters), "--days", str(days), "--seed", str(seed),
            "--step", str(step)] + (["--start", start] if start else [])
    if os.path.exists(csv) and os.path.exists(record_path):
        with open(record_path) as f:
            record = json.load(f)
        if record["args"] == args[1:] and record["bytes"] == os.path.getsize(csv):
            return csv, record["points"], record["meters"]
    print(f"generating {' '.join(args[1:])} -> {csv}", file=sys.stderr)
    with open(csv + ".tmp", "wb") as f:
        subprocess.run(args, stdout=f, check=True)
    os.rename(csv + ".tmp", csv)
    points = csv_points(csv)
    with open(csv, "rb") as f:
        f.readline()
        meter_ids = {line.split(b",", 1)[0] for line in f}
    with open(record_path, "w") as f:
        json.dump({"args": args[1:], "bytes": os.path.getsize(csv), "points": points,
                   "meters": len(meter_ids)}, f)
    return csv, points, len(meter_ids)


def suite(args):
    work = os.path.abspath(args.work)
    prepare_work(work)
    csv, points, meters = generated_csv(args.courbe, work, args.meters, args.days, 1, args.step)
    stores = os.path.join(work, "stores")
    fresh_dir(stores)
    os.makedirs(stores)
    results = {"meters": meters, "days": args.days, "step_min": args.step, "points": points,
               "csv_bytes": os.path.getsize(csv), "reps": args.reps,
               "q4_day": fleet_day(args.days)[0]}
    with open("/proc/loadavg") as f:
        results["loadavg_start"] = f.read().split()[:3]
    print("loading courbe", file=sys.stderr)
    results["courbe"] = courbe_run(args.courbe, csv, os.path.join(stores, "courbe"), args.reps,
                                   args.port, args.days)
    for peer in args.peers:
        print(f"loading {peer}", file=sys.stderr)
        _, rss, out = run_child([sys.executable, __file__, "peer", peer, "--csv", csv,
                                 "--store", os.path.join(stores, peer), "--reps", str(args.reps),
                                 "--days", str(args.days)])
        r = json.loads(out)
        r["peak_rss_mib"] = rss
        results[peer] = r
    with open("/proc/loadavg") as f:
        results["loadavg_end"] = f.read().split()[:3]
    systems = ["courbe"] + args.peers
    problems = check_counts({"points": points, "meters": meters}, results, systems)
    for i, a in enumerate(systems):
        for b in systems[i + 1:]:
            for q in QUESTIONS:
                why = agree(results[a]["answers"][q], results[b]["answers"][q], q,
                            zero_is_missing=(a == "courbe" and q == "Q5"))
                if why:
                    problems.append(f"{q} {a} vs {b}: {why}")
    for s in systems:
        for q in QUESTIONS:
            if not results[s]["answers"][q]:
                problems.append(f"{q}: {s} answered no row (an empty answer proves nothing)")
    results["agree"] = not problems
    if "clickhouse" in args.peers:
        results["goals"] = goals(results)
    results["disagreements"] = problems
    for s in systems:
        results[s]["answer_rows"] = {q: len(results[s]["answers"][q]) for q in QUESTIONS}
        del results[s]["answers"]
    with open(os.path.join(work, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    print_table(results, args.peers)
    return 0 if results["agree"] else 1


def print_table(r, peers):
    pts = r["points"]
    print(f"\n{r['meters']} meters x {r['days']} days at {r['step_min']} min: {pts} points, CSV"
          f" {r['csv_bytes'] / 1e6:.0f} MB; load average {' '.join(r['loadavg_start'])} at the start,"
          f" {' '.join(r['loadavg_end'])} at the end; Q4 day {r['q4_day']}")
    print(f"load = until queries run as timed (courbe ingest + compact, duckdb create + checkpoint,"
          f" clickhouse insert + optimize final); latency = median of {r['reps']} runs after one"
          f" warm run, answer decoded into Python rows")
    head = f"{'system':<24}{'load pts/s':>12}{'B/point':>9}" + "".join(f"{q + ' ms':>10}" for q in QUESTIONS)
    print(head)
    print("-" * len(head))
    c = r["courbe"]

    def row(name, load_s, bytes_, lat):
        print(f"{name:<24}{pts / load_s:>12,.0f}{bytes_ / pts:>9.3f}"
              + "".join(f"{lat[q]:>10.2f}" for q in QUESTIONS))

    row("courbe (HTTP, JSON)", c["load_s"], c["bytes"], c["latency_ms"])
    for p in peers:
        row(f"{p} (in process)", r[p]["load_s"], r[p]["bytes"], r[p]["latency_ms"])
    for p in peers:
        lat = r[p]["latency_ms"]
        print(f"{'courbe vs ' + p:<24}{r[p]['load_s'] / c['load_s']:>11.2f}x"
              f"{c['bytes'] / r[p]['bytes']:>8.2f}x"
              + "".join(f"{lat[q] / c['latency_ms'][q]:>9.1f}x" for q in QUESTIONS))
    print("(ratios: load = courbe speed / peer speed; B/point = courbe / peer;"
          " Q = peer latency / courbe latency, > 1 means courbe is faster)")
    print(f"courbe: load {c['ingest_s']:.2f} s ingest + {c['compact_s']:.2f} s compact"
          f" ({c['segments']} segments); bytes/point after ingest"
          f" {c['bytes_after_ingest'] / pts:.3f}, after compact {c['bytes'] / pts:.3f}")
    print("courbe: body read, not decoded (ms): "
          + ", ".join(f"{q} {c['fetch_only_ms'][q]:.2f}" for q in QUESTIONS)
          + f"; Q1 in the points format, decoded: {c['q1_points_format_ms']:.2f}")
    print(f"courbe: ingest peak RSS {c['ingest_peak_rss_mib']:.0f} MiB, compact"
          f" {c['compact_peak_rss_mib']:.0f} MiB, serve {c['serve_peak_rss_mib'] or 0:.0f} MiB")
    for p in peers:
        line = f"{p}: load {r[p]['load_s']:.2f} s"
        if p == "clickhouse":
            ch = r[p]
            line += (f" ({ch['insert_s']:.2f} s insert + {ch['optimize_s']:.2f} s optimize;"
                     f" codec study {ch['codec_study_s']:.1f} s, not counted), {ch['parts']} parts,"
                     f" codecs " + "; ".join(f"{k} {v}" for k, v in ch["codecs"].items()))
        print(line + f"; peak RSS {r[p]['peak_rss_mib']:.0f} MiB")
        print(f"{p}: fetched by (ms) " + "; ".join(
            f"{q} " + ", ".join(f"{w} {ms:.2f}" for w, ms in r[p]["fetch_ways_ms"][q].items())
            for q in QUESTIONS))
    print(f"loaded: {pts} points, {r['meters']} meters in the CSV; answers rows: "
          + ", ".join(f"{q} {c['answer_rows'][q]}" for q in QUESTIONS))
    if "goals" in r:
        print("goals (issue 14):")
        for name, g in r["goals"].items():
            print(f"  {name:<46}{g['ratio']:>8.2f}x  {'met' if g['met'] else 'MISSED'}")
    print("counts and answers agree: " + ("yes, every system, all five questions, in full"
                                          if r["agree"] else "NO\n  " + "\n  ".join(r["disagreements"])))


def goals(r):
    c = r["courbe"]
    ch = r["clickhouse"]
    lines = []
    if "duckdb" in r:
        ratio = r["duckdb"]["load_s"] / c["load_s"]
        lines.append(("load >= 1.0x DuckDB (compaction included)", ratio, ratio >= 1.0, "x"))
    ratio = c["bytes"] / ch["bytes"]
    lines.append(("bytes/point <= 0.8x ClickHouse best codecs", ratio, ratio <= 0.8, "x"))
    peers = [p for p in ("duckdb", "clickhouse") if p in r]
    for q in ("Q1", "Q2", "Q3"):
        fastest = min(r[p]["latency_ms"][q] for p in peers)
        ratio = fastest / c["latency_ms"][q]
        lines.append((f"{q} >= 5x the faster peer", ratio, ratio >= 5.0, "x"))
    for q in ("Q4", "Q5"):
        ratio = ch["latency_ms"][q] / c["latency_ms"][q]
        lines.append((f"{q} >= 10x ClickHouse", ratio, ratio >= 10.0, "x"))
    return {name: {"ratio": ratio, "met": met} for name, ratio, met, _ in lines}


# ---------------------------------------------------------------- untrained data

def enedis_to_native(src, dst):
    """The Enedis export (`Horodate;Valeur`, Horodate the END of the interval with its offset)
    as native CSV (interval start in UTC). A line's step is the time since the previous line,
    failing that the time to the next one, failing that the step before (the parser's rule,
    courbe/src/ingest/csv.rs); empty values are gaps. Returns the number of points written."""
    steps = {5, 10, 15, 30, 60}
    with open(src, encoding="utf-8-sig") as f:
        lines = f.read().splitlines()
    meter = lines[1].split(";")[0]
    header = lines.index("Horodate;Valeur")
    rows = [line.split(";") for line in lines[header + 1:] if line]
    ends = [epoch(h) for h, _ in rows]

    def as_step(seconds):
        return seconds // 60 if seconds % 60 == 0 and seconds // 60 in steps else None

    written, previous = 0, None
    with open(dst, "w") as out:
        out.write("meter_id,ts,value_w,quality,step_min\n")
        for i, (_, value) in enumerate(rows):
            before = as_step(ends[i] - ends[i - 1]) if i > 0 else None
            after = as_step(ends[i + 1] - ends[i]) if i + 1 < len(rows) else None
            step = before or after or previous
            if step is None:
                sys.exit(f"{src}: no step for line {i}")
            previous = step
            if value == "":
                continue
            start = datetime.fromtimestamp(ends[i] - 60 * step, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            out.write(f"{meter},{start},{int(value)},measured,{step}\n")
            written += 1
    return written


def xz_bytes_per_point(csv, meters=100):
    """xz -9 over each meter's raw little-endian i32 values (a baseline that knows nothing of
    the trained tables), bytes per point, over the first `meters` meters of the CSV (sorted by
    meter)."""
    series = {}
    with open(csv, "rb") as f:
        f.readline()
        for line in f:
            meter, _, value, _ = line.split(b",", 3)
            if meter not in series and len(series) == meters:
                break
            series.setdefault(meter, []).append(int(value))
    total = sum(len(lzma.compress(struct.pack(f"<{len(v)}i", *v), preset=9)) for v in series.values())
    return total / sum(len(v) for v in series.values())


def untrained(args):
    work = os.path.abspath(args.work)
    prepare_work(work)
    stores = os.path.join(work, "stores")
    fresh_dir(stores)
    os.makedirs(stores)
    enedis_src = os.path.join(ROOT, "tests", "data", "enedis", "Enedis_SGE_HDM_A06NW0ZI.csv")
    enedis_csv = os.path.join(work, "enedis-A06NW0ZI-native.csv")
    enedis_points = enedis_to_native(enedis_src, enedis_csv)
    with open(enedis_csv) as f:
        f.readline()
        first_day = f.readline().split(",")[1][:10]
    first, last = epoch(first_day + "T00:00:00Z"), epoch(open(enedis_csv).read().splitlines()[-1]
                                                       .split(",")[1])
    span_days = (last - first) // 86400 + 1
    datasets = [("enedis export, 1 meter (real, not trained on)", enedis_csv, enedis_points, 1)]
    one = generated_csv(args.courbe, work, 1, span_days, 1, 30, first_day)
    datasets.append((f"generated, 1 meter, same {span_days} days, 30 min (trained family)",) + one)
    for label, meters, step in [("30 min (trained family)", args.meters, 30),
                                ("60 min (step not trained on)", args.meters, 60),
                                ("5 min (step not trained on)", max(1, args.meters // 6), 5)]:
        fleet = generated_csv(args.courbe, work, meters, args.days, 1, step)
        datasets.append((f"generated, {meters} meters x {args.days} days, {label}",) + fleet)
    results = []
    for i, (label, csv, points, meters) in enumerate(datasets):
        print(f"untrained: {label}", file=sys.stderr)
        c = courbe_load(args.courbe, csv, os.path.join(stores, f"courbe-{i}"))
        if c["points"] != points:
            sys.exit(f"{label}: courbe loaded {c['points']} points, the CSV has {points}")
        row = {"data": label, "csv": os.path.basename(csv), "points": points, "meters": meters,
               "courbe_bytes": c["bytes"], "courbe_segments": c["segments"]}
        if "clickhouse" in args.peers:
            _, _, out = run_child([sys.executable, __file__, "peer", "clickhouse", "--csv", csv,
                                   "--store", os.path.join(stores, f"clickhouse-{i}"),
                                   "--no-queries"])
            ch = json.loads(out)
            if ch["points"] != points:
                sys.exit(f"{label}: clickhouse loaded {ch['points']} points, the CSV has {points}")
            row.update({"clickhouse_bytes": ch["bytes"], "clickhouse_parts": ch["parts"],
                        "clickhouse_column_bytes": sum(ch["column_bytes"].values()),
                        "clickhouse_codecs": ch["codecs"]})
        row["xz9_values_bytes_per_point"] = xz_bytes_per_point(csv)
        results.append(row)
    # The Enedis file read directly by `courbe ingest` (its own parser) must give what the
    # converted native CSV gave.
    direct = courbe_load(args.courbe, enedis_src, os.path.join(stores, "courbe-enedis-direct"))
    if direct["points"] != enedis_points:
        sys.exit(f"courbe ingest of the Enedis export: {direct['points']} points, the native"
                 f" conversion {enedis_points}")
    with open(os.path.join(work, "untrained.json"), "w") as f:
        json.dump(results, f, indent=2)
    print(f"\n{'data':<62}{'points':>11}{'courbe':>8}{'CH best':>9}{'ratio':>7}{'CH cols':>9}"
          f"{'xz-9 v':>8}{'c/xz':>6}")
    for row in results:
        pts = row["points"]
        ch = row.get("clickhouse_bytes")
        cols = row.get("clickhouse_column_bytes")
        xz = row["xz9_values_bytes_per_point"]
        print(f"{row['data']:<62}{pts:>11,}{row['courbe_bytes'] / pts:>8.3f}"
              + (f"{ch / pts:>9.3f}{row['courbe_bytes'] / ch:>6.2f}x{cols / pts:>9.3f}" if ch
                 else f"{'':>25}")
              + f"{xz:>8.3f}{row['courbe_bytes'] / pts / xz:>5.2f}x")
    print("(bytes per point. courbe: whole data dir after ingest + compact; CH best: ClickHouse's"
          " active parts on disk with the study's smallest codecs; CH cols: its compressed column"
          " data only, without marks, indexes and per-part files; xz-9 v: each meter's raw i32"
          " values under xz -9, values only, first 100 meters; c/xz: courbe / xz-9 v)")
    for row in results:
        if "clickhouse_codecs" in row:
            print(f"  {row['data']}: ClickHouse codecs "
                  + "; ".join(f"{k} {v}" for k, v in row["clickhouse_codecs"].items()))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("suite")
    s.add_argument("--courbe", required=True)
    s.add_argument("--meters", type=int, default=1000)
    s.add_argument("--days", type=int, default=365)
    s.add_argument("--step", type=int, default=30, choices=[5, 10, 15, 30, 60])
    s.add_argument("--work", default="target/peers/work")
    s.add_argument("--reps", type=int, default=10)
    s.add_argument("--port", type=int, default=18480)
    s.add_argument("--peers", nargs="*", default=["duckdb", "clickhouse"])
    u = sub.add_parser("untrained")
    u.add_argument("--courbe", required=True)
    u.add_argument("--meters", type=int, default=1000)
    u.add_argument("--days", type=int, default=365)
    u.add_argument("--work", default="target/peers/work")
    u.add_argument("--peers", nargs="*", default=["clickhouse"])
    p = sub.add_parser("peer")
    p.add_argument("system", choices=["duckdb", "clickhouse"])
    p.add_argument("--csv", required=True)
    p.add_argument("--store", required=True)
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--days", type=int, default=365)
    p.add_argument("--no-queries", action="store_true")
    args = ap.parse_args()
    if args.cmd == "suite":
        sys.exit(suite(args))
    if args.cmd == "untrained":
        sys.exit(untrained(args))
    fn = peer_duckdb if args.system == "duckdb" else peer_clickhouse
    json.dump(fn(args.csv, args.store, args.reps, args.days, queries=not args.no_queries), sys.stdout)


if __name__ == "__main__":
    main()
