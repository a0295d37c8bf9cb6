#!/usr/bin/env bash
# The peers of the table benchmarks, each in its own environment (their pins never reach vaekit's
# .venv): bench/.venv-pyod (PyOD's VAE and AutoEncoder, for bench/tables_anomaly.py) and
# bench/.venv-sdv (SDV's TVAE and CTGAN and SDMetrics, for bench/tables_synthetic.py). Both take
# the same pinned CPU torch as vaekit.
#   bash bench/setup_tables.sh [pyod|sdv]      # default: both
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
make_venv() {  # name, packages...
  local venv="$here/.venv-$1"; shift
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q torch==2.13.0   # first, so no peer's loose torch pin pulls a CUDA build
  "$venv/bin/pip" install -q "torch==2.13.0" "$@"
}
which="${1:-both}"
if [[ "$which" == pyod || "$which" == both ]]; then
  make_venv pyod pyod tqdm scikit-learn   # pyod 3 imports tqdm without declaring it
  "$here/.venv-pyod/bin/python" -c "import pyod, torch; print('pyod', pyod.__version__, '| torch', torch.__version__)"
fi
if [[ "$which" == sdv || "$which" == both ]]; then
  make_venv sdv sdv sdmetrics statsmodels scikit-learn   # statsmodels: the bundled tables
  "$here/.venv-sdv/bin/python" -c "import sdv, sdmetrics, torch; print('sdv', sdv.__version__, '| sdmetrics', sdmetrics.__version__, '| torch', torch.__version__)"
fi
