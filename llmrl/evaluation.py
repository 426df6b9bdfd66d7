"""``llmrl eval``: the trained model against a reference on held-out prompts, scored by a judge.

Both models answer the same prompts with the same decoding settings; the judge (any reward spec of
``llmrl/rewards.py``: ``reward_model:PATH``, ``api:URL``, ``accuracy``, ...) scores every answer; the report
gives the win rate of the model over the reference (ties count half), the mean rewards and their difference,
each with a bootstrap 95% confidence interval, and the mean response lengths. For a ``reward_model:`` judge,
whose scores are Bradley-Terry logits, it also gives the mean win probability, sigmoid(model - reference).
"""

import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from llmrl import generation, trl_args
from llmrl.config import TrainingConfig
from llmrl.data import prepare_dataset
from llmrl.errors import LlmrlError, redact_secrets
from llmrl.held_out import chosen_step
from llmrl.loading import from_pretrained, load_tokenizer
from llmrl.memory import free_memory
from llmrl.outputs import BEST
from llmrl.reward_specs import parse_spec
from llmrl.rewards import build_reward_function, completion_text
from llmrl.runlock import RunLock

logger = logging.getLogger("llmrl")
DEFAULT_DATASET, DEFAULT_SPLIT = "ultrafeedback", "test_prefs"
BOOTSTRAP_SAMPLES = 1000


@dataclass
class EvalSettings:
    """What ``llmrl eval`` compares and how; the model, dataset and judge options live in the TrainingConfig."""

    judge: str  # a reward spec: reward_model:PATH, api:URL, accuracy, ...
    reference: str | None = None  # None: the model the evaluated run started from (its run_info.json)
    num_prompts: int = 200
    max_new_tokens: int = 256
    temperature: float = 0.0  # 0: greedy decoding
    top_p: float = 1.0
    batch_size: int = 16
    overwrite: bool = False


@dataclass
class Comparison:
    """One model against its reference; the results go to ``output_dir``."""

    name: str  # what the results are called: a pipeline stage, or the model's name
    model: str
    reference: str
    output_dir: Path


def evaluate(cfg: TrainingConfig, settings: EvalSettings) -> dict:
    """``llmrl eval``: ``cfg.model`` against its reference; ``results.json`` and ``samples.jsonl`` go to
    ``cfg.output_dir``."""
    output_dir = Path(cfg.output_dir or f"runs/eval-{time.strftime('%Y%m%d-%H%M%S')}")
    if (output_dir / "results.json").exists() and not settings.overwrite:
        raise LlmrlError(f"{output_dir} already holds eval results; pass --overwrite or choose another --output-dir")
    reference = settings.reference or starting_model(cfg.model)
    with RunLock(output_dir):  # two evaluations into one folder at once would mix their samples
        return evaluate_all(cfg, settings, [Comparison(cfg.model, cfg.model, reference, output_dir)])[0]


def evaluate_all(cfg: TrainingConfig, settings: EvalSettings, comparisons: list[Comparison]) -> list[dict]:
    """Each comparison on the same held-out prompts with the same decoding and judge; a model that several
    comparisons name (the SFT model, as every later stage's reference) answers once. Returns their results."""

    parse_spec(settings.judge)
    if settings.num_prompts <= 0 or settings.max_new_tokens <= 0 or settings.batch_size <= 0:
        raise LlmrlError("--num-prompts, --max-new-tokens and --batch-size must be > 0")
    judge = build_reward_function(settings.judge, cfg)  # a missing key or a bad reward model fails before generating
    prompts, columns = held_out_prompts(cfg, settings)
    answers = {}  # model -> (responses, scores)
    for model in dict.fromkeys(name for c in comparisons for name in (c.model, c.reference)):
        logger.info("generating %d responses with %s", len(prompts), model)
        responses, token_ids = generate(model, prompts, settings, cfg)
        scores = generation.score([judge], prompts, responses, token_ids, columns)
        answers[model] = (responses, next(iter(scores.values())))
    all_results = []
    for comparison in comparisons:
        (model_responses, model_scores), (reference_responses, reference_scores) = (
            answers[comparison.model],
            answers[comparison.reference],
        )
        responses = {"model": model_responses, "reference": reference_responses}
        results = {
            "name": comparison.name,
            "model": comparison.model,
            "reference": comparison.reference,
            "judge": redact_secrets(settings.judge),
            "dataset": cfg.dataset,
            "split": cfg.split,
            "num_prompts": len(prompts),
            "num_prompts_asked": settings.num_prompts,
            **summarize(model_scores, reference_scores, settings.judge, cfg.seed),
            "mean_length": {
                role: mean([len(completion_text(r).split()) for r in rs]) for role, rs in responses.items()
            },
            "settings": {**asdict(settings), "seed": cfg.seed},
        }
        write_outputs(
            comparison.output_dir, results, prompts, responses, {"model": model_scores, "reference": reference_scores}
        )
        log_to_trackers(cfg, comparison.output_dir, results)
        all_results.append(results)
    return all_results


def leaderboard_row(results: dict) -> dict:
    """The figures of one comparison that a leaderboard shows, each mean with its 95% interval."""
    return {
        "policy": results["name"],
        "checkpoint": chosen_step(results["model"]),  # final, or best (step N): which of the run's policies
        "reference": results["reference"],
        "judge": results["judge"],
        "num_prompts": results["num_prompts"],
        **{name: results[name] for name in ("win_rate", "model_reward", "reference_reward", "reward_improvement")},
        "mean_length": results["mean_length"]["model"],
    }


def starting_model(model: str) -> str:
    """The model an llmrl run started from, read from the run_info.json beside its final/ folder."""
    info = Path(model).expanduser().parent / "run_info.json"
    if Path(model).name in ("final", BEST) and info.is_file():
        return json.loads(info.read_text())["config"]["model"]
    raise LlmrlError(f"no --reference given, and {model} is not the final/ or best/ of an llmrl run: pass --reference")


def held_out_prompts(cfg: TrainingConfig, settings: EvalSettings) -> tuple[list, dict[str, list]]:
    """The first num_prompts prompts of the split (shuffled with the seed), and their other columns."""

    dataset, _ = prepare_dataset(cfg, load_tokenizer(cfg), "prompt", cfg.split)
    if settings.num_prompts > len(dataset):
        logger.warning(
            "--num-prompts %d: split '%s' has %d usable prompts, all of which are used",
            settings.num_prompts,
            cfg.split,
            len(dataset),
        )
    dataset = dataset.shuffle(seed=cfg.seed).select(range(min(settings.num_prompts, len(dataset))))
    rows = dataset.to_list()
    columns = {key: [row[key] for row in rows] for key in rows[0] if key != "prompt"}
    return [row["prompt"] for row in rows], columns


def generate(model_name: str, prompts: list, settings: EvalSettings, cfg: TrainingConfig):
    """(responses, their token ids up to the end token) for each prompt from the model named ``model_name``,
    batched, with the model's own chat template; decoding is seeded."""
    import torch
    from transformers import AutoModelForCausalLM, set_seed

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = (
        torch.bfloat16
        if device == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False)
        else torch.float32
    )
    trusted = cfg.trusts_code_of(model_name)
    tokenizer = load_tokenizer(cfg, model_name, strict=False)  # rendered as training renders (llmrl.chat_template)
    what = f"could not load model '{model_name}' for evaluation"
    model = from_pretrained(AutoModelForCausalLM, model_name, what, dtype=dtype, trust_remote_code=trusted)
    model.to(device).eval()
    set_seed(cfg.seed)
    responses, token_ids = generation.generate(
        model, tokenizer, prompts, settings.max_new_tokens, settings.batch_size, settings.temperature, settings.top_p
    )
    del model
    free_memory()
    return responses, token_ids


# ---------------------------------------------------------------------------------------------------------
# The figures


def mean(values: list[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return sum(kept) / len(kept) if kept else math.nan


def sigmoid(x: float) -> float:
    """1 / (1 + e^-x), without overflow for large |x|."""
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


def outcomes(model: list[float], reference: list[float]) -> list[float]:
    """Per prompt: 1 when the model's score beats the reference's, 0.5 for a tie, 0 for a loss."""
    return [1.0 if m > r else 0.5 if m == r else 0.0 for m, r in zip(model, reference, strict=True)]


def bootstrap_interval(values: list[float], samples: int = BOOTSTRAP_SAMPLES, seed: int = 0) -> list[float]:
    """The 2.5th and 97.5th percentiles of the mean over resamples of the prompts (with replacement). The same
    seed draws the same resamples for every figure of a comparison, so their intervals are paired."""
    import numpy as np

    array = np.asarray(values, dtype=float)
    rows = np.random.default_rng(seed).integers(0, len(array), size=(samples, len(array)))
    estimates = np.sort(array[rows].mean(axis=1))
    return [float(estimates[int(0.025 * (samples - 1))]), float(estimates[int(math.ceil(0.975 * (samples - 1)))])]


def summarize(model: list[float], reference: list[float], judge: str, seed: int) -> dict:
    """Win rate, mean rewards and improvement, each with its bootstrap 95% interval; prompts the judge
    could not score (None) are left out."""
    pairs = [(m, r) for m, r in zip(model, reference, strict=True) if not (math.isnan(m) or math.isnan(r))]
    if not pairs:
        raise LlmrlError(f"the judge {judge} scored none of the responses")
    model, reference = [m for m, _ in pairs], [r for _, r in pairs]
    figures = {
        "win_rate": outcomes(model, reference),
        "model_reward": model,
        "reference_reward": reference,
        "reward_improvement": [m - r for m, r in pairs],
    }
    if parse_spec(judge)[0] == "reward_model":
        figures["win_probability"] = [sigmoid(m - r) for m, r in pairs]
    summary = {
        name: {"mean": mean(values), "ci95": bootstrap_interval(values, seed=seed)} for name, values in figures.items()
    }
    summary["scored_prompts"] = len(pairs)
    return summary


# ---------------------------------------------------------------------------------------------------------
# Outputs


def write_outputs(output_dir: Path, results: dict, prompts, responses, scores) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, prompt in enumerate(prompts):
        model_score, reference_score = scores["model"][i], scores["reference"][i]
        winner = "tie" if model_score == reference_score else "model" if model_score > reference_score else "reference"
        if math.isnan(model_score) or math.isnan(reference_score):
            winner = None
        lines.append(
            json.dumps(
                {
                    "prompt": prompt,
                    "model_response": responses["model"][i],
                    "reference_response": responses["reference"][i],
                    "model_score": None if math.isnan(model_score) else model_score,
                    "reference_score": None if math.isnan(reference_score) else reference_score,
                    "winner": winner,
                }
            )
        )
    for name, text in (
        ("samples.jsonl", "\n".join(lines) + "\n"),
        ("results.json", redact_secrets(json.dumps(results, indent=2)) + "\n"),  # its settings name the judge
    ):
        staging = output_dir / f".{name}.tmp"
        staging.write_text(text)
        staging.replace(output_dir / name)


def log_to_trackers(cfg: TrainingConfig, output_dir: Path, results: dict) -> None:
    """The headline figures to TensorBoard and/or W&B when ``report_to`` names them."""
    scalars = {
        f"eval/{name}": results[name]["mean"]
        for name in ("win_rate", "model_reward", "reference_reward", "reward_improvement")
        if name in results
    }
    if "tensorboard" in cfg.report_to:
        from torch.utils.tensorboard import SummaryWriter

        with SummaryWriter(str(output_dir / "tensorboard")) as writer:
            for name, value in scalars.items():
                writer.add_scalar(name, value, 0)
    if "wandb" in cfg.report_to:
        import wandb

        run = wandb.init(
            project=trl_args.tracker_project(cfg),
            name=cfg.run_name or output_dir.name,
            dir=str(output_dir),
            job_type="eval",
        )
        run.log(scalars)
        run.finish()
        wandb.teardown()
