#!/usr/bin/env bash
# The GPU check (scripts/gpu_check.py) on a lent GPU machine, and the wheels it needs there.
#
#   scripts/gpu_check.sh wheels   # here, with network: the packages the GPU machine lacks, into .whl/ (~3.5 MiB)
#   scripts/gpu_check.sh [ARGS]   # there (or here): install .whl/ if trl is missing, then run the check;
#                                 # ARGS go to gpu_check.py (default output: $OUT, else .gpu_check/)
#
# The GPU machine has torch, transformers, accelerate, peft and triton but no trl, datasets or liger-kernel,
# and no network; llmrl runs from this working tree (PYTHONPATH), not installed. Always exits 0 when the
# check ran: gpu_check.json says which checks failed.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
# .venv's versions; liger-kernel: the newest (it needs torch>=2.1.2, triton>=2.3.1, transformers>=5);
# huggingface_hub: installed there only when the machine's is older than datasets 5.2.0 needs (>=1.31), and
# below 2 for transformers 5.17
WHEELS=(trl==1.16.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 liger-kernel==0.8.5 huggingface_hub==1.33.0)
MAX_MIB=40

if [[ "${1:-}" == wheels ]]; then
    rm -rf .whl && mkdir .whl
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .whl "${WHEELS[@]}" 2>&1 | grep -v "is ignored" || true
    ls -1 .whl
    [[ $(ls .whl/*.whl | wc -l) -eq ${#WHEELS[@]} ]] || { echo "expected ${#WHEELS[@]} wheels in .whl/" >&2; exit 1; }
    total=$(du -cb .whl/*.whl | tail -1 | cut -f1)
    echo "total: $((total / 1024)) KiB"
    ((total <= MAX_MIB * 1024 * 1024)) || { echo "over $MAX_MIB MiB: too much to carry" >&2; exit 1; }
    exit 0
fi

PYTHON="${GPU_CHECK_PYTHON:-python3}"  # GPU_CHECK_PYTHON: another interpreter, for a rehearsal
[[ -z "${GPU_CHECK_PYTHON:-}" && -x .venv/bin/python ]] && PYTHON=.venv/bin/python
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
if compgen -G ".whl/*.whl" >/dev/null && ! "$PYTHON" -c "import trl" 2>/dev/null; then
    wheels=(.whl/*.whl)
    hub_is_recent="import sys, huggingface_hub as h; sys.exit(tuple(map(int, h.__version__.split('.')[:2])) < (1, 31))"
    if "$PYTHON" -c "$hub_is_recent"; then
        wheels=($(ls .whl/*.whl | grep -v huggingface_hub))  # the machine's own is recent enough
    fi
    echo "installing ${#wheels[@]} wheels from .whl/ into /tmp/site: ${wheels[*]#.whl/}"
    rm -rf /tmp/site
    if ! "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
        "${wheels[@]}"; then
        echo "pip failed: unpacking the wheels instead (all are pure Python)"
        for wheel in "${wheels[@]}"; do "$PYTHON" -m zipfile -e "$wheel" /tmp/site; done
    fi
    export PYTHONPATH="/tmp/site:$PYTHONPATH"
fi
mkdir -p /tmp/gpu_check_home
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_NO_ADVISORY_WARNINGS=1
export HF_HOME=/tmp/gpu_check_home/hf LLMRL_CACHE=/tmp/gpu_check_home/llmrl
export TOKENIZERS_PARALLELISM=false TQDM_DISABLE=1  # no progress bars of datasets and transformers in the log
"$PYTHON" scripts/gpu_check.py --out "${OUT:-.gpu_check}" "$@" || echo "gpu_check.py exited with $?"
