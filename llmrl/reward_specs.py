"""Reading a reward spec (``accuracy``, ``reward_model:PATH``, ``api:URL``, ...): the one place a spec is
read, with nothing heavy imported, so that the config can check its ``rewards`` at once."""

import difflib

from llmrl.errors import LlmrlError

SPEC_KINDS = {  # kind -> whether it takes an argument after "kind:"
    "accuracy": False,
    "format": False,
    "length": False,
    "reward_model": True,
    "api": True,
    "python": True,
}


def parse_spec(spec: str) -> tuple[str, str | None]:
    """(kind, argument) of a reward spec such as ``reward_model:runs/rm/final``, or a one-line error."""
    kind, sep, argument = str(spec).partition(":")
    if kind not in SPEC_KINDS:
        close = difflib.get_close_matches(kind, list(SPEC_KINDS), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        accepted = "accuracy, format, length, reward_model:PATH, api:URL, python:module:function"
        raise LlmrlError(f"unknown reward '{spec}'{hint} (accepted: {accepted})")
    if SPEC_KINDS[kind] and not argument:
        raise LlmrlError(f"reward '{spec}' needs an argument: {kind}:...")
    if not SPEC_KINDS[kind] and sep:
        raise LlmrlError(f"reward '{kind}' takes no argument (got '{spec}'); its options are under reward_fns.*")
    return kind, argument or None
