"""Shared command line of the Python contenders: one job slice in, Parquet files out, one JSON
line `{"rows": N, "columns": C}` on stdout (the harness reads it)."""

import argparse
import json

import requests

# The 12 fields of a kline row, as the tutorial notebook names them.
NAMES = [
    "open_time", "open", "high", "low", "close", "volume", "close_time",
    "quote_volume", "trades", "taker_buy_base_volume", "taker_buy_quote_volume", "ignore",
]


def parse_args(doc: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=doc)
    p.add_argument("--url", required=True, help="simulator base url, http://127.0.0.1:PORT")
    p.add_argument("--symbols", required=True, help="comma-separated symbols")
    p.add_argument("--interval", required=True)
    p.add_argument("--start", type=int, required=True, help="first open time, epoch ms")
    p.add_argument("--end", type=int, required=True, help="end (exclusive), epoch ms")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--no-sleep", action="store_true", help="python-binance: skip its 1 s sleeps")
    return p.parse_args()


def report(rows: int, columns: int) -> None:
    print(json.dumps({"rows": rows, "columns": columns}), flush=True)


def raw_pages(http: requests.Session, url: str, symbol: str, interval: str, start: int,
              end: int):
    """Every `/api/v3/klines` page of one symbol in `[start, end)`, 1000 rows per request,
    as `json.loads` gives it (a list of 12-field lists); the next page starts after the last
    open time."""
    while start < end:
        r = http.get(url + "/api/v3/klines", params={
            "symbol": symbol, "interval": interval, "startTime": start,
            "endTime": end - 1, "limit": 1000,
        }, timeout=30)
        r.raise_for_status()
        page = json.loads(r.content)
        if not page:
            return
        yield page
        start = page[-1][0] + 1


def run_per_symbol(doc: str, write_symbol) -> None:
    """A raw-pages contender's whole run: `write_symbol(args, http, symbol)` fetches and
    writes one symbol's file over the shared keep-alive session and returns its rows."""
    a = parse_args(doc)
    http = requests.Session()
    rows = sum(write_symbol(a, http, symbol) for symbol in a.symbols.split(","))
    report(rows, len(NAMES) - 1)
