"""Reward modeling: train a scalar scorer on preference pairs with TRL's ``RewardTrainer``.

The model is a sequence classifier with one output (the reward), trained so that the chosen answer of each
pair scores above the rejected one (Bradley-Terry loss). It reports pairwise accuracy and mean margin on the
eval split, or on a held-out 10% of the training data when there is none. The saved ``final/`` loads with
``AutoModelForSequenceClassification`` and serves later stages as ``reward_model:PATH``.

    llmrl train --method reward --model runs/sft/final --dataset ultrafeedback --output-dir runs/rm
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING

from llmrl.data import prepare_train_eval
from llmrl.loading import load_model, load_tokenizer, peft_config
from llmrl.options import option
from llmrl.padding_free import make_padding_free
from llmrl.trl_args import group_pairs_by_length, trl_config

if TYPE_CHECKING:
    from llmrl.config import TrainingConfig

DEFAULT_EVAL_FRACTION = 0.1


@dataclass
class RewardOptions:
    """Options of reward modeling (``--method reward``)."""

    center_rewards_coefficient: float | None = option(
        None, "pull rewards towards zero mean (e.g. 0.01)", trl="center_rewards_coefficient"
    )


def build_trainer(cfg: "TrainingConfig"):
    from transformers import AutoModelForSequenceClassification
    from trl import RewardConfig, RewardTrainer

    tokenizer = load_tokenizer(cfg)
    train_dataset, eval_dataset, report = prepare_train_eval(cfg, tokenizer, "preference", DEFAULT_EVAL_FRACTION)
    args = trl_config(cfg, RewardConfig, cfg.reward, max_length=report.max_length, dataset_num_proc=1)
    model = load_model(cfg, tokenizer, AutoModelForSequenceClassification, num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id  # the score is read at the last non-padding token
    trainer = RewardTrainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=peft_config(cfg, task_type="SEQ_CLS"),
    )
    packed = make_padding_free(trainer, cfg.padding_free, cfg.model)
    pairs = zip(trainer.train_dataset["chosen_ids"], trainer.train_dataset["rejected_ids"], strict=True)
    group_pairs_by_length(trainer, [(len(c), len(r)) for c, r in pairs], cfg.group_by_length, packed)
    return trainer
