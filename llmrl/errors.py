"""The one exception type for mistakes in what the user asked for, and how errors are shown in one line."""

from pathlib import Path


class LlmrlError(ValueError):
    """Bad input from the user: the CLI shows its message as one line, without a traceback."""


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
    if "custom code" in str(error):
        return LlmrlError(
            f"{what}: it ships its own Python code, which runs only for a model you trust: "
            f"--set trust_remote_code=[{model}]"
        )
    return LlmrlError(f"{what}: {first_line(error)}{missing_local_folder_hint(model)}")
