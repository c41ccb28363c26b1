#!/usr/bin/env bash
# Side-by-side version-store benchmark: retrain's VersionStore vs MLflow's file-based
# tracking + model registry, same 5 MB artifact, same registry size, one run; prints ratios
# (retrain ÷ MLflow, < 1 = retrain faster).
#
# usage: benches/peers/run_store.sh [MODELS=10] [VERSIONS=100] [REPEAT=20]
# needs: cargo, python3 with mlflow-skinny (pip install mlflow-skinny)
# MLflow's file registry slows down as it grows (~70 ms per version here), so the default
# registry is 1,000 versions; the 10,000-version target is in `cargo bench --bench store`.
set -euo pipefail
MODELS=${1:-10}
VERSIONS=${2:-100}
REPEAT=${3:-20}
DIR=${STORE_BENCH_DIR:-target/store-peer}
rm -rf "$DIR" && mkdir -p "$DIR/retrain" "$DIR/mlflow"
head -c 5242880 /dev/urandom > "$DIR/model.bin"
cargo build --release --quiet --example store_timing
OUT="$DIR/results.jsonl"
./target/release/examples/store_timing "$DIR/retrain" "$DIR/model.bin" "$MODELS" "$VERSIONS" "$REPEAT" | tee "$OUT"
python3 benches/peers/store_mlflow.py "$DIR/mlflow" "$DIR/model.bin" --models "$MODELS" --versions "$VERSIONS" --repeat "$REPEAT" | tee -a "$OUT"
python3 - "$OUT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
a, b = rows[0], rows[1]
print(f"retrain vs {b['lib']} (ratio = retrain / mlflow; retrain fsyncs every commit, mlflow does not):")
for k, what in [("register_ms", "register 5 MB + set alias"), ("load_ms", "load 5 MB"),
                ("build_s", "create the registry"), ("list_ms", "list one model's versions"),
                ("active_ms", "get the active/champion version")]:
    print(f"  {what:<34} {a[k]:10.3f} vs {b[k]:10.3f} {k.split('_')[1]:>2}  ratio {a[k]/b[k]:.4g}")
PY
