"""llmrl eval: the figures on fixed scores, and end to end with a reward model and with an API judge."""

import json
import math

import pytest
from helpers import FakeRewardServer
from typer.testing import CliRunner

from llmrl.cli import app
from llmrl.evaluation import bootstrap_interval, outcomes, summarize

runner = CliRunner()


def test_outcomes_count_ties_as_half():
    assert outcomes([1.0, 2.0, 3.0, 0.5], [0.0, 2.0, 4.0, 0.5]) == [1.0, 0.5, 0.0, 0.5]


def test_summary_on_fixed_scores():
    model = [2.0, 1.0, 3.0, 0.0]
    reference = [1.0, 1.0, 1.0, 1.0]
    summary = summarize(model, reference, "reward_model:x", seed=0)
    assert summary["win_rate"]["mean"] == pytest.approx((1 + 0.5 + 1 + 0) / 4)
    assert summary["model_reward"]["mean"] == pytest.approx(1.5)
    assert summary["reference_reward"]["mean"] == pytest.approx(1.0)
    assert summary["reward_improvement"]["mean"] == pytest.approx(0.5)
    sigmoid = [1 / (1 + math.exp(-d)) for d in (1.0, 0.0, 2.0, -1.0)]
    assert summary["win_probability"]["mean"] == pytest.approx(sum(sigmoid) / 4)
    for figure in ("win_rate", "model_reward", "reward_improvement", "win_probability"):
        low, high = summary[figure]["ci95"]
        assert low <= summary[figure]["mean"] <= high
    assert summary["reference_reward"]["ci95"] == [1.0, 1.0]  # no spread, no interval
    assert "win_probability" not in summarize(model, reference, "accuracy", seed=0)


def test_bootstrap_interval_is_seeded_and_narrows_with_more_prompts():
    few = [0.0, 1.0] * 10
    many = [0.0, 1.0] * 500
    assert bootstrap_interval(few, seed=3) == bootstrap_interval(few, seed=3)
    low_few, high_few = bootstrap_interval(few, seed=3)
    low_many, high_many = bootstrap_interval(many, seed=3)
    assert low_few < low_many < 0.5 < high_many < high_few
    assert high_many - low_many == pytest.approx(2 * 1.96 * 0.5 / math.sqrt(1000), abs=0.01)  # normal approximation


def test_win_probability_does_not_overflow():
    summary = summarize([-1000.0, 1000.0], [1000.0, -1000.0], "reward_model:x", seed=0)
    assert summary["win_probability"]["mean"] == pytest.approx(0.5)


def test_eval_dataset_from_a_config_file_is_kept(tmp_path):
    (tmp_path / "eval.yaml").write_text("dataset: builtin:prompts\nsplit: test\n")
    result = runner.invoke(
        app,
        [
            "eval",
            "--model",
            "builtin:tiny",
            "--reference",
            "builtin:tiny",
            "--judge",
            "length",
            "--config",
            str(tmp_path / "eval.yaml"),
            "--num-prompts",
            "2",
            "--max-new-tokens",
            "2",
            "--output-dir",
            str(tmp_path / "e"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "e" / "results.json").read_text())["dataset"] == "builtin:prompts"


def test_length_judge_counts_tokens_as_in_training(tmp_path):
    result = runner.invoke(
        app,
        eval_args(
            tmp_path, "builtin:tiny", "length", "--reference", "builtin:tiny", "--set", "reward_fns.length_target=12"
        ),
    )
    assert result.exit_code == 0, result.output
    samples = [json.loads(line) for line in (tmp_path / "eval" / "samples.jsonl").read_text().splitlines()]
    # the untrained model never ends early: 6 new tokens each, so -|6 - 12| / 12 = -0.5, words or not
    assert {s["model_score"] for s in samples} == {-0.5}


def test_unscored_prompts_are_left_out():
    summary = summarize([1.0, math.nan, 3.0], [0.0, 1.0, math.nan], "api:http://x", seed=0)
    assert summary["scored_prompts"] == 1 and summary["win_rate"]["mean"] == 1.0


def eval_args(tmp_path, model, judge, *extra):
    return [
        "eval",
        "--model",
        str(model),
        "--judge",
        judge,
        "--dataset",
        "builtin:prompts",
        "--num-prompts",
        "6",
        "--max-new-tokens",
        "6",
        "--output-dir",
        str(tmp_path / "eval"),
        *extra,
    ]


def test_eval_with_a_reward_model_end_to_end(tmp_path, trained_reward_model, chat_jsonl):
    from llmrl.config import load_config
    from llmrl.runner import run_training

    trained = run_training(
        load_config(
            sets=[
                "model=builtin:tiny",
                f"dataset={chat_jsonl}",
                f"output_dir={tmp_path / 'sft'}",
                "max_steps=3",
                "learning_rate=1e-2",
            ]
        )
    )
    result = runner.invoke(app, eval_args(tmp_path, trained, f"reward_model:{trained_reward_model}"))
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert results["reference"] == "builtin:tiny"  # the model the SFT run started from
    assert results["num_prompts"] == results["scored_prompts"] == 6
    for figure in ("win_rate", "win_probability", "model_reward", "reference_reward", "reward_improvement"):
        low, high = results[figure]["ci95"]
        assert low <= results[figure]["mean"] <= high
    samples = [json.loads(line) for line in (tmp_path / "eval" / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 6
    win_rate = sum({"model": 1, "tie": 0.5, "reference": 0}[s["winner"]] for s in samples) / 6
    assert results["win_rate"]["mean"] == pytest.approx(win_rate)
    assert "win rate" in result.output and "95% interval" in result.output

    again = runner.invoke(app, eval_args(tmp_path, trained, f"reward_model:{trained_reward_model}"))
    assert again.exit_code == 2 and "already holds eval results" in again.output


def test_a_model_against_itself_ties(tmp_path, trained_reward_model):
    result = runner.invoke(
        app, eval_args(tmp_path, "builtin:tiny", f"reward_model:{trained_reward_model}", "--reference", "builtin:tiny")
    )
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert results["win_rate"]["mean"] == 0.5 and results["reward_improvement"]["mean"] == 0.0


@pytest.mark.parametrize("failures, status", [(0, 200), (2, 429), (2, 500)])
def test_eval_with_an_api_judge(tmp_path, monkeypatch, failures, status):
    monkeypatch.setenv("NVIDIA_API_KEY", "sk-eval-secret")
    with FakeRewardServer(failures=failures, status=status) as server:
        result = runner.invoke(
            app,
            eval_args(
                tmp_path,
                "builtin:tiny",
                f"api:{server.url}",
                "--reference",
                "builtin:small",
                "--set",
                "api.model=judge",
                "--set",
                "api.backoff=0",
            ),
        )
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert results["scored_prompts"] == 6 and len(server.requests) == 12 + failures
    assert "sk-eval-secret" not in (tmp_path / "eval" / "results.json").read_text()


def test_eval_api_judge_missing_key_fails_before_generating(tmp_path, monkeypatch):
    monkeypatch.delenv("NVIDIA_API_KEY", raising=False)
    result = runner.invoke(
        app,
        eval_args(
            tmp_path,
            "builtin:tiny",
            "api:http://127.0.0.1:9/v1",
            "--reference",
            "builtin:tiny",
            "--set",
            "api.model=judge",
        ),
    )
    assert result.exit_code == 2
    assert "needs an API key in the environment variable NVIDIA_API_KEY" in result.output
    assert "generating" not in result.output and not (tmp_path / "eval").exists()


def test_eval_api_judge_unreachable_host(tmp_path, monkeypatch):
    monkeypatch.setenv("NVIDIA_API_KEY", "k")
    with FakeRewardServer() as server:
        url = server.url  # the server is gone once the block ends
    result = runner.invoke(
        app,
        eval_args(
            tmp_path,
            "builtin:tiny",
            f"api:{url}",
            "--reference",
            "builtin:tiny",
            "--set",
            "api.model=judge",
            "--set",
            "api.max_retries=1",
            "--set",
            "api.backoff=0",
        ),
    )
    assert result.exit_code == 2
    assert "error: api reward: no answer from" in result.output and "after 2 tries" in result.output


def test_eval_needs_a_reference_when_the_model_is_not_a_run(tmp_path):
    result = runner.invoke(app, eval_args(tmp_path, "builtin:tiny", "accuracy"))
    assert result.exit_code == 2 and "pass --reference" in result.output


def test_eval_bad_judge(tmp_path):
    result = runner.invoke(app, eval_args(tmp_path, "builtin:tiny", "judgement"))
    assert result.exit_code == 2 and "unknown reward 'judgement'" in result.output


def test_eval_figures_reach_tensorboard_and_wandb(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    result = runner.invoke(
        app,
        eval_args(
            tmp_path, "builtin:tiny", "length", "--reference", "builtin:tiny", "--set", "report_to=[tensorboard,wandb]"
        ),
    )
    assert result.exit_code == 0, result.output
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(tmp_path / "eval" / "tensorboard"))
    accumulator.Reload()
    assert accumulator.Scalars("eval/win_rate")[0].value == 0.5
    runs = list((tmp_path / "eval" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert runs and runs[0].stat().st_size > 0


def test_a_single_file_is_evaluated_on_its_only_split_and_fewer_prompts_are_said(tmp_path):
    """A file has one split: eval uses it without --split and says so; asking for more prompts than it has
    uses all of them and says how many."""
    data = tmp_path / "questions.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"What is {i} + 1?"}) + "\n" for i in range(3)))
    args = ["eval", "--model", "builtin:tiny", "--reference", "builtin:tiny", "--judge", "length"]
    args += [
        "--dataset",
        str(data),
        "--num-prompts",
        "1000",
        "--max-new-tokens",
        "2",
        "--output-dir",
        str(tmp_path / "e"),
    ]

    result = runner.invoke(app, args)

    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())
    assert "is one file: evaluating its only split (train)" in flat
    assert "--num-prompts 1000: split 'train' has 3 usable prompts" in flat
    assert "3 of 3 prompts scored (asked for 1000" in flat
    results = json.loads((tmp_path / "e" / "results.json").read_text())
    assert results["split"] == "train" and results["num_prompts"] == 3 and results["num_prompts_asked"] == 1000


def test_a_judge_url_with_credentials_sends_them_as_basic_auth_and_never_shows_them(tmp_path, monkeypatch):
    """api:http://user:PASSWORD@host/v1: the request reaches the server (without the credentials in its URL)
    with HTTP basic authentication; nothing printed or written holds the password."""
    import base64

    monkeypatch.delenv("NVIDIA_API_KEY", raising=False)  # the URL's credentials are enough
    with FakeRewardServer() as server:
        url = server.url.replace("http://", "http://judge:PASSWORD@")
        args = eval_args(tmp_path, "builtin:tiny", f"api:{url}", "--reference", "builtin:tiny", "--set", "api.model=j")
        result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert server.requests and server.requests[0]["path"] == "/v1/chat/completions"
    assert {r["auth"] for r in server.requests} == {"Basic " + base64.b64encode(b"judge:PASSWORD").decode()}
    written = "".join(p.read_text() for p in (tmp_path / "eval").rglob("*") if p.is_file())
    assert "PASSWORD" not in result.output and "PASSWORD" not in written
    assert "api:http://***@127.0.0.1" in json.loads((tmp_path / "eval" / "results.json").read_text())["judge"]
