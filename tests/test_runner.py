"""Run management: output folders, what --overwrite keeps until the new run trains, and run_info hygiene."""

import json

from helpers import tiny_train_args
from typer.testing import CliRunner

from llmrl.cli import app
from llmrl.runner import redact

runner = CliRunner()


def test_redact_hides_secret_looking_values():
    config = {"model": "m", "judge": {"api_key": "sk-123", "key_env": None}, "hf_token": "hf_x", "lora": {"r": 4}}
    assert redact(config) == {
        "model": "m",
        "judge": {"api_key": "***", "key_env": None},
        "hf_token": "***",
        "lora": {"r": 4},
    }


def test_home_in_output_dir_keeps_the_run_in_one_folder(tmp_path, monkeypatch, chat_jsonl):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    result = runner.invoke(
        app,
        tiny_train_args(str(chat_jsonl), "~/run", "--max-steps", "1"),
    )
    assert result.exit_code == 0, result.output
    run = tmp_path / "home" / "run"
    assert {"final", "checkpoint-1", "metrics.jsonl", "run_info.json", "train.log"} <= {p.name for p in run.iterdir()}
    assert not (tmp_path / "~").exists()


def test_overwrite_never_touches_other_files(tmp_path, chat_jsonl):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "runs").mkdir()  # e.g. other runs kept under the output folder
    args = tiny_train_args(
        str(chat_jsonl),
        str(out),
        "--max-steps",
        "1",
    )
    assert runner.invoke(app, args).exit_code == 0
    assert runner.invoke(app, [*args, "--overwrite"]).exit_code == 0
    assert (out / "notes.txt").read_text() == "mine" and (out / "runs").is_dir()
    assert json.loads((out / "run_info.json").read_text())["config"]["overwrite"] is True


def test_tensorboard_files_go_into_the_run(tmp_path, chat_jsonl):
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        tiny_train_args(
            str(chat_jsonl),
            str(out),
            "--max-steps",
            "2",
            "--set",
            "logging_steps=1",
            "--set",
            "report_to=[tensorboard]",
        ),
    )
    assert result.exit_code == 0, result.output
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = list((out / "tensorboard").rglob("events.out.tfevents.*"))
    assert events
    accumulator = EventAccumulator(str(events[0].parent))
    accumulator.Reload()
    assert "train/loss" in accumulator.Tags()["scalars"]
    assert [e.step for e in accumulator.Scalars("train/loss")] == [1, 2]


def test_several_processes_need_an_output_dir(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    result = runner.invoke(app, ["train", "--model", "builtin:tiny", "--dataset", "builtin:sft"])
    assert result.exit_code == 2 and "with several processes, name the run's folder" in result.output
