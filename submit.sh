#!/usr/bin/env bash
# The whole competition loop: folds -> per-fold training with OOF logits -> blend report -> full retrain
# -> validated submission.csv. Every stage skips finished work, so a rerun is quick.
#
#   bash submit.sh                                   # digits demo (built if missing), CPU recipes
#   bash submit.sh input/<comp> configs/a.yaml configs/b.yaml
#
# Environment knobs: FOLDS=all|0|0,2 (folds to train, default all), K=5 and SEED=42 (the split),
# SET="optim.epochs=5 data.image_size=32" (recipe overrides for every recipe), FORCE=1 (retrain everything).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
source .ci/bootstrap.sh

comp=${1:-input/digits}
[ $# -gt 0 ] && shift
configs=("$@")
[ ${#configs[@]} -gt 0 ] || configs=(configs/cpu-cnn.yaml configs/cpu-resnet.yaml)
train_args=()  # one `foldwise train` process for all recipes: torch + timm load once
for c in "${configs[@]}"; do train_args+=(-c "$c"); done
for s in ${SET:-}; do train_args+=(--set "$s"); done
[ -n "${FORCE:-}" ] && train_args+=(--force)

if [ ! -e "$comp" ] && [ "$comp" = input/digits ]; then
  foldwise demo digits input/digits
fi
name=$(basename "$comp")

echo "== 1/5 folds"
foldwise folds "$comp" --k "${K:-5}" --seed "${SEED:-42}"
echo "== 2/5 train folds (${FOLDS:-all}) of ${configs[*]}"
foldwise train "$comp" --fold "${FOLDS:-all}" "${train_args[@]}"
echo "== 3/5 blend on out-of-fold logits"
foldwise blend "$comp" "${configs[@]}"
echo "== 4/5 full retrain on all labeled data"
foldwise train "$comp" --full "${train_args[@]}"
echo "== 5/5 submission"
foldwise submit "$comp"

echo
echo "== blend (out-of-fold)"
sed -n '/^| rank/,/^$/p' "output/$name/blend/report.md"
if [ -f "$comp/solution.csv" ]; then
  echo "== score against $comp/solution.csv (a key that training never reads)"
  foldwise score "output/$name/submission.csv" "$comp/solution.csv"
fi
echo "submission: output/$name/submission.csv"
echo "report:     output/$name/blend/report.md"
