"""The one exception type for mistakes in what the user asked for, how errors are shown in one line, and
the one rule that keeps credentials out of everything llmrl prints, logs or writes (``redact_secrets``)."""

import re
from pathlib import Path

# a URL's user:password@ part, and the shapes of common API keys (OpenAI, Hugging Face, NVIDIA, GitHub, Slack,
# AWS, Google): never printed, logged or written
URL_USERINFO = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@]+@")
KEY_LIKE = re.compile(
    r"\b(?:sk-[A-Za-z0-9_-]{16,}|hf_[A-Za-z0-9]{20,}|nvapi-[A-Za-z0-9_-]{20,}|gh[pousr]_[A-Za-z0-9]{20,}"
    r"|github_pat_[A-Za-z0-9_]{20,}|xox[abprs]-[A-Za-z0-9-]{10,}|AKIA[0-9A-Z]{16}|AIza[0-9A-Za-z_-]{30,})"
)


class LlmrlError(ValueError):
    """Bad input from the user: the CLI shows its message as one line, without a traceback."""


def redact_secrets(text: str) -> str:
    """``text`` with the credentials in URLs (``https://user:password@host`` -> ``https://***@host``) and
    anything shaped like an API key replaced by ``***``."""
    return KEY_LIKE.sub("***", URL_USERINFO.sub(r"\1***@", text))


def first_line(error: BaseException, limit: int = 300) -> str:
    """An exception's message as one line: its first paragraph, lines joined, cut at a word past ``limit``
    characters (its type name when the message is empty). Never cut mid-sentence at a line break."""
    text = str(error).strip()
    if not text:
        return type(error).__name__
    paragraph = " ".join(line.strip() for line in text.split("\n\n")[0].splitlines() if line.strip())
    if len(paragraph) > limit:
        paragraph = paragraph[:limit].rsplit(" ", 1)[0] + " ..."
    return paragraph


def missing_local_folder_hint(name: str) -> str:
    """For a name read as a hub id whose first part is a local folder (``runs/rm`` beside ``runs/``): say that
    no such local folder exists either."""
    first = name.split("/", 1)[0]
    missing = "/" in name and Path(first).is_dir() and not Path(name).exists()
    return f" (and there is no local folder {name})" if missing else ""


def loading_failed(what: str, error: BaseException, model: str) -> "LlmrlError":
    """The error for a model that did not load: transformers' first line, or for a model that ships its own
    code, how to allow it (llmrl never runs such code unless the model is named in trust_remote_code)."""
    if type(error).__name__ == "SafetensorError":
        return LlmrlError(
            f"{what}: a weights file in {model} is damaged or incomplete ({first_line(error)}); save or copy the "
            "model again"
        )
    if "custom code" in str(error):
        return LlmrlError(
            f"{what}: it ships its own Python code, which runs only for a model you trust: "
            f"--set trust_remote_code=[{model}]"
        )
    return LlmrlError(f"{what}: {first_line(error)}{missing_local_folder_hint(model)}")
