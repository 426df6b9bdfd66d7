"""TrainingConfig: the one configuration that every llmrl method reads.

Values come from three layers, each overriding the one before: the dataclass defaults, a YAML file
(``--config``), and explicit command-line flags (``--model``, ``--set lora.r=16``, ...). Every value is
checked when the config is built, and an unknown key is an error that names it and its close matches.

This module is imported by ``llmrl --help``: it must not import torch, transformers, datasets or trl.
"""

import dataclasses
import difflib
import math
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from llmrl.errors import LlmrlError
from llmrl.files import read_text
from llmrl.methods import METHODS as METHOD_SPECS
from llmrl.reward_specs import parse_spec

METHODS = tuple(METHOD_SPECS)
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
REPORT_TO = ("none", "tensorboard", "wandb", "trackio", "neptune")
PPO_TRACKERS = ("tensorboard", "wandb")  # what PPO's own loop logs to
PPO_REPLACES_RL = {  # rl.* options PPO does not read, and what it reads instead
    "beta": "set ppo.kl_coef",
    "num_generations": "PPO samples one answer per prompt (per_device_train_batch_size prompts per rollout)",
    "num_iterations": "set ppo.ppo_epochs",
    "vllm_mode": "PPO generates with transformers",
    "vllm_server_base_url": "PPO generates with transformers",
}
LR_SCHEDULERS = (  # transformers' SchedulerType values that need no extra arguments
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "inverse_sqrt",
    "cosine_with_min_lr",
    "cosine_warmup_with_min_lr",
    "warmup_stable_decay",
)
DPO_LOSSES = (  # TRL's DPOConfig.loss_type values
    "sigmoid",
    "hinge",
    "ipo",
    "exo_pair",
    "nca_pair",
    "robust",
    "bco_pair",
    "sppo_hard",
    "aot",
    "aot_unpaired",
    "apo_zero",
    "apo_down",
    "discopop",
    "sft",
    "sigmoid_norm",
)
KTO_LOSSES = ("kto", "apo_zero_unpaired")
QUANTIZE = ("4bit", "8bit")
VLLM_MODES = ("colocate", "server")
# TRL / transformers argument names a user may type, and what llmrl calls them
TRL_NAMES = {
    "fp16": "precision=fp16",
    "bf16": "precision=bf16",
    "use_cpu": "precision=fp32 (llmrl uses the GPU when there is one)",
    "packing": "sft.packing",
    "padding_free": "sft.padding_free",
    "beta": "dpo.beta, kto.beta, orpo.beta, simpo.beta, online_dpo.beta, distill.beta or rl.beta",
    "teacher_model_name_or_path": "distill.teacher",
    "num_generations": "rl.num_generations",
    "max_completion_length": "rl.max_completion_length",
    "use_vllm": "rl.use_vllm",
    "model_name_or_path": "model",
    "dataset_name": "dataset",
    "lora_r": "lora.r",
    "use_peft": "lora.enabled",
    "load_in_4bit": "lora.quantize=4bit",
    "gradient_checkpointing_kwargs": "gradient_checkpointing",
}
RUN_FLAGS = ("overwrite", "resume")  # decisions about one run: command-line flags only, never in a shared file


@dataclass
class DataConfig:
    """How the dataset named by ``dataset`` is read."""

    subset: str | None = None  # hub dataset configuration (subset) name
    data_dir: str | None = None  # folder inside a hub dataset repository
    max_samples: int | None = None  # keep only the first N rows of each split (quick experiments)
    columns: dict[str, str] = field(default_factory=dict)  # schema name -> your column, e.g. prompt: instruction
    language: str | None = None  # keep only rows whose `language` column is this (e.g. english; any case)
    max_prompt_fraction: float = 0.7  # drop examples whose prompt takes more than this fraction of max_length
    eval_fraction: float | None = None  # hold out this fraction of the training split for evaluation
    skip_bad_rows: bool = False  # drop (and count) rows the schema cannot read, instead of stopping at the first

    def __post_init__(self):
        _check(self.max_samples is None or self.max_samples > 0, "data.max_samples", self.max_samples, "> 0")
        _check(0 < self.max_prompt_fraction <= 1, "data.max_prompt_fraction", self.max_prompt_fraction, "in (0, 1]")
        fraction = self.eval_fraction
        _check(fraction is None or 0 < fraction < 1, "data.eval_fraction", fraction, "in (0, 1), or null")


@dataclass
class LoraConfig:
    """Low-rank adapters (peft) instead of full fine-tuning."""

    enabled: bool = False  # train LoRA adapters instead of every weight
    r: int = 16  # adapter rank
    alpha: int = 32  # scaling numerator: updates are scaled by alpha / r
    dropout: float = 0.05  # dropout on the adapter input
    target_modules: list[str] = field(default_factory=lambda: ["all-linear"])  # module names, or all-linear
    quantize: str | None = None  # QLoRA: load the frozen base in 4bit or 8bit (needs CUDA and bitsandbytes)

    def __post_init__(self):
        _check(self.r > 0, "lora.r", self.r, "> 0")
        _check(self.alpha > 0, "lora.alpha", self.alpha, "> 0")
        _check(0 <= self.dropout < 1, "lora.dropout", self.dropout, "in [0, 1)")
        _check(len(self.target_modules) > 0, "lora.target_modules", self.target_modules, "a non-empty list")
        _check(self.quantize in (None, *QUANTIZE), "lora.quantize", self.quantize, "4bit, 8bit or null")
        if self.quantize and not self.enabled:
            raise LlmrlError("lora.quantize trains adapters on a quantized base: set lora.enabled=true as well")


@dataclass
class SFTOptions:
    """Options of supervised fine-tuning (``--method sft``)."""

    assistant_only_loss: bool | None = None  # None: on for chat data (loss on assistant turns only)
    packing: bool = False  # pack several examples into each max_length row (fewer, longer rows per step)
    padding_free: bool | None = None  # None: on when the model reads packed position ids (no compute on padding)
    chat_template_path: str | None = None  # a tokenizer folder or Jinja file whose chat template to use


@dataclass
class RewardOptions:
    """Options of reward modeling (``--method reward``)."""

    center_rewards_coefficient: float | None = None  # pull rewards towards zero mean (e.g. 0.01)


@dataclass
class DPOOptions:
    """Options of direct preference optimization (``--method dpo``)."""

    beta: float = 0.1  # how far the policy may move from the reference: higher stays closer
    loss_type: list[str] = field(default_factory=lambda: ["sigmoid"])  # one or more of DPO_LOSSES
    label_smoothing: float = 0.0  # robust DPO: the assumed probability that a preference label is flipped
    precompute_ref_log_probs: bool = False  # score the data with the reference once, then free it

    def __post_init__(self):
        _check(self.beta > 0, "dpo.beta", self.beta, "> 0")
        unknown = [loss for loss in self.loss_type if loss not in DPO_LOSSES]
        _check(bool(self.loss_type) and not unknown, "dpo.loss_type", self.loss_type, f"any of {', '.join(DPO_LOSSES)}")
        _check(0 <= self.label_smoothing < 0.5, "dpo.label_smoothing", self.label_smoothing, "in [0, 0.5)")


@dataclass
class KTOOptions:
    """Options of Kahneman-Tversky optimization (``--method kto``), which learns from unpaired good/bad answers."""

    beta: float = 0.1  # how far the policy may move from the reference: higher stays closer
    loss_type: str = "kto"  # kto or apo_zero_unpaired
    desirable_weight: float = 1.0  # weight of the good answers' loss (raise it when they are rarer)
    undesirable_weight: float = 1.0  # weight of the bad answers' loss
    precompute_ref_log_probs: bool = False  # score the data with the reference once, then free it

    def __post_init__(self):
        _check(self.beta > 0, "kto.beta", self.beta, "> 0")
        _check(self.loss_type in KTO_LOSSES, "kto.loss_type", self.loss_type, f"one of {', '.join(KTO_LOSSES)}")
        _check(self.desirable_weight > 0, "kto.desirable_weight", self.desirable_weight, "> 0")
        _check(self.undesirable_weight > 0, "kto.undesirable_weight", self.undesirable_weight, "> 0")


@dataclass
class ORPOOptions:
    """Options of odds-ratio preference optimization (``--method orpo``): SFT on the chosen answer plus an
    odds-ratio penalty on the rejected one, in one stage and without a reference model."""

    beta: float = 0.1  # weight of the odds-ratio term (the paper's lambda) beside the SFT loss

    def __post_init__(self):
        _check(self.beta > 0, "orpo.beta", self.beta, "> 0")


@dataclass
class SimPOOptions:
    """Options of SimPO (``--method simpo``, TRL's CPO trainer with the SimPO loss): the length-normalized
    log-probability is the reward, with a target margin, and no reference model."""

    beta: float = 2.0  # reward scale (SimPO's paper uses 2.0 to 2.5)
    gamma_beta_ratio: float = 0.5  # target margin gamma, as a ratio of beta (TRL's simpo_gamma)
    sft_weight: float = 0.0  # weight of an NLL loss on the chosen answer (CPO's alpha; 0: pure SimPO)

    def __post_init__(self):
        _check(self.beta > 0, "simpo.beta", self.beta, "> 0")
        _check(self.gamma_beta_ratio >= 0, "simpo.gamma_beta_ratio", self.gamma_beta_ratio, ">= 0")
        _check(self.sft_weight >= 0, "simpo.sft_weight", self.sft_weight, ">= 0")


@dataclass
class OnlineDPOOptions:
    """Options of online DPO (``--method online_dpo``): two answers sampled per prompt, the one the rewards
    score higher is chosen, then a DPO step; sampling and rewards come from ``rl.*`` and ``rewards``."""

    beta: float = 0.1  # how far the policy may move from the reference: higher stays closer
    loss_type: str = "sigmoid"  # sigmoid (DPO) or ipo

    def __post_init__(self):
        _check(self.beta > 0, "online_dpo.beta", self.beta, "> 0")
        _check(self.loss_type in ("sigmoid", "ipo"), "online_dpo.loss_type", self.loss_type, "sigmoid or ipo")


@dataclass
class DistillOptions:
    """Options of on-policy distillation (``--method distill``): the student answers the prompts and learns
    the teacher's next-token distribution on its own answers (generalized JSD)."""

    teacher: str | None = None  # the teacher: a model folder, hub name or builtin:PRESET (needed)
    beta: float = 0.0  # the divergence: 0 forward KL (measured best, docs/benchmarks.md), 0.5 JSD, 1 reverse KL
    max_completion_length: int = 128  # tokens the student generates per prompt
    temperature: float = 1.0  # the student's sampling temperature

    def __post_init__(self):
        _check(0 <= self.beta <= 1, "distill.beta", self.beta, "in [0, 1]")
        _check(self.max_completion_length > 0, "distill.max_completion_length", self.max_completion_length, "> 0")
        _check(self.temperature > 0, "distill.temperature", self.temperature, "> 0")


@dataclass
class OnlineRLOptions:
    """Options of online RL (``--method grpo``, ``rloo``, ``ppo``): sampling, the objective, and vLLM."""

    num_generations: int = 4  # completions sampled per prompt (RLOO's k, GRPO's group size)
    max_completion_length: int = 256  # tokens per completion
    temperature: float = 1.0  # sampling temperature of the completions
    top_p: float = 1.0  # nucleus sampling: sample from the tokens holding this much probability
    beta: float | None = None  # KL coefficient towards the reference (None: TRL's default for the method)
    epsilon: float = 0.2  # clipping range of the policy ratio
    num_iterations: int = 1  # optimization passes over each batch of completions
    missing_eos_penalty: float | None = None  # reward subtracted from completions cut before their end token
    use_vllm: bool = False  # generate with vLLM (CUDA and the vllm package needed)
    vllm_mode: str = "colocate"  # colocate (in the training process) or server (trl vllm-serve)
    vllm_server_base_url: str | None = None  # server mode: e.g. http://10.0.0.2:8000

    def __post_init__(self):
        _check(self.num_generations >= 2, "rl.num_generations", self.num_generations, ">= 2")
        _check(self.max_completion_length > 0, "rl.max_completion_length", self.max_completion_length, "> 0")
        _check(self.temperature > 0, "rl.temperature", self.temperature, "> 0")
        _check(0 < self.top_p <= 1, "rl.top_p", self.top_p, "in (0, 1]")
        _check(self.beta is None or self.beta >= 0, "rl.beta", self.beta, ">= 0")
        _check(self.epsilon > 0, "rl.epsilon", self.epsilon, "> 0")
        _check(self.num_iterations > 0, "rl.num_iterations", self.num_iterations, "> 0")
        penalty = self.missing_eos_penalty
        _check(penalty is None or penalty >= 0, "rl.missing_eos_penalty", penalty, ">= 0")
        _check(self.vllm_mode in VLLM_MODES, "rl.vllm_mode", self.vllm_mode, "colocate or server")


@dataclass
class PPOOptions:
    """Options of PPO (``--method ppo``); sampling, the KL coefficient and the clip range are under ``rl``."""

    ppo_epochs: int = 4  # optimization passes over each rollout batch
    num_mini_batches: int = 1  # optimizer steps per pass (the rollout batch is split into this many)
    gamma: float = 1.0  # discount over response tokens
    lam: float = 0.95  # GAE lambda
    cliprange_value: float = 0.2  # clip range of the value predictions
    vf_coef: float = 0.1  # weight of the value loss
    entropy_coef: float = 0.0  # entropy bonus
    whiten_rewards: bool = False  # whiten the per-token rewards before GAE
    kl_coef: float = 0.05  # beta of the per-token KL penalty towards the reference (PPO's name for rl.beta)
    value_learning_rate: float | None = None  # the value model's learning rate (None: learning_rate)

    def __post_init__(self):
        _check(self.ppo_epochs > 0, "ppo.ppo_epochs", self.ppo_epochs, "> 0")
        _check(self.num_mini_batches > 0, "ppo.num_mini_batches", self.num_mini_batches, "> 0")
        _check(0 < self.gamma <= 1, "ppo.gamma", self.gamma, "in (0, 1]")
        _check(0 <= self.lam <= 1, "ppo.lam", self.lam, "in [0, 1]")
        _check(self.cliprange_value > 0, "ppo.cliprange_value", self.cliprange_value, "> 0")
        _check(self.vf_coef >= 0, "ppo.vf_coef", self.vf_coef, ">= 0")
        _check(self.entropy_coef >= 0, "ppo.entropy_coef", self.entropy_coef, ">= 0")
        _check(self.kl_coef >= 0, "ppo.kl_coef", self.kl_coef, ">= 0")
        lr = self.value_learning_rate
        _check(lr is None or lr > 0, "ppo.value_learning_rate", lr, "> 0 or null")


@dataclass
class RewardFunctionOptions:
    """Options of the rule-based and model reward functions named in ``rewards``."""

    format_pattern: str = r"^<think>.*?</think>\s*<answer>.*?</answer>$"  # what the format reward looks for
    length_target: int = 256  # tokens at which the length reward peaks (0); -1 at 0 or twice the target
    batch_size: int = 16  # completions scored at once by a reward_model:

    def __post_init__(self):
        _check(self.length_target > 0, "reward_fns.length_target", self.length_target, "> 0")
        _check(self.batch_size > 0, "reward_fns.batch_size", self.batch_size, "> 0")


@dataclass
class ApiOptions:
    """The model behind an ``api:URL`` reward or judge (an OpenAI-compatible chat-completions endpoint)."""

    model: str | None = None  # the served model's name, e.g. nvidia/llama-3.1-nemotron-70b-reward
    key_env: str | None = "NVIDIA_API_KEY"  # environment variable holding the API key (null: send none)
    timeout: float = 60.0  # seconds per request
    max_retries: int = 3  # further tries after a timeout, connection error, 429 or 5xx
    backoff: float = 1.0  # seconds before the first retry, doubled each time (or the server's Retry-After)
    concurrency: int = 8  # requests in flight at once
    prompt_template: str | None = None  # for a generative judge: one user message with {prompt} and {completion}

    def __post_init__(self):
        _check(self.timeout > 0, "api.timeout", self.timeout, "> 0")
        _check(self.max_retries >= 0, "api.max_retries", self.max_retries, ">= 0")
        _check(self.backoff >= 0, "api.backoff", self.backoff, ">= 0")
        _check(self.concurrency > 0, "api.concurrency", self.concurrency, "> 0")


@dataclass
class TrainingConfig:
    """Everything one training run needs. Sections (``lora``, ``data``, ``sft``) are set with dotted keys."""

    method: str = "sft"  # the training method, one of METHODS (llmrl train --help lists them)
    model: str | None = None  # hub name, local folder, or builtin:tiny / builtin:small
    dataset: str | None = None  # hub name, local file or folder, or builtin:sft / builtin:preference / builtin:prompts
    split: str | None = None  # the split to train on (None: the dataset's training split, usually train)
    eval_split: str | None = None  # a split to evaluate on every eval_steps (None: no evaluation)
    output_dir: str | None = None  # None: runs/<method>-<date>-<time>
    overwrite: bool = False  # allow replacing an output_dir that already holds a final/ model
    resume: bool = False  # continue from the newest checkpoint in output_dir
    seed: int = 42  # seeds data order, initialization, sampling and eval's bootstrap
    per_device_train_batch_size: int = 8  # examples (online RL: completions) per process per micro-step
    per_device_eval_batch_size: int = 8  # examples per process per eval step
    gradient_accumulation_steps: int = 1  # micro-steps per optimizer step
    learning_rate: float | None = None  # None: the method's usual default (TRL's)
    lr_scheduler_type: str = "linear"  # one of LR_SCHEDULERS (transformers' schedules), e.g. cosine
    warmup_ratio: float = 0.0  # fraction of the steps spent warming the learning rate up
    weight_decay: float = 0.0  # AdamW's decoupled weight decay
    max_grad_norm: float = 1.0  # gradient clipping; 0 turns it off
    on_nonfinite: str = "stop"  # NaN/inf gradients: stop (keeping the last good checkpoint) or skip the batch
    num_train_epochs: float = 1.0  # passes over the training split (max_steps, when set, wins)
    max_steps: int | None = None  # stop after this many optimizer steps (overrides num_train_epochs)
    max_length: int | str = 1024  # longest tokenized example in tokens, or auto (95th percentile of the data)
    logging_steps: int = 10  # optimizer steps between records in metrics.jsonl and the trackers
    save_steps: int = 500  # optimizer steps between checkpoints (a signal also saves one)
    save_total_limit: int | None = 2  # checkpoints kept on disk (None: all)
    eval_steps: int | None = None  # None: same as logging_steps
    precision: str = "auto"  # auto: bf16 on a GPU that supports it, fp32 on CPU
    gradient_checkpointing: bool | None = None  # None: on CUDA when memory needs it (an estimate), off on CPU
    report_to: list[str] = field(default_factory=lambda: ["none"])  # none, tensorboard, wandb, trackio, neptune
    project: str | None = None  # tracker project (W&B, trackio); else $WANDB_PROJECT, else "llmrl"
    run_name: str | None = None  # name shown by trackers
    # run Python code shipped with a model: true for the run's `model`, or a list naming the models to trust
    trust_remote_code: bool | list[str] = False  # run code shipped with these models: [org/model, ...]
    attn_implementation: str | None = None  # sdpa, eager, flash_attention_2 (None: flash-attn on CUDA if installed)
    group_by_length: bool = True  # reward, DPO: batches of similar-length pairs (TRL pads them; this halves it)
    use_liger_kernel: bool | None = None  # Liger's fused kernels (None: on for CUDA when liger-kernel is installed)
    data: DataConfig = field(default_factory=DataConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    sft: SFTOptions = field(default_factory=SFTOptions)
    reward: RewardOptions = field(default_factory=RewardOptions)
    dpo: DPOOptions = field(default_factory=DPOOptions)
    kto: KTOOptions = field(default_factory=KTOOptions)
    orpo: ORPOOptions = field(default_factory=ORPOOptions)
    simpo: SimPOOptions = field(default_factory=SimPOOptions)
    online_dpo: OnlineDPOOptions = field(default_factory=OnlineDPOOptions)
    distill: DistillOptions = field(default_factory=DistillOptions)
    rewards: list[str] = field(default_factory=list)  # online RL rewards, e.g. [accuracy, reward_model:runs/rm/final]
    reward_weights: list[float] | None = None  # one weight per reward (None: all 1)
    rl: OnlineRLOptions = field(default_factory=OnlineRLOptions)
    ppo: PPOOptions = field(default_factory=PPOOptions)
    reward_fns: RewardFunctionOptions = field(default_factory=RewardFunctionOptions)
    api: ApiOptions = field(default_factory=ApiOptions)
    trl: dict[str, Any] = field(default_factory=dict)  # any other field of the method's TRL config, e.g. optim

    def __post_init__(self):
        for name in ("model", "dataset", "output_dir"):
            setattr(self, name, _expand_home(getattr(self, name)))
        self.sft.chat_template_path = _expand_home(self.sft.chat_template_path)
        self.distill.teacher = _expand_home(self.distill.teacher)
        if self.method not in METHODS:
            raise LlmrlError(
                f"unknown method '{self.method}'{_did_you_mean(self.method, METHODS)}; methods: {', '.join(METHODS)}"
            )
        _check(self.precision in PRECISIONS, "precision", self.precision, f"one of {', '.join(PRECISIONS)}")
        for name in (
            "per_device_train_batch_size",
            "per_device_eval_batch_size",
            "gradient_accumulation_steps",
            "logging_steps",
            "save_steps",
        ):
            _check(getattr(self, name) > 0, name, getattr(self, name), "> 0")
        for name in ("max_steps", "eval_steps", "save_total_limit"):
            value = getattr(self, name)
            _check(value is None or value > 0, name, value, "> 0 or null")
        _check(
            self.max_length == "auto" or (isinstance(self.max_length, int) and self.max_length > 0),
            "max_length",
            self.max_length,
            "a positive integer or auto",
        )
        _check(self.learning_rate is None or self.learning_rate > 0, "learning_rate", self.learning_rate, "> 0")
        _check(self.num_train_epochs > 0, "num_train_epochs", self.num_train_epochs, "> 0")
        _check(
            self.lr_scheduler_type in LR_SCHEDULERS,
            "lr_scheduler_type",
            self.lr_scheduler_type,
            f"one of {', '.join(LR_SCHEDULERS)}",
        )
        _check(0 <= self.warmup_ratio < 1, "warmup_ratio", self.warmup_ratio, "in [0, 1)")
        _check(self.weight_decay >= 0, "weight_decay", self.weight_decay, ">= 0")
        _check(self.max_grad_norm >= 0, "max_grad_norm", self.max_grad_norm, ">= 0")
        _check(self.on_nonfinite in ("stop", "skip"), "on_nonfinite", self.on_nonfinite, "stop or skip")
        unknown = [r for r in self.report_to if r not in REPORT_TO]
        _check(not unknown, "report_to", self.report_to, f"a list of {', '.join(REPORT_TO)}")
        for spec in self.rewards:
            parse_spec(spec)
        if self.reward_weights is not None and len(self.reward_weights) != len(self.rewards):
            raise LlmrlError(
                f"reward_weights has {len(self.reward_weights)} values for {len(self.rewards)} rewards; give one each"
            )
        if self.trl and METHOD_SPECS[self.method].trl_config is None:
            raise LlmrlError(
                f"trl.{next(iter(self.trl))}: --method {self.method} is llmrl's own trainer, not TRL's; "
                f"its options are {', '.join(s + '.*' for s in METHOD_SPECS[self.method].sections[:2])}"
            )
        if self.method == "distill" and not self.distill.teacher:
            raise LlmrlError("--method distill needs a teacher: --set distill.teacher=MODEL (a folder or hub name)")
        if self.method == "ppo":
            unsupported = [t for t in self.report_to if t not in ("none", *PPO_TRACKERS)]
            if unsupported:
                raise LlmrlError(f"report_to {', '.join(unsupported)}: --method ppo logs to tensorboard and wandb only")
            defaults = OnlineRLOptions()
            for name, instead in PPO_REPLACES_RL.items():
                if getattr(self.rl, name) != getattr(defaults, name):
                    raise LlmrlError(f"rl.{name} does not apply to --method ppo: {instead}")
        if self.method == "ppo" and self.rl.use_vllm:
            raise LlmrlError("--method ppo generates with transformers; rl.use_vllm is for grpo and rloo")
        if self.method in ("grpo", "rloo"):
            batch = self.per_device_train_batch_size * self.gradient_accumulation_steps
            if batch % self.rl.num_generations:
                raise LlmrlError(
                    f"per_device_train_batch_size x gradient_accumulation_steps ({batch}) must be a multiple of "
                    f"rl.num_generations ({self.rl.num_generations}): each batch holds whole groups of completions"
                )
        if self.eval_split is not None and self.eval_split == (self.split or "train"):
            raise LlmrlError(f"eval_split '{self.eval_split}' is the training split; choose a held-out split")

    def trusts_code_of(self, model: str) -> bool:
        """Whether ``trust_remote_code`` allows running the code shipped with ``model``."""
        if isinstance(self.trust_remote_code, list):
            return model in self.trust_remote_code
        return self.trust_remote_code and model == self.model

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        """The config as a YAML file that ``--config`` accepts (run flags are left to the command line)."""
        values = {k: v for k, v in self.to_dict().items() if k not in RUN_FLAGS}
        return yaml.safe_dump(values, sort_keys=False)


def explain(cfg: TrainingConfig) -> list[tuple[str, Any, Any, str]]:
    """(key, default, current value, help) for every config key, in the order of ``--print-config``; the
    help is the comment beside the field in this file, its one description."""
    rows = []

    def walk(obj, default, prefix: str) -> None:
        notes = field_comments(type(obj))
        for f in dataclasses.fields(obj):
            value, base = getattr(obj, f.name), getattr(default, f.name)
            if dataclasses.is_dataclass(value):
                walk(value, base, f"{prefix}{f.name}.")
            else:
                rows.append((prefix + f.name, base, value, notes.get(f.name, "")))

    walk(cfg, TrainingConfig(), "")
    return rows


def field_comments(cls) -> dict[str, str]:
    """The trailing ``# comment`` of each field line of dataclass ``cls``."""
    import inspect
    import io
    import tokenize

    comments, line_names = {}, {}
    source = inspect.getsource(cls)
    for number, line in enumerate(source.splitlines(), 1):
        name = line.strip().split(":", 1)[0]
        if line.startswith("    ") and not line.startswith("     ") and name.isidentifier():
            line_names[number] = name
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT and token.start[0] in line_names:
            comments[line_names[token.start[0]]] = token.string.lstrip("# ").strip()
    return comments


def _check(ok: bool, name: str, value: Any, allowed: str) -> None:
    if not ok:
        raise LlmrlError(f"invalid {name}: {value!r} (expected {allowed})")


def _expand_home(path: str | None) -> str | None:
    return os.path.expanduser(path) if path and path.startswith("~") else path


def _did_you_mean(word: str, choices, prefix: str = "") -> str:
    matches = difflib.get_close_matches(word, list(choices), n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(prefix + m) for m in matches)}?" if matches else ""


# ---------------------------------------------------------------------------------------------------------
# Building a config from layers


def load_config(
    config_file: str | Path | None = None,
    flags: dict[str, Any] | None = None,
    sets: list[str] | None = None,
) -> TrainingConfig:
    """Build a TrainingConfig from defaults < YAML file < explicit flags (named flags, then ``--set``)."""
    values: dict[str, Any] = read_yaml(config_file) if config_file else {}
    parsed_sets = [parse_set(item) for item in sets or []]
    for key in RUN_FLAGS:
        if key in values or key in (k for k, _ in parsed_sets):
            raise LlmrlError(f"'{key}' is a decision about one run: pass --{key} on the command line")
    for key, value in (flags or {}).items():
        if value is not None:
            _assign(values, key, value)
    for key, value in parsed_sets:
        _assign(values, key, value)
    return from_dict(TrainingConfig, values)


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise LlmrlError(f"config file not found: {path}")
    try:
        data = yaml.load(read_text(path, "config file"), Loader=UniqueKeyLoader)
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        line = f" (line {where.line + 1}, column {where.column + 1})" if where else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise LlmrlError(f"config file {path} is not valid YAML{line}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise LlmrlError(f"config file {path} must hold a mapping of keys to values, got {type(data).__name__}")
    return data


class UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (plain YAML keeps the last silently)."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key '{key}' appears twice (lines {seen[key]} and {line}); keep one",
                    key_node.start_mark,
                )
            seen[key] = line
        return super().construct_mapping(node, deep)


class CliText(str):
    """A value typed on the command line, read once its field's type is known: as is for text fields
    (so ``--set run_name=007`` stays '007'), as YAML otherwise (``[a,b]`` is a list, ``true`` a bool)."""


def parse_set(item: str) -> tuple[str, CliText]:
    """Split a ``--set key=value`` item."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise LlmrlError(f"--set expects key=value, got '{item}'")
    return key.strip(), CliText(raw)


def _read_cli_text(text: CliText, kind: Any) -> Any:
    members = set(typing.get_args(kind)) if typing.get_origin(kind) in (typing.Union, types.UnionType) else {kind}
    if not text.strip() or (type(None) in members and text.strip().lower() in ("null", "none", "~")):
        return None
    if members - {type(None)} == {str}:
        return _unquoted(str(text))
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return str(text)


def _unquoted(text: str) -> str:
    """A text value as YAML reads a quoted scalar: ``'instruction'`` and ``"#### -?\\d+$"`` lose their quotes
    (YAML's escapes apply in double quotes where they are valid; a backslash YAML would refuse stays as typed).
    Unquoted text is kept exactly as typed."""
    stripped = text.strip()
    if len(stripped) < 2 or stripped[0] != stripped[-1] or stripped[0] not in "'\"":
        return text
    try:
        value = yaml.safe_load(stripped)
    except yaml.YAMLError:
        value = None
    return value if isinstance(value, str) else stripped[1:-1]


def _assign(values: dict[str, Any], dotted_key: str, value: Any) -> None:
    *sections, leaf = dotted_key.split(".")
    target = values
    for section in sections:
        existing = target.get(section)
        if not isinstance(existing, dict):
            existing = target[section] = {}
        target = existing
    target[leaf] = value


def from_dict(cls, values: dict[str, Any], prefix: str = ""):
    """Build dataclass ``cls`` from a nested dict, converting each value to its field's type."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in values.items():
        if key not in hints:
            hint = _did_you_mean(str(key), names, prefix)
            if not prefix and key in TRL_NAMES:
                hint = f"; llmrl's name for it: {TRL_NAMES[key]}"
            raise LlmrlError(f"unknown config key '{prefix}{key}'{hint} (llmrl train --print-config lists every key)")
        kind = hints[key]
        if dataclasses.is_dataclass(kind):
            if not isinstance(value, dict):
                example = f"{prefix}{key}.{dataclasses.fields(kind)[0].name}"
                raise LlmrlError(f"'{prefix}{key}' is a section: set its keys, e.g. {example}=...")
            kwargs[key] = from_dict(kind, value, prefix=f"{prefix}{key}.")
        else:
            kwargs[key] = _convert(value, kind, prefix + key)
    return cls(**kwargs)


def _convert(value: Any, kind: Any, name: str) -> Any:
    """Convert a YAML or command-line value to the annotated type, or raise naming the field."""
    if isinstance(value, CliText):
        value = _read_cli_text(value, kind)
    args = typing.get_args(kind)
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        is_null = value is None or (isinstance(value, str) and value.lower() in ("null", "none"))
        if is_null and type(None) in args:
            return None
        members = [a for a in args if a is not type(None)]
        for member in members[:-1]:  # int | str: the first type that takes the value
            try:
                return _convert(value, member, name)
            except LlmrlError:
                pass
        kind = members[-1]
    if value is None:
        raise LlmrlError(f"invalid {name}: null (expected a value)")
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on", "false", "no", "0", "off"):
            return value.lower() in ("true", "yes", "1", "on")
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise LlmrlError(f"invalid {name}: {value!r} (expected true or false)")
    if kind in (int, float):
        try:
            number = kind(value) if not isinstance(value, bool) else None
        except (TypeError, ValueError, OverflowError):
            number = None
        if (
            number is None
            or not math.isfinite(number)
            or (kind is int and isinstance(value, float) and not value.is_integer())
        ):
            raise LlmrlError(f"invalid {name}: {value!r} (expected {'an integer' if kind is int else 'a number'})")
        return number
    if kind is str:
        if isinstance(value, (dict, list)):
            raise LlmrlError(f"invalid {name}: {value!r} (expected a single value)")
        return str(value)
    if typing.get_origin(kind) is dict:
        if not isinstance(value, dict):
            raise LlmrlError(f"invalid {name}: {value!r} (expected a mapping, e.g. {name}.KEY=VALUE)")
        key_kind, value_kind = typing.get_args(kind)
        return {_convert(k, key_kind, name): _convert(v, value_kind, f"{name}.{k}") for k, v in value.items()}
    if typing.get_origin(kind) is list:
        items = value if isinstance(value, list) else [value]
        return [_convert(item, typing.get_args(kind)[0], name) for item in items]
    return value
