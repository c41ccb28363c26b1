#!/usr/bin/env bash
# Side-by-side drift/trigger benchmark: the supervisor cycle of `cargo bench --bench
# lifecycle` (health + KS/PSI/BH drift + triggers for 100 models x 60 features, 2 threads)
# against scipy's ks_2samp + numpy PSI + false_discovery_control on the same dumped data (one
# thread: scipy has no parallel ks_2samp), in one run; prints the ratio.
#
# usage: benches/peers/run_drift.sh
# needs: cargo, python3 with numpy scipy
set -euo pipefail
DATA=target/drift-bench/data.bin
OURS=$(DRIFT_DUMP=$DATA cargo bench --bench lifecycle -- --warm-up-time 1 supervisor_cycle 2>/dev/null \
  | awk '/^supervisor_cycle_ms/ {print $2}')
PEER=$(python3 benches/peers/drift.py "$DATA")
python3 - "$OURS" "$PEER" <<'PY'
import json, sys
ours = float(sys.argv[1]); peer = json.loads(sys.argv[2])
print(f"supervisor cycle 100x60: retrain {ours:.1f} ms (2 threads) vs scipy {peer['ms']:.1f} ms "
      f"(drift check only): ratio {ours / peer['ms']:.4f}")
PY
