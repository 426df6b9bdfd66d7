"""TrainingConfig: precedence of the layers, type conversion, and validation errors that name the field."""

import pytest

from llmrl.config import TrainingConfig, load_config, parse_set
from llmrl.errors import LlmrlError


def write(tmp_path, text: str):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


def test_defaults():
    cfg = load_config()
    assert cfg == TrainingConfig()
    assert cfg.method == "sft" and cfg.precision == "auto" and cfg.lora.enabled is False


def test_yaml_overrides_defaults_and_flags_override_yaml(tmp_path):
    path = write(tmp_path, "method: sft\nmodel: from-yaml\nmax_steps: 7\nlearning_rate: 1e-5\nlora:\n  r: 4\n")
    cfg = load_config(path)
    assert (cfg.model, cfg.max_steps, cfg.learning_rate, cfg.lora.r) == ("from-yaml", 7, 1e-5, 4)
    assert cfg.lora.alpha == 32  # untouched keys of a section keep their defaults

    cfg = load_config(path, flags={"model": "from-flag", "max_steps": None}, sets=["lora.r=8", "learning_rate=3e-4"])
    assert cfg.model == "from-flag"  # a named flag beats the YAML
    assert cfg.max_steps == 7  # a flag left unset (None) does not erase the YAML value
    assert cfg.lora.r == 8 and cfg.learning_rate == 3e-4  # --set beats the YAML


def test_set_is_applied_after_named_flags():
    cfg = load_config(flags={"model": "a"}, sets=["model=b"])
    assert cfg.model == "b"


def test_parse_set_keeps_the_raw_text():
    assert parse_set("lora.r=16") == ("lora.r", "16")
    assert parse_set("run_name=a=b") == ("run_name", "a=b")


@pytest.mark.parametrize(
    "item, key, value",
    [
        ("lora.r=16", "lora.r", 16),
        ("lora.enabled=true", "lora.enabled", True),
        ("model=Qwen/Qwen2.5-0.5B", "model", "Qwen/Qwen2.5-0.5B"),
        ("output_dir=", "output_dir", None),
        ("eval_split=null", "eval_split", None),
        ("run_name=a=b", "run_name", "a=b"),
        # text fields keep exactly what was typed, where YAML would read a number, a bool or a time
        ("run_name=007", "run_name", "007"),
        ("data.subset=0123", "data.subset", "0123"),
        ("eval_split=1:30", "eval_split", "1:30"),
        ("run_name=yes", "run_name", "yes"),
        ("data.columns.prompt=0x1F", "data.columns", {"prompt": "0x1F"}),
        ("max_length=auto", "max_length", "auto"),
        ("max_length=512", "max_length", 512),
    ],
)
def test_set_values_are_read_for_their_field(item, key, value):
    cfg = load_config(sets=[item])
    section, _, leaf = key.rpartition(".")
    assert getattr(getattr(cfg, section) if section else cfg, leaf) == value


def test_values_are_converted_to_field_types():
    cfg = load_config(
        sets=[
            "learning_rate=1e-5",
            "num_train_epochs=2",
            "lora.enabled=yes",
            "report_to=tensorboard",
            "lora.target_modules=[q_proj,v_proj]",
            "max_steps=null",
        ]
    )
    assert cfg.learning_rate == 1e-5 and isinstance(cfg.learning_rate, float)
    assert cfg.num_train_epochs == 2.0 and cfg.lora.enabled is True
    assert cfg.report_to == ["tensorboard"]  # a single value becomes a one-item list
    assert cfg.lora.target_modules == ["q_proj", "v_proj"]
    assert cfg.max_steps is None


@pytest.mark.parametrize(
    "sets, message",
    [
        (["lerning_rate=1"], "unknown config key 'lerning_rate'; did you mean 'learning_rate'?"),
        (["lora.rr=4"], "unknown config key 'lora.rr'; did you mean 'lora.r'?"),
        (["nothing_like_this=1"], "unknown config key 'nothing_like_this' (llmrl train --print-config"),
        (["method=dpoo"], "unknown method 'dpoo'; did you mean 'dpo'?"),
        (["learning_rate=-1"], "invalid learning_rate: -1.0 (expected > 0)"),
        (["per_device_train_batch_size=0"], "invalid per_device_train_batch_size: 0 (expected > 0)"),
        (["logging_steps=abc"], "invalid logging_steps: 'abc' (expected an integer)"),
        (["max_length=abc"], "invalid max_length: 'abc' (expected a positive integer or auto)"),
        (["max_length=0"], "invalid max_length: 0 (expected a positive integer or auto)"),
        (["data.columns=prompt"], "invalid data.columns: 'prompt' (expected a mapping"),
        (["data.max_prompt_fraction=0"], "invalid data.max_prompt_fraction: 0.0 (expected in (0, 1])"),
        (["max_steps=2.5"], "invalid max_steps: 2.5 (expected an integer)"),
        (["precision=fp8"], "invalid precision: 'fp8' (expected one of auto, bf16, fp16, fp32)"),
        (["lora.enabled=maybe"], "invalid lora.enabled: 'maybe' (expected true or false)"),
        (["lora.dropout=1.5"], "invalid lora.dropout: 1.5 (expected in [0, 1))"),
        (["report_to=[tensorbord]"], "invalid report_to: ['tensorbord']"),
        (["lora=4"], "'lora' is a section: set its keys"),
        (["eval_split=train"], "eval_split 'train' is the training split"),
        (["no-equals-sign"], "--set expects key=value, got 'no-equals-sign'"),
        (["lr_scheduler_type="], "invalid lr_scheduler_type: null (expected a value)"),
        (["lora.target_modules="], "invalid lora.target_modules: null (expected a value)"),
        (["max_steps=.inf"], "invalid max_steps: inf (expected an integer)"),
        (["num_train_epochs=inf"], "invalid num_train_epochs: 'inf' (expected a number)"),
        (["learning_rate=.nan"], "invalid learning_rate: nan (expected a number)"),
        (["lr_scheduler_type=bogus"], "invalid lr_scheduler_type: 'bogus' (expected one of linear, cosine"),
        (["overwrite=true"], "'overwrite' is a decision about one run: pass --overwrite on the command line"),
        (["resume=true"], "'resume' is a decision about one run: pass --resume on the command line"),
    ],
)
def test_bad_values_name_the_field(sets, message):
    with pytest.raises(LlmrlError) as error:
        load_config(sets=sets)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_malformed_yaml_is_one_line_with_position(tmp_path):
    path = write(tmp_path, "model: a\nlora: [unclosed\n")
    with pytest.raises(LlmrlError, match=r"is not valid YAML \(line \d+, column \d+\)") as error:
        load_config(path)
    assert "\n" not in str(error.value)


def test_yaml_must_be_a_mapping(tmp_path):
    with pytest.raises(LlmrlError, match="must hold a mapping"):
        load_config(write(tmp_path, "- a\n- b\n"))


def test_missing_config_file(tmp_path):
    with pytest.raises(LlmrlError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_yaml_round_trip(tmp_path):
    cfg = load_config(sets=["model=builtin:tiny", "lora.r=4", "report_to=[tensorboard,wandb]"])
    assert load_config(write(tmp_path, cfg.to_yaml())) == cfg


def test_run_flags_are_refused_in_yaml(tmp_path):
    with pytest.raises(LlmrlError, match="'overwrite' is a decision about one run"):
        load_config(write(tmp_path, "overwrite: true\n"))
    assert load_config(flags={"overwrite": True}).overwrite is True


def test_home_is_expanded_in_paths(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    cfg = load_config(sets=["output_dir=~/runs/a", "model=~/m", "dataset=~/d.jsonl", "sft.chat_template_path=~/t"])
    assert (cfg.output_dir, cfg.model, cfg.dataset) == (f"{tmp_path}/runs/a", f"{tmp_path}/m", f"{tmp_path}/d.jsonl")
    assert cfg.sft.chat_template_path == f"{tmp_path}/t"


def test_lr_schedulers_are_transformers_schedulers():
    from transformers.trainer_utils import SchedulerType

    from llmrl.config import LR_SCHEDULERS

    assert set(LR_SCHEDULERS) <= {s.value for s in SchedulerType}


@pytest.mark.parametrize(
    "item, key, expected",
    [
        ('reward_fns.format_pattern="#### -?\\d+$"', "format_pattern", "#### -?\\d+$"),
        ("reward_fns.format_pattern='#### -?\\d+$'", "format_pattern", "#### -?\\d+$"),
        ("data.columns.prompt='instruction'", "prompt", "instruction"),
        ('data.columns.prompt="instruction"', "prompt", "instruction"),
        ("data.columns.prompt='it''s'", "prompt", "it's"),
        ('run_name="a\\tb"', "run_name", "a\tb"),
        ("run_name=007", "run_name", "007"),
        ("run_name=it's", "run_name", "it's"),
        ("run_name='", "run_name", "'"),
    ],
)
def test_set_reads_quoted_text_as_yaml_does(item, key, expected):
    cfg = load_config(sets=[item])
    if key == "prompt":
        assert cfg.data.columns == {"prompt": expected}
    else:
        assert getattr(cfg.reward_fns if key == "format_pattern" else cfg, key) == expected
