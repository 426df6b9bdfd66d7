"""Release accelerator memory between and after training runs."""

import gc
import sys


def free_memory() -> None:
    """Collect garbage, return cached CUDA blocks to the driver, and reset the peak-memory counters.

    Called in a ``finally`` after every training call, so that the next stage of a pipeline (or the next
    test) starts with the GPU as empty as the process can make it. Never imports torch itself.
    """
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.ipc_collect()
        torch.cuda.reset_peak_memory_stats()
