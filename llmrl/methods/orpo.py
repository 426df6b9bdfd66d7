"""Odds-ratio preference optimization: one stage that learns the chosen answer (SFT) and, through an
odds-ratio penalty, away from the rejected one, with no reference model, with TRL's ``ORPOTrainer``
(``trl.experimental``, pinned by llmrl's TRL version and tested).

Logs rewards/chosen, rewards/rejected, rewards/accuracies, rewards/margins, nll_loss and log_odds_ratio.

    llmrl train --method orpo --model builtin:small --dataset builtin:preference --set orpo.beta=0.1
"""

from pathlib import Path

from trl.experimental.orpo import ORPOConfig, ORPOTrainer

from llmrl.config import TrainingConfig
from llmrl.data import prepare_train_eval
from llmrl.training import load_model, load_tokenizer, peft_config, train_and_save, trl_config


def train(cfg: TrainingConfig) -> Path:
    return train_and_save(build_trainer(cfg), cfg)


def build_trainer(cfg: TrainingConfig) -> ORPOTrainer:
    tokenizer = load_tokenizer(cfg)
    train_dataset, eval_dataset, report = prepare_train_eval(cfg, tokenizer, "preference")
    args = trl_config(cfg, ORPOConfig, max_length=report.max_length, beta=cfg.orpo.beta, dataset_num_proc=1)
    return ORPOTrainer(
        model=load_model(cfg),
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=peft_config(cfg),
    )
