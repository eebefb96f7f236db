#!/usr/bin/env python3
"""Fetch klines from the kline-etl simulator with python-binance's get_historical_klines.

Usage: python_binance_check.py BASE_URL SYMBOL INTERVAL START_MS END_MS [EXPECTED_JSON_FILE]

Points python-binance 1.0.37 at BASE_URL (Client.API_URL = BASE_URL + "/api", set before the
client is constructed; Client(ping=True) calls /api/v3/ping), fetches the range with
get_historical_klines (pages of 1000 rows) and prints the rows as compact JSON on stdout.
With EXPECTED_JSON_FILE, compares instead: exit 0 when equal, 1 (with a diff summary on
stderr) when not.
"""

import json
import sys

from binance.client import Client


def main(argv):
    if len(argv) not in (6, 7):
        print(__doc__, file=sys.stderr)
        return 2
    base, symbol, interval, start, end = argv[1:6]
    Client.API_URL = base.rstrip("/") + "/api"
    client = Client(ping=True)
    rows = client.get_historical_klines(symbol, interval, int(start), int(end))
    if len(argv) == 7:
        with open(argv[6], encoding="utf-8") as f:
            expected = json.load(f)
        if rows != expected:
            first = next(
                (i for i, (a, b) in enumerate(zip(rows, expected)) if a != b),
                min(len(rows), len(expected)),
            )
            print(
                f"mismatch: got {len(rows)} rows, expected {len(expected)}; first difference at row {first}",
                file=sys.stderr,
            )
            return 1
        return 0
    json.dump(rows, sys.stdout, separators=(",", ":"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
