#!/usr/bin/env python3
"""TA-Lib vs retrain on the same file in the same run: the TA-Lib-covered indicators.

Times TA-Lib computing exactly the outputs of `retrain::features::talib::outputs` (same
indicators, same parameters) on FILE, single-threaded, best of RUNS; runs our timing binary
on the same file; prints both and the ratio ours / TA-Lib (< 1.0 means we are faster).

    python3 benches/peers/features.py FILE.csv target/release/examples/talib_timing [RUNS]

`benches/peers/run_features.sh` builds everything and runs this on 1,000,000 stitched bars.
"""
import json
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import talib


def talib_outputs(o, h, l, c, v):
    out = []
    for p in (10, 20, 50, 100):
        out.append(talib.SMA(c, p))
    for p in (12, 26, 50):
        out.append(talib.EMA(c, p))
    out.extend(talib.MACD(c, 12, 26, 9))
    out.append(talib.ADX(h, l, c, 14))
    out.append(talib.PLUS_DI(h, l, c, 14))
    out.append(talib.MINUS_DI(h, l, c, 14))
    out.append(talib.LINEARREG_SLOPE(c, 20))
    for p in (7, 14, 21):
        out.append(talib.RSI(c, p))
    out.extend(talib.STOCH(h, l, c, 14, 3, 0, 3, 0))
    out.append(talib.WILLR(h, l, c, 14))
    out.append(talib.CCI(h, l, c, 20))
    for p in (10, 20):
        out.append(talib.ROC(c, p))
    for p in (1, 3, 6, 12, 24):
        out.append(talib.ROCP(c, p))
    out.append(talib.MOM(c, 10))
    out.append(talib.CMO(c, 14))
    out.append(talib.ATR(h, l, c, 14))
    for p in (14, 28):
        out.append(talib.NATR(h, l, c, p))
    out.extend(talib.BBANDS(c, 20, 2.0, 2.0, 0))
    out.append(talib.MFI(h, l, c, v, 14))
    out.append(talib.OBV(c, v))
    return out


def main():
    path, ours_bin = sys.argv[1], sys.argv[2]
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    df = pd.read_csv(path)
    cols = [np.ascontiguousarray(df[k].to_numpy(dtype=np.float64)) for k in ("open", "high", "low", "close", "volume")]
    best = float("inf")
    n_out = 0
    for _ in range(runs):
        t = time.perf_counter()
        n_out = len(talib_outputs(*cols))
        best = min(best, time.perf_counter() - t)
    ours = json.loads(subprocess.run([ours_bin, path, str(runs)], check=True, capture_output=True, text=True).stdout)
    assert ours["outputs"] == n_out, (ours, n_out)
    result = {
        "file": path,
        "bars": len(df),
        "outputs": n_out,
        "runs": runs,
        "talib_seconds": best,
        "retrain_seconds": ours["best_seconds"],
        "ratio_retrain_over_talib": ours["best_seconds"] / best,
        "talib_version": str(talib.__version__),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
