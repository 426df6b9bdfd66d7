"""Training with a TRL trainer: ``train_and_save(trainer, run)`` runs ``trainer.train()`` (resuming if asked)
with callbacks that connect it to the run's services (``RunContext``), then writes ``final/`` atomically.

Interruption and failure keep what was learned: SIGTERM/SIGINT save a checkpoint and stop with a hint to
``--resume``; NaN/inf gradients stop before the bad update (or skip the batch, ``on_nonfinite=skip``).
"""

import logging
from pathlib import Path

import torch
from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback
from transformers.trainer_callback import ProgressCallback as TqdmProgress

from llmrl.console import Progress
from llmrl.held_out import HeldOutWatch
from llmrl.loading import fp32_trainable_weights
from llmrl.outputs import checkpoint_step, save_whole
from llmrl.run_context import RunContext, ShardRecord, write_ranks_file

logger = logging.getLogger("llmrl")
details = logging.getLogger("llmrl.details")  # the run log only


def train_and_save(trainer, run: RunContext) -> Path:
    """Train, run the final evaluation when there is an eval split, and save ``final/``; return its path."""
    checkpoint = run.resume_checkpoint(trainer.is_world_process_zero())
    fp32_trainable_weights(trainer.model)  # master weights: peft's trainable copies keep the base's bf16
    trainer.callback_handler.callbacks.insert(0, MetricsCallback(run))  # first: it adds gpu_memory_gb
    trainer.add_callback(NonFiniteCallback(run, trainer.accelerator))
    trainer.add_callback(SignalCallback(run, trainer.accelerator))
    for bar in (TqdmProgress, PrinterCallback):  # transformers' bar and its printed dict of every log
        trainer.remove_callback(bar)
    trainer.add_callback(progress := ProgressCallback(run))
    watch = None
    if run.cfg.method_spec.online:  # first of all: the flags it adds reach metrics.jsonl and the trackers
        watch = HeldOutWatch(run.cfg, getattr(trainer, "task_eval", None), trainer.is_world_process_zero())
        trainer.callback_handler.callbacks.insert(0, HeldOutCallback(watch, trainer))
    trainer.data_collator = shard = ShardRecord(trainer.data_collator)
    if checkpoint and 0 < trainer.args.max_steps <= checkpoint_step(checkpoint):
        logger.info(  # transformers' loop would take one step more, and write one more checkpoint
            "%s is at max_steps %d already: nothing to train (a larger --max-steps trains further)",
            checkpoint,
            trainer.args.max_steps,
        )
        trainer._load_from_checkpoint(str(checkpoint))
        return save_final(trainer, run.output_dir)  # (final/ may be missing: the run was killed writing it)
    try:
        with run.stop:
            trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    finally:
        progress.close()  # also when training fails: the terminal gets its cursor back
    if run.stop.received:
        raise run.interrupted()
    write_ranks_file(trainer.accelerator, shard, run.output_dir)
    if trainer.eval_dataset is not None:
        results = trainer.evaluate()  # logged to metrics.jsonl like every other record
        shown = ", ".join(f"{k.removeprefix('eval_')} {v:.4g}" for k, v in results.items() if isinstance(v, float))
        logger.info("final evaluation: %s", shown)
    final = save_final(trainer, run.output_dir)
    if watch and watch.stop_reason:
        raise watch.stopped()
    return final


class MetricsCallback(TrainerCallback):
    """Every logged dict to ``metrics.jsonl`` (with ``step``), with the peak GPU memory on CUDA."""

    def __init__(self, run: RunContext):
        self.run = run

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        if torch.cuda.is_available():  # in place: the progress display and the trackers show it too
            logs["gpu_memory_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        self.run.metrics.write({"step": state.global_step, "epoch": state.epoch, **logs})

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            details.info("checkpoint saved: %s/checkpoint-%d", args.output_dir, state.global_step)


class HeldOutCallback(TrainerCallback):
    """Online RL: every logged record to the run's ``HeldOutWatch``; the best held-out policy saved as
    ``best/``; training stopped when ``rl.stop_on_divergence`` says so."""

    def __init__(self, watch: HeldOutWatch, trainer):
        self.watch, self.trainer = watch, trainer

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and self.watch.observe(state.global_step, logs):
            save = lambda folder: self.trainer.save_model(str(folder))  # noqa: E731
            self.watch.save_best(state.global_step, save, self.trainer.accelerator)
        if self.watch.stop_reason:
            control.should_training_stop = True


class ProgressCallback(TrainerCallback):
    """The stage's progress display (``llmrl.console.Progress``) on the main process."""

    def __init__(self, run: RunContext):
        self.run, self.progress = run, None

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            spec = self.run.cfg.method_spec
            self.progress = Progress(self.run.cfg.method, state.max_steps, spec.shown, initial=state.global_step)

    def on_step_end(self, args, state, control, **kwargs):
        if self.progress:
            self.progress.advance(state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.progress and logs:
            self.progress.log(state.global_step, logs)

    def on_train_end(self, args, state, control, **kwargs):
        self.close()

    def close(self) -> None:
        if self.progress:
            self.progress.close()


class NonFiniteCallback(TrainerCallback):
    """The run's NaN guard before every optimizer step, and on every logged loss."""

    def __init__(self, run: RunContext, accelerator):
        self.guard, self.accelerator = run.guard, accelerator

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        if not self.guard.usable(model.parameters(), state.global_step + 1, self.accelerator):
            model.zero_grad(set_to_none=True)  # the optimizer leaves parameters without gradients alone

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.guard.check_loss((logs or {}).get("loss"), state.global_step)


class SignalCallback(TrainerCallback):
    """On SIGTERM/SIGINT (noted by the run's ``stop``): save a checkpoint at the end of this step, then stop."""

    def __init__(self, run: RunContext, accelerator):
        self.stop, self.accelerator = run.stop, accelerator

    def on_step_end(self, args, state, control, **kwargs):
        if self.stop.requested(self.accelerator):
            control.should_save = control.should_training_stop = True


def save_final(trainer, output_dir: Path) -> Path:
    """Save model and tokenizer to ``final/``, written whole (``save_whole``)."""
    final = save_whole(output_dir / "final", lambda folder: trainer.save_model(str(folder)), trainer.accelerator)
    if trainer.is_world_process_zero():
        logger.info("saved the final model to %s", final)
    return final
