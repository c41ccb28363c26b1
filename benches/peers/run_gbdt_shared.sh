#!/usr/bin/env bash
# Shared-CPU GBDT benchmark: a trading engine shares its cores. Each library fits
# the 100k × 50 file with 2 threads twice: alone, and while a second, identical fit of the
# same library runs beside it on the same 2 cores. Prints each library's slowdown
# (shared ÷ alone; 2.0 = fair sharing, more = threads burning CPU while waiting).
# LightGBM and XGBoost run with OpenMP's default wait policy (what users get) and with
# OMP_WAIT_POLICY=PASSIVE.
#
# usage: benches/peers/run_gbdt_shared.sh [ROWS=100000] [THREADS=2]
# needs: cargo, python3 with lightgbm xgboost scikit-learn pandas pyarrow
set -euo pipefail
ROWS=${1:-100000}
THREADS=${2:-2}
source "$(dirname "$0")/gbdt_data.sh"

ours() {  # $1 = growth flags
  # shellcheck disable=SC2086
  ./target/release/retrain gbdt --train "$TRAIN" $1 --rounds 100 --learning-rate 0.1 --max-bin 255 \
    --threads "$THREADS" --json | python3 -c "import json,sys; print(json.load(sys.stdin)['fit_seconds'])"
}
peer() {  # $1 = lib
  python3 benches/peers/gbdt.py "$TRAIN" "$TEST" --threads "$THREADS" --libs "$1" \
    | python3 -c "import json,sys; print(json.loads(sys.stdin.read())['fit_seconds'])"
}
measure() {  # name, command...: alone, then two at once (the reported time is the first's)
  local name=$1; shift
  local alone shared
  alone=$("$@")
  "$@" > /dev/null & local other=$!
  shared=$("$@")
  wait "$other"
  python3 -c "print(f'{\"$name\":<34} alone {$alone:7.2f} s   shared {$shared:7.2f} s   slowdown {$shared/$alone:5.2f}x')"
}
measure "retrain leaf-wise 63" ours "--num-leaves 63"
measure "retrain depth-wise 6" ours "--max-depth 6"
for policy in default PASSIVE; do
  if [ "$policy" = default ]; then unset OMP_WAIT_POLICY; else export OMP_WAIT_POLICY=PASSIVE; fi
  measure "lightgbm (OMP wait: $policy)" peer lightgbm
  measure "xgboost (OMP wait: $policy)" peer xgboost
done
