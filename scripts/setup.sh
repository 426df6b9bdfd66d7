#!/usr/bin/env bash
# Set up llmrl in ./.venv: a virtual environment with llmrl installed in editable mode.
#   scripts/setup.sh          runtime dependencies
#   scripts/setup.sh dev      plus the test tools (pytest, ruff)
# PyTorch is installed first when the environment has none: LLMRL_TORCH_SPEC (default torch==2.13.0, the release
# llmrl is tested with) chooses another, e.g. LLMRL_TORCH_SPEC='torch==2.14.1' for a CUDA build. Re-running is
# quick: pip runs again only when pyproject.toml changed or new extras are asked for.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
extras=${1:-}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
  echo "error: llmrl needs Python 3.10 or newer; '$python' is $("$python" --version 2>&1 || echo missing)" >&2
  exit 1
fi
[ -x .venv/bin/python ] || "$python" -m venv .venv

# One stamp per install of this pyproject.toml: "dev" covers the runtime install too.
hash=$(sha1sum pyproject.toml | cut -c1-12)
if [ -f ".venv/.llmrl-$hash-dev" ] || [ -f ".venv/.llmrl-$hash-${extras:-base}" ]; then
  exit 0
fi
echo "setting up .venv (llmrl${extras:+[$extras]})..."
if ! .venv/bin/python -c 'import torch' 2>/dev/null; then
  .venv/bin/python -m pip install -q "${LLMRL_TORCH_SPEC:-torch==2.13.0}"
fi
.venv/bin/python -m pip install -q -e ".${extras:+[$extras]}"
find .venv -maxdepth 1 -name '.llmrl-*' ! -name ".llmrl-$hash-*" -delete
touch ".venv/.llmrl-$hash-${extras:-base}"
