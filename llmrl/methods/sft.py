"""Supervised fine-tuning: teach a model to answer like the dataset, with TRL's ``SFTTrainer``.

The loss covers only what the model should learn to write: every assistant turn of chat data, or the answer
of prompt/answer data; never the prompt, the system text or the padding. Any SFT schema the data layer
knows (``llmrl data inspect --method sft``) works; plain ``text`` data is trained on in full.

    llmrl train --method sft --model builtin:tiny --dataset builtin:sft --output-dir runs/sft --max-steps 20
"""

import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from llmrl.chat_template import marks_end_of_turn
from llmrl.data import prepare_train_eval
from llmrl.errors import LlmrlError
from llmrl.loading import load_model, load_tokenizer, peft_config
from llmrl.options import option
from llmrl.padding_free import make_padding_free
from llmrl.trl_args import trl_config

if TYPE_CHECKING:
    from llmrl.config import TrainingConfig

logger = logging.getLogger("llmrl")


@dataclass
class SFTOptions:
    """Options of supervised fine-tuning (``--method sft``)."""

    assistant_only_loss: bool | None = option(None, "None: on for chat data (loss on assistant turns only)")
    packing: bool = option(False, "pack several examples into each max_length row (fewer, longer rows)", trl="packing")
    chat_template_path: str | None = option(
        None, "a Jinja file, tokenizer folder or hub name whose chat template (and its tokens) the model learns"
    )

    def __post_init__(self):
        if self.chat_template_path and self.chat_template_path.startswith("~"):
            self.chat_template_path = os.path.expanduser(self.chat_template_path)


def build_trainer(cfg: "TrainingConfig"):
    from trl import SFTConfig, SFTTrainer

    tokenizer = load_tokenizer(cfg)
    train_dataset, eval_dataset, report = prepare_train_eval(cfg, tokenizer, "sft")

    is_chat = "messages" in train_dataset.column_names
    assistant_only_loss = cfg.sft.assistant_only_loss if cfg.sft.assistant_only_loss is not None else is_chat
    if assistant_only_loss and not is_chat:
        raise LlmrlError("sft.assistant_only_loss=true needs multi-turn chat data (a 'messages' column)")
    if assistant_only_loss and not can_mask_assistant_turns(tokenizer):
        logger.warning(
            "the chat template of %s marks no assistant tokens that end with its end-of-turn token "
            "({%% generation %%} markers), and TRL has no training template for it: training on the last "
            "assistant turn of each conversation only (its answer and end of turn)",
            cfg.model,
        )
        train_dataset, eval_dataset = (
            last_turn_only(d) if d is not None else None for d in (train_dataset, eval_dataset)
        )
        assistant_only_loss = False

    args = trl_config(
        cfg,
        SFTConfig,
        cfg.sft,
        max_length=report.max_length,
        assistant_only_loss=assistant_only_loss,
        dataset_num_proc=1,
    )
    trainer = SFTTrainer(
        model=load_model(cfg, tokenizer),
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=peft_config(cfg),
    )
    if not cfg.sft.packing:  # (packed rows of max_length have no padding to remove)
        # rather than TRL's padding-free collator, which lays a whole batch end to end in one row: on SDPA that
        # row's attention costs its length squared, more than the padding it saves (llmrl.padding_free)
        make_padding_free(trainer, cfg.padding_free, cfg.model)
    return trainer


def can_mask_assistant_turns(tokenizer) -> bool:
    """Whether TRL can tell the assistant's tokens apart in this tokenizer's chat template, its end-of-turn
    token included (generation markers that leave it out would teach the model never to end a turn)."""
    from trl.chat_template_utils import get_training_chat_template, has_generation_markers

    if has_generation_markers(tokenizer.chat_template):
        return marks_end_of_turn(tokenizer)
    try:
        get_training_chat_template(tokenizer)
    except Exception:
        return False
    return True


def last_turn_only(dataset):
    """Chat rows as prompt/completion: everything before the last assistant turn is prompt (not trained on)."""

    def split(messages):
        last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
        return {"prompt": messages[:last], "completion": messages[last : last + 1]}

    return dataset.map(split, input_columns="messages", remove_columns=["messages"])
