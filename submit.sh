#!/usr/bin/env bash
# The whole competition loop: folds -> per-fold training with OOF logits -> blend report -> full retrain
# -> validated submission.csv. Every stage skips finished work, so a rerun is quick.
#
#   bash submit.sh                                   # digits demo (built if missing), CPU recipes
#   bash submit.sh input/<comp> configs/a.yaml configs/b.yaml
#
# Environment knobs: FOLDS=all|0|0,2 (folds to train, default all), K=5 and SEED=42 (the split),
# SET="optim.epochs=5 data.image_size=32" (recipe overrides for every recipe), FORCE=1 (retrain everything),
# METRIC=accuracy|log_loss (what the blend is chosen by), ROOT=dir (where folds/ and output/ go; default: here).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/.ci/bootstrap.sh"
root=${ROOT:-$here}

comp=${1:-$root/input/digits}
[ $# -gt 0 ] && shift
configs=("$@")
[ ${#configs[@]} -gt 0 ] || configs=("$here/configs/cpu-cnn.yaml" "$here/configs/cpu-resnet.yaml" "$here/configs/cpu-effnet.yaml")
train_args=()  # one `foldwise train` process for all recipes: torch + timm load once
for c in "${configs[@]}"; do train_args+=(-c "$c"); done
for s in ${SET:-}; do train_args+=(--set "$s"); done
[ -n "${FORCE:-}" ] && train_args+=(--force)

if [ ! -e "$comp" ] && [ "$comp" = "$root/input/digits" ]; then
  foldwise demo digits "$comp"
fi
out=$root/output/$(basename "$comp")
fw() { foldwise --root "$root" "$@"; }

echo "== 1/5 folds"
fw folds "$comp" --k "${K:-5}" --seed "${SEED:-42}"
echo "== 2/5 train folds (${FOLDS:-all}) of ${configs[*]}"
fw train "$comp" --fold "${FOLDS:-all}" "${train_args[@]}"
echo "== 3/5 blend on out-of-fold logits"
fw blend "$comp" "${configs[@]}" --metric "${METRIC:-accuracy}"
echo "== 4/5 full retrain on all labeled data"
fw train "$comp" --full "${train_args[@]}"
echo "== 5/5 submission"
fw submit "$comp"
fw report "$comp"  # again, now with the full retrain's evidence

echo
echo "== blend (out-of-fold)"
sed -n '/^| rank/,/^$/p' "$out/blend/report.md"
if [ -f "$comp/solution.csv" ]; then
  echo "== score against $comp/solution.csv (a key that training never reads)"
  fw score "$out/submission.csv" "$comp/solution.csv"
fi
echo "submission: $out/submission.csv"
echo "report:     $out/blend/report.md and $out/blend/report.html"
