"""Kahneman-Tversky optimization: learn from answers marked good or bad one at a time, with TRL's
``KTOTrainer``.

Takes unpaired data (``prompt``, ``completion``, ``label``) or any preference pairs, which TRL splits into
one good and one bad example each. Like DPO, the reference model is the starting policy.

    llmrl train --method kto --model runs/sft/final --dataset builtin:preference --output-dir runs/kto
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING

from llmrl.data import prepare_train_eval
from llmrl.loading import load_model, load_tokenizer, peft_config
from llmrl.options import check, option
from llmrl.padding_free import make_padding_free
from llmrl.trl_args import trl_config

if TYPE_CHECKING:
    from llmrl.config import TrainingConfig

LOSSES = ("kto", "apo_zero_unpaired")


@dataclass
class KTOOptions:
    """Options of Kahneman-Tversky optimization (``--method kto``), which learns from unpaired good/bad answers."""

    beta: float = option(0.1, "how far the policy may move from the reference: higher stays closer", trl="beta")
    loss_type: str = option("kto", "kto or apo_zero_unpaired", trl="loss_type")
    desirable_weight: float = option(
        1.0, "weight of the good answers' loss (raise it when they are rarer)", trl="desirable_weight"
    )
    undesirable_weight: float = option(1.0, "weight of the bad answers' loss", trl="undesirable_weight")
    precompute_ref_log_probs: bool = option(
        False, "score the data with the reference once, then free it", trl="precompute_ref_log_probs"
    )

    def __post_init__(self):
        check(self.beta > 0, "kto.beta", self.beta, "> 0")
        check(self.loss_type in LOSSES, "kto.loss_type", self.loss_type, f"one of {', '.join(LOSSES)}")
        check(self.desirable_weight > 0, "kto.desirable_weight", self.desirable_weight, "> 0")
        check(self.undesirable_weight > 0, "kto.undesirable_weight", self.undesirable_weight, "> 0")


def build_trainer(cfg: "TrainingConfig"):
    from trl import KTOConfig, KTOTrainer

    tokenizer = load_tokenizer(cfg)
    train_dataset, eval_dataset, report = prepare_train_eval(cfg, tokenizer, "kto")
    args = trl_config(cfg, KTOConfig, cfg.kto, max_length=report.max_length, dataset_num_proc=1)
    trainer = KTOTrainer(
        model=load_model(cfg, tokenizer),
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=peft_config(cfg),
    )
    make_padding_free(trainer, cfg.padding_free, cfg.model)
    return trainer
