"""Read ``.env`` (KEY=VALUE lines) into the environment: API keys and tracker settings, never echoed."""

import os
from pathlib import Path


def load_dotenv(path: Path = Path(".env")) -> list[str]:
    """Set each variable of ``path`` that the environment does not already have; return the names set.

    Lines are ``KEY=VALUE`` (an ``export`` prefix and quotes around the value are allowed); blank lines,
    comments and lines without ``=`` are skipped. Values are never printed or logged.
    """
    if not path.is_file():
        return []
    loaded = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        key, value = key.strip(), value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        if key and value and key not in os.environ:
            os.environ[key] = value
            loaded.append(key)
    return loaded
