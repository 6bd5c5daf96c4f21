"""Q1 and Q2 in Arrow, timed the way the peers suite times them (`peers.py`): one keep-alive
`http.client` connection, the body read whole and held as a pyarrow Table
(`pyarrow.ipc.open_stream(body).read_all()`), median of many requests after warm ones.

Several `courbe` binaries may be given: each serves the same store in turn, rounds alternating
between them, so that a before/after comparison sees the same machine state. Also reported: the
body alone (read, not decoded), and the CPU time and minor page faults of the server per request
(from `/proc/PID/stat`), which a loaded machine disturbs less than wall time.

    python benches/peers/micro.py --data STORE --courbe target/release/courbe [--courbe OTHER]
        [--rounds 5] [--reps 400]

The store is the suite's: `courbe gen --meters 1000 --days 365 --seed 1 | courbe --data STORE
ingest -`, then `courbe --data STORE compact`.
"""

import argparse
import http.client
import os
import statistics
import subprocess
import sys
import time

METER = "09111642617347"
YEAR = "from=2024-01-01&to=2025-01-01"
PATHS = {
    "Q1": f"/v1/meters/{METER}/curve?{YEAR}&format=arrow",
    "Q2": f"/v1/meters/{METER}/energy?{YEAR}&period=day&format=arrow",
}
ROWS = {"Q1": 17376, "Q2": 366}


def cpu_and_faults(pid):
    """User + system CPU seconds of a process so far, and its minor page faults."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), int(fields[7])


def serve(courbe, data, port):
    env = dict(os.environ, RUST_LOG="warn")
    server = subprocess.Popen([courbe, "--data", data, "serve", "--listen", f"127.0.0.1:{port}"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request("GET", "/healthz")
            conn.getresponse().read()
            return server, conn
        except OSError:
            time.sleep(0.1)
    server.kill()
    sys.exit(f"{courbe} did not answer /healthz")


def get(conn, path):
    conn.request("GET", path)
    r = conn.getresponse()
    body = r.read()
    if r.status != 200:
        sys.exit(f"GET {path}: {r.status} {body[:300]!r}")
    return body


def one_round(courbe, data, port, reps):
    import pyarrow as pa

    server, conn = serve(courbe, data, port)
    out = {}
    try:
        for q, path in PATHS.items():
            table = pa.ipc.open_stream(get(conn, path)).read_all()
            if q == "Q1" and table.num_rows != ROWS[q]:
                sys.exit(f"{q}: {table.num_rows} rows, expected {ROWS[q]}")
            for _ in range(20):
                get(conn, path)
            arrow, body = [], []
            cpu0, faults0 = cpu_and_faults(server.pid)
            for _ in range(reps):
                t = time.perf_counter()
                pa.ipc.open_stream(get(conn, path)).read_all()
                arrow.append((time.perf_counter() - t) * 1e3)
            cpu1, faults1 = cpu_and_faults(server.pid)
            for _ in range(reps):
                t = time.perf_counter()
                get(conn, path)
                body.append((time.perf_counter() - t) * 1e3)
            out[q] = {
                "arrow_ms": statistics.median(arrow),
                "body_ms": statistics.median(body),
                "server_cpu_ms": (cpu1 - cpu0) * 1e3 / reps,
                "server_faults": (faults1 - faults0) / reps,
            }
    finally:
        conn.close()
        server.terminate()
        server.wait()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--courbe", action="append", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--reps", type=int, default=400)
    ap.add_argument("--port", type=int, default=18733)
    args = ap.parse_args()
    results = {c: [] for c in args.courbe}
    print(f"{time.strftime('%H:%M:%S', time.gmtime())} UTC, load {os.getloadavg()}")
    for k in range(args.rounds):
        for c in args.courbe:
            r = one_round(c, args.data, args.port, args.reps)
            results[c].append(r)
            print(f"round {k} {c}: " + "; ".join(
                f"{q} arrow {v['arrow_ms']:.3f} ms, body {v['body_ms']:.3f} ms, "
                f"server cpu {v['server_cpu_ms']:.3f} ms, {v['server_faults']:.1f} faults"
                for q, v in r.items()), flush=True)
    print(f"{time.strftime('%H:%M:%S', time.gmtime())} UTC, load {os.getloadavg()}")
    for c, rs in results.items():
        for q in PATHS:
            med = {f: statistics.median(r[q][f] for r in rs)
                   for f in ("arrow_ms", "body_ms", "server_cpu_ms", "server_faults")}
            print(f"{c} {q}: arrow {med['arrow_ms']:.3f} ms, body {med['body_ms']:.3f} ms, "
                  f"server cpu {med['server_cpu_ms']:.3f} ms and {med['server_faults']:.1f} "
                  f"page faults per request (median of "
                  f"{len(rs)} rounds x {args.reps})")


if __name__ == "__main__":
    main()
