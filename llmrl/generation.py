"""Answering prompts with a model in memory, and scoring the answers: what ``llmrl eval`` and the held-out task
metrics of online RL (``eval_<reward>`` every ``eval_steps``) share.

Prompts are tokenized as training tokenizes them (conversations through the chat template with its
generation prompt, which writes any BOS token itself; plain text with the tokenizer's special tokens),
left-padded and decoded in batches of prompts of similar length; each answer is cut after its first end token
(``llmrl.chat_template.end_token_ids``: the eos tokens and the template's end of turn), so that
``completion_ids`` are the tokens the model produced, as online RL passes them to rewards.
"""

import logging
import math

from llmrl.chat_template import end_token_ids
from llmrl.rewards import build_reward_function

logger = logging.getLogger("llmrl")


def encode_prompts(tokenizer, prompts: list) -> list[list[int]]:
    """Each prompt's token ids as the model reads them: a conversation through the chat template (generation
    prompt added; the template writes the BOS token where the model wants one), plain text with the
    tokenizer's special tokens (its BOS)."""
    encoded = []
    for prompt in prompts:
        if isinstance(prompt, list):
            text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
            encoded.append(tokenizer(text, add_special_tokens=False)["input_ids"])
        else:
            encoded.append(tokenizer(prompt)["input_ids"])
    return encoded


def generate(
    model, tokenizer, prompts: list, max_new_tokens: int, batch_size: int, temperature: float = 0.0, top_p: float = 1.0
) -> tuple[list[str], list[list[int]]]:
    """(answers, their token ids up to and including the end token) for each prompt; greedy unless
    ``temperature`` > 0 (then seeded by the caller's ``set_seed``)."""
    import torch

    encoded = encode_prompts(tokenizer, prompts)
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))  # batches of similar length: little padding
    ends = end_token_ids(tokenizer, getattr(model, "generation_config", None))
    device = next(model.parameters()).device
    sampling = dict(do_sample=True, temperature=temperature, top_p=top_p, top_k=0) if temperature > 0 else {}
    was_training = model.training
    model.eval()
    answers, token_ids = [""] * len(encoded), [[]] * len(encoded)
    try:
        for start in range(0, len(encoded), batch_size):
            rows = order[start : start + batch_size]
            batch = tokenizer.pad(
                {"input_ids": [encoded[i] for i in rows]}, return_tensors="pt", padding_side="left"
            ).to(device)
            with torch.no_grad():
                output = model.generate(
                    **batch,
                    max_new_tokens=max_new_tokens,
                    pad_token_id=tokenizer.pad_token_id,
                    eos_token_id=ends,
                    **(sampling or {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}),
                )
            for i, row in zip(rows, output[:, batch["input_ids"].shape[1] :].tolist(), strict=True):
                cut = next((k + 1 for k, token in enumerate(row) if token in ends), len(row))
                token_ids[i] = row[:cut]
                answers[i] = tokenizer.decode(row[:cut], skip_special_tokens=True).strip()
    finally:
        model.train(was_training)
    return answers, token_ids


def score(reward_funcs, prompts: list, answers: list[str], token_ids: list, columns: dict[str, list]) -> dict:
    """Each reward function's score of each answer (NaN where it gave None), called as online RL calls it."""
    completions = [
        [{"role": "assistant", "content": a}] if isinstance(p, list) else a
        for p, a in zip(prompts, answers, strict=True)
    ]
    scores = {}
    for function in reward_funcs:
        values = function(prompts=prompts, completions=completions, completion_ids=token_ids, **columns)
        scores[reward_name(function)] = [math.nan if v is None else float(v) for v in values]
    return scores


def reward_name(function) -> str:
    return getattr(function, "__name__", None) or type(function).__name__


class TaskEval:
    """Greedy answers to held-out prompts, scored by the run's reward functions: the task metrics of online RL.

    ``__call__(model, accelerator)`` returns ``{"eval_<reward>": mean, "eval_completion_length": mean tokens}``.
    With several processes each answers its share of the prompts, and the means are over all of them.
    ``held_out_score(metrics)``: the rewards' weighted sum, the held-out counterpart of the training reward;
    ``standard_error``: that sum's standard error in the last call (its noise from prompt to prompt).
    """

    standard_error = 0.0

    def __init__(self, dataset, tokenizer, reward_funcs, weights: list[float], max_new_tokens: int, batch_size: int):
        rows = dataset.to_list()
        self.weights = dict(zip((reward_name(f) for f in reward_funcs), weights, strict=True))
        self.prompts = [row["prompt"] for row in rows]
        self.columns = {key: [row[key] for row in rows] for key in rows[0] if key != "prompt"} if rows else {}
        self.tokenizer, self.reward_funcs = tokenizer, reward_funcs
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size

    def __call__(self, model, accelerator) -> dict[str, float]:
        import torch

        share = range(accelerator.process_index, len(self.prompts), accelerator.num_processes)
        prompts = [self.prompts[i] for i in share]
        columns = {key: [values[i] for i in share] for key, values in self.columns.items()}
        sums: dict[str, float] = {}
        if prompts:
            answers, token_ids = generate(model, self.tokenizer, prompts, self.max_new_tokens, self.batch_size)
            for name, values in score(self.reward_funcs, prompts, answers, token_ids, columns).items():
                kept = [v for v in values if not math.isnan(v)]
                sums[name], sums[f"{name}/count"], sums[f"{name}/squares"] = (
                    sum(kept),
                    len(kept),
                    sum(v * v for v in kept),
                )
            sums["completion_length"], sums["completion_length/count"] = sum(map(len, token_ids)), len(token_ids)
        names = [reward_name(f) for f in self.reward_funcs] + ["completion_length"]
        keys = [key for name in names for key in (name, f"{name}/count", f"{name}/squares")]
        totals = torch.tensor([float(sums.get(key, 0.0)) for key in keys], device=accelerator.device)
        if accelerator.num_processes > 1:
            totals = accelerator.reduce(totals, reduction="sum")
        totals = dict(zip(keys, totals.tolist(), strict=True))
        scored = [name for name in names if totals[f"{name}/count"] > 0]
        variance = 0.0  # of the weighted score's mean, the rewards taken as independent
        for name in set(scored) & set(self.weights):
            count = totals[f"{name}/count"]
            mean = totals[name] / count
            variance += self.weights[name] ** 2 * max(totals[f"{name}/squares"] / count - mean * mean, 0.0) / count
        self.standard_error = math.sqrt(variance)
        return {f"eval_{name}": totals[name] / totals[f"{name}/count"] for name in scored}

    def held_out_score(self, metrics: dict) -> float | None:
        """The weighted sum of the rewards' held-out means (None when one is missing: no prompt was scored)."""
        values = [metrics.get(f"eval_{name}") for name in self.weights]
        if any(v is None for v in values):
            return None
        return sum(w * v for w, v in zip(self.weights.values(), values, strict=True))


def task_eval(cfg, eval_dataset, tokenizer, reward_funcs, weights: list[float]) -> TaskEval | None:
    """The held-out task metrics of an online-RL run, or None without an eval set: the training rewards
    (``reward_funcs``, weighted as in training), or ``eval_rewards`` when the config names them."""
    if eval_dataset is None:
        return None
    if cfg.eval_rewards:
        reward_funcs = [build_reward_function(spec, cfg) for spec in cfg.eval_rewards]
        weights = [1.0] * len(reward_funcs)
    return TaskEval(
        eval_dataset, tokenizer, reward_funcs, weights, cfg.rl.max_completion_length, cfg.per_device_eval_batch_size
    )


class TaskEvalMixin:
    """Online RL's evaluation for TRL's GRPO, RLOO and online DPO trainers: greedy answers to the eval split,
    scored by the run's reward functions (``eval_<reward>``; ``TaskEval``), in place of TRL's sampled
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


def with_task_eval(trainer_class: type) -> type:
    """``trainer_class`` (TRL's GRPO, RLOO or online DPO trainer) with ``TaskEvalMixin``'s evaluation. Made when a
    run builds its trainer, so that importing llmrl never imports TRL."""
    return type(trainer_class.__name__, (TaskEvalMixin, trainer_class), {"__doc__": TaskEvalMixin.__doc__})
