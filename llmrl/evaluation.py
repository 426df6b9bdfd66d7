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
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from llmrl.config import TrainingConfig
from llmrl.errors import LlmrlError, loading_failed
from llmrl.rewards import build_reward_function, completion_text, parse_spec

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


def evaluate(cfg: TrainingConfig, settings: EvalSettings) -> dict:
    """Run the comparison and write ``results.json`` and ``samples.jsonl`` to ``cfg.output_dir``."""
    parse_spec(settings.judge)
    if settings.num_prompts <= 0 or settings.max_new_tokens <= 0 or settings.batch_size <= 0:
        raise LlmrlError("--num-prompts, --max-new-tokens and --batch-size must be > 0")
    output_dir = Path(cfg.output_dir or f"runs/eval-{time.strftime('%Y%m%d-%H%M%S')}")
    if (output_dir / "results.json").exists() and not settings.overwrite:
        raise LlmrlError(f"{output_dir} already holds eval results; pass --overwrite or choose another --output-dir")
    reference = settings.reference or starting_model(cfg.model)
    judge = build_reward_function(settings.judge, cfg)  # a missing key or a bad reward model fails before generating

    prompts, columns = held_out_prompts(cfg, settings)
    responses, token_ids = {}, {}
    for role, name in (("model", cfg.model), ("reference", reference)):
        logger.info("generating %d responses with the %s, %s", len(prompts), role, name)
        responses[role], token_ids[role] = generate(name, prompts, settings, cfg)
    scores = {role: judge_scores(judge, prompts, responses[role], token_ids[role], columns) for role in responses}

    results = {
        "model": cfg.model,
        "reference": reference,
        "judge": settings.judge,
        "dataset": cfg.dataset,
        "split": cfg.split,
        "num_prompts": len(prompts),
        **summarize(scores["model"], scores["reference"], settings.judge, cfg.seed),
        "mean_length": {role: mean([len(completion_text(r).split()) for r in responses[role]]) for role in responses},
        "settings": {**asdict(settings), "seed": cfg.seed},
    }
    write_outputs(output_dir, results, prompts, responses, scores)
    log_to_trackers(cfg, output_dir, results)
    return results


def starting_model(model: str) -> str:
    """The model an llmrl run started from, read from the run_info.json beside its final/ folder."""
    info = Path(model).expanduser().parent / "run_info.json"
    if Path(model).name == "final" and info.is_file():
        return json.loads(info.read_text())["config"]["model"]
    raise LlmrlError(f"no --reference given, and {model} is not the final/ of an llmrl run: pass --reference")


def held_out_prompts(cfg: TrainingConfig, settings: EvalSettings) -> tuple[list, dict[str, list]]:
    """The first num_prompts prompts of the split (shuffled with the seed), and their other columns."""
    from llmrl.data import prepare_dataset
    from llmrl.training import load_tokenizer

    dataset, _ = prepare_dataset(cfg, load_tokenizer(cfg), "prompt", cfg.split)
    dataset = dataset.shuffle(seed=cfg.seed).select(range(min(settings.num_prompts, len(dataset))))
    rows = dataset.to_list()
    columns = {key: [row[key] for row in rows] for key in rows[0] if key != "prompt"}
    return [row["prompt"] for row in rows], columns


def generate(model_name: str, prompts: list, settings: EvalSettings, cfg: TrainingConfig):
    """(responses, their token ids up to the end token) for each prompt, batched, with the model's own chat
    template; decoding is seeded."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed

    from llmrl.builtin import resolve_model
    from llmrl.data.schemas import plain_prompt
    from llmrl.memory import free_memory

    path = resolve_model(model_name)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    trusted = cfg.trusts_code_of(model_name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, padding_side="left", trust_remote_code=trusted)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, trust_remote_code=trusted)
    except (OSError, ValueError) as e:
        raise loading_failed(f"could not load model '{model_name}' for evaluation", e, model_name) from e
    model.to(device).eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    texts = []
    for prompt in prompts:
        if isinstance(prompt, list) and tokenizer.chat_template:
            texts.append(tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True))
        else:
            texts.append(prompt if isinstance(prompt, str) else plain_prompt(prompt))
    set_seed(cfg.seed)
    sampling = dict(do_sample=True, temperature=settings.temperature, top_p=settings.top_p, top_k=0)
    responses, token_ids = [], []
    for start in range(0, len(texts), settings.batch_size):
        batch = tokenizer(
            texts[start : start + settings.batch_size], return_tensors="pt", padding=True, add_special_tokens=False
        ).to(device)
        with torch.no_grad():
            output = model.generate(
                **batch,
                max_new_tokens=settings.max_new_tokens,
                pad_token_id=tokenizer.pad_token_id,
                **(sampling if settings.temperature > 0 else {"do_sample": False}),
            )
        new_tokens = output[:, batch["input_ids"].shape[1] :]
        responses += tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        ends = {tokenizer.eos_token_id, tokenizer.pad_token_id}
        for row in new_tokens.tolist():
            token_ids.append(row[: next((i + 1 for i, t in enumerate(row) if t in ends), len(row))])
    del model
    free_memory()
    return [response.strip() for response in responses], token_ids


def judge_scores(judge, prompts: list, responses: list[str], token_ids: list, columns: dict[str, list]) -> list[float]:
    """The judge's score of each response, called as online RL calls a reward (token ids included)."""
    completions = [
        [{"role": "assistant", "content": r}] if isinstance(p, list) else r
        for p, r in zip(prompts, responses, strict=True)
    ]
    scores = judge(prompts=prompts, completions=completions, completion_ids=token_ids, **columns)
    return [math.nan if s is None else float(s) for s in scores]


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


def bootstrap_interval(values: list[float], statistic=mean, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0):
    """The 2.5th and 97.5th percentiles of the statistic over resamples of the prompts (with replacement)."""
    rng = random.Random(seed)
    n = len(values)
    estimates = sorted(statistic([values[rng.randrange(n)] for _ in range(n)]) for _ in range(samples))
    return [estimates[int(0.025 * (samples - 1))], estimates[int(math.ceil(0.975 * (samples - 1)))]]


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
        ("results.json", json.dumps(results, indent=2) + "\n"),
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

        from llmrl.training import tracker_project

        run = wandb.init(
            project=tracker_project(cfg), name=cfg.run_name or output_dir.name, dir=str(output_dir), job_type="eval"
        )
        run.log(scalars)
        run.finish()
        wandb.teardown()
