#!/usr/bin/env python3
"""Points the public `enedis-data-connect` client (PyPI) at a Courbe server and checks that it
reads the same values as Courbe's own API.

The client is written for Enedis: its base URL is a module constant, replaced here by the Courbe
server's. It gets an access token from `POST /oauth2/v3/token` (client_credentials: the Courbe
token is the client secret, its name in the tokens file the client id), fetches a week of load
curve and a month of daily consumption, revokes its token (`close()`), and this script fetches the
same ranges from `/v1` with
the Courbe token and compares them value by value.

Needs a venv (outside CI):
    python3 -m venv /tmp/dcvenv && /tmp/dcvenv/bin/pip install enedis-data-connect requests
(enedis-data-connect 1.1.0 imports `requests` without declaring it.)

Usage:
    COURBE_CLIENT_SECRET=courbe_... /tmp/dcvenv/bin/python scripts/dataconnect_client.py \
        --base-url http://127.0.0.1:8080 --client-id 09143058543884 --prm 09143058543884 \
        --curve-start 2024-10-24 --daily-start 2024-10-01

Exit status 0 when every value matches, 1 otherwise. The secret is read from the environment,
never from the command line, and never printed.
"""

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from enedis_data_connect import enedis_client

PARIS = ZoneInfo("Europe/Paris")


def native(base_url, secret, path, params):
    """GET a `/v1` answer with the Courbe token."""
    url = f"{base_url}{path}?{urllib.parse.urlencode(params)}"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {secret}"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


def paris_end_of_interval(ts, step_min):
    """The end of an interval starting at RFC 3339 `ts`, on the Paris wall clock, naive, as the
    client reads Data Connect's `date`."""
    start = datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone(timezone.utc)
    end = start + timedelta(minutes=step_min)
    return end.astimezone(PARIS).replace(tzinfo=None)


def compare(name, got, expected):
    """Prints and counts the keys whose values differ."""
    keys = sorted(set(got) | set(expected))
    wrong = [(k, got.get(k), expected.get(k)) for k in keys if got.get(k) != expected.get(k)]
    print(f"{name}: {len(got)} values from the Data Connect client, {len(expected)} from /v1, "
          f"{len(wrong)} different")
    if keys:
        first, last = keys[0], keys[-1]
        print(f"  first {first}: client {got.get(first)}, /v1 {expected.get(first)}")
        print(f"  last  {last}: client {got.get(last)}, /v1 {expected.get(last)}")
    for k, g, e in wrong[:10]:
        print(f"  DIFFERENT {k}: client {g}, /v1 {e}")
    return len(wrong)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", required=True, help="the Courbe server, http://HOST:PORT")
    parser.add_argument("--client-id", required=True, help="the token's name in the tokens file")
    parser.add_argument("--prm", required=True, help="the meter (14 digits, as the client wants)")
    parser.add_argument("--curve-start", required=True, type=date.fromisoformat,
                        help="first day of the week of load curve")
    parser.add_argument("--daily-start", required=True, type=date.fromisoformat,
                        help="first day of the month of daily consumption")
    args = parser.parse_args()
    secret = os.environ.get("COURBE_CLIENT_SECRET")
    if not secret:
        sys.exit("set COURBE_CLIENT_SECRET to the Courbe token")
    base = args.base_url.rstrip("/")

    # The base URL override: the client reads these module constants at each call.
    enedis_client.ENDPOINT_URL = base
    enedis_client._ENDPOINT_TOKEN_URL = base + "/oauth2/v3/"

    client = enedis_client.EnedisClient(args.prm, None, args.client_id, secret)
    helper = enedis_client.EnedisApiHelper(client)

    curve_end = args.curve_start + timedelta(days=7)
    month_end = (args.daily_start.replace(day=28) + timedelta(days=4)).replace(day=1)
    if args.daily_start.day != 1:
        month_end = args.daily_start + timedelta(days=30)

    curve = helper.get_consumption_load_curve(args.curve_start, curve_end)
    daily = helper.get_daily_consumption(args.daily_start, month_end)
    token = client.get_token_data()
    print(f"token: type {token['token_type']}, expires_in {token['expires_in']}, "
          f"scope {token['scope']}; {client.get_request_count()} requests, "
          f"{client.get_errors_count()} errors")

    points = native(base, secret, f"/v1/meters/{args.prm}/curve",
                    {"from": args.curve_start.isoformat(), "to": curve_end.isoformat()})
    expected_curve = {}
    for p in points["points"]:
        # Later points overwrite earlier ones at the same local stamp, as in the client's dict
        # (the autumn hour lived twice).
        expected_curve[paris_end_of_interval(p["ts"], p["step_min"])] = p["value"]
    energy = native(base, secret, f"/v1/meters/{args.prm}/energy",
                    {"from": args.daily_start.isoformat(), "to": month_end.isoformat(),
                     "period": "day"})
    expected_daily = {}
    for p in energy["periods"]:
        day = datetime.fromisoformat(p["start"].replace("Z", "+00:00")).astimezone(PARIS).date()
        # The client fills days without data with 0.
        expected_daily[day] = int(p["energy_wh"] + 0.5) if p["points"] > 0 else 0

    # close() revokes the access token (POST /oauth2/v3/revoke): it must be refused after.
    access = token["access_token"]
    client.close()
    probe = urllib.request.Request(
        f"{base}/metering_data_dc/v5/daily_consumption?" + urllib.parse.urlencode(
            {"usage_point_id": args.prm, "start": args.daily_start.isoformat(),
             "end": (args.daily_start + timedelta(days=1)).isoformat()}),
        headers={"Authorization": f"Bearer {access}"})
    try:
        urllib.request.urlopen(probe, timeout=60)
        revoked = "still accepted after close()"
    except urllib.error.HTTPError as e:
        revoked = f"refused after close(): {e.code} {json.load(e)['error']}"
    print(f"access token {revoked}")

    wrong = compare(f"load curve {args.curve_start}..{curve_end}", curve, expected_curve)
    wrong += compare(f"daily consumption {args.daily_start}..{month_end}", daily, expected_daily)
    if not revoked.startswith("refused"):
        wrong += 1
    print("SAME VALUES" if wrong == 0 else f"{wrong} DIFFERENT VALUES")
    return 0 if wrong == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
