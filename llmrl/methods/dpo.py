"""Direct preference optimization: move a policy towards chosen and away from rejected answers, with TRL's
``DPOTrainer``.

The reference model is the starting policy (usually an SFT output): TRL loads a frozen copy of it, or, with
LoRA, uses the policy with its adapters switched off. Logs rewards/chosen, rewards/rejected,
rewards/accuracies and rewards/margins.

    llmrl train --method dpo --model runs/sft/final --dataset ultrafeedback --output-dir runs/dpo --set dpo.beta=0.1
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING

from llmrl.data import prepare_train_eval
from llmrl.loading import load_model, load_tokenizer, peft_config
from llmrl.options import check, option
from llmrl.padding_free import make_padding_free
from llmrl.trl_args import group_pairs_by_length, trl_config

if TYPE_CHECKING:
    from llmrl.config import TrainingConfig

LOSSES = (  # TRL's DPOConfig.loss_type values
    "sigmoid",
    "hinge",
    "ipo",
    "exo_pair",
    "nca_pair",
    "robust",
    "bco_pair",
    "sppo_hard",
    "aot",
    "aot_unpaired",
    "apo_zero",
    "apo_down",
    "discopop",
    "sft",
    "sigmoid_norm",
)


@dataclass
class DPOOptions:
    """Options of direct preference optimization (``--method dpo``)."""

    beta: float = option(0.1, "how far the policy may move from the reference: higher stays closer", trl="beta")
    loss_type: list[str] = option(["sigmoid"], "one or more of TRL's DPO losses (dpo.LOSSES)", trl="loss_type")
    label_smoothing: float = option(
        0.0, "robust DPO: the assumed probability that a preference label is flipped", trl="label_smoothing"
    )
    precompute_ref_log_probs: bool = option(
        False, "score the data with the reference once, then free it", trl="precompute_ref_log_probs"
    )

    def __post_init__(self):
        check(self.beta > 0, "dpo.beta", self.beta, "> 0")
        unknown = [loss for loss in self.loss_type if loss not in LOSSES]
        check(bool(self.loss_type) and not unknown, "dpo.loss_type", self.loss_type, f"any of {', '.join(LOSSES)}")
        check(0 <= self.label_smoothing < 0.5, "dpo.label_smoothing", self.label_smoothing, "in [0, 0.5)")


def build_trainer(cfg: "TrainingConfig"):
    from trl import DPOConfig, DPOTrainer

    tokenizer = load_tokenizer(cfg)
    train_dataset, eval_dataset, report = prepare_train_eval(cfg, tokenizer, "preference")
    args = trl_config(cfg, DPOConfig, cfg.dpo, max_length=report.max_length, dataset_num_proc=1)
    trainer = DPOTrainer(
        model=load_model(cfg, tokenizer),
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=peft_config(cfg),
    )
    packed = make_padding_free(trainer, cfg.padding_free, cfg.model)
    rows = trainer.train_dataset
    pairs = zip(rows["prompt_ids"], rows["chosen_ids"], rows["rejected_ids"], strict=True)
    group_pairs_by_length(
        trainer, [(len(p) + len(c), len(p) + len(r)) for p, c, r in pairs], cfg.group_by_length, packed
    )
    return trainer
