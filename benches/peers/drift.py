#!/usr/bin/env python3
"""The drift check users would write in Python, on the data `cargo bench --bench lifecycle`
dumps (DRIFT_DUMP): for every model and feature, scipy.stats.ks_2samp (method="auto": exact
p-values up to 10,000 samples, the rule retrain ports) of the raw reference against the
recent window, PSI over 10 reference-quantile bins (numpy), and Benjamini-Hochberg per model
(scipy.stats.false_discovery_control). Prints one JSON line with the median wall time of
`--repeats` runs in milliseconds.

usage: drift.py DATA.bin [--repeats 3]
"""
import argparse
import json
import time

import numpy as np
from scipy.stats import false_discovery_control, ks_2samp


def psi(ref, cur, bins=10, eps=1e-4):
    edges = np.quantile(ref, np.arange(1, bins) / bins)
    e = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=bins) / len(ref)
    a = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=bins) / len(cur)
    e, a = np.maximum(e, eps), np.maximum(a, eps)
    return float(np.sum((a - e) * np.log(a / e)))


def check(data, models, features):
    drifted = 0
    for m in range(models):
        p, ks, ps = [], [], []
        for j in range(features):
            ref, cur = data[m][j]
            r = ks_2samp(ref, cur)
            ks.append(r.statistic)
            p.append(r.pvalue)
            ps.append(psi(ref, cur))
        adj = false_discovery_control(p)
        drifted += sum(1 for k, a, s in zip(ks, adj, ps) if k > 0.2 or s > 0.25 or (k > 0.1 and a < 0.05))
    return drifted


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    raw = np.fromfile(a.data, dtype="<f8")
    models, features, n_ref, n_cur = (int(v) for v in raw[:4])
    off = 4
    data = []
    for _ in range(models):
        row = []
        for _ in range(features):
            ref = raw[off : off + n_ref]
            off += n_ref
            cur = raw[off : off + n_cur]
            off += n_cur
            row.append((ref, cur))
        data.append(row)
    times = []
    for _ in range(a.repeats):
        t = time.perf_counter()
        drifted = check(data, models, features)
        times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    print(json.dumps({"lib": "scipy", "ms": times[len(times) // 2], "drifted": drifted,
                      "models": models, "features": features}))


if __name__ == "__main__":
    main()
