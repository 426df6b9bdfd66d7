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
    for line in path.read_text(encoding="utf-8-sig").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        key, value = key.strip(), value.strip()
        if value[:1] in ("'", '"') and value[0] in value[1:]:
            value = value[1 : value.index(value[0], 1)]  # quoted: exactly what is between the quotes
        else:
            value = value.split(" #", 1)[0].strip()  # unquoted: an inline comment is not part of the value
        if key and value and key not in os.environ:
            os.environ[key] = value
            loaded.append(key)
    return loaded
