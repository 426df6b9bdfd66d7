"""The one exception type for mistakes in what the user asked for, and how errors are shown in one line."""


class LlmrlError(ValueError):
    """Bad input from the user: the CLI shows its message as one line, without a traceback."""


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (its type name when the message is empty)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def loading_failed(what: str, error: BaseException, model: str) -> "LlmrlError":
    """The error for a model that did not load: transformers' first line, or for a model that ships its own
    code, how to allow it (llmrl never runs such code unless the model is named in trust_remote_code)."""
    if "custom code" in str(error):
        return LlmrlError(
            f"{what}: it ships its own Python code, which runs only for a model you trust: "
            f"--set trust_remote_code=[{model}]"
        )
    return LlmrlError(f"{what}: {first_line(error)}")
