"""llmrl: post-train language models from the command line (SFT, reward modeling, DPO, online RL)."""

__version__ = "0.1.0"
