#!/usr/bin/env bash
# Regenerate the stored cell-eval2 0.20.0 outputs of the vcc2026 parity tests.
#
#   CE2=/path/to/venv-with-cell-eval2-0.20.0 ./regenerate.sh
#
# 1. writes the fixtures (python make_fixtures.py, any python with anndata),
# 2. runs `cell-eval2 run --preset vcc2026` on each pair, `cell-eval2 baseline`, `cell-eval2 run
#    --anchor` (replicate anchor, base seed 0, 5 splits), `cell-eval2 prep-real-bundle` and
#    `cell-eval2 score --real-bundle`, each under the preset,
# 3. keeps only the small outputs (CSV, JSON, the anchor's parquet also as CSV) under
#    expected/;
# 4. scores each prediction's agg against the bundle (score.csv).
set -euo pipefail
CE2=${CE2:-/work/venvs/ce2}
HERE=$(cd "$(dirname "$0")" && pwd)
FIX=$HERE/fixtures
OUT=$HERE/expected
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
python "$HERE/make_fixtures.py" "$FIX"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} NUMBA_NUM_THREADS=${NUMBA_NUM_THREADS:-2}
ce2() { "$CE2/bin/cell-eval2" "$@" --preset vcc2026 --pert-col target_gene --control non-targeting; }
mkdir -p "$OUT"
for name in mixed replicate constant; do
  ce2 run -ap "$FIX/${name}_pred.h5ad" -ar "$FIX/real.h5ad" -o "$WORK/$name" --write-degenes
  mkdir -p "$OUT/$name"
  cp "$WORK/$name/results.csv" "$WORK/$name/agg_results.csv" "$WORK/$name/run_meta.json" "$OUT/$name/"
done
ce2 baseline -ar "$FIX/real.h5ad" -o "$WORK/baseline" --save-pred "$WORK/baseline_pred.h5ad"
mkdir -p "$OUT/baseline"
cp "$WORK"/baseline/*.csv "$OUT/baseline/"
ce2 run -ar "$FIX/real.h5ad" --anchor -o "$WORK/anchor"
mkdir -p "$OUT/anchor"
cp -r "$WORK"/anchor/anchor_* "$OUT/anchor/"
ce2 prep-real-bundle --real "$FIX/real.h5ad" --baseline "$WORK/baseline_pred.h5ad" -o "$OUT/bundle" --id parity --force
rm -f "$OUT"/bundle/*.parquet.csv "$OUT"/anchor/*.parquet.csv
# parquet tables as CSV too (the tests read CSV; full float precision)
"$CE2/bin/python" - "$OUT" <<'PY'
import glob, sys
import polars as pl
for path in glob.glob(f"{sys.argv[1]}/*/*.parquet"):
    pl.read_parquet(path).write_csv(path[:-len(".parquet")] + ".csv", float_precision=17)
PY
for name in mixed replicate constant; do
  "$CE2/bin/cell-eval2" score --user-agg "$OUT/$name/agg_results.csv" --real-bundle "$OUT/bundle" \
    -o "$OUT/$name/score.csv"
done
# submissions whose real data is not the bundle's: what cell-eval2 score --real-bundle does
OMP_NUM_THREADS=2 "$CE2/bin/python" "$HERE/regenerate_mismatch.py" "$CE2/bin/cell-eval2"
