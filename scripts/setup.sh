#!/usr/bin/env bash
# Set up llmrl in ./.venv: a virtual environment with llmrl installed in editable mode.
#   scripts/setup.sh          runtime dependencies
#   scripts/setup.sh dev      plus the test tools (pytest, ruff)
# PyTorch is installed first when the environment has none: LLMRL_TORCH_SPEC (default torch==2.13.0, the release
# llmrl is tested with) chooses another, e.g. LLMRL_TORCH_SPEC='torch==2.14.1' for a CUDA build. Re-running is
# quick: pip runs again only when pyproject.toml or the extras changed.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
extras=${1:-}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
  echo "error: llmrl needs Python 3.10 or newer; '$python' is $("$python" --version 2>&1 || echo missing)" >&2
  exit 1
fi
[ -x .venv/bin/python ] || "$python" -m venv .venv

stamp=".venv/.llmrl-$(cat pyproject.toml | sha1sum | cut -c1-12)-${extras:-base}"
if [ ! -f "$stamp" ]; then
  echo "setting up .venv (llmrl${extras:+[$extras]})..."
  .venv/bin/python -m pip install -q --upgrade pip
  if ! .venv/bin/python -c 'import torch' 2>/dev/null; then
    .venv/bin/python -m pip install -q "${LLMRL_TORCH_SPEC:-torch==2.13.0}"
  fi
  .venv/bin/python -m pip install -q -e ".${extras:+[$extras]}"
  rm -f .venv/.llmrl-*
  touch "$stamp"
fi
