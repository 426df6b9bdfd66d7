"""Odds-ratio preference optimization: one stage that learns the chosen answer (SFT) and, through an
odds-ratio penalty, away from the rejected one, with no reference model, with TRL's ``ORPOTrainer``
(``trl.experimental``, pinned by llmrl's TRL version and tested).

Logs rewards/chosen, rewards/rejected, rewards/accuracies, rewards/margins, nll_loss and log_odds_ratio.

    llmrl train --method orpo --model builtin:small --dataset builtin:preference --set orpo.beta=0.1
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING

from llmrl.data import prepare_train_eval
from llmrl.loading import load_model, load_tokenizer, peft_config
from llmrl.options import check, option
from llmrl.trl_args import trl_config

if TYPE_CHECKING:
    from llmrl.config import TrainingConfig


@dataclass
class ORPOOptions:
    """Options of odds-ratio preference optimization (``--method orpo``): SFT on the chosen answer plus an
    odds-ratio penalty on the rejected one, in one stage and without a reference model."""

    beta: float = option(0.1, "weight of the odds-ratio term (the paper's lambda) beside the SFT loss", trl="beta")

    def __post_init__(self):
        check(self.beta > 0, "orpo.beta", self.beta, "> 0")


def build_trainer(cfg: "TrainingConfig"):
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    tokenizer = load_tokenizer(cfg)
    train_dataset, eval_dataset, report = prepare_train_eval(cfg, tokenizer, "preference")
    args = trl_config(cfg, ORPOConfig, cfg.orpo, max_length=report.max_length, dataset_num_proc=1)
    return ORPOTrainer(
        model=load_model(cfg, tokenizer),
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=peft_config(cfg),
    )
