"""Start a training run in this process, in several processes through accelerate, or on a Ray cluster.

The method code is the same in every case: accelerate (torchrun underneath) or Ray Train sets up the process
group and the RANK / WORLD_SIZE variables, and each process calls ``run_training``. This module only checks the
run before any process starts, hands the resolved config over, and reports the outcome.
"""

import os
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from llmrl.config import TrainingConfig, from_dict
from llmrl.errors import LlmrlError, first_line
from llmrl.interrupt import EXIT_CODES, TrainingInterrupted, forward_sigterm
from llmrl.runner import check_inputs, complete_checkpoints, locked_output_dir, run_training

LAUNCHERS = ("local", "accelerate", "ray")
# environment variables a Ray worker needs from the driver (a remote node does not inherit them)
FORWARDED_PREFIXES = ("HF_", "LLMRL_", "WANDB_", "TRACKIO_", "NEPTUNE_", "TRANSFORMERS_", "TOKENIZERS_")


@dataclass
class Launch:
    """How to run: ``local`` (this process), ``accelerate`` (``num_processes`` processes, optionally from an
    accelerate config file) or ``ray`` (``num_workers`` Ray Train workers on the cluster at ``ray_address``)."""

    launcher: str = "local"
    num_processes: int | None = None
    accelerate_config: Path | None = None
    num_workers: int = 2
    ray_address: str | None = None
    use_gpu: bool = False

    def __post_init__(self):
        if self.launcher not in LAUNCHERS:
            raise LlmrlError(f"unknown --launcher '{self.launcher}'; launchers: {', '.join(LAUNCHERS)}")
        if self.launcher == "local" and (self.num_processes is not None or self.accelerate_config):
            self.launcher = "accelerate"  # --num-processes N is the shortcut for accelerate launch
        if self.launcher == "accelerate" and self.num_processes is None and not self.accelerate_config:
            raise LlmrlError("--launcher accelerate needs --num-processes N or --accelerate-config FILE")
        if self.launcher != "ray" and (self.ray_address or self.use_gpu):
            raise LlmrlError("--ray-address and --use-gpu go with --launcher ray")
        if self.launcher == "ray" and (self.num_processes is not None or self.accelerate_config):
            raise LlmrlError("--launcher ray takes --num-workers, not --num-processes or --accelerate-config")
        if self.num_processes is not None and self.num_processes < 1:
            raise LlmrlError(f"invalid --num-processes: {self.num_processes} (expected 1 or more)")
        if self.num_workers < 1:
            raise LlmrlError(f"invalid --num-workers: {self.num_workers} (expected 1 or more)")
        if self.accelerate_config and not self.accelerate_config.is_file():
            raise LlmrlError(f"accelerate config not found: {self.accelerate_config} (see configs/accelerate/)")
        if self.launcher != "local" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise LlmrlError(f"already running under a distributed launcher: drop --launcher {self.launcher}")


def launch(cfg: TrainingConfig, how: Launch, debug: bool = False) -> Path:
    """Train ``cfg`` as ``how`` says and return the path of the saved ``final/`` model."""
    if how.launcher == "local" or (how.launcher == "accelerate" and how.num_processes == 1):
        return run_training(cfg)
    check_inputs(cfg)
    with locked_output_dir(cfg) as (output_dir, _, _):  # one lock for all the processes: they inherit it
        cfg.output_dir = str(output_dir.resolve())  # each process would otherwise resolve or time-stamp its own
        if how.launcher == "accelerate":
            run_with_accelerate(cfg, how, debug)
        else:
            run_with_ray(cfg, how)
    final = Path(cfg.output_dir) / "final"
    if not final.is_dir():
        raise LlmrlError(f"the {how.launcher} run ended without writing {final}; see its log above")
    return final


def accelerate_command(config_file: Path, how: Launch, cfg: TrainingConfig, debug: bool) -> list[str]:
    """``accelerate launch ... -m llmrl train --config FILE``: every process reads the resolved config."""
    command = [sys.executable, "-m", "accelerate.commands.launch"]
    if how.accelerate_config:
        command += ["--config_file", str(how.accelerate_config)]
        if how.num_processes is not None:
            command += ["--num_processes", str(how.num_processes)]
    else:  # torchrun underneath; on a machine without CUDA the processes use gloo on the CPU
        command += ["--multi_gpu", "--num_processes", str(how.num_processes), "--num_machines", "1"]
        command += ["--mixed_precision", "no", "--dynamo_backend", "no"]  # the run's own precision applies
    command += ["-m", "llmrl", *(["--debug"] if debug else []), "train", "--config", str(config_file)]
    return command + [f"--{flag}" for flag in ("resume", "overwrite") if getattr(cfg, flag)]


def run_with_accelerate(cfg: TrainingConfig, how: Launch, debug: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="llmrl-launch-") as folder:
        config_file = Path(folder) / "config.yaml"
        config_file.write_text(cfg.to_yaml())
        env = {**os.environ, "LLMRL_LAUNCHED_BY": "accelerate"}  # this process reports the result, not they
        process = subprocess.Popen(accelerate_command(config_file, how, cfg, debug), env=env)
        with forward_sigterm(process):
            returncode = process.wait()
    if returncode in EXIT_CODES.values():  # the processes stopped on a signal, after saving a checkpoint
        name = next(name for name, code in EXIT_CODES.items() if code == returncode)
        saved = complete_checkpoints(Path(cfg.output_dir))
        raise TrainingInterrupted(name, str(saved[-1]) if saved else None, "the same command with --resume")
    if returncode != 0:
        processes = how.num_processes or "the configured"
        raise LlmrlError(f"the run in {processes} processes failed (exit code {returncode}); see above")


def run_with_ray(cfg: TrainingConfig, how: Launch) -> None:
    """Run ``cfg`` on ``how.num_workers`` Ray Train workers; Ray sets up the process group."""
    try:
        import ray
        from ray.train import RunConfig, ScalingConfig
        from ray.train.torch import TorchTrainer
    except ImportError:
        raise LlmrlError("--launcher ray needs Ray Train: pip install 'llmrl[ray]'") from None
    if not ray.is_initialized():
        if how.ray_address:
            check_reachable(how.ray_address)  # ray.init would retry an unreachable address for minutes
        try:
            ray.init(address=how.ray_address, log_to_driver=True)  # no address: start a local cluster
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise LlmrlError(f"could not reach the Ray cluster at {how.ray_address}: {first_line(e)}") from None
    env = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_PREFIXES)}
    env["RAY_TRAIN_ENABLE_PRINT_PATCH"] = "0"  # Ray's print patch would log what libraries capture (dill's dis)
    if cfg.api.key_env and cfg.api.key_env in os.environ:
        env[cfg.api.key_env] = os.environ[cfg.api.key_env]
    trainer = TorchTrainer(
        ray_worker,
        train_loop_config={"config": cfg.to_dict(), "cwd": os.getcwd()},
        scaling_config=ScalingConfig(num_workers=how.num_workers, use_gpu=how.use_gpu),
        run_config=RunConfig(name=f"llmrl-{Path(cfg.output_dir).name}", worker_runtime_env={"env_vars": env}),
    )
    try:
        trainer.fit()
    except Exception as e:  # Ray wraps the worker's exception; its message ends with the worker's error
        raise LlmrlError(f"the Ray run failed: {worker_error(e)}") from e


def check_reachable(address: str, timeout: float = 10.0) -> None:
    """Fail fast when a Ray address (``HOST:PORT`` or ``ray://HOST:PORT``) does not accept connections."""
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise LlmrlError(f"invalid --ray-address '{address}' (expected HOST:PORT, ray://HOST:PORT or auto)")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise LlmrlError(f"could not reach the Ray cluster at {address}: {e.strerror or e}") from None


def ray_worker(loop_config: dict) -> None:
    """One Ray Train worker: RANK, WORLD_SIZE and the process group are set by Ray before this runs."""
    if os.path.isdir(loop_config["cwd"]):  # relative paths in the config mean what they meant to the driver
        os.chdir(loop_config["cwd"])
    run_training(from_dict(TrainingConfig, loop_config["config"]))


def worker_error(error: BaseException) -> str:
    """The line that says what went wrong in a worker, from Ray's wrapped error."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for line in reversed(lines):
        if "Error" in line.split(":")[0]:
            return line
    return lines[-1] if lines else type(error).__name__
