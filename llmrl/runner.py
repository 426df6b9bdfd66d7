"""Run management around every method's trainer: the output folder, ``run_info.json``, the run log, the run's
services (``RunContext``) and memory cleanup, the same for every method."""

import contextlib
import datetime
import json
import logging
import os
import platform
import shutil
import sys
import time
from pathlib import Path

from llmrl.builtin import check_model_kind, check_weights, resolve_model
from llmrl.config import TrainingConfig
from llmrl.console import log_to_file, setup_console_logging
from llmrl.data import local_path
from llmrl.errors import LlmrlError, first_line, redact_secrets
from llmrl.hardware import detect_hardware
from llmrl.interrupt import TrainingInterrupted
from llmrl.memory import free_memory
from llmrl.methods import METHODS
from llmrl.outputs import complete_checkpoints, git_commit, package_versions, write_json
from llmrl.run_context import RunContext
from llmrl.runlock import RunLock
from llmrl.trl_args import check_trl_keys, trl_config_class
from llmrl.trl_loop import train_and_save

SECRET_WORDS = ("key", "token", "secret", "password")
logger = logging.getLogger("llmrl")
details = logging.getLogger("llmrl.details")  # the run log only
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
    check_inputs(cfg)
    setup_console_logging()
    with locked_output_dir(cfg) as (output_dir, created, resumed_changes):
        replaced = set_aside_previous_run(output_dir) if cfg.overwrite and _is_main_process() else None
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(output_dir / "tensorboard")  # read by transformers' callback
        os.environ["WANDB_DIR"] = str(output_dir)  # W&B's files (offline runs too) stay with the run
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
            for change in resumed_changes:
                logger.info("resume: %s (changed since the run was started)", change)
            in_pipeline = "LLMRL_STAGE" in os.environ  # the same for every stage: said once is enough
            (details if in_pipeline else logger).info(detect_hardware(cfg).summary())
            try:
                final = train(cfg, RunContext(cfg))
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


def train(cfg: TrainingConfig, run: RunContext) -> Path:
    """Build the method's trainer and run it: a TRL trainer through ``train_and_save`` (callbacks connect it
    to the run's services), llmrl's own PPO loop by calling them directly."""
    method = cfg.method_spec
    trainer = method.module.build_trainer(cfg)
    return train_and_save(trainer, run) if method.trl_config else trainer.train(run)


@contextlib.contextmanager
def locked_output_dir(cfg: TrainingConfig):
    """Name the run's folder, hold its lock for the run (creating it) and check that this run may write there.
    Yields the folder, whether this run created it, and what a resumed run changed (allowed changes, to log);
    a run refused here leaves nothing behind."""
    output_dir = name_output_dir(cfg)
    created = not output_dir.exists()
    lock = RunLock(output_dir)
    if _is_main_process():  # the other processes of a distributed run write into the folder rank 0 holds
        lock.acquire()
    try:
        resolve_output_dir(cfg)
        changes = resume_changes(cfg, output_dir) if cfg.resume else []
        yield output_dir, created, changes
    finally:
        lock.release(remove_if_created=True)  # the folder goes only if nothing but the lock is there


def check_inputs(cfg: TrainingConfig) -> None:
    """Cheap checks of the model, the dataset and the hardware options, before anything is written."""
    local_path(cfg.dataset)
    detect_hardware(cfg)  # fp16 or QLoRA without CUDA fail here, not after the data is prepared
    check_weights(resolve_model(cfg.model))
    check_model_kind(cfg.model, cfg.method_spec.policy, cfg.trusts_code_of(cfg.model))
    if cfg.trl:
        check_trl_keys(cfg, trl_config_class(cfg))  # fields llmrl sets per method are checked when built


def name_output_dir(cfg: TrainingConfig) -> Path:
    """The run's folder: ``output_dir``, or a time-stamped one under runs/ when it is unset."""
    if cfg.output_dir is None:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # each process would pick its own time-stamped folder
            raise LlmrlError("with several processes, name the run's folder: pass --output-dir")
        cfg.output_dir = f"runs/{cfg.method}-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    return Path(cfg.output_dir)


def resolve_output_dir(cfg: TrainingConfig) -> Path:
    """Name the run's folder and refuse to overwrite a finished or interrupted run unless asked to. Writes
    nothing, so launchers can check before they start processes."""
    output_dir = name_output_dir(cfg)
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


# settings that may differ when a run is resumed: how long it runs, what it logs and saves, and how it computes
RESUMABLE = (
    "output_dir", "resume", "overwrite", "max_steps", "num_train_epochs", "logging_steps", "save_steps",
    "save_total_limit", "eval_steps", "eval_split", "per_device_eval_batch_size", "report_to", "project",
    "run_name", "on_nonfinite", "attn_implementation", "gradient_checkpointing", "use_liger_kernel",
    "trust_remote_code", "api", "reward_fns.batch_size",
)  # fmt: skip
METHOD_SECTIONS = {section for method in METHODS.values() for section in method.sections}


def resume_changes(cfg: TrainingConfig, output_dir: Path) -> list[str]:
    """Compare a resumed run's config with the one its folder recorded: refuse, naming each difference, when
    the method, model, data or training settings differ; return the changes that are allowed, to log them."""
    try:
        recorded = json.loads((output_dir / "run_info.json").read_text())["config"]
    except (OSError, ValueError, KeyError, TypeError):
        logger.warning("--resume: %s has no readable run_info.json; cannot check that the config matches", output_dir)
        return []
    allowed, refused = [], []
    for key, old, new in config_differences(flatten(recorded), flatten(cfg.to_dict())):
        if not applies_to(key, cfg.method):
            continue
        change = f"{key} {shown_value(old)} -> {shown_value(new)}"
        (allowed if key in RESUMABLE or key.split(".")[0] in RESUMABLE else refused).append(change)
    if refused:
        raise LlmrlError(
            f"--resume {output_dir}: the config differs from the run's ({'; '.join(refused)}); resume with the "
            "run's settings, or start a new run (another --output-dir, or --overwrite)"
        )
    return allowed


def shown_value(value) -> str:
    """A config value in a message: None is the key left unset (the method's default), not the word None."""
    return "unset (the default)" if value is None else repr(value)


def applies_to(key: str, method: str) -> bool:
    """Whether a config key matters to ``method`` (the options of other methods do not)."""
    section = key.split(".")[0]
    return section not in METHOD_SECTIONS or section in METHODS[method].sections


def config_differences(old: dict, new: dict):
    """(key, old, new) for each key whose value differs; keys missing from the record or redacted are skipped."""
    for key, value in new.items():
        if key not in old or old[key] == "***":
            continue
        if same_value(old[key]) != same_value(value):
            yield key, old[key], value


def same_value(value):
    """A value in a comparable form: paths that exist as absolute paths (a relative run folder is the same run)."""
    if isinstance(value, list):
        return [same_value(v) for v in value]
    if isinstance(value, str):
        value = redact_secrets(value)  # as run_info.json recorded it
        prefix = "reward_model:" if value.startswith("reward_model:") else ""
        path = value.removeprefix(prefix)
        if path and os.path.exists(path):
            return prefix + os.path.realpath(path)
    return value


def flatten(values: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict) and key != "columns":
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


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
    if wandb is not None:
        if getattr(wandb, "run", None) is not None:
            wandb.finish()
        wandb.teardown()  # W&B keeps its first settings (WANDB_DIR) process-wide; the next run reads them anew


def write_run_info(output_dir: Path, info: dict) -> None:
    if _is_main_process():
        write_json(output_dir / "run_info.json", info)


def redact(value, key: str = ""):
    """A copy of a config dict with values under secret-looking keys replaced by '***'."""
    if isinstance(value, dict):
        return {k: redact(v, k) for k, v in value.items()}
    if value is not None and any(word in key.lower() for word in SECRET_WORDS):
        return "***"
    return value


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
