"""The data layer: find a dataset by name (``sources``), recognise its schema and normalize its rows for a
method (``schemas``), then filter and measure it with the model's tokenizer (``prepare``)."""

from llmrl.data.prepare import DataReport, prepare_dataset, prepare_train_eval
from llmrl.data.sources import BUILTIN_DATASETS, SHORT_NAMES, eval_split, load_split, local_path

__all__ = [
    "BUILTIN_DATASETS",
    "SHORT_NAMES",
    "DataReport",
    "eval_split",
    "load_split",
    "local_path",
    "prepare_dataset",
    "prepare_train_eval",
]
