#!/usr/bin/env bash
# The whole competition loop: folds -> per-fold training with OOF logits -> blend report -> full retrain
# -> validated submission.csv. Every stage skips finished work, so a rerun is quick.
#
#   bash submit.sh                                   # digits demo (built if missing), default recipes
#   bash submit.sh input/<comp> configs/a.yaml configs/b.yaml
#
# Default recipes (`foldwise recipes input/<comp>` prints them): on small images (median shorter side <= 64 px)
# speed + cpu-cnn + cpu-resnet; on larger images cpu-cnn + cpu-resnet + cpu-effnet.
#
# Environment knobs: FOLDS=all|0|0,2 (folds to train, default all), K=5 and SEED=42 (the split),
# SET="optim.epochs=5 data.image_size=32" (recipe overrides for every recipe), FORCE=1 (retrain everything),
# DUP_THRESHOLD=4 (near-duplicate pHash distance in bits for the folds' groups), NO_DEDUP=1 (plain stratified folds),
# GPUS=0,1 (one fold per GPU in parallel; default: all GPUs when more than one is visible),
# METRIC=accuracy|log_loss (what the blend is chosen by), ROOT=dir (where folds/ and output/ go; default: here).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/.ci/bootstrap.sh"
root=${ROOT:-$here}

comp=${1:-$root/input/digits}
[ $# -gt 0 ] && shift
configs=("$@")
train_args=()  # one `foldwise train` process for all recipes: torch + timm load once

if [ ! -e "$comp" ] && [ "$comp" = "$root/input/digits" ]; then
  foldwise demo digits "$comp"
fi
out=$root/output/$(basename "$comp")
fw() { foldwise --root "$root" "$@"; }
if [ ${#configs[@]} -eq 0 ]; then  # small images: the speed recipe + two other nets for the blend
  listed=$(fw recipes "$comp" --configs "$here/configs")
  mapfile -t configs <<< "$listed"
fi
for c in "${configs[@]}"; do train_args+=(-c "$c"); done
for s in ${SET:-}; do train_args+=(--set "$s"); done
[ -n "${FORCE:-}" ] && train_args+=(--force)

echo "== 1/5 folds"
folds_args=(--k "${K:-5}" --seed "${SEED:-42}" --dup-threshold "${DUP_THRESHOLD:-4}")
[ -n "${NO_DEDUP:-}" ] && folds_args+=(--no-dedup)
fw folds "$comp" "${folds_args[@]}"
# One fold per GPU, in parallel, when several GPUs are visible (or GPUS=0,1,... names them); else one process.
gpus=${GPUS:-}
if [ -z "$gpus" ] && command -v nvidia-smi > /dev/null; then
  n_gpus=$(nvidia-smi -L 2> /dev/null | grep -c '^GPU' || true)
  [ "${n_gpus:-0}" -gt 1 ] && gpus=$(seq -s, 0 $((n_gpus - 1)))
fi
echo "== 2/5 train folds (${FOLDS:-all}) of ${configs[*]}${gpus:+ on GPUs $gpus, one fold each}"
if [ -n "$gpus" ]; then
  IFS=, read -ra gpu_list <<< "$gpus"
  if [ "${FOLDS:-all}" = all ]; then fold_list=($(seq 0 $((${K:-5} - 1)))); else IFS=, read -ra fold_list <<< "$FOLDS"; fi
  mkdir -p "$out/logs"
  declare -A busy=()  # pid -> GPU of each running fold
  for k in "${fold_list[@]}"; do
    free=""
    while [ -z "$free" ]; do  # the first GPU without a running fold; else wait for any fold to finish
      for g in "${gpu_list[@]}"; do
        in_use=""
        for pid in "${!busy[@]}"; do [ "${busy[$pid]}" = "$g" ] && in_use=1; done
        [ -z "$in_use" ] && { free=$g; break; }
      done
      if [ -z "$free" ]; then
        done_pid=""
        wait -n -p done_pid || true
        unset "busy[$done_pid]"
      fi
    done
    (
      set +e
      CUDA_VISIBLE_DEVICES=$free fw train "$comp" --fold "$k" "${train_args[@]}" > "$out/logs/fold$k.log" 2>&1
      echo $? > "$out/logs/fold$k.status"
    ) &
    busy[$!]=$free
    echo "fold $k -> GPU $free (log: $out/logs/fold$k.log)"
  done
  wait
  for k in "${fold_list[@]}"; do
    if [ "$(cat "$out/logs/fold$k.status")" != 0 ]; then
      tail -n 5 "$out/logs/fold$k.log" >&2
      echo "fold $k failed; full log: $out/logs/fold$k.log" >&2
      exit 1
    fi
  done
  echo "folds ${fold_list[*]} done (logs in $out/logs/)"
else
  fw train "$comp" --fold "${FOLDS:-all}" "${train_args[@]}"
fi
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
key=$comp/solution.csv  # a key that ships beside the data, or the labels of a labeled test split (CIFAR test, ...)
[ -f "$key" ] || key=$out/solution.csv
if [ -f "$key" ]; then
  echo "== score against $key (a key that training never reads)"
  fw score "$out/submission.csv" "$key"
fi
echo "submission: $out/submission.csv"
echo "report:     $out/blend/report.md and $out/blend/report.html"
