#!/usr/bin/env bash
# Real-data GBDT benchmark: features + 12-bar direction label from the hourly
# EUR/USD, SPY and XAU/USD series in ../shared/datasets (pooled, 191k rows x 61 features),
# then `retrain gbdt` and LightGBM/XGBoost on the same files, side by side, as in
# run_gbdt.sh. Two evaluations:
#   - `holdout`: the latest 20% by time as test (purged), train on everything before;
#   - `fold0..fold{N-1}`: walk-forward, the last N windows of 10% each as test, each fold
#     training on every row before its window (purged).
# On this label AUCs sit near 0.51, and one test window moves either library by several
# thousandths (changing LightGBM's num_leaves from 63 to 64 moves its holdout AUC by
# +0.0019), so the summary also gives the mean paired AUC difference over the folds with
# its standard error.
#
# usage: benches/peers/run_gbdt_real.sh [THREADS=2] [FOLDS=5]
set -euo pipefail
THREADS=${1:-2}
FOLDS=${2:-5}
DIR=${GBDT_DATA_DIR:-target/gbdt-bench}
SHARED=${SHARED_DATASETS:-../shared/datasets}
mkdir -p "$DIR"
cargo build --release --quiet --bin retrain
./target/release/retrain features --data "$SHARED/eurusd_oanda_mid_1h_2007-2018_lean.csv" \
  --data "$SHARED/spy_1h_1998-2021_lean.csv" --data "$SHARED/xauusd_oanda_mid_1h_2006-2019_lean.csv" \
  --label direction:12 --out "$DIR/real_features.parquet" --json > /dev/null
export OMP_WAIT_POLICY=PASSIVE
OUT="$DIR/results_real.jsonl"
: > "$OUT"
for split in holdout $(seq -f 'fold%g' 0 $((FOLDS - 1))); do
  if [ "$split" = holdout ]; then
    python3 benches/peers/real_split.py "$DIR/real_features.parquet" direction_12 \
      "$DIR/real_train.parquet" "$DIR/real_test.parquet"
  else
    python3 benches/peers/real_split.py "$DIR/real_features.parquet" direction_12 \
      "$DIR/real_train.parquet" "$DIR/real_test.parquet" --fold "${split#fold}" --folds "$FOLDS"
  fi
  for mode in "--num-leaves 63" "--max-depth 6"; do
    # shellcheck disable=SC2086
    ./target/release/retrain gbdt --train "$DIR/real_train.parquet" --test "$DIR/real_test.parquet" $mode \
      --rounds 100 --learning-rate 0.1 --max-bin 255 --threads "$THREADS" --json \
      | python3 -c "import json,sys; d=json.load(sys.stdin); print(json.dumps({'lib':'retrain '+d['growth']['policy'],'fit_seconds':d['fit_seconds'],'predict_seconds':d['predict_seconds'],'auc':d['test']['auc'],'log_loss':d['test']['log_loss']}))"
  done | sed "s/^{/{\"split\": \"$split\", /" | tee -a "$OUT"
  python3 benches/peers/gbdt.py "$DIR/real_train.parquet" "$DIR/real_test.parquet" --threads "$THREADS" \
    | sed "s/^{/{\"split\": \"$split\", /" | tee -a "$OUT"
done
python3 - "$OUT" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
r = {(d["split"], d["lib"]): d for d in rows}
splits = list(dict.fromkeys(d["split"] for d in rows))
for ours, peer in [("retrain leaf_wise", "lightgbm"), ("retrain depth_wise", "xgboost")]:
    for s in splits:
        a, b = r[(s, ours)], r[(s, peer)]
        print(f"real data {s}, {ours} vs {peer}: fit ratio {a['fit_seconds']/b['fit_seconds']:.3f}, "
              f"AUC {a['auc']:.5f} vs {b['auc']:.5f} (diff {a['auc']-b['auc']:+.5f})")
    folds = [s for s in splits if s != "holdout"]
    d = [r[(s, ours)]["auc"] - r[(s, peer)]["auc"] for s in folds]
    q = [r[(s, ours)]["fit_seconds"] / r[(s, peer)]["fit_seconds"] for s in folds]
    se = statistics.stdev(d) / len(d) ** 0.5 if len(d) > 1 else float("nan")
    print(f"real data walk-forward ({len(folds)} folds), {ours} vs {peer}: mean AUC diff "
          f"{statistics.mean(d):+.5f} (standard error {se:.5f}), median fit ratio {statistics.median(q):.3f}")
PY
