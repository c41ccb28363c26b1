#!/usr/bin/env python3
"""Cut a `retrain features --label …` table into train/test Parquet files both sides read.

usage: real_split.py FEATURES.parquet LABEL_COLUMN TRAIN_OUT TEST_OUT [--test-fraction 0.2]

The latest `test-fraction` of rows by timestamp is the test set; training rows whose label
end `t1` reaches the first test timestamp are purged (the same rule as `retrain gbdt
--holdout`). Outputs keep only the numeric feature columns and `label`, in the same order.
"""
import argparse

import pandas as pd

ap = argparse.ArgumentParser()
ap.add_argument("features")
ap.add_argument("label")
ap.add_argument("train_out")
ap.add_argument("test_out")
ap.add_argument("--test-fraction", type=float, default=0.2)
a = ap.parse_args()
df = pd.read_parquet(a.features).sort_values(["timestamp"], kind="stable").reset_index(drop=True)
n_test = round(len(df) * a.test_fraction)
cutoff = df["timestamp"].iloc[len(df) - n_test]
test = df.iloc[len(df) - n_test:]
train = df.iloc[: len(df) - n_test]
train = train[train["t1"] < cutoff]
cols = [c for c in df.columns if c not in ("symbol", "timestamp", "t1", a.label)]
for part, path in [(train, a.train_out), (test, a.test_out)]:
    out = part[cols].astype("float32")
    out["label"] = part[a.label].astype("float64").to_numpy()
    out.to_parquet(path, index=False)
print(f"train {len(train)} rows, test {len(test)} rows, {len(cols)} features, purged {len(df) - n_test - len(train)}")
