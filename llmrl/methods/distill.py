"""On-policy distillation: the student answers the prompts itself and learns, token by token, the teacher's
distribution on its own answers (a generalized Jensen-Shannon divergence, ``distill.beta``), with TRL's
``DistillationTrainer``. The teacher is ``distill.teacher``: a model folder, hub name or builtin:PRESET that
shares the student's tokenizer.

    llmrl train --method distill --model builtin:tiny --dataset builtin:prompts --set distill.teacher=runs/sft/final
"""

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from llmrl.data import prepare_train_eval
from llmrl.errors import LlmrlError
from llmrl.loading import load_model, load_tokenizer, peft_config
from llmrl.options import check, option
from llmrl.trl_args import trl_config

if TYPE_CHECKING:
    from llmrl.config import TrainingConfig


@dataclass
class DistillOptions:
    """Options of on-policy distillation (``--method distill``): the student answers the prompts and learns
    the teacher's next-token distribution on its own answers (generalized JSD)."""

    teacher: str | None = option(None, "the teacher: a model folder, hub name or builtin:PRESET (needed)")
    beta: float = option(
        0.0, "the divergence: 0 forward KL (measured best, docs/benchmarks.md), 0.5 JSD, 1 reverse KL", trl="beta"
    )
    max_completion_length: int = option(128, "tokens the student generates per prompt", trl="max_completion_length")
    temperature: float = option(1.0, "the student's sampling temperature", trl="temperature")

    def __post_init__(self):
        if self.teacher and self.teacher.startswith("~"):
            self.teacher = os.path.expanduser(self.teacher)
        check(0 <= self.beta <= 1, "distill.beta", self.beta, "in [0, 1]")
        check(self.max_completion_length > 0, "distill.max_completion_length", self.max_completion_length, "> 0")
        check(self.temperature > 0, "distill.temperature", self.temperature, "> 0")


def check_config(cfg: "TrainingConfig") -> None:
    if not cfg.distill.teacher:
        raise LlmrlError("--method distill needs a teacher: --set distill.teacher=MODEL (a folder or hub name)")


def build_trainer(cfg: "TrainingConfig"):
    from trl import DistillationConfig, DistillationTrainer

    tokenizer = load_tokenizer(cfg)
    train_dataset, eval_dataset, _ = prepare_train_eval(cfg, tokenizer, "prompt")
    args = trl_config(cfg, DistillationConfig, cfg.distill)
    return DistillationTrainer(
        model=load_model(cfg, tokenizer),
        teacher_model=load_model(cfg, tokenizer, model=cfg.distill.teacher, frozen=True),
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=peft_config(cfg),
    )
