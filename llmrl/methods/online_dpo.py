"""Online DPO: for each prompt the policy samples two answers, the run's rewards pick the better one, and a
DPO step follows, with TRL's ``OnlineDPOTrainer`` (``trl.experimental``, pinned by llmrl's TRL version and
tested). Rewards are any specs of ``rewards`` (``accuracy``, ``reward_model:PATH``, ``api:URL``, ...), as for
GRPO; sampling follows ``rl.*``. The reference is the starting policy.

    llmrl train --method online_dpo --model runs/sft/final --dataset builtin:prompts --set rewards=[accuracy]
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING

from llmrl.data import prepare_train_eval
from llmrl.generation import task_eval, with_task_eval
from llmrl.loading import load_model, load_tokenizer, peft_config
from llmrl.options import check, option
from llmrl.trl_args import online_rewards, trl_config

if TYPE_CHECKING:
    from llmrl.config import TrainingConfig


@dataclass
class OnlineDPOOptions:
    """Options of online DPO (``--method online_dpo``): two answers sampled per prompt, the one the rewards
    score higher is chosen, then a DPO step; sampling and rewards come from ``rl.*`` and ``rewards``."""

    beta: float = option(0.1, "how far the policy may move from the reference: higher stays closer")
    loss_type: str = option("sigmoid", "sigmoid (DPO) or ipo", trl="loss_type")

    def __post_init__(self):
        check(self.beta > 0, "online_dpo.beta", self.beta, "> 0")
        check(self.loss_type in ("sigmoid", "ipo"), "online_dpo.loss_type", self.loss_type, "sigmoid or ipo")


def build_trainer(cfg: "TrainingConfig"):
    from trl.experimental.online_dpo import OnlineDPOConfig, OnlineDPOTrainer

    tokenizer = load_tokenizer(cfg)
    train_dataset, eval_dataset, report = prepare_train_eval(cfg, tokenizer, "prompt")
    reward_funcs, weights = online_rewards(cfg, tokenizer)
    args = trl_config(
        cfg,
        OnlineDPOConfig,
        cfg.online_dpo,
        max_new_tokens=cfg.rl.max_completion_length,
        max_length=report.max_length + cfg.rl.max_completion_length,  # the prompt and its answer
        temperature=cfg.rl.temperature,
        top_p=cfg.rl.top_p,
        beta=[cfg.online_dpo.beta],  # TRL takes a schedule: one value per epoch, the last one kept
        reward_weights=weights,
        use_vllm=cfg.rl.use_vllm,
        vllm_mode=cfg.rl.vllm_mode,
        vllm_server_base_url=cfg.rl.vllm_server_base_url,
        eval_on_start=cfg.eval_split is not None,  # the held-out task metrics before the first update, too
    )
    trainer = with_task_eval(OnlineDPOTrainer)(  # evaluated by the run's rewards on greedy answers to the eval split
        model=load_model(cfg, tokenizer),
        reward_funcs=reward_funcs,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=peft_config(cfg),
    )
    trainer.task_eval = task_eval(cfg, eval_dataset, tokenizer, reward_funcs, weights)
    return trainer
