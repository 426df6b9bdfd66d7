"""Online DPO: for each prompt the policy samples two answers, the run's rewards pick the better one, and a
DPO step follows, with TRL's ``OnlineDPOTrainer`` (``trl.experimental``, pinned by llmrl's TRL version and
tested). Rewards are any specs of ``rewards`` (``accuracy``, ``reward_model:PATH``, ``api:URL``, ...), as for
GRPO; sampling follows ``rl.*``. The reference is the starting policy.

    llmrl train --method online_dpo --model runs/sft/final --dataset builtin:prompts --set rewards=[accuracy]
"""

from pathlib import Path

from trl.experimental.online_dpo import OnlineDPOConfig, OnlineDPOTrainer

from llmrl.config import TrainingConfig
from llmrl.data import prepare_train_eval
from llmrl.training import (
    load_model,
    load_tokenizer,
    online_rewards,
    peft_config,
    train_and_save,
    trl_config,
)


def train(cfg: TrainingConfig) -> Path:
    return train_and_save(build_trainer(cfg), cfg)


def build_trainer(cfg: TrainingConfig) -> OnlineDPOTrainer:
    tokenizer = load_tokenizer(cfg)
    train_dataset, eval_dataset, report = prepare_train_eval(cfg, tokenizer, "prompt")
    reward_funcs, weights = online_rewards(cfg, tokenizer)
    args = trl_config(
        cfg,
        OnlineDPOConfig,
        max_new_tokens=cfg.rl.max_completion_length,
        max_length=report.max_length + cfg.rl.max_completion_length,  # the prompt and its answer
        temperature=cfg.rl.temperature,
        top_p=cfg.rl.top_p,
        beta=[cfg.online_dpo.beta],
        loss_type=cfg.online_dpo.loss_type,
        reward_weights=weights,
        use_vllm=cfg.rl.use_vllm,
        vllm_mode=cfg.rl.vllm_mode,
        vllm_server_base_url=cfg.rl.vllm_server_base_url,
    )
    return OnlineDPOTrainer(
        model=load_model(cfg),
        reward_funcs=reward_funcs,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=peft_config(cfg),
    )
