"""Direct preference optimization: move a policy towards chosen and away from rejected answers, with TRL's
``DPOTrainer``.

The reference model is the starting policy (usually an SFT output): TRL loads a frozen copy of it, or, with
LoRA, uses the policy with its adapters switched off. Logs rewards/chosen, rewards/rejected,
rewards/accuracies and rewards/margins.

    llmrl train --method dpo --model runs/sft/final --dataset ultrafeedback --output-dir runs/dpo --set dpo.beta=0.1
"""

from pathlib import Path

from trl import DPOConfig, DPOTrainer

from llmrl.config import TrainingConfig
from llmrl.data import prepare_train_eval
from llmrl.training import group_by_length, load_model, load_tokenizer, peft_config, train_and_save, trl_config


def train(cfg: TrainingConfig) -> Path:
    return train_and_save(build_trainer(cfg), cfg)


def build_trainer(cfg: TrainingConfig) -> DPOTrainer:
    tokenizer = load_tokenizer(cfg)
    train_dataset, eval_dataset, report = prepare_train_eval(cfg, tokenizer, "preference")
    args = trl_config(
        cfg,
        DPOConfig,
        max_length=report.max_length,
        beta=cfg.dpo.beta,
        loss_type=cfg.dpo.loss_type,
        label_smoothing=cfg.dpo.label_smoothing,
        precompute_ref_log_probs=cfg.dpo.precompute_ref_log_probs,
        dataset_num_proc=1,
    )
    trainer = DPOTrainer(
        model=load_model(cfg),
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=peft_config(cfg),
    )
    if cfg.group_by_length:  # a pair is padded to the longest prompt + answer of its batch
        rows = trainer.train_dataset
        pairs = zip(rows["prompt_ids"], rows["chosen_ids"], rows["rejected_ids"], strict=True)
        group_by_length(trainer, [len(p) + max(len(c), len(r)) for p, c, r in pairs])
    return trainer
