"""Every YAML under configs/ loads and validates (torchtune-style config test)."""

from pathlib import Path

import pytest

from llmrl.config import load_config

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))  # pipelines: test_pipeline.py


def test_configs_exist():
    assert CONFIGS


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_is_valid(path):
    cfg = load_config(path)
    assert cfg.model and cfg.dataset
