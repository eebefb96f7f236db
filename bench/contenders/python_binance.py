"""The tutorial notebook's workflow: python-binance 1.0.37 `get_historical_klines` ->
pandas DataFrame with the 12 column names -> `to_datetime(unit="ms")` / `to_numeric` ->
`to_parquet` (pyarrow), one file per symbol. `--no-sleep` removes the client's 1 s sleep
after every third page to show what the rest of the workflow costs."""

import os

import pandas as pd
from binance import client as binance_client
from binance.client import Client

from common import NAMES as COLUMNS, parse_args, report



def main() -> None:
    a = parse_args(__doc__)
    if a.no_sleep:
        binance_client.time.sleep = lambda _s: None
    Client.API_URL = a.url + "/api"
    client = Client(ping=False)
    rows = 0
    for symbol in a.symbols.split(","):
        klines = client.get_historical_klines(symbol, a.interval, a.start, a.end - 1)
        df = pd.DataFrame(klines, columns=COLUMNS)
        df["open_time"] = pd.to_datetime(df["open_time"], unit="ms", utc=True)
        df["close_time"] = pd.to_datetime(df["close_time"], unit="ms", utc=True)
        numeric = [c for c in COLUMNS if c not in ("open_time", "close_time", "ignore")]
        df[numeric] = df[numeric].apply(pd.to_numeric)
        df = df.drop(columns=["ignore"])
        df.to_parquet(os.path.join(a.out, f"{symbol}.parquet"), engine="pyarrow")
        rows += len(df)
    report(rows, len(COLUMNS) - 1)


if __name__ == "__main__":
    main()
