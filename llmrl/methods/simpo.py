"""SimPO: preference optimization whose reward is the answer's length-normalized log-probability, with a
target margin between chosen and rejected and no reference model, with TRL's ``CPOTrainer`` and its
``simpo`` loss (``trl.experimental``, pinned by llmrl's TRL version and tested). ``simpo.sft_weight`` adds
CPO's NLL term on the chosen answer (0, the default, is SimPO as published).

    llmrl train --method simpo --model runs/sft/final --dataset builtin:preference --set simpo.beta=2.0
"""

from pathlib import Path

from trl.experimental.cpo import CPOConfig, CPOTrainer

from llmrl.config import TrainingConfig
from llmrl.data import prepare_train_eval
from llmrl.training import load_model, load_tokenizer, peft_config, train_and_save, trl_config


def train(cfg: TrainingConfig) -> Path:
    return train_and_save(build_trainer(cfg), cfg)


def build_trainer(cfg: TrainingConfig) -> CPOTrainer:
    tokenizer = load_tokenizer(cfg)
    train_dataset, eval_dataset, report = prepare_train_eval(cfg, tokenizer, "preference")
    args = trl_config(
        cfg,
        CPOConfig,
        max_length=report.max_length,
        loss_type="simpo",
        beta=cfg.simpo.beta,
        simpo_gamma=cfg.simpo.gamma_beta_ratio,
        cpo_alpha=cfg.simpo.sft_weight,
        dataset_num_proc=1,
    )
    return CPOTrainer(
        model=load_model(cfg),
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=peft_config(cfg),
    )
