"""How a config field is declared and checked: its default, its help text and, where it maps to one, the TRL
config field it sets, all in ``field(metadata=...)`` so that ``--print-config --explain`` and the TRL
arguments are read from one place (as TRL's own configs carry ``metadata={"help": ...}``).

Bottom layer: imports nothing of llmrl but its errors.
"""

import copy
import dataclasses
import difflib
from typing import Any

from llmrl.errors import LlmrlError


def option(default: Any, help: str, trl: str | None = None) -> Any:
    """A config field: ``default`` (a list or dict is copied per instance), its ``help`` and the name of the
    TRL config field it is passed to as is (``trl``), if any."""
    metadata = {"help": help, "trl": trl}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def section(cls: type, help: str) -> Any:
    """A config field holding a section (a dataclass of options, set with dotted keys such as ``lora.r``)."""
    return dataclasses.field(default_factory=cls, metadata={"help": help, "trl": None})


def trl_values(options) -> dict[str, Any]:
    """{TRL field: value} for the fields of ``options`` that map to one, leaving out those set to None (TRL's
    default then applies)."""
    return {
        f.metadata["trl"]: getattr(options, f.name)
        for f in dataclasses.fields(options)
        if f.metadata.get("trl") and getattr(options, f.name) is not None
    }


def check(ok: bool, name: str, value: Any, allowed: str) -> None:
    """Raise the one-line error for an invalid value: ``invalid NAME: VALUE (expected ALLOWED)``."""
    if not ok:
        raise LlmrlError(f"invalid {name}: {value!r} (expected {allowed})")


def did_you_mean(word: str, choices, prefix: str = "") -> str:
    """``; did you mean 'x'?`` for the close matches of ``word`` among ``choices`` (empty when none)."""
    matches = difflib.get_close_matches(word, list(choices), n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(prefix + m) for m in matches)}?" if matches else ""
