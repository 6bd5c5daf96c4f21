"""Side-by-side suite: Courbe against DuckDB and ClickHouse (chdb) on one generated fleet.

Driven by run.sh. `python peers.py suite ...` generates the CSV, loads Courbe (CLI ingest,
durable), then runs each peer in a process of its own (`python peers.py peer duckdb|clickhouse`)
so that peak memory is measured per system, asks the five questions of every system, checks
that the answers agree, and prints one table (and writes results.json).

Questions (M = the first meter of the fleet, year = 2024 in Europe/Paris):
  Q1 M's curve over the year            Q2 M's daily energy over the year (Paris days)
  Q3 M's monthly peak with its instant  Q4 half-hourly total of all meters over 2024-06-15
  Q5 monthly energy of every meter over the year
Energy of a point: value_w * step_min / 60 Wh. Peak ties go to the earliest instant.
"""

import argparse
import http.client
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime

METER = "09111642617347"
YEAR_FROM_LOCAL, YEAR_TO_LOCAL = "2024-01-01", "2025-01-01"
YEAR_FROM_UTC, YEAR_TO_UTC = "2023-12-31 23:00:00", "2024-12-31 23:00:00"
DAY_LOCAL, NEXT_DAY_LOCAL = "2024-06-15", "2024-06-16"
DAY_FROM_UTC, DAY_TO_UTC = "2024-06-14 22:00:00", "2024-06-15 22:00:00"
QUESTIONS = ["Q1", "Q2", "Q3", "Q4", "Q5"]


def epoch(text):
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


def dir_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            total += os.path.getsize(os.path.join(root, f))
    return total


def median_ms(fn, reps):
    fn()  # warm: first run pays for opening files and caches
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


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
    "Q4": f"""SELECT epoch(ts)::BIGINT AS t, sum(value_w), count(*) FROM readings
        WHERE ts >= TIMESTAMPTZ '{DAY_FROM_UTC}+00' AND ts < TIMESTAMPTZ '{DAY_TO_UTC}+00'
        GROUP BY ts ORDER BY ts""",
    "Q5": f"""SELECT meter_id, epoch(date_trunc('month', ts))::BIGINT AS m,
               sum(value_w * step_min)::DOUBLE / 60 FROM readings
        WHERE ts >= TIMESTAMPTZ '{YEAR_FROM_UTC}+00' AND ts < TIMESTAMPTZ '{YEAR_TO_UTC}+00'
        GROUP BY meter_id, m""",
}


def peer_duckdb(csv, work, reps):
    import duckdb

    path = os.path.join(work, "duckdb.db")
    for p in (path, path + ".wal"):
        if os.path.exists(p):
            os.remove(p)
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
    points = con.execute("SELECT count(*) FROM readings").fetchone()[0]
    disk = os.path.getsize(path)
    answers, latency = {}, {}
    for q in QUESTIONS:
        sql = DUCK_SQL[q]
        answers[q] = [list(r) for r in con.execute(sql).fetchall()]
        latency[q] = median_ms(lambda: con.execute(sql).fetchall(), reps)
    con.close()
    return {
        "points": points,
        "load_s": load_s,
        "bytes": disk,
        "answers": answers,
        "latency_ms": latency,
    }


# ---------------------------------------------------------------- ClickHouse (chdb)

def ch_year(col="ts"):
    return (f"{col} >= toDateTime('{YEAR_FROM_UTC}', 'UTC') "
            f"AND {col} < toDateTime('{YEAR_TO_UTC}', 'UTC')")


CH_MONTH = "toUnixTimestamp(toDateTime(toStartOfMonth(ts, 'Europe/Paris'), 'Europe/Paris'))"
CH_SQL = {
    "Q1": f"""SELECT toUnixTimestamp(ts), value_w FROM readings
        WHERE meter_id = '{METER}' AND {ch_year()} ORDER BY ts""",
    "Q2": f"""SELECT toUnixTimestamp(toStartOfDay(ts, 'Europe/Paris')) AS d,
               sum(value_w * step_min) / 60 FROM readings
        WHERE meter_id = '{METER}' AND {ch_year()} GROUP BY d ORDER BY d""",
    "Q3": f"""SELECT {CH_MONTH} AS m, max(value_w),
               argMax(toUnixTimestamp(ts), (value_w, -toInt64(toUnixTimestamp(ts))))
        FROM readings WHERE meter_id = '{METER}' AND {ch_year()} GROUP BY m ORDER BY m""",
    "Q4": f"""SELECT toUnixTimestamp(ts) AS t, sum(value_w), count() FROM readings
        WHERE ts >= toDateTime('{DAY_FROM_UTC}', 'UTC') AND ts < toDateTime('{DAY_TO_UTC}', 'UTC')
        GROUP BY t ORDER BY t""",
    "Q5": f"""SELECT meter_id, {CH_MONTH} AS m, sum(value_w * step_min) / 60 FROM readings
        WHERE {ch_year()} GROUP BY meter_id, m""",
}

# Codecs tried per column; the table keeps the first of each, the study measures them all.
CH_TS_CODECS = ["DoubleDelta, ZSTD(1)", "Delta, ZSTD(3)", "DoubleDelta, LZ4"]
CH_VALUE_CODECS = ["Delta, ZSTD(3)", "T64, ZSTD(3)", "DoubleDelta, ZSTD(3)", "ZSTD(3)", "Delta, ZSTD(9)"]


def ch_rows(sess, sql, q):
    text = sess.query(sql, "TabSeparated").bytes().decode()
    rows = []
    for line in text.splitlines():
        cells = line.split("\t")
        # Q5 starts with the meter id, a string of digits; every other cell is a number.
        first_text = 1 if q == "Q5" else 0
        rows.append(cells[:first_text]
                    + [float(c) if "." in c or "e" in c else int(c) for c in cells[first_text:]])
    return rows


def peer_clickhouse(csv, work, reps):
    from chdb import session

    path = os.path.join(work, "chdb")
    shutil.rmtree(path, ignore_errors=True)
    sess = session.Session(path)
    sess.query("CREATE DATABASE IF NOT EXISTS bench")
    sess.query("USE bench")
    # Best practice for time series: MergeTree sorted by (meter, time), LowCardinality ids,
    # delta-of-delta timestamps and delta values under ZSTD.
    sess.query(
        f"""CREATE TABLE readings (
            meter_id LowCardinality(String),
            ts DateTime('UTC') CODEC({CH_TS_CODECS[0]}),
            value_w Int32 CODEC({CH_VALUE_CODECS[0]}),
            quality Enum8('measured' = 0, 'estimated' = 1, 'corrected' = 2),
            step_min UInt8 CODEC(T64, ZSTD(1))
        ) ENGINE = MergeTree ORDER BY (meter_id, ts)
        SETTINGS min_bytes_for_wide_part = 0, min_rows_for_wide_part = 0"""
    )
    t = time.perf_counter()
    sess.query(
        f"""INSERT INTO readings SELECT meter_id, parseDateTimeBestEffort(ts, 'UTC'), value_w,
                   quality, step_min
            FROM file('{csv}', 'CSVWithNames',
                      'meter_id String, ts String, value_w Int32, quality String, step_min UInt8')"""
    )
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    sess.query("OPTIMIZE TABLE readings FINAL")
    optimize_s = time.perf_counter() - t
    points = int(sess.query("SELECT count() FROM readings", "TabSeparated").bytes())
    part_bytes = int(sess.query(
        "SELECT sum(bytes_on_disk) FROM system.parts WHERE database = 'bench' "
        "AND table = 'readings' AND active", "TabSeparated").bytes())

    # Codec study: the same columns under every codec tried, sizes per column after a merge.
    cols = ["meter_id LowCardinality(String)", "quality Enum8('measured' = 0, 'estimated' = 1, "
            "'corrected' = 2)", "step_min UInt8 CODEC(T64, ZSTD(1))"]
    cols += [f"ts_{i} DateTime('UTC') CODEC({c})" for i, c in enumerate(CH_TS_CODECS)]
    cols += [f"v_{i} Int32 CODEC({c})" for i, c in enumerate(CH_VALUE_CODECS)]
    sess.query(f"CREATE TABLE study ({', '.join(cols)}) ENGINE = MergeTree ORDER BY (meter_id, ts_0) "
               "SETTINGS min_bytes_for_wide_part = 0, min_rows_for_wide_part = 0")
    select = ", ".join(["meter_id", "quality", "step_min"]
                       + ["ts"] * len(CH_TS_CODECS) + ["value_w"] * len(CH_VALUE_CODECS))
    sess.query(f"INSERT INTO study SELECT {select} FROM readings")
    sess.query("OPTIMIZE TABLE study FINAL")
    sizes = dict(
        (name, int(b)) for name, b in (
            line.split("\t") for line in sess.query(
                "SELECT name, data_compressed_bytes FROM system.columns WHERE database = 'bench' "
                "AND table = 'study'", "TabSeparated").bytes().decode().splitlines()))
    table_cols = dict(
        (name, int(b)) for name, b in (
            line.split("\t") for line in sess.query(
                "SELECT name, data_compressed_bytes FROM system.columns WHERE database = 'bench' "
                "AND table = 'readings'", "TabSeparated").bytes().decode().splitlines()))
    overhead = part_bytes - sum(table_cols.values())  # marks, primary index, checksums
    best_ts = min(range(len(CH_TS_CODECS)), key=lambda i: sizes[f"ts_{i}"])
    best_v = min(range(len(CH_VALUE_CODECS)), key=lambda i: sizes[f"v_{i}"])
    best_bytes = (sizes["meter_id"] + sizes["quality"] + sizes["step_min"]
                  + sizes[f"ts_{best_ts}"] + sizes[f"v_{best_v}"] + overhead)
    sess.query("DROP TABLE study")

    answers, latency = {}, {}
    for q in QUESTIONS:
        sql = CH_SQL[q]
        answers[q] = ch_rows(sess, sql, q)
        latency[q] = median_ms(lambda: sess.query(sql, "TabSeparated"), reps)
    sess.close()
    return {
        "points": points,
        "load_s": load_s,
        "optimize_s": optimize_s,
        "bytes": part_bytes,
        "best_bytes": best_bytes,
        "best_codecs": {"ts": CH_TS_CODECS[best_ts], "value_w": CH_VALUE_CODECS[best_v]},
        "column_bytes": sizes,
        "answers": answers,
        "latency_ms": latency,
    }


# ---------------------------------------------------------------- Courbe

def courbe_paths():
    m = f"/v1/meters/{METER}"
    y = f"from={YEAR_FROM_LOCAL}&to={YEAR_TO_LOCAL}"
    return {
        # Compact runs, the API's format for charts; the points format is timed apart.
        "Q1": f"{m}/curve?{y}&format=columns",
        "Q2": f"{m}/energy?{y}&period=day",
        "Q3": f"{m}/peak?{y}&period=month",
        "Q4": f"/v1/fleet/curve?from={DAY_LOCAL}&to={NEXT_DAY_LOCAL}",
        "Q5": f"/v1/fleet/energy?{y}&period=month&format=csv",
    }


def courbe_answers(raw):
    """The Courbe answers in the peers' shape: lists of rows keyed by Unix seconds."""
    q1 = []
    for run in json.loads(raw["Q1"])["runs"]:
        start = epoch(run["start"])
        q1 += [[start + i * 60 * run["step_min"], v] for i, v in enumerate(run["values"])]
    q2 = [[epoch(p["start"]), p["energy_wh"]] for p in json.loads(raw["Q2"])["periods"]
          if p["points"] > 0]
    q3 = [[epoch(p["start"]), p["value"], epoch(p["at"])] for p in json.loads(raw["Q3"])["periods"]
          if p.get("value") is not None]
    q4 = [[epoch(p["ts"]), p["value"], p["meters"]] for p in json.loads(raw["Q4"])["points"]]
    q5 = []
    for line in raw["Q5"].decode().splitlines()[1:]:
        meter, start, _end, energy = line.split(",")
        q5.append([meter, epoch(start), float(energy)])
    return {"Q1": q1, "Q2": q2, "Q3": q3, "Q4": q4, "Q5": q5}


def courbe_run(courbe, csv, work, reps, port):
    data = os.path.join(work, "courbe-data")
    shutil.rmtree(data, ignore_errors=True)
    load_s, ingest_rss, out = run_child([courbe, "--data", data, "ingest", csv],
                                        stderr=subprocess.PIPE)
    bytes_ingested = dir_bytes(data)
    compact_s, _, _ = run_child([courbe, "--data", data, "compact"], stderr=subprocess.DEVNULL)
    disk = dir_bytes(data)
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

        paths = courbe_paths()
        raw, latency = {}, {}
        for q in QUESTIONS:
            raw[q] = get(paths[q])
            latency[q] = median_ms(lambda: get(paths[q]), reps)
        q1_points = paths["Q1"].replace("&format=columns", "")
        points_ms = median_ms(lambda: get(q1_points), reps)
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
    return {
        "load_s": load_s,
        "ingest_peak_rss_mib": ingest_rss,
        "serve_peak_rss_mib": serve_rss,
        "compact_s": compact_s,
        "bytes_after_ingest": bytes_ingested,
        "bytes": disk,
        "answers": courbe_answers(raw),
        "latency_ms": latency,
        "q1_points_format_ms": points_ms,
        "paths": paths,
    }


# ---------------------------------------------------------------- comparison

def agree(a, b, q):
    """Rows equal as sets, numbers within 1e-9 relative. Returns None or a reason."""
    key_len = {"Q1": 1, "Q2": 1, "Q3": 1, "Q4": 1, "Q5": 2}[q]
    da = {tuple(r[:key_len]): r[key_len:] for r in a}
    db = {tuple(r[:key_len]): r[key_len:] for r in b}
    if len(da) != len(a) or len(db) != len(b):
        return "duplicate keys"
    if q == "Q5":
        # Courbe lists every period of the range, with 0 Wh where a meter has no data; the peers
        # only have rows where there is data.
        da = {k: v for k, v in da.items() if k in db or any(float(x) != 0.0 for x in v)}
    if da.keys() != db.keys():
        only_a = sorted(da.keys() - db.keys())[:3]
        only_b = sorted(db.keys() - da.keys())[:3]
        return f"{len(da)} vs {len(db)} rows; only in first {only_a}, only in second {only_b}"
    for k, va in da.items():
        vb = db[k]
        for x, y in zip(va, vb):
            if abs(float(x) - float(y)) > 1e-9 * max(1.0, abs(float(x)), abs(float(y))):
                return f"at {k}: {va} vs {vb}"
    return None


def suite(args):
    work = os.path.abspath(args.work)
    os.makedirs(work, exist_ok=True)
    csv = os.path.join(work, f"fleet-{args.meters}x{args.days}.csv")
    if not os.path.exists(csv):
        print(f"generating {args.meters} meters x {args.days} days -> {csv}", file=sys.stderr)
        with open(csv + ".tmp", "wb") as f:
            subprocess.run([args.courbe, "gen", "--meters", str(args.meters), "--days",
                            str(args.days), "--seed", "1"], stdout=f, check=True)
        os.rename(csv + ".tmp", csv)
    with open(csv, "rb") as f:
        points = sum(1 for _ in f) - 1
    csv_bytes = os.path.getsize(csv)
    results = {"meters": args.meters, "days": args.days, "points": points, "csv_bytes": csv_bytes,
               "reps": args.reps}
    print("loading courbe", file=sys.stderr)
    results["courbe"] = courbe_run(args.courbe, csv, work, args.reps, args.port)
    for peer in args.peers:
        print(f"loading {peer}", file=sys.stderr)
        seconds, rss, out = run_child([sys.executable, __file__, "peer", peer, "--csv", csv,
                                       "--work", work, "--reps", str(args.reps)])
        r = json.loads(out)
        r["peak_rss_mib"] = rss
        results[peer] = r
    # Agreement: every peer against Courbe.
    disagreements = []
    for peer in args.peers:
        for q in QUESTIONS:
            why = agree(results["courbe"]["answers"][q], results[peer]["answers"][q], q)
            if why:
                disagreements.append(f"{q} courbe vs {peer}: {why}")
    results["agree"] = not disagreements
    results["disagreements"] = disagreements
    for s in ["courbe"] + args.peers:
        results[s]["answer_rows"] = {q: len(results[s]["answers"][q]) for q in QUESTIONS}
        del results[s]["answers"]
    with open(os.path.join(work, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    print_table(results, args.peers)
    return 0 if results["agree"] else 1


def print_table(r, peers):
    pts = r["points"]
    print(f"\n{r['meters']} meters x {r['days']} days: {pts} points, CSV {r['csv_bytes'] / 1e6:.0f} MB;"
          f" latency = median of {r['reps']} runs after one warm run")
    head = f"{'system':<24}{'load pts/s':>12}{'B/point':>9}" + "".join(f"{q + ' ms':>10}" for q in QUESTIONS)
    print(head)
    print("-" * len(head))
    c = r["courbe"]

    def row(name, load_s, bytes_, lat):
        print(f"{name:<24}{pts / load_s:>12,.0f}{bytes_ / pts:>9.3f}"
              + "".join(f"{lat[q]:>10.2f}" for q in QUESTIONS))

    row("courbe (HTTP)", c["load_s"], c["bytes"], c["latency_ms"])
    for p in peers:
        row(f"{p} (in process)", r[p]["load_s"], r[p]["bytes"], r[p]["latency_ms"])
        if p == "clickhouse":
            b = r[p]["best_bytes"]
            print(f"{'  clickhouse best codecs':<24}{'':>12}{b / pts:>9.3f}"
                  f"   ts {r[p]['best_codecs']['ts']}, value {r[p]['best_codecs']['value_w']}")
    for p in peers:
        lat = r[p]["latency_ms"]
        peer_bytes = r[p].get("best_bytes", r[p]["bytes"])
        print(f"{'courbe vs ' + p:<24}{r[p]['load_s'] / c['load_s']:>11.2f}x{c['bytes'] / peer_bytes:>8.2f}x"
              + "".join(f"{lat[q] / c['latency_ms'][q]:>9.1f}x" for q in QUESTIONS))
    print("(ratios: load = courbe speed / peer speed; B/point = courbe / peer (best codecs);"
          " Q = peer latency / courbe latency, > 1 means courbe is faster)")
    print(f"courbe: Q1 in the points format (one JSON object per point): {c['q1_points_format_ms']:.2f} ms")
    print(f"courbe: bytes/point after ingest {c['bytes_after_ingest'] / pts:.3f}, after compact"
          f" {c['bytes'] / pts:.3f}; ingest peak RSS {c['ingest_peak_rss_mib']:.0f} MiB; serve peak"
          f" RSS {c['serve_peak_rss_mib'] or 0:.0f} MiB")
    for p in peers:
        print(f"{p}: peak RSS {r[p]['peak_rss_mib']:.0f} MiB")
    print("answers agree: " + ("yes, all five questions, every system" if r["agree"]
                               else "NO\n  " + "\n  ".join(r["disagreements"])))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("suite")
    s.add_argument("--courbe", required=True)
    s.add_argument("--meters", type=int, default=2000)
    s.add_argument("--days", type=int, default=365)
    s.add_argument("--work", default="target/peers/work")
    s.add_argument("--reps", type=int, default=20)
    s.add_argument("--port", type=int, default=18480)
    s.add_argument("--peers", nargs="*", default=["duckdb", "clickhouse"])
    p = sub.add_parser("peer")
    p.add_argument("system", choices=["duckdb", "clickhouse"])
    p.add_argument("--csv", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--reps", type=int, default=20)
    args = ap.parse_args()
    if args.cmd == "suite":
        sys.exit(suite(args))
    fn = peer_duckdb if args.system == "duckdb" else peer_clickhouse
    json.dump(fn(args.csv, args.work, args.reps), sys.stdout)


if __name__ == "__main__":
    main()
