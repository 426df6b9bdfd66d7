"""The methods llmrl trains with, one entry each: what a method is to the rest of llmrl.

``METHODS`` is the one list. Each entry names the module that owns the method (its options dataclass, its
cross-key checks and ``build_trainer(cfg)``) and what the rest of llmrl needs to know about it: the data it
reads, the TRL config class whose fields ``trl:`` may set, and its memory and pipeline roles. The config's
sections, ``data inspect``, the memory estimate, the pipeline's stage order and roles, the report's order, the
resume check and the CLI's help all derive from it. Adding a method is one module and one entry here.

Light to import: the method modules import TRL, transformers and torch inside their functions.
"""

import os
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

from llmrl.methods import distill, dpo, grpo, kto, online_dpo, orpo, ppo, reward, rloo, sft, simpo
from llmrl.trl_args import check_whole_groups

# llmrl pins the TRL version whose experimental trainers (ORPO, CPO for SimPO, online DPO) its tests run, so
# TRL's warning on importing trl.experimental says nothing to a user
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
ONLINE_SECTIONS = ("rl", "rewards", "reward_weights", "eval_rewards", "reward_fns")  # what every online method reads


@dataclass(frozen=True)
class Method:
    module: ModuleType  # owns the method: build_trainer(cfg), its options, its checks
    kind: str  # the data it reads: sft, preference, kto (unpaired or pairs) or prompt (generates answers)
    trainer: str  # the trainer, as the README's table names it
    trl_config: str | None  # "module:Class" of the TRL config that `trl:` keys go to (None: llmrl's own loop)
    options: type | None = None  # its config section, named after the method (dpo.beta, ppo.kl_coef, ...)
    shared_sections: tuple[str, ...] = ()  # the shared sections it reads besides the shared keys
    check: Callable | None = None  # checks of a whole config for this method (keys that depend on each other)
    reference: bool = False  # keeps a frozen copy of the starting policy (memory)
    pairs: bool = False  # chosen and rejected go through the model in one forward pass (memory)
    online: bool = False  # generates completions while it trains (reads rl.* and rewards)
    starts_from_sft: bool = True  # in a pipeline, starts from the SFT stage's model when there is one
    rewarded_by_reward_model: bool = False  # in a pipeline, scored by the reward stage's model unless told
    policy: bool = True  # trains a policy that eval compares (a reward model is not one)
    shown: tuple[str, ...] = ("loss",)  # the metrics its progress display shows

    @property
    def name(self) -> str:
        return self.module.__name__.rpartition(".")[2]

    @property
    def sections(self) -> tuple[str, ...]:
        """The config sections it reads: its own (named after it), then the shared ones."""
        return ((self.name,) if self.options else ()) + self.shared_sections


METHODS = {  # in pipeline order
    "sft": Method(sft, "sft", "SFTTrainer", "trl:SFTConfig", sft.SFTOptions, starts_from_sft=False,
                  shown=("loss", "mean_token_accuracy")),
    "distill": Method(distill, "prompt", "DistillationTrainer", "trl:DistillationConfig", distill.DistillOptions,
                      check=distill.check_config, reference=True),  # the teacher's copy counts as a reference's
    "reward": Method(reward, "preference", "RewardTrainer", "trl:RewardConfig", reward.RewardOptions, pairs=True,
                     policy=False, shown=("loss", "accuracy", "margin")),
    "dpo": Method(dpo, "preference", "DPOTrainer", "trl:DPOConfig", dpo.DPOOptions, reference=True, pairs=True,
                  shown=("loss", "rewards/margins", "rewards/accuracies")),
    "kto": Method(kto, "kto", "KTOTrainer", "trl:KTOConfig", kto.KTOOptions, reference=True,
                  shown=("loss", "kl", "rewards/margins")),
    "orpo": Method(orpo, "preference", "ORPOTrainer (trl.experimental)", "trl.experimental.orpo:ORPOConfig",
                   orpo.ORPOOptions, pairs=True, shown=("loss", "rewards/margins", "rewards/accuracies")),
    "simpo": Method(simpo, "preference", "CPOTrainer, SimPO loss (trl.experimental)",
                    "trl.experimental.cpo:CPOConfig", simpo.SimPOOptions, pairs=True,
                    shown=("loss", "rewards/margins", "rewards/accuracies")),
    "online_dpo": Method(online_dpo, "prompt", "OnlineDPOTrainer (trl.experimental)",
                         "trl.experimental.online_dpo:OnlineDPOConfig", online_dpo.OnlineDPOOptions,
                         ONLINE_SECTIONS, reference=True, online=True,
                         shown=("loss", "objective/scores", "rewards/accuracies")),
    "grpo": Method(grpo, "prompt", "GRPOTrainer", "trl:GRPOConfig", None, ONLINE_SECTIONS, check_whole_groups,
                   reference=True, online=True, shown=("reward", "kl", "completions/mean_length")),
    "rloo": Method(rloo, "prompt", "RLOOTrainer", "trl:RLOOConfig", None, ONLINE_SECTIONS, check_whole_groups,
                   reference=True, online=True, rewarded_by_reward_model=True,
                   shown=("reward", "kl", "completions/mean_length")),
    "ppo": Method(ppo, "prompt", "llmrl's PPOTrainer", None, ppo.PPOOptions, ONLINE_SECTIONS, ppo.check_config,
                  reference=True, online=True, rewarded_by_reward_model=True,
                  shown=("score", "kl", "response_length")),
}  # fmt: skip
ONLINE_METHODS = tuple(name for name, method in METHODS.items() if method.online)
METHOD_KINDS = {**{name: method.kind for name, method in METHODS.items()}, "eval": "prompt"}  # for data inspect
