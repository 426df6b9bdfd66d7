"""llmrl: post-train language models from the command line (SFT, reward modeling, DPO, online RL), or from
Python: ``from llmrl import TrainingConfig, train, run_pipeline, evaluate`` (see ``llmrl.api``).

The functions are imported on first use, so that ``llmrl --help`` stays instant.
"""

__version__ = "0.1.0"
__all__ = ["LlmrlError", "TrainingConfig", "evaluate", "run_pipeline", "train"]


def __getattr__(name: str):
    if name in ("train", "run_pipeline", "evaluate"):
        from llmrl import api

        return getattr(api, name)
    if name == "TrainingConfig":
        from llmrl.config import TrainingConfig

        return TrainingConfig
    if name == "LlmrlError":
        from llmrl.errors import LlmrlError

        return LlmrlError
    raise AttributeError(f"module 'llmrl' has no attribute {name!r}")
