"""Group Relative Policy Optimization: sample a group of completions per prompt, score them with the reward
functions, and push the policy towards the completions that beat their group's mean, with TRL's
``GRPOTrainer``.

Prompts come from the data layer (any prompt schema); their other columns (``solution``, ``answer``) reach
the reward functions. Rewards are named by spec strings (``llmrl/rewards.py``).

    llmrl train --method grpo --model runs/sft/final --dataset builtin:prompts --set rewards=[accuracy]
"""

from pathlib import Path

import trl
from trl import GRPOConfig

from llmrl.config import TrainingConfig
from llmrl.data import prepare_train_eval
from llmrl.training import (
    TaskEvalMixin,
    load_model,
    load_tokenizer,
    online_rl_args,
    peft_config,
    task_eval,
    train_and_save,
    trl_config,
)


class GRPOTrainer(TaskEvalMixin, trl.GRPOTrainer):
    """TRL's GRPOTrainer, evaluated by the run's rewards on greedy answers to the eval split."""


def train(cfg: TrainingConfig) -> Path:
    return train_and_save(build_trainer(cfg), cfg)


def build_trainer(cfg: TrainingConfig) -> GRPOTrainer:
    tokenizer = load_tokenizer(cfg)
    train_dataset, eval_dataset, _ = prepare_train_eval(cfg, tokenizer, "prompt")
    rl_args, reward_funcs = online_rl_args(cfg, tokenizer)
    args = trl_config(cfg, GRPOConfig, **rl_args)
    trainer = GRPOTrainer(
        model=load_model(cfg),
        reward_funcs=reward_funcs,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=peft_config(cfg),
    )
    trainer.task_eval = task_eval(cfg, eval_dataset, tokenizer, reward_funcs)
    return trainer
