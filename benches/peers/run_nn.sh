#!/usr/bin/env bash
# Side-by-side network training benchmark: `retrain nn --ett` vs the PyTorch peer
# (benches/peers/patchtst.py, same architecture, same ETTh1 windows, same batch sizes) in one
# run, for PatchTST small, PatchTST large and N-HiTS. Prints seconds per training step of each
# and the ratio ours / PyTorch, plus peak RSS of each process.
#
# usage: benches/peers/run_nn.sh [ETT=../shared/datasets/ETTh1.csv] [BATCHES=10] [THREADS=2]
#   BATCHES=0 times whole epochs (PatchTST small: ~65 batches of 128).
# needs: cargo, python3 with torch, pandas, numpy
set -euo pipefail
ETT=${1:-../shared/datasets/ETTh1.csv}
BATCHES=${2:-10}
THREADS=${3:-2}
DIR=target/nn-bench
mkdir -p "$DIR"
cargo build --release --quiet --bin retrain
OUT="$DIR/nn_${BATCHES}.jsonl"
: > "$OUT"
peak() { /usr/bin/time -f "%M" -o "$DIR/mem.txt" "$@"; }
MAX=()
[ "$BATCHES" -gt 0 ] && MAX=(--max-batches "$BATCHES")
for run in "patchtst small" "patchtst large" "nhits small"; do
  set -- $run
  model=$1 size=$2
  peak ./target/release/retrain --threads "$THREADS" nn --ett "$ETT" --model "$model" --size "$size" \
    --epochs 1 "${MAX[@]}" --json > "$DIR/ours.json"
  python3 - "$DIR/ours.json" "$DIR/mem.txt" "$model" "$size" >> "$OUT" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print(json.dumps({"lib": "retrain", "model": sys.argv[3], "size": sys.argv[4],
                  "step_seconds": d["step_seconds"], "epoch_seconds": d["epoch_seconds"],
                  "batches_per_epoch": d["batches_per_epoch"], "parameters": d["parameters"],
                  "peak_rss_mb": int(open(sys.argv[2]).read().split()[-1]) / 1024}))
PY
  peak python3 benches/peers/patchtst.py "$ETT" --models "$model" --size "$size" --batches "$BATCHES" \
    --threads "$THREADS" --epochs 1 > "$DIR/peer.json"
  python3 - "$DIR/peer.json" "$DIR/mem.txt" "$size" >> "$OUT" <<'PY'
import json, sys
d = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
d["size"] = sys.argv[3]
d["peak_rss_mb"] = int(open(sys.argv[2]).read().split()[-1]) / 1024
print(json.dumps(d))
PY
done
python3 - "$OUT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
for ours, peer in zip(rows[0::2], rows[1::2]):
    name = ours["model"] + (" " + ours["size"] if ours["model"] == "patchtst" else "")
    print(f"{name:15} ours {ours['step_seconds']*1e3:8.1f} ms/step ({ours['parameters']} params, "
          f"{ours['peak_rss_mb']:.0f} MB)  pytorch {peer['step_seconds']*1e3:8.1f} ms/step "
          f"({peer['parameters']} params, {peer['peak_rss_mb']:.0f} MB)  ratio {ours['step_seconds']/peer['step_seconds']:.2f}")
PY
