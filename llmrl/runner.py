"""Run management around every method's ``train(cfg)``: the output folder, ``run_info.json``, the run log,
and memory cleanup, the same for every method."""

import contextlib
import datetime
import importlib
import importlib.metadata
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

from llmrl.builtin import resolve_model
from llmrl.config import TrainingConfig
from llmrl.console import log_to_file, setup_console_logging
from llmrl.data import local_path
from llmrl.errors import LlmrlError, first_line
from llmrl.interrupt import TrainingInterrupted
from llmrl.memory import free_memory
from llmrl.methods import MODULES

PACKAGES = ("llmrl", "torch", "transformers", "trl", "datasets", "peft", "accelerate")
SECRET_WORDS = ("key", "token", "secret", "password")
logger = logging.getLogger("llmrl")
RUN_FILES = (
    "final",
    "metrics.jsonl",
    "run_info.json",
    "ranks.json",
    "train.log",
    "tensorboard",
    "wandb",
    "value_model",
)  # a run's files, and checkpoint-*


def run_training(cfg: TrainingConfig) -> Path:
    """Train ``cfg.method`` into ``cfg.output_dir`` and return the path of the saved ``final/`` model."""
    from llmrl.training import detect_hardware

    check_inputs(cfg)
    created = cfg.output_dir is None or not Path(cfg.output_dir).exists()
    output_dir = prepare_output_dir(cfg)
    replaced = set_aside_previous_run(output_dir) if cfg.overwrite and _is_main_process() else None
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(output_dir / "tensorboard")  # read by transformers' callback
    os.environ["WANDB_DIR"] = str(output_dir)  # W&B's files (offline runs too) stay with the run
    setup_console_logging()
    info = {
        "method": cfg.method,
        "status": "running",
        "start_time": _now(),
        "end_time": None,
        "world_size": int(os.environ.get("WORLD_SIZE", "1")),
        "config": redact(cfg.to_dict()),
        "versions": package_versions(),
        "git_commit": git_commit(),
        "hardware": hardware_summary(),
    }
    write_run_info(output_dir, info)
    started = time.monotonic()
    with log_to_file(output_dir / "train.log") if _is_main_process() else contextlib.nullcontext():
        logger.info("training %s: model %s, dataset %s, output %s", cfg.method, cfg.model, cfg.dataset, output_dir)
        logger.info(detect_hardware(cfg).summary())
        try:
            method = importlib.import_module(MODULES[cfg.method])
            final = method.train(cfg)
            info.update(status="completed", final_dir=str(final))
            return final
        except (KeyboardInterrupt, TrainingInterrupted):
            info["status"] = "interrupted"
            raise
        except BaseException as e:
            info.update(status="failed", error=f"{type(e).__name__}: {first_line(e)}")
            raise
        finally:
            info.update(end_time=_now(), wall_seconds=round(time.monotonic() - started, 2))
            write_run_info(output_dir, info)
            finish_trackers()
            free_memory()
            if _is_main_process():
                settle_output_dir(output_dir, replaced, created)


def check_inputs(cfg: TrainingConfig) -> None:
    """Cheap checks of the model, the dataset and the hardware options, before anything is written."""
    from llmrl.training import detect_hardware

    local_path(cfg.dataset)
    detect_hardware(cfg)  # fp16 or QLoRA without CUDA fail here, not after the data is prepared
    resolve_model(cfg.model)


def prepare_output_dir(cfg: TrainingConfig) -> Path:
    """Create the run's folder (named and checked by ``resolve_output_dir``)."""
    output_dir = resolve_output_dir(cfg)
    output_dir.mkdir(parents=True, exist_ok=True)
    return output_dir


def resolve_output_dir(cfg: TrainingConfig) -> Path:
    """Name the run's folder (time-stamped when ``output_dir`` is unset) and refuse to overwrite a finished or
    interrupted run unless asked to. Writes nothing, so launchers can check before they start processes."""
    if cfg.output_dir is None:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # each process would pick its own time-stamped folder
            raise LlmrlError("with several processes, name the run's folder: pass --output-dir")
        cfg.output_dir = f"runs/{cfg.method}-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    output_dir = Path(cfg.output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise LlmrlError(f"output_dir {output_dir} exists and is not a folder")
    checkpoints = sorted(output_dir.glob("checkpoint-*"))
    if cfg.resume and cfg.overwrite:
        raise LlmrlError("--resume and --overwrite contradict each other: choose one")
    if cfg.resume and not complete_checkpoints(output_dir):
        found = f" ({len(checkpoints)} incomplete)" if checkpoints else ""
        raise LlmrlError(f"--resume: no complete checkpoint-* folder in {output_dir} to resume from{found}")
    if not cfg.resume and not cfg.overwrite:
        if (output_dir / "final").exists():
            raise LlmrlError(
                f"{output_dir} already holds a finished run (final/); pass --overwrite to replace it "
                "or choose another --output-dir"
            )
        if checkpoints:
            raise LlmrlError(
                f"{output_dir} holds checkpoints of an earlier run; pass --resume to continue it "
                "or --overwrite to start over"
            )
    return output_dir


PPO_STATE = "ppo_state.json"  # what PPO's checkpoints hold in place of the Trainer's trainer_state.json
CHECKPOINT_MARKERS = ("trainer_state.json", PPO_STATE)  # written last: a checkpoint without one is partial


def complete_checkpoints(output_dir: Path) -> list[Path]:
    """The run's checkpoint-N folders that were written to the end, oldest first. A process killed while
    saving leaves a folder without its state file; resuming never picks that one."""
    found = [p for p in output_dir.glob("checkpoint-*") if p.name.removeprefix("checkpoint-").isdigit()]
    complete = [p for p in found if any((p / marker).is_file() for marker in CHECKPOINT_MARKERS)]
    return sorted(complete, key=lambda p: int(p.name.removeprefix("checkpoint-")))


def run_files(output_dir: Path) -> list[Path]:
    """The files and folders of a run in output_dir (nothing else there is touched)."""
    return [*output_dir.glob("checkpoint-*"), *(p for name in RUN_FILES if (p := output_dir / name).exists())]


def set_aside_previous_run(output_dir: Path) -> Path | None:
    """--overwrite: move the earlier run's files into a hidden folder, deleted only once this run has trained."""
    previous = run_files(output_dir)
    if not previous:
        return None
    replaced = output_dir / f".replaced-{datetime.datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}"
    replaced.mkdir()
    for path in previous:
        path.rename(replaced / path.name)
    return replaced


def settle_output_dir(output_dir: Path, replaced: Path | None, created: bool) -> None:
    """After a run: once it has trained (a checkpoint or final/ exists), drop the run it replaced; if it failed
    before training, remove what it wrote and put back the run it replaced, so that nothing is half-written."""
    if any(output_dir.glob("checkpoint-*")) or (output_dir / "final").exists():
        if replaced:
            shutil.rmtree(replaced)
        return
    for path in run_files(output_dir):
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    if replaced:
        for path in replaced.iterdir():
            path.rename(output_dir / path.name)
        replaced.rmdir()
    if created:
        shutil.rmtree(output_dir, ignore_errors=True)


def finish_trackers() -> None:
    """Close this run's W&B run, so that its files are complete and the next stage starts a run of its own."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()
        wandb.teardown()  # W&B keeps its first settings (WANDB_DIR) process-wide; the next run reads them anew


def write_run_info(output_dir: Path, info: dict) -> None:
    if _is_main_process():
        write_json(output_dir / "run_info.json", info)


def write_json(path: Path, data: dict) -> None:
    """Write ``data`` as JSON through a temporary file, so that ``path`` is never half-written."""
    staging = path.with_name(f".{path.name}.tmp")
    staging.write_text(json.dumps(data, indent=2, default=str) + "\n")
    staging.replace(path)


def redact(value, key: str = ""):
    """A copy of a config dict with values under secret-looking keys replaced by '***'."""
    if isinstance(value, dict):
        return {k: redact(v, k) for k, v in value.items()}
    if value is not None and any(word in key.lower() for word in SECRET_WORDS):
        return "***"
    return value


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


def hardware_summary() -> dict:
    import torch

    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "cuda_devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
    }


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")
