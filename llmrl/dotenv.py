"""Read ``.env`` (KEY=VALUE lines) into the environment: API keys and tracker settings, never echoed."""

import os
import re
import sys
from pathlib import Path

from llmrl.errors import LlmrlError
from llmrl.files import read_text

KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def load_dotenv(path: Path = Path(".env")) -> list[str]:
    """Set each variable of ``path`` that the environment does not already have; return the names set.

    Lines are ``KEY=VALUE`` (an ``export`` prefix and quotes around the value are allowed); blank lines and
    comments are skipped. A line of another form, or a file that is not UTF-8, is skipped with a warning on
    stderr naming the line, so that a broken ``.env`` never stops a command. Values are never printed.
    """
    if not path.is_file():
        return []
    try:
        text = read_text(path, "the environment file")
    except LlmrlError as e:
        warn(f"{e}; its variables were not loaded")
        return []
    loaded = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not KEY.fullmatch(key):
            warn(f"{path} line {number} is not KEY=VALUE (KEY: letters, digits and _), skipped")
            continue
        if value[:1] in ("'", '"'):
            if value[0] not in value[1:]:
                warn(f"{path} line {number}: the value of {key} has no closing quote, skipped")
                continue
            value = value[1 : value.index(value[0], 1)]  # quoted: exactly what is between the quotes
        else:
            value = value.split(" #", 1)[0].strip()  # unquoted: an inline comment is not part of the value
        if value and key not in os.environ:
            os.environ[key] = value
            loaded.append(key)
    return loaded


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)
