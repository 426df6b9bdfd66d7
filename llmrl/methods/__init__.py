"""One module per training method. Each exposes ``train(cfg: TrainingConfig) -> Path`` returning ``final/``.

``IMPLEMENTED`` maps a method name to its module; the other names in ``llmrl.config.METHODS`` are planned
and rejected with a clear error until their module lands. Modules are imported only when a run starts.
"""

IMPLEMENTED = {
    "sft": "llmrl.methods.sft",
    "reward": "llmrl.methods.reward",
    "dpo": "llmrl.methods.dpo",
    "kto": "llmrl.methods.kto",
    "grpo": "llmrl.methods.grpo",
    "rloo": "llmrl.methods.rloo",
}
