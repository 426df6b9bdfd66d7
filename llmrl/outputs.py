"""What a run writes that several modules read: checkpoints (and which are complete), JSON files written
whole, and the provenance that run_info.json records (package versions, the git commit). Pure Python,
imported by the runner, the pipeline, the training loops and PPO alike."""

import importlib.metadata
import json
import shutil
import subprocess
from pathlib import Path

from llmrl.errors import redact_secrets

PACKAGES = ("llmrl", "torch", "transformers", "trl", "datasets", "peft", "accelerate")  # recorded per run
PPO_STATE = "ppo_state.json"  # what PPO's checkpoints hold in place of the Trainer's trainer_state.json
CHECKPOINT_MARKERS = ("trainer_state.json", PPO_STATE)  # written last: a checkpoint without one is partial
BEST = "best"  # the policy with the best held-out score of an online-RL run, beside final/
SELECTION = "selection.json"  # in best/: the step it was saved at and the held-out figures it was chosen by


def complete_checkpoints(output_dir: Path) -> list[Path]:
    """The run's checkpoint-N folders that were written to the end, oldest first. A process killed while
    saving leaves a folder without its state file; resuming never picks that one."""
    found = [p for p in output_dir.glob("checkpoint-*") if p.name.removeprefix("checkpoint-").isdigit()]
    complete = [p for p in found if any((p / marker).is_file() for marker in CHECKPOINT_MARKERS)]
    return sorted(complete, key=checkpoint_step)


def checkpoint_step(checkpoint: Path) -> int:
    """The optimizer step a checkpoint-N folder was saved at."""
    return int(checkpoint.name.removeprefix("checkpoint-"))


def write_json(path: Path, data: dict) -> None:
    """Write ``data`` as JSON through a temporary file, so that ``path`` is never half-written, and without
    credentials (a URL's user:password@, anything shaped like an API key: ``redact_secrets``)."""
    staging = path.with_name(f".{path.name}.tmp")
    staging.write_text(redact_secrets(json.dumps(data, indent=2, default=str)) + "\n")
    staging.replace(path)


def save_whole(target: Path, write, accelerator) -> Path:
    """Have ``write(folder)`` fill a staging folder, then rename it to ``target``, so that ``target`` is never
    half-written. ``write`` runs on every process (a sharded model is gathered for saving; the main process
    writes); the staging folder's name is the same on every rank."""
    staging = target.with_name(f".{target.name}-staging")
    if accelerator.is_main_process:
        shutil.rmtree(staging, ignore_errors=True)  # left by a run that died while saving
    accelerator.wait_for_everyone()
    write(staging)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    accelerator.wait_for_everyone()
    return target


def package_versions() -> dict[str, str | None]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit() -> str | None:
    """The commit of the llmrl source tree, when it is a git checkout."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None
