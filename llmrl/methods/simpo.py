"""SimPO: preference optimization whose reward is the answer's length-normalized log-probability, with a
target margin between chosen and rejected and no reference model, with TRL's ``CPOTrainer`` and its
``simpo`` loss (``trl.experimental``, pinned by llmrl's TRL version and tested). ``simpo.sft_weight`` adds
CPO's NLL term on the chosen answer (0, the default, is SimPO as published).

    llmrl train --method simpo --model runs/sft/final --dataset builtin:preference --set simpo.beta=2.0
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
class SimPOOptions:
    """Options of SimPO (``--method simpo``, TRL's CPO trainer with the SimPO loss): the length-normalized
    log-probability is the reward, with a target margin, and no reference model."""

    beta: float = option(2.0, "reward scale (SimPO's paper uses 2.0 to 2.5)", trl="beta")
    gamma_beta_ratio: float = option(0.5, "target reward margin gamma as a ratio of beta (the paper's gamma / beta)")
    sft_weight: float = option(
        0.0, "weight of an NLL loss on the chosen answer (CPO's alpha; 0: pure SimPO)", trl="cpo_alpha"
    )

    def __post_init__(self):
        check(self.beta > 0, "simpo.beta", self.beta, "> 0")
        check(self.gamma_beta_ratio >= 0, "simpo.gamma_beta_ratio", self.gamma_beta_ratio, ">= 0")
        check(self.sft_weight >= 0, "simpo.sft_weight", self.sft_weight, ">= 0")


def build_trainer(cfg: "TrainingConfig"):
    from trl.experimental.cpo import CPOConfig, CPOTrainer

    tokenizer = load_tokenizer(cfg)
    train_dataset, eval_dataset, report = prepare_train_eval(cfg, tokenizer, "preference")
    args = trl_config(
        cfg,
        CPOConfig,
        cfg.simpo,
        max_length=report.max_length,
        loss_type="simpo",
        simpo_gamma=cfg.simpo.gamma_beta_ratio * cfg.simpo.beta,  # TRL's simpo_gamma is the margin gamma itself
        dataset_num_proc=1,
    )
    return CPOTrainer(
        model=load_model(cfg, tokenizer),
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=peft_config(cfg),
    )
