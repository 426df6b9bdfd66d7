"""One run per folder: an advisory lock file, ``FOLDER/.llmrl.lock``, held while a run writes there.

The file names its holder (pid, host, command, start time) and is held with ``flock`` for the holder's
lifetime, so the kernel releases it when the holder dies, however it dies: a lock file that nobody holds is
stale and is taken over with a warning. A second run into a folder in use (or into a folder inside one, such
as a stage of a running pipeline) refuses with one line naming the holder.

A run that starts other processes (accelerate, Ray, a pipeline's stages) holds one lock for all of them: it
names the folder in ``LLMRL_RUN_LOCK``, and a process whose folder lies inside that one does not lock again.
"""

import datetime
import fcntl
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from llmrl.errors import LlmrlError
from llmrl.files import ensure_writable_folder

LOCK_FILE = ".llmrl.lock"
HELD_ENV = "LLMRL_RUN_LOCK"  # the folder whose lock this process (or its parent launcher) holds
logger = logging.getLogger("llmrl")


class RunLock:
    """The lock of one run folder; ``acquire`` creates the folder when needed, ``release`` removes the lock
    file (and, with ``remove_if_created``, the folder if this lock created it and nothing else is there)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self.fd: int | None = None
        self.created = False
        self.outer_held: str | None = None

    def acquire(self) -> "RunLock":
        if covered_by_held_lock(self.folder):
            return self  # the launcher or pipeline that started this process holds it
        check_enclosing_folders(self.folder)
        self.created = not self.folder.exists()
        ensure_writable_folder(self.folder)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = read_holder(fd)
                os.close(fd)
                self._remove_created_folder()
                raise LlmrlError(
                    f"{self.folder} is in use by another run ({describe(holder)}); {WAIT_OR_MOVE}"
                ) from None
            if same_file(fd, self.path):
                break
            os.close(fd)  # the holder removed the file between our open and our lock: open the new one
        previous = read_holder(fd)
        if previous:
            logger.warning(
                "took over the lock of %s left by a run that is no longer running (%s)", self.folder, describe(previous)
            )
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder_info()) + "\n").encode(), 0)
        self.fd = fd
        self.outer_held = os.environ.get(HELD_ENV)
        os.environ[HELD_ENV] = os.path.abspath(self.folder)  # processes this run starts do not lock again
        return self

    def release(self, remove_if_created: bool = False) -> None:
        if self.fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # unlinked before unlocking: a waiting process re-opens anew
        finally:
            os.close(self.fd)
            self.fd = None
            if self.outer_held is None:
                os.environ.pop(HELD_ENV, None)
            else:
                os.environ[HELD_ENV] = self.outer_held
        if remove_if_created:
            self._remove_created_folder()

    def _remove_created_folder(self) -> None:
        if self.created and self.folder.is_dir() and not any(p.name != LOCK_FILE for p in self.folder.iterdir()):
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release(remove_if_created=True)  # a folder this lock created goes if nothing but the lock is there


WAIT_OR_MOVE = "wait for it to finish, stop it, or choose another output folder"


def covered_by_held_lock(folder: Path) -> bool:
    held = os.environ.get(HELD_ENV)
    return bool(held) and is_within(folder, Path(held))


def check_enclosing_folders(folder: Path) -> None:
    """Refuse a folder inside one that a live run holds (a stage folder of a running pipeline)."""
    for parent in Path(os.path.abspath(folder)).parents:
        holder = lock_state(parent)
        if holder is not None:
            raise LlmrlError(
                f"{folder} is inside {parent}, which is in use by another run ({describe(holder)}); {WAIT_OR_MOVE}"
            )


def holder_info() -> dict:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": " ".join(["llmrl", *sys.argv[1:]]) if sys.argv else "llmrl",
        "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "tmux": tmux_session(),  # where to attach to watch it (llmrl runs shows it)
    }


def tmux_session() -> str | None:
    """The tmux session this process runs in, if any."""
    if not os.environ.get("TMUX"):
        return None
    try:
        result = subprocess.run(["tmux", "display-message", "-p", "#S"], capture_output=True, text=True, timeout=2)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() or None


def read_holder(fd: int) -> dict:
    try:
        return json.loads(os.pread(fd, 65536, 0).decode() or "{}")
    except (OSError, ValueError):
        return {}


def describe(holder: dict) -> str:
    if not holder:
        return "holder unknown"
    return f"pid {holder.get('pid')} on {holder.get('host')}, started {holder.get('started')}: {holder.get('command')}"


def same_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def is_within(folder: Path, parent: Path) -> bool:
    folder, parent = Path(os.path.abspath(folder)), Path(os.path.abspath(parent))
    return folder == parent or parent in folder.parents


def lock_state(folder: Path) -> dict | None:
    """The holder of ``folder``'s lock if a live process holds it ({} when it does not say), else None."""
    lock = Path(folder) / LOCK_FILE
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return None
    except BlockingIOError:
        return read_holder(fd)
    finally:
        os.close(fd)  # closing drops the shared lock taken to test it
