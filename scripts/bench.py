"""Benchmark llmrl against plain TRL on the same work, and write the figures to docs/benchmarks.md.

Every training benchmark runs twice per repeat in this one process, on the same machine: once through llmrl's
own code path (``llmrl.runner.run_training`` with a ``TrainingConfig`` from ``llmrl.config.load_config`` and
llmrl's defaults) and once through TRL directly (``SFTTrainer`` and friends built with their config classes'
defaults, except what must match: model, tokenizer, rows, batch size, max_length, one epoch, CPU flags,
``report_to=none``, ``save_strategy=no``). The two sides alternate which goes first from repeat to repeat, and
every ratio is taken within one repeat, then the median over repeats is reported.

- SFT, reward, DPO: one epoch over the same variable-length data. Real tokens are counted from the attention
  masks of the batches the trainer actually drew (from the examples' lengths for padding-free batches), never
  from padded shapes. Only ``trainer.train()`` is timed; loading the model and tokenizing the data are reported
  apart as setup, and llmrl's saving of ``final/`` is in neither.
- GRPO, RLOO, PPO: completions per second and seconds per step at equal batch, k and completion length, with
  the same ``accuracy`` reward. Completions and their tokens are counted where the reward sees them.
- CLI start: ``llmrl --help`` and ``llmrl train --help`` in fresh processes (``scripts/bench_cli.py``).
- ``--pipeline``: the wall time of one ``./run_all.sh --test`` (minutes; off by default).

    .venv/bin/python scripts/bench.py [--repeats 3] [--only sft,dpo] [--pipeline] [--no-write]
"""

import argparse
import contextlib
import ctypes
import gc
import importlib
import importlib.metadata
import json
import math
import os
import platform
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bench_cli import COMMANDS, TARGET_SECONDS, llmrl_executable, time_command
from benchmarks_doc import write_section

from llmrl.padding_free import is_padding_free, pack

ROOT = Path(__file__).resolve().parent.parent
EPOCH_METHODS = ("sft", "reward", "dpo")
RL_METHODS = ("grpo", "rloo", "ppo")
BENCHMARKS = (*EPOCH_METHODS, *RL_METHODS, "ppo_trl", "cli")
SIDES = ("plain TRL", "llmrl")
EPOCH_TARGETS = {"sft": 2.0, "reward": 2.0, "dpo": 2.0}  # issues 11, 20: an epoch at least 2x plain TRL's
PPO_TARGET = 1.6  # issue 11: PPO seconds per step at most 1.6x RLOO's
TRL_PPO_DIR = ROOT / "scripts" / "trl_ppo"  # the other side of the PPO comparison, and its pinned packages
TRL_PPO_VENV = ROOT / ".bench" / "trl-ppo-venv"
# the settings both PPO implementations run with (llmrl key -> TRL 1.12 PPOConfig flag of bench_trl_ppo.py)
PPO_MATCHED = {
    "per_device_train_batch_size": ("--batch-size", 16),  # prompts per rollout, one completion each
    "ppo.num_mini_batches": ("--num-mini-batches", 1),
    "ppo.ppo_epochs": ("--ppo-epochs", 4),
    "rl.max_completion_length": ("--response-length", 32),
    "ppo.kl_coef": ("--kl-coef", 0.05),  # k1 estimator, per token, in the reward (both)
    "ppo.gamma": ("--gamma", 1.0),
    "ppo.lam": ("--lam", 0.95),
    "rl.epsilon": ("--cliprange", 0.2),
    "ppo.cliprange_value": ("--cliprange-value", 0.2),
    "ppo.vf_coef": ("--vf-coef", 0.1),
    "learning_rate": ("--learning-rate", 5e-5),  # policy and value model alike (TRL has one rate)
    "lr_scheduler_type": ("--lr-scheduler-type", "constant"),
    "rl.temperature": ("--temperature", 0.7),
    "seed": ("--seed", 42),
}
PPO_STEPS = 20
PIPELINE_TARGET = 180.0  # issue 11: ./run_all.sh --test under 3 minutes
NOISY_CPU = 0.2  # cores used by other processes during a timed run above which its figures are flagged
CLI_RUNS = 10  # fresh processes per CLI command and repeat
IGNORED_ARGS = {"output_dir", "logging_dir", "run_name", "project"}  # per-run names, not behaviour


# ---------------------------------------------------------------------------------------------------------
# What one run measured


@dataclass
class Measure:
    """The figures of one training run; the counters are filled only while training runs."""

    setup_s: float = 0.0  # from the start of the run until the trainer is built (model load, data, tokenization)
    train_s: float = 0.0  # trainer.train() only
    optimizer_steps: int = 0
    examples: int = 0  # training examples drawn (packed rows count every example they hold)
    real_tokens: int = 0  # non-padding tokens in the batches
    padded_tokens: int = 0  # positions the model computed on (batch shape), padding included
    rollouts: int = 0  # online RL: generation batches (one reward call each)
    completions: int = 0
    completion_tokens: int = 0
    checkpoint_s: float = 0.0  # of train_s: writing checkpoints
    other_cpu: float = 0.0  # cores that other processes kept busy while this one trained (noise if > 0)
    peak_mb: float = 0.0
    scores: list[float] = field(default_factory=list)  # PPO: the mean reward of each rollout step
    versions: str = ""  # the other side's packages, when they are not llmrl's
    held_out: dict = field(default_factory=dict)  # PPO: the trained policy's held-out figures (llmrl.api.evaluate)
    final_dir: str = ""  # PPO: where the trained policy was kept for them
    start_mb: float = 0.0
    args: dict = field(default_factory=dict)  # the TRL config the trainer ran with
    active: bool = False
    started: float = 0.0
    cpu_at_start: tuple[float, float] = (0.0, 0.0)

    def start(self) -> None:
        reset_peak_memory()
        self.start_mb = current_memory_mb()
        self.cpu_at_start = cpu_seconds()
        self.active, self.started = True, time.perf_counter()

    def stop(self) -> None:
        self.train_s = time.perf_counter() - self.started
        self.active = False
        self.peak_mb = peak_memory_mb()
        (machine_start, own_start), (machine_end, own_end) = self.cpu_at_start, cpu_seconds()
        self.other_cpu = max(0.0, (machine_end - machine_start) - (own_end - own_start)) / self.train_s

    def count_batch(self, examples: list[dict], batch: dict, packed: bool) -> None:
        """``packed``: the model runs padded batches packed (llmrl.padding_free), so it computes on the packed
        rows' positions, not the batch's."""
        if not self.active or not isinstance(batch, Mapping) or "input_ids" not in batch:
            return  # an evaluation after training, or online RL's rows of prompts
        self.examples += sum(len(e["seq_lengths"]) if "seq_lengths" in e else 1 for e in examples)
        packing = pack(batch["attention_mask"]) if packed else None
        self.padded_tokens += math.prod(packing.packed_shape) if packing else batch["input_ids"].numel()
        if "attention_mask" in batch:
            self.real_tokens += int(batch["attention_mask"].sum())
        elif all("input_ids" in e for e in examples):  # padding-free: the examples are laid end to end
            self.real_tokens += sum(len(e["input_ids"]) for e in examples)
        else:
            raise RuntimeError(f"cannot count the real tokens of a batch with keys {sorted(batch)}")

    def count_completions(self, completion_ids) -> None:
        if self.active:
            self.rollouts += 1
            self.completions += len(completion_ids)
            self.completion_tokens += sum(len(ids) for ids in completion_ids)

    @property
    def tokens_per_s(self) -> float:
        return self.real_tokens / self.train_s

    @property
    def s_per_step(self) -> float:
        return self.train_s / max(self.rollouts, 1)

    @property
    def completions_per_s(self) -> float:
        return self.completions / self.train_s


def cpu_seconds() -> tuple[float, float]:
    """(CPU seconds the whole machine has spent busy, CPU seconds this process has used); the first is 0
    where /proc/stat is missing."""
    own = os.times()
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return 0.0, own.user + own.system
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK"), own.user + own.system


def reset_peak_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    with contextlib.suppress(OSError):  # Linux: 5 resets the peak resident set size (VmHWM) to the current one
        Path("/proc/self/clear_refs").write_text("5")


def current_memory_mb() -> float:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.memory_allocated() / 2**20
    return _proc_status_kb("VmRSS") / 1024


def peak_memory_mb() -> float:
    """Peak GPU memory allocated, or peak RSS, since the last ``reset_peak_memory``."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    peak_kb = _proc_status_kb("VmHWM")
    if not peak_kb:  # no /proc (not Linux): the process-wide peak, which cannot be reset
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 if sys.platform == "darwin" else 1)
    return peak_kb / 1024


def _proc_status_kb(name: str) -> int:
    try:
        found = re.search(rf"^{name}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    except OSError:
        return 0
    return int(found.group(1)) if found else 0


def release_memory() -> None:
    """Between runs: collect garbage and hand freed heap back to the OS, so the next run's RSS starts low."""
    from llmrl.memory import free_memory

    gc.collect()
    free_memory()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


# ---------------------------------------------------------------------------------------------------------
# Instrumenting a trainer (either side, after it is built and before it trains)


class CountingCollator:
    def __init__(self, collate, measure: Measure, packed: bool):
        self.collate, self.measure, self.packed = collate, measure, packed

    def __call__(self, examples):
        batch = self.collate(examples)
        self.measure.count_batch(examples, batch, self.packed)
        return batch


class CountingReward:
    """Wraps the first reward function: every completion of a rollout passes through it once."""

    def __init__(self, function, measure: Measure):
        self.function, self.measure = function, measure
        self.__name__ = getattr(function, "__name__", type(function).__name__)

    def __call__(self, prompts, completions, completion_ids=None, **columns):
        self.measure.count_completions(completion_ids)
        return self.function(prompts=prompts, completions=completions, completion_ids=completion_ids, **columns)


def instrument(trainer, measure: Measure) -> None:
    if getattr(trainer, "reward_funcs", None):
        trainer.reward_funcs[0] = CountingReward(trainer.reward_funcs[0], measure)
    if hasattr(trainer, "add_callback"):  # a transformers Trainer: time train() from its own callbacks
        from transformers import TrainerCallback

        class Timer(TrainerCallback):
            def on_train_begin(self, args, state, control, **kwargs):
                measure.start()

            def on_step_end(self, args, state, control, **kwargs):
                self.step_ended = time.perf_counter()

            def on_save(self, args, state, control, **kwargs):  # called once a checkpoint is written
                if measure.active:
                    measure.checkpoint_s += time.perf_counter() - self.step_ended

            def on_train_end(self, args, state, control, **kwargs):
                measure.stop()
                measure.optimizer_steps = state.global_step

        trainer.add_callback(Timer())
        trainer.data_collator = CountingCollator(trainer.data_collator, measure, is_padding_free(trainer.model))
        measure.args = trainer.args.to_dict()
        return
    # llmrl's PPOTrainer: no callbacks, so time its train() and count the optimizer steps that update weights
    train, step = trainer.train, trainer.optimizer.step

    def timed_train(*args, **kwargs):
        measure.start()
        try:
            return train(*args, **kwargs)
        finally:
            measure.stop()

    def counted_step(*args, **kwargs):
        if measure.active and trainer.accelerator.sync_gradients:
            measure.optimizer_steps += 1
        return step(*args, **kwargs)

    trainer.train, trainer.optimizer.step = timed_train, counted_step


# ---------------------------------------------------------------------------------------------------------
# The two sides


@dataclass
class Work:
    """What both sides train on."""

    model: str  # as llmrl names it (builtin:small, a hub name or a folder)
    model_path: str  # what from_pretrained reads
    batch_size: int
    max_length: int
    data: dict  # method -> (llmrl dataset name, jsonl file, llmrl data.max_samples or None)
    rl_batch: int
    num_generations: int
    completion_length: int
    rl_steps: int
    work_dir: Path
    llmrl_sets: list[str] = field(default_factory=list)  # --set KEY=VALUE for llmrl's side (default: none)


def run_llmrl(method: str, work: Work, sets: tuple[str, ...] = (), keep: Path | None = None) -> Measure:
    """One run through llmrl.runner.run_training, with llmrl's defaults for everything not set here (or in
    ``sets``, which win); ``keep``: a folder to move the trained model to."""
    from llmrl.config import load_config
    from llmrl.methods import METHODS
    from llmrl.runner import run_training

    output_dir = Path(tempfile.mkdtemp(prefix=f"llmrl-{method}-", dir=work.work_dir))
    flags = {"method": method, "model": work.model, "output_dir": str(output_dir)}
    if method in EPOCH_METHODS:
        dataset, _, max_samples = work.data[method]
        flags.update(
            dataset=dataset,
            per_device_train_batch_size=work.batch_size,
            max_length=work.max_length,
            num_train_epochs=1,
        )
        if max_samples:
            flags["data.max_samples"] = max_samples
    else:
        flags.update(
            dataset="builtin:prompts",
            per_device_train_batch_size=work.rl_batch,
            max_steps=work.rl_steps,
            rewards=["accuracy"],
        )
        flags["rl.max_completion_length"] = work.completion_length
        if method != "ppo":
            flags["rl.num_generations"] = work.num_generations
    cfg = load_config(flags=flags, sets=[*work.llmrl_sets, *sets])

    measure = Measure()
    module = METHODS[method].module
    build_trainer = module.build_trainer

    def build_and_instrument(cfg):
        trainer = build_trainer(cfg)
        measure.setup_s = time.perf_counter() - started
        instrument(trainer, measure)
        return trainer

    module.build_trainer = build_and_instrument  # the runner looks it up here when run_training calls it
    started = time.perf_counter()
    try:
        run_training(cfg)
        records = [json.loads(line) for line in (output_dir / "metrics.jsonl").read_text().splitlines()]
        measure.scores = [r["score"] for r in records if "score" in r]
        if keep:
            shutil.move(output_dir / "final", keep)
            measure.final_dir = str(keep)
    finally:
        module.build_trainer = build_trainer
        shutil.rmtree(output_dir, ignore_errors=True)
    return measure


def run_trl(method: str, work: Work) -> Measure:
    """One run through TRL's trainer built directly, with its config class's defaults."""
    import torch
    import trl
    from datasets import load_dataset
    from transformers import AutoTokenizer

    output_dir = Path(tempfile.mkdtemp(prefix=f"trl-{method}-", dir=work.work_dir))
    on_cpu = not torch.cuda.is_available()
    common = dict(output_dir=str(output_dir), report_to="none", save_strategy="no")
    if on_cpu:
        common.update(use_cpu=True, bf16=False)  # TRL's bf16 default fails or crawls on a CPU
    measure = Measure()
    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(work.model_path)
    if method in EPOCH_METHODS:
        _, path, max_samples = work.data[method]
        dataset = load_dataset("json", data_files=str(path), split="train")
        if max_samples:
            dataset = dataset.select(range(min(max_samples, len(dataset))))
        if method == "reward":  # llmrl holds out this share for its final evaluation: train on the same rows
            from llmrl.methods.reward import DEFAULT_EVAL_FRACTION

            dataset = dataset.train_test_split(test_size=DEFAULT_EVAL_FRACTION, seed=42)["train"]
        config_cls, trainer_cls = {
            "sft": (trl.SFTConfig, trl.SFTTrainer),
            "reward": (trl.RewardConfig, trl.RewardTrainer),
            "dpo": (trl.DPOConfig, trl.DPOTrainer),
        }[method]
        args = config_cls(
            **common, per_device_train_batch_size=work.batch_size, max_length=work.max_length, num_train_epochs=1
        )
        trainer = trainer_cls(model=work.model_path, args=args, train_dataset=dataset, processing_class=tokenizer)
    else:
        from llmrl.data.sources import SAMPLES_DIR
        from llmrl.rewards import AccuracyReward

        dataset = load_dataset("json", data_files=str(SAMPLES_DIR / "prompts" / "train.jsonl"), split="train")
        config_cls, trainer_cls = {
            "grpo": (trl.GRPOConfig, trl.GRPOTrainer),
            "rloo": (trl.RLOOConfig, trl.RLOOTrainer),
        }[method]
        args = config_cls(
            **common,
            per_device_train_batch_size=work.rl_batch,
            num_generations=work.num_generations,
            max_completion_length=work.completion_length,
            max_steps=work.rl_steps,
        )
        trainer = trainer_cls(
            model=work.model_path,
            reward_funcs=[AccuracyReward()],
            args=args,
            train_dataset=dataset,
            processing_class=tokenizer,
        )
    measure.setup_s = time.perf_counter() - started
    instrument(trainer, measure)
    try:
        trainer.train()
    finally:
        del trainer
        shutil.rmtree(output_dir, ignore_errors=True)
    return measure


def run_side(side: str, method: str, work: Work) -> Measure:
    print(f"\n=== {method}: {side} ===", flush=True)
    release_memory()
    measure = run_llmrl(method, work) if side == "llmrl" else run_trl(method, work)
    release_memory()
    print(
        f"=== {method}: {side}: {describe(method, measure)}; other processes: {measure.other_cpu:.2f} cores", flush=True
    )
    return measure


def describe(method: str, m: Measure) -> str:
    if method in EPOCH_METHODS:
        return (
            f"{m.train_s:.1f} s, {m.optimizer_steps} steps, {m.examples} examples, {m.real_tokens} real tokens "
            f"({m.tokens_per_s:.0f}/s), setup {m.setup_s:.1f} s, peak {m.peak_mb:.0f} MiB"
        )
    return (
        f"{m.train_s:.1f} s, {m.rollouts} steps of {m.completions // max(m.rollouts, 1)} completions, "
        f"{m.s_per_step:.2f} s/step, {m.completions_per_s:.1f} completions/s, peak {m.peak_mb:.0f} MiB"
    )


# ---------------------------------------------------------------------------------------------------------
# PPO against TRL's last PPOTrainer (TRL 1.12, in a virtualenv of its own)


def setup_trl_ppo(venv: Path) -> str | None:
    """Make ``venv`` with TRL 1.12 and the packages of its day (scripts/trl_ppo/requirements.txt), reusing
    llmrl's torch through a .pth line that comes after the venv's own packages (which so win over llmrl's
    transformers and TRL). None when it is ready, else why it could not be made."""
    python = venv / "bin" / "python"
    if not (venv / "complete").exists():
        print(f"\n=== making {venv} (TRL 1.12 for the PPO comparison; once) ===", flush=True)
        shutil.rmtree(venv, ignore_errors=True)
        purelib = sysconfig.get_paths()["purelib"]  # llmrl's site-packages, holding torch
        steps = [
            [sys._base_executable, "-m", "venv", str(venv)],
            [
                str(python),
                "-c",
                f"import sysconfig, pathlib; pathlib.Path(sysconfig.get_paths()['purelib'], "
                f"'zz_llmrl_torch.pth').write_text({purelib!r})",
            ],
            [str(python), "-m", "pip", "uninstall", "-y", "-q", "setuptools"],  # venv's own is older than torch wants
            [
                str(python),
                "-m",
                "pip",
                "install",
                "-q",
                "--no-deps",
                "--ignore-installed",
                "-r",
                str(TRL_PPO_DIR / "requirements.txt"),
            ],
        ]
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True)
            if done.returncode:
                lines = (done.stderr or done.stdout).strip().splitlines() or ["no output"]
                return f"`{' '.join(step[:4])} ...` failed: {lines[-1]}"
        (venv / "complete").write_text("")
    check = "import trl, transformers; from trl.experimental.ppo import PPOTrainer; print(trl.__version__)"
    done = subprocess.run([str(python), "-c", check], capture_output=True, text=True)
    if done.returncode:
        return f"TRL 1.12's PPOTrainer does not import: {(done.stderr.strip().splitlines() or ['?'])[-1]}"
    return None


def train_ppo_reward_model(work: Work) -> str:
    """A reward model both PPO sides score with: llmrl's reward stage on builtin:preference from the same
    base model (60 steps; its final/ loads with AutoModelForSequenceClassification, tokenizer included)."""
    from llmrl.config import load_config
    from llmrl.runner import run_training

    output_dir = work.work_dir / "ppo-reward-model"
    flags = {"method": "reward", "model": work.model, "dataset": "builtin:preference", "output_dir": str(output_dir)}
    print("\n=== a reward model for the PPO comparison ===", flush=True)
    return str(run_training(load_config(flags=flags, sets=["max_steps=60", "report_to=[none]"])))


def run_trl_ppo(work: Work, venv: Path, reward_model: str, keep: Path) -> Measure:
    """TRL 1.12's PPOTrainer on the matched settings, in a fresh process of the TRL virtualenv; the trained
    policy is saved to ``keep``."""
    from llmrl.data.sources import SAMPLES_DIR

    out = work.work_dir / "trl-ppo.json"
    command = [
        *(str(venv / "bin" / "python"), str(TRL_PPO_DIR / "bench_trl_ppo.py"), "--save", str(keep)),
        *("--policy", work.model_path, "--reward-model", reward_model, "--steps", str(PPO_STEPS)),
        *("--prompts", str(SAMPLES_DIR / "prompts" / "train.jsonl"), "--out", str(out)),
        *(str(arg) for flag, value in PPO_MATCHED.values() for arg in (flag, value)),
    ]
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONNOUSERSITE": "1"}
    (machine_start, _), child_start, started = cpu_seconds(), child_cpu_seconds(), time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=environment)
    wall = time.perf_counter() - started
    if done.returncode:
        raise RuntimeError(f"TRL's PPO failed:\n{done.stderr[-3000:]}")
    (machine_end, _), child_end = cpu_seconds(), child_cpu_seconds()
    result = json.loads(out.read_text())
    return Measure(
        setup_s=result["script_s"] - result["train_s"],
        train_s=result["train_s"],
        rollouts=result["steps_run"],
        optimizer_steps=result["optimizer_steps"],
        completions=result["steps_run"] * PPO_MATCHED["per_device_train_batch_size"][1],
        other_cpu=max(0.0, (machine_end - machine_start) - (child_end - child_start)) / wall,
        peak_mb=result["peak_rss_mib"]["peak_in_training"],
        start_mb=result["peak_rss_mib"]["before_train"],
        scores=result["scores"],
        versions=f"trl {result['trl_version']}, transformers {result['transformers_version']}",
        final_dir=str(keep),
    )


def child_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bench_ppo_trl(work: Work, repeats: int) -> dict:
    """llmrl's PPO and TRL 1.12's PPOTrainer on the same model, prompts, reward model and settings, alternating
    which goes first; or the reason TRL's side cannot run here."""
    reason = setup_trl_ppo(TRL_PPO_VENV)
    if reason:
        return {"reason": reason}
    reward_model = train_ppo_reward_model(work)
    sets = [f"rewards=[reward_model:{reward_model}]", f"max_steps={PPO_STEPS}", "logging_steps=1", "max_grad_norm=0"]
    sets += [f"{key}={value}" for key, (_, value) in PPO_MATCHED.items()]
    runs: dict[str, list[Measure]] = {"TRL 1.12 PPOTrainer": [], "llmrl": []}
    for repeat in range(repeats):
        for side in runs if repeat % 2 == 0 else list(runs)[::-1]:
            print(f"\n=== ppo (matched): {side} ===", flush=True)
            release_memory()
            keep = work.work_dir / f"ppo-{'llmrl' if side == 'llmrl' else 'trl'}-{repeat}"
            if side == "llmrl":
                measure = run_llmrl("ppo", work, tuple(sets), keep=keep)
            else:
                measure = run_trl_ppo(work, TRL_PPO_VENV, reward_model, keep)
            measure.held_out = held_out(measure.final_dir, work, reward_model)
            print(f"=== ppo (matched): {side}: {describe('ppo', measure)}; held out {measure.held_out}", flush=True)
            runs[side].append(measure)
    return {"runs": runs}


def held_out(model: str, work: Work, reward_model: str) -> dict:
    """A trained policy's greedy answers to 200 held-out builtin:prompts, scored by the reward model both PPO
    sides trained with and by accuracy (llmrl.api.evaluate, against the base model): the same measure for
    both sides, whatever score each logged while training. {judge: {"model": mean, "base": mean}}."""
    from llmrl.api import evaluate

    figures = {}
    for judge in (f"reward_model:{reward_model}", "accuracy"):
        results = evaluate(
            model,
            judge,
            reference=work.model,
            dataset="builtin:prompts",
            split="test",
            output_dir=Path(tempfile.mkdtemp(dir=work.work_dir)),
            num_prompts=200,
            max_new_tokens=PPO_MATCHED["rl.max_completion_length"][1],
            batch_size=100,
        )
        figures[judge.split(":")[0]] = {
            "model": results["model_reward"]["mean"],
            "base": results["reference_reward"]["mean"],
        }
    return figures


# ---------------------------------------------------------------------------------------------------------
# Data


def chat_data(rows: int, max_turns: int, seed: int) -> tuple[list[dict], list[dict]]:
    """(SFT conversations, preference pairs) of widely varying length, built from the bundled arithmetic samples.

    Each SFT row strings together 1 to ``max_turns`` user/assistant exchanges (log-uniform, so short rows are
    common and long ones rare, as in real chat data); each preference row puts 0 to ``max_turns - 1`` such
    exchanges before a builtin:preference question and its chosen and rejected answers.
    """
    from llmrl.data.sources import SAMPLES_DIR

    def read(name):
        return [json.loads(line) for line in (SAMPLES_DIR / name / "train.jsonl").read_text().splitlines() if line]

    exchanges = [[m for m in row["messages"] if m["role"] != "system"] for row in read("sft")]
    pairs = read("preference")
    rng = random.Random(seed)

    def turns() -> int:
        return round(math.exp(rng.uniform(0, math.log(max_turns))))

    sft = [{"messages": [m for _ in range(turns()) for m in rng.choice(exchanges)]} for _ in range(rows)]
    preference = []
    for _ in range(rows):
        pair = rng.choice(pairs)
        history = [m for _ in range(turns() - 1) for m in rng.choice(exchanges)]
        preference.append({"prompt": history + pair["prompt"], "chosen": pair["chosen"], "rejected": pair["rejected"]})
    return sft, preference


def token_lengths(rows: list[dict], tokenizer) -> dict[str, int]:
    lengths = sorted(
        len(tokenizer.apply_chat_template(r["messages"] if "messages" in r else r["prompt"] + r["chosen"])["input_ids"])
        for r in rows
    )
    return {"min": lengths[0], "p50": lengths[len(lengths) // 2], "max": lengths[-1]}


def prepare_data(args, work_dir: Path, model_path: str) -> tuple[dict, str]:
    """(method -> (llmrl dataset, jsonl file, max_samples), a sentence saying what the data is)."""
    from transformers import AutoTokenizer

    from llmrl.data.sources import SAMPLES_DIR

    if args.data == "builtin":
        data = {
            "sft": ("builtin:sft", SAMPLES_DIR / "sft" / "train.jsonl", args.rows),
            "reward": ("builtin:preference", SAMPLES_DIR / "preference" / "train.jsonl", args.rows),
            "dpo": ("builtin:preference", SAMPLES_DIR / "preference" / "train.jsonl", args.rows),
        }
        return data, (
            f"SFT on the first {args.rows} rows of `builtin:sft`, reward and DPO on the first {args.rows} pairs of "
            "`builtin:preference` (bundled single-turn arithmetic chat, 23-47 tokens)"
        )
    sft, preference = chat_data(args.rows, args.max_turns, seed=0)
    for name, rows in (("sft", sft), ("preference", preference)):
        (work_dir / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    sft_len, pref_len = token_lengths(sft, tokenizer), token_lengths(preference, tokenizer)
    data = {
        "sft": (str(work_dir / "sft.jsonl"), work_dir / "sft.jsonl", None),
        "reward": (str(work_dir / "preference.jsonl"), work_dir / "preference.jsonl", None),
        "dpo": (str(work_dir / "preference.jsonl"), work_dir / "preference.jsonl", None),
    }
    return data, (
        f"generated variable-length chat ({args.rows} conversations of 1-{args.max_turns} arithmetic exchanges "
        f"from `builtin:sft`, log-uniform: {sft_len['min']}/{sft_len['p50']}/{sft_len['max']} tokens min/median/max; "
        f"{args.rows} preference pairs with 0-{args.max_turns - 1} earlier exchanges before a `builtin:preference` "
        f"question: {pref_len['min']}/{pref_len['p50']}/{pref_len['max']} tokens with the chosen answer)"
    )


def warm_up(model_path: str) -> None:
    """One small forward, backward and generate, so that the first measured run pays no one-time start costs."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_path)
    ids = torch.randint(0, model.config.vocab_size, (4, 64))
    model(input_ids=ids, labels=ids).loss.backward()
    with torch.no_grad():
        model.generate(input_ids=ids[:, :8], max_new_tokens=8, do_sample=True, pad_token_id=0)
    del model
    release_memory()


# ---------------------------------------------------------------------------------------------------------
# CLI start and the pipeline


def bench_cli(repeats: int) -> list[tuple[str, float, float]]:
    executable = llmrl_executable()
    runs = CLI_RUNS * repeats
    rows = []
    for command in COMMANDS:
        times = time_command([executable, *command], runs)
        rows.append((f"llmrl {' '.join(command)}", statistics.median(times), min(times)))
    return rows


def bench_pipeline(environment: dict[str, str]) -> tuple[float, str, dict[str, float], int]:
    """(wall seconds of one ./run_all.sh --test, its run folder, stage -> seconds, exit status)."""
    run_id = f"bench_{time.strftime('%Y%m%d_%H%M%S')}"
    print(f"\n=== ./run_all.sh --test (run id {run_id}) ===", flush=True)
    started = time.perf_counter()
    status = subprocess.run(
        ["./run_all.sh", "--test"], cwd=ROOT, env={**environment, "LLMRL_RUN_ID": run_id}
    ).returncode
    wall = time.perf_counter() - started
    info_path = ROOT / "runs" / run_id / "run_info.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    stages = {name: record.get("wall_seconds", math.nan) for name, record in info.get("stages", {}).items()}
    return wall, f"runs/{run_id}", stages, status


# ---------------------------------------------------------------------------------------------------------
# Machine and report


def machine() -> str:
    import torch
    import transformers
    import trl

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, AttributeError):
        cpu = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text()).group(1).strip()
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return (
        f"{os.cpu_count()} CPU cores ({cpu}), torch using {torch.get_num_threads()} threads, "
        f"GPU: {', '.join(gpus) if gpus else 'none'}; Python {platform.python_version()}, torch {torch.__version__}, "
        f"transformers {transformers.__version__}, trl {trl.__version__}, llmrl {llmrl_version()}"
    )


def llmrl_version() -> str:
    try:
        version = importlib.metadata.version("llmrl")
    except importlib.metadata.PackageNotFoundError:
        version = "?"

    def git(*argv):
        result = subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True)
        return result.stdout.strip() if result.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD")
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "llmrl")
    return f"{version} at {commit or 'unknown commit'}{' with uncommitted changes to llmrl/' if dirty else ''}"


def median(values) -> float:
    values = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(values) if values else math.nan


def ratios(first: list[Measure], second: list[Measure], figure) -> list[float]:
    """figure(first) / figure(second), repeat by repeat."""
    return [figure(a) / figure(b) for a, b in zip(first, second, strict=True)]


def noisy(*runs: list[Measure]) -> str:
    """A mark for a figure taken while other processes competed for the CPU."""
    return " (noisy)" if any(m.other_cpu > NOISY_CPU for side in runs for m in side) else ""


def arg_differences(llmrl_args: dict, trl_args: dict) -> str:
    """The TRL config fields where llmrl's run differs from plain TRL's: 'field llmrl-value (TRL trl-value)'."""

    def shown(value) -> str:
        text = repr(value)
        return text if len(text) <= 40 else text[:37] + "..."

    keys = sorted(k for k in llmrl_args.keys() & trl_args.keys() if k not in IGNORED_ARGS)
    different = [k for k in keys if llmrl_args[k] != trl_args[k]]
    return ", ".join(f"`{k}` {shown(llmrl_args[k])} (TRL {shown(trl_args[k])})" for k in different) or "none"


def report(
    results: dict, ppo_trl: dict | None, cli_rows, pipeline, args, data_note: str, started: float, memory_label: str
) -> list[str]:
    lines = [
        "## llmrl against plain TRL",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} by `scripts/bench.py {' '.join(sys.argv[1:])}`".rstrip()
        + f" in {(time.perf_counter() - started) / 60:.1f} min, on {machine()}. Each figure is the median of "
        f"{args.repeats} repeat(s); a ratio is taken within each repeat (the two sides run in the same process, "
        "alternating which goes first), then its median is shown.",
    ]
    epoch = [m for m in EPOCH_METHODS if m in results]
    if epoch:
        lines += [
            "",
            "### One epoch: SFT, reward, DPO",
            "",
            f"`{args.model}`, batch {args.batch_size}, max_length {args.max_length}, data: {data_note}. "
            + (f"llmrl's side also with `--set {' --set '.join(args.set)}`. " if args.set else "")
            + "Epoch = `trainer.train()` only; setup (model load, data preparation, tokenization) is shown apart and "
            "saving is in neither. Real tokens are the non-padding tokens of the batches the trainer drew (from "
            "their attention masks); padding is the share of computed positions that held none. "
            f"The {memory_label} column is the peak during training, with the rise over its start in brackets.",
            "",
            f"| method | side | examples | optimizer steps | real tokens | padding | epoch (s) | real tokens/s "
            f"| setup (s) | {memory_label} (MiB) |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for method in epoch:
            for side in SIDES:
                runs = results[method][side]
                padding = 1 - median(m.real_tokens for m in runs) / median(m.padded_tokens for m in runs)
                lines.append(
                    f"| {method} | {side} | {median(m.examples for m in runs):.0f} "
                    f"| {median(m.optimizer_steps for m in runs):.0f} | {median(m.real_tokens for m in runs):.0f} "
                    f"| {padding:.0%} | {median(m.train_s for m in runs):.1f} "
                    f"| {median(m.tokens_per_s for m in runs):.0f} | {median(m.setup_s for m in runs):.1f} "
                    f"| {median(m.peak_mb for m in runs):.0f} (+{median(m.peak_mb - m.start_mb for m in runs):.0f}) |"
                )
        lines += [
            "",
            "| method | llmrl speed-up (real tokens/s, llmrl / TRL) | per repeat | epoch time, TRL / llmrl | target |",
            "| --- | --- | --- | --- | --- |",
        ]
        for method in epoch:
            llmrl, plain = results[method]["llmrl"], results[method]["plain TRL"]
            speedups = ratios(llmrl, plain, lambda m: m.tokens_per_s)
            times = ratios(plain, llmrl, lambda m: m.train_s)
            goal = EPOCH_TARGETS.get(method)
            target = f">= {goal:g}x: {'yes' if median(times) >= goal else 'NO'}" if goal else ""
            per_repeat = ", ".join(f"{r:.2f}" for r in speedups)
            shown = f"{median(speedups):.2f}x{noisy(llmrl, plain)}"
            lines.append(f"| {method} | {shown} | {per_repeat} | {median(times):.2f}x | {target} |")
        mismatched = [
            method
            for method in epoch
            if {m.examples for m in results[method]["llmrl"]} != {m.examples for m in results[method]["plain TRL"]}
        ]
        if mismatched:
            lines += ["", f"Note: the two sides trained on different numbers of examples for {', '.join(mismatched)}."]
    online = [m for m in RL_METHODS if m in results]
    if online:
        lines += [
            "",
            "### Online RL: GRPO, RLOO, PPO",
            "",
            f"`{args.model}` on `builtin:prompts`, reward `accuracy`, {args.rl_batch} completions per step "
            f"(GRPO/RLOO: {args.rl_batch // args.num_generations} prompts x k={args.num_generations}; PPO: "
            f"{args.rl_batch} prompts x 1), at most {args.completion_length} completion tokens, {args.rl_steps} "
            "steps; other settings are each side's defaults (TRL's: GRPO beta 0, RLOO beta 0.05; llmrl's PPO: "
            "4 PPO epochs per rollout, KL 0.05). A step is one batch of completions generated, scored and trained "
            "on; its time is `train()` divided by the steps.",
            "",
            f"| method | side | steps | optimizer steps | mean completion tokens | s/step | completions/s | setup (s) "
            f"| {memory_label} (MiB) |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for method in online:
            for side, runs in results[method].items():
                lines.append(
                    f"| {method} | {side} | {median(m.rollouts for m in runs):.0f} "
                    f"| {median(m.optimizer_steps for m in runs):.0f} "
                    f"| {median(m.completion_tokens / max(m.completions, 1) for m in runs):.1f} "
                    f"| {median(m.s_per_step for m in runs):.2f} | {median(m.completions_per_s for m in runs):.1f} "
                    f"| {median(m.setup_s for m in runs):.1f} "
                    f"| {median(m.peak_mb for m in runs):.0f} (+{median(m.peak_mb - m.start_mb for m in runs):.0f}) |"
                )
        lines += ["", "| comparison | s/step ratio | per repeat | target |", "| --- | --- | --- | --- |"]
        comparisons = [
            (f"{method}: llmrl / plain TRL", results[method]["llmrl"], results[method]["plain TRL"], "")
            for method in ("grpo", "rloo")
            if method in results and "plain TRL" in results[method]
        ]
        if "ppo" in results:
            ppo_vs_rloo = median(ratios(results["ppo"]["llmrl"], results["rloo"]["llmrl"], lambda m: m.s_per_step))
            target = f"<= {PPO_TARGET:g}x: {'yes' if ppo_vs_rloo <= PPO_TARGET else 'NO'}"
            comparisons.append(("PPO / RLOO (both llmrl)", results["ppo"]["llmrl"], results["rloo"]["llmrl"], target))
        for name, first, second, target in comparisons:
            per_repeat = ratios(first, second, lambda m: m.s_per_step)
            shown = ", ".join(f"{r:.2f}" for r in per_repeat)
            lines.append(f"| {name} | {median(per_repeat):.2f}x{noisy(first, second)} | {shown} | {target} |")
    checkpoints = [
        f"{method} ({side}) {median(m.checkpoint_s for m in runs):.1f} s"
        for method, sides in results.items()
        for side, runs in sides.items()
        if median(m.checkpoint_s for m in runs) > 0
    ]
    if checkpoints:
        lines += ["", f"Of the timed `train()`, writing checkpoints took: {', '.join(checkpoints)}."]
    runs = [(method, side, m) for method, sides in results.items() for side, ms in sides.items() for m in ms]
    if runs:
        busy = [m.other_cpu for _, _, m in runs]
        noisy_runs = [f"{method} ({side}, {m.other_cpu:.2f})" for method, side, m in runs if m.other_cpu > NOISY_CPU]
        lines += [
            "",
            f"Other processes kept {median(busy):.2f} CPU cores busy during a timed run (median; {max(busy):.2f} at "
            f"most; the machine has {os.cpu_count()})."
            + (f" Noisy runs (over {NOISY_CPU:g} cores): {', '.join(noisy_runs)}." if noisy_runs else ""),
        ]
    differences = [
        f"- {method}: {arg_differences(results[method]['llmrl'][0].args, results[method]['plain TRL'][0].args)}"
        for method in (*EPOCH_METHODS, "grpo", "rloo")
        if method in results and "plain TRL" in results[method]
    ]
    if differences:
        lines += ["", "TRL config fields where llmrl's run differs from plain TRL's (llmrl's value, then TRL's):", ""]
        lines += differences
    if ppo_trl:
        lines += ppo_trl_report(ppo_trl, args, memory_label)
    if cli_rows:
        lines += [
            "",
            "### CLI start",
            "",
            f"{CLI_RUNS * args.repeats} fresh processes per command (`scripts/bench_cli.py`'s measurement).",
            "",
            "| command | median (s) | min (s) | target |",
            "| --- | --- | --- | --- |",
            *(f"| `{name}` | {med:.3f} | {low:.3f} | {cli_target(name, med)} |" for name, med, low in cli_rows),
        ]
    if pipeline:
        wall, run_dir, stages, status = pipeline
        shown = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in stages.items()) or "none recorded"
        met = "yes" if wall < PIPELINE_TARGET and status == 0 else "NO"
        if status:
            met += f", the run FAILED (exit status {status})"
        lines += [
            "",
            "### `./run_all.sh --test`",
            "",
            f"One run, {wall:.0f} s in all ({wall / 60:.1f} min; target under {PIPELINE_TARGET:.0f} s: {met}), "
            f"`.venv` already set up, run folder `{run_dir}`. Stages: {shown}.",
        ]
    return lines


# ---------------------------------------------------------------------------------------------------------


def ppo_trl_report(ppo_trl: dict, args, memory_label: str) -> list[str]:
    """The section comparing llmrl's PPO with TRL 1.12's PPOTrainer, or saying why it could not run."""
    lines = ["", "### PPO: llmrl against TRL 1.12's PPOTrainer", ""]
    if "reason" in ppo_trl:
        return [*lines, f"Not measured: {ppo_trl['reason']}."]
    runs = ppo_trl["runs"]
    trl_side, ours = runs["TRL 1.12 PPOTrainer"], runs["llmrl"]
    base = ours[0].held_out  # greedy: every comparison's base model answers the same
    matched = ", ".join(f"`{key}` {value}" for key, (_, value) in PPO_MATCHED.items())
    lines += [
        f"`{args.model}` (policy and reference) on `builtin:prompts`, scored by one reward model (llmrl's reward "
        f"stage, 60 steps on `builtin:preference` from the same model) that also starts both value models, "
        f"{PPO_STEPS} rollout steps. Both sides: {matched}; no gradient clipping (TRL's PPO loop never clips); "
        f"answers cut after the first end token and scored there (TRL: `stop_token='eos'`). TRL's side runs in "
        f"its own virtualenv ({trl_side[0].versions}; torch shared), made by this script from "
        "`scripts/trl_ppo/requirements.txt`, in a fresh process; llmrl's in this one. Time per step: `train()` "
        "divided by the steps (llmrl's includes writing its last checkpoint and final/). Score: the reward "
        "model's mean score of a rollout's sampled answers as each side logs it (TRL: `objective/scores`), in the "
        "median run. Held out: each trained policy's greedy answers to 200 `builtin:prompts` test prompts, scored "
        "by the same reward model through llmrl's eval (one scorer for both sides), and their accuracy.",
        "",
        f"| side | s/step | optimizer steps | {memory_label} (MiB) | training score, steps 1-5 | last 5 steps "
        "| every 4 steps | held-out reward | held-out accuracy |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        f"| base model (before PPO) | | | | | | | {base['reward_model']['base']:.3f} "
        f"| {base['accuracy']['base']:.3f} |",
    ]
    for side, measures in runs.items():
        scores = [statistics.mean(m.scores[:5]) for m in measures], [statistics.mean(m.scores[-5:]) for m in measures]
        curve = min(measures, key=lambda m: abs(statistics.mean(m.scores[-5:]) - median(scores[1]))).scores
        lines.append(
            f"| {side} | {median(m.s_per_step for m in measures):.2f} "
            f"| {median(m.optimizer_steps for m in measures):.0f} "
            f"| {median(m.peak_mb for m in measures):.0f} (+{median(m.peak_mb - m.start_mb for m in measures):.0f}) "
            f"| {median(scores[0]):.3f} | {median(scores[1]):.3f} "
            f"| {', '.join(f'{v:.2f}' for v in curve[::4])} "
            f"| {median(m.held_out['reward_model']['model'] for m in measures):.3f} "
            f"| {median(m.held_out['accuracy']['model'] for m in measures):.3f} |"
        )
    speed = ratios(trl_side, ours, lambda m: m.s_per_step)

    def per_run(measures):
        return ", ".join(f"{m.held_out['reward_model']['model']:.3f}" for m in measures)

    ours_reward = median(m.held_out["reward_model"]["model"] for m in ours)
    trl_reward = median(m.held_out["reward_model"]["model"] for m in trl_side)
    lines += [
        "",
        "| comparison | figure | per repeat | target |",
        "| --- | --- | --- | --- |",
        f"| s/step, TRL / llmrl | {median(speed):.2f}x{noisy(ours, trl_side)} | {', '.join(f'{r:.2f}' for r in speed)} "
        f"| >= 1x: {'yes' if median(speed) >= 1 else 'NO'} |",
        f"| held-out reward, llmrl against TRL | {ours_reward:.3f} against {trl_reward:.3f} "
        f"| {per_run(ours)} against {per_run(trl_side)} "
        f"| at least TRL's: {'yes' if ours_reward >= trl_reward else 'NO'} |",
    ]
    return lines


def cli_target(command: str, seconds: float) -> str:
    if command != "llmrl --help":
        return ""
    return f"< {TARGET_SECONDS:g} s: {'yes' if seconds < TARGET_SECONDS else 'NO'}"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs of each benchmark (figures are medians)")
    parser.add_argument(
        "--only", default=",".join(BENCHMARKS), help=f"comma-separated subset of {','.join(BENCHMARKS)}"
    )
    parser.add_argument("--pipeline", action="store_true", help="also time one ./run_all.sh --test (minutes)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md as it is")
    parser.add_argument("--model", default="builtin:small", help="any model llmrl takes (default: ~18M parameters)")
    parser.add_argument("--data", choices=("generated", "builtin"), default="generated", help="SFT/reward/DPO data")
    parser.add_argument("--rows", type=int, default=96, help="SFT conversations and preference pairs")
    parser.add_argument("--max-turns", type=int, default=12, help="generated data: exchanges per conversation, at most")
    parser.add_argument("--batch-size", type=int, default=8, help="per_device_train_batch_size of SFT, reward, DPO")
    parser.add_argument("--max-length", type=int, default=1024, help="max_length of SFT, reward, DPO")
    parser.add_argument("--rl-batch", type=int, default=16, help="completions per online-RL step")
    parser.add_argument("--num-generations", type=int, default=4, help="GRPO/RLOO completions per prompt (k)")
    parser.add_argument("--completion-length", type=int, default=32, help="max_completion_length")
    parser.add_argument("--rl-steps", type=int, default=5, help="steps per online-RL run")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a setting of llmrl's side (repeatable)"
    )
    args = parser.parse_args()
    args.only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in args.only if name not in BENCHMARKS]
    if unknown:
        parser.error(f"--only: unknown {', '.join(unknown)}; choose from {','.join(BENCHMARKS)}")
    if args.repeats < 1 or args.rows < 1 or args.rl_steps < 1:
        parser.error("--repeats, --rows and --rl-steps must be at least 1")
    if args.rl_batch % args.num_generations:
        parser.error("--rl-batch must be a multiple of --num-generations")
    return args


def main() -> None:
    args = parse_args()
    started = time.perf_counter()
    work_dir = Path(tempfile.mkdtemp(prefix="llmrl-bench-"))
    user_environment = dict(os.environ)  # for ./run_all.sh, which should run as the user runs it
    os.environ["HF_DATASETS_CACHE"] = str(work_dir / "datasets-cache")  # before datasets is imported
    training = [m for m in (*EPOCH_METHODS, *RL_METHODS, "ppo_trl") if m in args.only]
    results: dict[str, dict[str, list[Measure]]] = {}
    data_note, memory_label, ppo_trl = "", "peak RSS", None
    try:
        if training:
            import torch

            from llmrl.builtin import resolve_model

            memory_label = "peak GPU memory" if torch.cuda.is_available() else "peak RSS"
            model_path = resolve_model(args.model)
            data, data_note = (
                prepare_data(args, work_dir, model_path) if set(training) & set(EPOCH_METHODS) else ({}, "")
            )
            work = Work(
                model=args.model,
                model_path=model_path,
                batch_size=args.batch_size,
                max_length=args.max_length,
                data=data,
                rl_batch=args.rl_batch,
                num_generations=args.num_generations,
                completion_length=args.completion_length,
                rl_steps=args.rl_steps,
                work_dir=work_dir,
                llmrl_sets=args.set,
            )
            warm_up(model_path)
            plan = [(method, SIDES) for method in training if method not in ("ppo", "ppo_trl")]
            if "ppo" in training:  # PPO is compared with llmrl's RLOO
                plan += [] if "rloo" in training else [("rloo", ("llmrl",))]
                plan.append(("ppo", ("llmrl",)))
            for repeat in range(args.repeats):
                for method, sides in plan:
                    order = sides if repeat % 2 == 0 else sides[::-1]
                    for side in order:
                        results.setdefault(method, {s: [] for s in sides})[side].append(run_side(side, method, work))
            ppo_trl = bench_ppo_trl(work, args.repeats) if "ppo_trl" in args.only else None
        cli_rows = bench_cli(args.repeats) if "cli" in args.only else []
        pipeline = bench_pipeline(user_environment) if args.pipeline else None
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    lines = report(results, ppo_trl, cli_rows, pipeline, args, data_note, started, memory_label)
    print("\n" + "\n".join(lines))
    if not args.no_write:
        write_section("bench", lines)


if __name__ == "__main__":
    main()
