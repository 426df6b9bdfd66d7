"""The one exception type for mistakes in what the user asked for, and how errors are shown in one line."""


class LlmrlError(ValueError):
    """Bad input from the user: the CLI shows its message as one line, without a traceback."""


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (its type name when the message is empty)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
