"""Reward functions named by spec strings: the ``rewards`` of online RL and the judges of ``llmrl eval``.

| spec                              | reward of one completion                                                  |
| --------------------------------- | ------------------------------------------------------------------------- |
| ``accuracy``                      | 1 when its final answer equals the row's ``solution`` (or ``answer``), else 0 |
| ``format``                        | 1 when it matches ``reward_fns.format_pattern``, else 0                   |
| ``length``                        | 0 at ``reward_fns.length_target`` tokens, down to -1 at 0 or twice that   |
| ``reward_model:PATH_OR_NAME``     | the score of a sequence-classification reward model                       |
| ``api:URL``                       | the score a model behind an OpenAI-compatible chat API gives              |
| ``python:package.module:function`` | whatever your function returns                                           |

Each builds a callable with TRL's reward-function signature, ``f(prompts, completions, **columns)`` returning
one float (or None) per completion; dataset columns such as ``solution`` arrive as keyword arguments.
Specs are read by ``llmrl.reward_specs.parse_spec``. Heavy libraries are imported only when a function is
built.
"""

import base64
import importlib
import json
import logging
import math
import os
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from llmrl.builtin import resolve_model
from llmrl.errors import LlmrlError, first_line, redact_secrets
from llmrl.loading import from_pretrained
from llmrl.reward_specs import parse_spec

logger = logging.getLogger("llmrl")
RETRY_STATUS = (408, 409, 425, 429, 500, 502, 503, 504)
INTEGER = re.compile(r"-?\d{1,3}(,\d{3})*|-?\d+")  # 42, -7, 1,234: compared as integers


def build_reward_functions(cfg) -> list:
    """The reward callables for ``cfg.rewards``, in order (``cfg`` is a TrainingConfig)."""
    return [build_reward_function(spec, cfg) for spec in cfg.rewards]


def build_reward_function(spec: str, cfg):
    kind, argument = parse_spec(spec)
    if kind == "accuracy":
        return AccuracyReward()
    if kind == "format":
        return FormatReward(cfg.reward_fns.format_pattern)
    if kind == "length":
        return LengthReward(cfg.reward_fns.length_target)
    if kind == "reward_model":
        return RewardModelReward(
            argument, batch_size=cfg.reward_fns.batch_size, trust_remote_code=cfg.trusts_code_of(argument)
        )
    if kind == "api":
        return ApiReward(argument, cfg.api)
    return python_function(argument)


# ---------------------------------------------------------------------------------------------------------
# Rule-based rewards


def completion_text(completion) -> str:
    """A completion as text: a string as is, a conversational completion as its messages' contents."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        return "\n".join(str(m.get("content") or "") for m in completion if isinstance(m, dict))
    return "" if completion is None else str(completion)


def final_answer(text: str) -> str:
    """The part of a completion that states its answer: after the last '####' when there is one."""
    return text.rsplit("####", 1)[1] if "####" in text else text


def answers_match(completion: str, gold) -> bool:
    """Whether the completion's final answer equals ``gold`` (numbers, fractions, LaTeX; by math-verify)."""
    from math_verify import parse, verify

    if gold is None or not str(gold).strip() or not completion.strip():
        return False
    # math-verify bounds its work with signal alarms, which only the main thread may set
    timeout = 5 if threading.current_thread() is threading.main_thread() else None
    gold = final_answer(str(gold)).strip()
    answer = final_answer(completion).strip()
    if INTEGER.fullmatch(gold) and INTEGER.fullmatch(answer):  # the common case, without math-verify's parsing
        return int(gold.replace(",", "")) == int(answer.replace(",", ""))
    gold_parsed = parse(gold, parsing_timeout=timeout) or parse(f"${gold}$", parsing_timeout=timeout)
    answer_parsed = parse(final_answer(completion), parsing_timeout=timeout)
    if not gold_parsed or not answer_parsed:
        return False
    return bool(verify(gold_parsed, answer_parsed, timeout_seconds=timeout))


class AccuracyReward:
    """1.0 when a completion's final answer (boxed, after '####', or the last number) equals the solution."""

    __name__ = "accuracy"

    def __call__(self, prompts, completions, **columns) -> list[float]:
        golds = columns.get("solution") or columns.get("answer")
        if golds is None:
            raise LlmrlError("the accuracy reward needs a 'solution' or 'answer' column in the dataset")
        return [float(answers_match(completion_text(c), g)) for c, g in zip(completions, golds, strict=True)]


class FormatReward:
    """1.0 when a completion matches a regular expression (by default: <think>...</think> <answer>...</answer>)."""

    __name__ = "format"

    def __init__(self, pattern: str):
        try:
            self.pattern = re.compile(pattern, re.DOTALL)
        except re.error as e:
            raise LlmrlError(f"invalid reward_fns.format_pattern {pattern!r}: {e}") from None

    def __call__(self, prompts, completions, **_) -> list[float]:
        return [1.0 if self.pattern.search(completion_text(c).strip()) else 0.0 for c in completions]


class LengthReward:
    """0 at the target length (tokens), falling linearly to -1 at zero or twice the target and beyond."""

    __name__ = "length"

    def __init__(self, target: int):
        self.target = target

    def __call__(self, prompts, completions, completion_ids=None, **_) -> list[float]:
        lengths = [len(ids) for ids in completion_ids] if completion_ids is not None else None
        if lengths is None:
            lengths = [len(completion_text(c).split()) for c in completions]
        return [max(-1.0, -abs(n - self.target) / self.target) for n in lengths]


class MissingEosPenalty:
    """-penalty for a completion cut at the length limit before its end token, else 0 (added by online RL)."""

    __name__ = "missing_eos_penalty"

    def __init__(self, penalty: float, max_completion_length: int, eos_token_ids: set[int]):
        self.penalty, self.max_completion_length, self.eos_token_ids = penalty, max_completion_length, eos_token_ids

    def __call__(self, prompts, completions, completion_ids=None, **_) -> list[float]:
        if completion_ids is None:
            return [0.0] * len(completions)
        return [
            -self.penalty if len(ids) >= self.max_completion_length and ids[-1] not in self.eos_token_ids else 0.0
            for ids in completion_ids
        ]


def python_function(target: str):
    """``package.module:function``: a function of the user's with TRL's reward-function signature."""
    module_name, _, function_name = target.partition(":")
    if not module_name or not function_name:
        raise LlmrlError(f"python reward '{target}' must be package.module:function")
    try:
        function = getattr(importlib.import_module(module_name), function_name)
    except ImportError as e:
        raise LlmrlError(f"python reward: cannot import module '{module_name}': {first_line(e)}") from None
    except AttributeError:
        raise LlmrlError(f"python reward: module '{module_name}' has no '{function_name}'") from None
    if not callable(function):
        raise LlmrlError(f"python reward: '{target}' is not callable")
    return function


# ---------------------------------------------------------------------------------------------------------
# A local reward model


class RewardModelReward:
    """Scores prompt + completion with a sequence-classification reward model, in batches, on the policy's
    device (the accelerate process's device), with the reward model's own tokenizer and chat template."""

    __name__ = "reward_model"

    def __init__(self, name: str, batch_size: int = 16, trust_remote_code: bool = False):
        import torch
        from accelerate import PartialState
        from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

        path = resolve_model(name)
        try:
            config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
        except (OSError, ValueError) as e:
            raise LlmrlError(f"reward model '{name}' could not be loaded: {first_line(e)}") from e
        architectures = config.architectures or []
        if not any(a.endswith("ForSequenceClassification") for a in architectures):
            raise LlmrlError(
                f"'{name}' is not a reward model (its architecture is {', '.join(architectures) or 'unknown'}): "
                "train one with --method reward, or name a sequence-classification model"
            )
        if getattr(config, "num_labels", 1) != 1:
            raise LlmrlError(f"reward model '{name}' has {config.num_labels} outputs; a reward model has 1")
        self.tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.device = PartialState().device
        bf16 = self.device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False)
        dtype = torch.bfloat16 if bf16 else torch.float32
        what = f"reward model '{name}' could not be loaded"
        self.model = from_pretrained(
            AutoModelForSequenceClassification, name, what, dtype=dtype, trust_remote_code=trust_remote_code
        ).to(self.device)
        self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.model.eval()
        self.batch_size = batch_size

    def texts(self, prompts, completions) -> list[str]:
        texts = []
        for prompt, completion in zip(prompts, completions, strict=True):
            if isinstance(prompt, list) and self.tokenizer.chat_template:
                answer = (
                    completion
                    if isinstance(completion, list)
                    else [{"role": "assistant", "content": completion_text(completion)}]
                )
                texts.append(self.tokenizer.apply_chat_template(prompt + answer, tokenize=False))
            else:
                texts.append(completion_text(prompt) + completion_text(completion))
        return texts

    def __call__(self, prompts, completions, **_) -> list[float]:
        import torch

        texts, scores = self.texts(prompts, completions), []
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(
                texts[start : start + self.batch_size],
                return_tensors="pt",
                padding=True,
                truncation=True,
                add_special_tokens=False,
            ).to(self.device)
            with torch.inference_mode():
                scores += self.model(**batch).logits[:, 0].float().tolist()
        return scores


# ---------------------------------------------------------------------------------------------------------
# A remote reward model or judge


class ApiReward:
    """Scores each completion with a model behind an OpenAI-compatible chat-completions API.

    The conversation (prompt + completion) is sent as chat messages, as reward models served this way expect
    (NVIDIA's Nemotron reward models answer ``reward:<score>``); with ``api.prompt_template`` a generative judge
    gets one user message instead. The score is the number after ``reward:`` or else the last number in the
    reply. Requests run ``api.concurrency`` at a time, each retried with exponential backoff on timeouts,
    connection errors, 429 and 5xx. The key is read from ``$<api.key_env>`` and sent only in the header; a
    URL's ``user:password@`` is sent as HTTP basic authentication, and never shown.
    """

    __name__ = "api"

    def __init__(self, url: str, options):
        if not url.startswith(("http://", "https://")):
            raise LlmrlError(f"api reward URL must start with http:// or https://, got '{redact_secrets(url)}'")
        if not options.model:
            raise LlmrlError("the api reward needs the served model's name: set api.model=NAME")
        parts = urllib.parse.urlsplit(url.rstrip("/"))
        self.authorization = None
        if parts.username is not None:  # the URL's credentials: basic authentication, and out of the endpoint
            credentials = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
            self.authorization = "Basic " + base64.b64encode(credentials.encode()).decode()
            parts = parts._replace(netloc=parts.netloc.rpartition("@")[2])
        elif options.key_env:
            key = os.environ.get(options.key_env)
            if not key:
                raise LlmrlError(
                    f"the api reward needs an API key in the environment variable {options.key_env}: set it "
                    "(for example in .env), or set api.key_env to the variable that holds it"
                )
            self.authorization = f"Bearer {key}"
        url = urllib.parse.urlunsplit(parts)
        self.endpoint = url if url.endswith("/chat/completions") else url + "/chat/completions"
        self.options = options

    def __call__(self, prompts, completions, **_) -> list[float | None]:
        with ThreadPoolExecutor(max_workers=self.options.concurrency) as pool:
            return list(pool.map(self.score, prompts, completions))

    def messages(self, prompt, completion) -> list[dict[str, str]]:
        answer = completion_text(completion)
        if self.options.prompt_template:
            text = self.options.prompt_template.format(prompt=completion_text(prompt), completion=answer)
            return [{"role": "user", "content": text}]
        conversation = prompt if isinstance(prompt, list) else [{"role": "user", "content": completion_text(prompt)}]
        return [*conversation, {"role": "assistant", "content": answer}]

    def score(self, prompt, completion) -> float | None:
        reply = self.post({"model": self.options.model, "messages": self.messages(prompt, completion)})
        try:
            content = reply["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise LlmrlError(f"api reward: {self.endpoint} answered without choices[0].message.content") from None
        score = parse_score(content)
        if score is None:
            logger.warning("api reward: no score in the reply %r", content[:80])
        return score

    def post(self, body: dict[str, Any]) -> dict:
        headers = {"Content-Type": "application/json"}
        if self.authorization:
            headers["Authorization"] = self.authorization
        data = json.dumps(body).encode()
        attempts = self.options.max_retries + 1
        for attempt in range(attempts):
            request = urllib.request.Request(self.endpoint, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.options.timeout) as response:
                    return json.loads(response.read())
            except urllib.error.HTTPError as e:
                if e.code not in RETRY_STATUS or attempt == attempts - 1:
                    raise LlmrlError(f"api reward: {self.endpoint} answered HTTP {e.code} {e.reason}") from None
                delay = retry_delay(e.headers.get("Retry-After"), attempt, self.options.backoff)
            except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
                if attempt == attempts - 1:
                    reason = getattr(e, "reason", e)
                    raise LlmrlError(
                        f"api reward: no answer from {self.endpoint} after {attempts} tries ({reason})"
                    ) from None
                delay = retry_delay(None, attempt, self.options.backoff)
            except json.JSONDecodeError:
                raise LlmrlError(f"api reward: {self.endpoint} answered with something that is not JSON") from None
            time.sleep(delay)
        raise AssertionError("unreachable")


def retry_delay(retry_after: str | None, attempt: int, backoff: float) -> float:
    """Seconds to wait before the next try: the server's Retry-After (capped at 60 s), else backoff * 2^attempt."""
    if retry_after:
        try:
            return min(float(retry_after), 60.0)
        except ValueError:
            pass
    return backoff * 2**attempt


SCORE = re.compile(r"reward\s*[:=]\s*(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)", re.IGNORECASE)
NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def parse_score(content: str) -> float | None:
    """The number after 'reward:' in a reply, else its last number, else None."""
    match = SCORE.search(content)
    numbers = [match.group(1)] if match else NUMBER.findall(content)
    if not numbers:
        return None
    value = float(numbers[-1])
    return value if math.isfinite(value) else None
