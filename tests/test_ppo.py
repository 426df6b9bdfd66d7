"""PPO: its arithmetic against plain reference implementations, the first update, saving, learning, and
checkpoints: written every save_steps, rotated, resumed after SIGKILL and SIGTERM as if never interrupted."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

from llmrl import ppo_math
from llmrl.config import load_config
from llmrl.errors import LlmrlError
from llmrl.runner import run_training


def random_batch(seed: int = 0, batch: int = 5, length: int = 9):
    generator = torch.Generator().manual_seed(seed)
    rewards = torch.randn(batch, length, generator=generator)
    values = torch.randn(batch, length, generator=generator)
    lengths = torch.randint(1, length + 1, (batch,), generator=generator)
    mask = (torch.arange(length)[None, :] < lengths[:, None]).float()
    return rewards, values, mask


def reference_gae(rewards, values, mask, gamma, lam):
    """GAE written the plain way: one sequence at a time, over its own response tokens only."""
    advantages = torch.zeros_like(rewards)
    for b in range(rewards.shape[0]):
        n = int(mask[b].sum())
        last = 0.0
        for t in reversed(range(n)):
            next_value = values[b, t + 1].item() if t + 1 < n else 0.0
            delta = rewards[b, t].item() + gamma * next_value - values[b, t].item()
            last = delta + gamma * lam * last
            advantages[b, t] = last
    return advantages, (advantages + values) * mask


@pytest.mark.parametrize("gamma, lam", [(1.0, 0.95), (0.99, 0.9), (1.0, 1.0), (0.9, 0.0)])
def test_gae_matches_the_reference(gamma, lam):
    for seed in range(5):
        rewards, values, mask = random_batch(seed)
        advantages, returns = ppo_math.gae(rewards, values, mask, gamma, lam)
        expected_advantages, expected_returns = reference_gae(rewards, values, mask, gamma, lam)
        torch.testing.assert_close(advantages, expected_advantages)
        torch.testing.assert_close(returns, expected_returns)


def test_whitening_matches_the_reference():
    for seed in range(5):
        values, _, mask = random_batch(seed)
        picked = values[mask.bool()]
        expected = torch.zeros_like(values)
        expected[mask.bool()] = (picked - picked.mean()) / torch.sqrt(picked.var(unbiased=True) + 1e-8)
        whitened = ppo_math.masked_whiten(values, mask)
        torch.testing.assert_close(whitened, expected)
        assert ppo_math.masked_mean(whitened, mask).abs() < 1e-5
        kept_mean = ppo_math.masked_whiten(values, mask, shift_mean=False)
        torch.testing.assert_close(kept_mean[mask.bool()], expected[mask.bool()] + picked.mean())


def test_losses_ignore_masked_positions_and_clip():
    old = torch.zeros(2, 3)
    new = torch.tensor([[0.5, -0.5, 9.0], [0.0, 0.0, 9.0]])  # 9.0 sits on padding
    advantages = torch.ones(2, 3)
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    loss, stats = ppo_math.policy_loss(new, old, advantages, mask, clip_range=0.2)
    ratio = torch.exp(torch.tensor([0.5, -0.5, 0.0, 0.0]))
    expected = torch.max(-ratio, -ratio.clamp(0.8, 1.2)).mean()
    torch.testing.assert_close(loss, expected)
    assert stats["clipfrac"].item() == pytest.approx(0.25)  # only exp(0.5) > 1.2 is clipped for A > 0
    vloss, vstats = ppo_math.value_loss(
        torch.tensor([[1.0, 0.0, 5.0]]),
        torch.zeros(1, 3),
        torch.ones(1, 3),
        torch.tensor([[1.0, 1.0, 0.0]]),
        clip_range=0.2,
    )
    torch.testing.assert_close(vloss, torch.tensor(0.5 * (0.64 + 1.0) / 2))  # 1.0 clipped to 0.2: (0.2-1)^2
    assert vstats["vf_clipfrac"].item() == pytest.approx(0.5)


def reward_module(tmp_path):
    """A rule reward. With $PPO_TEST_PAUSE_AT=K (set for a subprocess) its K-th call, in rollout K, touches
    ``paused`` and waits for ``go``: the test then knows which step the run is in when it signals it."""
    module = (
        "import os, pathlib, time\n"
        "calls = 0\n"
        "def sevens(prompts, completions, **kwargs):\n"
        "    global calls\n"
        "    calls += 1\n"
        "    if calls == int(os.environ.get('PPO_TEST_PAUSE_AT', 0)):\n"
        f"        folder = pathlib.Path({str(tmp_path)!r})\n"
        "        (folder / 'paused').touch()\n"
        "        deadline = time.monotonic() + 300\n"
        "        while not (folder / 'go').exists() and time.monotonic() < deadline:\n"
        "            time.sleep(0.05)\n"
        "    texts = [c if isinstance(c, str) else c[0]['content'] for c in completions]\n"
        "    return [t.count('7') / max(1, len(t)) for t in texts]\n"
    )
    path = tmp_path / "prefer_sevens.py"
    if not path.exists() or path.read_text() != module:  # never rewritten while a subprocess may be reading it
        path.write_text(module)
    sys.path.insert(0, str(tmp_path))
    return "python:prefer_sevens:sevens"


def ppo_config(tmp_path, *sets, resume=False):
    return load_config(
        flags={"resume": resume},
        sets=[
            "method=ppo",
            "model=builtin:tiny",
            "dataset=builtin:prompts",
            f"output_dir={tmp_path / 'ppo'}",
            f"rewards=[{reward_module(tmp_path)}]",
            "rl.max_completion_length=8",
            "logging_steps=1",
            *sets,
        ],
    )


def test_first_minibatch_of_the_first_epoch_has_ratio_one(tmp_path):
    from llmrl.methods.ppo import build_trainer

    trainer = build_trainer(ppo_config(tmp_path, "ppo.ppo_epochs=2", "ppo.num_mini_batches=2", "learning_rate=1e-2"))
    rows = next(iter(trainer.loader))
    rollout = trainer.rollout(rows)
    assert rollout.response_mask.sum(1).min() >= 1
    # the LM head runs on the response positions only, and gives what the whole sequence's logits give
    sequences = (rollout.query_ids, rollout.query_mask, rollout.response_ids, rollout.response_mask)
    assert trainer.keeps_logits
    with torch.no_grad():
        kept = trainer.response_logprobs(trainer.policy, *sequences)
        trainer.keeps_logits = False
        whole = trainer.response_logprobs(trainer.policy, *sequences)
        trainer.keeps_logits = True
    assert torch.allclose(kept, whole, atol=1e-6)
    assert torch.allclose(kept * rollout.response_mask, rollout.logprobs, atol=1e-6)
    history = trainer.update(rollout)
    assert len(history) == 4  # 2 epochs x 2 minibatches
    assert history[0]["ratio"] == pytest.approx(1.0, abs=1e-6)
    assert history[0]["clipfrac"] == 0.0 and history[0]["approxkl"] == pytest.approx(0.0, abs=1e-10)
    assert history[-1]["ratio"] != pytest.approx(1.0, abs=1e-6)  # later minibatches see an updated policy


def test_ppo_saves_policy_and_value_model_and_logs_every_metric(tmp_path, tiny_model_path):
    final = run_training(ppo_config(tmp_path, "max_steps=2", "learning_rate=1e-2"))
    records = [json.loads(line) for line in (tmp_path / "ppo" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2]
    for key in (
        "score",
        "rlhf_reward",
        "kl",
        "entropy",
        "clipfrac",
        "approxkl",
        "value_loss",
        "vf_clipfrac",
        "explained_variance",
        "ratio",
        "response_length",
    ):
        assert key in records[0], key
    policy = AutoModelForCausalLM.from_pretrained(final)
    original = AutoModelForCausalLM.from_pretrained(tiny_model_path)
    assert not torch.equal(policy.model.layers[0].mlp.up_proj.weight, original.model.layers[0].mlp.up_proj.weight)
    value_model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "ppo" / "value_model")
    assert value_model.config.num_labels == 1


def test_ppo_with_lora_trains_adapters_only(tmp_path):
    from llmrl.methods.ppo import build_trainer

    trainer = build_trainer(ppo_config(tmp_path, "lora.enabled=true", "lora.r=4"))
    assert trainer.reference is None  # the reference is the policy with its adapters off
    for model in (trainer.policy, trainer.value_model):
        names = [n for n, p in model.named_parameters() if p.requires_grad]
        assert names and all("lora_" in n or "score" in n for n in names)
    history = trainer.update(trainer.rollout(next(iter(trainer.loader))))
    assert history[0]["ratio"] == pytest.approx(1.0, abs=1e-6)
    checkpoint = trainer.save_checkpoint(1)  # the adapters (and the value model's new head), not the base model
    assert all("lora_" in name for name in load_file(checkpoint / "policy.safetensors"))
    assert all("lora_" in name or "score" in name for name in load_file(checkpoint / "value_model.safetensors"))


@pytest.mark.slow
def test_ppo_raises_the_score_of_a_rule_based_reward(tmp_path):
    final = run_training(
        ppo_config(tmp_path, "max_steps=30", "learning_rate=1e-2", "per_device_train_batch_size=16", "ppo.kl_coef=0.01")
    )
    scores = [json.loads(line)["score"] for line in (final.parent / "metrics.jsonl").read_text().splitlines()]
    first, last = sum(scores[:8]) / 8, sum(scores[-8:]) / 8
    assert last > first + 0.02, scores


@pytest.mark.slow
def test_ppo_under_two_processes(tmp_path):
    """torchrun with 2 CPU processes (gloo): both roll out and update; metrics and the model are written once."""
    import os
    import subprocess

    reward = reward_module(tmp_path)
    out = tmp_path / "ppo"
    command = [
        os.path.join(os.path.dirname(sys.executable), "torchrun"),
        "--nproc_per_node",
        "2",
        "-m",
        "llmrl",
        "train",
        "--method",
        "ppo",
        "--model",
        "builtin:tiny",
        "--dataset",
        "builtin:prompts",
        "--output-dir",
        str(out),
        "--max-steps",
        "2",
        "--set",
        f"rewards=[{reward}]",
        "--set",
        "rl.max_completion_length=8",
        "--set",
        "logging_steps=1",
        "--set",
        "per_device_train_batch_size=4",
    ]
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "ACCELERATE_USE_CPU": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("final model:") == 1
    info = json.loads((out / "run_info.json").read_text())
    assert info["world_size"] == 2 and info["status"] == "completed"
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2]
    # the schedule counts rollout steps, not steps x processes: linear decay from 3e-6 over 2 steps
    assert records[0]["learning_rate"] == pytest.approx(1.5e-6) and records[1]["learning_rate"] == 0.0
    AutoModelForCausalLM.from_pretrained(out / "final")


# -------------------------------------------------------------------------------------------------------------
# Checkpoints, resume, signals


def prompts_file(tmp_path):
    """12 prompts: with 4 per rollout, an epoch is 3 steps, so the runs below cross epochs and resume mid-epoch."""
    path = tmp_path / "prompts.jsonl"
    rows = [
        {"prompt": [{"role": "user", "content": f"Compute {a} + {a + 3}."}], "answer": str(2 * a + 3)}
        for a in range(12)
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def small_run(tmp_path, *sets):
    """The PPO settings of the checkpoint tests, as --set items: 3 rollout steps per epoch of 4 prompts."""
    return [f"dataset={prompts_file(tmp_path)}", "per_device_train_batch_size=4", "learning_rate=1e-2", *sets]


def start_ppo(tmp_path, out, sets, pause_at):
    """`llmrl train --method ppo` in a subprocess that holds in rollout ``pause_at`` (see reward_module)."""
    command = [sys.executable, "-m", "llmrl", "train", "--method", "ppo", "--model", "builtin:tiny"]
    command += ["--output-dir", str(out), "--set", f"rewards=[{reward_module(tmp_path)}]"]
    for item in ["rl.max_completion_length=8", "logging_steps=1", *sets]:
        command += ["--set", item]
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "PPO_TEST_PAUSE_AT": str(pause_at)}
    with (tmp_path / "stdout.txt").open("w") as stdout, (tmp_path / "stderr.txt").open("w") as stderr:
        return subprocess.Popen(command, stdout=stdout, stderr=stderr, env=env)  # files: a full pipe would block it


def wait_until_paused(tmp_path, process):
    deadline = time.monotonic() + 300
    while not (tmp_path / "paused").exists():
        assert process.poll() is None, (tmp_path / "stderr.txt").read_text()[-3000:]
        assert time.monotonic() < deadline, "the subprocess never reached the pause"
        time.sleep(0.05)


def logged_steps(out):
    return [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]


def saved_checkpoints(out):
    """The checkpoints the run log says were saved, in order."""
    return re.findall(r"checkpoint saved: (\S+)", (out / "train.log").read_text())


def test_checkpoints_every_save_steps_keep_the_newest(tmp_path):
    out = tmp_path / "ppo"
    final = run_training(
        ppo_config(tmp_path, *small_run(tmp_path, "max_steps=5", "save_steps=2", "save_total_limit=2"))
    )
    assert saved_checkpoints(out) == [str(out / f"checkpoint-{n}") for n in (2, 4, 5)]  # every 2 steps, and the last
    assert sorted(p.name for p in out.iterdir() if "checkpoint" in p.name) == ["checkpoint-4", "checkpoint-5"]
    checkpoint = out / "checkpoint-5"
    assert sorted(p.name for p in checkpoint.iterdir()) == [
        "optimizer.pt",
        "policy.safetensors",
        "ppo_state.json",
        "rng_state_0.pt",
        "scheduler.pt",
        "value_model.safetensors",
    ]
    state = json.loads((checkpoint / "ppo_state.json").read_text())
    assert state == {"step": 5, "epoch": 1, "batches_in_epoch": 2, "world_size": 1}  # 3 steps per epoch
    saved, final_weights = load_file(checkpoint / "policy.safetensors"), load_file(final / "model.safetensors")
    assert saved and saved.keys() <= final_weights.keys()  # the whole policy (its tied output layer once)
    for name, tensor in saved.items():
        assert torch.equal(tensor, final_weights[name]), name
    earlier = load_file(out / "checkpoint-4" / "policy.safetensors")
    assert any(not torch.equal(earlier[name], tensor) for name, tensor in saved.items())  # step 5 trained on


def test_resume_skips_a_half_written_checkpoint(tmp_path):
    """A run killed while saving leaves the staging folder, or a checkpoint-N without ppo_state.json (written
    last): --resume takes the newest complete checkpoint, and the resumed run writes that step again, whole."""
    out = tmp_path / "ppo"
    run_training(ppo_config(tmp_path, *small_run(tmp_path, "max_steps=2", "save_steps=1")))
    shutil.copytree(out / "checkpoint-2", out / ".checkpoint-staging")
    half = shutil.copytree(out / "checkpoint-2", out / "checkpoint-3")
    (half / "ppo_state.json").unlink()
    (half / "policy.safetensors").write_bytes((half / "policy.safetensors").read_bytes()[:100])
    shutil.rmtree(out / "final")
    run_training(ppo_config(tmp_path, *small_run(tmp_path, "max_steps=3", "save_steps=1"), resume=True))
    assert f"resuming from {out / 'checkpoint-2'}" in (out / "train.log").read_text()
    assert logged_steps(out) == [1, 2, 3]
    assert json.loads((out / "checkpoint-3" / "ppo_state.json").read_text())["step"] == 3
    assert not (out / ".checkpoint-staging").exists()
    for checkpoint in out.glob("checkpoint-*"):
        (checkpoint / "ppo_state.json").unlink()
    with pytest.raises(LlmrlError, match="no complete checkpoint"):
        run_training(ppo_config(tmp_path, *small_run(tmp_path, "max_steps=3"), resume=True))


@pytest.mark.slow
def test_a_run_killed_with_sigkill_resumes_to_the_same_policy(tmp_path):
    """A subprocess killed with SIGKILL after checkpoint-2, resumed here, ends where an uninterrupted run ends:
    steps 1..6 logged once each, and the same policy, bit for bit. That holds because the checkpoint restores
    weights, Adam's state, the schedule and every RNG, and each epoch's prompt order follows from the seed and the
    epoch; on CPU the same operations give the same bits in any process. (Not on CUDA, whose kernels are not
    all deterministic: there the policies are only compared for closeness.)"""
    sets = small_run(tmp_path, "max_steps=6", "save_steps=2")
    interrupted = tmp_path / "interrupted"
    process = start_ppo(tmp_path, interrupted, sets, pause_at=3)  # held in step 3, after checkpoint-2
    try:
        uninterrupted = run_training(ppo_config(tmp_path, *sets, f"output_dir={tmp_path / 'uninterrupted'}"))
        wait_until_paused(tmp_path, process)
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=60) == -signal.SIGKILL
    finally:
        process.kill()
    assert sorted(p.name for p in interrupted.glob("checkpoint-*")) == ["checkpoint-2"]
    assert logged_steps(interrupted) == [1, 2]

    resumed = run_training(ppo_config(tmp_path, *sets, f"output_dir={interrupted}", resume=True))
    assert f"resuming from {interrupted / 'checkpoint-2'}" in (interrupted / "train.log").read_text()
    assert logged_steps(interrupted) == [1, 2, 3, 4, 5, 6]
    assert json.loads((interrupted / "checkpoint-6" / "ppo_state.json").read_text())["step"] == 6
    expected, got = load_file(uninterrupted / "model.safetensors"), load_file(resumed / "model.safetensors")
    exact = not torch.cuda.is_available()
    for name, tensor in expected.items():
        torch.testing.assert_close(got[name], tensor, rtol=0 if exact else 1e-3, atol=0 if exact else 1e-3)


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_exits_143(tmp_path):
    """SIGTERM in step 2 (save_steps 100: no checkpoint due): the run ends step 2, saves checkpoint-2, exits 143
    with one line saying how to resume; --resume then finishes the run."""
    sets = small_run(tmp_path, "max_steps=4", "save_steps=100")
    out = tmp_path / "ppo"
    process = start_ppo(tmp_path, out, sets, pause_at=2)
    try:
        wait_until_paused(tmp_path, process)
        process.send_signal(signal.SIGTERM)
        (tmp_path / "go").touch()
        process.wait(timeout=120)
    finally:
        process.kill()
    stderr = (tmp_path / "stderr.txt").read_text()
    assert process.returncode == 143, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: stopped by SIGTERM"), stderr[-3000:]
    assert str(out / "checkpoint-2") in errors[0] and f"the same command with --resume (output {out})" in errors[0]
    assert "Traceback" not in stderr
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2"]
    assert json.loads((out / "checkpoint-2" / "ppo_state.json").read_text())["step"] == 2
    assert logged_steps(out) == [1, 2]

    run_training(ppo_config(tmp_path, *sets, f"output_dir={out}", resume=True))
    assert logged_steps(out) == [1, 2, 3, 4]


def test_nan_gradients_stop_ppo_before_the_update_or_are_skipped(tmp_path, caplog):
    """A learning rate of 1e30 blows the weights up at the first update; the next minibatch's gradients are
    NaN. ``stop`` raises before applying them, naming the step; ``skip`` leaves those weights alone."""
    from llmrl.errors import LlmrlError

    with pytest.raises(LlmrlError, match=r"NaN or inf gradients at step 1: training stopped before the update"):
        run_training(ppo_config(tmp_path, "max_steps=2", "learning_rate=1e30", "per_device_train_batch_size=8"))
    assert not (tmp_path / "ppo" / "final").exists()
    sets = ["max_steps=1", "learning_rate=1e30", "per_device_train_batch_size=8", "on_nonfinite=skip"]
    final = run_training(ppo_config(tmp_path, *sets, "ppo.ppo_epochs=3"))
    assert "step 1: NaN or inf gradients, minibatch skipped (1 so far)" in caplog.text
    weights = load_file(final / "model.safetensors")
    assert all(torch.isfinite(w).all() for w in weights.values())


def test_ppo_scores_greedy_answers_to_the_eval_split_and_its_value_model_has_its_own_rate(tmp_path):
    from llmrl.methods.ppo import build_trainer

    cfg = ppo_config(
        tmp_path,
        "max_steps=2",
        "eval_split=test",
        "eval_steps=1",
        "data.max_samples=8",
        "learning_rate=1e-4",
        "ppo.value_learning_rate=5e-4",
    )
    trainer = build_trainer(cfg)
    assert [group["initial_lr"] for group in trainer.optimizer.param_groups] == [1e-4, 5e-4]
    run_training(cfg)
    records = [json.loads(line) for line in (tmp_path / "ppo" / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if "eval_sevens" in r]
    assert [r["step"] for r in evals] == [0, 1, 2]
    assert all(0 <= r["eval_sevens"] <= 1 and 1 <= r["eval_completion_length"] <= 8 for r in evals)
    scores = [r["eval_sevens"] for r in evals]  # best/: the earliest step with the best held-out score
    selection = json.loads((tmp_path / "ppo" / "best" / "selection.json").read_text())
    assert selection["step"] == evals[scores.index(max(scores))]["step"]
    assert selection["held_out_score"] == pytest.approx(max(scores))
    assert (tmp_path / "ppo" / "best" / "model.safetensors").is_file()


@pytest.mark.parametrize(
    "setting, words",
    [("rl.beta=0.1", "set ppo.kl_coef"), ("rl.num_iterations=2", "set ppo.ppo_epochs"),
     ("rl.num_generations=8", "one answer per prompt")],
)  # fmt: skip
def test_rl_options_ppo_does_not_read_are_refused_naming_its_own(tmp_path, setting, words):
    with pytest.raises(LlmrlError, match=f"{setting.split('=')[0]} does not apply to --method ppo: .*{words}"):
        ppo_config(tmp_path, setting)


def test_ppo_logs_to_tensorboard_and_wandb_through_the_shared_trackers(tmp_path, monkeypatch):
    """PPO's records reach TensorBoard (under tensorboard/) and an offline W&B run, as the TRL methods' do."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run_training(ppo_config(tmp_path, "max_steps=2", "report_to=[tensorboard,wandb]"))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = [p.parent for p in (tmp_path / "ppo" / "tensorboard").rglob("events.out.tfevents.*")]
    scalars = {}
    for folder in events:
        accumulator = EventAccumulator(str(folder))
        accumulator.Reload()
        scalars.update({tag: accumulator.Scalars(tag) for tag in accumulator.Tags()["scalars"]})
    assert [event.step for event in scalars["ppo/score"]] == [1, 2]
    assert "ppo/kl" in scalars and "ppo/policy_loss" in scalars
    runs = list((tmp_path / "ppo" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert runs and runs[0].stat().st_size > 0


@pytest.mark.parametrize("tracker", ["trackio", "neptune"])
def test_ppo_logs_to_trackio_and_neptune_when_they_are_installed(tmp_path, tracker):
    """Where the package is installed (it is not a dependency: without it every method refuses report_to
    naming it, tests/test_bad_input.py), PPO's records reach a local trackio project or an offline Neptune run."""
    pytest.importorskip(tracker)
    env = {**os.environ, "TRACKIO_DIR": str(tmp_path / "trackio"), "NEPTUNE_MODE": "offline"}
    env.setdefault("NEPTUNE_PROJECT", "llmrl/test")
    args = ["--method", "ppo", "--model", "builtin:tiny", "--dataset", "builtin:prompts", "--max-steps", "2"]
    sets = ["rewards=[length]", "rl.max_completion_length=8", "logging_steps=1", f"report_to=[{tracker}]"]
    sets.append("project=ppo-trackers")
    command = [sys.executable, "-m", "llmrl", "train", *args, "--output-dir", "ppo"]
    command += [arg for item in sets for arg in ("--set", item)]
    subprocess.run(command, cwd=tmp_path, env=env, check=True, capture_output=True, timeout=600)
    if tracker == "trackio":
        code = (
            "from trackio.sqlite_storage import SQLiteStorage as S\n"
            "print([r['step'] for r in S.get_logs('ppo-trackers', 'ppo') if 'ppo/score' in r])"
        )
        steps = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert steps.stdout.strip() == "[1, 2]"
    else:
        operations = "".join(p.read_text() for p in (tmp_path / ".neptune").rglob("data-*.log"))
        assert operations.count('"path": ["ppo", "score"]') == 2
