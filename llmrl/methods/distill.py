"""On-policy distillation: the student answers the prompts itself and learns, token by token, the teacher's
distribution on its own answers (a generalized Jensen-Shannon divergence, ``distill.beta``), with TRL's
``DistillationTrainer``. The teacher is ``distill.teacher``: a model folder, hub name or builtin:PRESET that
shares the student's tokenizer.

    llmrl train --method distill --model builtin:tiny --dataset builtin:prompts --set distill.teacher=runs/sft/final
"""

import dataclasses
from pathlib import Path

from trl import DistillationConfig, DistillationTrainer

from llmrl.config import TrainingConfig
from llmrl.data import prepare_train_eval
from llmrl.training import load_model, load_tokenizer, peft_config, train_and_save, trl_config


def train(cfg: TrainingConfig) -> Path:
    return train_and_save(build_trainer(cfg), cfg)


def build_trainer(cfg: TrainingConfig) -> DistillationTrainer:
    tokenizer = load_tokenizer(cfg)
    train_dataset, eval_dataset, report = prepare_train_eval(cfg, tokenizer, "prompt")
    args = trl_config(
        cfg,
        DistillationConfig,
        max_completion_length=cfg.distill.max_completion_length,
        temperature=cfg.distill.temperature,
        beta=cfg.distill.beta,
    )
    teacher = load_model(
        dataclasses.replace(cfg, model=cfg.distill.teacher, lora=dataclasses.replace(cfg.lora, enabled=False))
    )
    return DistillationTrainer(
        model=load_model(cfg),
        teacher_model=teacher,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=peft_config(cfg),
    )
