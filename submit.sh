#!/usr/bin/env bash
# The whole competition loop, `foldwise run`: folds -> per-fold training with OOF logits -> blend report -> full
# retrain -> validated submission.csv -> score against a key when one ships. Every stage skips finished work.
#
#   bash submit.sh                                   # digits demo (built if missing), default recipes
#   bash submit.sh input/<comp> speed my-recipe.yaml # packaged recipe names, recipe files or folders
#
# Environment knobs (each also an option of `foldwise run`, see `foldwise run --help`): FOLDS=all|0|0,2, K=5,
# SEED=42, REPEATS=1, SET="optim.epochs=5 data.image_size=32", FORCE=1, DUP_THRESHOLD=4, NO_DEDUP=1, GPUS=0,1,
# METRIC=accuracy|log_loss|macro_f1|roc_auc|qwk|map_at_<k>|top_<k>, GROUP_COLUMN=col, TIME=45m (a time budget: the
# plan is fitted to it), ROOT=dir (where folds/ and output/ go; default: here). No recipe named: foldwise chooses
# them from the data and the machine (`foldwise recipes input/<comp>` says which and why).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/.ci/bootstrap.sh"
root=${ROOT:-$here}
comp=${1:-$root/input/digits}
[ $# -gt 0 ] && shift
if [ ! -e "$comp" ] && [ "$comp" = "$root/input/digits" ]; then
  foldwise demo digits "$comp"
fi
recipes=()
for c in "$@"; do recipes+=(-c "$c"); done
exec foldwise --root "$root" run "$comp" ${recipes[@]+"${recipes[@]}"}
