#!/usr/bin/env bash
# Set up llmrl (scripts/setup.sh) and run a whole post-training pipeline.
#   ./run_all.sh --test          offline: built-in base model, bundled task, every stage (about 4 min on a CPU)
#   ./run_all.sh --prod          the production preset, configs/pipelines/qwen2.5-0.5b.yaml (Hub and GPU needed)
#   ./run_all.sh --tmux --test   the same, in a detached tmux session named after the run id
# The run goes to runs/<run id>/ (printed first); it ends with the summary, and plots in runs/<run id>/plots/.
set -euo pipefail
cd "$(dirname "$0")"

usage() { sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; }

tmux_mode=false mode=""
for arg in "$@"; do
  case "$arg" in
    --test|--prod) mode=$arg ;;
    --tmux) tmux_mode=true ;;
    -h|--help) usage; exit 0 ;;
    *) echo "error: unknown option '$arg'; expected --test, --prod, --tmux" >&2; usage >&2; exit 2 ;;
  esac
done
mode=${mode:---test}
config=configs/pipelines/test.yaml
[ "$mode" = --prod ] && config=configs/pipelines/qwen2.5-0.5b.yaml

run_id=${LLMRL_RUN_ID:-$(date +%Y%m%d_%H%M%S)_$(head -c 2 /dev/urandom | od -An -tx1 | tr -d ' \n')}
if $tmux_mode; then
  if ! command -v tmux >/dev/null; then
    echo "error: --tmux needs tmux, which is not installed (e.g. apt-get install tmux); run without --tmux" >&2
    exit 2
  fi
  mkdir -p runs
  # a running tmux server would start the session with its own environment: pass on the variables that matter
  env_args=()
  for var in LLMRL_CACHE LLMRL_TORCH_SPEC PYTHON HF_HOME HF_TOKEN HF_HUB_OFFLINE CUDA_VISIBLE_DEVICES \
             WANDB_MODE WANDB_PROJECT WANDB_API_KEY NVIDIA_API_KEY; do
    if [ -n "${!var:-}" ]; then env_args+=(-e "$var=${!var}"); fi
  done
  tmux new-session -d -s "llmrl-$run_id" -c "$PWD" "${env_args[@]}" \
    "LLMRL_RUN_ID=$run_id ./run_all.sh $mode; echo; echo 'run finished: press Enter to close'; read _"
  echo "started tmux session llmrl-$run_id (run id $run_id)"
  echo "  attach:      tmux attach -t llmrl-$run_id"
  echo "  follow log:  tail -f runs/$run_id/events.log   (full output: runs/$run_id/console.log)"
  echo "  status:      .venv/bin/llmrl runs"
  exit 0
fi

scripts/setup.sh
echo "run id: $run_id (outputs in runs/$run_id)"
.venv/bin/llmrl pipeline --config "$config" --run-dir "runs/$run_id"  # ends with the summary and plots/
