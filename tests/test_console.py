"""What a person sees (issue 19): plain, greppable lines when the output is not a terminal, third-party noise
kept in the run log, summaries printed once, and ``llmrl runs`` telling running, completed, failed and
interrupted runs apart."""

import json
import os
import signal
import subprocess
import sys
import time

from typer.testing import CliRunner

from llmrl.cli import app
from llmrl.console import Progress

runner = CliRunner()


def llmrl(*args, cwd, **kwargs):
    env = {**os.environ, "COLUMNS": "80"}
    return subprocess.Popen([sys.executable, "-m", "llmrl", *args], cwd=cwd, env=env, text=True, **kwargs)


def test_a_piped_20_step_sft_run_prints_a_few_plain_lines(tmp_path):
    process = llmrl(
        "train", "--model", "builtin:tiny", "--dataset", "builtin:sft", "--max-steps", "20", "--output-dir", "sft",
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output
    lines = output.splitlines()
    assert len(lines) <= 40, output
    assert "\r" not in output and "it/s]" not in output and "{'loss'" not in output, output  # no tqdm, no dicts
    assert any(line.startswith("sft step 20/20 loss ") for line in lines), output
    assert lines[-1] == "final model: sft/final"
    assert all(len(line) < 200 for line in lines)  # one record, one line, never wrapped at 80 columns
    log = (tmp_path / "sft" / "train.log").read_text()
    assert "llmrl.metrics: step 20:" in log and "checkpoint saved" in log  # the details are in the run log


def test_plain_progress_prints_the_first_and_last_step_and_about_five_between(capsys, monkeypatch):
    monkeypatch.delenv("LLMRL_STAGE", raising=False)
    progress = Progress("dpo", 100, ("loss", "rewards/margins"))
    for step in range(1, 101):
        progress.advance(step)
        progress.log(step, {"loss": 1 / step, "rewards/margins": step / 100, "epoch": 0.1})
    progress.log(100, {"eval_loss": 0.5, "eval_runtime": 1.0})
    progress.close()
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("dpo step 1/100 loss 1 margin 0.01 | ")
    assert lines[-2].startswith("dpo step 100/100 loss 0.01 margin 1 | ")
    assert lines[-1].startswith("dpo step 100/100 eval loss 0.5 |")  # an evaluation always has its line
    assert 5 <= len(lines) <= 8


def test_a_small_pipeline_prints_its_summary_once_within_80_columns(tmp_path):
    config = tmp_path / "pipeline.yaml"
    config.write_text(
        "name: small\n"
        "defaults: {model: builtin:tiny, max_steps: 4, logging_steps: 1, per_device_train_batch_size: 4}\n"
        "stages:\n"
        "  sft: {dataset: builtin:sft}\n"
        "  dpo: {dataset: builtin:preference}\n"
        "  eval: {dataset: builtin:prompts, judge: accuracy, num_prompts: 8, max_new_tokens: 4}\n"
    )
    process = llmrl(
        "pipeline", "--config", str(config), "--run-dir", "run", cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    output, _ = process.communicate(timeout=900)
    assert process.returncode == 0, output
    assert output.count("llmrl run summary") == 1 and output.count("leaderboard: run") == 1
    assert "[2/3] dpo step 4/4" in output
    table = output[output.index("llmrl run summary") :].splitlines()
    assert all(len(line) <= 80 for line in table), "\n".join(table)
    assert len(output.splitlines()) <= 60, output


def test_runs_lists_completed_failed_and_interrupted_runs(tmp_path):
    args = ["--model", "builtin:tiny", "--dataset", "builtin:sft"]
    done = runner.invoke(app, ["train", *args, "--max-steps", "2", "--output-dir", str(tmp_path / "runs" / "done")])
    assert done.exit_code == 0, done.output
    bad = ["--set", "learning_rate=1e30", "--set", "max_grad_norm=0", "--set", "save_steps=1"]  # NaN at step 2
    failed = runner.invoke(
        app, ["train", *args, "--max-steps", "3", "--output-dir", str(tmp_path / "runs" / "bad"), *bad]
    )
    assert failed.exit_code != 0

    killed = llmrl(
        "train", *args, "--max-steps", "100000", "--output-dir", "runs/killed", "--set", "save_steps=5",
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    metrics = tmp_path / "runs" / "killed" / "metrics.jsonl"
    deadline = time.monotonic() + 300
    while not (metrics.exists() and metrics.read_text().count("\n") >= 2) and time.monotonic() < deadline:
        time.sleep(0.5)
    running = runner.invoke(app, ["runs", str(tmp_path / "runs")])
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=60)
    assert running.exit_code == 0, running.output
    assert status_of(running.output, "killed") == "running"

    result = runner.invoke(app, ["runs", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    assert status_of(result.output, "done") == "completed"
    assert status_of(result.output, "bad") == "failed"
    assert status_of(result.output, "killed") == "interrupted"  # recorded as running, lock gone: killed
    info = json.loads((tmp_path / "runs" / "killed" / "run_info.json").read_text())
    assert info["status"] == "running"  # what the killed process last wrote
    order = [
        line.split()[0] for line in result.output.splitlines() if line.split()[:1] in (["done"], ["bad"], ["killed"])
    ]
    assert order == ["killed", "bad", "done"]  # newest first


def status_of(output: str, run: str) -> str:
    line = next(line for line in output.splitlines() if line.split()[:1] == [run])
    return line.split()[2]
