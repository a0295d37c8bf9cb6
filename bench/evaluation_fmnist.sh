#!/usr/bin/env bash
# Fashion-MNIST evaluation figures for docs/evaluation.md (trained at the settings of the time:
# Adam 1e-3, constant rate): train an MLP VAE, a conv VAE and a
# conv AE (discretized-logistic likelihood, 10 epochs each), evaluate them, compare AE vs VAE,
# and write a report. Run from the repository root with the venv installed; every command is
# timed. On a shared 2-core machine this takes hours: pass MAX_EXAMPLES=N to evaluate the k=1000
# NLL on the first N test examples only (the other metrics always use the whole test split).
set -euo pipefail
V=${V:-.venv/bin/vaekit}
K=${K:-1000}
MAX_EXAMPLES=${MAX_EXAMPLES:-}
OUT=${OUT:-runs}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # on a crowded machine one thread per process is faster
t() { /usr/bin/time -f "  [%e s wall] $*" "$@"; }
mkdir -p "$OUT"

for spec in "mlp vae fmnist-mlp-dlog" "conv vae fmnist-conv-dlog" "conv ae fmnist-conv-ae-dlog"; do
  set -- $spec
  [ -f "$OUT/$3/model.safetensors" ] || t $V train --data fashion-mnist --arch "$1" --model "$2" \
      --likelihood discretized-logistic --epochs 10 --lr 1e-3 --lr-schedule constant --out "$OUT/$3" --overwrite -q
done
for run in fmnist-mlp-dlog fmnist-conv-dlog; do
  t $V evaluate "$OUT/$run" --iw-samples "$K" ${MAX_EXAMPLES:+--max-examples "$MAX_EXAMPLES"} \
      --no-sample-quality --out "$OUT/$run/nll_k$K.json" -q
done
for run in fmnist-mlp-dlog fmnist-conv-dlog fmnist-conv-ae-dlog; do
  # every metric on the whole test split, k=1 (the -ELBO) to keep it quick; this is the
  # <run>/evaluation.json that the report shows, so it runs last
  t $V evaluate "$OUT/$run" --iw-samples 1 -q
done
t $V compare "$OUT/fmnist-conv-ae-dlog" "$OUT/fmnist-conv-dlog" --out "$OUT/compare-fmnist" -q
t $V report "$OUT/fmnist-conv-dlog" -q

# The tutorial's own setting: the default Bernoulli likelihood (no bits/dim on grey levels).
for model in vae ae; do
  [ -f "$OUT/fmnist-conv-$model-bern/model.safetensors" ] || t $V train --data fashion-mnist --arch conv \
      --model "$model" --epochs 10 --lr 1e-3 --lr-schedule constant --out "$OUT/fmnist-conv-$model-bern" --overwrite -q
  t $V evaluate "$OUT/fmnist-conv-$model-bern" --iw-samples 1 -q
done
t $V compare "$OUT/fmnist-conv-ae-bern" "$OUT/fmnist-conv-vae-bern" --out "$OUT/compare-fmnist-bern" -q
