#!/usr/bin/env python3
"""Fit scikit-learn's LogisticRegression, DecisionTreeClassifier and RandomForestClassifier on
the same Parquet files `cargo run --release --example baseline_timing` reads, with the settings
of retrain's baseline kinds, and print one JSON line per model: fit seconds (scaling
included, as retrain's kinds standardise inside the fit), predict seconds, test AUC and
Spearman IC of the score, and a classifier's log-loss. `ridge` fits the 0/1 label as a value.

usage: baselines.py TRAIN.parquet TEST.parquet [--threads 2] [--kinds logreg,tree,forest,ridge]

Settings (retrain's defaults):
  logreg  StandardScaler + LogisticRegression(C=1 (= 1/alpha), lbfgs, max_iter=100, tol=1e-4)
  tree    StandardScaler + DecisionTreeClassifier(gini, max_depth=8, min_samples_leaf=20,
          min_samples_split=40)
  forest  StandardScaler + RandomForestClassifier(100 trees, gini, max_depth=8,
          min_samples_leaf=20, min_samples_split=40, max_features='sqrt', bootstrap,
          n_jobs=threads)
  ridge   StandardScaler + Ridge(alpha=1)
"""
import argparse
import json
import time

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from scipy.stats import spearmanr
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier


def load(path):
    df = pd.read_parquet(path)
    y = df.pop("label").to_numpy(dtype=np.float64)
    x = df.select_dtypes("number").to_numpy(dtype=np.float64)
    return np.ascontiguousarray(x), y


def model(kind, threads):
    if kind == "logreg":
        m = LogisticRegression(C=1.0, solver="lbfgs", max_iter=100, tol=1e-4)
    elif kind == "tree":
        m = DecisionTreeClassifier(max_depth=8, min_samples_leaf=20, min_samples_split=40, random_state=0)
    elif kind == "forest":
        m = RandomForestClassifier(n_estimators=100, max_depth=8, min_samples_leaf=20, min_samples_split=40,
                                   max_features="sqrt", bootstrap=True, n_jobs=threads, random_state=0)
    elif kind == "ridge":
        m = Ridge(alpha=1.0)
    else:
        raise SystemExit(f"unknown kind {kind}")
    return make_pipeline(StandardScaler(), m)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("train")
    ap.add_argument("test")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--kinds", default="logreg,tree,forest,ridge")
    a = ap.parse_args()
    xt, yt = load(a.train)
    xs, ys = load(a.test)
    for kind in a.kinds.split(","):
        m = model(kind, a.threads)
        t0 = time.perf_counter()
        m.fit(xt, yt)
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        classifier = kind != "ridge"
        p = m.predict_proba(xs)[:, 1] if classifier else m.predict(xs)
        pred_s = time.perf_counter() - t0
        print(json.dumps({"lib": f"sklearn {kind}", "kind": kind, "rows": len(yt), "features": xt.shape[1],
                          "fit_seconds": fit_s, "predict_seconds": pred_s,
                          "auc": roc_auc_score(ys, p), "ic": spearmanr(p, ys).statistic,
                          "log_loss": log_loss(ys, np.clip(p, 1e-15, 1 - 1e-15)) if classifier else None}),
              flush=True)


if __name__ == "__main__":
    main()
