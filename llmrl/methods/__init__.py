"""The methods llmrl trains with, one entry each: what a method is to the rest of llmrl.

``METHODS`` is the one list. The config's method names and sections, the data each method reads, the memory
estimate, the pipeline's stage order and roles, the report's order, the resume check and the CLI's help all
derive from it. Each entry names the module that trains (``train(cfg) -> Path`` returning ``final/``),
imported only when a run starts, and the TRL config class whose fields the ``trl:`` section may set.

Pure Python: nothing heavy is imported here.
"""

import os
from dataclasses import dataclass

# llmrl pins the TRL version whose experimental trainers (ORPO, CPO for SimPO, online DPO) its tests run, so
# TRL's warning on importing trl.experimental says nothing to a user
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
ONLINE_SECTIONS = ("rl", "rewards", "reward_weights", "reward_fns")  # what every online method reads


@dataclass(frozen=True)
class Method:
    module: str  # the module with train(cfg)
    kind: str  # the data it reads: sft, preference, kto (unpaired or pairs) or prompt (generates answers)
    trainer: str  # the trainer, as the README's table names it
    trl_config: str | None  # "module:Class" of the TRL config that `trl:` keys go to (None: llmrl's own loop)
    sections: tuple[str, ...] = ()  # the config sections it reads besides the shared keys
    reference: bool = False  # keeps a frozen copy of the starting policy (memory)
    pairs: bool = False  # chosen and rejected go through the model in one forward pass (memory)
    online: bool = False  # generates completions while it trains (reads rl.* and rewards)
    starts_from_sft: bool = True  # in a pipeline, starts from the SFT stage's model when there is one
    rewarded_by_reward_model: bool = False  # in a pipeline, scored by the reward stage's model unless told
    policy: bool = True  # trains a policy that eval compares (a reward model is not one)


METHODS = {  # in pipeline order
    "sft": Method("llmrl.methods.sft", "sft", "SFTTrainer", "trl:SFTConfig", ("sft",), starts_from_sft=False),
    "distill": Method("llmrl.methods.distill", "prompt", "DistillationTrainer", "trl:DistillationConfig",
                      ("distill",), reference=True),  # the teacher's copy counts as a reference's
    "reward": Method("llmrl.methods.reward", "preference", "RewardTrainer", "trl:RewardConfig", ("reward",),
                     pairs=True, policy=False),
    "dpo": Method("llmrl.methods.dpo", "preference", "DPOTrainer", "trl:DPOConfig", ("dpo",), reference=True,
                  pairs=True),
    "kto": Method("llmrl.methods.kto", "kto", "KTOTrainer", "trl:KTOConfig", ("kto",), reference=True),
    "orpo": Method("llmrl.methods.orpo", "preference", "ORPOTrainer (trl.experimental)",
                   "trl.experimental.orpo:ORPOConfig", ("orpo",), pairs=True),
    "simpo": Method("llmrl.methods.simpo", "preference", "CPOTrainer, SimPO loss (trl.experimental)",
                    "trl.experimental.cpo:CPOConfig", ("simpo",), pairs=True),
    "online_dpo": Method("llmrl.methods.online_dpo", "prompt", "OnlineDPOTrainer (trl.experimental)",
                         "trl.experimental.online_dpo:OnlineDPOConfig", ("online_dpo", *ONLINE_SECTIONS),
                         reference=True, online=True),
    "grpo": Method("llmrl.methods.grpo", "prompt", "GRPOTrainer", "trl:GRPOConfig", ONLINE_SECTIONS,
                   reference=True, online=True),
    "rloo": Method("llmrl.methods.rloo", "prompt", "RLOOTrainer", "trl:RLOOConfig", ONLINE_SECTIONS,
                   reference=True, online=True, rewarded_by_reward_model=True),
    "ppo": Method("llmrl.methods.ppo", "prompt", "llmrl's PPOTrainer", None, ("ppo", *ONLINE_SECTIONS),
                  reference=True, online=True, rewarded_by_reward_model=True),
}  # fmt: skip
ONLINE_METHODS = tuple(name for name, method in METHODS.items() if method.online)
