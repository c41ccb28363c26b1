#!/usr/bin/env python3
"""Cut a `retrain features --label …` table into train/test Parquet files both sides read.

usage: real_split.py FEATURES.parquet LABEL_COLUMN TRAIN_OUT TEST_OUT [--test-fraction 0.2]
       real_split.py FEATURES.parquet LABEL_COLUMN TRAIN_OUT TEST_OUT --fold K --folds N
                     [--fold-fraction 0.1]

Without --fold the latest `test-fraction` of rows by timestamp is the test set. With --fold K
of --folds N (walk-forward): the time-ordered rows end in N consecutive test windows of
`fold-fraction` each; fold K (0 = oldest) tests on window K and trains on every row before
it. Either way training rows whose label end `t1` reaches the first test timestamp are
purged (the same rule as `retrain gbdt --holdout`). Outputs keep only the numeric feature
columns and `label`, in the same order.
"""
import argparse

import pandas as pd

ap = argparse.ArgumentParser()
ap.add_argument("features")
ap.add_argument("label")
ap.add_argument("train_out")
ap.add_argument("test_out")
ap.add_argument("--test-fraction", type=float, default=0.2)
ap.add_argument("--fold", type=int)
ap.add_argument("--folds", type=int, default=5)
ap.add_argument("--fold-fraction", type=float, default=0.1)
a = ap.parse_args()
df = pd.read_parquet(a.features).sort_values(["timestamp"], kind="stable").reset_index(drop=True)
n = len(df)
if a.fold is None:
    start, end = n - round(n * a.test_fraction), n
else:
    if not 0 <= a.fold < a.folds or a.folds * a.fold_fraction >= 1:
        raise SystemExit(f"fold {a.fold} of {a.folds} × {a.fold_fraction} does not fit the table")
    start = round(n * (1 - a.fold_fraction * (a.folds - a.fold)))
    end = round(n * (1 - a.fold_fraction * (a.folds - a.fold - 1)))
cutoff = df["timestamp"].iloc[start]
test = df.iloc[start:end]
train = df.iloc[:start]
train = train[train["t1"] < cutoff]
cols = [c for c in df.columns if c not in ("symbol", "timestamp", "t1", a.label)]
for part, path in [(train, a.train_out), (test, a.test_out)]:
    out = part[cols].astype("float32")
    out["label"] = part[a.label].astype("float64").to_numpy()
    out.to_parquet(path, index=False)
print(f"train {len(train)} rows, test {len(test)} rows, {len(cols)} features, purged {start - len(train)}")
