"""Console output and the run log: rich on the terminal, plain lines in ``OUTPUT_DIR/train.log``."""

import logging
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.logging import RichHandler

console = Console(stderr=True)
LOGGERS = ("llmrl", "llmrl.metrics", "transformers", "trl")  # their records go to the run log


def setup_console_logging() -> None:
    """Send llmrl's log records to the terminal through rich (idempotent)."""
    logger = logging.getLogger("llmrl")
    if not any(isinstance(h, RichHandler) for h in logger.handlers):
        logger.addHandler(RichHandler(console=console, show_path=False, markup=False))
    logger.setLevel(logging.INFO)
    logging.getLogger("llmrl.metrics").setLevel(logging.INFO)


@contextmanager
def log_to_file(path: Path, names: tuple[str, ...] = LOGGERS):
    """While active, copy the records of the loggers ``names`` (by default llmrl's, metrics included,
    transformers' and TRL's) into ``path``."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    loggers = [logging.getLogger(name) for name in names]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
        handler.close()
