"""SIGTERM and SIGINT during training: save a checkpoint at the end of the current step, then stop.

A cluster scheduler sends SIGTERM before it kills a job, and Ctrl-C sends SIGINT; either way the run keeps
what it has learned. A second signal stops at once (Python's default behaviour is restored after the first).
"""

import contextlib
import signal
import threading

from llmrl.errors import LlmrlError

SIGNALS = (signal.SIGTERM, signal.SIGINT)
EXIT_CODES = {"SIGTERM": 143, "SIGINT": 130}  # 128 + signal number, as shells report a signalled process


class TrainingInterrupted(LlmrlError):
    """The run stopped on a signal after saving a checkpoint; ``exit_code`` says which signal."""

    def __init__(self, signal_name: str, checkpoint: str | None, resume_hint: str):
        self.signal_name, self.checkpoint = signal_name, checkpoint
        self.exit_code = EXIT_CODES.get(signal_name, 1)
        saved = f"checkpoint saved to {checkpoint}" if checkpoint else "no checkpoint could be saved"
        super().__init__(f"stopped by {signal_name}: {saved}; continue with: {resume_hint}")


@contextlib.contextmanager
def forward_sigterm(process):
    """While ``process`` runs: pass SIGTERM on to it (a scheduler signals the process it started), and leave
    Ctrl-C to it (a terminal sends SIGINT to every process of the job already)."""
    if threading.current_thread() is not threading.main_thread():  # handlers can only be set there
        yield
        return
    previous = {
        signal.SIGTERM: signal.signal(signal.SIGTERM, lambda signum, frame: process.send_signal(signum)),
        signal.SIGINT: signal.signal(signal.SIGINT, signal.SIG_IGN),
    }
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class StopOnSignal:
    """Context manager: while active, SIGTERM/SIGINT set ``received`` instead of killing the process.

    The training loop asks ``requested(accelerator)`` after each optimizer step; with several processes the
    answer is agreed by all of them (a signal may reach them at different steps), so they save the same step.
    """

    def __init__(self):
        self.received: str | None = None
        self.previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():  # handlers can only be set there
            for sig in SIGNALS:
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.previous.clear()

    def _handle(self, signum, frame):
        self.received = signal.Signals(signum).name
        signal.signal(signum, self.previous.get(signum, signal.SIG_DFL))  # a second signal acts at once

    def requested(self, accelerator=None) -> bool:
        """Whether any process received a signal (one small all-reduce per call when there are several)."""
        flag = self.received is not None
        if accelerator is None or accelerator.num_processes == 1:
            return flag
        import torch

        agreed = accelerator.reduce(torch.tensor([float(flag)], device=accelerator.device), reduction="sum")
        if agreed.item() > 0 and self.received is None:
            self.received = "SIGTERM"  # another process got it; the scheduler signals every process
        return agreed.item() > 0
