"""One run per folder (issue 17): a folder in use is locked, a second run refuses naming the holder, a stale
lock is taken over, and --resume refuses a config that changes what the checkpoints mean."""

import json
import os
import subprocess
import sys
from pathlib import Path

from helpers import tiny_train_args
from test_bad_input import assert_one_clear_line, snapshot
from test_reliability import SFT_RUN, start_run, wait_for_checkpoint
from typer.testing import CliRunner

from llmrl.cli import app
from llmrl.runlock import LOCK_FILE, lock_state

runner = CliRunner()
PAIRS = [{"prompt": f"Q{i}?", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(16)]


def hold_lock(folder: Path) -> subprocess.Popen:
    """Another process that holds ``folder``'s lock until it is killed."""
    code = "import sys, time; from llmrl.runlock import RunLock; RunLock(sys.argv[1]).acquire(); print('held'); "
    code += "sys.stdout.flush(); time.sleep(600)"
    process = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_second_run_into_a_folder_in_use_refuses_naming_the_holder(tmp_path, chat_jsonl):
    """An SFT run is training in the folder (a real process); a DPO run into the same folder refuses at once,
    and the SFT run's final model and metrics are its own."""
    out = tmp_path / "run"
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(row) + "\n" for row in PAIRS))
    sft = start_run(chat_jsonl, out, max_steps=150)  # long enough to be training still when the DPO run starts
    try:
        wait_for_checkpoint(sft, out)
        holder = lock_state(out)
        assert holder and holder["pid"] == sft.pid and "train" in holder["command"]

        dpo = runner.invoke(app, tiny_train_args(pairs, out, "--method", "dpo", "--max-steps", "2", "--overwrite"))

        assert_one_clear_line(dpo, [str(out), "in use by another run", f"pid {sft.pid}", "choose another"])
        assert sft.poll() is None, "the SFT run ended before the DPO run was refused: make it longer"
        assert sft.wait(timeout=300) == 0, sft.communicate()[1][-3000:]
    finally:
        sft.kill()
    info = json.loads((out / "run_info.json").read_text())
    assert info["method"] == "sft" and info["status"] == "completed"
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert sorted(set(steps)) == list(range(1, 151))
    assert not (out / LOCK_FILE).exists() and lock_state(out) is None


def test_a_stale_lock_is_taken_over_with_a_warning(tmp_path, chat_jsonl):
    """A lock file left by a process that died (nobody holds it) does not block the next run."""
    out = tmp_path / "run"
    out.mkdir()
    dead = {"pid": 999999, "host": "gone", "command": "llmrl train ...", "started": "2026-01-01T00:00:00+00:00"}
    (out / LOCK_FILE).write_text(json.dumps(dead))

    result = runner.invoke(app, tiny_train_args(chat_jsonl, out, "--max-steps", "1"))

    assert result.exit_code == 0, result.output
    assert "took over the lock" in result.output and "pid 999999" in result.output
    assert (out / "final").is_dir() and not (out / LOCK_FILE).exists()


def test_a_folder_inside_a_locked_run_is_refused(tmp_path, chat_jsonl):
    """A stage folder of a running pipeline (its run folder is locked by another process) cannot be trained
    into; the folder in use is named and nothing is written."""
    pipeline_run = tmp_path / "pipeline_run"
    holder = hold_lock(pipeline_run)
    try:
        result = runner.invoke(app, tiny_train_args(chat_jsonl, pipeline_run / "sft", "--max-steps", "1"))

        assert_one_clear_line(result, [str(pipeline_run), "in use by another run", f"pid {holder.pid}"])
        assert not (pipeline_run / "sft").exists()
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_of_a_killed_run_is_released_by_the_kernel(tmp_path):
    holder = hold_lock(tmp_path / "run")
    assert lock_state(tmp_path / "run")["pid"] == holder.pid
    holder.kill()
    holder.wait()
    assert lock_state(tmp_path / "run") is None


def checkpointed_sft_run(tmp_path: Path, chat_jsonl: Path) -> Path:
    out = tmp_path / "run"
    result = runner.invoke(app, [*tiny_train_args(chat_jsonl, out, "--max-steps", "4"), *SFT_RUN])
    assert result.exit_code == 0, result.output
    return out


def test_resume_refuses_a_different_method_model_or_dataset_and_changes_nothing(tmp_path, chat_jsonl, tiny_model_path):
    out = checkpointed_sft_run(tmp_path, chat_jsonl)
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(row) + "\n" for row in PAIRS))
    before = snapshot(out)
    other_model = tmp_path / "other-model"
    other_model.symlink_to(tiny_model_path)  # the same weights under another name are a different model
    cases = [
        (["--method", "dpo", "--dataset", str(pairs)], ["method 'sft' -> 'dpo'", "dataset", "pairs.jsonl"]),
        (["--model", str(other_model)], ["model 'builtin:tiny' ->", "other-model"]),
        (["--set", "learning_rate=1e-3"], ["learning_rate unset (the default) -> 0.001"]),
        (["--set", "lora.enabled=true"], ["lora.enabled False -> True"]),
    ]
    for extra, words in cases:
        args = ["train", "--model", "builtin:tiny", "--dataset", str(chat_jsonl), "--output-dir", str(out)]
        result = runner.invoke(app, [*args, "--max-steps", "8", *SFT_RUN, *extra, "--resume"])

        line = assert_one_clear_line(result, ["--resume", "differs from the run's", *words])
        assert "max_steps" not in line  # may change on resume
        assert snapshot(out) == before


def test_resume_allows_settings_that_may_change_and_logs_them(tmp_path, chat_jsonl):
    out = checkpointed_sft_run(tmp_path, chat_jsonl)
    relative = os.path.relpath(out)  # the same folder named another way is the same run

    result = runner.invoke(
        app, [*tiny_train_args(chat_jsonl, relative, "--max-steps", "8"), *SFT_RUN, "--set", "save_steps=2", "--resume"]
    )

    assert result.exit_code == 0, result.output
    log = (out / "train.log").read_text()
    assert "resume: max_steps 4 -> 8" in log and "resume: save_steps 4 -> 2" in log
    state = json.loads((out / "checkpoint-8" / "trainer_state.json").read_text())
    assert state["global_step"] == 8


def test_a_resumed_run_waits_for_nobody_once_the_holder_is_gone(tmp_path, chat_jsonl):
    """A run killed with SIGKILL leaves its lock file behind; --resume takes it over and continues."""
    out = tmp_path / "run"
    process = start_run(chat_jsonl, out, max_steps=12)
    wait_for_checkpoint(process, out)
    process.kill()
    process.wait()
    assert (out / LOCK_FILE).exists() and lock_state(out) is None

    result = runner.invoke(app, [*tiny_train_args(chat_jsonl, out, "--max-steps", "12"), *SFT_RUN, "--resume"])

    assert result.exit_code == 0, result.output
    assert "took over the lock" in result.output and not (out / LOCK_FILE).exists()
