"""``lazy_import``: a third-party module that is imported when one of its attributes is first used.

For a module whose classes and functions use torch in nearly every body (PPO's loop): it stays cheap to
import (``llmrl --help`` loads every method module), without an ``import torch`` line in each function.
Only for third-party packages: llmrl's own modules are imported at the top, so the import graph stays visible.
"""

import importlib


class LazyModule:
    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attribute: str):
        return getattr(importlib.import_module(self._name), attribute)

    def __repr__(self) -> str:
        return f"<lazily imported module {self._name!r}>"


def lazy_import(name: str) -> LazyModule:
    if name.split(".")[0] == "llmrl":
        raise ValueError("import llmrl's own modules at the top of the file")
    return LazyModule(name)
