#!/usr/bin/env bash
# Side-by-side CPCV benchmark: `retrain cv` vs skfolio CombinatorialPurgedCV driving
# LightGBM, on the same 200,000 x 50 Parquet file, in one run; prints the wall-time ratio and
# the per-path AUC differences. Peak memory per process via /usr/bin/time.
#
# usage: benches/peers/run_cpcv.sh [ROWS=200000] [THREADS=2] [HORIZON=12] [EMBARGO=5]
# needs: cargo, python3 with lightgbm skfolio scikit-learn pandas pyarrow
set -euo pipefail
ROWS=${1:-200000}
THREADS=${2:-2}
H=${3:-12}
E=${4:-5}
source "$(dirname "$0")/gbdt_data.sh"
DATA="$TRAIN"
export OMP_WAIT_POLICY=PASSIVE
OUT="$DIR/cpcv_${ROWS}.jsonl"
: > "$OUT"
peak ./target/release/retrain --threads "$THREADS" cv --data "$DATA" --label label --horizon "$H" \
  --embargo "$E" --groups 6 --test-groups 2 --num-leaves 63 --rounds 100 --learning-rate 0.1 --json \
  | python3 -c "import json,sys; d=json.load(sys.stdin)['report']; print(json.dumps({'lib':'retrain','seconds':d['seconds'],'path_auc':[p['scores']['auc'] for p in d['paths']]}))" \
  | tee -a "$OUT"
peak python3 benches/peers/cpcv.py "$DATA" --horizon "$H" --embargo "$E" --threads "$THREADS" | tee -a "$OUT"
python3 - "$OUT" <<'PY'
import json, sys
r = {d["lib"]: d for d in map(json.loads, open(sys.argv[1]))}
a, b = r["retrain"], r["skfolio+lightgbm"]
diff = [x - y for x, y in zip(a["path_auc"], b["path_auc"])]
print(f"retrain cv vs skfolio+lightgbm: wall ratio {a['seconds']/b['seconds']:.3f} "
      f"({a['seconds']:.1f} s vs {b['seconds']:.1f} s); path AUC diffs "
      + " ".join(f"{d:+.4f}" for d in diff) + f"; max |diff| {max(map(abs, diff)):.4f}")
PY
