"""The services of one training run, built once by the runner and shared by both training loops: TRL's
trainers reach them through callbacks (``llmrl/trl_loop.py``), llmrl's PPO calls them directly.

- ``metrics``: ``metrics.jsonl`` (one record per logging step) and a readable line per record in the run log;
- ``stop``: SIGTERM/SIGINT noted, so the loop checkpoints the step it is on and stops;
- ``guard``: NaN/inf gradients stop the run before the update (or skip the batch, ``on_nonfinite=skip``);
- the checkpoint to resume from, the tracker project and run name, and ``ranks.json``.

Light to import: torch and accelerate are imported when they are needed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import platform
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from llmrl.errors import LlmrlError
from llmrl.hardware import detect_hardware
from llmrl.interrupt import StopOnSignal, TrainingInterrupted
from llmrl.outputs import checkpoint_step, complete_checkpoints, write_json
from llmrl.trl_args import tracker_project

if TYPE_CHECKING:
    from llmrl.config import TrainingConfig

logger = logging.getLogger("llmrl")
details = logging.getLogger("llmrl.details")  # the run log only
metrics_logger = logging.getLogger("llmrl.metrics")  # run log only: the console shows its own progress
metrics_logger.propagate = False


class RunContext:
    """What one run's training loop reports to; ``RunContext(cfg)`` once per run (the runner makes it)."""

    def __init__(self, cfg: TrainingConfig):
        self.cfg = cfg
        self.output_dir = Path(cfg.output_dir)
        self.hardware = detect_hardware(cfg)
        self.metrics = MetricsFile(self.output_dir / "metrics.jsonl")
        self.stop = StopOnSignal()
        self.guard = NonFiniteGuard(cfg.on_nonfinite, self.output_dir)
        self.project = tracker_project(cfg)
        self.run_name = cfg.run_name or self.output_dir.name

    def resume_checkpoint(self, is_main: bool) -> Path | None:
        """With ``--resume``, the newest complete checkpoint (the runner refused --resume without one), after
        removing partial ones a killed run left; metrics logged after it are dropped, since the resumed run
        logs them again. Without, the metrics file starts anew."""
        if not self.cfg.resume:
            if is_main:
                self.metrics.restart()
            return None
        complete = complete_checkpoints(self.output_dir)
        checkpoint = complete[-1]
        if is_main:
            for partial in set(self.output_dir.glob("checkpoint-*")) - set(complete):
                logger.warning("removing %s: the process stopped while writing it", partial)
                shutil.rmtree(partial)
            logger.info("resuming from %s", checkpoint)
            self.metrics.keep_up_to(checkpoint_step(checkpoint))
        return checkpoint

    def interrupted(self) -> TrainingInterrupted:
        """The error that ends a run stopped by a signal, naming the checkpoint it saved and how to go on."""
        saved = complete_checkpoints(self.output_dir)
        hint = f"the same command with --resume (output {self.output_dir})"
        return TrainingInterrupted(self.stop.received, str(saved[-1]) if saved else None, hint)


class MetricsFile:
    """``metrics.jsonl``: one JSON record per logging step (with ``step``), and a readable line in the run log."""

    def __init__(self, path: Path):
        self.path = path

    def write(self, record: dict) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        shown = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items() if k != "step"
        )
        metrics_logger.info("step %d: %s", record["step"], shown)

    def restart(self) -> None:
        """A new run: drop what an earlier attempt that saved nothing left."""
        self.path.unlink(missing_ok=True)

    def keep_up_to(self, step: int) -> None:
        """Resuming from checkpoint-``step``: drop the records logged after it, which the resumed run logs again."""
        if self.path.exists():
            lines = self.path.read_text().splitlines(keepends=True)
            self.path.write_text("".join(line for line in lines if json.loads(line)["step"] <= step))


class NonFiniteGuard:
    """Checks the gradients before every optimizer step. NaN or inf anywhere: ``stop`` raises before the update,
    so the last checkpoint stays the last good state; ``skip`` drops the gradients and goes on."""

    def __init__(self, policy: str, output_dir: Path):
        self.policy, self.output_dir = policy, Path(output_dir)
        self.skipped = 0

    def usable(self, parameters, step: int, accelerator=None, unit: str = "batch") -> bool:
        """Whether the gradients may be applied at ``step``; False means skip them (the caller drops them).

        In an fp16 run, inf or NaN gradients are first the loss scaler's business: an overflow is normal at
        the start and after each growth of the scale, and the scaler skips that step and halves its scale.
        Only when the scale has fallen below 1 (16 overflows in a row from its start) are they treated as NaN,
        as DeepSpeed's minimum loss scale does."""
        if gradients_are_finite(parameters, accelerator):
            return True
        scaler = getattr(accelerator, "scaler", None)
        if scaler is not None and scaler.is_enabled() and scaler.get_scale() >= 1.0:
            details.info("step %d: fp16 overflow, the loss scaler skips it (scale %g)", step, scaler.get_scale())
            return True  # the scaler's step skips the update
        if self.policy == "stop":
            raise NonFiniteError(step, self.output_dir)
        self.skipped += 1
        logger.warning("step %d: NaN or inf gradients, %s skipped (%d so far)", step, unit, self.skipped)
        return False

    def check_loss(self, loss, step: int) -> None:
        """A NaN loss whose gradients went unseen (``stop`` only)."""
        if isinstance(loss, float) and not math.isfinite(loss) and self.policy == "stop":
            raise NonFiniteError(step, self.output_dir, what="loss")


class NonFiniteError(LlmrlError):
    def __init__(self, step: int, output_dir: Path, what: str = "gradients"):
        kept = complete_checkpoints(Path(output_dir))
        if kept:
            last = f"the last good checkpoint is {kept[-1]}; lower learning_rate (then --resume)"
        else:  # nothing of this run to resume (an --overwrite run puts the earlier run back)
            last = "no checkpoint was saved before it; lower learning_rate and run the command again"
        super().__init__(
            f"NaN or inf {what} at step {step}: training stopped before the update and {last}, "
            "or set on_nonfinite=skip to skip such batches"
        )


def gradients_are_finite(parameters, accelerator=None) -> bool:
    """Whether every gradient is finite, agreed by all processes (sharded gradients differ between them)."""
    import torch

    grads = [p.grad for p in parameters if p.grad is not None]
    finite = torch.tensor(1.0, device=grads[0].device if grads else "cpu")
    if grads:
        norms = torch._foreach_norm(grads)  # one fused pass; NaN or inf in a tensor makes its norm so
        finite = torch.isfinite(torch.stack(norms)).all().float()
    if accelerator is not None and accelerator.num_processes > 1:
        finite = accelerator.reduce(finite.to(accelerator.device), reduction="sum") / accelerator.num_processes
    return bool(finite.item() == 1.0)


class ShardRecord:
    """Wraps a collate function to note what this process was given: the number of examples it collated
    (training and, when there is one, evaluation data) and a short fingerprint of the first few training
    examples, so that ``ranks.json`` shows each process got its own shard of the data."""

    SHOWN = 8

    def __init__(self, collate):
        self.collate, self.examples, self.first = collate, 0, []

    def __call__(self, examples):
        self.examples += len(examples)
        for example in examples[: self.SHOWN - len(self.first)]:
            text = json.dumps(example, sort_keys=True, default=str).encode()
            self.first.append(hashlib.blake2b(text, digest_size=6).hexdigest())
        return self.collate(examples)


def write_ranks_file(accelerator, shard: ShardRecord, output_dir: Path) -> None:
    """Gather every process's host, device and data shard, and write them to ``ranks.json`` (main process)."""
    from accelerate.utils import gather_object

    mine = {
        "rank": accelerator.process_index,
        "host": platform.node(),
        "device": str(accelerator.device),
        "examples": shard.examples,
        "first_examples": shard.first,
    }
    ranks = gather_object([mine]) if accelerator.num_processes > 1 else [mine]
    if accelerator.is_main_process:
        write_json(output_dir / "ranks.json", {"world_size": accelerator.num_processes, "ranks": ranks})
