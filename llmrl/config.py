"""TrainingConfig: the one configuration that every llmrl method reads.

Values come from three layers, each overriding the one before: the dataclass defaults, a YAML file
(``--config``), and explicit command-line flags (``--model``, ``--set lora.r=16``, ...). Every value is
checked when the config is built, and an unknown key is an error that names it and its close matches.

This module is imported by ``llmrl --help``: it must not import torch, transformers, datasets or trl.
"""

import dataclasses
import functools
import math
import os
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from llmrl.errors import LlmrlError
from llmrl.files import read_text
from llmrl.methods import METHODS as METHOD_SPECS
from llmrl.options import check, did_you_mean, option, section
from llmrl.reward_specs import parse_spec

METHODS = tuple(METHOD_SPECS)
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
REPORT_TO = ("none", "tensorboard", "wandb", "trackio", "neptune")
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
QUANTIZE = ("4bit", "8bit")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # an environment variable's name
VLLM_MODES = ("colocate", "server")
HAND_ON = ("final", "best")  # rl.hand_on: which model of an online-RL run a pipeline passes on
# TRL / transformers argument names a user may type that no llmrl key passes on as is, and what llmrl calls
# them (the names that keys do pass on are read from their metadata: trl_names below)
OTHER_TRL_NAMES = {
    "fp16": "precision=fp16",
    "bf16": "precision=bf16",
    "use_cpu": "precision=fp32 (llmrl uses the GPU when there is one)",
    "teacher_model_name_or_path": "distill.teacher",
    "model_name_or_path": "model",
    "dataset_name": "dataset",
    "lora_r": "lora.r",
    "use_peft": "lora.enabled",
    "load_in_4bit": "lora.quantize=4bit",
    "gradient_checkpointing_kwargs": "gradient_checkpointing",
}
MOVED_KEYS = {"sft.padding_free": "padding_free"}  # keys that moved, and where to (for their error)
RUN_FLAGS = ("overwrite", "resume")  # decisions about one run: command-line flags only, never in a shared file


@dataclass
class DataConfig:
    """How the dataset named by ``dataset`` is read."""

    subset: str | None = option(None, "hub dataset configuration (subset) name")
    data_dir: str | None = option(None, "folder inside a hub dataset repository")
    max_samples: int | None = option(None, "keep only the first N rows of each split (quick experiments)")
    columns: dict[str, str] = option({}, "schema name -> your column, e.g. prompt: instruction")
    language: str | None = option(None, "keep only rows whose `language` column is this (e.g. english; any case)")
    max_prompt_fraction: float = option(0.7, "drop examples whose prompt takes more than this fraction of max_length")
    eval_fraction: float | None = option(None, "hold out this fraction of the training split for evaluation")
    skip_bad_rows: bool = option(
        False, "drop (and count) rows the schema cannot read, instead of stopping at the first"
    )

    def __post_init__(self):
        check(self.max_samples is None or self.max_samples > 0, "data.max_samples", self.max_samples, "> 0")
        check(0 < self.max_prompt_fraction <= 1, "data.max_prompt_fraction", self.max_prompt_fraction, "in (0, 1]")
        fraction = self.eval_fraction
        check(fraction is None or 0 < fraction < 1, "data.eval_fraction", fraction, "in (0, 1), or null")


@dataclass
class LoraConfig:
    """Low-rank adapters (peft) instead of full fine-tuning."""

    enabled: bool = option(False, "train LoRA adapters instead of every weight")
    r: int = option(16, "adapter rank")
    alpha: int = option(32, "scaling numerator: updates are scaled by alpha / r")
    dropout: float = option(0.05, "dropout on the adapter input")
    target_modules: list[str] = option(["all-linear"], "module names, or all-linear")
    quantize: str | None = option(None, "QLoRA: load the frozen base in 4bit or 8bit (needs CUDA and bitsandbytes)")

    def __post_init__(self):
        check(self.r > 0, "lora.r", self.r, "> 0")
        check(self.alpha > 0, "lora.alpha", self.alpha, "> 0")
        check(0 <= self.dropout < 1, "lora.dropout", self.dropout, "in [0, 1)")
        check(len(self.target_modules) > 0, "lora.target_modules", self.target_modules, "a non-empty list")
        check(self.quantize in (None, *QUANTIZE), "lora.quantize", self.quantize, "4bit, 8bit or null")
        if self.quantize and not self.enabled:
            raise LlmrlError("lora.quantize trains adapters on a quantized base: set lora.enabled=true as well")


@dataclass
class OnlineRLOptions:
    """Options of online RL (``--method grpo``, ``rloo``, ``ppo``): sampling, the objective, and vLLM."""

    num_generations: int = option(
        4, "completions sampled per prompt (RLOO's k, GRPO's group size)", trl="num_generations"
    )
    max_completion_length: int = option(256, "tokens per completion", trl="max_completion_length")
    temperature: float = option(1.0, "sampling temperature of the completions", trl="temperature")
    top_p: float = option(1.0, "nucleus sampling: sample from the tokens holding this much probability", trl="top_p")
    beta: float | None = option(
        None, "KL coefficient towards the reference (None: TRL's default for the method)", trl="beta"
    )
    epsilon: float = option(0.2, "clipping range of the policy ratio", trl="epsilon")
    num_iterations: int = option(1, "optimization passes over each batch of completions", trl="num_iterations")
    missing_eos_penalty: float | None = option(None, "reward subtracted from completions cut before their end token")
    hand_on: str = option(
        "final",
        "the model a pipeline passes on and evaluates: final (the last step) or best (the best held-out score, "
        "kept as best/; needs eval_split)",
    )
    stop_on_divergence: bool = option(
        False,
        "stop when reward hacking is suspected: training reward up while the held-out score falls, "
        "or KL or completion length running away",
    )
    use_vllm: bool = option(False, "generate with vLLM (CUDA and the vllm package needed)", trl="use_vllm")
    vllm_mode: str = option(
        "colocate", "colocate (in the training process) or server (trl vllm-serve)", trl="vllm_mode"
    )
    vllm_server_base_url: str | None = option(
        None, "server mode: e.g. http://10.0.0.2:8000", trl="vllm_server_base_url"
    )

    def __post_init__(self):
        check(self.num_generations >= 2, "rl.num_generations", self.num_generations, ">= 2")
        check(self.max_completion_length > 0, "rl.max_completion_length", self.max_completion_length, "> 0")
        check(self.temperature > 0, "rl.temperature", self.temperature, "> 0")
        check(0 < self.top_p <= 1, "rl.top_p", self.top_p, "in (0, 1]")
        check(self.beta is None or self.beta >= 0, "rl.beta", self.beta, ">= 0")
        check(self.epsilon > 0, "rl.epsilon", self.epsilon, "> 0")
        check(self.num_iterations > 0, "rl.num_iterations", self.num_iterations, "> 0")
        penalty = self.missing_eos_penalty
        check(penalty is None or penalty >= 0, "rl.missing_eos_penalty", penalty, ">= 0")
        check(self.vllm_mode in VLLM_MODES, "rl.vllm_mode", self.vllm_mode, "colocate or server")
        check(self.hand_on in HAND_ON, "rl.hand_on", self.hand_on, "final or best")


@dataclass
class RewardFunctionOptions:
    """Options of the rule-based and model reward functions named in ``rewards``."""

    format_pattern: str = option(r"^<think>.*?</think>\s*<answer>.*?</answer>$", "what the format reward looks for")
    length_target: int = option(256, "tokens at which the length reward peaks (0); -1 at 0 or twice the target")
    batch_size: int = option(16, "completions scored at once by a reward_model:")

    def __post_init__(self):
        check(self.length_target > 0, "reward_fns.length_target", self.length_target, "> 0")
        check(self.batch_size > 0, "reward_fns.batch_size", self.batch_size, "> 0")


@dataclass
class ApiOptions:
    """The model behind an ``api:URL`` reward or judge (an OpenAI-compatible chat-completions endpoint)."""

    model: str | None = option(None, "the served model's name, e.g. nvidia/llama-3.1-nemotron-70b-reward")
    key_env: str | None = option("NVIDIA_API_KEY", "environment variable holding the API key (null: send none)")
    timeout: float = option(60.0, "seconds per request")
    max_retries: int = option(3, "further tries after a timeout, connection error, 429 or 5xx")
    backoff: float = option(1.0, "seconds before the first retry, doubled each time (or the server's Retry-After)")
    concurrency: int = option(8, "requests in flight at once")
    prompt_template: str | None = option(
        None, "for a generative judge: one user message with {prompt} and {completion}"
    )

    def __post_init__(self):
        if self.key_env is not None and not ENV_NAME.fullmatch(self.key_env):  # never echoed: it may be the key
            raise LlmrlError(
                "api.key_env is not the name of an environment variable (letters, digits and _, e.g. "
                "NVIDIA_API_KEY): it names the variable that holds the API key, not the key itself; put the key "
                "in .env (NVIDIA_API_KEY=...) and set api.key_env to that name"
            )
        check(self.timeout > 0, "api.timeout", self.timeout, "> 0")
        check(self.max_retries >= 0, "api.max_retries", self.max_retries, ">= 0")
        check(self.backoff >= 0, "api.backoff", self.backoff, ">= 0")
        check(self.concurrency > 0, "api.concurrency", self.concurrency, "> 0")


@dataclass
class SharedConfig:
    """The keys every method shares, and the shared sections (``data``, ``lora``, ``rl`` ...); ``TrainingConfig``
    adds one section per method, owned by its module. Sections are set with dotted keys (``lora.r=16``)."""

    method: str = option("sft", "the training method, one of METHODS (llmrl train --help lists them)")
    model: str | None = option(None, "hub name, local folder, or builtin:tiny / builtin:small")
    dataset: str | None = option(
        None, "hub name, local file or folder, or builtin:sft / builtin:preference / builtin:prompts"
    )
    split: str | None = option(None, "the split to train on (None: the dataset's training split, usually train)")
    eval_split: str | None = option(None, "a split to evaluate on every eval_steps (None: no evaluation)")
    output_dir: str | None = option(None, "None: runs/<method>-<date>-<time>", trl="output_dir")
    overwrite: bool = option(False, "allow replacing an output_dir that already holds a final/ model")
    resume: bool = option(False, "continue from the newest checkpoint in output_dir")
    seed: int = option(42, "seeds data order, initialization, sampling and eval's bootstrap", trl="seed")
    per_device_train_batch_size: int = option(
        8, "examples (online RL: completions) per process per micro-step", trl="per_device_train_batch_size"
    )
    per_device_eval_batch_size: int = option(8, "examples per process per eval step", trl="per_device_eval_batch_size")
    gradient_accumulation_steps: int = option(1, "micro-steps per optimizer step", trl="gradient_accumulation_steps")
    learning_rate: float | None = option(None, "None: the method's usual default (TRL's)", trl="learning_rate")
    lr_scheduler_type: str = option(
        "linear", "one of LR_SCHEDULERS (transformers' schedules), e.g. cosine", trl="lr_scheduler_type"
    )
    warmup_ratio: float = option(0.0, "fraction of the steps spent warming the learning rate up")
    weight_decay: float = option(0.0, "AdamW's decoupled weight decay", trl="weight_decay")
    max_grad_norm: float = option(1.0, "gradient clipping; 0 turns it off", trl="max_grad_norm")
    on_nonfinite: str = option("stop", "NaN/inf gradients: stop (keeping the last good checkpoint) or skip the batch")
    num_train_epochs: float = option(
        1.0, "passes over the training split (max_steps, when set, wins)", trl="num_train_epochs"
    )
    max_steps: int | None = option(None, "stop after this many optimizer steps (overrides num_train_epochs)")
    max_length: int | str = option(1024, "longest tokenized example in tokens, or auto (95th percentile of the data)")
    logging_steps: int = option(
        10, "optimizer steps between records in metrics.jsonl and the trackers", trl="logging_steps"
    )
    save_steps: int = option(500, "optimizer steps between checkpoints (a signal also saves one)", trl="save_steps")
    save_total_limit: int | None = option(2, "checkpoints kept on disk (None: all)", trl="save_total_limit")
    eval_steps: int | None = option(None, "None: same as logging_steps")
    precision: str = option("auto", "auto: bf16 on a GPU that supports it, fp32 on CPU")
    gradient_checkpointing: bool | None = option(None, "None: on CUDA when memory needs it (an estimate), off on CPU")
    report_to: list[str] = option(["none"], "none, tensorboard, wandb, trackio, neptune")
    project: str | None = option(None, 'tracker project (W&B, trackio); else $WANDB_PROJECT, else "llmrl"')
    run_name: str | None = option(None, "name shown by trackers")
    # run Python code shipped with a model: true for the run's `model`, or a list naming the models to trust
    trust_remote_code: bool | list[str] = option(False, "run code shipped with these models: [org/model, ...]")
    attn_implementation: str | None = option(
        None, "sdpa, eager, flash_attention_2 (None: flash-attn on CUDA if installed)"
    )
    chat_template_kwargs: dict[str, Any] = option(
        {}, "the chat template's variables, e.g. {enable_thinking: false} for Qwen3 (saved as the template's defaults)"
    )
    padding_free: bool | None = option(
        None, "SFT, reward, DPO, KTO: no compute on padding (None: on when the model reads packed position ids)"
    )
    group_by_length: bool | None = option(
        None, "reward, DPO: batches of similar-length pairs (None: when that computes on fewer positions)"
    )
    use_liger_kernel: bool | None = option(
        None, "Liger's fused kernels (None: on for CUDA when liger-kernel is installed)"
    )
    data: DataConfig = section(DataConfig, "how the dataset is read")
    lora: LoraConfig = section(LoraConfig, "LoRA adapters (peft) instead of full fine-tuning")
    rewards: list[str] = option([], "online RL rewards, e.g. [accuracy, reward_model:runs/rm/final]")
    reward_weights: list[float] | None = option(None, "one weight per reward (None: all 1)")
    eval_rewards: list[str] | None = option(
        None,
        "online RL: what scores the answers to eval_split (None: the training rewards, weighted alike), e.g. "
        "[accuracy] while training on a reward model; best/ and the reward-hacking flag use it",
    )
    rl: OnlineRLOptions = section(
        OnlineRLOptions, "online RL (grpo, rloo, ppo, online_dpo): sampling, the objective, vLLM"
    )
    reward_fns: RewardFunctionOptions = section(
        RewardFunctionOptions, "options of the reward functions named in rewards"
    )
    api: ApiOptions = section(ApiOptions, "the model behind an api:URL reward or judge")
    trl: dict[str, Any] = option({}, "any other field of the method's TRL config, e.g. optim")

    def __post_init__(self):
        for name in ("model", "dataset", "output_dir"):
            setattr(self, name, _expand_home(getattr(self, name)))
        if self.method not in METHODS:
            raise LlmrlError(
                f"unknown method '{self.method}'{did_you_mean(self.method, METHODS)}; methods: {', '.join(METHODS)}"
            )
        check(self.precision in PRECISIONS, "precision", self.precision, f"one of {', '.join(PRECISIONS)}")
        for name in (
            "per_device_train_batch_size",
            "per_device_eval_batch_size",
            "gradient_accumulation_steps",
            "logging_steps",
            "save_steps",
        ):
            check(getattr(self, name) > 0, name, getattr(self, name), "> 0")
        for name in ("max_steps", "eval_steps", "save_total_limit"):
            value = getattr(self, name)
            check(value is None or value > 0, name, value, "> 0 or null")
        check(
            self.max_length == "auto" or (isinstance(self.max_length, int) and self.max_length > 0),
            "max_length",
            self.max_length,
            "a positive integer or auto",
        )
        check(self.learning_rate is None or self.learning_rate > 0, "learning_rate", self.learning_rate, "> 0")
        check(self.num_train_epochs > 0, "num_train_epochs", self.num_train_epochs, "> 0")
        check(
            self.lr_scheduler_type in LR_SCHEDULERS,
            "lr_scheduler_type",
            self.lr_scheduler_type,
            f"one of {', '.join(LR_SCHEDULERS)}",
        )
        check(0 <= self.warmup_ratio < 1, "warmup_ratio", self.warmup_ratio, "in [0, 1)")
        check(self.weight_decay >= 0, "weight_decay", self.weight_decay, ">= 0")
        check(self.max_grad_norm >= 0, "max_grad_norm", self.max_grad_norm, ">= 0")
        check(self.on_nonfinite in ("stop", "skip"), "on_nonfinite", self.on_nonfinite, "stop or skip")
        unknown = [r for r in self.report_to if r not in REPORT_TO]
        check(not unknown, "report_to", self.report_to, f"a list of {', '.join(REPORT_TO)}")
        for spec in [*self.rewards, *(self.eval_rewards or [])]:
            parse_spec(spec)
        if self.reward_weights is not None and len(self.reward_weights) != len(self.rewards):
            raise LlmrlError(
                f"reward_weights has {len(self.reward_weights)} values for {len(self.rewards)} rewards; give one each"
            )
        if self.trl and self.method_spec.trl_config is None:
            raise LlmrlError(
                f"trl.{next(iter(self.trl))}: --method {self.method} is llmrl's own trainer, not TRL's; "
                f"its options are {', '.join(s + '.*' for s in self.method_spec.sections[:2])}"
            )
        if self.method_spec.check:
            self.method_spec.check(self)
        if self.eval_split is not None and self.eval_split == (self.split or "train"):
            raise LlmrlError(f"eval_split '{self.eval_split}' is the training split; choose a held-out split")
        if self.method_spec.online and self.rl.hand_on == "best" and self.eval_split is None:
            raise LlmrlError("rl.hand_on=best keeps the policy with the best held-out score: set eval_split as well")

    @property
    def method_spec(self):
        """The ``Method`` entry of ``method`` (llmrl/methods/__init__.py): its data, roles and sections."""
        return METHOD_SPECS[self.method]

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


TrainingConfig = dataclasses.make_dataclass(
    "TrainingConfig",
    [
        (name, spec.options, section(spec.options, f"options of --method {name}"))
        for name, spec in METHOD_SPECS.items()
        if spec.options is not None
    ],
    bases=(SharedConfig,),
    namespace={"__module__": __name__, "__qualname__": "TrainingConfig"},
)
TrainingConfig.__doc__ = """Everything one training run needs: the shared keys and sections (``SharedConfig``), then one
section per method that has options, named after it (``dpo.beta``, ``ppo.kl_coef``): the method module's
options dataclass, listed in ``llmrl.methods.METHODS``."""


@functools.cache
def trl_names() -> dict[str, str]:
    """{TRL field: the llmrl keys that set it}, for the hint on a TRL name typed at the top level
    (``beta`` -> ``dpo.beta, kto.beta, ...``): from the fields' metadata, then ``OTHER_TRL_NAMES``."""
    names: dict[str, list[str]] = {}

    def walk(cls, prefix: str) -> None:
        for f in dataclasses.fields(cls):
            if dataclasses.is_dataclass(f.type):
                walk(f.type, f"{prefix}{f.name}.")
            elif f.metadata.get("trl") and prefix:  # a shared key of the same name needs no hint
                names.setdefault(f.metadata["trl"], []).append(prefix + f.name)

    walk(TrainingConfig, "")
    return {**{name: ", ".join(keys) for name, keys in names.items()}, **OTHER_TRL_NAMES}


def explain(cfg: SharedConfig) -> list[tuple[str, Any, Any, str]]:
    """(key, default, current value, help) for every config key, in the order of ``--print-config``; the help
    is the field's ``metadata["help"]``, its one description."""
    rows = []

    def walk(obj, default, prefix: str) -> None:
        for f in dataclasses.fields(obj):
            value, base = getattr(obj, f.name), getattr(default, f.name)
            if dataclasses.is_dataclass(value):
                walk(value, base, f"{prefix}{f.name}.")
            else:
                rows.append((prefix + f.name, base, value, f.metadata.get("help", "")))

    walk(cfg, TrainingConfig(), "")
    return rows


def _expand_home(path: str | None) -> str | None:
    return os.path.expanduser(path) if path and path.startswith("~") else path


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
    *parts, leaf = dotted_key.split(".")
    target = values
    for part in parts:
        existing = target.get(part)
        if not isinstance(existing, dict):
            existing = target[part] = {}
        target = existing
    target[leaf] = value


def from_dict(cls, values: dict[str, Any], prefix: str = ""):
    """Build dataclass ``cls`` from a nested dict, converting each value to its field's type."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in values.items():
        if key not in hints:
            hint = did_you_mean(str(key), names, prefix)
            if not prefix and key in trl_names():
                hint = f"; llmrl's name for it: {trl_names()[key]}"
            if f"{prefix}{key}" in MOVED_KEYS:
                hint = f"; it is now {MOVED_KEYS[prefix + key]}"
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
        if isinstance(value, dict):
            raise LlmrlError(f"invalid {name}: {value!r} (expected a list, e.g. {name}=[a, b], or one value)")
        items = value if isinstance(value, list) else [value]
        return [_convert(item, typing.get_args(kind)[0], name) for item in items]
    return value
