#!/usr/bin/env bash
# Creates the benchmark's own environment, bench/.venv-peers: the same pinned CPU torch as
# vaekit's, vaekit itself (editable), and the peer we compare against (pythae, from PyPI).
# Kept apart from the project's .venv so the peer's pins never leak into vaekit's tests.
#   bash bench/setup.sh            # then: bench/.venv-peers/bin/python bench/speed.py ...
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv-peers"
python3 -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
# torch is pinned first so pythae's loose "torch>=1.10.1" cannot pull another build.
"$venv/bin/pip" install -q torch==2.13.0
"$venv/bin/pip" install -q -e "$here/.." "pythae==0.1.2" "torch==2.13.0" py-spy
"$venv/bin/python" -c "import torch, pythae, vaekit; print('torch', torch.__version__, '| pythae', pythae.__version__ if hasattr(pythae, '__version__') else 'ok', '| vaekit', vaekit.__version__)"
