"""What a run writes that several modules read: checkpoints (and which are complete) and JSON files written
whole. Pure Python, imported by the runner, the training steps and PPO alike."""

import json
from pathlib import Path

PPO_STATE = "ppo_state.json"  # what PPO's checkpoints hold in place of the Trainer's trainer_state.json
CHECKPOINT_MARKERS = ("trainer_state.json", PPO_STATE)  # written last: a checkpoint without one is partial


def complete_checkpoints(output_dir: Path) -> list[Path]:
    """The run's checkpoint-N folders that were written to the end, oldest first. A process killed while
    saving leaves a folder without its state file; resuming never picks that one."""
    found = [p for p in output_dir.glob("checkpoint-*") if p.name.removeprefix("checkpoint-").isdigit()]
    complete = [p for p in found if any((p / marker).is_file() for marker in CHECKPOINT_MARKERS)]
    return sorted(complete, key=lambda p: int(p.name.removeprefix("checkpoint-")))


def write_json(path: Path, data: dict) -> None:
    """Write ``data`` as JSON through a temporary file, so that ``path`` is never half-written."""
    staging = path.with_name(f".{path.name}.tmp")
    staging.write_text(json.dumps(data, indent=2, default=str) + "\n")
    staging.replace(path)
