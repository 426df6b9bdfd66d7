"""Shared test setup: offline, a private cache, and the built-in tiny model.

Environment variables are set at import time, before any test imports huggingface_hub or datasets,
which read them once.
"""

import json
import os
import tempfile
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ["LLMRL_CACHE"] = tempfile.mkdtemp(prefix="llmrl-test-cache-")

import pytest  # noqa: E402

CHAT_ROWS = [
    {
        "messages": [
            {"role": "user", "content": f"What is {a} + {b}?"},
            {"role": "assistant", "content": f"{a} + {b} = {a + b}\n#### {a + b}"},
        ]
    }
    for a in range(8)
    for b in range(8)
]


@pytest.fixture(scope="session")
def tiny_model_path() -> Path:
    from llmrl.builtin import ensure_builtin

    return ensure_builtin("tiny")


@pytest.fixture(scope="session")
def trained_reward_model(tmp_path_factory):
    """A tiny reward model trained by --method reward to prefer answers that say 'good'."""
    from llmrl.config import load_config
    from llmrl.runner import run_training

    root = tmp_path_factory.mktemp("rm")
    rows = [{"prompt": f"Q{i}?", "chosen": f"good good {i}", "rejected": f"bad bad {i}"} for i in range(64)]
    (root / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run_training(
        load_config(
            sets=[
                "method=reward",
                "model=builtin:tiny",
                f"dataset={root / 'pairs.jsonl'}",
                f"output_dir={root / 'out'}",
                "max_steps=30",
                "learning_rate=5e-3",
            ]
        )
    )


@pytest.fixture
def chat_jsonl(tmp_path) -> Path:
    path = tmp_path / "chat.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in CHAT_ROWS))
    return path


@pytest.fixture(autouse=True)
def _work_in_tmp(tmp_path, monkeypatch):
    """Run every test in its own folder, so default output folders (runs/...) never land in the repo."""
    monkeypatch.chdir(tmp_path)


def pytest_collection_modifyitems(config, items):
    """Skip @pytest.mark.gpu tests on machines without CUDA (CI and every developer machine here)."""
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if not gpu_items:
        return
    import torch

    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA GPU")
        for item in gpu_items:
            item.add_marker(skip)
