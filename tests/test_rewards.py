"""Reward functions on hand-written completions, the api: reward against a real HTTP server on 127.0.0.1,
and a reward model trained by --method reward."""

import json

import pytest
from helpers import FakeRewardServer

from llmrl.config import load_config
from llmrl.errors import LlmrlError
from llmrl.rewards import (
    AccuracyReward,
    FormatReward,
    LengthReward,
    MissingEosPenalty,
    RewardModelReward,
    build_reward_functions,
    parse_score,
    parse_spec,
)

PROMPT = [{"role": "user", "content": "What is 6 * 7?"}]


def chat(text):
    return [{"role": "assistant", "content": text}]


# ---------------------------------------------------------------------------------------------------------
# Specs


@pytest.mark.parametrize(
    "spec, parsed",
    [
        ("accuracy", ("accuracy", None)),
        ("reward_model:runs/rm/final", ("reward_model", "runs/rm/final")),
        ("api:http://127.0.0.1:8000/v1", ("api", "http://127.0.0.1:8000/v1")),
        ("python:my_pkg.rewards:score", ("python", "my_pkg.rewards:score")),
    ],
)
def test_parse_spec(spec, parsed):
    assert parse_spec(spec) == parsed


@pytest.mark.parametrize(
    "spec, message",
    [
        ("acuracy", "unknown reward 'acuracy'; did you mean 'accuracy'?"),
        ("reward_model", "reward 'reward_model' needs an argument"),
        ("length:5", "reward 'length' takes no argument"),
    ],
)
def test_bad_specs(spec, message):
    with pytest.raises(LlmrlError, match=message):
        parse_spec(spec)


# ---------------------------------------------------------------------------------------------------------
# Rule-based rewards


@pytest.mark.parametrize(
    "completion, gold, expected",
    [
        ("6 * 7 = 42\n#### 42", "42", 1.0),
        (chat("6 * 7 = 42\n#### 42"), "42", 1.0),  # conversational completion
        ("The answer is \\boxed{42}.", "42", 1.0),
        ("I think it is 40, no wait: 42", "42", 1.0),  # the last number
        ("#### 42.0", "42", 1.0),  # numeric equality
        ("#### 1/2", "0.5", 1.0),
        ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}", 1.0),  # symbolic equality
        ("so #### 1,234", "She pays 1234 in all.\n#### 1,234", 1.0),  # GSM8K-style gold
        ("6 * 7 = 42\n#### 41", "42", 0.0),  # wrong
        ("#### 42 is not it, #### 43", "42", 0.0),  # the last '####' counts
        ("no number here", "42", 0.0),  # malformed
        ("", "42", 0.0),  # empty
        ("#### -7", "-7", 1.0),
        ("#### 7", "-7", 0.0),
    ],
)
def test_accuracy(completion, gold, expected):
    assert AccuracyReward()([PROMPT], [completion], solution=[gold]) == [expected]


def test_accuracy_reads_answer_when_there_is_no_solution_and_needs_one_of_them():
    assert AccuracyReward()([PROMPT, PROMPT], ["#### 42", "#### 5"], answer=["42", "42"]) == [1.0, 0.0]
    with pytest.raises(LlmrlError, match="needs a 'solution' or 'answer' column"):
        AccuracyReward()([PROMPT], ["#### 42"])


def test_format_default_and_custom_pattern():
    reward = FormatReward(load_config().reward_fns.format_pattern)
    completions = [
        "<think>6 sevens</think>\n<answer>42</answer>",
        chat("<think>x</think><answer>42</answer>"),
        "<answer>42</answer>",  # no reasoning
        "<think>unclosed <answer>42</answer>",
        "",
    ]
    assert reward([PROMPT] * 5, completions) == [1.0, 1.0, 0.0, 0.0, 0.0]
    gsm8k = FormatReward(r"#### -?\d+$")
    assert gsm8k([PROMPT] * 3, ["6 * 7 = 42\n#### 42", "42", "#### forty-two"]) == [1.0, 0.0, 0.0]
    with pytest.raises(LlmrlError, match="invalid reward_fns.format_pattern"):
        FormatReward("(unclosed")


def test_length_peaks_at_the_target():
    reward = LengthReward(target=10)
    ids = [[1] * 10, [1] * 5, [1] * 15, [], [1] * 40]
    assert reward([PROMPT] * 5, [""] * 5, completion_ids=ids) == [0.0, -0.5, -0.5, -1.0, -1.0]
    assert reward([PROMPT], ["one two three four five"]) == [-0.5]  # words when token ids are not given


def test_missing_eos_penalty():
    penalty = MissingEosPenalty(0.5, max_completion_length=4, eos_token_ids={9})
    ids = [[1, 2, 3, 4], [1, 2, 3, 9], [1, 9], [1, 2]]  # cut; ended at the limit; ended early; short, no eos
    assert penalty([PROMPT] * 4, [""] * 4, completion_ids=ids) == [-0.5, 0.0, 0.0, 0.0]


def test_python_reward(tmp_path, monkeypatch):
    (tmp_path / "my_rewards.py").write_text(
        "def shout(prompts, completions, **kwargs):\n    return [float(c.isupper()) for c in completions]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    (function,) = build_reward_functions(load_config(sets=["rewards=[python:my_rewards:shout]"]))
    assert function([PROMPT] * 2, ["YES", "no"]) == [1.0, 0.0]
    for spec, message in [
        ("python:my_rewards:nope", "has no 'nope'"),
        ("python:no_such_module:f", "cannot import"),
        ("python:my_rewards", "must be package.module:function"),
    ]:
        with pytest.raises(LlmrlError, match=message):
            build_reward_functions(load_config(sets=[f"rewards=[{spec}]"]))


@pytest.mark.parametrize(
    "content, score",
    [
        ("reward:-3.25", -3.25),
        ("helpfulness:2,reward: 1.5e1", 15.0),
        ("I rate it 7 out of 10. Final: 8", 8.0),
        ("no score", None),
    ],
)
def test_parse_score(content, score):
    assert parse_score(content) == score


# ---------------------------------------------------------------------------------------------------------
# api: against a real server on 127.0.0.1


def api_reward(url, *sets):
    cfg = load_config(sets=[f"rewards=[api:{url}]", "api.model=judge-1", "api.backoff=0", *sets])
    return build_reward_functions(cfg)[0]


def test_api_reward_scores_over_http(monkeypatch):
    monkeypatch.setenv("NVIDIA_API_KEY", "sk-test-secret")
    with FakeRewardServer() as server:
        reward = api_reward(server.url)
        scores = reward([PROMPT, PROMPT, PROMPT], ["42", chat("forty-two"), ""])
    assert scores == [2.0, 9.0, 0.0]
    assert len(server.requests) == 3
    # requests run concurrently and may arrive in any order
    (request,) = [r for r in server.requests if r["body"]["messages"][-1]["content"] == "42"]
    assert request["path"] == "/v1/chat/completions" and request["auth"] == "Bearer sk-test-secret"
    assert request["body"]["model"] == "judge-1"
    assert request["body"]["messages"] == [*PROMPT, {"role": "assistant", "content": "42"}]


def test_api_judge_prompt_template(monkeypatch):
    monkeypatch.setenv("NVIDIA_API_KEY", "k")
    with FakeRewardServer() as server:
        reward = api_reward(server.url, "api.prompt_template=Rate {completion} for {prompt}")
        reward([PROMPT], ["42"])
    assert server.requests[0]["body"]["messages"] == [{"role": "user", "content": "Rate 42 for What is 6 * 7?"}]


@pytest.mark.parametrize("status", [503, 429])
def test_api_reward_retries_then_succeeds(monkeypatch, status):
    monkeypatch.setenv("NVIDIA_API_KEY", "k")
    with FakeRewardServer(failures=2, status=status) as server:
        assert api_reward(server.url, "api.max_retries=2")([PROMPT], ["abc"]) == [3.0]
    assert len(server.requests) == 3


def test_api_reward_gives_up_after_its_retries(monkeypatch, caplog):
    monkeypatch.setenv("NVIDIA_API_KEY", "sk-never-shown")
    with FakeRewardServer(failures=10) as server, pytest.raises(LlmrlError) as error:
        api_reward(server.url, "api.max_retries=1")([PROMPT], ["abc"])
    assert "answered HTTP 503" in str(error.value) and len(server.requests) == 2
    assert "sk-never-shown" not in str(error.value) and "sk-never-shown" not in caplog.text


def test_api_reward_unreachable_server(monkeypatch):
    monkeypatch.setenv("NVIDIA_API_KEY", "k")
    with FakeRewardServer() as server:
        url = server.url
    with pytest.raises(LlmrlError, match=r"no answer from .* after 2 tries"):
        api_reward(url, "api.max_retries=1", "api.timeout=2")([PROMPT], ["abc"])


def test_api_reward_missing_key(monkeypatch):
    monkeypatch.delenv("MY_JUDGE_KEY", raising=False)
    with pytest.raises(LlmrlError, match="needs an API key in the environment variable MY_JUDGE_KEY"):
        api_reward("http://127.0.0.1:9/v1", "api.key_env=MY_JUDGE_KEY")
    with pytest.raises(LlmrlError, match="set api.model=NAME"):
        build_reward_functions(load_config(sets=["rewards=[api:http://127.0.0.1:9/v1]"]))


def test_api_reward_without_a_key_for_a_local_server(monkeypatch):
    monkeypatch.delenv("NVIDIA_API_KEY", raising=False)
    with FakeRewardServer() as server:
        assert api_reward(server.url, "api.key_env=null")([PROMPT], ["ab"]) == [2.0]
    assert server.requests[0]["auth"] is None


# ---------------------------------------------------------------------------------------------------------
# reward_model:


def test_reward_model_reward_scores_in_batches(trained_reward_model):
    reward = RewardModelReward(str(trained_reward_model), batch_size=3)
    prompts = [[{"role": "user", "content": f"Q{i}?"}] for i in range(7)]
    completions = [chat("good good 1") if i % 2 else chat("bad bad 1") for i in range(7)]
    scores = reward(prompts, completions)
    assert len(scores) == 7
    good, bad = scores[1::2], scores[0::2]
    assert min(good) > max(bad)
    # batching does not change a score
    assert reward(prompts[:1], completions[:1])[0] == pytest.approx(scores[0], abs=1e-4)


def test_reward_model_reward_refuses_a_causal_lm(tiny_model_path):
    with pytest.raises(LlmrlError, match="is not a reward model .*LlamaForCausalLM.*train one with --method reward"):
        RewardModelReward(str(tiny_model_path))


@pytest.mark.slow
def test_rloo_runs_with_a_reward_model_from_method_reward(tmp_path, trained_reward_model):
    from llmrl.runner import run_training

    out = tmp_path / "rloo"
    run_training(
        load_config(
            sets=[
                "method=rloo",
                "model=builtin:tiny",
                "dataset=builtin:prompts",
                f"output_dir={out}",
                "max_steps=3",
                f"rewards=[reward_model:{trained_reward_model}]",
                "rl.max_completion_length=8",
                "logging_steps=1",
            ]
        )
    )
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    logged = [r for r in records if "rewards/reward_model/mean" in r]
    assert len(logged) == 3
    assert all(r["rewards/reward_model/mean"] == r["rewards/reward_model/mean"] for r in logged)  # finite
    assert (out / "final" / "model.safetensors").is_file()
