"""The steps every method shares: hardware choices, TrainingConfig -> TRL config, model loading, train and save.

Method modules call these in order (see ``llmrl/methods/sft.py``); the choices that depend on the machine
(CPU or CUDA, bf16 or fp32, gradient checkpointing) are made here and nowhere else.
"""

import dataclasses
import functools
import hashlib
import importlib.util
import json
import logging
import math
import os
import platform
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

from llmrl.builtin import missing_tokenizer, resolve_model
from llmrl.config import TrainingConfig, _did_you_mean
from llmrl.errors import LlmrlError, loading_failed
from llmrl.methods import METHODS, ONLINE_METHODS
from llmrl.outputs import complete_checkpoints, write_json

logger = logging.getLogger("llmrl")
metrics_logger = logging.getLogger("llmrl.metrics")  # run log only: the trainer already prints each log dict
metrics_logger.propagate = False


@dataclass(frozen=True)
class Hardware:
    """What this process trains on, and the precision and checkpointing that follow from it."""

    device: str  # cuda, mps or cpu
    precision: str  # bf16, fp16 or fp32
    gradient_checkpointing: bool
    attn_implementation: str | None  # None: transformers' choice (sdpa)
    liger: bool  # Liger's fused kernels (Triton: CUDA only)

    def summary(self) -> str:
        """One line for the run log: what was chosen, and on CPU what was switched off."""
        line = f"hardware: {self.device}, {self.precision}, attention {self.attn_implementation or 'sdpa'}"
        line += f", Liger kernels {'on' if self.liger else 'off'}"
        line += f", gradient checkpointing {'on' if self.gradient_checkpointing else 'off'}"
        if self.device != "cuda":
            line += " (bf16, flash attention and Liger need CUDA)"
        return line

    @property
    def dtype(self) -> torch.dtype:
        """dtype to load weights in: bf16 weights for bf16 runs, fp32 master weights otherwise."""
        return torch.bfloat16 if self.precision == "bf16" else torch.float32


def detect_hardware(cfg: TrainingConfig) -> Hardware:
    """The device, precision and checkpointing for this run; options this machine cannot honour are errors.
    Worked out once per config: the runner, the TRL arguments and model loading all ask for it."""
    key = json.dumps({k: v for k, v in cfg.to_dict().items() if k not in NOT_HARDWARE}, sort_keys=True, default=str)
    cached = cfg.__dict__.get("_hardware")
    if cached is None or cached[0] != key:
        cached = cfg.__dict__["_hardware"] = (key, probe_hardware(cfg))
    return cached[1]


NOT_HARDWARE = ("output_dir", "run_name", "resume", "overwrite")  # keys that never change the hardware choices


def probe_hardware(cfg: TrainingConfig) -> Hardware:
    if torch.cuda.is_available():
        device = "cuda"
    elif torch.backends.mps.is_available():
        device = "mps"
    else:
        device = "cpu"
    precision = cfg.precision
    if precision == "auto":
        if device == "cuda":
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            precision = "fp32"
    if precision == "fp16" and device != "cuda":
        raise LlmrlError(f"precision=fp16 needs a CUDA GPU, and this machine has {device} only; use precision=auto")
    if cfg.lora.quantize and device != "cuda":
        raise LlmrlError(
            f"lora.quantize={cfg.lora.quantize} (QLoRA) needs a CUDA GPU, and this machine has {device} only; "
            "drop lora.quantize to train LoRA adapters on the unquantized model"
        )
    if cfg.lora.quantize and importlib.util.find_spec("bitsandbytes") is None:
        raise LlmrlError(f"lora.quantize={cfg.lora.quantize} (QLoRA) needs bitsandbytes: pip install bitsandbytes")
    for tracker in cfg.report_to:
        if tracker not in ("none", "tensorboard") and importlib.util.find_spec(tracker) is None:
            raise LlmrlError(f"report_to names {tracker}, which is not installed: pip install {tracker}")
    if cfg.rl.use_vllm and cfg.method in ONLINE_METHODS:
        if device != "cuda":
            raise LlmrlError(f"rl.use_vllm needs a CUDA GPU, and this machine has {device} only; drop rl.use_vllm")
        if importlib.util.find_spec("vllm") is None:
            raise LlmrlError("rl.use_vllm needs vLLM: pip install 'llmrl[vllm]' (or pip install vllm)")
    liger_installed = importlib.util.find_spec("liger_kernel") is not None
    if cfg.use_liger_kernel and device != "cuda":
        raise LlmrlError(f"use_liger_kernel needs a CUDA GPU, and this machine has {device} only; drop it")
    if cfg.use_liger_kernel and not liger_installed:
        raise LlmrlError("use_liger_kernel needs liger-kernel: pip install 'llmrl[liger]'")
    liger = cfg.use_liger_kernel if cfg.use_liger_kernel is not None else device == "cuda" and liger_installed
    attention = cfg.attn_implementation
    if attention is None and device == "cuda" and importlib.util.find_spec("flash_attn") is not None:
        attention = "flash_attention_2"
    checkpointing = cfg.gradient_checkpointing
    if checkpointing is None:
        checkpointing = device == "cuda" and needs_checkpointing(cfg, torch.cuda.get_device_properties(0).total_memory)
    return Hardware(device, precision, checkpointing, attention, liger)


def needs_checkpointing(cfg: TrainingConfig, gpu_bytes: int) -> bool:
    """Whether training would not fit in ``gpu_bytes`` without gradient checkpointing (which costs about a
    third more compute): a rough upper estimate of weights, gradients, AdamW state and the activations of one
    micro-batch, from the model's config alone. When the config cannot be read, checkpointing stays on."""
    config = model_config(cfg.model, cfg.trusts_code_of(cfg.model) if cfg.model else False)
    try:
        text = config.get_text_config()
        hidden, layers, vocab = text.hidden_size, text.num_hidden_layers, text.vocab_size
    except AttributeError:  # no config, or not a transformer's
        return True
    method = METHODS[cfg.method]
    inner = getattr(text, "intermediate_size", None) or 4 * hidden
    params = layers * (4 * hidden * hidden + 3 * hidden * inner) + 2 * vocab * hidden
    weights = 2 * params  # bf16 / fp16
    if cfg.lora.enabled:
        states = weights / (4 if cfg.lora.quantize == "4bit" else 2 if cfg.lora.quantize == "8bit" else 1)
    else:  # gradients, AdamW moments (fp32) and a frozen reference copy for preference and RL methods
        states = weights * (1 + 1 + 4 + (1 if method.reference else 0))
    length = cfg.max_length if isinstance(cfg.max_length, int) else 1024
    if method.online:
        length = min(length, 512) + cfg.rl.max_completion_length
    pairs = 2 if method.pairs else 1  # chosen and rejected in one forward pass
    tokens = cfg.per_device_train_batch_size * pairs * length
    activations = tokens * hidden * layers * 34 + tokens * vocab * 8  # per layer (bf16), then fp32 logits + grads
    return states + activations > 0.8 * gpu_bytes


def trl_config(cfg: TrainingConfig, config_cls, **method_args):
    """Build TRL's config class for a method from the shared TrainingConfig plus the method's own fields.

    Sets ``use_cpu``, ``bf16``, ``fp16`` and ``gradient_checkpointing`` for the hardware found: TRL's
    defaults (``bf16=True``, checkpointing on) fail or slow down on a machine without CUDA.
    """
    hardware = detect_hardware(cfg)
    args = dict(
        output_dir=cfg.output_dir,
        seed=cfg.seed,
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        per_device_eval_batch_size=cfg.per_device_eval_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        num_train_epochs=cfg.num_train_epochs,
        max_steps=cfg.max_steps or -1,
        lr_scheduler_type=cfg.lr_scheduler_type,
        warmup_steps=cfg.warmup_ratio,
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        logging_steps=cfg.logging_steps,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        eval_strategy="steps" if cfg.eval_split else "no",
        eval_steps=cfg.eval_steps or cfg.logging_steps,
        report_to=[r for r in cfg.report_to if r != "none"] or "none",
        run_name=cfg.run_name or Path(cfg.output_dir).name,
        use_cpu=hardware.device == "cpu",
        bf16=hardware.precision == "bf16",
        fp16=hardware.precision == "fp16",
        use_liger_kernel=hardware.liger,
        trust_remote_code=cfg.trusts_code_of(cfg.model),
    )
    # transformers 5.x renamed gradient_checkpointing (TRL defaults it to True) to activation_checkpointing
    field_names = {f.name for f in dataclasses.fields(config_cls)}
    checkpointing_field = (
        "activation_checkpointing" if "activation_checkpointing" in field_names else "gradient_checkpointing"
    )
    args[checkpointing_field] = hardware.gradient_checkpointing
    if cfg.learning_rate is not None:
        args["learning_rate"] = cfg.learning_rate
    if "project" in {f.name for f in dataclasses.fields(config_cls)}:
        args["project"] = tracker_project(cfg)
    args.update(method_args)
    check_trl_keys(cfg, config_cls, set_by_llmrl=args)
    return config_cls(**{**args, **cfg.trl})


# TRL / transformers fields that llmrl sets from its own keys, and those keys (for the `trl:` section's errors)
LLMRL_KEYS = {
    "use_cpu": "precision",
    "bf16": "precision",
    "fp16": "precision",
    "warmup_steps": "warmup_ratio",
    "save_strategy": "save_steps",
    "eval_strategy": "eval_split",
    "activation_checkpointing": "gradient_checkpointing",
    "logging_first_step": "logging_steps",
}


def trl_config_class(method: str):
    """The TRL config class of ``method`` (``METHODS[method].trl_config``), or None for llmrl's own trainer."""
    spec = METHODS[method].trl_config
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
            hint = _did_you_mean(key, fields, "trl.")
            raise LlmrlError(f"unknown key trl.{key}: {config_cls.__name__} has no field '{key}'{hint}")
        if key in set_by_llmrl or key in LLMRL_KEYS:
            raise LlmrlError(f"trl.{key} is set by llmrl from {llmrl_key(cfg, key)}; set that instead")


def llmrl_key(cfg: TrainingConfig, trl_name: str) -> str:
    """The llmrl key a TRL field is set from: a shared key of the same name, an option of the method's
    sections of the same name, or the mapping above."""
    if trl_name in LLMRL_KEYS:
        return LLMRL_KEYS[trl_name]
    if trl_name in {f.name for f in dataclasses.fields(cfg)}:
        return trl_name
    for section in METHODS[cfg.method].sections:
        options = getattr(cfg, section)
        if dataclasses.is_dataclass(options) and trl_name in {f.name for f in dataclasses.fields(options)}:
            return f"{section}.{trl_name}"
    return "its own settings (llmrl train --print-config)"


def tracker_project(cfg: TrainingConfig) -> str:
    """The tracker project: ``project``, else $WANDB_PROJECT (from the environment or .env), else llmrl.
    W&B reads it from $WANDB_PROJECT, which is set here for the run."""
    project = cfg.project or os.environ.get("WANDB_PROJECT") or "llmrl"
    if "wandb" in cfg.report_to:
        os.environ["WANDB_PROJECT"] = project
    return project


def online_rl_args(cfg: TrainingConfig, tokenizer) -> tuple[dict, list]:
    """(TRL config fields shared by GRPO and RLOO, reward functions): sampling, objective, vLLM, rewards.

    The missing-EOS penalty is one more reward function, weighted 1, after the user's rewards.
    """
    reward_funcs, weights = online_rewards(cfg, tokenizer)
    args = dict(
        num_generations=cfg.rl.num_generations,
        max_completion_length=cfg.rl.max_completion_length,
        temperature=cfg.rl.temperature,
        top_p=cfg.rl.top_p,
        epsilon=cfg.rl.epsilon,
        num_iterations=cfg.rl.num_iterations,
        reward_weights=weights,
        use_vllm=cfg.rl.use_vllm,
        vllm_mode=cfg.rl.vllm_mode,
        vllm_server_base_url=cfg.rl.vllm_server_base_url,
        num_generations_eval=1,  # TRL's sampled evaluation is replaced by greedy task metrics (TaskEvalMixin)
        eval_on_start=cfg.eval_split is not None,  # the held-out task metrics before the first update, too
    )
    if cfg.rl.beta is not None:
        args["beta"] = cfg.rl.beta
    return args, reward_funcs


class TaskEvalMixin:
    """Online RL's evaluation for TRL's GRPO and RLOO trainers: greedy answers to the eval split, scored by the
    run's reward functions (``eval_<reward>``; ``llmrl.generation.TaskEval``), in place of TRL's sampled
    evaluation. Runs at the start, every ``eval_steps`` and at the end, as transformers schedules ``evaluate``."""

    task_eval = None  # a TaskEval, set by the method's build_trainer
    _last_eval: tuple[int, dict] | None = None

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
        from trl.models.utils import unwrap_model_for_generation

        if self._last_eval and self._last_eval[0] == self.state.global_step:  # the final evaluation, just done
            return self._last_eval[1]
        with unwrap_model_for_generation(
            self.model_wrapped, self.accelerator, gather_deepspeed3_params=self.args.ds3_gather_for_generation
        ) as model:
            metrics = self.task_eval(model, self.accelerator)
        was_training = self.model.training
        self.model.eval()  # TRL's log() reads its mode from the model: it then adds only evaluation metrics
        try:
            self.log(metrics)
        finally:
            self.model.train(was_training)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        self._last_eval = (self.state.global_step, metrics)
        return metrics


def task_eval(cfg: TrainingConfig, eval_dataset, tokenizer, reward_funcs):
    """The held-out task metrics of an online-RL run, or None without an eval set."""
    from llmrl.generation import TaskEval

    if eval_dataset is None:
        return None
    return TaskEval(eval_dataset, tokenizer, reward_funcs, cfg.rl.max_completion_length, cfg.per_device_eval_batch_size)


def online_rewards(cfg: TrainingConfig, tokenizer) -> tuple[list, list[float]]:
    """(reward functions, their weights) of an online-RL run: the user's ``rewards``, then the missing-EOS
    penalty (weighted 1) when ``rl.missing_eos_penalty`` is set."""
    from llmrl.rewards import MissingEosPenalty, build_reward_functions

    if not cfg.rewards:
        raise LlmrlError(f"--method {cfg.method} needs rewards: e.g. --set rewards=[accuracy] (see README, Rewards)")
    reward_funcs = build_reward_functions(cfg)
    weights = list(cfg.reward_weights) if cfg.reward_weights is not None else [1.0] * len(reward_funcs)
    if cfg.rl.missing_eos_penalty:
        eos_ids = {tokenizer.eos_token_id} | set(_generation_eos_ids(cfg))
        reward_funcs.append(MissingEosPenalty(cfg.rl.missing_eos_penalty, cfg.rl.max_completion_length, eos_ids))
        weights.append(1.0)
    return reward_funcs, weights


def _generation_eos_ids(cfg: TrainingConfig) -> list[int]:
    """The end tokens in the model's generation config (some models stop on several)."""
    from transformers import GenerationConfig

    try:
        eos = GenerationConfig.from_pretrained(resolve_model(cfg.model)).eos_token_id
    except OSError:
        return []
    return [] if eos is None else [eos] if isinstance(eos, int) else list(eos)


@functools.cache
def model_config(model: str | None, trust_remote_code: bool):
    """A model's config (``AutoConfig``), read once per process; None when there is none to read."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(resolve_model(model), trust_remote_code=trust_remote_code)
    except (OSError, ValueError):
        return None


def load_tokenizer(cfg: TrainingConfig):
    """The model's tokenizer, with a pad token (the EOS token when the model has none)."""
    path = resolve_model(cfg.model)
    if missing := missing_tokenizer(path):
        raise LlmrlError(f"could not load the tokenizer of model '{cfg.model}': {missing}")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=cfg.trusts_code_of(cfg.model))
    except (OSError, ValueError) as e:
        raise loading_failed(f"could not load the tokenizer of model '{cfg.model}'", e, cfg.model) from e
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(cfg: TrainingConfig, model_class=AutoModelForCausalLM, **kwargs):
    """The model named by ``cfg.model`` (hub name, folder or builtin:PRESET) as ``model_class``, in the run's
    dtype; quantized for QLoRA when ``lora.quantize`` is set."""
    hardware = detect_hardware(cfg)
    kwargs.update(dtype=hardware.dtype, trust_remote_code=cfg.trusts_code_of(cfg.model))
    if hardware.attn_implementation:
        kwargs["attn_implementation"] = hardware.attn_implementation
    if cfg.lora.quantize:
        from accelerate import PartialState
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=cfg.lora.quantize == "4bit",
            load_in_8bit=cfg.lora.quantize == "8bit",
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=hardware.dtype,
        )
        kwargs["device_map"] = {"": PartialState().local_process_index}
    from transformers import set_seed

    set_seed(cfg.seed)  # new weights (a reward model's score head, a value head) are the same in every run
    try:
        return model_class.from_pretrained(resolve_model(cfg.model), **kwargs)
    except (OSError, ValueError) as e:
        raise loading_failed(f"could not load model '{cfg.model}' as {model_class.__name__}", e, cfg.model) from e


def peft_config(cfg: TrainingConfig, task_type: str = "CAUSAL_LM"):
    """peft's LoraConfig from the ``lora`` section, or None when LoRA is off. For a sequence classifier
    (``SEQ_CLS``) peft also trains the new score head, which has no pretrained weights to keep."""
    if not cfg.lora.enabled:
        return None
    from peft import LoraConfig

    modules = cfg.lora.target_modules
    return LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules="all-linear" if modules == ["all-linear"] else modules,
        task_type=task_type,
    )


def append_metrics(path: Path, record: dict) -> None:
    """One logged record: a line of ``metrics.jsonl`` and a readable line in the run log."""
    with path.open("a") as f:
        f.write(json.dumps(record) + "\n")
    shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items() if k != "step")
    metrics_logger.info("step %d: %s", record["step"], shown)


def group_by_length(trainer, lengths: list[int]) -> None:
    """Draw batches of examples of similar length (``lengths``: one per training row), so that padding to the
    longest in the batch wastes little: for preference data, which TRL cannot batch padding-free. Batches stay
    random: transformers' LengthGroupedSampler sorts by length only within random groups of 50 batches."""
    from transformers.trainer_pt_utils import LengthGroupedSampler

    size = trainer.args.train_batch_size * trainer.args.gradient_accumulation_steps
    trainer._get_train_sampler = lambda dataset=None: LengthGroupedSampler(size, lengths=lengths)


class MetricsFileCallback(TrainerCallback):
    """Appends every logged dict to ``metrics.jsonl`` (with ``step``) and a readable line to the run log."""

    def __init__(self, path: Path):
        self.path = path

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        if torch.cuda.is_available():  # in place: the progress bar and the trackers show it too
            logs["gpu_memory_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        append_metrics(self.path, {"step": state.global_step, "epoch": state.epoch, **logs})

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            logger.info("checkpoint saved: %s/checkpoint-%d", args.output_dir, state.global_step)


class NonFiniteGuard(TrainerCallback):
    """Checks the gradients before every optimizer step. NaN or inf anywhere: ``stop`` raises before the update,
    so the last checkpoint stays the last good state; ``skip`` drops the gradients and goes on. A Trainer
    callback for the TRL methods; PPO's own loop calls ``usable`` directly."""

    def __init__(self, policy: str, accelerator, output_dir: str, unit: str = "batch"):
        self.policy, self.accelerator, self.output_dir, self.unit = policy, accelerator, output_dir, unit
        self.skipped = 0

    def usable(self, parameters, step: int) -> bool:
        """Whether the gradients may be applied at ``step``; False means skip them (the caller drops them)."""
        if gradients_are_finite(parameters, self.accelerator):
            return True
        if self.policy == "stop":
            raise NonFiniteError(step, self.output_dir)
        self.skipped += 1
        logger.warning("step %d: NaN or inf gradients, %s skipped (%d so far)", step, self.unit, self.skipped)
        return False

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        if not self.usable(model.parameters(), state.global_step + 1):
            model.zero_grad(set_to_none=True)  # the optimizer leaves parameters without gradients alone

    def on_log(self, args, state, control, logs=None, **kwargs):  # a NaN loss whose gradients went unseen
        loss = (logs or {}).get("loss")
        if isinstance(loss, float) and not math.isfinite(loss) and self.policy == "stop":
            raise NonFiniteError(state.global_step, self.output_dir, what="loss")


class NonFiniteError(LlmrlError):
    def __init__(self, step: int, output_dir: str, what: str = "gradients"):
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
    grads = [p.grad for p in parameters if p.grad is not None]
    finite = torch.tensor(1.0, device=grads[0].device if grads else "cpu")
    if grads:
        norms = torch._foreach_norm(grads)  # one fused pass; NaN or inf in a tensor makes its norm so
        finite = torch.isfinite(torch.stack(norms)).all().float()
    if accelerator is not None and accelerator.num_processes > 1:
        finite = accelerator.reduce(finite.to(accelerator.device), reduction="sum") / accelerator.num_processes
    return bool(finite.item() == 1.0)


class SignalCheckpoint(TrainerCallback):
    """On SIGTERM/SIGINT (noted by ``StopOnSignal``): save a checkpoint at the end of this step, then stop."""

    def __init__(self, stop, accelerator):
        self.stop, self.accelerator = stop, accelerator

    def on_step_end(self, args, state, control, **kwargs):
        if self.stop.requested(self.accelerator):
            control.should_save = control.should_training_stop = True


def train_and_save(trainer, cfg: TrainingConfig) -> Path:
    """Run ``trainer.train()`` (resuming if asked), then write ``final/`` atomically and return its path.

    Interruption and failure keep what was learned: SIGTERM/SIGINT save a checkpoint and stop with a hint to
    ``--resume``; NaN/inf gradients stop before the bad update (or skip the batch, ``on_nonfinite=skip``)."""
    from llmrl.interrupt import StopOnSignal, TrainingInterrupted

    output_dir = Path(cfg.output_dir)
    metrics = output_dir / "metrics.jsonl"
    complete = complete_checkpoints(output_dir)
    checkpoint = str(complete[-1]) if cfg.resume else None  # the runner refused --resume without one
    if trainer.is_world_process_zero():
        if checkpoint:
            for partial in set(output_dir.glob("checkpoint-*")) - set(complete):
                logger.warning("removing %s: the process stopped while writing it", partial)
                shutil.rmtree(partial)
            logger.info("resuming from %s", checkpoint)
            keep_records_up_to(metrics, int(Path(checkpoint).name.split("-")[-1]))
        elif metrics.exists():
            metrics.unlink()  # left by an earlier attempt that saved nothing; this run starts the file anew
    trainer.callback_handler.callbacks.insert(0, MetricsFileCallback(metrics))  # first: it adds gpu_memory_gb
    trainer.data_collator = shard = ShardRecord(trainer.data_collator)
    trainer.add_callback(NonFiniteGuard(cfg.on_nonfinite, trainer.accelerator, cfg.output_dir))
    with StopOnSignal() as stop:
        trainer.add_callback(SignalCheckpoint(stop, trainer.accelerator))
        trainer.train(resume_from_checkpoint=checkpoint)
    if stop.received:
        saved = complete_checkpoints(output_dir)
        hint = f"the same command with --resume (output {output_dir})"
        raise TrainingInterrupted(stop.received, str(saved[-1]) if saved else None, hint)
    write_ranks_file(trainer.accelerator, shard, output_dir)
    if trainer.eval_dataset is not None:
        results = trainer.evaluate()  # logged to metrics.jsonl like every other record
        shown = ", ".join(f"{k.removeprefix('eval_')} {v:.4g}" for k, v in results.items() if isinstance(v, float))
        logger.info("final evaluation: %s", shown)
    return save_final(trainer, output_dir)


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


def keep_records_up_to(metrics: Path, step: int) -> None:
    """Resuming from checkpoint-``step``: drop the records logged after it, which the resumed run logs again."""
    if metrics.exists():
        lines = metrics.read_text().splitlines(keepends=True)
        metrics.write_text("".join(line for line in lines if json.loads(line)["step"] <= step))


def save_final(trainer, output_dir: Path) -> Path:
    """Save model and tokenizer to a temporary folder, then rename it to ``final/`` so it is never half-written."""
    final = output_dir / "final"
    staging = output_dir / ".final-staging"  # one name for every rank: sharded saves write into the same folder
    if trainer.is_world_process_zero():
        shutil.rmtree(staging, ignore_errors=True)  # left by a run that died while saving
    trainer.accelerator.wait_for_everyone()
    trainer.save_model(str(staging))  # every rank takes part (sharded models are gathered); rank 0 writes
    trainer.accelerator.wait_for_everyone()
    if trainer.is_world_process_zero():
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
        logger.info("saved the final model to %s", final)
    trainer.accelerator.wait_for_everyone()
    return final
