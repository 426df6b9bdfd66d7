"""The command line through its public surface: help, errors as one line, and a fast start."""

import json
import subprocess
import sys

import pytest
from helpers import tiny_train_args
from typer.testing import CliRunner

from llmrl.cli import app

runner = CliRunner()


@pytest.mark.parametrize("command", [[], ["train"], ["init-model"]])
def test_help_of_every_command(command):
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage: llmrl" in result.output


def test_every_command_has_help_text():
    result = runner.invoke(app, ["--help"])
    for command in ("train", "init-model"):
        assert command in result.output


def test_help_does_not_import_heavy_libraries():
    """`--help`, and a mistyped method, answer without importing torch, transformers, datasets or trl."""
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from llmrl.cli import app\n"
        "for args in (['--help'], ['train', '--help'], ['init-model', '--help']):\n"
        "    assert CliRunner().invoke(app, args).exit_code == 0\n"
        "result = CliRunner().invoke(app, ['train', '--method', 'ppoo'])\n"
        "assert result.exit_code == 2 and \"did you mean 'ppo'\" in result.output\n"
        "heavy = ['torch', 'transformers', 'datasets', 'trl', 'peft', 'accelerate']\n"
        "print([m for m in heavy if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--method", "sfft"], "error: unknown method 'sfft'; did you mean 'sft'?"),
        (["train", "--set", "lora.rank=8"], "error: unknown config key 'lora.rank'"),
        (["train", "--set", "learning_rate=-1"], "error: invalid learning_rate: -1.0 (expected > 0)"),
        (["train", "--config", "missing.yaml"], "error: config file not found: missing.yaml"),
        (["train", "--model", "builtin:tiny"], "error: no dataset given: pass --dataset"),
        (
            ["train", "--model", "builtin:huge", "--dataset", "builtin:sft"],
            "error: unknown built-in model 'builtin:huge'",
        ),
        (
            ["train", "--model", "./no/such/model", "--dataset", "builtin:sft"],
            "error: model folder not found: ./no/such/model",
        ),
        (["train", "--model", "builtin:tiny", "--dataset", "missing.jsonl"], "error: dataset file or folder not found"),
        (["init-model", "--preset", "giant", "--output", "m"], "error: unknown built-in model 'builtin:giant'"),
    ],
)
def test_bad_input_is_one_clear_line(args, message):
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_malformed_yaml(tmp_path):
    (tmp_path / "bad.yaml").write_text("model: [oops\n")
    result = runner.invoke(app, ["train", "--config", str(tmp_path / "bad.yaml")])
    assert result.exit_code == 2
    assert "is not valid YAML" in result.output and "Traceback" not in result.output


def test_debug_shows_the_traceback():
    result = runner.invoke(app, ["--debug", "train", "--method", "sfft"])
    assert result.exit_code != 0
    assert result.exception is not None and "unknown method 'sfft'" in str(result.exception)


def test_print_config_shows_precedence(tmp_path):
    (tmp_path / "c.yaml").write_text("model: from-yaml\nmax_steps: 3\nlora:\n  r: 4\n")
    result = runner.invoke(
        app,
        ["train", "--config", str(tmp_path / "c.yaml"), "--model", "from-flag", "--set", "lora.r=8", "--print-config"],
    )
    assert result.exit_code == 0, result.output
    assert "model: from-flag" in result.output and "max_steps: 3" in result.output and "  r: 8" in result.output


def test_method_from_yaml_is_kept_when_no_flag_names_one(tmp_path):
    (tmp_path / "c.yaml").write_text("method: dpo\n")
    result = runner.invoke(app, ["train", "--config", str(tmp_path / "c.yaml"), "--print-config"])
    assert "method: dpo" in result.output


def test_init_model_writes_a_loadable_model(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    result = runner.invoke(app, ["init-model", "--preset", "tiny", "--output", str(tmp_path / "m")])
    assert result.exit_code == 0, result.output
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "m")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "m")
    assert model.config.model_type == "llama"
    assert model.config.eos_token_id == tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert json.loads((tmp_path / "m" / "config.json").read_text())["vocab_size"] == len(tokenizer)


def test_init_model_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "keep.txt").write_text("mine")
    result = runner.invoke(app, ["init-model", "--output", str(tmp_path / "m")])
    assert result.exit_code == 2 and "not an empty folder" in result.output
    assert (tmp_path / "m" / "keep.txt").read_text() == "mine"


def test_the_methods_dict_and_the_modules_are_in_step():
    """Every listed method has its module (named after it, with build_trainer, its options as its own section)
    and every module in llmrl/methods is listed; its TRL config class exists; its sections are config keys."""
    import dataclasses
    import importlib
    import pkgutil

    import llmrl.methods
    from llmrl.config import METHODS as NAMES
    from llmrl.config import TrainingConfig
    from llmrl.methods import METHODS

    assert tuple(METHODS) == NAMES
    modules = {m.name for m in pkgutil.iter_modules(llmrl.methods.__path__)}
    assert modules == set(METHODS), "a module in llmrl/methods is not listed in METHODS, or the other way round"
    fields = {f.name for f in dataclasses.fields(TrainingConfig)}
    for name, method in METHODS.items():
        assert method.module.__name__ == f"llmrl.methods.{name}" and method.name == name
        assert callable(method.module.build_trainer)
        assert set(method.sections) <= fields, name
        if method.options is not None:
            assert method.sections[0] == name and dataclasses.is_dataclass(method.options)
            assert method.options.__module__ == method.module.__name__  # the module owns its options
        if method.trl_config:
            path, _, cls = method.trl_config.partition(":")
            assert dataclasses.is_dataclass(getattr(importlib.import_module(path), cls))


def test_a_run_that_fails_early_leaves_no_folder_behind(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"messages": [}\n')
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["train", "--model", "builtin:tiny", "--dataset", str(tmp_path / "bad.jsonl"), "--output-dir", str(out)]
    )
    assert result.exit_code == 2, result.output
    assert "bad.jsonl: line 1 is not valid JSON" in result.output
    assert "Failed to load JSON" not in result.output  # datasets' own log line is not shown on top
    assert not out.exists()


def test_resume_without_a_checkpoint(tmp_path):
    result = runner.invoke(
        app,
        tiny_train_args(
            "builtin:sft",
            str(tmp_path / "out"),
            "--resume",
        ),
    )
    assert result.exit_code == 2 and "no complete checkpoint-* folder" in result.output


def test_hub_model_offline_is_a_clear_error(tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["train", "--model", "Qwen/Qwen2.5-0.5B", "--dataset", "builtin:sft", "--output-dir", str(out)]
    )
    assert result.exit_code == 2, result.output
    assert "error: could not load the tokenizer of model 'Qwen/Qwen2.5-0.5B'" in result.output
    assert not out.exists()


def test_version():
    from llmrl import __version__

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"llmrl {__version__}"


def test_print_config_explain_shows_every_key_with_its_help_and_default():
    from llmrl.config import TrainingConfig, explain

    result = runner.invoke(app, ["train", "--method", "dpo", "--print-config", "--explain", "--set", "dpo.beta=0.3"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    rows = explain(TrainingConfig())
    assert len(lines) == len(rows) and all(note for _, _, _, note in rows), [k for k, _, _, n in rows if not n]
    assert (
        "dpo.beta = 0.3 (default 0.1)  # how far the policy may move from the reference: higher stays closer" in lines
    )
    assert any(line.startswith("lora.r = 16  # adapter rank") for line in lines)
    assert runner.invoke(app, ["train", "--explain"]).exit_code == 2  # only with --print-config
