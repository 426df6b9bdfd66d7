"""llmrl from Python: the same runs as the command line, for configs written in Python.

    from llmrl import TrainingConfig, evaluate, run_pipeline, train

    final = train(TrainingConfig(method="sft", model="builtin:tiny", dataset="builtin:sft", max_steps=20))
    run = run_pipeline([
        TrainingConfig(method="sft", model="builtin:tiny", dataset="builtin:sft", max_steps=20),
        TrainingConfig(method="dpo", dataset="builtin:preference", max_steps=20),
    ])
    results = evaluate(str(final), judge="accuracy", reference="builtin:tiny", dataset="builtin:prompts")

Errors are ``LlmrlError`` with the message the command line prints.
"""

import dataclasses
from pathlib import Path
from typing import Any

from llmrl import pipeline
from llmrl.config import TrainingConfig, from_dict
from llmrl.data import eval_split
from llmrl.errors import LlmrlError
from llmrl.evaluation import EvalSettings
from llmrl.evaluation import evaluate as evaluate_model
from llmrl.reward_specs import parse_spec
from llmrl.runner import run_training


def train(config: TrainingConfig | None = None, **keys: Any) -> Path:
    """Train one stage in this process and return its ``final/`` folder: ``config``, or the config keys as
    keyword arguments (``train(method="dpo", model=..., dpo={"beta": 0.2})``), as ``llmrl train`` would."""
    if config is not None and keys:
        raise LlmrlError("train() takes a TrainingConfig or config keys, not both")
    return run_training(config if config is not None else from_dict(TrainingConfig, keys))


def run_pipeline(
    stages: list[TrainingConfig] | str | Path,
    run_dir: str | Path | None = None,
    evaluation: dict[str, Any] | None = None,
    name: str = "python",
    resume: bool = False,
) -> Path:
    """Run stages in order, each feeding the next as a pipeline file's do (the SFT model is where later stages
    start, the reward model what RLOO and PPO are scored by), and return the run folder.

    ``stages``: a pipeline file, or one TrainingConfig per stage, whose method names the stage; a stage sets
    only the keys it changes from the defaults, and a later stage without a ``model`` starts from the SFT
    stage's. ``evaluation``: the keys of an eval stage (``{"judge": "accuracy", "num_prompts": 50}``), run
    last. ``resume``: finish the run in ``run_dir``.
    """
    if isinstance(stages, (str, Path)):
        stages_to_run = pipeline.load_pipeline(stages)
    else:
        sections: dict[str, dict] = {}
        for config in stages:
            if config.method in sections:
                raise LlmrlError(f"run_pipeline: two stages are --method {config.method}; a pipeline runs each once")
            sections[config.method] = changed_keys(config)
        if evaluation is not None:
            sections["eval"] = dict(evaluation)
        stages_to_run = pipeline.pipeline_from_dict({"name": name, "stages": sections}, f"<{name} pipeline>")
    return pipeline.run_pipeline(stages_to_run, Path(run_dir) if run_dir else None, resume=resume)


def changed_keys(config: TrainingConfig, defaults: Any = None, prefix: str = "") -> dict[str, Any]:
    """The keys of ``config`` that differ from TrainingConfig's defaults, nested as in a config file."""
    defaults = defaults if defaults is not None else TrainingConfig()
    keys = {}
    for field in dataclasses.fields(config):
        if not prefix and field.name in pipeline.PIPELINE_DECIDES:
            continue
        value, default = getattr(config, field.name), getattr(defaults, field.name)
        if dataclasses.is_dataclass(value):
            if nested := changed_keys(value, default, f"{prefix}{field.name}."):
                keys[field.name] = nested
        elif value != default:
            keys[field.name] = value
    return keys


def evaluate(
    model: str,
    judge: str,
    reference: str | None = None,
    dataset: str | None = None,
    split: str | None = None,
    output_dir: str | Path | None = None,
    num_prompts: int = 200,
    max_new_tokens: int = 256,
    temperature: float = 0.0,
    batch_size: int = 16,
    overwrite: bool = False,
    config: TrainingConfig | None = None,
) -> dict:
    """Compare ``model`` with ``reference`` on held-out prompts judged by ``judge`` (a reward spec), as
    ``llmrl eval`` does, and return its results (win rate, rewards, their intervals). ``config`` supplies the
    other keys (api.*, reward_fns.*, data.*)."""
    parse_spec(judge)
    cfg = dataclasses.replace(config) if config is not None else TrainingConfig()
    cfg.model = model
    cfg.dataset = dataset or cfg.dataset or "ultrafeedback"  # the default applies after the config's keys
    cfg.split = split or cfg.split
    cfg.output_dir = str(output_dir) if output_dir is not None else cfg.output_dir
    cfg.split = eval_split(cfg)
    settings = EvalSettings(
        judge=judge,
        reference=reference,
        num_prompts=num_prompts,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        batch_size=batch_size,
        overwrite=overwrite,
    )
    return evaluate_model(cfg, settings)
