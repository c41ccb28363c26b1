#!/usr/bin/env python3
"""The CPCV pipeline users would build in Python: skfolio's CombinatorialPurgedCV driving
LightGBM, on the same Parquet file `retrain cv` reads. Prints one JSON line: wall seconds
(the whole CV: Dataset construction, 15 fits, predictions, path assembly) and the AUC of
every backtest path.

usage: cpcv.py DATA.parquet [--groups 6] [--test-groups 2] [--horizon 12] [--embargo 5]
               [--threads 2] [--rounds 100] [--leaves 63]

Settings: N=6, k=2, purged_size=h, embargo_size=e; LightGBM 100 rounds, 63 leaves,
learning rate 0.1, max_bin 255, 2 threads. Run with OMP_WAIT_POLICY=PASSIVE.
"""
import argparse
import json
import time

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--groups", type=int, default=6)
    ap.add_argument("--test-groups", type=int, default=2)
    ap.add_argument("--horizon", type=int, default=12)
    ap.add_argument("--embargo", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--leaves", type=int, default=63)
    a = ap.parse_args()
    import lightgbm as lgb
    from skfolio.model_selection import CombinatorialPurgedCV

    df = pd.read_parquet(a.data)
    y = df.pop("label").to_numpy(dtype=np.float64)
    x = np.ascontiguousarray(df.to_numpy(dtype=np.float32))
    params = dict(objective="binary", learning_rate=0.1, num_leaves=a.leaves, max_bin=255,
                  num_threads=a.threads, verbose=-1, seed=0)
    t0 = time.perf_counter()
    cv = CombinatorialPurgedCV(n_folds=a.groups, n_test_folds=a.test_groups,
                               purged_size=a.horizon, embargo_size=a.embargo)
    path_ids = cv.get_path_ids()
    n_paths = cv.n_test_paths
    pred = np.zeros((n_paths, len(y)))
    for i, (train, tests) in enumerate(cv.split(x)):
        ds = lgb.Dataset(x[train], label=y[train], params={"max_bin": 255, "verbose": -1})
        model = lgb.train(params, ds, num_boost_round=a.rounds)
        for j, test in enumerate(tests):
            pred[path_ids[i, j], test] = model.predict(x[test])
    seconds = time.perf_counter() - t0
    aucs = [roc_auc_score(y, pred[p]) for p in range(n_paths)]
    print(json.dumps({"lib": "skfolio+lightgbm", "seconds": seconds, "path_auc": aucs}))


if __name__ == "__main__":
    main()
