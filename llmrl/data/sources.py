"""Find and read a dataset split by name: bundled samples, short names, local files and folders, or the Hub.

- ``builtin:sft``, ``builtin:preference``, ``builtin:prompts``: the synthetic arithmetic samples shipped in
  ``llmrl/data/samples/`` (splits ``train`` and ``test``; see ``scripts/make_sample_data.py``).
- Short names for datasets of real pipelines (``SHORT_NAMES``), each with the right subset, folder and
  splits for the kind of data a method needs (UltraFeedback's ``train_prefs`` for DPO, ``train_sft`` for SFT).
- A local ``.json`` (a list of objects, or JSON lines) / ``.jsonl`` / ``.parquet`` / ``.csv`` file (its one split
  is ``train``), or a folder of them where each file is named after its split (``train.jsonl``, ``test-0.parquet``).
- Anything else is a hub dataset name, read with ``datasets.load_dataset`` (``data.subset``, ``data.data_dir``).
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from llmrl.builtin import PREFIX as BUILTIN_PREFIX
from llmrl.builtin import SAMPLES_DIR
from llmrl.errors import LlmrlError, first_line, missing_local_folder_hint
from llmrl.files import check_utf8, looks_like_path

if TYPE_CHECKING:
    from llmrl.config import TrainingConfig

BUILTIN_DATASETS = tuple(BUILTIN_PREFIX + p.name for p in sorted(SAMPLES_DIR.iterdir()) if p.is_dir())
logger = logging.getLogger("llmrl")
LOCAL_FORMATS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv"}


@dataclass(frozen=True)
class HubDataset:
    """A hub dataset behind a short name, with its training split per kind of data (sft, preference, prompt)."""

    repo: str
    subset: str | None = None
    train_splits: dict[str, str] = field(default_factory=dict)  # kind -> split (default: train)
    data_dirs: dict[str, str] = field(default_factory=dict)  # kind -> folder inside the repository
    eval_split: str = "test"  # the held-out split eval reads by default


SHORT_NAMES = {
    "smoltalk": HubDataset("HuggingFaceTB/smol-smoltalk"),
    "ultrafeedback": HubDataset(
        "HuggingFaceH4/ultrafeedback_binarized",
        train_splits={"sft": "train_sft", "preference": "train_prefs", "prompt": "train_gen"},
        eval_split="test_prefs",
    ),
    "capybara": HubDataset("trl-lib/Capybara"),
    "deepmath": HubDataset("trl-lib/DeepMath-103K"),
    "helpsteer3": HubDataset("nvidia/HelpSteer3", subset="preference"),
    "stack-exchange-paired": HubDataset(
        "lvwerra/stack-exchange-paired",
        data_dirs={"sft": "data/finetune", "preference": "data/reward", "prompt": "data/rl"},
    ),
    "gsm8k": HubDataset("openai/gsm8k", subset="main"),
}


def default_split(cfg: TrainingConfig, kind: str) -> str:
    """The split to train on: ``cfg.split``, else the short name's training split for ``kind``, else train."""
    if cfg.split:
        return cfg.split
    short = SHORT_NAMES.get(cfg.dataset or "")
    return short.train_splits.get(kind, "train") if short else "train"


def eval_split(cfg: TrainingConfig) -> str:
    """The split eval reads: ``cfg.split``, else the dataset's held-out split (``test``); a single file has
    only one split, which is then used, with a warning that its prompts may have been trained on."""
    if cfg.split:
        return cfg.split
    short = SHORT_NAMES.get(cfg.dataset or "")
    if short:
        return short.eval_split
    local = local_path(cfg.dataset)
    if local and local.is_file():
        logger.warning("dataset %s is one file: evaluating its only split (train); are these prompts held out?", local)
        return "train"
    return "test"


def load_split(cfg: TrainingConfig, split: str | None = None, kind: str = "sft"):
    """The named split of ``cfg.dataset`` as a ``datasets.Dataset``, cut to ``data.max_samples`` rows."""
    split = split or default_split(cfg, kind)
    source = cfg.dataset
    local = local_path(source)
    if local:
        dataset = _load_local(local, split)
    elif source in SHORT_NAMES:
        short = SHORT_NAMES[source]
        subset = cfg.data.subset or short.subset
        data_dir = cfg.data.data_dir or short.data_dirs.get(kind)
        dataset = _load_hub(short.repo, split, subset, data_dir)
    else:
        dataset = _load_hub(source, split, cfg.data.subset, cfg.data.data_dir)
    if len(dataset) == 0:
        raise LlmrlError(f"dataset '{source}' split '{split}' has no rows")
    if cfg.data.max_samples is not None:
        dataset = dataset.select(range(min(cfg.data.max_samples, len(dataset))))
    return dataset


def local_path(source: str | None) -> Path | None:
    """The local file or folder a dataset name points to, None for a hub name; raises if it is missing."""
    if not source:
        raise LlmrlError("no dataset given: pass --dataset NAME_OR_PATH (for example --dataset builtin:sft)")
    if source.startswith(BUILTIN_PREFIX):
        if source not in BUILTIN_DATASETS:
            raise LlmrlError(f"unknown built-in dataset '{source}'; built-in datasets: {', '.join(BUILTIN_DATASETS)}")
        return SAMPLES_DIR / source.removeprefix(BUILTIN_PREFIX)
    path = Path(source).expanduser()
    if path.exists():
        return path
    if looks_like_path(source) or path.suffix.lower() in LOCAL_FORMATS:
        raise LlmrlError(f"dataset file or folder not found: {source}")
    return None


def _load_local(path: Path, split: str):
    if path.is_file():
        if path.suffix.lower() not in LOCAL_FORMATS:
            raise LlmrlError(f"unsupported dataset file {path}: expected one of {', '.join(LOCAL_FORMATS)} (any case)")
        if split != "train":
            raise LlmrlError(f"a single dataset file has only the 'train' split, not '{split}': {path}")
        return _read_files(LOCAL_FORMATS[path.suffix.lower()], [path], path)
    files_by_split: dict[str, list[Path]] = {}
    for file in sorted(p for p in path.rglob("*") if p.suffix.lower() in LOCAL_FORMATS):
        split_name = file.stem.split("-")[0].split(".")[0]
        files_by_split.setdefault(split_name, []).append(file)
    if not files_by_split:
        raise LlmrlError(f"dataset folder {path} holds no {', '.join(LOCAL_FORMATS)} files")
    files = files_by_split.get(split)
    if files is None:
        raise LlmrlError(f"split '{split}' not found in {path}; splits there: {', '.join(sorted(files_by_split))}")
    formats = {LOCAL_FORMATS[f.suffix.lower()] for f in files}
    if len(formats) > 1:
        raise LlmrlError(f"split '{split}' in {path} mixes file formats ({', '.join(sorted(formats))}); use one")
    return _read_files(formats.pop(), files, path)


def _read_files(builder: str, files: list[Path], source: Path):
    import datasets

    for file in files:
        with file.open("rb") as f:
            if not f.read(4096).strip():
                raise LlmrlError(f"dataset file {file} is empty; expected one example per line (or row)")
        if builder == "json":
            check_utf8(file, "dataset file")  # datasets' JSON reader takes bytes that are not UTF-8 silently
        if builder == "csv":
            _check_csv(file)  # broken quoting does not fail datasets' reader: it reads the rest as one row

    datasets_logger = logging.getLogger("datasets")
    level = datasets_logger.level
    datasets_logger.setLevel(logging.CRITICAL)  # a parse error is logged before it is raised; we report it once
    try:
        return datasets.load_dataset(builder, data_files=[str(f) for f in files], split="train")
    except Exception as e:  # datasets wraps parse errors in several exception types
        if builder == "json":
            for file in files:
                _check_json(file)  # names the file and line, which datasets' message does not
        raise LlmrlError(f"could not read dataset {source}: {first_line(e.__cause__ or e)}") from e
    finally:
        datasets_logger.setLevel(level)


def _check_json(file: Path) -> None:
    """Raise naming the file and line of the first JSON error in ``file``, if it has one."""
    try:
        with file.open(encoding="utf-8") as f:
            head = f.read(4096).lstrip()
            f.seek(0)
            if head.startswith("["):
                json.load(f)
                return
            for number, line in enumerate(f, 1):
                if line.strip():
                    try:
                        json.loads(line)
                    except json.JSONDecodeError as e:
                        raise LlmrlError(f"{file}: line {number} is not valid JSON: {e.msg}") from None
    except json.JSONDecodeError as e:
        raise LlmrlError(f"{file}: line {e.lineno} is not valid JSON: {e.msg}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise LlmrlError(f"could not read dataset file {file}: {first_line(e)}") from None


def _check_csv(file: Path) -> None:
    """Raise naming the line of the first CSV row that is broken: a quote never closed (which would read the
    rest of the file as one field) or a row with more or fewer fields than the header."""
    with file.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, strict=True)
        header, start, rows = None, 1, 0
        try:
            for row in reader:
                if header is None:
                    header = row
                elif row and len(row) != len(header):
                    raise LlmrlError(
                        f"{file}: line {start} has {len(row)} fields, the header {len(header)} "
                        f"({', '.join(header)}); quote fields that hold commas"
                    )
                rows += header is not None and row != header and any(field.strip() for field in row)
                start = reader.line_num + 1
        except csv.Error as e:
            raise LlmrlError(f"{file}: the row from line {start} on is not valid CSV ({e}); check its quotes") from None
        except UnicodeDecodeError:
            check_utf8(file, "dataset file")  # raises, naming the line, the column and the byte
            raise
    if rows == 0:
        raise LlmrlError(f"dataset file {file} has a header ({', '.join(header or [])}) and no rows")


def _load_hub(name: str, split: str, subset: str | None, data_dir: str | None):
    import datasets

    try:
        return datasets.load_dataset(name, subset, data_dir=data_dir, split=split)
    except Exception as e:
        raise LlmrlError(
            f"could not load dataset '{name}' (split '{split}') from the Hugging Face Hub: {first_line(e)}"
            f"{missing_local_folder_hint(name)}"
        ) from e
