#!/usr/bin/env bash
# Feature benchmarks side by side: TA-Lib (Python, C library) vs retrain on the same
# 1,000,000 stitched real bars, in one run. Needs: pip install TA-Lib numpy pandas.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-1000000}
DATA=${DATA:-target/bench-data/stitched_${N}.csv}
mkdir -p "$(dirname "$DATA")"
cargo build --release --example stitch --example talib_timing
[ -f "$DATA" ] || target/release/examples/stitch "$DATA" "$N"
python3 benches/peers/features.py "$DATA" target/release/examples/talib_timing 7
