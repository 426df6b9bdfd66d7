"""llmrl pipeline and report: stages feeding each other, run folders, resume after failure, tracking, .env."""

import json
import os
import re

import pytest
import yaml
from typer.testing import CliRunner

from llmrl.cli import app
from llmrl.dotenv import load_dotenv
from llmrl.pipeline import new_run_dir

runner = CliRunner()


def write_pipeline(tmp_path, dpo_dataset="builtin:preference", **extra_stages):
    pipeline = {
        "name": "tiny",
        "defaults": {
            "model": "builtin:tiny",
            "logging_steps": 1,
            "save_steps": 1,
            "learning_rate": 1e-2,
            "report_to": ["tensorboard"],
        },
        "stages": {
            "sft": {"dataset": "builtin:sft", "max_steps": 3},
            "ppo": {
                "dataset": "builtin:prompts",
                "max_steps": 2,
                "rewards": ["length"],
                "rl": {"max_completion_length": 4},
            },
            "dpo": {"dataset": dpo_dataset, "max_steps": 2},
            "eval": {"judge": "accuracy", "dataset": "builtin:prompts", "num_prompts": 4, "max_new_tokens": 6},
            **extra_stages,
        },
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(pipeline))
    return path


def test_run_ids_are_unique_and_dated(tmp_path):
    runs = {new_run_dir(tmp_path / "runs") for _ in range(20)}
    assert len(runs) == 20
    assert all(re.fullmatch(r"\d{8}_\d{6}_[0-9a-f]{4}", run.name) for run in runs)


def test_pipeline_stages_feed_each_other_and_report(tmp_path):
    run = tmp_path / "run"
    result = runner.invoke(app, ["pipeline", "--config", str(write_pipeline(tmp_path)), "--run-dir", str(run)])
    assert result.exit_code == 0, result.output
    info = json.loads((run / "run_info.json").read_text())
    assert [(s, r["status"]) for s, r in info["stages"].items()] == [
        ("sft", "completed"),
        ("dpo", "completed"),
        ("ppo", "completed"),
        ("eval", "completed"),
    ]
    assert all(r["wall_seconds"] >= 0 for r in info["stages"].values())
    dpo_info = json.loads((run / "dpo" / "run_info.json").read_text())
    assert dpo_info["config"]["model"] == str(run / "sft" / "final")  # SFT's output starts DPO
    sft = str(run / "sft" / "final")
    for policy, reference in (("sft", "builtin:tiny"), ("dpo", sft), ("ppo", sft)):
        results = json.loads((run / "eval" / policy / "results.json").read_text())  # every policy, by default
        assert results["model"] == str(run / policy / "final") and results["reference"] == reference
        assert (run / "eval" / policy / "samples.jsonl").is_file()
    leaderboard = json.loads((run / "eval" / "leaderboard.json").read_text())
    assert [row["policy"] for row in leaderboard] == ["sft", "dpo", "ppo"]
    assert all(row["judge"] == "accuracy" and len(row["reward_improvement"]["ci95"]) == 2 for row in leaderboard)
    ppo_info = json.loads((run / "ppo" / "run_info.json").read_text())
    assert ppo_info["config"]["model"] == str(run / "sft" / "final")

    events = (run / "events.log").read_text()
    for line in ("stage sft: started", "stage dpo: finished", "stage eval: finished", "checkpoint saved"):
        assert line in events
    assert (run / "console.log").stat().st_size > 0
    assert info["versions"]["trl"] and "git_commit" in info
    for stage in ("sft", "dpo", "eval"):  # logs per stage too
        assert (run / stage / "console.log").stat().st_size > 0
        assert (run / stage / "events.log").is_file()
    assert "checkpoint saved" in (run / "sft" / "events.log").read_text()
    assert "llmrl run summary" in result.output

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = {"sft": "train/loss", "dpo": "train/rewards/margins", "ppo": "ppo/score", "eval/ppo": "eval/win_rate"}
    for stage, tag in tags.items():  # TensorBoard files per stage, read back with TensorBoard's own reader
        accumulator = EventAccumulator(str(next((run / stage / "tensorboard").rglob("events.out.*")).parent))
        accumulator.Reload()
        assert tag in accumulator.Tags()["scalars"], (stage, accumulator.Tags()["scalars"])

    report = runner.invoke(app, ["report", str(run)])
    assert report.exit_code == 0, report.output
    for stage in ("sft", "dpo", "ppo"):
        png = run / "plots" / f"{stage}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "leaderboard" in report.output and "improvement" in report.output

    overlay = runner.invoke(app, ["report", str(run), str(run)])
    assert overlay.exit_code == 0, overlay.output


def test_a_failed_stage_stops_the_pipeline_and_resume_finishes_it(tmp_path):
    run = tmp_path / "run"
    (tmp_path / "pairs.jsonl").write_text('{"question": "Q?", "reply": "A"}\n')  # no preference schema: fixed below
    broken = write_pipeline(tmp_path, dpo_dataset=str(tmp_path / "pairs.jsonl"))
    result = runner.invoke(app, ["pipeline", "--config", str(broken), "--run-dir", str(run)])
    assert result.exit_code == 2 and "no preference schema matches" in result.output
    info = json.loads((run / "run_info.json").read_text())
    assert info["stages"]["sft"]["status"] == "completed" and info["stages"]["dpo"]["status"] == "failed"
    assert "eval" not in info["stages"]
    sft_weights = (run / "sft" / "final" / "model.safetensors").read_bytes()

    rows = [{"prompt": f"Q{i}?", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(16)]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    resumed = runner.invoke(app, ["pipeline", "--resume", str(run)])
    assert resumed.exit_code == 0, resumed.output
    info = json.loads((run / "run_info.json").read_text())
    assert [r["status"] for r in info["stages"].values()] == ["completed"] * 4
    assert "stage sft: finished in an earlier attempt, skipped" in (run / "events.log").read_text()
    assert (run / "sft" / "final" / "model.safetensors").read_bytes() == sft_weights
    report = runner.invoke(app, ["report", str(run)])
    assert report.exit_code == 0


def test_a_missing_dataset_of_a_later_stage_stops_the_pipeline_before_it_starts(tmp_path):
    run = tmp_path / "run"
    broken = write_pipeline(tmp_path, dpo_dataset=str(tmp_path / "missing.jsonl"))
    result = runner.invoke(app, ["pipeline", "--config", str(broken), "--run-dir", str(run)])
    assert result.exit_code == 2 and "dataset file or folder not found" in result.output
    assert not run.exists()


def test_report_lists_a_failed_stage(tmp_path):
    run = tmp_path / "run"
    (tmp_path / "odd.jsonl").write_text('{"question": "Q?", "reply": "A"}\n')
    broken = write_pipeline(tmp_path, dpo_dataset=str(tmp_path / "odd.jsonl"))
    runner.invoke(app, ["pipeline", "--config", str(broken), "--run-dir", str(run)])
    report = runner.invoke(app, ["report", str(run)])
    assert report.exit_code == 0, report.output
    assert "failed" in report.output and "dpo" in report.output


def test_stages_without_sft_start_from_the_default_model(tmp_path):
    run = tmp_path / "run"
    result = runner.invoke(
        app, ["pipeline", "--config", str(write_pipeline(tmp_path)), "--stages", "dpo", "--run-dir", str(run)]
    )
    assert result.exit_code == 0, result.output
    assert json.loads((run / "dpo" / "run_info.json").read_text())["config"]["model"] == "builtin:tiny"
    resumed = runner.invoke(app, ["pipeline", "--resume", str(run)])  # keeps the stages the run started with
    assert resumed.exit_code == 0, resumed.output
    assert sorted(json.loads((run / "run_info.json").read_text())["stages"]) == ["dpo"]


def test_lora_stages_hand_on_a_merged_model_even_after_an_interrupted_merge(tmp_path):
    import shutil

    run = tmp_path / "run"
    config = write_pipeline(tmp_path)
    data = yaml.safe_load(config.read_text())
    data["stages"]["sft"]["lora"] = {"enabled": True, "r": 4}
    del data["stages"]["ppo"], data["stages"]["eval"]
    config.write_text(yaml.safe_dump(data))
    assert runner.invoke(app, ["pipeline", "--config", str(config), "--run-dir", str(run)]).exit_code == 0
    assert (run / "sft" / "merged" / "model.safetensors").is_file()
    assert json.loads((run / "dpo" / "run_info.json").read_text())["config"]["model"] == str(run / "sft" / "merged")
    shutil.rmtree(run / "sft" / "merged")  # as if the run had died between training and merging
    shutil.rmtree(run / "dpo")
    result = runner.invoke(app, ["pipeline", "--resume", str(run)])
    assert result.exit_code == 0, result.output
    assert (run / "sft" / "merged" / "model.safetensors").is_file() and (run / "dpo" / "final").is_dir()


def test_resume_continues_an_interrupted_stage_from_its_checkpoint(tmp_path):
    import shutil

    run = tmp_path / "run"
    config = write_pipeline(tmp_path)
    assert runner.invoke(app, ["pipeline", "--config", str(config), "--run-dir", str(run)]).exit_code == 0
    # as if the machine died during DPO after its first checkpoint
    shutil.rmtree(run / "dpo" / "final")
    shutil.rmtree(run / "dpo" / "checkpoint-2")
    shutil.rmtree(run / "eval")
    result = runner.invoke(app, ["pipeline", "--resume", str(run)])
    assert result.exit_code == 0, result.output
    assert "resuming from" in (run / "dpo" / "train.log").read_text()
    steps = [json.loads(line)["step"] for line in (run / "dpo" / "metrics.jsonl").read_text().splitlines()]
    assert steps.count(2) >= 1 and steps.count(1) == 1 and (run / "eval" / "leaderboard.json").is_file()


def test_pipeline_stages_option_and_bad_pipelines(tmp_path):
    config = write_pipeline(tmp_path)
    result = runner.invoke(app, ["pipeline", "--config", str(config), "--stages", "sft,rloo"])
    assert result.exit_code == 2 and "--stages names rloo" in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("stages:\n  sft: {dataset: builtin:sft, lerning_rate: 1}\n")
    result = runner.invoke(app, ["pipeline", "--config", str(bad)])
    assert result.exit_code == 2 and "pipeline stage 'sft': unknown config key 'lerning_rate'" in result.output
    bad.write_text("stages:\n  sft: {dataset: builtin:sft, judge: accuracy}\n")
    result = runner.invoke(app, ["pipeline", "--config", str(bad)])
    assert result.exit_code == 2 and "stage 'sft' has eval-only keys ['judge']" in result.output
    bad.write_text("stages:\n  sft: {dataset: builtin:sft}\n  eval: {judge: accuracy, policy: sft}\n")
    result = runner.invoke(app, ["pipeline", "--config", str(bad)])
    assert result.exit_code == 2 and "'policy' is now 'policies'" in result.output
    bad.write_text(
        "stages:\n  sft: {dataset: builtin:sft, model: builtin:tiny}\n"
        "  eval: {judge: accuracy, policies: [sft, grpo]}\n"
    )
    result = runner.invoke(app, ["pipeline", "--config", str(bad)])
    assert result.exit_code == 2
    assert "policies names grpo, which is not a policy stage of this pipeline" in result.output
    bad.write_text("stages:\n  sfft: {}\n")
    result = runner.invoke(app, ["pipeline", "--config", str(bad)])
    assert result.exit_code == 2 and "unknown stage 'sfft'" in result.output


@pytest.mark.parametrize(
    "path",
    sorted((__import__("pathlib").Path(__file__).parent.parent / "configs" / "pipelines").glob("*.yaml")),
    ids=lambda p: p.stem,
)
def test_every_pipeline_preset_is_valid(path):
    from llmrl.pipeline import load_pipeline

    pipeline = load_pipeline(path)
    assert pipeline.selected


def test_dotenv(tmp_path, monkeypatch):
    env = tmp_path / ".env"
    env.write_text(
        "\ufeffWANDB_PROJECT=from-dotenv  # a comment\nexport HF_TOKEN='hf_secret' # mine\nEMPTY=\n"
        'not a line\nALREADY=from-file\nHASH="a # b"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("ALREADY", "from-shell")
    for key in ("WANDB_PROJECT", "HF_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.delenv("HASH", raising=False)
    assert sorted(load_dotenv(env)) == ["HASH", "HF_TOKEN", "WANDB_PROJECT"]
    assert os.environ["HASH"] == "a # b"  # quoted values are kept whole
    assert os.environ["WANDB_PROJECT"] == "from-dotenv" and os.environ["HF_TOKEN"] == "hf_secret"
    assert os.environ["ALREADY"] == "from-shell"  # the environment wins over the file
    assert load_dotenv(tmp_path / "missing.env") == []


def test_wandb_offline_run_files(tmp_path, monkeypatch, chat_jsonl):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "train",
            "--model",
            "builtin:tiny",
            "--dataset",
            str(chat_jsonl),
            "--output-dir",
            str(out),
            "--max-steps",
            "2",
            "--set",
            "logging_steps=1",
            "--set",
            "report_to=[wandb]",
            "--set",
            "project=llmrl-tests",
        ],
    )
    assert result.exit_code == 0, result.output
    (run_dir,) = (out / "wandb").glob("offline-run-*")  # W&B's files stay with the run
    (records,) = run_dir.glob("run-*.wandb")
    # wandb 0.31 ships no reader for its offline log; its protobuf records hold these strings as they are
    content = records.read_bytes()
    assert b"llmrl-tests" in content and b"train/loss" in content and b"train/learning_rate" in content
