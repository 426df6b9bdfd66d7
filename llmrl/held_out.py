"""What an online-RL run does with what it logs: keeps the policy with the best held-out score as ``best/``, and
flags reward hacking.

Both training loops give ``HeldOutWatch.observe(step, record)`` every logged record, training and evaluation
alike, on every process (the records are the same on all of them). It answers whether the record holds the
best held-out score so far (the loop then saves the policy with ``save_best``), and it flags a divergence:

- held out: the training reward rose after the best held-out score, while the held-out score fell below it by
  more than twice the standard error of the difference (its noise from prompt to prompt);
- length: the mean completion length doubled from its first value and reached 80% of
  ``rl.max_completion_length``;
- kl: the KL to the reference passed ``KL_LIMIT`` nats per token.

Each kind is said once: a console warning and the run log, and ``divergence/<kind>`` (1.0) in that record, so
``metrics.jsonl``, the trackers and ``llmrl report``'s plots have it. With ``rl.stop_on_divergence`` the loop
stops at the end of the step and the run ends with an error naming what was seen (final/ and best/ are kept).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

from llmrl.errors import LlmrlError
from llmrl.outputs import BEST, SELECTION, save_whole

logger = logging.getLogger("llmrl")
KL_LIMIT = 0.5  # nats per token: the policy's next-token distributions are far from the reference's
LENGTH_GROWTH, LENGTH_LIMIT_SHARE = 2.0, 0.8  # the length flag: this many times the first length, this near the limit
REWARD_KEYS = ("reward", "score", "objective/scores")  # the training reward as TRL's trainers and PPO log it
LENGTH_KEYS = ("completions/mean_length", "response_length")


@dataclass
class Best:
    step: int
    score: float
    standard_error: float


class HeldOutWatch:
    """The best held-out score of an online-RL run and the divergence flags (module docstring).

    ``task_eval``: the run's held-out metrics (``llmrl.generation.TaskEval``), None without an eval split;
    ``kl_per_sequence``: the logged ``kl`` is summed over a completion (PPO), not a per-token mean (TRL)."""

    def __init__(self, cfg, task_eval, is_main: bool, kl_per_sequence: bool = False):
        self.task_eval, self.is_main, self.kl_per_sequence = task_eval, is_main, kl_per_sequence
        self.folder = Path(cfg.output_dir) / BEST
        self.max_length = cfg.rl.max_completion_length
        self.stops = cfg.rl.stop_on_divergence
        self.best = previous_best(self.folder) if cfg.resume else None
        self.rewards: list[tuple[int, float]] = []  # (step, training reward) as logged
        self.first_length: float | None = None
        self.flagged: dict[str, str] = {}  # kind -> what was seen
        self.stop_reason: str | None = None

    def observe(self, step: int, record: dict) -> bool:
        """Note a logged record (adding ``divergence/<kind>`` when it shows one); True when it holds a held-out
        score better than every earlier one."""
        if any(key.startswith("eval_") for key in record):
            return self.task_eval is not None and self.held_out(step, record)
        reward = next((record[k] for k in REWARD_KEYS if isinstance(record.get(k), (int, float))), None)
        if reward is not None:
            self.rewards.append((step, float(reward)))
        length = next((record[k] for k in LENGTH_KEYS if isinstance(record.get(k), (int, float))), None)
        if length is not None:
            self.first_length = self.first_length or float(length)
            if length >= LENGTH_GROWTH * self.first_length and length >= LENGTH_LIMIT_SHARE * self.max_length:
                self.flag(
                    "length",
                    step,
                    record,
                    f"the mean completion length ran from {self.first_length:.3g} to "
                    f"{length:.3g} tokens (rl.max_completion_length {self.max_length})",
                )
        kl = record.get("kl")
        if isinstance(kl, (int, float)) and self.kl_per_sequence:
            kl = kl / max(float(length or 1.0), 1.0)
        if isinstance(kl, (int, float)) and kl > KL_LIMIT:
            self.flag("kl", step, record, f"the KL to the reference reached {kl:.3g} nats per token (over {KL_LIMIT})")
        return False

    def held_out(self, step: int, record: dict) -> bool:
        score = self.task_eval.held_out_score(record)
        if score is None:
            return False
        error = self.task_eval.standard_error
        best = self.best
        if best is None or score > best.score:
            self.best = Best(step, score, error)
            return True
        noise = 2 * math.sqrt(error**2 + best.standard_error**2)
        before = [r for s, r in self.rewards if s <= best.step] or [r for _, r in self.rewards[:1]]
        after = [r for s, r in self.rewards if s > best.step]
        if before and after and best.score - score > noise and mean(after) > before[-1]:
            self.flag(
                "held_out",
                step,
                record,
                f"the training reward rose from {before[-1]:.3g} to {mean(after):.3g} "
                f"while the held-out score fell from {best.score:.3g} (step {best.step}) to {score:.3g}, "
                f"beyond its noise (+-{noise:.2g})",
            )
        return False

    def flag(self, kind: str, step: int, record: dict, seen: str) -> None:
        if kind in self.flagged:
            return
        self.flagged[kind] = seen
        record[f"divergence/{kind}"] = 1.0
        kept = f"; best/ holds step {self.best.step}" if self.best else ""
        if self.is_main:
            logger.warning("step %d: reward hacking suspected: %s%s", step, seen, kept)
        if self.stops and self.stop_reason is None:
            self.stop_reason = f"at step {step}: {seen}"

    def save_best(self, step: int, write, accelerator) -> None:
        """Write the policy (``write(folder)``, on every process) to ``best/``, whole, with ``selection.json``."""

        def with_selection(folder: Path) -> None:
            write(folder)
            if accelerator.is_main_process:
                selection = {
                    "step": step,
                    "held_out_score": self.best.score,
                    "standard_error": self.best.standard_error,
                }
                (folder / SELECTION).write_text(json.dumps(selection, indent=2) + "\n")

        save_whole(self.folder, with_selection, accelerator)

    def stopped(self) -> LlmrlError:
        """The error that ends a run stopped by ``rl.stop_on_divergence``."""
        kept = f"; best/ holds the best held-out policy (step {self.best.step})" if self.best else ""
        return LlmrlError(
            f"stopped by rl.stop_on_divergence {self.stop_reason}. final/ holds the policy at the stop{kept}"
        )


def previous_best(folder: Path) -> Best | None:
    """The best/ an interrupted run kept, read when it resumes."""
    path = folder / SELECTION
    if not path.is_file():
        return None
    selection = json.loads(path.read_text())
    return Best(selection["step"], selection["held_out_score"], selection["standard_error"])


def chosen_step(model: str | Path) -> str:
    """What a model folder of an online-RL run is, for a leaderboard: ``best (step N)``, ``final`` or its path."""
    path = Path(model)
    if (path / SELECTION).is_file():
        return f"best (step {json.loads((path / SELECTION).read_text())['step']})"
    return path.name if path.name in ("final", "merged") else str(model)


def mean(values: list[float]) -> float:
    return sum(values) / len(values)
