"""The pandas workflow done well: raw `/api/v3/klines` pages over one keep-alive HTTP session
(requests) -> `json.loads` -> the rows of all pages in one list -> one `pd.DataFrame` (12
names) -> `to_datetime(unit="ms", utc=True)` / `to_numeric` (the 12th field dropped) ->
`to_parquet` (pyarrow, zstd), one file per symbol. No client library, no sleeps, no retries:
what a careful notebook does without python-binance."""

import os

import pandas as pd
import requests

from common import NAMES, raw_pages, run_per_symbol

NUMERIC = ["open", "high", "low", "close", "volume", "quote_volume", "trades",
           "taker_buy_base_volume", "taker_buy_quote_volume"]


def write_symbol(a, http: requests.Session, symbol: str) -> int:
    klines = []
    for page in raw_pages(http, a.url, symbol, a.interval, a.start, a.end):
        klines.extend(page)
    df = pd.DataFrame(klines, columns=NAMES).drop(columns=["ignore"])
    df["open_time"] = pd.to_datetime(df["open_time"], unit="ms", utc=True)
    df["close_time"] = pd.to_datetime(df["close_time"], unit="ms", utc=True)
    df[NUMERIC] = df[NUMERIC].apply(pd.to_numeric)
    df.to_parquet(os.path.join(a.out, f"{symbol}.parquet"), engine="pyarrow",
                  compression="zstd")
    return len(df)


if __name__ == "__main__":
    run_per_symbol(__doc__, write_symbol)
