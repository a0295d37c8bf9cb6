#!/usr/bin/env bash
# Creates bench/.venv-compressai for bench/lossy.py: the same pinned CPU torch as vaekit's and
# CompressAI from PyPI (its factorized-prior model, Balle et al. 2017), kept apart from the
# project's .venv. CompressAI requires torchvision, and PyPI's torchvision wheels are CUDA builds
# whose compiled ops do not load against the CPU torch; CompressAI only imports it to list its
# data transforms, so bench/compressai_worker.py puts an empty torchvision module in its place.
#   bash bench/setup_compressai.sh     # then: .venv/bin/python bench/lossy.py ...
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv-compressai"
python3 -m venv "$venv"
pins="$(mktemp)"
echo "torch==2.13.0" > "$pins"  # CompressAI's loose torch requirement must not pull another build
"$venv/bin/pip" install -q torch==2.13.0
"$venv/bin/pip" install -q -c "$pins" "compressai==1.2.8"
rm -f "$pins"
"$venv/bin/python" "$here/compressai_worker.py" --version
