"""Kahneman-Tversky optimization: learn from answers marked good or bad one at a time, with TRL's
``KTOTrainer``.

Takes unpaired data (``prompt``, ``completion``, ``label``) or any preference pairs, which TRL splits into
one good and one bad example each. Like DPO, the reference model is the starting policy.

    llmrl train --method kto --model runs/sft/final --dataset builtin:preference --output-dir runs/kto
"""

from pathlib import Path

from trl import KTOConfig, KTOTrainer

from llmrl.config import TrainingConfig
from llmrl.data import prepare_train_eval
from llmrl.training import load_model, load_tokenizer, peft_config, train_and_save, trl_config


def train(cfg: TrainingConfig) -> Path:
    return train_and_save(build_trainer(cfg), cfg)


def build_trainer(cfg: TrainingConfig) -> KTOTrainer:
    tokenizer = load_tokenizer(cfg)
    train_dataset, eval_dataset, report = prepare_train_eval(cfg, tokenizer, "kto")
    args = trl_config(
        cfg,
        KTOConfig,
        max_length=report.max_length,
        beta=cfg.kto.beta,
        loss_type=cfg.kto.loss_type,
        desirable_weight=cfg.kto.desirable_weight,
        undesirable_weight=cfg.kto.undesirable_weight,
        precompute_ref_log_probs=cfg.kto.precompute_ref_log_probs,
        dataset_num_proc=1,
    )
    return KTOTrainer(
        model=load_model(cfg),
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=peft_config(cfg),
    )
