"""PPO: its arithmetic against plain reference implementations, the first update, saving, and learning."""

import json
import sys

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

from llmrl import ppo_math
from llmrl.config import load_config
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
    (tmp_path / "prefer_sevens.py").write_text(
        "def sevens(prompts, completions, **kwargs):\n"
        "    texts = [c if isinstance(c, str) else c[0]['content'] for c in completions]\n"
        "    return [t.count('7') / max(1, len(t)) for t in texts]\n"
    )
    sys.path.insert(0, str(tmp_path))
    return "python:prefer_sevens:sevens"


def ppo_config(tmp_path, *sets):
    return load_config(
        sets=[
            "method=ppo",
            "model=builtin:tiny",
            "dataset=builtin:prompts",
            f"output_dir={tmp_path / 'ppo'}",
            f"rewards=[{reward_module(tmp_path)}]",
            "rl.max_completion_length=8",
            "logging_steps=1",
            *sets,
        ]
    )


def test_first_minibatch_of_the_first_epoch_has_ratio_one(tmp_path):
    from llmrl.methods.ppo import build_trainer

    trainer = build_trainer(ppo_config(tmp_path, "ppo.ppo_epochs=2", "ppo.num_mini_batches=2", "learning_rate=1e-2"))
    rows = next(iter(trainer.loader))
    rollout = trainer.rollout(rows)
    assert rollout.response_mask.sum(1).min() >= 1
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


@pytest.mark.slow
def test_ppo_raises_the_score_of_a_rule_based_reward(tmp_path):
    final = run_training(
        ppo_config(tmp_path, "max_steps=30", "learning_rate=1e-2", "per_device_train_batch_size=16", "rl.beta=0.01")
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
