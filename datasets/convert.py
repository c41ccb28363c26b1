#!/usr/bin/env python3
"""Convert the raw vendor files shipped in PyPI packages into retrain's normalised CSV.

Output columns: timestamp,open,high,low,close,volume (UTC ISO-8601, oldest first).
Nothing is repaired: the script fails loudly if a row is unparsable, a timestamp repeats,
or a bar is internally inconsistent, so the shipped files are the vendor's data verbatim
apart from re-ordering and re-formatting.

Usage (see datasets/README.md for how to fetch the inputs):
    python3 datasets/convert.py btc   RAW/Coinbase_BTCUSD_1h.csv  datasets/btcusd_coinbase_1h.csv
    python3 datasets/convert.py eurusd RAW/FOREX_EURUSD_1H_ASK.csv datasets/eurusd_ask_1h_2017.csv
"""
import csv
import datetime as dt
import sys


def btc_rows(path):
    # Banner line first, then a header; rows newest first; dates like `2019-10-17 09-AM`.
    with open(path, newline="") as f:
        banner = f.readline()
        assert "CryptoDataDownload" in banner, banner
        for rec in csv.DictReader(f):
            day, hour = rec["date"].split(" ")
            h12, ampm = hour.split("-")
            h = int(h12) % 12 + (12 if ampm == "PM" else 0)
            ts = dt.datetime.strptime(day, "%Y-%m-%d").replace(hour=h, tzinfo=dt.timezone.utc)
            yield ts, rec["open"], rec["high"], rec["low"], rec["close"], rec["volume_btc"]


def eurusd_rows(path):
    # Dukascopy-style export: `01.01.2017 22:00:00.000`, GMT, oldest first.
    with open(path, newline="") as f:
        for rec in csv.DictReader(f):
            ts = dt.datetime.strptime(rec["Time"], "%d.%m.%Y %H:%M:%S.%f").replace(tzinfo=dt.timezone.utc)
            yield ts, rec["Open"], rec["High"], rec["Low"], rec["Close"], rec["Volume"]


def main():
    kind, src, dst = sys.argv[1:4]
    rows = list({"btc": btc_rows, "eurusd": eurusd_rows}[kind](src))
    rows.sort(key=lambda r: r[0])
    for i, (ts, o, h, l, c, v) in enumerate(rows):
        o, h, l, c, v = map(float, (o, h, l, c, v))
        if i and ts <= rows[i - 1][0]:
            sys.exit(f"{src}: duplicate timestamp {ts.isoformat()}")
        if min(o, h, l, c) <= 0 or h < max(o, c) or l > min(o, c) or v < 0:
            sys.exit(f"{src}: inconsistent bar at {ts.isoformat()}: {o} {h} {l} {c} {v}")
    with open(dst, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["timestamp", "open", "high", "low", "close", "volume"])
        for ts, o, h, l, c, v in rows:
            w.writerow([ts.strftime("%Y-%m-%dT%H:%M:%SZ"), o, h, l, c, v])
    print(f"{dst}: {len(rows)} rows, {rows[0][0].isoformat()} -> {rows[-1][0].isoformat()}")


if __name__ == "__main__":
    main()
