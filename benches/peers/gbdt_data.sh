# Sourced by the GBDT peer scripts (not run on its own): builds the binary and the data
# generator, and makes sure the synthetic benchmark files exist. Needs ROWS set.
#   TRAIN = $DIR/train_$ROWS.parquet (seed 1), TEST = $DIR/test_200000.parquet (seed 2)
# Also defines `peak CMD…` (runs CMD, prints its peak RSS to stderr).
DIR=${GBDT_DATA_DIR:-target/gbdt-bench}
mkdir -p "$DIR"
cargo build --release --quiet --bin retrain --example gbdt_data
TRAIN="$DIR/train_${ROWS}.parquet"
TEST="$DIR/test_200000.parquet"
[ -f "$TRAIN" ] || ./target/release/examples/gbdt_data "$ROWS" 50 1 "$TRAIN"
[ -f "$TEST" ] || ./target/release/examples/gbdt_data 200000 50 2 "$TEST"
peak() { /usr/bin/time -f "%M" -o "$DIR/mem.txt" "$@"; echo "peak_rss_kb=$(cat "$DIR/mem.txt")" >&2; }
