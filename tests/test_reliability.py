"""Runs are never lost: a killed or stopped run resumes to the same end, a checkpoint half-written by a dying
process is never used, NaN/inf stop before they reach the weights, and secrets stay out of every output."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import FakeRewardServer, tiny_train_args
from safetensors.torch import load_file
from typer.testing import CliRunner

from llmrl.cli import app
from llmrl.config import load_config
from llmrl.runner import complete_checkpoints, run_training

runner = CliRunner()
SETS = ["save_steps=4", "logging_steps=1", "per_device_train_batch_size=16"]
SFT_RUN = [item for setting in SETS for item in ("--set", setting)]


def start_run(data: Path, output_dir: Path, max_steps: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "llmrl", *tiny_train_args(data, output_dir, "--max-steps", str(max_steps))]
    return subprocess.Popen(command + SFT_RUN, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_checkpoint(process: subprocess.Popen, output_dir: Path, timeout: float = 300) -> None:
    """Return as soon as the run has written its first complete checkpoint (it is still training then)."""
    deadline = time.monotonic() + timeout
    while not (output_dir.exists() and complete_checkpoints(output_dir)):
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "no checkpoint written in time"
        time.sleep(0.02)


def sft_config(data: Path, output_dir: Path, max_steps: int, *sets: str, resume: bool = False):
    flags = dict(model="builtin:tiny", dataset=str(data), output_dir=str(output_dir), max_steps=max_steps)
    return load_config(flags={**flags, "resume": resume or None}, sets=[*SETS, *sets])


@pytest.mark.slow
def test_a_run_killed_with_sigkill_resumes_to_the_same_end(tmp_path, chat_jsonl):
    """SIGKILL mid-run, then --resume: same final step, each step logged once, and the weights an
    uninterrupted run reaches (same optimizer, scheduler, RNG and data position)."""
    killed = tmp_path / "killed"
    process = start_run(chat_jsonl, killed, max_steps=40)
    wait_for_checkpoint(process, killed)
    process.kill()
    process.wait()
    assert not (killed / "final").exists()
    resumed = run_training(sft_config(chat_jsonl, killed, 40, resume=True))
    straight = run_training(sft_config(chat_jsonl, tmp_path / "straight", 40))
    state = json.loads((complete_checkpoints(killed)[-1] / "trainer_state.json").read_text())
    assert state["global_step"] == 40
    steps = [json.loads(line)["step"] for line in (killed / "metrics.jsonl").read_text().splitlines()]
    steps = [s for s in steps if s <= 40]
    assert sorted(set(steps)) == list(range(1, 41))
    a, b = load_file(resumed / "model.safetensors"), load_file(straight / "model.safetensors")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_saves_a_checkpoint_and_exits_with_how_to_resume(tmp_path, chat_jsonl, sig, code):
    """SIGTERM (a scheduler) or SIGINT (Ctrl-C): checkpoint at the step reached, one line, exit 128 + signal."""
    out = tmp_path / "run"
    process = start_run(chat_jsonl, out, max_steps=400)
    wait_for_checkpoint(process, out)
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == code
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: stopped by {sig.name}: checkpoint saved to ") and "--resume" in last
    assert str(complete_checkpoints(out)[-1]) in last  # saved at the step it stopped, not only every save_steps
    assert json.loads((out / "run_info.json").read_text())["status"] == "interrupted"
    assert not (out / "final").exists()


def test_a_save_that_fails_midway_leaves_the_earlier_final_model_whole(tmp_path, chat_jsonl, monkeypatch):
    """final/ is written into a staging folder and renamed when complete: a crash while writing the new model
    (here the disk fills after the first file) leaves the earlier run's final/ as it was."""
    from llmrl.methods.sft import build_trainer
    from llmrl.trl_loop import save_final

    out = tmp_path / "run"
    earlier = run_training(sft_config(chat_jsonl, out, 2))
    before = {p.name: p.read_bytes() for p in earlier.iterdir()}
    trainer = build_trainer(sft_config(chat_jsonl, out, 2))

    def save_model(folder):
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / "model.safetensors").write_bytes(b"half a model")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(trainer, "save_model", save_model)
    with pytest.raises(OSError, match="No space left"):
        save_final(trainer, out)
    assert {p.name: p.read_bytes() for p in earlier.iterdir()} == before


def test_resume_never_uses_a_half_written_checkpoint(tmp_path, chat_jsonl):
    out = tmp_path / "run"
    run_training(sft_config(chat_jsonl, out, 4))
    partial = out / "checkpoint-6"  # what a process killed while saving leaves: weights, no trainer state
    partial.mkdir()
    (partial / "model.safetensors").write_bytes(b"half")
    assert [p.name for p in complete_checkpoints(out)] == ["checkpoint-4"]
    run_training(sft_config(chat_jsonl, out, 8, resume=True))
    assert [p.name for p in complete_checkpoints(out)] == ["checkpoint-4", "checkpoint-8"]
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [s for s in steps if s > 4][:4] == [5, 6, 7, 8]  # continued from step 4, not 6
    partial.mkdir()
    for finished in complete_checkpoints(out):
        (finished / "trainer_state.json").unlink()
    result = runner.invoke(app, [*tiny_train_args(chat_jsonl, out, "--resume")])
    assert result.exit_code == 2
    assert "no complete checkpoint-* folder" in result.output and "(3 incomplete)" in result.output


def test_resuming_a_run_that_reached_max_steps_trains_no_further(tmp_path, chat_jsonl):
    out = tmp_path / "run"
    first = run_training(sft_config(chat_jsonl, out, 4))
    before = load_file(first / "model.safetensors")
    again = run_training(sft_config(chat_jsonl, out, 4, resume=True))
    after = load_file(again / "model.safetensors")
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert [p.name for p in complete_checkpoints(out)] == ["checkpoint-4"]


def test_nan_gradients_stop_the_run_before_the_update(tmp_path, chat_jsonl):
    """A learning rate of 1e30 blows the weights up after step 1, so step 2's gradients are NaN."""
    out = tmp_path / "run"
    args = tiny_train_args(chat_jsonl, out, "--max-steps", "6", "--set", "learning_rate=1e30", *SFT_RUN)
    result = runner.invoke(app, [*args, "--set", "save_steps=1"])
    assert result.exit_code == 2
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("error: NaN or inf gradients at step 2: training stopped before the update")
    assert f"the last good checkpoint is {out / 'checkpoint-1'}" in last and "on_nonfinite=skip" in last
    assert [p.name for p in complete_checkpoints(out)] == ["checkpoint-1"] and not (out / "final").exists()
    weights = load_file(out / "checkpoint-1" / "model.safetensors")
    assert all(torch.isfinite(w).all() for w in weights.values())


def test_nan_in_an_overwrite_run_before_its_first_checkpoint_says_run_again_not_resume(tmp_path, chat_jsonl):
    """The earlier run is put back, so --resume would continue that one: the hint is to run the command again."""
    out = tmp_path / "run"
    assert runner.invoke(app, tiny_train_args(chat_jsonl, out, "--max-steps", "2", *SFT_RUN)).exit_code == 0
    earlier = (out / "final" / "model.safetensors").read_bytes()
    args = tiny_train_args(chat_jsonl, out, "--max-steps", "6", "--set", "learning_rate=1e30", *SFT_RUN, "--overwrite")
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    last = result.stderr.strip().splitlines()[-1]
    assert "no checkpoint was saved before it; lower learning_rate and run the command again" in last
    assert "--resume" not in last
    assert (out / "final" / "model.safetensors").read_bytes() == earlier


def test_nan_gradients_can_be_skipped(tmp_path, chat_jsonl, caplog):
    out = tmp_path / "run"
    final = run_training(sft_config(chat_jsonl, out, 4, "learning_rate=1e30", "on_nonfinite=skip"))
    assert "step 2: NaN or inf gradients, batch skipped (1 so far)" in caplog.text
    assert "step 4: NaN or inf gradients, batch skipped (3 so far)" in caplog.text
    weights = load_file(final / "model.safetensors")  # the weights after step 1, never a NaN update
    assert all(torch.isfinite(w).all() for w in weights.values())


def test_gradient_clipping_is_on_by_default():
    from trl import SFTConfig

    from llmrl.trl_args import trl_config

    assert trl_config(load_config(sets=["output_dir=out"]), SFTConfig).max_grad_norm == 1.0


# ---------------------------------------------------------------------------------------------------------
# Security


def model_with_custom_code(tmp_path: Path, tiny_model_path: Path) -> tuple[Path, Path]:
    """A copy of the tiny model whose config asks for code shipped in the folder; the code leaves a marker."""
    import shutil

    folder = tmp_path / "custom-model"
    shutil.copytree(tiny_model_path, folder)
    marker = tmp_path / "custom-code-ran"
    (folder / "custom_code.py").write_text(f"open({str(marker)!r}, 'w').close()\nraise ImportError('custom code')\n")
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "llmrl_custom"  # an architecture transformers does not have: only the folder's code
    config["auto_map"] = {"AutoConfig": "custom_code.Config", "AutoModelForCausalLM": "custom_code.Model"}
    (folder / "config.json").write_text(json.dumps(config))
    return folder, marker


def test_code_shipped_with_a_model_runs_only_for_a_model_the_user_names(tmp_path, tiny_model_path, chat_jsonl):
    folder, marker = model_with_custom_code(tmp_path, tiny_model_path)
    base = ["train", "--model", str(folder), "--dataset", str(chat_jsonl), "--output-dir", str(tmp_path / "out")]
    for extra in ([], ["--set", "trust_remote_code=[someone/else]"]):
        result = runner.invoke(app, [*base, *extra])
        assert result.exit_code == 2 and "trust_remote_code" in result.output
        assert not marker.exists() and not (tmp_path / "out").exists()
    result = runner.invoke(app, [*base, "--set", f"trust_remote_code=[{folder}]"])
    assert result.exit_code != 0 and marker.exists()  # trusted by name: its code ran (and raised on purpose)


@pytest.mark.slow
def test_secrets_never_reach_an_output_file(tmp_path, chat_jsonl, monkeypatch):
    """Plant keys in the environment and in .env, run an online-RL stage that sends one to a judge, with
    TensorBoard and an offline W&B run, then search every file the run wrote, and the console."""
    secrets = {"NVIDIA_API_KEY": "nvapi-planted-7f3a9c", "HF_TOKEN": "hf_planted_b81d22", "WANDB_API_KEY": "x" * 40}
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    (tmp_path / ".env").write_text("OPENAI_API_KEY=sk-planted-in-dotenv-55e1\n")
    secrets["OPENAI_API_KEY"] = "sk-planted-in-dotenv-55e1"
    monkeypatch.setenv("WANDB_MODE", "offline")
    out = tmp_path / "run"
    with FakeRewardServer() as server:
        sets = [f"rewards=[api:{server.url}]", "api.model=judge", "api.backoff=0", "report_to=[tensorboard,wandb]"]
        sets += ["per_device_train_batch_size=4", "rl.num_generations=2", "rl.max_completion_length=8"]
        args = tiny_train_args("builtin:prompts", out, "--method", "grpo", "--max-steps", "2")
        result = runner.invoke(app, [*args, *(item for s in sets for item in ("--set", s))])
    assert result.exit_code == 0, result.output
    assert server.requests and server.requests[0]["auth"] == f"Bearer {secrets['NVIDIA_API_KEY']}"
    written = [p for p in out.rglob("*") if p.is_file()]
    assert any("wandb" in p.parts for p in written) and any("tfevents" in p.name for p in written)
    for value in secrets.values():
        assert value not in result.output
        leaks = [p for p in written if value.encode() in p.read_bytes()]
        assert not leaks, f"{value} found in {leaks}"


def test_models_are_saved_as_safetensors(tmp_path, chat_jsonl):
    final = run_training(sft_config(chat_jsonl, tmp_path / "run", 4))
    for folder in (final, *complete_checkpoints(final.parent)):
        assert (folder / "model.safetensors").is_file()
        assert not list(folder.glob("*.bin")) or [p.name for p in folder.glob("*.bin")] == ["training_args.bin"]
