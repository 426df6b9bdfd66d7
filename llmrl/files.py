"""Reading the user's files and naming the user's paths: one clear error for text that is not UTF-8, for a
name meant as a path, and for a folder that cannot be written.

Pure Python: imported by the config layer, so nothing heavy here.
"""

import os
from pathlib import Path

from llmrl.errors import LlmrlError

CHUNK = 1 << 20


def read_text(path: Path, what: str) -> str:
    """The text of a UTF-8 file (a BOM is dropped); an error naming the file and the line otherwise."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise not_utf8(what, path, data[: e.start], data[e.start]) from None


def check_utf8(path: Path, what: str) -> None:
    """Raise naming the line of the first byte of ``path`` that is not UTF-8, reading it in chunks."""
    lines, carry = 0, b""
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            data, carry = carry + chunk, b""
            try:
                data.decode("utf-8")
            except UnicodeDecodeError as e:
                if e.reason != "unexpected end of data":
                    raise not_utf8(what, path, data[: e.start], data[e.start], lines) from None
                carry = data[e.start :]  # a character cut by the chunk's end: decoded with the next chunk
                data = data[: e.start]
            lines += data.count(b"\n")
    if carry:
        raise not_utf8(what, path, b"", carry[0], lines)


def not_utf8(what: str, path: Path, before: bytes, byte: int, lines_before: int = 0) -> LlmrlError:
    with path.open("rb") as f:
        start = f.read(4096)
    if is_utf16(start):
        return LlmrlError(
            f"{what} {path} is UTF-16 text, not UTF-8; save it as UTF-8 "
            f"(e.g. iconv -f utf-16 -t utf-8 {path.name} > fixed{path.suffix})"
        )
    line = lines_before + before.count(b"\n") + 1
    column = len(before) - (before.rfind(b"\n") + 1) + 1
    return LlmrlError(
        f"{what} {path} is not UTF-8 text: line {line}, column {column} has byte 0x{byte:02x}; save it as UTF-8 "
        f"(e.g. iconv -f latin1 -t utf-8 {path.name} > fixed{path.suffix}, if it is Latin-1)"
    )


def is_utf16(start: bytes) -> bool:
    """Whether a file's first bytes are UTF-16 text (Windows' "Unicode"): they decode as UTF-16 (after a
    byte-order mark, or little-endian with a zero byte beside each ASCII one), and a third of the characters
    at least are ASCII (the punctuation of JSON, CSV and YAML), which binary data is not."""
    start = start[: len(start) // 2 * 2]
    if start[:2] in (b"\xff\xfe", b"\xfe\xff"):
        encoding = "utf-16"
    elif start[1:4:2] == b"\0\0":
        encoding = "utf-16-le"
    else:
        return False
    text = start.decode(encoding, errors="replace")  # (the read may cut a character in two at its end)
    return len(text) > 0 and sum(c.isascii() and (c.isprintable() or c.isspace()) for c in text) >= len(text) / 3


def looks_like_path(name: str) -> bool:
    """Whether a model or dataset name is meant as a local path rather than a hub id (``org/name``): it starts
    with ``.``, ``/`` or ``~``, has a backslash, or has more than one ``/``."""
    return name.startswith((".", "/", "~")) or "\\" in name or name.count("/") > 1


def ensure_writable_folder(folder: Path, what: str = "the output folder") -> None:
    """Create ``folder`` (and its parents) or raise naming the folder that cannot be written and what to do."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".llmrl-write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except PermissionError:
        blocked = next(p for p in (folder, *folder.absolute().parents) if p.exists())  # the folder to make writable
        raise LlmrlError(
            f"cannot write {what} {folder}: permission denied on {blocked}; make it writable "
            f"(chmod u+w {blocked}) or choose another folder"
        ) from None
    except OSError as e:
        raise LlmrlError(f"cannot write {what} {folder}: {e.strerror or e}") from None
