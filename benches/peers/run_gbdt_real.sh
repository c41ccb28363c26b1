#!/usr/bin/env bash
# Real-data GBDT benchmark (issue 3): features + 12-bar direction label from the hourly
# EUR/USD, SPY and XAU/USD series in ../shared/datasets (pooled, 191k rows x 61 features),
# the latest 20% by time as test (purged), then `retrain gbdt` and LightGBM/XGBoost on the
# same files, side by side, as in run_gbdt.sh.
#
# usage: benches/peers/run_gbdt_real.sh [THREADS=2]
set -euo pipefail
THREADS=${1:-2}
DIR=${GBDT_DATA_DIR:-target/gbdt-bench}
SHARED=${SHARED_DATASETS:-../shared/datasets}
mkdir -p "$DIR"
cargo build --release --quiet --bin retrain
./target/release/retrain features --data "$SHARED/eurusd_oanda_mid_1h_2007-2018_lean.csv" \
  --data "$SHARED/spy_1h_1998-2021_lean.csv" --data "$SHARED/xauusd_oanda_mid_1h_2006-2019_lean.csv" \
  --label direction:12 --out "$DIR/real_features.parquet" --json > /dev/null
python3 benches/peers/real_split.py "$DIR/real_features.parquet" direction_12 "$DIR/real_train.parquet" "$DIR/real_test.parquet"
export OMP_WAIT_POLICY=PASSIVE
OUT="$DIR/results_real.jsonl"
: > "$OUT"
for mode in "--num-leaves 63" "--max-depth 6"; do
  # shellcheck disable=SC2086
  ./target/release/retrain gbdt --train "$DIR/real_train.parquet" --test "$DIR/real_test.parquet" $mode \
    --rounds 100 --learning-rate 0.1 --max-bin 255 --threads "$THREADS" --json \
    | python3 -c "import json,sys; d=json.load(sys.stdin); print(json.dumps({'lib':'retrain '+d['growth']['policy'],'fit_seconds':d['fit_seconds'],'predict_seconds':d['predict_seconds'],'auc':d['test']['auc'],'log_loss':d['test']['log_loss']}))" \
    | tee -a "$OUT"
done
python3 benches/peers/gbdt.py "$DIR/real_train.parquet" "$DIR/real_test.parquet" --threads "$THREADS" | tee -a "$OUT"
python3 - "$OUT" <<'PY'
import json, sys
r = {d["lib"]: d for d in map(json.loads, open(sys.argv[1]))}
for ours, peer in [("retrain leaf_wise", "lightgbm"), ("retrain depth_wise", "xgboost")]:
    a, b = r[ours], r[peer]
    print(f"real data, {ours} vs {peer}: fit ratio {a['fit_seconds']/b['fit_seconds']:.3f}, "
          f"AUC {a['auc']:.5f} vs {b['auc']:.5f} (diff {a['auc']-b['auc']:+.5f})")
PY
