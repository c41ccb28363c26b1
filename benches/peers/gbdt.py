#!/usr/bin/env python3
"""Train LightGBM and XGBoost on the same Parquet files `retrain gbdt` reads, with matched
settings, and print one JSON line per library: fit seconds (Dataset construction included),
predict seconds and test AUC / log-loss.

usage: gbdt.py TRAIN.parquet TEST.parquet [--threads 2] [--rounds 100] [--libs lightgbm,xgboost]
                [--predict-row]

Settings: 100 rounds, learning rate 0.1, max_bin 255, binary log-loss;
LightGBM leaf-wise with 63 leaves; XGBoost tree_method=hist, depth-wise max_depth 6.
Run with OMP_WAIT_POLICY=PASSIVE (the peers' fast setting on a shared 2-core machine).
"""
import argparse
import json
import time

import numpy as np
import pandas as pd
from sklearn.metrics import log_loss, roc_auc_score


def load(path):
    df = pd.read_parquet(path)
    y = df.pop("label").to_numpy(dtype=np.float64)
    return np.ascontiguousarray(df.to_numpy(dtype=np.float32)), y


def report(lib, fit_s, pred_s, y, p, extra=None):
    out = {"lib": lib, "fit_seconds": fit_s, "predict_seconds": pred_s,
           "auc": roc_auc_score(y, p), "log_loss": log_loss(y, p)}
    out.update(extra or {})
    print(json.dumps(out), flush=True)


def run_lightgbm(xt, yt, xs, ys, a):
    import lightgbm as lgb
    params = dict(objective="binary", learning_rate=0.1, num_leaves=63, max_bin=255,
                  num_threads=a.threads, verbose=-1, seed=0, deterministic=False)
    t0 = time.perf_counter()
    ds = lgb.Dataset(xt, label=yt, params={"max_bin": 255, "verbose": -1})
    booster = lgb.train(params, ds, num_boost_round=a.rounds)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    p = booster.predict(xs, num_threads=a.threads)
    pred_s = time.perf_counter() - t0
    extra = {}
    if a.predict_row:
        # LightGBM's single-row fast path (C API LGBM_BoosterPredictForMatSingleRowFast).
        fast = booster.predict(xs[:1])  # warm up
        rows = [xs[i:i + 1] for i in range(1000)]
        t0 = time.perf_counter()
        for r in rows:
            booster.predict(r, num_threads=1)
        extra["single_row_predict_us_python"] = (time.perf_counter() - t0) / len(rows) * 1e6
    report("lightgbm", fit_s, pred_s, ys, p, extra)


def run_xgboost(xt, yt, xs, ys, a):
    import xgboost as xgb
    params = dict(objective="binary:logistic", eta=0.1, max_depth=6, max_bin=255,
                  tree_method="hist", nthread=a.threads, seed=0)
    t0 = time.perf_counter()
    d = xgb.DMatrix(xt, label=yt, nthread=a.threads)
    booster = xgb.train(params, d, num_boost_round=a.rounds)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    p = booster.predict(xgb.DMatrix(xs, nthread=a.threads))
    pred_s = time.perf_counter() - t0
    report("xgboost", fit_s, pred_s, ys, p)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("train")
    ap.add_argument("test")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--libs", default="lightgbm,xgboost")
    ap.add_argument("--predict-row", action="store_true")
    a = ap.parse_args()
    xt, yt = load(a.train)
    xs, ys = load(a.test)
    for lib in a.libs.split(","):
        {"lightgbm": run_lightgbm, "xgboost": run_xgboost}[lib](xt, yt, xs, ys, a)


if __name__ == "__main__":
    main()
