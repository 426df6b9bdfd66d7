"""The one exception type for mistakes in what the user asked for."""


class LlmrlError(ValueError):
    """Bad input from the user: the CLI shows its message as one line, without a traceback."""
