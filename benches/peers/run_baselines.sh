#!/usr/bin/env bash
# Baseline kinds against scikit-learn on the same files, in the same run: retrain's logreg
# (linfa-logistic), tree (our CART), forest and ridge (smartcore) versus
# LogisticRegression, DecisionTreeClassifier, RandomForestClassifier and Ridge with matched
# settings (baselines.py; ridge fits the 0/1 label as a value on both sides).
# Two tables:
#   - btc: the shipped BTC/USD 1h candles → the 61 default features and the 12-bar direction
#     label (`retrain features`), latest 20 % by time as test, purged;
#   - synthetic: 200,000 × 50 rows from the committed generator (`--example gbdt_data`),
#     last 20 % as test.
# Prints per kind the fit-time ratio (retrain ÷ sklearn) and the AUC difference. No floor:
# the numbers say what these crates cost.
#
# usage: benches/peers/run_baselines.sh [THREADS=2] [KINDS=logreg,tree,forest,ridge]
set -euo pipefail
THREADS=${1:-2}
KINDS=${2:-logreg,tree,forest,ridge}
DIR=${BASELINE_DATA_DIR:-target/baseline-bench}
mkdir -p "$DIR"
cargo build --release --quiet --bin retrain --example baseline_timing --example gbdt_data
./target/release/retrain features --data datasets/btcusd_coinbase_1h.csv --label direction:12 \
  --out "$DIR/btc_features.parquet" --json > /dev/null
python3 benches/peers/real_split.py "$DIR/btc_features.parquet" direction_12 "$DIR/btc_train.parquet" "$DIR/btc_test.parquet"
./target/release/examples/gbdt_data 250000 50 7 "$DIR/synthetic_all.parquet" 2> /dev/null
python3 - "$DIR" <<'PY'
import sys, pandas as pd
d = sys.argv[1]
df = pd.read_parquet(f"{d}/synthetic_all.parquet")
cut = 200_000
df.iloc[:cut].to_parquet(f"{d}/synthetic_train.parquet", index=False)
df.iloc[cut:].to_parquet(f"{d}/synthetic_test.parquet", index=False)
PY
export OMP_WAIT_POLICY=PASSIVE
OUT="$DIR/results.jsonl"
: > "$OUT"
for data in btc synthetic; do
  ./target/release/examples/baseline_timing "$DIR/${data}_train.parquet" "$DIR/${data}_test.parquet" "$THREADS" "$KINDS" \
    | sed "s/^{/{\"data\": \"$data\", /" | tee -a "$OUT"
  python3 benches/peers/baselines.py "$DIR/${data}_train.parquet" "$DIR/${data}_test.parquet" --threads "$THREADS" --kinds "$KINDS" \
    | sed "s/^{/{\"data\": \"$data\", /" | tee -a "$OUT"
done
python3 - "$OUT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
r = {(d["data"], d["lib"]): d for d in rows}
for data in dict.fromkeys(d["data"] for d in rows):
    for kind in dict.fromkeys(d["kind"] for d in rows):
        a, b = r.get((data, f"retrain {kind}")), r.get((data, f"sklearn {kind}"))
        if a and b:
            print(f"{data} ({a['rows']} x {a['features']}), {kind}: fit {a['fit_seconds']:.2f} s vs {b['fit_seconds']:.2f} s "
                  f"(ratio {a['fit_seconds']/b['fit_seconds']:.2f}), AUC {a['auc']:.4f} vs {b['auc']:.4f} "
                  f"(diff {a['auc']-b['auc']:+.4f}), IC {a['ic']:.4f} vs {b['ic']:.4f}")
PY
