"""One module per training method. Each exposes ``train(cfg: TrainingConfig) -> Path`` returning ``final/``.

``MODULES`` maps a method name (``llmrl train --method NAME``) to its module, imported only when a run starts.
"""

MODULES = {
    "sft": "llmrl.methods.sft",
    "reward": "llmrl.methods.reward",
    "dpo": "llmrl.methods.dpo",
    "kto": "llmrl.methods.kto",
    "grpo": "llmrl.methods.grpo",
    "rloo": "llmrl.methods.rloo",
    "ppo": "llmrl.methods.ppo",
}
