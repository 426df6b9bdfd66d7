"""TrainingConfig -> the keyword arguments of a method's TRL config class, in one place.

A field that passes to TRL as is says so in its metadata (``option(..., trl="beta")``): the shared keys, the
method's own section and, for GRPO and RLOO, ``rl``. What llmrl works out itself (the hardware's precision
and checkpointing, max_steps, the warmup, evaluation, trackers) is set here; a method passes what only it
knows (``max_length`` of its data). The ``trl:`` section then sets any other field of the TRL config class,
checked against its fields. Light to import: TRL's classes come from the method modules.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from llmrl.builtin import resolve_model
from llmrl.chat_template import end_token_ids
from llmrl.errors import LlmrlError
from llmrl.hardware import detect_hardware
from llmrl.options import did_you_mean, trl_values
from llmrl.padding_free import pack_sequences
from llmrl.rewards import MissingEosPenalty, build_reward_functions

if TYPE_CHECKING:
    from llmrl.config import TrainingConfig

details = logging.getLogger("llmrl.details")  # the run log only

# TRL / transformers fields that llmrl sets from its own keys, and those keys (for the `trl:` section's errors)
LLMRL_KEYS = {
    "use_cpu": "precision",
    "bf16": "precision",
    "fp16": "precision",
    "warmup_steps": "warmup_ratio",
    "save_strategy": "save_steps",
    "eval_strategy": "eval_split",
    "activation_checkpointing": "gradient_checkpointing",
    "gradient_checkpointing": "gradient_checkpointing",
    "logging_first_step": "logging_steps",
    "use_liger_kernel": "use_liger_kernel",
    "max_steps": "max_steps",
    "report_to": "report_to",
    "run_name": "run_name",
    "trust_remote_code": "trust_remote_code",
    "project": "project",
    "chat_template_path": "sft.chat_template_path",
}


def trl_config(cfg: TrainingConfig, config_cls, options=None, **method_args):
    """Build TRL's config class for a method from the shared TrainingConfig, the method's section
    (``options``: the fields whose metadata names a TRL field), the ``method_args`` only the method knows,
    then the ``trl:`` section.

    Sets ``use_cpu``, ``bf16``, ``fp16`` and ``gradient_checkpointing`` for the hardware found: TRL's
    defaults (``bf16=True``, checkpointing on) fail or slow down on a machine without CUDA. Liger's kernels are
    applied when the model is loaded (``llmrl.loading``), not through TRL's deprecated ``use_liger_kernel``.
    """
    hardware = detect_hardware(cfg)
    args = trl_values(cfg)  # output_dir, seed, batch sizes, learning rate, schedule, logging and saving
    if options is not None:
        args.update(trl_values(options))
    args.update(
        max_steps=cfg.max_steps or -1,
        warmup_steps=cfg.warmup_ratio,  # transformers reads a value below 1 as a fraction of the steps
        logging_first_step=True,
        save_strategy="steps",
        eval_strategy="steps" if cfg.eval_split else "no",
        eval_steps=cfg.eval_steps or cfg.logging_steps,
        report_to=[r for r in cfg.report_to if r != "none"] or "none",
        run_name=cfg.run_name or Path(cfg.output_dir).name,
        use_cpu=hardware.device == "cpu",
        bf16=hardware.precision == "bf16",
        fp16=hardware.precision == "fp16",
        trust_remote_code=cfg.trusts_code_of(cfg.model),
    )
    field_names = {f.name for f in dataclasses.fields(config_cls)}
    # transformers 5.x renamed gradient_checkpointing (TRL defaults it to True) to activation_checkpointing
    checkpointing = (
        "activation_checkpointing" if "activation_checkpointing" in field_names else "gradient_checkpointing"
    )
    args[checkpointing] = hardware.gradient_checkpointing
    if "project" in field_names:
        args["project"] = tracker_project(cfg)
    args.update(method_args)
    check_trl_keys(cfg, config_cls, set_by_llmrl=args)
    return config_cls(**{**args, **cfg.trl})


def trl_config_class(cfg: TrainingConfig):
    """The TRL config class of the run's method (``Method.trl_config``), or None for llmrl's own trainer."""
    spec = cfg.method_spec.trl_config
    if spec is None:
        return None
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def check_trl_keys(cfg: TrainingConfig, config_cls, set_by_llmrl=()) -> None:
    """Refuse a ``trl.`` key that is not a field of the method's TRL config (with did-you-mean), or that llmrl
    sets from a key of its own (naming that key)."""
    fields = [f.name for f in dataclasses.fields(config_cls)]
    for key in cfg.trl:
        if key not in fields:
            hint = did_you_mean(key, fields, "trl.")
            raise LlmrlError(f"unknown key trl.{key}: {config_cls.__name__} has no field '{key}'{hint}")
        if key in set_by_llmrl or key in LLMRL_KEYS or llmrl_key(cfg, key):
            source = llmrl_key(cfg, key) or "its own settings (llmrl train --print-config)"
            raise LlmrlError(f"trl.{key} is set by llmrl from {source}; set that instead")


def llmrl_key(cfg: TrainingConfig, trl_name: str) -> str | None:
    """The llmrl key a TRL field is set from: the one whose metadata names it (a shared key, or one of the
    method's sections), or the mapping above; None when llmrl does not set it from a key."""
    if trl_name in LLMRL_KEYS:
        return LLMRL_KEYS[trl_name]
    sections = [("", cfg)] + [(f"{s}.", getattr(cfg, s)) for s in cfg.method_spec.sections]
    for prefix, options in sections:
        if not dataclasses.is_dataclass(options):
            continue
        for f in dataclasses.fields(options):
            if f.metadata.get("trl") == trl_name:
                return prefix + f.name
    return None


def tracker_project(cfg: TrainingConfig) -> str:
    """The tracker project: ``project``, else $WANDB_PROJECT (from the environment or .env), else llmrl.
    W&B reads it from $WANDB_PROJECT, which is set here for the run."""
    project = cfg.project or os.environ.get("WANDB_PROJECT") or "llmrl"
    if "wandb" in cfg.report_to:
        os.environ["WANDB_PROJECT"] = project
    return project


def online_rl_args(cfg: TrainingConfig, tokenizer) -> tuple[dict, list]:
    """(TRL config fields shared by GRPO and RLOO, reward functions): ``rl``'s sampling, objective and vLLM
    fields, the reward weights, and the evaluation llmrl replaces. The missing-EOS penalty is one more reward
    function, weighted 1, after the user's rewards."""
    reward_funcs, weights = online_rewards(cfg, tokenizer)
    args = dict(
        trl_values(cfg.rl),
        reward_weights=weights,
        num_generations_eval=1,  # TRL's sampled evaluation is replaced by greedy task metrics (TaskEvalMixin)
        eval_on_start=cfg.eval_split is not None,  # the held-out task metrics before the first update, too
    )
    return args, reward_funcs


def check_whole_groups(cfg: TrainingConfig) -> None:
    """GRPO and RLOO: a batch holds whole groups of ``rl.num_generations`` completions of one prompt."""
    batch = cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps
    if batch % cfg.rl.num_generations:
        raise LlmrlError(
            f"per_device_train_batch_size x gradient_accumulation_steps ({batch}) must be a multiple of "
            f"rl.num_generations ({cfg.rl.num_generations}): each batch holds whole groups of completions"
        )


def online_rewards(cfg: TrainingConfig, tokenizer) -> tuple[list, list[float]]:
    """(reward functions, their weights) of an online-RL run: the user's ``rewards``, then the missing-EOS
    penalty (weighted 1) when ``rl.missing_eos_penalty`` is set."""
    if not cfg.rewards:
        raise LlmrlError(f"--method {cfg.method} needs rewards: e.g. --set rewards=[accuracy] (see README, Rewards)")
    reward_funcs = build_reward_functions(cfg)
    weights = list(cfg.reward_weights) if cfg.reward_weights is not None else [1.0] * len(reward_funcs)
    if cfg.rl.missing_eos_penalty:
        end_ids = set(end_token_ids(tokenizer, saved_generation_config(cfg.model)))  # where generation stops
        reward_funcs.append(MissingEosPenalty(cfg.rl.missing_eos_penalty, cfg.rl.max_completion_length, end_ids))
        weights.append(1.0)
    return reward_funcs, weights


def saved_generation_config(model: str):
    """The generation config saved with ``model`` (its end tokens), or None when it has none."""
    from transformers import GenerationConfig

    try:
        return GenerationConfig.from_pretrained(resolve_model(model))
    except OSError:
        return None


def group_pairs_by_length(trainer, pairs: list[tuple[int, int]], setting: bool | None, packed: bool) -> bool:
    """Draw batches of pairs of similar length when ``setting`` says so (``group_by_length``) or, when it is
    None, when that computes on fewer positions over an epoch than random batches: always for padded batches;
    for packed ones (``packed``: llmrl.padding_free) it depends on the data, since rows fill up better with
    mixed lengths. ``pairs``: the token lengths of each training pair's two sequences. Batches stay random:
    transformers' LengthGroupedSampler sorts by length only within random groups of 50 batches."""
    import torch
    from transformers.trainer_pt_utils import LengthGroupedSampler

    size = trainer.args.train_batch_size * trainer.args.gradient_accumulation_steps
    seed = trainer.args.seed
    longest = [max(pair) for pair in pairs]
    if setting is None:
        grouped = list(LengthGroupedSampler(size, lengths=longest, generator=torch.Generator().manual_seed(seed)))
        shuffled = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(seed)).tolist()
        batch = trainer.args.train_batch_size
        positions = (
            computed_positions(pairs, grouped, batch, packed),
            computed_positions(pairs, shuffled, batch, packed),
        )
        setting = positions[0] < positions[1]
        details.info(
            "%s batches: %s (%d positions computed per epoch grouped by length, %d at random)",
            "packed" if packed else "padded",
            "pairs grouped by length" if setting else "random pairs",
            *positions,
        )
    if setting:
        trainer._get_train_sampler = lambda dataset=None: LengthGroupedSampler(size, lengths=longest)
    return setting


def computed_positions(pairs: list[tuple[int, int]], order: list[int], batch: int, packed: bool) -> int:
    """The positions a model computes on over one epoch of ``pairs`` drawn in ``order``, ``batch`` pairs at a
    time: padded to the batch's longest sequence, or packed into rows that long (llmrl.padding_free.pack_sequences)."""
    total = 0
    for start in range(0, len(order), batch):
        sizes = [length for index in order[start : start + batch] for length in pairs[index]]
        rows = len(pack_sequences(sizes)) if packed else len(sizes)
        total += rows * max(sizes)
    return total
