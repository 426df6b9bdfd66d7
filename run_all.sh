#!/usr/bin/env bash
# Set up llmrl (scripts/setup.sh) and run the pipeline.
#   ./run_all.sh --test   offline: the built-in small model and the bundled arithmetic data (a few minutes on a CPU)
#   ./run_all.sh --prod   the production preset (lands with `llmrl pipeline`)
# Outputs go to runs/<run id>/; the run id is printed at the start.
set -euo pipefail
cd "$(dirname "$0")"

usage() { sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'; }

mode=${1:---test}
case "$mode" in
  --test) ;;
  --prod)
    echo "error: --prod is not available yet: the production pipeline comes with 'llmrl pipeline'; use --test" >&2
    exit 2 ;;
  -h|--help) usage; exit 0 ;;
  *) echo "error: unknown option '$mode'; expected --test or --prod" >&2; usage >&2; exit 2 ;;
esac

scripts/setup.sh
if [ -f .env ]; then set -a; . ./.env; set +a; fi  # tokens and tracker settings (see .env.example)
run_id="test-$(date +%Y%m%d-%H%M%S)"
echo "run id: $run_id (outputs in runs/$run_id)"
# The pipeline so far: SFT. Later stages (reward, DPO, RLOO/GRPO/PPO, eval) join as they land.
.venv/bin/llmrl train --config configs/sft_test.yaml --output-dir "runs/$run_id/sft"
echo "done: runs/$run_id/sft/final (metrics in runs/$run_id/sft/metrics.jsonl)"
