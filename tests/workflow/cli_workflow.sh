#!/usr/bin/env bash
# The slide workflow through the `medfeat` command only: demo slides -> extract -> train -> heatmap ->
# evaluate -> froc. The final AUC and FROC printed at the end are read from the files those commands wrote.
#
#   bash tests/workflow/cli_workflow.sh OUT_DIR            # full-size demo slides, deep features
#   MEDFEAT="python -m medfeat.cli" QUICK=1 FEATURES=color bash tests/workflow/cli_workflow.sh OUT_DIR
set -euo pipefail

OUT=${1:?usage: cli_workflow.sh OUT_DIR}
MEDFEAT=${MEDFEAT:-medfeat}
FEATURES=${FEATURES:-deep}
QUICK_FLAG=""
if [ -n "${QUICK:-}" ]; then QUICK_FLAG="--quick"; fi
GRID=(--mpp 1 --size 64 --quiet)
CLASSES=(--positive-classes Tumor)

mkdir -p "$OUT"
$MEDFEAT demo --slides-only --out "$OUT" $QUICK_FLAG --quiet

# 1. features of the training and test slides (the demo slides record 1 um/px; patches 64 px at 1 um/px)
$MEDFEAT extract "$OUT"/slides/train_*.tif --out "$OUT/features/train" --features "$FEATURES" "${GRID[@]}"
$MEDFEAT extract "$OUT"/slides/test_*.tif --out "$OUT/features/test" --features "$FEATURES" "${GRID[@]}"

# 2. a classifier on the training stores; every slide has an annotation file (normal slides: an empty one)
$MEDFEAT train "$OUT/features/train" --annotations "$OUT/annotations" "${CLASSES[@]}" --classifier logreg \
    --cv 3 --out "$OUT/model.skops" --quiet

# 3. heatmaps of the test slides from their stored features, with each patch's true label
$MEDFEAT heatmap "$OUT/model.skops" "$OUT"/slides/test_*.tif --features-dir "$OUT/features/test" \
    --annotations "$OUT/annotations" "${CLASSES[@]}" --out "$OUT/heatmaps" --quiet

# 4. ROC of the per-patch scores: patch level (grouped by slide) and slide level
$MEDFEAT evaluate "$OUT"/heatmaps/*_scores.csv --out "$OUT/evaluation/report.html" --n-bootstrap 200 --quiet

# 5. CAMELYON16 FROC of the heatmaps against the annotations
$MEDFEAT froc "$OUT/heatmaps" --annotations "$OUT/annotations" "${CLASSES[@]}" --out "$OUT/froc" --quiet

# The figures, from the files written above (no Python).
AUC=$(grep -m1 -o '"auc": [0-9.eE+-]*' "$OUT/evaluation/report.summary.json" | awk '{print $2}')
SLIDE_AUC=$(grep -o '"auc": [0-9.eE+-]*' "$OUT/evaluation/report.summary.json" | sed -n 2p | awk '{print $2}')
FROC=$(grep -m1 -o '"score": [0-9.eE+-]*' "$OUT/froc/froc.json" | awk '{print $2}')
LESIONS=$(grep -m1 -o '"n_lesions": [0-9]*' "$OUT/froc/froc.json" | awk '{print $2}')
echo "patch_auc=$AUC"
echo "slide_auc=$SLIDE_AUC"
echo "froc=$FROC"
echo "froc_lesions=$LESIONS"
