#!/usr/bin/env bash
# Side-by-side GBDT benchmark: generate the data, run `retrain gbdt` leaf-wise and
# depth-wise and the Python peers (LightGBM, XGBoost) on the same Parquet files in one run,
# print every result as JSON and the ratios. Peak memory per process via /usr/bin/time -v.
#
# usage: benches/peers/run_gbdt.sh [ROWS=100000] [THREADS=2] [ROUNDS=1]
# With ROUNDS > 1 the four fits run ROUNDS times, interleaved, and the ratios of every round
# are printed with their median: on a shared VM one run can be off by 20-50 %.
# needs: cargo, python3 with lightgbm xgboost scikit-learn pandas pyarrow
set -euo pipefail
ROWS=${1:-100000}
THREADS=${2:-2}
ROUNDS=${3:-1}
source "$(dirname "$0")/gbdt_data.sh"
export OMP_WAIT_POLICY=PASSIVE
OUT="$DIR/results_${ROWS}.jsonl"
: > "$OUT"
for round in $(seq 1 "$ROUNDS"); do
for mode in "--num-leaves 63" "--max-depth 6"; do
  # shellcheck disable=SC2086
  peak ./target/release/retrain gbdt --train "$TRAIN" --test "$TEST" $mode --rounds 100 \
    --learning-rate 0.1 --max-bin 255 --threads "$THREADS" --json \
    | python3 -c "import json,sys; d=json.load(sys.stdin); print(json.dumps({'round':$round,'lib':'retrain '+d['growth']['policy'],'fit_seconds':d['fit_seconds'],'predict_seconds':d['predict_seconds'],'auc':d['test']['auc'],'log_loss':d['test']['log_loss']}))" \
    | tee -a "$OUT"
done
for lib in lightgbm xgboost; do
  peak python3 benches/peers/gbdt.py "$TRAIN" "$TEST" --threads "$THREADS" --libs "$lib" \
    | python3 -c "import json,sys; d=json.loads(sys.stdin.read()); d['round']=$round; print(json.dumps(d))" | tee -a "$OUT"
done
done
python3 - "$OUT" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
rounds = sorted({d["round"] for d in rows})
by = {(d["round"], d["lib"]): d for d in rows}
for ours, peer in [("retrain leaf_wise", "lightgbm"), ("retrain depth_wise", "xgboost")]:
    fit = [by[(k, ours)]["fit_seconds"] / by[(k, peer)]["fit_seconds"] for k in rounds]
    pred = [by[(k, ours)]["predict_seconds"] / by[(k, peer)]["predict_seconds"] for k in rounds]
    a, b = by[(rounds[0], ours)], by[(rounds[0], peer)]
    each = "" if len(rounds) == 1 else " (rounds: " + ", ".join(f"{x:.3f}" for x in fit) + ")"
    print(f"{ours} vs {peer}: fit ratio {statistics.median(fit):.3f}{each}, "
          f"predict ratio {statistics.median(pred):.3f}, "
          f"AUC {a['auc']:.5f} vs {b['auc']:.5f} (diff {a['auc']-b['auc']:+.5f})")
PY
