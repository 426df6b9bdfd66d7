"""Group Relative Policy Optimization: sample a group of completions per prompt, score them with the reward
functions, and push the policy towards the completions that beat their group's mean, with TRL's
``GRPOTrainer``.

Prompts come from the data layer (any prompt schema); their other columns (``solution``, ``answer``) reach
the reward functions. Rewards are named by spec strings (``llmrl/rewards.py``).

    llmrl train --method grpo --model runs/sft/final --dataset builtin:prompts --set rewards=[accuracy]
"""

from typing import TYPE_CHECKING

from llmrl.data import prepare_train_eval
from llmrl.generation import task_eval, with_task_eval
from llmrl.loading import load_model, load_tokenizer, peft_config
from llmrl.padding_free import ONLINE_ROW_LENGTH, make_padding_free
from llmrl.trl_args import online_rl_args, trl_config

if TYPE_CHECKING:
    from llmrl.config import TrainingConfig


def build_trainer(cfg: "TrainingConfig"):
    from trl import GRPOConfig, GRPOTrainer

    tokenizer = load_tokenizer(cfg)
    train_dataset, eval_dataset, _ = prepare_train_eval(cfg, tokenizer, "prompt")
    rl_args, reward_funcs = online_rl_args(cfg, tokenizer)
    args = trl_config(cfg, GRPOConfig, **rl_args)  # before the model: under ZeRO-3 it loads sharded (zero.Init)
    trainer = with_task_eval(GRPOTrainer)(  # evaluated by the run's rewards on greedy answers to the eval split
        model=load_model(cfg, tokenizer),
        reward_funcs=reward_funcs,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=peft_config(cfg),
    )
    make_padding_free(trainer, cfg.padding_free, cfg.model, ONLINE_ROW_LENGTH)  # the log-prob passes
    trainer.task_eval = task_eval(cfg, eval_dataset, tokenizer, reward_funcs, rl_args["reward_weights"])
    return trainer
