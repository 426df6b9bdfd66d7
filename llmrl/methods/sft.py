"""Supervised fine-tuning: teach a model to answer like the dataset, with TRL's ``SFTTrainer``.

The loss covers only what the model should learn to write: the assistant turns of chat data (``messages``),
or the completion of prompt/completion data; never the prompt, the system text or the padding.

    llmrl train --method sft --model builtin:tiny --dataset builtin:sft --output-dir runs/sft --max-steps 20
"""

from pathlib import Path

from trl import SFTConfig, SFTTrainer
from trl.chat_template_utils import get_training_chat_template, has_generation_markers

from llmrl.config import TrainingConfig
from llmrl.data import load_split
from llmrl.errors import LlmrlError
from llmrl.training import load_causal_lm, load_tokenizer, peft_config, train_and_save, trl_config


def train(cfg: TrainingConfig) -> Path:
    return train_and_save(build_trainer(cfg), cfg)


def build_trainer(cfg: TrainingConfig) -> SFTTrainer:
    train_dataset = load_split(cfg, cfg.split)
    eval_dataset = load_split(cfg, cfg.eval_split) if cfg.eval_split else None
    tokenizer = load_tokenizer(cfg)

    is_chat = "messages" in train_dataset.column_names
    assistant_only_loss = cfg.sft.assistant_only_loss if cfg.sft.assistant_only_loss is not None else is_chat
    if assistant_only_loss:
        check_chat_template(cfg, tokenizer, is_chat)

    args = trl_config(
        cfg,
        SFTConfig,
        max_length=cfg.max_length,
        packing=cfg.sft.packing,
        assistant_only_loss=assistant_only_loss,
        chat_template_path=cfg.sft.chat_template_path,
        dataset_num_proc=1,
    )
    return SFTTrainer(
        model=load_causal_lm(cfg),
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=peft_config(cfg),
    )


def check_chat_template(cfg: TrainingConfig, tokenizer, is_chat: bool) -> None:
    """Fail before training when the loss cannot be limited to the assistant's turns."""
    if not is_chat:
        raise LlmrlError("sft.assistant_only_loss=true needs chat data (a 'messages' column)")
    if cfg.sft.chat_template_path:
        return  # TRL loads and checks the template the user named
    template = tokenizer.chat_template
    if not template:
        raise LlmrlError(
            f"model '{cfg.model}' has no chat template for chat data: set sft.chat_template_path "
            "to a tokenizer folder or Jinja file that has one"
        )
    if has_generation_markers(template):
        return
    try:
        get_training_chat_template(tokenizer)
    except Exception:
        raise LlmrlError(
            f"the chat template of '{cfg.model}' has no {{% generation %}} markers and TRL has no training "
            "template for it, so the loss cannot be limited to assistant turns; set sft.chat_template_path to a "
            "template with the markers, or sft.assistant_only_loss=false to train on whole conversations"
        ) from None
