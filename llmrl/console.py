"""What a person sees while llmrl runs, and the run log.

- In a terminal: llmrl's messages through rich, and one live progress display per stage (``Progress``): the
  stage, a bar with step/total, elapsed and ETA, the method's few metrics, throughput and GPU memory.
- Not a terminal (piped, CI, tmux ``pipe-pane``, ``console.log``): plain lines that are never wrapped, one per
  logging step (``sft step 20/100 loss 1.23 acc 0.45 | 7.5 it/s | 0:03 eta 0:41``), no bars, no ``\\r``.
- Third-party noise (datasets' and transformers' progress bars, load reports, W&B's banners, warnings llmrl
  has handled) goes to the run log (``train.log``, ``events.log``), not the console; ``--verbose`` shows it.

``LLMRL_LOG_LEVEL`` (set by ``--quiet`` / ``--verbose``, inherited by launched processes) picks the level.
Light to import: rich only.
"""

import contextlib
import io
import logging
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.logging import RichHandler

from llmrl.errors import redact_secrets

console = Console(stderr=True, highlight=False)
LOGGERS = (
    "llmrl",
    "llmrl.metrics",
    "llmrl.details",
    "transformers",
    "trl",
    "datasets",
    "accelerate",
    "peft",
    "py.warnings",
)
THIRD_PARTY = ("transformers", "trl", "datasets", "accelerate", "peft", "py.warnings", "wandb", "torch")
LEVELS = {"quiet": logging.WARNING, "info": logging.INFO, "verbose": logging.DEBUG}
EVAL_FIRST = ("eval_loss", "eval_accuracy", "eval_margin", "eval_rewards/accuracies", "eval_rewards/margins")
EVAL_SKIPPED = ("runtime", "_per_second", "num_tokens", "epoch")
SHOWN = {  # how a metric is named on the console
    "mean_token_accuracy": "acc",
    "rewards/accuracies": "acc",
    "rewards/margins": "margin",
    "completions/mean_length": "len",
    "response_length": "len",
    "eval_accuracy": "eval acc",
}


def log_level() -> str:
    """quiet, info or verbose, from ``LLMRL_LOG_LEVEL`` (default info)."""
    level = os.environ.get("LLMRL_LOG_LEVEL", "info").lower()
    return level if level in LEVELS else "info"


def is_live() -> bool:
    """Whether the console is a terminal that takes a live display (not piped, not --quiet)."""
    return console.is_terminal and not console.is_dumb_terminal and log_level() != "quiet"


class StderrHandler(logging.StreamHandler):
    """Plain lines to whatever ``sys.stderr`` is when a record comes (a pipeline's tee, a test's capture)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):  # logging.StreamHandler sets it; the property always follows sys.stderr
        pass


class RedactSecrets(logging.Filter):
    """Every record llmrl shows or writes, without credentials (``llmrl.errors.redact_secrets``): a URL's
    user:password@, anything shaped like an API key."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_secrets(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


class PlainFormatter(logging.Formatter):
    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")


def setup_console_logging() -> None:
    """llmrl's records to the console (rich in a terminal, plain unwrapped lines otherwise), third-party
    records and warnings to the run log only (idempotent)."""
    logger = logging.getLogger("llmrl")
    if not any(getattr(h, "llmrl_console", False) for h in logger.handlers):
        if console.is_terminal:
            handler = RichHandler(console=console, show_path=False, markup=False)
        else:
            handler = StderrHandler()
            handler.setFormatter(PlainFormatter())
        handler.llmrl_console = True
        handler.addFilter(RedactSecrets())
        logger.addHandler(handler)
    handler = next(h for h in logger.handlers if getattr(h, "llmrl_console", False))
    handler.setLevel(LEVELS[log_level()])
    logger.setLevel(logging.DEBUG if log_level() == "verbose" else logging.INFO)
    for name in ("llmrl.metrics", "llmrl.details"):  # the run log's alone: metrics are on the progress display
        logging.getLogger(name).setLevel(logging.INFO)
        logging.getLogger(name).propagate = False
    quiet_third_party(handler)


def quiet_third_party(console_handler: logging.Handler) -> None:
    """Keep other libraries' progress bars and messages off the console: their records reach the run log
    through ``log_to_file``; with ``--verbose`` they are shown as well."""
    verbose = log_level() == "verbose"
    logging.captureWarnings(True)  # warnings.warn -> the py.warnings logger -> the run log
    for name in THIRD_PARTY:
        library = logging.getLogger(name)
        library.propagate = False
        if not library.handlers:
            library.addHandler(logging.NullHandler())  # no last-resort printing to stderr
        if verbose and console_handler not in library.handlers:
            library.addHandler(console_handler)
    if verbose:
        return
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("TQDM_DISABLE", "1")  # any other tqdm bar (e.g. weight loading, shard writing)
    if os.environ.get("WANDB_MODE") == "offline" and "transformers.integrations.integration_utils" not in sys.modules:
        with contextlib.redirect_stdout(io.StringIO()):  # it prints "Running in WANDB offline mode" when imported
            import transformers.integrations.integration_utils  # noqa: F401
    for module, call in (("datasets.utils.logging", "disable_progress_bar"),):
        if module in sys.modules:
            getattr(sys.modules[module], call)()
    if "transformers" in sys.modules:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        transformers_logging.disable_default_handler()  # its records go to the run log (propagation)
        transformers_logging.enable_propagation()


@contextmanager
def log_to_file(path: Path, names: tuple[str, ...] = LOGGERS):
    """While active, copy the records of the loggers ``names`` (by default llmrl's, metrics included, and the
    libraries' it trains with, warnings included) into ``path``."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets())
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


def stage_title(method: str) -> str:
    """``[2/5] dpo`` inside a pipeline (``LLMRL_STAGE`` is set by it), else the method's name."""
    stage = os.environ.get("LLMRL_STAGE")
    return f"[{stage}] {method}" if stage else method


def format_metrics(record: dict, keys: tuple[str, ...]) -> str:
    """``loss 1.23 acc 0.456`` for the keys of ``record`` that are shown for the method; for an evaluation
    record, its first few figures (``eval loss 1.2 eval accuracy 0.6``)."""
    if any(key.startswith("eval_") for key in record):
        first = [k for k in EVAL_FIRST if k in record]
        rest = [k for k in record if k.startswith("eval_") and k not in first and not k.endswith(EVAL_SKIPPED)]
        keys = tuple(first + rest)[:3]
        figures = [f"{k.removeprefix('eval_').replace('_', ' ')} {record[k]:.4g}" for k in keys]
        return "eval " + " ".join(figures) if figures else ""
    parts = []
    for key in keys:
        value = record.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            parts.append(f"{SHOWN.get(key, key)} {value:.4g}")
    return " ".join(parts)


def clock(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    hours, minutes = divmod(seconds // 60, 60)
    return f"{hours}:{minutes:02d}:{seconds % 60:02d}" if hours else f"{minutes}:{seconds % 60:02d}"


class Progress:
    """One stage's progress, the same for every training loop (TRL's through a callback, PPO's directly).

    ``advance(step)`` after each optimizer step, ``log(step, record)`` at each logging step, ``close()`` at
    the end. In a terminal: a live rich bar (step/total, elapsed, ETA, metrics, throughput, GPU memory). Else:
    plain lines at the first logged step, about every fifth of the run, the last step and each evaluation."""

    def __init__(self, method: str, total: int, keys: tuple[str, ...], initial: int = 0, enabled: bool = True):
        self.title, self.total, self.keys = stage_title(method), total, keys
        self.enabled = enabled and log_level() != "quiet"
        self.started, self.first_step = time.monotonic(), initial
        self.step, self.metrics, self.tokens = initial, "", None
        self.live, self.printed, self.last_line = None, None, None
        if self.enabled and is_live():
            self.live = StageDisplay(self.title, total, initial)
            self.live.start()

    def advance(self, step: int) -> None:
        self.step = step
        if self.live:
            self.live.show(step, self.status())

    def log(self, step: int, record: dict) -> None:
        """A logging step: its metrics join the display (a terminal) or make one plain line (otherwise)."""
        self.step = max(self.step, step)
        if "train_runtime" in record:  # the trainer's closing totals: the last step's figures stay shown
            return
        shown = format_metrics(record, self.keys)
        evaluation = shown.startswith("eval ")
        if shown and not evaluation:
            self.metrics = shown
        self.tokens = record.get("num_tokens", self.tokens)  # TRL counts the tokens trained on so far
        if self.live:
            if evaluation:  # a line of its own above the display, kept on screen
                self.live.console.print(f"{self.title} step {step}/{self.total} {shown}", soft_wrap=True)
            self.live.show(self.step, self.status())
        elif self.enabled and shown and (evaluation or self.due(step)) and (step, shown) != self.last_line:
            self.last_line = (step, shown)
            self.print_line(step, shown if evaluation else self.status())

    def print_line(self, step: int, figures: str) -> None:
        """One plain line: ``dpo step 20/30 loss 0.79 ... | 0:12 eta 0:06``."""
        self.printed = step
        elapsed = time.monotonic() - self.started
        console.file.write(
            f"{self.title} step {step}/{self.total} {figures} | {clock(elapsed)} eta {clock(self.eta())}\n"
        )
        console.file.flush()

    def due(self, step: int) -> bool:
        """A plain line is printed for the first logged step, the last, and then every fifth of the run or so
        (every logging step when there are few): a long run says where it is without filling the screen."""
        every = max(1, self.total // 5)
        return self.printed is None or step >= self.total or step - self.printed >= every

    def status(self) -> str:
        """The metrics, the throughput and (CUDA) the GPU memory in use and its peak."""
        parts = [self.metrics] if self.metrics else []
        elapsed = time.monotonic() - self.started
        done = self.step - self.first_step
        if done > 0 and elapsed > 0:
            parts.append(f"{done / elapsed:.3g} it/s")
        if self.tokens and elapsed > 0 and not self.first_step:
            parts.append(f"{self.tokens / elapsed:,.0f} tok/s")
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            used, peak = torch.cuda.memory_allocated() / 2**30, torch.cuda.max_memory_allocated() / 2**30
            parts.append(f"gpu {used:.1f}/{peak:.1f} GB")
        return " | ".join(parts)

    def eta(self) -> float | None:
        elapsed, done = time.monotonic() - self.started, self.step - self.first_step
        return elapsed / done * (self.total - self.step) if done > 0 else None

    def close(self) -> None:
        """The last step's line (piped, when the last step was not a logging step), or the display's last frame."""
        if not self.live and self.enabled and self.metrics and self.printed is not None and self.printed < self.step:
            self.print_line(self.step, self.status())
        if self.live:
            self.live.show(self.step, self.status())
            self.live.stop()
            self.live = None


class StageDisplay:
    """The live display of one stage, two lines that fit 80 columns: the stage, a bar, step/total, elapsed
    and ETA; below it the metrics, throughput and GPU memory."""

    def __init__(self, title: str, total: int, initial: int):
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
        from rich.progress import Progress as RichProgress
        from rich.text import Text

        status = self.status = Text("", style="dim")

        class TwoLines(RichProgress):
            def get_renderables(self):
                yield self.make_tasks_table(self.tasks)
                yield status

        self.progress = TwoLines(
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=max(10, min(40, console.width - 45))),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(compact=True),
            console=console,
        )
        self.console = console
        self.task = self.progress.add_task(title, total=total, completed=initial)

    def start(self) -> None:
        self.progress.start()

    def show(self, step: int, status: str) -> None:
        self.status.plain = "  " + status
        self.progress.update(self.task, completed=step)

    def stop(self) -> None:
        self.progress.stop()
